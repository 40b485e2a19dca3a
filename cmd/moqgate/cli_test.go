package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

// TestHelpListsCommands: every spelling of help lists each subcommand and
// serve's flags on stdout, and succeeds.
func TestHelpListsCommands(t *testing.T) {
	for _, h := range []string{"-h", "--help", "help", "-help"} {
		out, _, err := runCLI(t, h)
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		for _, want := range []string{"serve [flags]", "sub [flags] URL BROADCAST", "pub [flags] URL BROADCAST", "token [flags]", "version", "-jwt-secret-file", "-listen", "-webrtc-udp"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", h, want, out)
			}
		}
	}
	out, _, err := runCLI(t, "help", "token")
	if err != nil || !strings.Contains(out, "-jwt-secret-file") || !strings.Contains(out, "-ttl") {
		t.Fatalf("help token: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "help", "nope"); err == nil {
		t.Fatal("help of an unknown command succeeded")
	}
	if _, _, err := runCLI(t, "nope"); err == nil || !strings.Contains(err.Error(), `unknown command "nope"`) {
		t.Fatalf("unknown command: %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, _, err := runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "moqgate ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %v %q", err, out)
	}
}

// TestTokenSecretFlagAlias: token takes serve's --jwt-secret-file, and the
// older --secret-file still works.
func TestTokenSecretFlagAlias(t *testing.T) {
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--jwt-secret-file", "--secret-file"} {
		out, _, err := runCLI(t, "token", flag, f, "--sub", "live/")
		if err != nil || strings.Count(strings.TrimSpace(out), ".") != 2 {
			t.Fatalf("token %s: %v %q", flag, err, out)
		}
	}
	if _, _, err := runCLI(t, "token", "--sub", "live/"); err == nil || !strings.Contains(err.Error(), "one of --jwt-secret-file and --key-file is required") {
		t.Fatalf("token without a secret: %v", err)
	}
}
