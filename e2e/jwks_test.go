package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/moqgate/moqgate/internal/rtctest"
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
	g.apiToken = mintKey(t, k1, "k1", "--sub", "")

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

// TestNoTokensInLogs: tokens on every surface — ?jwt= on the WebTransport
// and raw-QUIC URLs, in an RTMP stream key (refused and accepted), in a
// WHEP Authorization header, on LL-HLS URLs — and the server, at debug
// level, writes none of them (the harness fails a test whose server log
// holds a JWT).
func TestNoTokensInLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	secret := writeSecret(t, "0123456789abcdef0123456789abcdef")
	g := startGate(t, "", "--jwt-secret-file", secret)
	// A refused RTMP publish (subscribe-only token), then an accepted one.
	refused := ffmpeg(t, ctx, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30", "-t", "5",
		"-c:v", "libx264", "-f", "flv", g.RTMP+"/live/logs?jwt="+mint(t, secret, "--sub", ""))
	refused.Wait()
	ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30", "-t", "30",
		"-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30", "-f", "flv",
		g.RTMP+"/live/logs?jwt="+mint(t, secret, "--pub", "live/"))
	g.waitBroadcast(t, ctx, "live/logs")
	tok := mint(t, secret, "--sub", "live/")
	for _, url := range []string{g.WT + "?jwt=" + tok, g.MoQ + "/?jwt=" + tok} {
		_, done := sub(t, ctx, url, "live/logs", "--duration", "1s")
		waitExit(t, done, 30*time.Second)
	}
	bad := mint(t, secret, "--sub", "other/")
	st, _, _, err := rtctest.Do(ctx, "POST", g.Web+"/whep/live/logs", bad, "application/sdp", whepOffer(t, 1), nil)
	if err != nil || st != http.StatusForbidden {
		t.Fatalf("WHEP with a token for another prefix: %d %v, want 403", st, err)
	}
	for _, tk := range []string{tok, bad} {
		resp, err := http.Get(g.Web + "/hls/live/logs/index.m3u8?jwt=" + tk)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	g.stop(t) // the log is complete; the harness checks it
}
