package bench

// WHEP egress and WebRTC latency measurements against a `moqgate serve`
// process: a publisher (pion over WHIP, or gortmplib over RTMP) sends
// H.264 with the send time in an SEI message of every frame, and pion
// viewers in this process receive it over WHEP. The server's CPU time comes
// from /proc/PID/stat, so the load generator's own work is not counted.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/moqgate/moqgate/internal/rtctest"
)

// Gate is a `moqgate serve` child process.
type Gate struct {
	Web  string // http://127.0.0.1:PORT
	RTMP string // rtmp://127.0.0.1:PORT
	PID  int
	cmd  *exec.Cmd
	done chan error
}

var gateServingRE = regexp.MustCompile(`web=(\S+) moq=\S+ rtmp=(\S+)`)

// StartGate runs `bin serve` on free loopback ports (WebRTC included),
// with extra arguments (e.g. --config FILE).
func StartGate(ctx context.Context, bin string, stderr io.Writer, extra ...string) (*Gate, error) {
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--rtmp", "127.0.0.1:0",
		"--webrtc-udp", "127.0.0.1:0", "--log-level", "info"}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &Gate{PID: cmd.Process.Pid, cmd: cmd, done: make(chan error, 1)}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := gateServingRE.FindStringSubmatch(line); m != nil {
				ready <- m
			}
			if stderr != nil && (!strings.Contains(line, "level=") || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) {
				fmt.Fprintln(stderr, "moqgate:", line)
			}
		}
		g.done <- cmd.Wait()
	}()
	select {
	case m := <-ready:
		g.Web, g.RTMP = m[1], m[2]
		return g, nil
	case err := <-g.done:
		return nil, fmt.Errorf("moqgate exited: %v", err)
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		return nil, errors.New("moqgate did not start")
	}
}

// Close stops the gate.
func (g *Gate) Close() {
	g.cmd.Process.Signal(os.Interrupt)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
	}
}

// WHEPMedia is what the publisher sends: H.264 access units (Annex B) at
// FPS, Opus packets every 20 ms, and for RTMP the same audio as AAC.
type WHEPMedia struct {
	Video [][]byte
	Opus  [][]byte
	AAC   [][]byte // access units, 1024 samples at 48 kHz
	ASC   []byte   // AudioSpecificConfig of AAC
	FPS   int
}

// LoadWHEPMedia encodes the benchmark media with ffmpeg in dir: H.264
// constrained baseline at width×height, fps and kbps (GOP of 1 s), Opus,
// and AAC.
func LoadWHEPMedia(dir string, width, height, fps, kbps, seconds int) (*WHEPMedia, error) {
	h264, ogg, err := rtctest.EncodeMedia(dir, rtctest.EncodeOptions{Width: width, Height: height, FPS: fps,
		Seconds: seconds, VideoBitrate: kbps, Noise: 8})
	if err != nil {
		return nil, err
	}
	m := &WHEPMedia{FPS: fps}
	if m.Video, err = rtctest.LoadH264(h264); err != nil {
		return nil, err
	}
	if m.Opus, err = rtctest.LoadOgg(ogg); err != nil {
		return nil, err
	}
	if m.AAC, m.ASC, err = rtctest.EncodeAAC(dir, seconds); err != nil {
		return nil, err
	}
	return m, nil
}

// Bitrate returns the video's average bit rate.
func (m *WHEPMedia) Bitrate() float64 {
	n := 0
	for _, au := range m.Video {
		n += len(au)
	}
	return float64(n*8) * float64(m.FPS) / float64(len(m.Video))
}

// PublishRTMP publishes the media over RTMP (H.264 + AAC) until ctx ends,
// with the send time in an SEI of every video frame.
func PublishRTMP(ctx context.Context, rtmpURL string, m *WHEPMedia) error {
	u, err := url.Parse(rtmpURL)
	if err != nil {
		return err
	}
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		return err
	}
	defer c.Close()
	var sps, pps []byte
	for _, nal := range rtctest.SplitAnnexB(m.Video[0]) {
		switch nal[0] & 0x1f {
		case 7:
			sps = nal
		case 8:
			pps = nal
		}
	}
	vt := &gortmplib.Track{Codec: &codecs.H264{SPS: sps, PPS: pps}}
	at := &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: rtctest.MustASC(m.ASC)}}
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{vt, at}}
	if err := w.Initialize(); err != nil {
		return err
	}
	start := time.Now()
	vi, ai := 0, 0
	frameDur := time.Second / time.Duration(m.FPS)
	const audioDur = 1024 * time.Second / 48000
	for {
		vpts := time.Duration(vi) * frameDur
		apts := time.Duration(ai) * audioDur
		next := min(vpts, apts)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(start.Add(next))):
		}
		if vpts <= apts {
			au := rtctest.WithSEI(m.Video[vi%len(m.Video)], time.Now())
			if err := w.WriteH264(vt, vpts, vpts, rtctest.SplitAnnexB(au)); err != nil {
				return err
			}
			vi++
		} else {
			if err := w.WriteMPEG4Audio(at, apts, m.AAC[ai%len(m.AAC)]); err != nil {
				return err
			}
			ai++
		}
	}
}

