package main

import (
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
	fs.StringVar(&secretFile, "jwt-secret-file", "", "file holding the HS256 secret, the one serve is given (required)")
	fs.StringVar(&secretFile, "secret-file", "", "alias of --jwt-secret-file")
	var pubs, subs stringList
	fs.Var(&pubs, "pub", "broadcast path prefix the token may publish under (repeatable; \"\" = all)")
	fs.Var(&subs, "sub", "broadcast path prefix the token may subscribe to (repeatable; \"\" = all)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: moqgate token --jwt-secret-file FILE [--pub PREFIX]... [--sub PREFIX]... [--ttl DURATION]\n  prints an HS256 JWT granting publish/subscribe on broadcast path prefixes")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments %q", fs.Args())
	}
	if secretFile == "" {
		return errors.New("token: --jwt-secret-file is required")
	}
	if len(pubs) == 0 && len(subs) == 0 {
		return errors.New("token: grant at least one --pub or --sub prefix")
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	secret = []byte(strings.TrimSpace(string(secret)))
	if len(secret) == 0 {
		return errors.New("token: the secret file is empty")
	}
	now := time.Now()
	claims := jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(*ttl).Unix()}
	if len(pubs) > 0 {
		claims["pub"] = []string(pubs)
	}
	if len(subs) > 0 {
		claims["sub"] = []string(subs)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, s)
	return nil
}
