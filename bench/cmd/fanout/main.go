// Command fanout is the relay fan-out load generator of package bench,
// run by hand: one publisher and N raw-QUIC subscribers on one track.
//
// Without -relay it starts its own relay (moq.Server + moq.Relay) in a
// child process and measures that child's CPU time; with -relay it loads
// any relay, e.g. `moqgate serve --listen 127.0.0.1:4443`, and
// -relay-pid then names the process whose CPU time (/proc/PID/stat) is
// measured:
//
//	go run ./bench/cmd/fanout -n 1,10,100,500
//	go run ./bench/cmd/fanout -n 100 -relay moqt://127.0.0.1:4443/ -relay-pid 1234
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moqgate/moqgate/bench"
)

func main() {
	bench.MaybeRunRelayChild()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "fanout:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	counts := fs.String("n", "1,10,100", "subscriber counts, comma separated (one run each)")
	relayURL := fs.String("relay", "", "relay URL (moqt://HOST:PORT/); empty starts a relay child")
	relayPID := fs.Int("relay-pid", 0, "with -relay: PID of the relay, for its CPU time")
	broadcast := fs.String("broadcast", "", "broadcast path (default bench/fanout)")
	bitrate := fs.Int("bitrate", 2_000_000, "published payload bit rate (bit/s)")
	fps := fs.Int("fps", 30, "objects per second")
	warmup := fs.Duration("warmup", 2*time.Second, "wait after every subscriber receives, before measuring")
	window := fs.Duration("window", 5*time.Second, "measured steady state")
	dials := fs.Int("dial-concurrency", 16, "subscriber handshakes in flight")
	profDir := fs.String("relay-cpuprofile", "", "directory for CPU profiles of the relay child over the window (relay-N.pprof)")
	verbose := fs.Bool("v", false, "log progress")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var ns []int
	for f := range strings.SplitSeq(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-n: bad subscriber count %q", f)
		}
		ns = append(ns, n)
	}
	if *profDir != "" && *relayURL != "" {
		return errors.New("-relay-cpuprofile needs the relay child (no -relay)")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for _, n := range ns {
		cfg := bench.FanoutConfig{
			URL: *relayURL, Broadcast: *broadcast, Subscribers: n, Bitrate: *bitrate, FPS: *fps,
			Warmup: *warmup, Window: *window, DialConcurrency: *dials, Logger: log,
		}
		var relay *bench.RelayProcess
		if *relayURL == "" {
			// A fresh relay per run, so runs don't disturb each other.
			if relay, err = bench.StartRelayProcess(ctx, exe, os.Stderr); err != nil {
				return err
			}
			cfg.URL = "moqt://" + relay.Addr + "/"
			cfg.RelayStats = relay.Stats
			if *profDir != "" {
				path, err := filepath.Abs(filepath.Join(*profDir, fmt.Sprintf("relay-%d.pprof", n)))
				if err != nil {
					return err
				}
				cfg.WindowStart = func() error { return relay.StartProfile(path) }
				cfg.WindowEnd = relay.StopProfile
			}
		} else if *relayPID > 0 {
			pid := *relayPID
			cfg.RelayStats = func() (bench.RelayStats, error) {
				cpu, err := bench.ProcCPU(pid)
				return bench.RelayStats{CPU: cpu}, err
			}
		}
		res, err := bench.RunFanout(ctx, cfg)
		if relay != nil {
			relay.Close()
		}
		if err != nil {
			return fmt.Errorf("%d subscribers: %w", n, err)
		}
		fmt.Println(res)
	}
	return nil
}
