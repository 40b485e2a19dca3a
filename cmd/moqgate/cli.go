package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/moqgate/moqgate/internal/logx"
)

// command is one subcommand: its synopsis for the top-level help and the
// function that runs it.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "[flags]", "run the gateway (the default when no command is given)",
			func(ctx context.Context, a []string, _ io.Reader, _, e io.Writer) error { return serve(ctx, a, e) }},
		{"sub", "[flags] URL BROADCAST", "subscribe through a MoQ relay, write fragmented MP4 to stdout",
			func(ctx context.Context, a []string, _ io.Reader, o, e io.Writer) error { return sub(ctx, a, o, e) }},
		{"pub", "[flags] URL BROADCAST", "publish fragmented MP4 read from stdin to a MoQ relay",
			func(ctx context.Context, a []string, i io.Reader, _, e io.Writer) error { return pub(ctx, a, i, e) }},
		{"token", "[flags]", "print a JWT for a server run with --jwt-secret-file",
			func(_ context.Context, a []string, _ io.Reader, o, e io.Writer) error { return token(a, o, e) }},
		{"version", "", "print the version and VCS revision",
			func(_ context.Context, _ []string, _ io.Reader, o, _ io.Writer) error { return version(o) }},
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	name := "serve"
	if len(args) > 0 && (args[0] == "" || args[0][0] != '-' || isHelp(args[0])) {
		name, args = args[0], args[1:]
	}
	if isHelp(name) {
		return help(args, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args, stdin, stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", name)
}

func isHelp(s string) bool { return s == "help" || s == "-h" || s == "-help" || s == "--help" }

// help prints the overview with serve's flags, or `help CMD`'s own flags.
func help(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] != "help" {
		for _, c := range commands() {
			if c.name == args[0] {
				// Each command prints its flags on -h; that is not an error here.
				_ = c.run(context.Background(), []string{"-h"}, nil, stdout, stdout)
				return nil
			}
		}
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	usage(stdout)
	fmt.Fprintln(stdout, "\nserve flags (also accepted with no command):")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stdout)
	new(serveFlags).register(fs)
	fs.PrintDefaults()
	fmt.Fprintln(stdout, "\nRun 'moqgate help COMMAND' or 'moqgate COMMAND -h' for a command's flags.")
	return nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, "moqgate — a Media over QUIC gateway: RTMP and WHIP in; MoQ, LL-HLS and WHEP out\n\nUsage:\n  moqgate [COMMAND] [flags]\n\nCommands:\n")
	for _, c := range commands() {
		syn := strings.TrimSpace(c.name + " " + c.args)
		fmt.Fprintf(w, "  %-28s %s\n", syn, c.summary)
	}
}

// newLogger: tokens are redacted at every level, and a warning repeated
// more than 10 times in 10 s is counted instead of written.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(logx.Redact(logx.RateLimit(h, 10*time.Second, 10)))
}
