package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/moqgate/moqgate/internal/config"
	"github.com/moqgate/moqgate/internal/server"
	"github.com/moqgate/moqgate/moq"
)

// Environment knobs of BenchmarkRTMPToMoQLatency.
const (
	// rtmpLatEnvWindow is the measured window with the subscriber
	// (default 10s); rtmpLatEnvWarmup the wait before each window
	// (default 2s).
	rtmpLatEnvWindow = "MOQGATE_BENCH_RTMPLAT_WINDOW"
	rtmpLatEnvWarmup = "MOQGATE_BENCH_RTMPLAT_WARMUP"
	// rtmpLatEnvAudio=0 publishes video only (default: video + AAC).
	rtmpLatEnvAudio = "MOQGATE_BENCH_RTMPLAT_AUDIO"
	// rtmpLatEnvBitrate is the video bit rate in bit/s (default 2000000).
	rtmpLatEnvBitrate = "MOQGATE_BENCH_RTMPLAT_BITRATE"
	// rtmpLatEnvInProcess=1 runs the publisher and the subscriber in the
	// benchmark's own process instead of a child: the CPU figures then
	// include them.
	rtmpLatEnvInProcess = "MOQGATE_BENCH_RTMPLAT_INPROCESS"
	// rtmpLatEnvChild carries the load generator's configuration (JSON)
	// to the child process; TestRTMPLatLoadGen runs only when it is set.
	rtmpLatEnvChild = "MOQGATE_BENCH_RTMPLAT_CHILD"
)

// rtmpLatOutPrefix starts every line the load generator reports.
const rtmpLatOutPrefix = "rtmplat "

// A synthetic 1280x720 30 fps stream: the parameter sets are x264's
// (High profile, level 3.1, from `ffmpeg -f lavfi -i testsrc2=size=1280x720
// -c:v libx264`); slice payloads are random bytes, since moqgate does not
// decode video.
var (
	rtmpLatSPS = []byte{
		0x67, 0x64, 0x00, 0x1f, 0xac, 0xb2, 0x00, 0xa0, 0x0b, 0x76, 0x02, 0x20,
		0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x07, 0x81, 0xe3, 0x06, 0x49,
	}
	rtmpLatPPS = []byte{0x68, 0xeb, 0xc3, 0xcb, 0x22, 0xc0}
)

// rtmpLatSEIUUID is the uuid_iso_iec_11578 of the user_data_unregistered
// SEI message that carries each access unit's send time: internal/rtctest's,
// whose WHEP viewer then measures latency from it (BenchmarkEgressCPU).
var rtmpLatSEIUUID = []byte("moqgate-latency!")

const (
	rtmpLatPath         = "bench/rtmplat"
	rtmpLatStampLen     = 16 // hex digits of a UnixNano send time
	rtmpLatAudioRate    = 48000
	rtmpLatAudioBitrate = 128000
)

// rtmpLatConfig configures the load generator.
type rtmpLatConfig struct {
	RTMPURL, MoQURL string
	// SRTURL, if set, is where the stream goes instead, as MPEG-TS over
	// SRT (srt://host:port?streamid=publish:PATH).
	SRTURL string
	// VideoBitrate of the access units in bit/s; FPS frames per second,
	// one key frame (KeyFactor times the average frame) every FPS frames.
	VideoBitrate, FPS int
	KeyFactor         float64
	// Audio adds an AAC-LC 48 kHz stereo track at 128 kbit/s.
	Audio bool
	// Warmup precedes each window. IngestWindow is measured with no
	// subscriber; Window with the latency subscriber.
	Warmup, IngestWindow, Window time.Duration
}

// rtmpLatResult is what the load generator measured.
type rtmpLatResult struct {
	// Latencies of the objects whose access unit was sent in the window.
	Video, Key, Audio []time.Duration
	// Access units sent in the window.
	VideoSent, AudioSent int
	// RTMP bytes written to the socket (chunk headers included; SRT: the
	// payload, MPEG-TS) and the wall time of each window.
	IngestBytes, WindowBytes uint64
	IngestWall, WindowWall   time.Duration
	// CPU time of the load generator's process over the window.
	LoadGenCPU time.Duration
	// Objects that could not be parsed, or carried no send time.
	BadObjects int
}

