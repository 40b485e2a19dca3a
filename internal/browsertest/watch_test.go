package browsertest

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// WatchResult is what web/pages/watch.html reports (the fields tests use).
type watchResult struct {
	OK               bool     `json:"ok"`
	Reason           string   `json:"reason"`
	Connection       string   `json:"connection"`
	Broadcast        string   `json:"broadcast"`
	Codec            string   `json:"codec"`
	FramesReceived   int      `json:"framesReceived"`
	DecodedAdvances  int      `json:"decodedAdvances"`
	DecodedSpanMs    float64  `json:"decodedSpanMs"`
	RenderedAdvances int      `json:"renderedAdvances"`
	PixelChanges     int      `json:"pixelChanges"`
	Errors           []string `json:"errors"`
}

// TestWatchPage plays a broadcast from the minimal publisher in
// minipub_test.go with @moq/watch in Chromium: the page must report decoded,
// advancing video — through the announcement path (default) and with
// reload=false — and must report failure when the video stops early. This
// checks watch.html's detection, the certificate hash pinning with a
// certs.Manager certificate, and the harness, independently of moqgate's relay.
func TestWatchPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	RequirePeer(t, PeerChromium)
	base := Serve(t, nil)
	media := makeMedia(t, 20)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	run := func(t *testing.T, pub *miniPublisher, extra url.Values, pageTimeout time.Duration) watchResult {
		t.Helper()
		q := url.Values{"url": {pub.url}, "name": {"live/test"}, "timeout": {strconv.FormatInt(pageTimeout.Milliseconds(), 10)}}
		for k, v := range extra {
			q[k] = v
		}
		raw, err := RunPage(t, ctx, base+"/watch.html?"+q.Encode(), PageOptions{Timeout: pageTimeout + 15*time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("result: %s", raw)
		return Decode[watchResult](t, raw)
	}

	t.Run("announced", func(t *testing.T) {
		res := run(t, startMiniPublisher(t, media, 0), nil, 30*time.Second)
		if !res.OK {
			t.Fatalf("video not decoded and advancing: %s", res.Reason)
		}
		if res.Codec != media.codec || res.Broadcast != "live" {
			t.Errorf("codec %q broadcast %q", res.Codec, res.Broadcast)
		}
	})
	t.Run("reload=false", func(t *testing.T) {
		res := run(t, startMiniPublisher(t, media, 0), url.Values{"reload": {"false"}}, 30*time.Second)
		if !res.OK {
			t.Fatalf("video not decoded and advancing: %s", res.Reason)
		}
	})
	t.Run("stops", func(t *testing.T) {
		// 15 frames = 0.5 s of video: decoded, but not advancing for 1 s.
		res := run(t, startMiniPublisher(t, media, 15), url.Values{"reload": {"false"}}, 8*time.Second)
		if res.OK {
			t.Fatal("page reported advancing video for a stream that stopped after 15 frames")
		}
		if res.DecodedAdvances == 0 || res.DecodedAdvances > 15 {
			t.Errorf("decoded %d frames, want 1..15", res.DecodedAdvances)
		}
	})
}
