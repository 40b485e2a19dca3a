package hls

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/mediatest"
)

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

// TestIdleStop: a muxer starts with the first request and stops after
// IdleTimeout without one; the next request starts a new one.
func TestIdleStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{IdleTimeout: 1500 * time.Millisecond})
	e.publish(t, "fmp4_h264_aac.mp4", "live/test", mediatest.PublishOptions{})
	if m := e.hls.Muxers(); len(m) != 0 {
		t.Fatalf("muxers before any request: %v", m)
	}
	mustGet(t, e.url+"live/test/index.m3u8")
	if m := e.hls.Muxers(); !slices.Equal(m, []string{"live/test"}) {
		t.Fatalf("muxers: %v", m)
	}
	waitFor(t, "idle muxer stops", 5*time.Second, func() bool { return len(e.hls.Muxers()) == 0 })
	mustGet(t, e.url+"live/test/index.m3u8")
}

// TestAlwaysOn: with AlwaysOn a muxer starts when the broadcast appears,
// without a request, and the first request finds a playlist at once.
func TestAlwaysOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{AlwaysOn: true, IdleTimeout: time.Second})
	e.publish(t, "fmp4_h264_aac.mp4", "live/a", mediatest.PublishOptions{})
	waitFor(t, "muxer for live/a", 5*time.Second, func() bool { return slices.Contains(e.hls.Muxers(), "live/a") })
	time.Sleep(3 * time.Second) // past the first segment and the idle timeout
	if !slices.Contains(e.hls.Muxers(), "live/a") {
		t.Fatal("always-on muxer stopped without requests")
	}
	r := mustGet(t, e.url+"live/a/video1_stream.m3u8")
	if r.took > 200*time.Millisecond {
		t.Errorf("first request took %s with an always-on muxer", r.took)
	}
	// A broadcast that starts later is found too.
	e.publish(t, "fmp4_h264_aac.mp4", "live/b", mediatest.PublishOptions{})
	waitFor(t, "muxer for live/b", 5*time.Second, func() bool { return slices.Contains(e.hls.Muxers(), "live/b") })
}

// TestMuxerLimitAndAuthorize: MaxMuxers bounds the broadcasts muxed at
// once; Authorize can refuse a request.
func TestMuxerLimitAndAuthorize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{MaxMuxers: 1, Authorize: func(r *http.Request, path string) error {
		if path == "secret/x" {
			return errors.New("no")
		}
		return nil
	}})
	e.publish(t, "fmp4_h264_aac.mp4", "live/a", mediatest.PublishOptions{})
	e.publish(t, "fmp4_h264_aac.mp4", "live/b", mediatest.PublishOptions{})
	mustGet(t, e.url+"live/a/index.m3u8")
	if r := get(t, e.url+"live/b/index.m3u8"); r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("second muxer beyond MaxMuxers=1: %d %v", r.code, r.header)
	}
	if r := get(t, e.url+"secret/x/index.m3u8"); r.code != http.StatusForbidden {
		t.Errorf("refused request: %d", r.code)
	}
}

// TestNoSegmentYet: a broadcast that exists but sends no media makes the
// request wait, bounded by WaitTimeout, then 503.
func TestNoSegmentYet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{WaitTimeout: time.Second})
	clip, err := mediatest.LoadClip(mediatest.TestdataPath("fmp4_h264_aac.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	clip.Frames = nil // catalog only
	e.publishClip(t, clip, "live/test")
	r := get(t, e.url+"live/test/index.m3u8")
	if r.code != http.StatusServiceUnavailable || r.took < 900*time.Millisecond {
		t.Errorf("%d after %s", r.code, r.took)
	}
}