// BenchmarkRTMPToMoQLatency measures what moqgate adds between an RTMP
// publisher and a MoQ subscriber:
//
//	go test ./bench/ -run '^$' -bench RTMPToMoQLatency -benchtime 1x
//
// moqgate runs in-process (server.New on 127.0.0.1, ephemeral ports, the
// default configuration). A load generator, by default a child process
// (this test binary re-executed), publishes a synthetic H.264 stream
// (1280x720, 30 fps, 2 Mbit/s by default, a key frame every second at 6x the average
// frame) plus AAC (128 kbit/s) with gortmplib's client, and subscribes to
// "video" and "audio" over raw QUIC (moq.Dial, certificate not verified).
// Each access unit carries its send time (UnixNano, taken right before the
// RTMP write) in an SEI user_data_unregistered NAL unit (audio: the first
// bytes of the frame); the subscriber finds it in the mdat of each object
// (one moof+mdat per object) as soon as the object is read, so the
// latency is RTMP write to MoQ object, through the RTMP server, demuxer,
// CMAF packager, in-process MoQ session, relay and QUIC. Publisher and
// subscriber share a clock.
//
// Two windows follow a warm-up each: first with no subscriber (the relay
// does not pull the tracks: RTMP read, demux, CMAF packaging), then with
// the subscriber (plus relay and one QUIC egress). The benchmark process's
// CPU time (getrusage) over each window is moqgate's alone since the load
// generator runs in its own process; it is divided by the RTMP bytes the
// publisher wrote (chunk headers included) in the window.
//
// Metrics: p50/p99/max latency of video objects (goal: one frame
// interval, 33 ms, or less), the median of key frames (the largest
// objects), audio p50/p99, ingested Mbit/s, ingest-cpu-ms/Mbit (no
// subscriber) and server-cpu-ms/Mbit (with the subscriber), and the load
// generator's cores. One measurement whatever b.N is: use -benchtime 1x.
func BenchmarkRTMPToMoQLatency(b *testing.B) { rtmpLatBench(b, false) }

