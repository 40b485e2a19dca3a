package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

// envWHEPViewers lists the viewer counts of BenchmarkWHEP (default 100).
const envWHEPViewers = "MOQGATE_BENCH_WHEP_N"

// BenchmarkWHEP measures moqgate's WebRTC side against a `moqgate serve`
// child process (built from this tree): the latency WHIP→WHEP and
// RTMP→WHEP add, and WHEP egress per core of server CPU with N pion
// viewers in this process watching a 2 Mbit/s 720p H.264 stream:
//
//	go test ./bench/ -run '^$' -bench WHEP -benchtime 1x
//
// Metrics: latency-p50-ms, latency-p99-ms, Gbit/s, Gbit/s-per-core (server
// CPU from /proc/PID/stat over the window), server-cores. Each
// sub-benchmark is one run whatever b.N is. cmd/whepload runs the same by
// hand.
func BenchmarkWHEP(b *testing.B) {
	browsertest.RequirePeer(b, browsertest.PeerFFmpeg)
	dir := b.TempDir()
	bin := filepath.Join(dir, "moqgate")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/moqgate/moqgate/cmd/moqgate").CombinedOutput(); err != nil {
		b.Fatalf("build moqgate: %v\n%s", err, out)
	}
	m, err := LoadWHEPMedia(dir, 1280, 720, 30, 2000, 10)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	window := 10 * time.Second
	if d := envDuration(b, envWindow); d > 0 {
		window = d
	}
	for _, rtmp := range []bool{false, true} {
		name := "latency/whip"
		if rtmp {
			name = "latency/rtmp"
		}
		b.Run(name, func(b *testing.B) {
			g, err := StartGate(ctx, bin, os.Stderr)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			r, err := MeasureLatency(ctx, g, m, rtmp, 2*time.Second, window)
			if err != nil {
				b.Fatal(err)
			}
			b.Log(r)
			b.ReportMetric(ms(r.P50), "latency-p50-ms")
			b.ReportMetric(ms(r.P99), "latency-p99-ms")
		})
	}
	counts := []int{100}
	if v := os.Getenv(envWHEPViewers); v != "" {
		counts = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("%s: bad count %q", envWHEPViewers, f)
			}
			counts = append(counts, n)
		}
	}
	for _, n := range counts {
		b.Run(fmt.Sprintf("egress/viewers=%d", n), func(b *testing.B) {
			g, err := StartGate(ctx, bin, os.Stderr)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			r, err := RunLoad(ctx, g, m, LoadConfig{Viewers: n, Warmup: 3 * time.Second, Window: window})
			if err != nil {
				b.Fatal(err)
			}
			b.Log(r)
			b.ReportMetric(r.Gbps(), "Gbit/s")
			b.ReportMetric(r.GbpsPerCore(), "Gbit/s-per-core")
			b.ReportMetric(r.ServerCores(), "server-cores")
		})
	}
}
