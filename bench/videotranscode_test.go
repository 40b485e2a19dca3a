package bench

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/mediatest"
	"github.com/moqgate/moqgate/internal/transcode"
	"github.com/moqgate/moqgate/media"
)

// BenchmarkVideoTranscode measures the video-webrtc rendition (the
// re-encode of B-frame video for WHEP): the latency it adds (a source
// frame written → the same frame re-encoded, p50/p99) and the CPU of its
// ffmpeg, for 20 s of 1280x720 30 fps H.264 with B-frames played in real
// time:
//
//	go test ./bench/ -run '^$' -bench VideoTranscode -benchtime 1x
//
// The rest of the path to a WHEP viewer is the same as the original's
// (BenchmarkWHEP). Each run is one window whatever b.N is.
func BenchmarkVideoTranscode(b *testing.B) {
	browsertest.RequirePeer(b, browsertest.PeerFFmpeg)
	clip := filepath.Join(b.TempDir(), "bf.mp4")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
		"testsrc2=size=1280x720:rate=30", "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2",
		"-g", "60", "-b:v", "2500k", "-movflags", "frag_keyframe+empty_moov+default_base_moof", clip).CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v %s", err, out)
	}
	c, err := mediatest.LoadClip(clip)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		reg := transcode.NewRegistry("ffmpeg", slog.New(slog.DiscardHandler))
		reg.ConfigureVideo(transcode.VideoOptions{Subscribers: func(string, string) int { return 1 }})
		m := &latencyMeter{sent: map[int64]time.Time{}}
		w := &timedWriter{BroadcastWriter: reg.Wrap("live/bench", m), m: m}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		done := make(chan error, 1)
		go func() { done <- c.Play(ctx, w, mediatest.PublishOptions{Loops: 1}) }()
		time.Sleep(500 * time.Millisecond) // the first frames are written
		if err := reg.EnableVideo(ctx, "live/bench"); err != nil {
			b.Fatalf("EnableVideo: %v", err)
		}
		start := time.Now()
		<-done
		time.Sleep(time.Second) // the last frames come out
		var cpu float64
		for _, t := range reg.Transcodes() {
			cpu += t.CPUSeconds
		}
		elapsed := time.Since(start)
		w.Close()
		cancel()
		lat := m.latencies()
		if len(lat) < 300 {
			b.Fatalf("%d frames re-encoded", len(lat))
		}
		b.ReportMetric(float64(quantile(lat, 0.5).Microseconds())/1000, "latency-p50-ms")
		b.ReportMetric(float64(quantile(lat, 0.99).Microseconds())/1000, "latency-p99-ms")
		b.ReportMetric(cpu/elapsed.Seconds(), "transcode-cores")
		b.ReportMetric(float64(len(lat)), "frames")
	}
}

// latencyMeter pairs each source video frame (by presentation time) with
// its re-encoded frame (whose DTS is that time).
type latencyMeter struct {
	mu   sync.Mutex
	sent map[int64]time.Time
	lat  []time.Duration
}

func (m *latencyMeter) SetTracks([]media.TrackInfo) error { return nil }
func (m *latencyMeter) Close() error                      { return nil }

func (m *latencyMeter) WriteFrame(track string, f media.Frame) error {
	if track != transcode.VideoTrack {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if at, ok := m.sent[f.DTS]; ok {
		m.lat = append(m.lat, time.Since(at))
	}
	return nil
}

func (m *latencyMeter) latencies() []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Duration(nil), m.lat...)
}

// timedWriter notes when each source video frame is written.
type timedWriter struct {
	media.BroadcastWriter
	m *latencyMeter
}

func (w *timedWriter) WriteFrame(track string, f media.Frame) error {
	if track == "video" {
		w.m.mu.Lock()
		w.m.sent[f.DTS+f.CTO] = time.Now()
		w.m.mu.Unlock()
	}
	return w.BroadcastWriter.WriteFrame(track, f)
}