// rtmpLatBench is BenchmarkRTMPToMoQLatency, or with srt
// BenchmarkSRTToMoQLatency.
func rtmpLatBench(b *testing.B, srt bool) {
	window, warmup := rtmpLatEnvDuration(b, rtmpLatEnvWindow, 10*time.Second), rtmpLatEnvDuration(b, rtmpLatEnvWarmup, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+2*window+4*warmup)
	defer cancel()

	srv := rtmpLatStartServer(b, ctx, nil)

	lg := rtmpLatConfig{
		RTMPURL:      "rtmp://" + srv.RTMPAddr.String() + "/" + rtmpLatPath,
		MoQURL:       "moqt://" + srv.MoQAddr.String() + "/",
		VideoBitrate: 2_000_000,
		FPS:          30,
		KeyFactor:    6,
		Audio:        os.Getenv(rtmpLatEnvAudio) != "0",
		Warmup:       warmup,
		IngestWindow: min(window, 5*time.Second),
		Window:       window,
	}
	lg.VideoBitrate = rtmpLatEnvBitrateOr(b, rtmpLatEnvBitrate, lg.VideoBitrate)
	if srt {
		lg.SRTURL = "srt://" + srv.SRTAddr.String() + "?streamid=publish:" + rtmpLatPath
	}
	inProcess := os.Getenv(rtmpLatEnvInProcess) == "1"

	b.ResetTimer()
	run := func(ctx context.Context, emit func(string)) error { return rtmpLatLoadGen(ctx, lg, emit) }
	lines, wait, err := rtmpLatStartChild(ctx, "TestRTMPLatLoadGen", rtmpLatEnvChild, lg, run, inProcess)
	if err != nil {
		b.Fatal(err)
	}
	// The load generator reports the edges of its windows; this process's
	// CPU time is sampled at each.
	cpu := map[string]time.Duration{}
	wall := map[string]time.Time{}
	res := &rtmpLatResult{}
	got := rtmpLatCollect(b, lines, wait, func(m string) { cpu[m], wall[m] = rtmpLatSelfCPU(), time.Now() }, res)
	b.StopTimer()
	if !got {
		b.Fatal("load generator reported no result")
	}
	for _, m := range []string{"ingest-start", "ingest-end", "window-start", "window-end"} {
		if _, ok := cpu[m]; !ok {
			b.Fatalf("load generator did not report %s", m)
		}
	}
	if len(res.Video) == 0 {
		b.Fatal("no video object received in the window")
	}

	rate := func(bytes uint64, d time.Duration) float64 { return float64(bytes) * 8 / 1e6 / d.Seconds() }
	cores := func(from, to string) float64 {
		return (cpu[to] - cpu[from]).Seconds() / wall[to].Sub(wall[from]).Seconds()
	}
	ingestMbps, windowMbps := rate(res.IngestBytes, res.IngestWall), rate(res.WindowBytes, res.WindowWall)
	ingestCores, serverCores := cores("ingest-start", "ingest-end"), cores("window-start", "window-end")
	v, k, a := rtmpLatSummary(res.Video), rtmpLatSummary(res.Key), rtmpLatSummary(res.Audio)

	b.Logf("video: %d/%d objects, latency %s; key frames: %s", len(res.Video), res.VideoSent, v, k)
	if lg.Audio {
		b.Logf("audio: %d/%d objects, latency %s", len(res.Audio), res.AudioSent, a)
	}
	loadGenCores := res.LoadGenCPU.Seconds() / res.WindowWall.Seconds()
	if inProcess {
		b.Logf("CPU of moqgate + publisher + subscriber (in-process): no subscriber %.1f ms/s at %.3f Mbit/s in; with subscriber %.1f ms/s at %.3f Mbit/s in",
			1000*ingestCores, ingestMbps, 1000*serverCores, windowMbps)
	} else {
		b.Logf("CPU of moqgate alone: no subscriber %.1f ms/s at %.3f Mbit/s in; with subscriber %.1f ms/s at %.3f Mbit/s in; load generator (child) %.1f ms/s",
			1000*ingestCores, ingestMbps, 1000*serverCores, windowMbps, 1000*loadGenCores)
	}
	if res.BadObjects > 0 {
		b.Errorf("%d objects without a readable send time", res.BadObjects)
	}

	b.ReportMetric(0, "ns/op") // one fixed-length measurement, not per-op
	b.ReportMetric(rtmpLatMS(v.p50), "p50-ms")
	b.ReportMetric(rtmpLatMS(v.p99), "p99-ms")
	b.ReportMetric(rtmpLatMS(v.max), "max-ms")
	b.ReportMetric(rtmpLatMS(k.p50), "key-p50-ms")
	if lg.Audio && len(res.Audio) > 0 {
		b.ReportMetric(rtmpLatMS(a.p50), "audio-p50-ms")
		b.ReportMetric(rtmpLatMS(a.p99), "audio-p99-ms")
	}
	b.ReportMetric(100*float64(len(res.Video))/float64(max(res.VideoSent, 1)), "video-recv-%")
	b.ReportMetric(windowMbps, "Mbit/s")
	b.ReportMetric(1000*ingestCores/ingestMbps, "ingest-cpu-ms/Mbit")
	b.ReportMetric(1000*serverCores/windowMbps, "server-cpu-ms/Mbit")
	if !inProcess {
		b.ReportMetric(loadGenCores, "loadgen-cores")
	}
}

// rtmpLatCollect reads a load generator's lines until it ends: onMark is
// called at each "mark NAME" as it arrives, and the "result JSON" line is
// decoded into res. It reports whether a result came.
func rtmpLatCollect(b *testing.B, lines <-chan string, wait func() error, onMark func(string), res any) bool {
	got := false
	for line := range lines {
		kind, arg, _ := strings.Cut(line, " ")
		switch kind {
		case "mark":
			onMark(arg)
		case "result":
			if err := json.Unmarshal([]byte(arg), res); err != nil {
				b.Fatalf("load generator result: %v", err)
			}
			got = true
		}
	}
	if err := wait(); err != nil {
		b.Fatalf("load generator: %v", err)
	}
	return got
}

