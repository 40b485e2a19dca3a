package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

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

// publishForViewers publishes path over RTMP with the pub token and
// returns a check that a MoQ viewer with a token can watch it for 2 s.
func publishForViewers(t *testing.T, ctx context.Context, g *gate, path, pub string) func(tok string) error {
	t.Helper()
	ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "40",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-f", "flv", g.RTMP+"/"+path+"?jwt="+pub)
	g.waitBroadcast(t, ctx, path)
	return func(tok string) error {
		_, done := sub(t, ctx, g.MoQ, path, "--duration", "2s", "--token", tok)
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("moqgate sub did not exit")
			return nil
		}
	}
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
	watch := publishForViewers(t, ctx, g, "live/jwks", pub)
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

// TestAuthJWKSURL: auth.jwks_url served over HTTP. A token of a key the
// server has not seen (rotation: k2 replaces k1 in the served set) makes
// it fetch the set again at once and is accepted; k1's tokens are refused
// from then on; an HS256 token signed with k1's public key as the secret
// (alg confusion) is refused; no token reaches the log.
func TestAuthJWKSURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	k1, j1 := writeES256Key(t, dir, "k1")
	k2, j2 := writeES256Key(t, dir, "k2")
	setFile := filepath.Join(dir, "served.json")
	writeJWKS(t, setFile, j1)
	var fetches atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		http.ServeFile(w, r, setFile)
	}))
	defer hs.Close()
	// An hour between refreshes: only an unknown kid makes it fetch.
	g := startGate(t, "auth:\n  mode: jwt\n  jwks_url: "+hs.URL+"/jwks.json\n  jwks_refresh: 1h\n")
	g.apiToken = mintKey(t, k1, "k1", "--sub", "")
	watch := publishForViewers(t, ctx, g, "live/url", mintKey(t, k1, "k1", "--pub", "live/"))
	old := mintKey(t, k1, "k1", "--sub", "live/")
	if err := watch(old); err != nil {
		t.Fatalf("viewer with a k1 token: %v", err)
	}
	writeJWKS(t, setFile, j2) // rotation at the identity provider
	before := fetches.Load()
	if err := watch(mintKey(t, k2, "k2", "--sub", "live/")); err != nil {
		t.Fatalf("viewer with a token of the rotated-in key: %v", err)
	}
	if fetches.Load() == before {
		t.Error("the unknown kid did not make the server fetch the JWK Set")
	}
	if err := watch(old); err == nil {
		t.Error("a k1 token was accepted after k1 left the served JWK Set")
	}
	// alg confusion: k2's public key (PEM) as an HS256 secret, k2's kid.
	pemBytes, err := os.ReadFile(k2)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	priv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(priv.(*ecdsa.PrivateKey).Public())
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "live/", "exp": time.Now().Add(time.Hour).Unix()})
	forged.Header["kid"] = "k2"
	tok, err := forged.SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	if err := watch(tok); err == nil {
		t.Error("an HS256 token signed with the ES256 public key was accepted")
	}
}