// procSysCPU returns the system CPU time of a process (/proc/PID/stat).
func procSysCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(st) * (time.Second / 100), err
}

// LatencyResult is the glass-to-glass-minus-codecs latency of one viewer:
// from the publisher writing a frame to the viewer having all of it.
type LatencyResult struct {
	Path     string // "WHIP→WHEP", "RTMP→WHEP"
	Frames   int
	P50, P99 time.Duration
	Max      time.Duration
}

func (r LatencyResult) String() string {
	return fmt.Sprintf("%s: %d frames, latency p50 %.2f ms, p99 %.2f ms, max %.2f ms",
		r.Path, r.Frames, ms(r.P50), ms(r.P99), ms(r.Max))
}

func latencies(path string, d []time.Duration) LatencyResult {
	r := LatencyResult{Path: path, Frames: len(d)}
	if len(d) == 0 {
		return r
	}
	s := slices.Clone(d)
	slices.Sort(s)
	r.P50, r.P99, r.Max = s[len(s)/2], s[(len(s)-1)*99/100], s[len(s)-1]
	return r
}

// MeasureLatency publishes over WHIP (rtmp false) or RTMP and measures the
// frames one WHEP viewer receives over window.
func MeasureLatency(ctx context.Context, g *Gate, m *WHEPMedia, rtmp bool, warmup, window time.Duration) (LatencyResult, error) {
	path := "bench/latency-whip"
	name := "WHIP→WHEP"
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which stops the publisher
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if rtmp {
		path, name = "bench/latency-rtmp", "RTMP→WHEP"
		errc := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- PublishRTMP(ctx, g.RTMP+"/"+path, m)
		}()
		select {
		case err := <-errc:
			return LatencyResult{}, fmt.Errorf("RTMP publisher: %v", err)
		case <-time.After(2 * time.Second):
		}
	} else {
		pub, err := rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.Web + "/whip/" + path, Video: m.Video, Audio: m.Opus,
			FPS: m.FPS, Loop: true, StampSEI: true})
		if err != nil {
			return LatencyResult{}, err
		}
		defer pub.Close()
		time.Sleep(2 * time.Second)
	}
	v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/" + path})
	if err != nil {
		return LatencyResult{}, err
	}
	defer v.Close()
	time.Sleep(warmup)
	n0 := len(v.Stats()["video"].Latencies)
	time.Sleep(window)
	lat := v.Stats()["video"].Latencies
	if len(lat) <= n0 {
		return LatencyResult{}, fmt.Errorf("%s: no frames received", name)
	}
	return latencies(name, lat[n0:]), nil
}

// LoadResult is one WHEP egress measurement.
type LoadResult struct {
	Viewers   int
	Connected int
	Window    time.Duration
	// ServerCPU is the gate's CPU time over the window; LoadGenCPU this
	// process's.
	ServerCPU, LoadGenCPU time.Duration
	// ServerSys is the kernel part of ServerCPU (system calls; on loopback
	// also the delivery to the viewers' sockets, which runs in the sender's
	// context).
	ServerSys time.Duration
	// Bytes is the RTP bytes (headers and payload, as decrypted) all
	// viewers received in the window; Published the video bit rate sent.
	Bytes     int64
	Published float64
	// IdleCores is the server's CPU use with the publisher and no viewer
	// (WHIP ingest, packaging, the relay).
	IdleCores float64
	// Latency of the frames of one full viewer among them.
	Latency LatencyResult
}

// Gbps is the WHEP bit rate delivered to the viewers.
func (r LoadResult) Gbps() float64 { return float64(r.Bytes*8) / r.Window.Seconds() / 1e9 }

// ServerCores is the gate's CPU use in cores.
func (r LoadResult) ServerCores() float64 { return r.ServerCPU.Seconds() / r.Window.Seconds() }

// GbpsPerCore is the delivered bit rate per core of server CPU.
func (r LoadResult) GbpsPerCore() float64 {
	if r.ServerCPU <= 0 {
		return 0
	}
	return r.Gbps() / r.ServerCores()
}

