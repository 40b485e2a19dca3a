// Command moqgate is a Media over QUIC gateway: RTMP and WHIP in, MoQ,
// LL-HLS and WHEP out, on its own MoQ relay core.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/moqgate/moqgate/internal/logx"
)

const usage = `moqgate — a Media over QUIC gateway

Usage:
  moqgate                       serve with the default configuration
  moqgate serve [flags]         serve (see moqgate serve -h)
  moqgate sub [flags] URL BROADCAST
                                subscribe and write fragmented MP4 to stdout
  moqgate pub [flags] URL BROADCAST
                                publish fragmented MP4 read from stdin
  moqgate token [flags]         print a JWT for --jwt-secret-file auth
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "moqgate:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stderr)
	case "sub":
		return sub(ctx, args, stdout, stderr)
	case "pub":
		return pub(ctx, args, stdin, stderr)
	case "token":
		return token(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// newLogger: tokens are redacted at every level, and a warning repeated
// more than 10 times in 10 s is counted instead of written.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(logx.Redact(logx.RateLimit(h, 10*time.Second, 10)))
}