// rtmpLatStartServer runs moqgate in this process (server.New on
// 127.0.0.1, ephemeral ports, the default configuration with edit
// applied) until the benchmark ends.
func rtmpLatStartServer(b *testing.B, ctx context.Context, edit func(*config.Config)) *server.Server {
	cfg, err := config.Default()
	if err != nil {
		b.Fatal(err)
	}
	cfg.Listen.Addr, cfg.RTMP.Addr, cfg.SRT.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if edit != nil {
		edit(cfg)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	srvCtx, srvCancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Run(srvCtx) }()
	b.Cleanup(func() {
		srvCancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	})
	return srv
}

// TestRTMPLatLoadGen is BenchmarkRTMPToMoQLatency's load generator when
// the test binary is re-executed with rtmpLatEnvChild set; otherwise it
// is skipped.
func TestRTMPLatLoadGen(t *testing.T) {
	v := os.Getenv(rtmpLatEnvChild)
	if v == "" {
		t.Skip("load generator of BenchmarkRTMPToMoQLatency")
	}
	var cfg rtmpLatConfig
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+cfg.Window+cfg.IngestWindow+2*cfg.Warmup)
	defer cancel()
	if err := rtmpLatLoadGen(ctx, cfg, rtmpLatEmitter()); err != nil {
		t.Fatal(err)
	}
}

// rtmpLatEmitter returns a child's emit: one prefixed line on stdout.
func rtmpLatEmitter() func(string) {
	var mu sync.Mutex
	return func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(os.Stdout, rtmpLatOutPrefix+line)
	}
}

// rtmpLatStartChild starts a load generator: this test binary re-executed
// to run only the test named test, with its configuration cfg as JSON in
// the environment variable env (or, inProcess, run in a goroutine). It
// returns the lines the load generator reports (emit, or stdout lines
// starting with rtmpLatOutPrefix) and a function that waits for its end.
func rtmpLatStartChild(ctx context.Context, test, env string, cfg any, run func(context.Context, func(string)) error, inProcess bool) (<-chan string, func() error, error) {
	lines := make(chan string, 16)
	if inProcess {
		errc := make(chan error, 1)
		go func() {
			defer close(lines)
			errc <- run(ctx, func(line string) { lines <- line })
		}()
		return lines, func() error { return <-errc }, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-test.run=^"+test+"$", "-test.bench=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+string(js))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	var other bytes.Buffer // anything else the child prints (e.g. a failure)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), rtmpLatOutPrefix); ok {
				lines <- l
			} else {
				other.WriteString(sc.Text() + "\n")
			}
		}
		io.Copy(io.Discard, out)
	}()
	return lines, func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%w\n%s", err, other.String())
		}
		return nil
	}, nil
}

