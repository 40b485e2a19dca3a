package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/config"
	"github.com/moqgate/moqgate/internal/rtctest"
)

// Environment knobs of BenchmarkEgressCPU.
const (
	// egressEnvWindow is each phase's measured window (default 10s);
	// egressEnvWarmup the wait before each (default 2s).
	egressEnvWindow = "MOQGATE_BENCH_EGRESS_WINDOW"
	egressEnvWarmup = "MOQGATE_BENCH_EGRESS_WARMUP"
	// egressEnvAudio=0 publishes video only (no AAC, so no transcoder).
	egressEnvAudio = "MOQGATE_BENCH_EGRESS_AUDIO"
	// egressEnvBitrate is the video bit rate in bit/s (default 4000000).
	egressEnvBitrate = "MOQGATE_BENCH_EGRESS_BITRATE"
	// egressEnvChild carries the load generator's configuration (JSON) to
	// the child process; TestEgressLoadGen runs only when it is set.
	egressEnvChild = "MOQGATE_BENCH_EGRESS_CHILD"
)

const egressPath = "bench/egress"

// The phases, in order: what is attached to the broadcast.
var egressPhases = []string{"idle", "hls", "hls+whep"}

// egressConfig configures the load generator of BenchmarkEgressCPU.
type egressConfig struct {
	rtmpLatConfig        // the publish, Warmup and Window (each phase)
	Web           string // http://host:port of moqgate's web listener
	Path          string
}

// egressPhase is one measured window, as the load generator saw it.
type egressPhase struct {
	Start, End int64  // UnixNano
	Bytes      uint64 // RTMP bytes written in the window
	LoadGenCPU time.Duration
}

// egressResult is what the load generator measured.
type egressResult struct {
	Phases []egressPhase
	// HLS holds the video parts the LL-HLS reader received (all phases).
	HLS []hlsPartTimes
	// HLSBad counts video parts without a readable send time, HLSErrors
	// failed requests; HLSAudioParts the audio parts received.
	HLSBad, HLSErrors, HLSAudioParts int
	// WHEP is the latency of the video frames the WHEP viewer received in
	// the last phase; WHEPAudioPackets its audio (Opus) packets.
	WHEP             []time.Duration
	WHEPAudioPackets int64
}

// hlsPartTimes are the send times (UnixNano) of a video part's first and
// last frame, and when the reader had the whole part.
type hlsPartTimes struct{ First, Last, Recv int64 }

// egressSample is what the benchmark process samples at each mark.
type egressSample struct {
	at          time.Time
	cpu, ffmpeg time.Duration // this process; its ffmpeg children
	alloc       uint64        // runtime.MemStats.TotalAlloc
}

