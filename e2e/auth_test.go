package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mint runs `moqgate token`.
func mint(t *testing.T, secretFile string, args ...string) string {
	t.Helper()
	out, err := exec.Command(binPath, append([]string{"token", "--secret-file", secretFile}, args...)...).Output()
	if err != nil {
		t.Fatalf("moqgate token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestAuthRTMPAndMoQ: with JWT auth on, RTMP publishing and MoQ
// subscribing (raw QUIC and WebTransport) need a token granting the path;
// every bad token is refused; an expiring token cuts the session.
func TestAuthRTMPAndMoQ(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	secret := writeSecret(t, "0123456789abcdef0123456789abcdef")
	other := writeSecret(t, "ffffffffffffffffffffffffffffffff")
	g := startGate(t, "", "--jwt-secret-file", secret)

	pushArgs := func(url string) []string {
		return []string{"-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
			"-f", "lavfi", "-i", "sine=frequency=440", "-t", "30", "-c:v", "libx264", "-preset", "veryfast",
			"-g", "30", "-c:a", "aac", "-f", "flv", url}
	}
	// RTMP refusals: no token, wrong signature, wrong prefix, subscribe-only.
	for name, tok := range map[string]string{
		"no token":        "",
		"wrong signature": mint(t, other, "--pub", "live/"),
		"wrong prefix":    mint(t, secret, "--pub", "other/"),
		"subscribe only":  mint(t, secret, "--sub", ""),
		"expired":         mint(t, secret, "--pub", "", "--ttl", "-1m"),
	} {
		url := g.RTMP + "/live/auth"
		if tok != "" {
			url += "?jwt=" + tok
		}
		cmd := ffmpeg(t, ctx, pushArgs(url)...)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("RTMP publish with %s: ffmpeg succeeded", name)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("RTMP publish with %s was not refused", name)
		}
		if len(g.broadcasts(t)) != 0 {
			t.Fatalf("RTMP publish with %s created a broadcast", name)
		}
	}
	// A valid publish token.
	ffmpeg(t, ctx, pushArgs(g.RTMP+"/live/auth?jwt="+mint(t, secret, "--pub", "live/"))...)
	g.waitBroadcast(t, ctx, "live/auth")

	for _, url := range []string{g.MoQ, g.WT} {
		for name, tok := range map[string]string{
			"no token":        "",
			"wrong signature": mint(t, other, "--sub", ""),
			"expired":         mint(t, secret, "--sub", "", "--ttl", "-1m"),
			"wrong prefix":    mint(t, secret, "--sub", "other"),
			"publish only":    mint(t, secret, "--pub", ""),
		} {
			args := []string{"--duration", "5s"}
			if tok != "" {
				args = append(args, "--token", tok)
			}
			_, done := sub(t, ctx, url, "live/auth", args...)
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("%s: sub with %s succeeded", url, name)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("%s: sub with %s was not refused", url, name)
			}
		}
		// A valid token works, and one that expires cuts the session.
		file, done := sub(t, ctx, url, "live/auth", "--duration", "3s", "--token", mint(t, secret, "--sub", "live"))
		waitExit(t, done, 15*time.Second)
		if p := ffprobe(t, file); len(p.Streams) != 2 {
			t.Fatalf("%s: valid token: %+v", url, p.Streams)
		}
		start := time.Now()
		_, done = sub(t, ctx, url, "live/auth", "--token", mint(t, secret, "--sub", "live/auth", "--ttl", "3s"))
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("%s: expiring token: sub ended without an error", url)
			}
			if d := time.Since(start); d < 2*time.Second {
				t.Fatalf("%s: expiring token: session ended after %s, before the expiry", url, d)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: expiring token did not end the session", url)
		}
	}
}
