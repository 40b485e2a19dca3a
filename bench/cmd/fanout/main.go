// Command fanout is the relay fan-out load generator of package bench,
// run by hand: one publisher and N raw-QUIC subscribers on one track.
//
// Without -relay it starts its own relay (moq.Server + moq.Relay) in a
// child process and measures that child's CPU time; with -relay it loads
// any relay, e.g. `moqgate serve --listen 127.0.0.1:4443`, and
// -relay-pid then names the process whose CPU time (/proc/PID/stat) is
// measured. -floor runs the plain quic-go floor (bench.RunFloor) right
// before every relay run, so both are measured in the same minute;
// -repeat runs everything several times and ends with the medians:
//
//	go run ./bench/cmd/fanout -n 1,10,100,500
//	go run ./bench/cmd/fanout -n 1,10,100 -floor -repeat 3
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
	"slices"
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
	traceDir := fs.String("relay-trace", "", "directory for runtime/trace files of the relay child over the window (relay-N.trace)")
	floor := fs.Bool("floor", false, "also measure the plain quic-go floor, before each relay run")
	repeat := fs.Int("repeat", 1, "runs of everything; the medians end the output")
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
	if (*profDir != "" || *traceDir != "") && *relayURL != "" {
		return errors.New("-relay-cpuprofile and -relay-trace need the relay child (no -relay)")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	results := make(map[string][]bench.FanoutResult)
	var keys []string
	record := func(key string, res bench.FanoutResult) {
		fmt.Println(key, res)
		if _, ok := results[key]; !ok {
			keys = append(keys, key)
		}
		results[key] = append(results[key], res)
	}
	for range max(*repeat, 1) {
		for _, n := range ns {
			cfg := bench.FanoutConfig{
				URL: *relayURL, Broadcast: *broadcast, Subscribers: n, Bitrate: *bitrate, FPS: *fps,
				Warmup: *warmup, Window: *window, DialConcurrency: *dials, Logger: log,
			}
			if *floor {
				res, err := runFloor(ctx, exe, cfg)
				if err != nil {
					return fmt.Errorf("floor, %d subscribers: %w", n, err)
				}
				record(fmt.Sprintf("floor n=%d", n), res)
			}
			res, err := runRelay(ctx, exe, cfg, *relayPID, *profDir, *traceDir)
			if err != nil {
				return fmt.Errorf("%d subscribers: %w", n, err)
			}
			record(fmt.Sprintf("moqgate n=%d", n), res)
		}
	}
	if *repeat > 1 {
		fmt.Println("medians:")
		for _, k := range keys {
			fmt.Println(k, medians(results[k]))
		}
	}
	return nil
}

// runFloor measures a fresh floor child.
func runFloor(ctx context.Context, exe string, cfg bench.FanoutConfig) (bench.FanoutResult, error) {
	fl, err := bench.StartRelayProcess(ctx, exe, os.Stderr, bench.FloorChildEnv+"=1")
	if err != nil {
		return bench.FanoutResult{}, err
	}
	defer fl.Close()
	cfg.RelayStats = fl.Stats
	return bench.RunFloor(ctx, fl.Addr, cfg)
}

// runRelay measures the relay at cfg.URL, or a fresh relay child (a fresh
// one per run, so runs don't disturb each other).
func runRelay(ctx context.Context, exe string, cfg bench.FanoutConfig, pid int, profDir, traceDir string) (bench.FanoutResult, error) {
	if cfg.URL != "" {
		if pid > 0 {
			cfg.RelayStats = func() (bench.RelayStats, error) {
				cpu, err := bench.ProcCPU(pid)
				return bench.RelayStats{CPU: cpu}, err
			}
		}
		return bench.RunFanout(ctx, cfg)
	}
	relay, err := bench.StartRelayProcess(ctx, exe, os.Stderr)
	if err != nil {
		return bench.FanoutResult{}, err
	}
	defer relay.Close()
	cfg.URL = "moqt://" + relay.Addr + "/"
	cfg.RelayStats = relay.Stats
	path := func(dir, ext string) (string, error) {
		return filepath.Abs(filepath.Join(dir, fmt.Sprintf("relay-%d.%s", cfg.Subscribers, ext)))
	}
	var start, end []func() error
	if profDir != "" {
		p, err := path(profDir, "pprof")
		if err != nil {
			return bench.FanoutResult{}, err
		}
		start = append(start, func() error { return relay.StartProfile(p) })
		end = append(end, relay.StopProfile)
	}
	if traceDir != "" {
		p, err := path(traceDir, "trace")
		if err != nil {
			return bench.FanoutResult{}, err
		}
		start = append(start, func() error { return relay.StartTrace(p) })
		end = append(end, relay.StopTrace)
	}
	cfg.WindowStart, cfg.WindowEnd = all(start), all(end)
	return bench.RunFanout(ctx, cfg)
}

func all(fns []func() error) func() error {
	if len(fns) == 0 {
		return nil
	}
	return func() error {
		var errs []error
		for _, f := range fns {
			errs = append(errs, f())
		}
		return errors.Join(errs...)
	}
}

// medians summarises repeated runs: the median of each figure.
func medians(rs []bench.FanoutResult) string {
	med := func(f func(bench.FanoutResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	msf := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return fmt.Sprintf("runs=%d p50=%.2f ms p99=%.2f ms max=%.2f ms delivered=%.1f%% Gbit/s-per-core=%.2f relay-cores=%.2f other-cores=%.2f",
		len(rs), med(func(r bench.FanoutResult) float64 { return msf(r.P50) }),
		med(func(r bench.FanoutResult) float64 { return msf(r.P99) }),
		med(func(r bench.FanoutResult) float64 { return msf(r.Max) }),
		med(func(r bench.FanoutResult) float64 { return 100 * r.DeliveredRatio() }),
		med(func(r bench.FanoutResult) float64 { return 1 / r.RelayCPUPerGbit() }),
		med(bench.FanoutResult.RelayCores), med(bench.FanoutResult.OtherCores))
}
