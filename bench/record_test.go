package bench

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moqgate/moqgate/egress/record"
	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/mediatest"
	"github.com/moqgate/moqgate/moq"
)

// recordEnvWindow is each phase's measured window (default 10s).
const recordEnvWindow = "MOQGATE_BENCH_RECORD_WINDOW"

// BenchmarkRecord measures the recorder's CPU and write amplification for
// 1 and 20 broadcasts of about 2 Mbit/s (720p30 H.264 + AAC, GOP 2 s,
// published in real time in process): the process's CPU over a window
// without the recorder, then with it; the difference is the recorder's.
// Write amplification is the bytes on disk (segments and indexes) over
// the object bytes the recorder took.
func BenchmarkRecord(b *testing.B) {
	browsertest.RequirePeer(b, browsertest.PeerFFmpeg)
	window := 10 * time.Second
	if v, err := time.ParseDuration(os.Getenv(recordEnvWindow)); err == nil && v > 0 {
		window = v
	}
	clipFile := filepath.Join(b.TempDir(), "clip.mp4")
	// Filler NAL units hold the video at 2 Mbit/s however simple the picture.
	gen := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-bf", "0",
		"-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "2M", "-x264-params", "nal-hrd=cbr",
		"-c:a", "aac", "-b:a", "128k", "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof", clipFile)
	if out, err := gen.CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	clip, err := mediatest.LoadClip(clipFile)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("broadcasts=%d", n), func(b *testing.B) {
			for range b.N {
				benchRecord(b, clip, n, window)
			}
		})
	}
}

func benchRecord(b *testing.B, clip *mediatest.Clip, n int, window time.Duration) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	relay := moq.NewRelay(moq.RelayConfig{Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range n {
		go clip.Publish(ctx, relay, fmt.Sprintf("bench/rec%d", i), mediatest.PublishOptions{Logger: log})
	}
	time.Sleep(2 * time.Second) // warm-up
	base := cpuTime()
	time.Sleep(window)
	without := cpuTime() - base

	dir := b.TempDir()
	rec, err := record.New(relay.Local("record"), record.Config{Dir: dir, SegmentDuration: 4 * time.Second, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(rctx) }()
	time.Sleep(2 * time.Second)
	startBytes := rec.Stats().Bytes
	base = cpuTime()
	time.Sleep(window)
	with := cpuTime() - base
	took := rec.Stats().Bytes - startBytes
	rcancel()
	<-done
	st := rec.Stats()
	var disk int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				disk += fi.Size()
			}
		}
		return nil
	})
	cpu := (with - without).Seconds() / window.Seconds()
	b.ReportMetric(100*cpu, "%core")
	b.ReportMetric(100*cpu/float64(n), "%core/broadcast")
	b.ReportMetric(float64(disk)/float64(st.Bytes), "written/ingested")
	b.ReportMetric(float64(took)*8/window.Seconds()/1e6/float64(n), "Mbit/s/broadcast")
	b.Logf("%d broadcasts: CPU %.3f s without the recorder, %.3f s with, over %s; %d object bytes recorded, %d on disk (%d segments, %d errors)",
		n, without.Seconds(), with.Seconds(), window, st.Bytes, disk, st.Segments, st.Errors)
}