// rtmpLatLoadGen publishes over RTMP and subscribes over MoQ as described
// at BenchmarkRTMPToMoQLatency. emit reports "mark NAME" at the edges of
// the windows (ingest-start, ingest-end, window-start, window-end) and
// finally "result JSON".
func rtmpLatLoadGen(ctx context.Context, cfg rtmpLatConfig, emit func(string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps, err := rtmpLatPublish(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer ps.close()
	c, pub, win, sleep, warmup := ps.conn, ps.pub, ps.win, ps.sleep, ps.warmup

	// Window 1: no subscriber.
	if err := warmup(); err != nil {
		return err
	}
	emit("mark ingest-start")
	b0, t0 := c.BytesSent(), time.Now()
	if err := sleep(cfg.IngestWindow); err != nil {
		return err
	}
	b1, t1 := c.BytesSent(), time.Now()
	emit("mark ingest-end")

	// Window 2: the subscriber.
	sess, err := moq.Dial(ctx, cfg.MoQURL, moq.DialOptions{Insecure: true})
	if err != nil {
		return fmt.Errorf("moq dial: %w", err)
	}
	defer sess.Close()
	sub := &rtmpLatSubscriber{win: win, first: make(chan struct{})}
	subCtx, subCancel := context.WithCancel(ctx)
	var readers sync.WaitGroup
	defer readers.Wait()
	defer subCancel()
	names := []string{"video"}
	if cfg.Audio {
		names = append(names, "audio")
	}
	for _, name := range names {
		s, err := sess.Subscribe(ctx, moq.ParsePath(rtmpLatPath), name, moq.SubscribeOptions{})
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", name, err)
		}
		readers.Go(func() { sub.read(subCtx, s.Track, name == "video") })
	}
	select {
	case <-sub.first:
	case <-time.After(10 * time.Second):
		return errors.New("no video object within 10 s")
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := warmup(); err != nil {
		return err
	}
	cpu0 := rtmpLatSelfCPU()
	b2, t2 := c.BytesSent(), time.Now()
	win.start.Store(t2.UnixNano())
	emit("mark window-start")
	if err := sleep(cfg.Window); err != nil {
		return err
	}
	t3 := time.Now()
	win.end.Store(t3.UnixNano())
	b3, cpu1 := c.BytesSent(), rtmpLatSelfCPU()
	emit("mark window-end")
	// Objects sent just before the end may still be on their way.
	if err := sleep(time.Second); err != nil {
		return err
	}
	subCancel()
	readers.Wait()
	if err := ps.stop(); err != nil {
		return err
	}

	sub.mu.Lock()
	res := rtmpLatResult{
		Video: sub.video, Key: sub.key, Audio: sub.audio, BadObjects: sub.bad,
		VideoSent: int(pub.videoSent.Load()), AudioSent: int(pub.audioSent.Load()),
		IngestBytes: b1 - b0, IngestWall: t1.Sub(t0),
		WindowBytes: b3 - b2, WindowWall: t3.Sub(t2),
		LoadGenCPU: cpu1 - cpu0,
	}
	sub.mu.Unlock()
	js, err := json.Marshal(res)
	if err != nil {
		return err
	}
	emit("result " + string(js))
	return nil
}

// rtmpLatConn is the publisher's connection: RTMP, or SRT (srtLatConn).
type rtmpLatConn interface {
	BytesSent() uint64
	// end stops the publish like an encoder that stops; Close at once.
	end()
	Close()
}

// rtmpLatWriter writes the publisher's access units.
type rtmpLatWriter interface {
	h264(pts time.Duration, au [][]byte) error
	aac(pts time.Duration, frame []byte) error
}

// rtmpLatRTMP is an RTMP publish.
type rtmpLatRTMP struct {
	*gortmplib.Client
	w      *gortmplib.Writer
	vt, at *gortmplib.Track
}

func (r *rtmpLatRTMP) end()   { rtmpLatCloseRTMP(r.Client) }
func (r *rtmpLatRTMP) Close() { r.Client.Close() }
func (r *rtmpLatRTMP) h264(pts time.Duration, au [][]byte) error {
	return r.w.WriteH264(r.vt, pts, pts, au)
}
func (r *rtmpLatRTMP) aac(pts time.Duration, frame []byte) error {
	return r.w.WriteMPEG4Audio(r.at, pts, frame)
}

// rtmpLatSession is a running publish (rtmpLatPublisher on its own
// goroutine) and the load generator's clock.
type rtmpLatSession struct {
	ctx    context.Context // of the load generator
	cfg    rtmpLatConfig
	conn   rtmpLatConn
	pub    *rtmpLatPublisher
	win    *rtmpLatWindow
	cancel context.CancelFunc // stops the publisher
	done   chan struct{}      // closed when the publisher returned err
	err    error
}

// rtmpLatPublish connects to cfg.RTMPURL (or cfg.SRTURL) and starts
// publishing. With aac (access units of 1024 samples, 48 kHz stereo
// AAC-LC) and cfg.Audio the audio frames are those, in a loop, instead of
// stamped noise: something an AAC decoder (moqgate's Opus transcoder)
// accepts.
func rtmpLatPublish(ctx context.Context, cfg rtmpLatConfig, aac [][]byte) (*rtmpLatSession, error) {
	var conn rtmpLatConn
	var w rtmpLatWriter
	var err error
	if cfg.SRTURL != "" {
		var c *srtLatConn
		c, err = srtLatDial(cfg.SRTURL, cfg.Audio)
		conn, w = c, c
	} else {
		var c *rtmpLatRTMP
		c, err = rtmpLatDial(ctx, cfg)
		conn, w = c, c
	}
	if err != nil {
		return nil, err
	}
	win := &rtmpLatWindow{}
	win.start.Store(-1)
	win.end.Store(-1)
	pubCtx, pubCancel := context.WithCancel(ctx)
	s := &rtmpLatSession{ctx: ctx, cfg: cfg, conn: conn, win: win, cancel: pubCancel, done: make(chan struct{}),
		pub: &rtmpLatPublisher{cfg: cfg, w: w, aac: aac, win: win, start: time.Now()}}
	go func() {
		defer close(s.done)
		s.err = s.pub.run(pubCtx)
	}()
	return s, nil
}

// rtmpLatDial connects to cfg.RTMPURL and announces the tracks.
func rtmpLatDial(ctx context.Context, cfg rtmpLatConfig) (*rtmpLatRTMP, error) {
	u, err := url.Parse(cfg.RTMPURL)
	if err != nil {
		return nil, err
	}
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		return nil, fmt.Errorf("rtmp client: %w", err)
	}
	vt := &gortmplib.Track{Codec: &codecs.H264{SPS: rtmpLatSPS, PPS: rtmpLatPPS}}
	tracks := []*gortmplib.Track{vt}
	var at *gortmplib.Track
	if cfg.Audio {
		at = &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: &mpeg4audio.AudioSpecificConfig{
			Type: mpeg4audio.ObjectTypeAACLC, SampleRate: rtmpLatAudioRate, ChannelCount: 2,
		}}}
		tracks = append(tracks, at)
	}
	w := &gortmplib.Writer{Conn: c, Tracks: tracks}
	if err := w.Initialize(); err != nil {
		c.Close()
		return nil, fmt.Errorf("rtmp writer: %w", err)
	}
	return &rtmpLatRTMP{Client: c, w: w, vt: vt, at: at}, nil
}

