package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// testKey is a signing key with its kid and JWT method.
type testKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
}

func newTestKey(t *testing.T, kid, alg string) testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	var m jwt.SigningMethod
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		m = jwt.SigningMethodES256
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
		m = jwt.SigningMethodRS256
	case "RS256-1024":
		priv, err = rsa.GenerateKey(rand.Reader, 1024)
		m = jwt.SigningMethodRS256
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		m = jwt.SigningMethodEdDSA
	}
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, method: m, priv: priv}
}

func (k testKey) sign(t *testing.T, sub string) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwks is the public JWK Set of keys.
func jwks(t *testing.T, keys ...testKey) []byte {
	t.Helper()
	st := jwkset.NewMemoryStorage()
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.kid},
			Validate: jwkset.JWKValidateOptions{SkipAll: true}})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.KeyWrite(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	b, err := st.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func expectGrant(t *testing.T, a *Authorizer, tok, what string) {
	t.Helper()
	if _, err := a.Check(tok, Subscribe, "live/x"); err != nil {
		t.Fatalf("%s: refused: %v", what, err)
	}
}

func expectRefused(t *testing.T, a *Authorizer, tok, what string) {
	t.Helper()
	if _, err := a.Check(tok, Subscribe, "live/x"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("%s: %v, want refused as unauthenticated", what, err)
	}
}

// TestJWKSFile: ES256, RS256 and EdDSA keys from a JWKS file; a key added
// to the file is used at once (unknown kid: the file is read again), a
// removed one is refused once the file changed.
func TestJWKSFile(t *testing.T) {
	es, rs, ed := newTestKey(t, "es", "ES256"), newTestKey(t, "rs", "RS256"), newTestKey(t, "ed", "EdDSA")
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwks(t, es, rs, ed), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := NewWith(Options{Mode: "jwt", JWKSFile: file})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, k := range []testKey{es, rs, ed} {
		expectGrant(t, a, k.sign(t, "live/"), k.method.Alg())
	}
	// Rotation: es2 replaces es.
	es2 := newTestKey(t, "es2", "ES256")
	if err := os.WriteFile(file, jwks(t, es2, rs, ed), 0o600); err != nil {
		t.Fatal(err)
	}
	expectGrant(t, a, es2.sign(t, "live/"), "the new key (unknown kid)")
	expectRefused(t, a, es.sign(t, "live/"), "the removed key")
	// Removal noticed from the file's change alone (rs is a known kid).
	time.Sleep(10 * time.Millisecond) // a new mtime
	if err := os.WriteFile(file, jwks(t, es2, ed), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(fileCheckInterval + 100*time.Millisecond)
	expectRefused(t, a, rs.sign(t, "live/"), "a key removed from the file")
}

// TestJWKSURL: a JWK Set served over HTTP; a new kid makes it be fetched
// again (once per interval at most), and the periodic refresh drops a
// removed key.
func TestJWKSURL(t *testing.T) {
	a1, b1, c1 := newTestKey(t, "a", "ES256"), newTestKey(t, "b", "RS256"), newTestKey(t, "c", "EdDSA")
	var set atomic.Pointer[[]byte]
	var fetches atomic.Int32
	serve := func(keys ...testKey) { b := jwks(t, keys...); set.Store(&b) }
	serve(a1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(*set.Load())
	}))
	defer hs.Close()
	a, err := NewWith(Options{Mode: "jwt", JWKSURL: hs.URL + "/jwks.json", JWKSRefresh: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	expectGrant(t, a, a1.sign(t, "live/"), "the served key")
	serve(b1) // rotation: a removed, b added
	expectGrant(t, a, b1.sign(t, "live/"), "the new key (unknown kid)")
	expectRefused(t, a, a1.sign(t, "live/"), "the removed key")
	n := fetches.Load()
	serve(b1, c1)
	expectRefused(t, a, newTestKey(t, "zz", "ES256").sign(t, "live/"), "an unknown kid")
	if fetches.Load() != n {
		t.Fatalf("unknown kids refetched the set within %s", unknownKIDInterval)
	}
	// The periodic refresh brings c in, and later drops b.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := a.Check(c1.sign(t, "live/"), Subscribe, "live/x"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the periodic refresh did not bring in the added key")
		}
		time.Sleep(50 * time.Millisecond)
	}
	serve(c1)
	deadline = time.Now().Add(5 * time.Second)
	for {
		if _, err := a.Check(b1.sign(t, "live/"), Subscribe, "live/x"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the periodic refresh did not drop the removed key")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAlgConfusion: an RS256 key's public half used as an HS256 secret,
// a key used for another algorithm, a weak RSA key and alg none are all
// refused.
func TestAlgConfusion(t *testing.T) {
	rs, weak, ed := newTestKey(t, "rs", "RS256"), newTestKey(t, "weak", "RS256-1024"), newTestKey(t, "ed", "EdDSA")
	dir := t.TempDir()
	file := filepath.Join(dir, "jwks.json")
	os.WriteFile(file, jwks(t, rs, weak, ed), 0o600)
	der, _ := x509.MarshalPKIXPublicKey(rs.priv.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("a shared secret of some length"), 0o600)
	withSecret, err := NewWith(Options{Mode: "jwt", SecretFile: secret, JWKSFile: file})
	if err != nil {
		t.Fatal(err)
	}
	jwksOnly, err := NewWith(Options{Mode: "jwt", JWKSFile: file})
	if err != nil {
		t.Fatal(err)
	}
	hs := func(key []byte, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "live/"})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, a := range map[string]*Authorizer{"secret+JWKS": withSecret, "JWKS only": jwksOnly} {
		expectGrant(t, a, rs.sign(t, "live/"), name+": RS256")
		expectRefused(t, a, hs(pubPEM, "rs"), name+": HS256 with the RSA public key (PEM) as secret")
		expectRefused(t, a, hs(der, "rs"), name+": HS256 with the RSA public key (DER) as secret")
		expectRefused(t, a, weak.sign(t, "live/"), name+": RS256 with a 1024-bit key")
		// The Ed25519 key's kid on an RS256 token signed with the RSA key.
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "live/"})
		tok.Header["kid"] = "ed"
		s, _ := tok.SignedString(rs.priv)
		expectRefused(t, a, s, name+": an Ed25519 key's kid on an RS256 token")
		none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "live/"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
		expectRefused(t, a, none, name+": alg none")
	}
	expectRefused(t, jwksOnly, hs([]byte("a shared secret of some length"), ""), "HS256 without a secret configured")
}
