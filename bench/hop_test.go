package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envHopSubs lists BenchmarkRelayHop's edge subscriber counts, e.g. "1,10"
// (default 1,10,100).
const envHopSubs = "MOQGATE_BENCH_HOP_N"

// BenchmarkRelayHop measures one relay hop (issue 6): the latency an edge
// relay adds (p50/p99) and the upstream bandwidth from origin to edge for
// one 2 Mbit/s track (30 objects/s, one group per second) with 1, 10 and
// 100 subscribers at the edge:
//
//	go test ./bench/ -run '^$' -bench RelayHop -benchtime 1x
//
// The origin and the edge (pulling from the origin as its upstream) are
// relay children; the publisher, a control subscriber at the origin and
// the edge subscribers run here, so they share one clock. Each
// sub-benchmark is one measurement over a steady-state window
// (MOQGATE_BENCH_WINDOW, MOQGATE_BENCH_WARMUP) whatever b.N is. Metrics:
// publish-to-receive p50/p99 at the edge and at the origin, their
// difference (hop-p50-ms, hop-p99-ms), the published and upstream payload
// kB/s and their ratio as the origin counts them (1 = one copy, whatever
// N), edge delivered-% and the cores of each relay, of the load generator
// and of anything else on the machine (other-cores > 0: the run was
// disturbed). With many subscribers the load generator competes with the
// relays for the cores, which shows in the edge latency.
func BenchmarkRelayHop(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	counts := []int{1, 10, 100}
	if v := os.Getenv(envHopSubs); v != "" {
		counts = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("%s: bad subscriber count %q", envHopSubs, f)
			}
			counts = append(counts, n)
		}
	}
	window, warmup := envDuration(b, envWindow), envDuration(b, envWarmup)
	for _, n := range counts {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			origin, err := StartRelayProcess(ctx, exe, os.Stderr)
			if err != nil {
				b.Fatal(err)
			}
			defer origin.Close()
			edge, err := StartRelayProcess(ctx, exe, os.Stderr, RelayUpstreamEnv+"=moqt://"+origin.Addr+"/?insecure=1")
			if err != nil {
				b.Fatal(err)
			}
			defer edge.Close()
			cfg := HopConfig{
				FanoutConfig: FanoutConfig{
					URL:          "moqt://" + origin.Addr + "/",
					Subscribers:  n,
					Window:       window,
					Warmup:       warmup,
					SetupTimeout: time.Minute,
					RelayStats:   origin.Stats,
					Logger:       slog.New(slog.DiscardHandler),
				},
				EdgeURL:        "moqt://" + edge.Addr + "/",
				EdgeStats:      edge.Stats,
				OriginSessions: origin.SessionStats,
			}
			b.ResetTimer()
			res, err := RunHop(ctx, cfg)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.Log(res)
			b.ReportMetric(0, "ns/op") // one fixed-length measurement, not per-op
			b.ReportMetric(float64(n), "subscribers")
			b.ReportMetric(ms(res.Edge.P50), "edge-p50-ms")
			b.ReportMetric(ms(res.Edge.P99), "edge-p99-ms")
			b.ReportMetric(ms(res.Origin.P50), "origin-p50-ms")
			b.ReportMetric(ms(res.Origin.P99), "origin-p99-ms")
			b.ReportMetric(ms(res.HopP50()), "hop-p50-ms")
			b.ReportMetric(ms(res.HopP99()), "hop-p99-ms")
			b.ReportMetric(res.PublishedBps()/1e3, "pub-kB/s")
			b.ReportMetric(res.UpstreamBps()/1e3, "upstream-kB/s")
			b.ReportMetric(res.UpstreamRatio(), "upstream/pub")
			b.ReportMetric(100*res.EdgeDeliveredRatio(), "edge-delivered-%")
			b.ReportMetric(res.cores(res.OriginRelay.CPU), "origin-cores")
			b.ReportMetric(res.cores(res.EdgeRelay.CPU), "edge-cores")
			b.ReportMetric(res.cores(res.LoadGenCPU), "loadgen-cores")
			b.ReportMetric(res.OtherCores(), "other-cores")
		})
	}
}
