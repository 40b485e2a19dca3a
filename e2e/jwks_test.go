package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
)

// writeES256Key writes a P-256 private key (PKCS#8 PEM) and returns the
// file and the public key's JWK (kid) as a JWK Set member.
func writeES256Key(t *testing.T, dir, kid string) (string, jwkset.JWK) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, kid+".pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := jwkset.NewJWKFromKey(&k.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgES256}})
	if err != nil {
		t.Fatal(err)
	}
	return f, j
}

func writeJWKS(t *testing.T, file string, keys ...jwkset.JWK) {
	t.Helper()
	st := jwkset.NewMemoryStorage()
	for _, k := range keys {
		if err := st.KeyWrite(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := st.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// mintKey runs `moqgate token --key-file`.
func mintKey(t *testing.T, keyFile, kid string, args ...string) string {
	t.Helper()
	out, err := exec.Command(binPath, append([]string{"token", "--key-file", keyFile, "--kid", kid}, args...)...).Output()
	if err != nil {
		t.Fatalf("moqgate token --key-file: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestAuthJWKSFile: ES256 tokens minted by `moqgate token --key-file` and
// checked against auth.jwks_file: an RTMP publisher and a MoQ viewer get
// in; after the key is rotated in the file the new key's tokens work and
// the old key's are refused, and no token is ever written to the log.
func TestAuthJWKSFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	k1, j1 := writeES256Key(t, dir, "k1")
	k2, j2 := writeES256Key(t, dir, "k2")
	jwksFile := filepath.Join(dir, "jwks.json")
	writeJWKS(t, jwksFile, j1)
	g := startGate(t, "auth:\n  mode: jwt\n  jwks_file: "+jwksFile+"\n")

	pub := mintKey(t, k1, "k1", "--pub", "live/")
	ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "40",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-f", "flv", g.RTMP+"/live/jwks?jwt="+pub)
	g.waitBroadcast(t, ctx, "live/jwks")
	watch := func(tok string) error {
		_, done := sub(t, ctx, g.MoQ, "live/jwks", "--duration", "2s", "--token", tok)
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("moqgate sub did not exit")
			return nil
		}
	}
	old := mintKey(t, k1, "k1", "--sub", "live/")
	if err := watch(old); err != nil {
		t.Fatalf("viewer with a k1 token: %v", err)
	}
	// Rotation: k2 replaces k1 in the file.
	writeJWKS(t, jwksFile, j2)
	fresh := mintKey(t, k2, "k2", "--sub", "live/")
	if err := watch(fresh); err != nil {
		t.Fatalf("viewer with a k2 token after the rotation: %v", err)
	}
	if err := watch(old); err == nil {
		t.Fatal("a k1 token was accepted after k1 left the JWK Set")
	}
	for _, tok := range []string{pub, old, fresh} {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if g.logs.contains(sig) {
			t.Fatalf("a token's signature appears in the log")
		}
	}
}
