package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moqgate/moqgate/egress/hls"
	"github.com/moqgate/moqgate/internal/mediatest"
	"github.com/moqgate/moqgate/moq"
)

// hlsClientEnv, set in the environment, turns the test binary into the
// load generator of BenchmarkHLS (so that its CPU time is not counted as
// the server's): it runs the load described by the variable's JSON value
// and prints the hlsLoadResult as JSON.
const hlsClientEnv = "MOQGATE_BENCH_HLS_CLIENT"

func init() {
	// init, not TestMain: the load generator must not run the tests.
	spec := os.Getenv(hlsClientEnv)
	if spec == "" {
		return
	}
	var l hlsLoad
	if err := json.Unmarshal([]byte(spec), &l); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	res := l.run()
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// hlsLoad is one load run: Clients HTTP clients request Kind for Window.
type hlsLoad struct {
	Base    string // http://host:port/hls/live/bench/
	Kind    string // "playlist", "part" or "blocking"
	Clients int
	Warmup  time.Duration
	Window  time.Duration
}

type hlsLoadResult struct {
	Requests int64
	Errors   int64
	Bytes    int64
	P50, P99 time.Duration
	Window   time.Duration
}

var partURIRE = regexp.MustCompile(`#EXT-X-PART:DURATION=[0-9.]+,URI="([^"]+)"`)

// run generates the load: each client repeats its request as fast as the
// server answers ("blocking": like a player, a blocking reload for the
// next part each time).
func (l hlsLoad) run() hlsLoadResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: l.Clients + 10, MaxConnsPerHost: l.Clients + 10}}
	var latest atomic.Value // newest complete part URI
	latest.Store("")
	ctx, cancel := context.WithTimeout(context.Background(), l.Warmup+l.Window)
	defer cancel()
	refresh := func() {
		resp, err := client.Get(l.Base + "video1_stream.m3u8")
		if err != nil {
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := partURIRE.FindAllStringSubmatch(string(b), -1); len(m) > 0 {
			latest.Store(m[len(m)-1][1])
		}
	}
	refresh()
	go func() {
		for ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			refresh()
		}
	}()
	start := time.Now()
	measureFrom := start.Add(l.Warmup)
	var mu sync.Mutex
	var res hlsLoadResult
	var lat []time.Duration
	var wg sync.WaitGroup
	for range l.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var n, errs, bytes int64
			msn, part := -1, 0
			for ctx.Err() == nil {
				u := l.Base + "video1_stream.m3u8"
				switch l.Kind {
				case "part":
					u = l.Base + latest.Load().(string)
				case "blocking":
					if msn >= 0 {
						u += "?_HLS_msn=" + strconv.Itoa(msn) + "&_HLS_part=" + strconv.Itoa(part)
					}
				}
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if t0.Before(measureFrom) {
					if l.Kind == "blocking" {
						msn, part = nextPart(string(b))
					}
					continue
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				n++
				bytes += int64(len(b))
				mine = append(mine, time.Since(t0))
				if l.Kind == "blocking" {
					msn, part = nextPart(string(b))
				}
			}
			mu.Lock()
			res.Requests += n
			res.Errors += errs
			res.Bytes += bytes
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Window = time.Since(measureFrom)
	slices.Sort(lat)
	if len(lat) > 0 {
		res.P50, res.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return res
}

// nextPart is the part a player asks for after this playlist.
func nextPart(pl string) (msn, part int) {
	seq, segs := 0, strings.Count(pl, "#EXTINF:")
	if i := strings.Index(pl, "#EXT-X-MEDIA-SEQUENCE:"); i >= 0 {
		seq, _ = strconv.Atoi(strings.TrimSpace(strings.SplitN(pl[i+22:], "\n", 2)[0]))
	}
	last := strings.LastIndex(pl, "#EXTINF:")
	return seq + segs, strings.Count(pl[max(last, 0):], "#EXT-X-PART:")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHLS measures the LL-HLS server: requests per second per core
// for media playlists, parts and blocking playlist reloads with N
// concurrent HTTP clients:
//
//	go test ./bench/ -run '^$' -bench HLS -benchtime 1x
//
// The server (relay, HLS muxer, and a publisher playing a real H.264/AAC
// clip in real time through the ingest path) runs in this process; the
// clients (Go HTTP clients over loopback, keep-alive) run in a child
// process, so the CPU time measured here is the server's (the publisher
// and muxing add about the idle figure logged first). Each sub-benchmark
// is one 5 s window whatever b.N is. Metrics: req/s, req/s-per-core (per
// second of server CPU), server-cores in use, p50/p99 request latency.
// "blocking" clients behave like players: each waits for the next part,
// so its req/s is bounded by the part rate (5/s per client).
func BenchmarkHLS(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	clip, err := mediatest.LoadClip(mediatest.TestdataPath("fmp4_h264_aac.mp4"))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	relay := moq.NewRelay(moq.RelayConfig{Logger: log})
	srv := hls.New(hls.Config{Relay: relay, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	defer srv.Close()
	go clip.Publish(ctx, relay, "live/bench", mediatest.PublishOptions{})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	base := hs.URL + "/hls/live/bench/"
	if resp, err := http.Get(base + "index.m3u8"); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("first playlist: %v %v", resp, err)
	}
	// What publishing and muxing alone cost.
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(2 * time.Second)
	idle := float64(cpuTime()-c0) / float64(time.Since(t0))
	b.Logf("idle (publisher + muxer): %.3f cores", idle)

	window := 5 * time.Second
	if d := envDuration(b, envWindow); d > 0 {
		window = d
	}
	counts := []int{1, 10, 100}
	if !testing.Short() {
		counts = append(counts, 500)
	}
	for _, kind := range []string{"playlist", "part", "blocking"} {
		for _, n := range counts {
			b.Run(fmt.Sprintf("%s/clients=%d", kind, n), func(b *testing.B) {
				spec, _ := json.Marshal(hlsLoad{Base: base, Kind: kind, Clients: n, Warmup: time.Second, Window: window})
				cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
				cmd.Env = append(os.Environ(), hlsClientEnv+"="+string(spec))
				cmd.Stderr = os.Stderr
				out, err := cmd.StdoutPipe()
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				// The server's CPU over the client's measured window.
				time.Sleep(time.Second)
				c0, t0 := cpuTime(), time.Now()
				time.Sleep(window)
				cpu, wall := cpuTime()-c0, time.Since(t0)
				var res hlsLoadResult
				err = json.NewDecoder(bufio.NewReader(out)).Decode(&res)
				cmd.Wait()
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				rps := float64(res.Requests) / res.Window.Seconds()
				cores := float64(cpu) / float64(wall)
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(rps, "req/s")
				b.ReportMetric(rps/cores, "req/s-per-core")
				b.ReportMetric(cores, "server-cores")
				b.ReportMetric(float64(res.Bytes)/res.Window.Seconds()*8/1e6, "Mbit/s")
				b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(res.Errors), "errors")
			})
		}
	}
}