// BenchmarkEgressCPU measures moqgate's CPU per Mbit/s of RTMP ingest with
// nothing, an LL-HLS reader, then an LL-HLS reader and a WHEP viewer
// attached (issue 11):
//
//	go test ./bench/ -run '^$' -bench EgressCPU -benchtime 1x -count 3
//
// moqgate runs in-process as in BenchmarkRTMPToMoQLatency (server.New,
// default configuration, loopback, ephemeral ports, WebRTC on
// 127.0.0.1:0). A child process (this test binary re-executed) publishes
// that benchmark's synthetic stream over RTMP, 1280x720-like H.264 at 30
// fps, 4 Mbit/s, a key frame every second at 6x the average frame, each
// frame stamped with its send time in an SEI, plus real AAC-LC (a 48 kHz
// stereo tone from ffmpeg, about 128 kbit/s), since WHEP viewers make
// moqgate transcode AAC to Opus with an ffmpeg child. The child also runs
// the viewers, so their CPU is not counted: an LL-HLS reader that behaves
// like a player (multivariant playlist, then for the video and the audio
// playlist: init segment, blocking playlist reloads for the next part,
// every part fetched), then in addition a pion WHEP viewer
// (internal/rtctest). Three windows, one per phase, each after a warm-up.
//
// CPU is this process's (getrusage: the server alone) over each window;
// the ffmpeg transcoder's, a child of this process, is read from /proc and
// reported apart (ffmpeg-cpu-ms/Mbit, last phase). Both are divided by
// the RTMP bytes the publisher wrote in the window (chunk headers
// included). Metrics:
//   - idle-cpu-ms/Mbit, hls-cpu-ms/Mbit, hls+whep-cpu-ms/Mbit: server CPU
//     in ms per second per Mbit/s in, ffmpeg excluded; ffmpeg-cpu-ms/Mbit;
//   - idle-alloc-B/B, hls-alloc-B/B, hls+whep-alloc-B/B: bytes the Go heap
//     allocated per RTMP byte in (a proxy for payload copies: copies into
//     reused buffers do not show);
//   - hls-part-p50-ms/-p99-ms: from the RTMP write of a part's first frame
//     to the reader having the part (what a player can show at the
//     earliest; includes the part duration), hls-last-p50-ms: the same
//     for the part's last frame (what moqgate adds beyond the part), over
//     the hls phase;
//   - whep-p50-ms/-p99-ms: from the RTMP write of a frame to the WHEP
//     viewer having all of it, over the last phase;
//   - Mbit/s in (mean of the windows), loadgen-cores.
//
// MOQGATE_BENCH_EGRESS_AUDIO=0 publishes video only. One measurement
// whatever b.N is: use -benchtime 1x, and -count 3 for a median.
func BenchmarkEgressCPU(b *testing.B) {
	browsertest.RequirePeer(b, browsertest.PeerFFmpeg)
	window, warmup := rtmpLatEnvDuration(b, egressEnvWindow, 10*time.Second), rtmpLatEnvDuration(b, egressEnvWarmup, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+3*window+6*warmup)
	defer cancel()
	srv := rtmpLatStartServer(b, ctx, func(c *config.Config) { c.WebRTC.UDP = "127.0.0.1:0" })
	cfg := egressConfig{
		rtmpLatConfig: rtmpLatConfig{
			RTMPURL:      "rtmp://" + srv.RTMPAddr.String() + "/" + egressPath,
			VideoBitrate: rtmpLatEnvBitrateOr(b, egressEnvBitrate, 4_000_000), FPS: 30, KeyFactor: 6,
			Audio:  os.Getenv(egressEnvAudio) != "0",
			Warmup: warmup, Window: window,
		},
		Web:  "http://" + srv.WebAddr.String(),
		Path: egressPath,
	}

	b.ResetTimer()
	run := func(ctx context.Context, emit func(string)) error { return egressLoadGen(ctx, cfg, emit) }
	lines, wait, err := rtmpLatStartChild(ctx, "TestEgressLoadGen", egressEnvChild, cfg, run, false)
	if err != nil {
		b.Fatal(err)
	}
	ff := &ffmpegChildren{seen: map[int]time.Duration{}}
	marks := map[string]egressSample{}
	res := &egressResult{}
	got := rtmpLatCollect(b, lines, wait, func(m string) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		marks[m] = egressSample{at: time.Now(), cpu: rtmpLatSelfCPU(), ffmpeg: ff.cpu(), alloc: ms.TotalAlloc}
	}, res)
	b.StopTimer()
	if !got || len(res.Phases) != len(egressPhases) {
		b.Fatal("load generator reported no (complete) result")
	}
	egressReport(b, cfg, marks, res, len(ff.seen))
}

