// Command moqgate is a Media over QUIC gateway: RTMP and WHIP in, MoQ,
// LL-HLS and WHEP out, on its own MoQ relay core.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

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
