package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary double as the relay child (see
// RelayChildEnv): BenchmarkFanout re-executes it.
func TestMain(m *testing.M) {
	MaybeRunRelayChild()
	os.Exit(m.Run())
}

// Environment knobs of BenchmarkFanout.
const (
	// envSubs lists the subscriber counts, e.g. "1,10,100" (default
	// 1,10,100,500; -short drops the counts above 100).
	envSubs = "MOQGATE_BENCH_FANOUT_N"
	// envWindow is the measured steady state (default 5s), envWarmup the
	// wait before it (default 2s).
	envWindow = "MOQGATE_BENCH_WINDOW"
	envWarmup = "MOQGATE_BENCH_WARMUP"
	// envProfile names a directory for CPU profiles of the relay over the
	// window: relay-N.pprof for every N.
	envProfile = "MOQGATE_BENCH_RELAY_PROFILE"
)

func subscriberCounts(b *testing.B) []int {
	counts := []int{1, 10, 100, 500}
	if v := os.Getenv(envSubs); v != "" {
		counts = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("%s: bad subscriber count %q", envSubs, f)
			}
			counts = append(counts, n)
		}
	}
	if testing.Short() {
		short := counts[:0:0]
		for _, n := range counts {
			if n <= 100 {
				short = append(short, n)
			}
		}
		counts = short
	}
	return counts
}

func envDuration(b *testing.B, name string) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}

// BenchmarkFanout measures relay fan-out of one 2 Mbit/s track (30
// objects/s, one group per second) to N raw-QUIC subscribers:
//
//	go test ./bench/ -run '^$' -bench Fanout -benchtime 1x [-short]
//
// The relay (moq.Server + moq.Relay) runs in a child process; the
// publisher and the subscribers run here. Each sub-benchmark is one
// measurement over a steady-state window whatever b.N is, so use
// -benchtime 1x. Metrics: delivered payload Mbit/s summed over the
// subscribers, delivered-% of what was published, relay CPU seconds per
// delivered Gbit (and its inverse Gbit/s-per-core), relay,
// load-generator and other (anything else on the machine) cores in use,
// relay allocations and QUIC packets (received, sent) per delivered
// object, and p50/p99/max publish-to-receive latency, plus the p99 of
// all but the first (keyframe-like, 6x average) object of each group.
// Right before it, the same load runs against the plain quic-go floor
// (RunFloor, a child process too): floor-* metrics, and the relay's p50
// over the floor's and its p99 as a multiple of the floor's.
// Relay and load generator share the machine's cores: with many
// subscribers the load generator's own CPU use inflates the latency
// figures, and other-cores > 0 means the run was disturbed.
func BenchmarkFanout(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	profDir := os.Getenv(envProfile)
	window, warmup := envDuration(b, envWindow), envDuration(b, envWarmup)
	for _, n := range subscriberCounts(b) {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			relay, err := StartRelayProcess(ctx, exe, os.Stderr)
			if err != nil {
				b.Fatal(err)
			}
			defer relay.Close()
			cfg := FanoutConfig{
				URL:         "moqt://" + relay.Addr + "/",
				Subscribers: n,
				Window:      window,
				Warmup:      warmup,
				RelayStats:  relay.Stats,
				Logger:      slog.New(slog.DiscardHandler),
			}
			if profDir != "" {
				path, err := filepath.Abs(filepath.Join(profDir, fmt.Sprintf("relay-%d.pprof", n)))
				if err != nil {
					b.Fatal(err)
				}
				cfg.WindowStart = func() error { return relay.StartProfile(path) }
				cfg.WindowEnd = relay.StopProfile
			}
			floor := runFloorChild(ctx, b, exe, cfg)
			b.ResetTimer()
			res, err := RunFanout(ctx, cfg)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.Log(res)
			b.ReportMetric(0, "ns/op") // one fixed-length measurement, not per-op
			b.ReportMetric(float64(n), "subscribers")
			b.ReportMetric(res.DeliveredMbps(), "Mbit/s")
			b.ReportMetric(100*res.DeliveredRatio(), "delivered-%")
			b.ReportMetric(res.RelayCPUPerGbit(), "cpu-s/Gbit")
			b.ReportMetric(1/res.RelayCPUPerGbit(), "Gbit/s-per-core")
			b.ReportMetric(res.RelayCores(), "relay-cores")
			b.ReportMetric(res.LoadGenCores(), "loadgen-cores")
			b.ReportMetric(res.OtherCores(), "other-cores")
			b.ReportMetric(res.RelayAllocsPerObject(), "relay-allocs/obj")
			in, out := res.PacketsPerObject()
			b.ReportMetric(in, "pkts-in/obj")
			b.ReportMetric(out, "pkts-out/obj")
			b.ReportMetric(ms(res.P50), "p50-ms")
			b.ReportMetric(ms(res.P99), "p99-ms")
			b.ReportMetric(ms(res.Max), "max-ms")
			b.ReportMetric(ms(res.DeltaP99), "delta-p99-ms")
			b.ReportMetric(ms(floor.P50), "floor-p50-ms")
			b.ReportMetric(ms(floor.P99), "floor-p99-ms")
			b.ReportMetric(1/floor.RelayCPUPerGbit(), "floor-Gbit/s-per-core")
			b.ReportMetric(floor.OtherCores(), "floor-other-cores")
			b.ReportMetric(ms(res.P50-floor.P50), "p50-over-floor-ms")
			b.ReportMetric(float64(res.P99)/float64(floor.P99), "p99-vs-floor")
		})
	}
}

// runFloorChild measures the plain quic-go floor with cfg's shape.
func runFloorChild(ctx context.Context, b *testing.B, exe string, cfg FanoutConfig) FanoutResult {
	fl, err := StartRelayProcess(ctx, exe, os.Stderr, FloorChildEnv+"=1")
	if err != nil {
		b.Fatal(err)
	}
	defer fl.Close()
	cfg.RelayStats, cfg.WindowStart, cfg.WindowEnd = fl.Stats, nil, nil
	res, err := RunFloor(ctx, fl.Addr, cfg)
	if err != nil {
		b.Fatalf("floor: %v", err)
	}
	b.Log("floor: ", res)
	return res
}