// MarginalGbpsPerCore is the delivered bit rate per core of the CPU the
// viewers add (server CPU minus its idle use with the publisher alone).
func (r LoadResult) MarginalGbpsPerCore() float64 {
	if c := r.ServerCores() - r.IdleCores; c > 0 {
		return r.Gbps() / c
	}
	return 0
}

func (r LoadResult) String() string {
	return fmt.Sprintf("%d viewers (%d connected): %.3f Gbit/s delivered (video published at %.2f Mbit/s), server %.2f cores (%.0f%% kernel) → %.2f Gbit/s per core (%.2f cores with the publisher alone; %.2f Gbit/s per added core); load generator %.2f cores; %s",
		r.Viewers, r.Connected, r.Gbps(), r.Published/1e6, r.ServerCores(), 100*r.ServerSys.Seconds()/max(r.ServerCPU.Seconds(), 1e-9),
		r.GbpsPerCore(), r.IdleCores, r.MarginalGbpsPerCore(), r.LoadGenCPU.Seconds()/r.Window.Seconds(), r.Latency)
}

// LoadConfig configures RunLoad.
type LoadConfig struct {
	Viewers          int
	Warmup, Window   time.Duration
	SetupConcurrency int
	Logger           *slog.Logger
}

// RunLoad publishes over WHIP and measures n WHEP viewers in steady state.
func RunLoad(ctx context.Context, g *Gate, m *WHEPMedia, cfg LoadConfig) (LoadResult, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.SetupConcurrency <= 0 {
		cfg.SetupConcurrency = 8
	}
	path := fmt.Sprintf("bench/load-%d", cfg.Viewers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pub, err := rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.Web + "/whip/" + path, Video: m.Video, Audio: m.Opus,
		FPS: m.FPS, Loop: true, StampSEI: true})
	if err != nil {
		return LoadResult{}, err
	}
	defer pub.Close()
	time.Sleep(2 * time.Second)
	// What the server spends on the publisher alone.
	i0, err := ProcCPU(g.PID)
	if err != nil {
		return LoadResult{}, err
	}
	time.Sleep(3 * time.Second)
	i1, _ := ProcCPU(g.PID)
	idle := (i1 - i0).Seconds() / 3
	light, err := rtctest.NewLightAPI()
	if err != nil {
		return LoadResult{}, err
	}
	res := LoadResult{Viewers: cfg.Viewers, Window: cfg.Window, Published: m.Bitrate(), IdleCores: idle}
	viewers := make([]*rtctest.Viewer, cfg.Viewers)
	sem := make(chan struct{}, cfg.SetupConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range viewers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := rtctest.ViewOptions{Endpoint: g.Web + "/whep/" + path, Light: i > 0, API: light}
			if i == 0 {
				o.API = nil // one full viewer measures latency
			}
			v, err := rtctest.View(ctx, o)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			viewers[i] = v
		}()
	}
	wg.Wait()
	defer func() {
		var cw sync.WaitGroup
		for _, v := range viewers {
			if v != nil {
				cw.Add(1)
				sem <- struct{}{}
				go func() {
					defer cw.Done()
					defer func() { <-sem }()
					v.Close()
				}()
			}
		}
		cw.Wait()
	}()
	if len(errs) > 0 {
		log.Warn("some viewers failed", "count", len(errs), "first", errs[0])
	}
	time.Sleep(cfg.Warmup)
	bytes := func() (int64, int) {
		var n int64
		var live int
		for _, v := range viewers {
			if v == nil {
				continue
			}
			st := v.Stats()
			if st["video"].Packets > 0 {
				live++
			}
			for _, s := range st {
				n += s.Bytes
			}
		}
		return n, live
	}
	var lat0 int
	if viewers[0] != nil {
		lat0 = len(viewers[0].Stats()["video"].Latencies)
	}
	b0, _ := bytes()
	s0, err := ProcCPU(g.PID)
	if err != nil {
		return res, err
	}
	sys0, _ := procSysCPU(g.PID)
	l0 := selfCPU()
	time.Sleep(cfg.Window)
	s1, err := ProcCPU(g.PID)
	if err != nil {
		return res, err
	}
	sys1, _ := procSysCPU(g.PID)
	res.ServerSys = sys1 - sys0
	res.LoadGenCPU = selfCPU() - l0
	b1, live := bytes()
	res.ServerCPU, res.Bytes, res.Connected = s1-s0, b1-b0, live
	if viewers[0] != nil {
		if lat := viewers[0].Stats()["video"].Latencies; len(lat) > lat0 {
			res.Latency = latencies("WHIP→WHEP under load", lat[lat0:])
		}
	}
	return res, nil
}
