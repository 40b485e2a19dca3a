package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Asymmetric algorithms accepted with a JWK Set.
var asymmetricAlgs = []string{"ES256", "RS256", "EdDSA"}

// Key refresh timing: a JWKS file is looked at (stat) at most once per
// fileCheckInterval; a token with an unknown kid makes the set be fetched
// again at most once per unknownKIDInterval.
const (
	fileCheckInterval  = time.Second
	unknownKIDInterval = 10 * time.Second
	jwksHTTPTimeout    = 5 * time.Second
)

// keySource gives the public key that verifies an asymmetric token.
type keySource interface {
	keyfunc(t *jwt.Token) (any, error)
	close()
}

// checkKey refuses a key that does not fit the token's alg, or is weak:
// RS256 needs RSA of at least 2048 bits, ES256 P-256, EdDSA Ed25519.
func checkKey(alg string, k any) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if alg != "RS256" {
			return fmt.Errorf("an RSA key cannot verify %s", alg)
		}
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits: at least 2048 are required", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if alg != "ES256" || k.Curve != elliptic.P256() {
			return fmt.Errorf("an ECDSA %s key cannot verify %s", k.Curve.Params().Name, alg)
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return fmt.Errorf("an Ed25519 key cannot verify %s", alg)
		}
	default:
		return fmt.Errorf("unsupported key type %T", k)
	}
	return nil
}

// checked wraps a keyfunc result with checkKey (every key of a set, for a
// token without kid).
func checked(alg string, k any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if set, ok := k.(jwt.VerificationKeySet); ok {
		var good jwt.VerificationKeySet
		for _, k := range set.Keys {
			if checkKey(alg, k) == nil {
				good.Keys = append(good.Keys, k)
			}
		}
		if len(good.Keys) == 0 {
			return nil, fmt.Errorf("no key for %s in the JWK Set", alg)
		}
		return good, nil
	}
	if err := checkKey(alg, k); err != nil {
		return nil, err
	}
	return k, nil
}

// fileKeys is a JWK Set in a file, read again when the file changes and
// when a token names a kid it does not have.
type fileKeys struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	kf      keyfunc.Keyfunc
	mod     time.Time
	size    int64
	checked time.Time // last stat
	unknown *rate.Limiter
}

func newFileKeys(path string, log *slog.Logger) (*fileKeys, error) {
	f := &fileKeys{path: path, log: log, unknown: rate.NewLimiter(rate.Every(fileCheckInterval), 1)}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

// load reads the file (mu held, or before use).
func (f *fileKeys) load() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("auth: JWKS file: %w", err)
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("auth: JWKS file: %w", err)
	}
	kf, err := keyfunc.NewJWKSetJSON(b)
	if err != nil {
		return fmt.Errorf("auth: JWKS file %s: %w", f.path, err)
	}
	f.kf, f.mod, f.size, f.checked = kf, st.ModTime(), st.Size(), time.Now()
	return nil
}

// current re-reads the file if it changed since it was last looked at;
// a file that does not parse keeps the keys it had.
func (f *fileKeys) current(force bool) keyfunc.Keyfunc {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !force && time.Since(f.checked) < fileCheckInterval {
		return f.kf
	}
	f.checked = time.Now()
	st, err := os.Stat(f.path)
	if err == nil && !force && st.ModTime().Equal(f.mod) && st.Size() == f.size {
		return f.kf
	}
	if err := f.load(); err != nil {
		f.log.Warn("JWKS file not reloaded; keeping the keys it had", "err", err)
	} else {
		f.log.Info("JWKS file reloaded", "file", f.path)
	}
	return f.kf
}

func (f *fileKeys) keyfunc(t *jwt.Token) (any, error) {
	k, err := f.current(false).Keyfunc(t)
	if errors.Is(err, jwkset.ErrKeyNotFound) && f.unknown.Allow() {
		k, err = f.current(true).Keyfunc(t)
	}
	return k, err
}

func (f *fileKeys) close() {}

// urlKeys is a JWK Set served at a URL (an identity provider's jwks_uri),
// fetched again every refresh and, rate-limited, for an unknown kid.
type urlKeys struct {
	kf     keyfunc.Keyfunc
	cancel context.CancelFunc
}

func newURLKeys(url string, refresh time.Duration, log *slog.Logger) (*urlKeys, error) {
	ctx, cancel := context.WithCancel(context.Background())
	noErr := false // the first fetch must work: a typo shows at start
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		HTTPTimeout:               jwksHTTPTimeout,
		RefreshInterval:           refresh,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(unknownKIDInterval), 1),
		RateLimitWaitMax:          time.Millisecond, // a token waits for no refresh slot
		NoErrorReturnFirstHTTPReq: &noErr,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				log.Warn("JWKS URL not refreshed; keeping the keys it had", "url", redactQuery(u), "err", err)
			}
		},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: JWKS URL %s: %w", redactQuery(url), err)
	}
	return &urlKeys{kf: kf, cancel: cancel}, nil
}

func (u *urlKeys) keyfunc(t *jwt.Token) (any, error) { return u.kf.Keyfunc(t) }
func (u *urlKeys) close()                            { u.cancel() }

// redactQuery drops a URL's query (it may hold a credential).
func redactQuery(u string) string {
	for i := 0; i < len(u); i++ {
		if u[i] == '?' {
			return u[:i] + "?…"
		}
	}
	return u
}