// sleep waits d, or fails if the publisher stopped or the load generator's
// context ended first.
func (s *rtmpLatSession) sleep(d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-s.done:
		err := s.err
		if err == nil {
			err = errors.New("stopped")
		}
		return fmt.Errorf("publisher: %w", err)
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// warmup waits cfg.Warmup, then up to half-way between two key frames:
// windows start there (and, lasting whole seconds, end there) so that each
// holds a whole number of GOPs.
func (s *rtmpLatSession) warmup() error {
	if err := s.sleep(s.cfg.Warmup); err != nil {
		return err
	}
	since := time.Since(s.pub.start) + time.Second/2
	return s.sleep(since.Truncate(time.Second) + time.Second - since)
}

// stop ends the publish like an encoder that stops (see rtmpLatCloseRTMP).
func (s *rtmpLatSession) stop() error {
	s.cancel()
	<-s.done
	if s.err != nil {
		return fmt.Errorf("publisher: %w", s.err)
	}
	s.conn.end()
	return nil
}

// close releases the session whatever state it is in.
func (s *rtmpLatSession) close() {
	s.cancel()
	<-s.done
	s.conn.Close()
}

// rtmpLatCloseRTMP ends the publish like an encoder that stops: FIN, then
// it waits (briefly) for the server to close. Closing with the server's
// acknowledgements unread would reset the connection instead.
func rtmpLatCloseRTMP(c *gortmplib.Client) {
	nc := c.NetConn()
	if cw, ok := nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, nc)
	}
}

// rtmpLatWindow is the measured window (UnixNano; -1 before it is set).
type rtmpLatWindow struct{ start, end atomic.Int64 }

func (w *rtmpLatWindow) contains(t int64) bool {
	s, e := w.start.Load(), w.end.Load()
	return s >= 0 && t >= s && (e < 0 || t < e)
}

// rtmpLatPublisher sends the access units on a fixed schedule (a stall is
// caught up, not skipped), video and audio interleaved in timestamp order.
type rtmpLatPublisher struct {
	cfg   rtmpLatConfig
	w     rtmpLatWriter
	aac   [][]byte // audio frames to loop (nil: stamped noise)
	win   *rtmpLatWindow
	start time.Time // of the schedule

	videoSent, audioSent atomic.Int64 // in the window
}

