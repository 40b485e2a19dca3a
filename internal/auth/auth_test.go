package auth

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func newJWT(t *testing.T, secret string) *Authorizer {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New("jwt", f)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheck(t *testing.T) {
	const secret = "0123456789abcdef0123"
	a := newJWT(t, secret)
	now := time.Now()
	good := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{
		"pub": []string{"live/"}, "sub": "", "exp": now.Add(time.Hour).Unix()})
	cases := []struct {
		name, token, action, path string
		want                      error
	}{
		{"publish under prefix", good, Publish, "live/test", nil},
		{"prefix is whole segments", good, Publish, "lively/test", ErrForbidden},
		{"publish elsewhere", good, Publish, "other/x", ErrForbidden},
		{"subscribe everything", good, Subscribe, "any/thing", nil},
		{"no token", "", Subscribe, "live/test", ErrUnauthenticated},
		{"garbage", "abc.def.ghi", Subscribe, "live/test", ErrUnauthenticated},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another secret 0123456"), jwt.MapClaims{"sub": ""}), Subscribe, "live/test", ErrUnauthenticated},
		{"alg none refused", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": ""}), Subscribe, "live/test", ErrUnauthenticated},
		{"HS512 refused", sign(t, jwt.SigningMethodHS512, []byte(secret), jwt.MapClaims{"sub": ""}), Subscribe, "live/test", ErrUnauthenticated},
		{"expired", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "", "exp": now.Add(-time.Minute).Unix()}), Subscribe, "live/test", ErrExpired},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "", "nbf": now.Add(time.Hour).Unix()}), Subscribe, "live/test", ErrUnauthenticated},
		{"publish-only used to subscribe", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"pub": []string{""}}), Subscribe, "live/test", ErrForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := a.Check(tc.token, tc.action, tc.path)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if g.Expires.IsZero() {
					t.Fatal("no expiry")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestModeNoneAllowsAll(t *testing.T) {
	a, err := New("none", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Enabled() {
		t.Fatal("mode none enabled")
	}
	if _, err := a.Check("", Publish, "x/y"); err != nil {
		t.Fatal(err)
	}
}

func TestShortSecretRefused(t *testing.T) {
	f := filepath.Join(t.TempDir(), "s")
	os.WriteFile(f, []byte("short"), 0o600)
	if _, err := New("jwt", f); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
	if _, err := New("oauth", ""); err == nil {
		t.Fatal("unknown mode accepted")
	}
}