// egressReport logs and reports the metrics of BenchmarkEgressCPU.
func egressReport(b *testing.B, cfg egressConfig, marks map[string]egressSample, res *egressResult, ffmpegProcs int) {
	var mbpsSum, loadGenSum float64
	for i, name := range egressPhases {
		s, e := marks[name+"-start"], marks[name+"-end"]
		if s.at.IsZero() || e.at.IsZero() {
			b.Fatalf("load generator did not mark the %s window", name)
		}
		ph := res.Phases[i]
		wall := time.Duration(ph.End - ph.Start).Seconds()
		if d := e.at.Sub(s.at).Seconds(); d < 0.9*wall || d > 1.1*wall {
			// The marks must reach this process as they are made.
			b.Fatalf("%s window: %.3f s here, %.3f s in the load generator", name, d, wall)
		}
		mbps := float64(ph.Bytes) * 8 / 1e6 / wall
		cores := (e.cpu - s.cpu).Seconds() / e.at.Sub(s.at).Seconds()
		ffCores := (e.ffmpeg - s.ffmpeg).Seconds() / e.at.Sub(s.at).Seconds()
		allocPerByte := float64(e.alloc-s.alloc) / float64(max(ph.Bytes, 1))
		b.Logf("%s: %.3f Mbit/s in; moqgate %.1f ms/s (%.2f ms per Mbit/s), ffmpeg %.1f ms/s; %.1f B allocated per byte in",
			name, mbps, 1000*cores, 1000*cores/mbps, 1000*ffCores, allocPerByte)
		b.ReportMetric(1000*cores/mbps, name+"-cpu-ms/Mbit")
		b.ReportMetric(allocPerByte, name+"-alloc-B/B")
		if i == len(egressPhases)-1 && cfg.Audio {
			b.ReportMetric(1000*ffCores/mbps, "ffmpeg-cpu-ms/Mbit")
		}
		mbpsSum += mbps
		loadGenSum += ph.LoadGenCPU.Seconds() / wall
	}
	b.ReportMetric(0, "ns/op") // one fixed-length measurement, not per-op
	b.ReportMetric(mbpsSum/float64(len(egressPhases)), "Mbit/s")
	b.ReportMetric(loadGenSum/float64(len(egressPhases)), "loadgen-cores")

	hls := res.Phases[1]
	var first, last []time.Duration
	for _, p := range res.HLS {
		if p.First >= hls.Start && p.First < hls.End {
			first = append(first, time.Duration(p.Recv-p.First))
			last = append(last, time.Duration(p.Recv-p.Last))
		}
	}
	f, l, w := rtmpLatSummary(first), rtmpLatSummary(last), rtmpLatSummary(res.WHEP)
	b.Logf("LL-HLS: %d video parts in the hls window, first frame %s; last frame %s; %d audio parts in all, %d bad parts, %d failed requests",
		len(first), f, l, res.HLSAudioParts, res.HLSBad, res.HLSErrors)
	b.Logf("WHEP: %d video frames in the last window, %s; %d audio packets; %d ffmpeg processes seen", len(res.WHEP), w, res.WHEPAudioPackets, ffmpegProcs)
	if len(first) == 0 || len(res.WHEP) == 0 {
		b.Fatal("no LL-HLS part or no WHEP frame measured")
	}
	if res.HLSBad > 0 {
		b.Errorf("%d LL-HLS video parts without a readable send time", res.HLSBad)
	}
	if cfg.Audio && (res.WHEPAudioPackets == 0 || res.HLSAudioParts == 0) {
		b.Errorf("audio missing: %d WHEP audio packets, %d LL-HLS audio parts", res.WHEPAudioPackets, res.HLSAudioParts)
	}
	b.ReportMetric(rtmpLatMS(f.p50), "hls-part-p50-ms")
	b.ReportMetric(rtmpLatMS(f.p99), "hls-part-p99-ms")
	b.ReportMetric(rtmpLatMS(l.p50), "hls-last-p50-ms")
	b.ReportMetric(rtmpLatMS(w.p50), "whep-p50-ms")
	b.ReportMetric(rtmpLatMS(w.p99), "whep-p99-ms")
}

// ffmpegChildren finds this process's ffmpeg children (moqgate's Opus
// transcoder) in /proc.
type ffmpegChildren struct {
	seen map[int]time.Duration // by PID: the last CPU time read
}

// cpu returns the CPU time of the ffmpeg children alive now plus, for
// those seen before that have exited, the last figure read.
func (f *ffmpegChildren) cpu() time.Duration {
	self := os.Getpid()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(ffmpeg") {
			continue
		}
		fields := strings.Fields(s[i+1:]) // state, ppid, ...
		if len(fields) < 2 || fields[1] != strconv.Itoa(self) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if _, ok := f.seen[pid]; !ok {
			f.seen[pid] = 0
		}
	}
	var sum time.Duration
	for pid, last := range f.seen {
		if d, err := schedCPU(pid); err == nil && d >= last {
			f.seen[pid], last = d, d
		}
		sum += last
	}
	return sum
}

// schedCPU returns the time the threads of a process now alive have run,
// in ns from /proc/PID/task/TID/schedstat: the transcoder uses little, in
// bursts, which /proc/PID/stat's 10 ms ticks miss.
func schedCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no tasks of %d", pid)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// TestEgressLoadGen is BenchmarkEgressCPU's load generator when the test
// binary is re-executed with egressEnvChild set; otherwise it is skipped.
func TestEgressLoadGen(t *testing.T) {
	v := os.Getenv(egressEnvChild)
	if v == "" {
		t.Skip("load generator of BenchmarkEgressCPU")
	}
	var cfg egressConfig
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+3*cfg.Window+6*cfg.Warmup)
	defer cancel()
	if err := egressLoadGen(ctx, cfg, rtmpLatEmitter()); err != nil {
		t.Fatal(err)
	}
}