func (p *rtmpLatPublisher) run(ctx context.Context) error {
	fps := p.cfg.FPS
	avg := p.cfg.VideoBitrate / 8 / fps
	keySize := int(float64(avg) * p.cfg.KeyFactor)
	otherSize := (avg*fps - keySize) / (fps - 1)
	audioDur := 1024 * time.Second / rtmpLatAudioRate
	audioSize := rtmpLatAudioBitrate / 8 * 1024 / rtmpLatAudioRate

	rnd := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, keySize)
	for i := range noise {
		noise[i] = byte(rnd.Uint32()) | 1 // no zero bytes: no start-code look-alikes
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := p.start
	var vi, ai int
	for {
		vDue := start.Add(time.Duration(vi) * time.Second / time.Duration(fps))
		aDue := start.Add(time.Duration(ai) * audioDur)
		video := !p.cfg.Audio || !aDue.Before(vDue)
		due := vDue
		if !video {
			due = aDue
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil
			}
		} else if ctx.Err() != nil {
			return nil
		}
		if video {
			pts := time.Duration(vi) * time.Second / time.Duration(fps)
			key := vi%fps == 0
			size := otherSize
			slice := []byte{0x41} // non-IDR slice, nal_ref_idc 2
			if key {
				size, slice = keySize, []byte{0x65} // IDR slice, nal_ref_idc 3
			}
			now := time.Now().UnixNano()
			sei := rtmpLatSEI(now)
			// AVCC: 4-byte lengths before the SEI and the slice.
			slice = append(slice, noise[:max(size-len(sei)-9, 16)]...)
			if err := p.w.h264(pts, [][]byte{sei, slice}); err != nil {
				return err
			}
			if p.win.contains(now) {
				p.videoSent.Add(1)
			}
			vi++
		} else {
			pts := time.Duration(ai) * audioDur
			now := time.Now().UnixNano()
			var frame []byte
			if len(p.aac) > 0 {
				frame = p.aac[ai%len(p.aac)]
			} else {
				frame = make([]byte, audioSize)
				copy(frame[rtmpLatStampLen:], noise)
				rtmpLatPutStamp(frame, now)
			}
			if err := p.w.aac(pts, frame); err != nil {
				return err
			}
			if p.win.contains(now) {
				p.audioSent.Add(1)
			}
			ai++
		}
	}
}

// rtmpLatSEI returns an SEI NAL unit with one user_data_unregistered
// message holding rtmpLatSEIUUID and the send time as hex digits (no zero
// bytes, so no emulation prevention is needed).
func rtmpLatSEI(now int64) []byte {
	n := len(rtmpLatSEIUUID) + rtmpLatStampLen
	sei := make([]byte, 0, 3+n+1)
	sei = append(sei, 0x06, 0x05, byte(n)) // NAL type 6; payload type 5, size n
	sei = append(sei, rtmpLatSEIUUID...)
	sei = sei[:3+n]
	rtmpLatPutStamp(sei[3+len(rtmpLatSEIUUID):], now)
	return append(sei, 0x80) // rbsp_trailing_bits
}

func rtmpLatPutStamp(b []byte, now int64) {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(now))
	hex.Encode(b[:rtmpLatStampLen], v[:])
}

func rtmpLatStamp(b []byte) (int64, bool) {
	if len(b) < rtmpLatStampLen {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:rtmpLatStampLen]), 16, 64)
	return int64(v), err == nil
}

// rtmpLatSubscriber collects latencies.
type rtmpLatSubscriber struct {
	win       *rtmpLatWindow
	first     chan struct{}
	firstOnce sync.Once

	mu                sync.Mutex
	video, key, audio []time.Duration
	bad               int
}

// read follows a track, each group on its own goroutine (groups come on
// their own streams and may overlap).
func (s *rtmpLatSubscriber) read(ctx context.Context, t *moq.Track, video bool) {
	var wg sync.WaitGroup
	defer wg.Wait()
	rd := t.NewReader(false)
	for {
		gr, err := rd.NextGroup(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			for {
				o, err := gr.Next(ctx)
				if err != nil {
					return
				}
				s.record(o.Payload, time.Now().UnixNano(), video)
			}
		})
	}
}

