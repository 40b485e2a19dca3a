package bench

// TEMPORARY: ffmpeg publisher arrival jitter with and without TCP_NODELAY.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/moqgate/moqgate/ingest/rtmp"
	"github.com/moqgate/moqgate/media"
)

type arrivalRec struct {
	mu  sync.Mutex
	off []time.Duration // arrival - DTS (video)
	t0  time.Time
}

func (r *arrivalRec) SetTracks([]media.TrackInfo) error { return nil }
func (r *arrivalRec) Close() error                      { return nil }
func (r *arrivalRec) WriteFrame(track string, f media.Frame) error {
	now := time.Now()
	if track != "video" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.t0.IsZero() {
		r.t0 = now
	}
	r.off = append(r.off, now.Sub(r.t0)-time.Duration(f.DTS)*time.Millisecond)
	return nil
}

func TestRTMPLatFFmpegNagle(t *testing.T) {
	if os.Getenv("RTMPLAT_NAGLE") == "" {
		t.Skip()
	}
	for _, nodelay := range []string{"", "1"} {
		rec := &arrivalRec{}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		rs, err := rtmp.NewServer(rtmp.Config{Logger: log, OnPublish: func(context.Context, rtmp.PublishRequest) (media.BroadcastWriter, error) {
			return rec, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		ctx, cancel := context.WithCancel(context.Background())
		go rs.Serve(ctx, ln)
		args := []string{"-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
			"-f", "lavfi", "-i", "sine=frequency=440", "-t", "12",
			"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-b:v", "2M", "-g", "30", "-c:a", "aac", "-f", "flv"}
		if nodelay != "" {
			args = append(args, "-tcp_nodelay", "1")
		}
		args = append(args, "rtmp://"+ln.Addr().String()+"/live/x")
		out, err := exec.Command("strace", append([]string{"-f", "-e", "trace=setsockopt", "-o", "/tmp/strace-" + nodelay + ".txt", "ffmpeg"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v %s", err, out)
		}
		cancel()
		rec.mu.Lock()
		off := rec.off[60:] // skip start-up
		mn := off[0]
		for _, o := range off {
			mn = min(mn, o)
		}
		rel := make([]time.Duration, len(off))
		for i, o := range off {
			rel[i] = o - mn
		}
		fmt.Printf("tcp_nodelay=%q: %d frames, arrival delay beyond the earliest: %s\n", nodelay, len(rel), rtmpLatSummary(rel))
		rec.mu.Unlock()
	}
}