// egressLoadGen publishes and attaches the viewers phase after phase, as
// described at BenchmarkEgressCPU. emit reports "mark PHASE-start" and
// "mark PHASE-end" around each window, then "result JSON".
func egressLoadGen(ctx context.Context, cfg egressConfig, emit func(string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var aac [][]byte
	if cfg.Audio {
		dir, err := os.MkdirTemp("", "moqgate-egress-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if aac, _, err = rtctest.EncodeAAC(dir, 10); err != nil {
			return err
		}
	}
	ps, err := rtmpLatPublish(ctx, cfg.rtmpLatConfig, aac)
	if err != nil {
		return err
	}
	defer ps.close()
	var res egressResult
	// measure runs one window; atStart, if set, is called as it starts.
	measure := func(name string, atStart func()) error {
		if err := ps.warmup(); err != nil {
			return err
		}
		if atStart != nil {
			atStart()
		}
		emit("mark " + name + "-start")
		ph := egressPhase{Start: time.Now().UnixNano(), Bytes: ps.conn.BytesSent(), LoadGenCPU: rtmpLatSelfCPU()}
		if err := ps.sleep(cfg.Window); err != nil {
			return err
		}
		ph.End, ph.Bytes, ph.LoadGenCPU = time.Now().UnixNano(), ps.conn.BytesSent()-ph.Bytes, rtmpLatSelfCPU()-ph.LoadGenCPU
		emit("mark " + name + "-end")
		res.Phases = append(res.Phases, ph)
		return nil
	}

	if err := measure(egressPhases[0], nil); err != nil {
		return err
	}

	hr := newHLSReader(cfg.Web + "/hls/" + cfg.Path + "/")
	hlsCtx, hlsCancel := context.WithCancel(ctx)
	defer hlsCancel()
	hlsDone := make(chan error, 1)
	go func() { hlsDone <- hr.run(hlsCtx) }()
	if err := egressWait(ctx, "a first LL-HLS video part", func() bool { return hr.videoParts() > 0 }); err != nil {
		return err
	}
	if err := measure(egressPhases[1], nil); err != nil {
		return err
	}

	v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: cfg.Web + "/whep/" + cfg.Path})
	if err != nil {
		return fmt.Errorf("WHEP: %w", err)
	}
	defer v.Close()
	if err := egressWait(ctx, "WHEP media", func() bool {
		st := v.Stats()
		return st["video"].Frames > 0 && (!cfg.Audio || st["audio"].Packets > 0)
	}); err != nil {
		return err
	}
	var n0 int
	if err := measure(egressPhases[2], func() { n0 = len(v.Stats()["video"].Latencies) }); err != nil {
		return err
	}
	st := v.Stats()
	res.WHEP, res.WHEPAudioPackets = st["video"].Latencies[n0:], st["audio"].Packets
	// The benchmark process samples the server and its transcoder at the
	// mark: leaving at once would race it (the transcoder stops with the
	// broadcast).
	if err := ps.sleep(time.Second); err != nil {
		return err
	}
	v.Close()
	hlsCancel()
	if err := <-hlsDone; err != nil {
		return fmt.Errorf("LL-HLS reader: %w", err)
	}
	res.HLS, res.HLSBad, res.HLSErrors, res.HLSAudioParts = hr.result()
	if err := ps.stop(); err != nil {
		return err
	}
	js, err := json.Marshal(res)
	if err != nil {
		return err
	}
	emit("result " + string(js))
	return nil
}

// egressWait polls ok for up to 20 s.
func egressWait(ctx context.Context, what string, ok func() bool) error {
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within 20 s", what)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// hlsReader reads an LL-HLS stream like a player: the multivariant
// playlist, then each media playlist (video and audio) with blocking
// reloads, fetching its init segment and every new part.
type hlsReader struct {
	base   *url.URL
	client *http.Client

	mu         sync.Mutex
	parts      []hlsPartTimes
	audioParts int
	bad, errs  int
}

func newHLSReader(base string) *hlsReader {
	u, _ := url.Parse(base)
	return &hlsReader{base: u, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
}

func (r *hlsReader) videoParts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.parts)
}

func (r *hlsReader) result() ([]hlsPartTimes, int, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.parts, r.bad, r.errs, r.audioParts
}

