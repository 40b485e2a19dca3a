package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The same flag name as serve's for the same file; --secret-file is the
	// older name, kept so existing scripts work.
	var secretFile string
	fs.StringVar(&secretFile, "jwt-secret-file", "", "file holding the HS256 secret, the one serve is given")
	fs.StringVar(&secretFile, "secret-file", "", "alias of --jwt-secret-file")
	keyFile := fs.String("key-file", "", "PEM private key (ECDSA P-256: ES256, RSA >= 2048 bits: RS256, Ed25519: EdDSA) instead of --jwt-secret-file")
	kid := fs.String("kid", "", "key ID (kid) in the token's header: the key's in the JWK Set")
	var pubs, subs stringList
	fs.Var(&pubs, "pub", "broadcast path prefix the token may publish under (repeatable; \"\" = all)")
	fs.Var(&subs, "sub", "broadcast path prefix the token may subscribe to (repeatable; \"\" = all)")
	admin := fs.Bool("admin", false, "let the token read /metrics and /api/forward while auth is on")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: moqgate token (--jwt-secret-file FILE | --key-file PEM [--kid KID]) [--pub PREFIX]... [--sub PREFIX]... [--admin] [--ttl DURATION]\n  prints a JWT granting publish/subscribe on broadcast path prefixes")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments %q", fs.Args())
	}
	if (secretFile == "") == (*keyFile == "") {
		return errors.New("token: one of --jwt-secret-file and --key-file is required")
	}
	if len(pubs) == 0 && len(subs) == 0 && !*admin {
		return errors.New("token: grant at least one --pub or --sub prefix, or --admin")
	}
	method, key, err := signingKey(secretFile, *keyFile)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	now := time.Now()
	claims := jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(*ttl).Unix()}
	if len(pubs) > 0 {
		claims["pub"] = []string(pubs)
	}
	if len(subs) > 0 {
		claims["sub"] = []string(subs)
	}
	if *admin {
		claims["admin"] = true
	}
	tok := jwt.NewWithClaims(method, claims)
	if *kid != "" {
		tok.Header["kid"] = *kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, s)
	return nil
}

// signingKey reads the HS256 secret or the private key and picks the
// algorithm the key is for.
func signingKey(secretFile, keyFile string) (jwt.SigningMethod, any, error) {
	if secretFile != "" {
		secret, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, nil, err
		}
		secret = []byte(strings.TrimSpace(string(secret)))
		if len(secret) == 0 {
			return nil, nil, errors.New("the secret file is empty")
		}
		return jwt.SigningMethodHS256, secret, nil
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", keyFile)
	}
	var key any
	switch blk.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, nil, fmt.Errorf("%s: RSA key of %d bits; at least 2048 are required", keyFile, k.N.BitLen())
		}
		return jwt.SigningMethodRS256, k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, nil, fmt.Errorf("%s: ECDSA key on %s; ES256 needs P-256", keyFile, k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256, k, nil
	case ed25519.PrivateKey:
		return jwt.SigningMethodEdDSA, k, nil
	default:
		return nil, nil, fmt.Errorf("%s: unsupported key type %T", keyFile, key)
	}
}