func (s *rtmpLatSubscriber) record(payload []byte, now int64, video bool) {
	mdats, err := rtmpLatMdats(payload)
	var sent int64
	ok, key := false, false
	if err == nil {
		if video {
			sent, key, ok = rtmpLatVideoStamp(mdats[0])
		} else {
			sent, ok = rtmpLatStamp(mdats[0])
		}
	}
	if video {
		s.firstOnce.Do(func() { close(s.first) })
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		s.bad++
		return
	}
	if !s.win.contains(sent) {
		return
	}
	lat := time.Duration(now - sent)
	switch {
	case !video:
		s.audio = append(s.audio, lat)
	case key:
		s.key = append(s.key, lat)
		fallthrough
	default:
		s.video = append(s.video, lat)
	}
}

// rtmpLatMdats returns the payloads of the mdat boxes of a CMAF object or
// an LL-HLS part (moof+mdat pairs).
func rtmpLatMdats(obj []byte) ([][]byte, error) {
	sr := bits.NewFixedSliceReader(obj)
	var mdats [][]byte
	for pos := uint64(0); pos < uint64(len(obj)); {
		box, err := mp4.DecodeBoxSR(pos, sr)
		if err != nil {
			return nil, err
		}
		if m, ok := box.(*mp4.MdatBox); ok {
			mdats = append(mdats, m.Data)
		}
		pos += box.Size()
	}
	if len(mdats) == 0 {
		return nil, errors.New("no mdat")
	}
	return mdats, nil
}

// rtmpLatVideoStamp finds the send time in the SEI of an access unit made
// of 4-byte-length-prefixed NAL units; key reports an IDR slice.
func rtmpLatVideoStamp(au []byte) (sent int64, key, ok bool) {
	valid := rtmpLatNALUs(au, func(nalu []byte) {
		if nalu[0]&0x1f == 5 {
			key = true
		}
		if t, found := rtmpLatSEIStamp(nalu); found {
			sent, ok = t, true
		}
	})
	if !valid {
		return 0, false, false
	}
	return sent, key, ok
}

// rtmpLatNALUs calls fn with each NAL unit of 4-byte-length-prefixed NAL
// units (one access unit, or the samples of an mdat one after the other);
// false means b is malformed.
func rtmpLatNALUs(b []byte, fn func(nalu []byte)) bool {
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n > len(b) || n == 0 {
			return false
		}
		fn(b[:n])
		b = b[n:]
	}
	return true
}

// rtmpLatSEIStamp returns the send time of an SEI NAL unit made by
// rtmpLatSEI.
func rtmpLatSEIStamp(nalu []byte) (int64, bool) {
	uuidEnd := 3 + len(rtmpLatSEIUUID)
	if len(nalu) < uuidEnd+rtmpLatStampLen || nalu[0]&0x1f != 6 || nalu[1] != 0x05 ||
		!bytes.Equal(nalu[3:uuidEnd], rtmpLatSEIUUID) {
		return 0, false
	}
	return rtmpLatStamp(nalu[uuidEnd:])
}

// rtmpLatStats summarises latencies.
type rtmpLatStats struct{ p50, p99, max time.Duration }

func rtmpLatSummary(lat []time.Duration) rtmpLatStats {
	if len(lat) == 0 {
		return rtmpLatStats{}
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	rank := func(p float64) time.Duration { // nearest rank
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return rtmpLatStats{p50: rank(0.50), p99: rank(0.99), max: s[len(s)-1]}
}

func (s rtmpLatStats) String() string {
	return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, max %.2f ms", rtmpLatMS(s.p50), rtmpLatMS(s.p99), rtmpLatMS(s.max))
}

func rtmpLatMS(d time.Duration) float64 { return float64(d) / 1e6 }

// rtmpLatSelfCPU is this process's user + system CPU time.
func rtmpLatSelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rtmpLatEnvBitrateOr returns the bit rate (bit/s) in the environment
// variable name, or def if it is unset.
func rtmpLatEnvBitrateOr(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100_000 || n > 100_000_000 {
		b.Fatalf("%s: bad bit rate %q (100000..100000000)", name, v)
	}
	return n
}

func rtmpLatEnvDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s: bad duration %q", name, v)
	}
	return d
}