// run reads until ctx ends; it fails only if the stream never shows up.
func (r *hlsReader) run(ctx context.Context) error {
	var mv *playlist.Multivariant
	deadline := time.Now().Add(20 * time.Second)
	for mv == nil {
		if b, err := r.get(ctx, r.base.ResolveReference(&url.URL{Path: "index.m3u8"})); err == nil {
			pl, err := playlist.Unmarshal(b)
			if err != nil {
				return fmt.Errorf("multivariant playlist: %w", err)
			}
			if mv, _ = pl.(*playlist.Multivariant); mv == nil || len(mv.Variants) == 0 {
				return errors.New("index.m3u8 is not a multivariant playlist")
			}
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("multivariant playlist: %w", err)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	uris := []string{mv.Variants[0].URI}
	for _, rd := range mv.Renditions {
		if rd.URI != nil && *rd.URI != uris[0] {
			uris = append(uris, *rd.URI)
		}
	}
	var wg sync.WaitGroup
	for i, u := range uris {
		ref, err := url.Parse(u)
		if err != nil {
			return err
		}
		wg.Go(func() { r.follow(ctx, r.base.ResolveReference(ref), i == 0) })
	}
	wg.Wait()
	return nil
}

// follow reads one media playlist until ctx ends.
func (r *hlsReader) follow(ctx context.Context, u *url.URL, video bool) {
	var pl *playlist.Media
	for pl == nil && ctx.Err() == nil {
		pl = r.media(ctx, u, -1, 0)
	}
	if pl == nil {
		return
	}
	if pl.Map != nil {
		if ref, err := url.Parse(pl.Map.URI); err == nil {
			r.get(ctx, u.ResolveReference(ref)) // the init segment, as a player would
		}
	}
	msn, part := hlsNextPart(pl)
	for ctx.Err() == nil {
		pl := r.media(ctx, u, msn, part)
		if pl == nil {
			continue
		}
		hlsEachPart(pl, func(m, i int, p *playlist.MediaPart) {
			if m < msn || m == msn && i < part || ctx.Err() != nil {
				return
			}
			ref, err := url.Parse(p.URI)
			if err != nil {
				return
			}
			b, err := r.get(ctx, u.ResolveReference(ref))
			if err == nil {
				r.record(b, time.Now().UnixNano(), video)
			}
		})
		if m, p := hlsNextPart(pl); m > msn || m == msn && p > part {
			msn, part = m, p
		}
	}
}

// media fetches a media playlist; msn >= 0 makes it a blocking reload
// for part part of segment msn. It returns nil on failure.
func (r *hlsReader) media(ctx context.Context, u *url.URL, msn, part int) *playlist.Media {
	q := *u
	if msn >= 0 {
		q.RawQuery = "_HLS_msn=" + strconv.Itoa(msn) + "&_HLS_part=" + strconv.Itoa(part)
	}
	b, err := r.get(ctx, &q)
	if err != nil {
		return nil
	}
	pl, err := playlist.Unmarshal(b)
	if m, ok := pl.(*playlist.Media); err == nil && ok {
		return m
	}
	r.mu.Lock()
	r.errs++
	r.mu.Unlock()
	return nil
}

// get fetches u; failures (but those at the end) are counted.
func (r *hlsReader) get(ctx context.Context, u *url.URL) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var b []byte
		if b, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20)); err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
		}
		if err == nil {
			return b, nil
		}
	}
	if ctx.Err() == nil {
		r.mu.Lock()
		r.errs++
		r.mu.Unlock()
		time.Sleep(50 * time.Millisecond) // no busy loop on a failing server
	}
	return nil, err
}

// record notes a part received at now.
func (r *hlsReader) record(part []byte, now int64, video bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !video {
		r.audioParts++
		return
	}
	var stamps []int64
	mdats, err := rtmpLatMdats(part)
	for _, m := range mdats {
		rtmpLatNALUs(m, func(nalu []byte) {
			if t, ok := rtmpLatSEIStamp(nalu); ok {
				stamps = append(stamps, t)
			}
		})
	}
	if err != nil || len(stamps) == 0 {
		r.bad++
		return
	}
	r.parts = append(r.parts, hlsPartTimes{First: stamps[0], Last: stamps[len(stamps)-1], Recv: now})
}

// hlsEachPart calls fn with each part of a media playlist in order, with
// its media sequence number and index in its segment.
func hlsEachPart(pl *playlist.Media, fn func(msn, i int, p *playlist.MediaPart)) {
	for si, s := range pl.Segments {
		for i, p := range s.Parts {
			fn(pl.MediaSequence+si, i, p)
		}
	}
	for i, p := range pl.Parts {
		fn(pl.MediaSequence+len(pl.Segments), i, p)
	}
}

// hlsNextPart is the part a player asks for after this playlist.
func hlsNextPart(pl *playlist.Media) (msn, part int) {
	return pl.MediaSequence + len(pl.Segments), len(pl.Parts)
}
