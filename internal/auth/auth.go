// Package auth decides who may publish and subscribe. It is configured in
// one place and asked the same question by every protocol: may this token
// publish (or subscribe to) this broadcast path?
package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Actions.
const (
	Publish   = "publish"
	Subscribe = "subscribe"
)

// Refusals. ErrUnauthenticated: no usable token (401); ErrForbidden: a
// valid token that does not grant the action on the path (403).
var (
	ErrUnauthenticated = errors.New("auth: missing or invalid token")
	ErrForbidden       = errors.New("auth: not allowed")
	ErrExpired         = errors.New("auth: token expired")
)

// Grant is what a valid token allows, and until when.
type Grant struct {
	Publish   []string // path prefixes ("" = everything)
	Subscribe []string
	Expires   time.Time // zero = no expiry
	// Admin (the "admin": true claim) lets the caller read /metrics and
	// the forwarding status while auth is on.
	Admin bool
}

// Allows reports whether the grant covers action on path.
func (g *Grant) Allows(action, path string) bool {
	prefixes := g.Subscribe
	if action == Publish {
		prefixes = g.Publish
	}
	for _, p := range prefixes {
		if pathHasPrefix(path, p) {
			return true
		}
	}
	return false
}

// pathHasPrefix matches whole segments: "live/" and "live" cover
// "live/test" but not "lively".
func pathHasPrefix(path, prefix string) bool {
	prefix = strings.Trim(prefix, "/")
	path = strings.Trim(path, "/")
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// Authorizer checks tokens. The zero value (or mode none) allows all.
type Authorizer struct {
	mode   string
	mu     sync.RWMutex
	secret []byte // HS256; nil: HS256 tokens are refused
	file   string
	keys   keySource // ES256, RS256, EdDSA; nil: refused
	algs   []string  // the algorithms accepted
	now    func() time.Time
}

// Options configure an Authorizer.
type Options struct {
	// Mode is "none" (everything allowed) or "jwt".
	Mode string
	// SecretFile holds the HS256 secret (optional with a JWK Set).
	SecretFile string
	// JWKSFile is a JWK Set (JSON) file of public keys (ES256, RS256 of at
	// least 2048 bits, EdDSA), read again when it changes and when a
	// token names an unknown kid.
	JWKSFile string
	// JWKSURL is a JWK Set served over HTTP(S), fetched every JWKSRefresh
	// (default 5 min) and, at most every 10 s, for an unknown kid.
	JWKSURL     string
	JWKSRefresh time.Duration
	Logger      *slog.Logger
}

// New makes an authorizer: mode "none" or "jwt" (HS256 secret read from
// secretFile).
func New(mode, secretFile string) (*Authorizer, error) {
	return NewWith(Options{Mode: mode, SecretFile: secretFile})
}

// NewWith makes an authorizer from o. Close releases a JWKS URL's refresh.
func NewWith(o Options) (*Authorizer, error) {
	a := &Authorizer{mode: o.Mode, file: o.SecretFile, now: time.Now}
	switch o.Mode {
	case "", "none":
		a.mode = "none"
		return a, nil
	case "jwt":
	default:
		return nil, fmt.Errorf("auth: unknown mode %q", o.Mode)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SecretFile != "" {
		if err := a.Reload(); err != nil {
			return nil, err
		}
		a.algs = append(a.algs, "HS256")
	}
	var err error
	switch {
	case o.JWKSFile != "" && o.JWKSURL != "":
		return nil, errors.New("auth: a JWKS file or a JWKS URL, not both")
	case o.JWKSFile != "":
		a.keys, err = newFileKeys(o.JWKSFile, o.Logger)
	case o.JWKSURL != "":
		if o.JWKSRefresh <= 0 {
			o.JWKSRefresh = 5 * time.Minute
		}
		a.keys, err = newURLKeys(o.JWKSURL, o.JWKSRefresh, o.Logger)
	}
	if err != nil {
		return nil, err
	}
	if a.keys != nil {
		a.algs = append(a.algs, asymmetricAlgs...)
	}
	if len(a.algs) == 0 {
		return nil, errors.New("auth: jwt mode needs a secret file, a JWKS file or a JWKS URL")
	}
	return a, nil
}

// Close stops what the authorizer runs (a JWKS URL's refresh).
func (a *Authorizer) Close() {
	if a != nil && a.keys != nil {
		a.keys.close()
	}
}

// keyFor is the jwt.Keyfunc: the HS256 secret for HS256 only, a JWK Set
// key (of the token's alg, strong enough) for the others, so that no key
// is ever used with another algorithm than its own.
func (a *Authorizer) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == "HS256" {
		a.mu.RLock()
		secret := a.secret
		a.mu.RUnlock()
		if secret == nil {
			return nil, errors.New("HS256 tokens are not accepted here")
		}
		return secret, nil
	}
	if a.keys == nil {
		return nil, fmt.Errorf("%s tokens are not accepted here", alg)
	}
	k, err := a.keys.keyfunc(t)
	return checked(alg, k, err)
}

// Enabled reports whether tokens are checked.
func (a *Authorizer) Enabled() bool { return a != nil && a.mode == "jwt" }

// Reload re-reads the secret (SIGHUP).
func (a *Authorizer) Reload() error {
	if !a.Enabled() || a.file == "" {
		return nil
	}
	b, err := os.ReadFile(a.file)
	if err != nil {
		return fmt.Errorf("auth: read secret: %w", err)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) < 16 {
		return errors.New("auth: the JWT secret must be at least 16 bytes")
	}
	a.mu.Lock()
	a.secret = b
	a.mu.Unlock()
	return nil
}

// Parse validates a token and returns its grant.
func (a *Authorizer) Parse(token string) (*Grant, error) {
	if !a.Enabled() {
		return &Grant{Publish: []string{""}, Subscribe: []string{""}}, nil
	}
	if token == "" {
		return nil, ErrUnauthenticated
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, a.keyFor,
		jwt.WithValidMethods(a.algs), jwt.WithTimeFunc(a.now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, fmt.Errorf("%w: %w", ErrExpired, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	g := &Grant{Publish: stringList(claims["pub"]), Subscribe: stringList(claims["sub"])}
	g.Admin, _ = claims["admin"].(bool)
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		g.Expires = exp.Time
	}
	// The leeway is for clock skew on nbf and iat. A token is not taken
	// past its exp: that is when every session it opened ends, so all
	// protocols (session or request based) stop at the same instant.
	if !g.Expires.IsZero() && !a.now().Before(g.Expires) {
		return nil, fmt.Errorf("%w: at %s", ErrExpired, g.Expires.UTC().Format(time.RFC3339))
	}
	return g, nil
}

// Check validates token and that it grants action on path; it returns the
// grant (for its expiry).
func (a *Authorizer) Check(token, action, path string) (*Grant, error) {
	g, err := a.Parse(token)
	if err != nil {
		return nil, err
	}
	if !g.Allows(action, path) {
		return nil, fmt.Errorf("%w: %s on %q", ErrForbidden, action, path)
	}
	return g, nil
}

// stringList reads a claim that is a string or a list of strings.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
