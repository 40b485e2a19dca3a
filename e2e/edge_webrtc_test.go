package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/rtctest"
)

// TestEdgeWHEP: an edge serves WHEP like the origin, through the media
// model alone. For an RTMP broadcast (H.264 + AAC) published on the
// origin, a WHEP viewer on the edge gets Opus audio: its subscription to
// the Opus rendition crosses the edge and makes the origin transcode (once,
// on the origin). For a WHIP broadcast on the origin, the edge viewer's
// key-frame request crosses the relay as a draft-16 NEW_GROUP_REQUEST and
// reaches the WHIP publisher as a PLI.
func TestEdgeWHEP(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// No periodic PLIs on the origin: they would hold back (rate limit)
	// the one the edge viewer asks for.
	origin := startGate(t, "webrtc:\n  keyframe_interval: 0s\n")
	edge := startGate(t, "", "--upstream", origin.MoQ+"?insecure=1&draft=16")

	pushRTMP(t, ctx, origin, "640x360", "0")
	edge.waitBroadcast(t, ctx, "live/test")
	st := viewWHEP(t, ctx, edge.Web+"/whep/live/test", 4*time.Second)
	vs, as := st["video"], st["audio"]
	t.Logf("edge WHEP viewer of RTMP: video %s %d frames, audio %s %d packets", vs.Codec, vs.Frames, as.Codec, as.Frames)
	if vs.Frames < 60 || !strings.EqualFold(as.Codec, "audio/opus") || as.Frames < 100 {
		t.Errorf("edge viewer got video %s %d frames, audio %s %d packets; want H.264 and Opus", vs.Codec, vs.Frames, as.Codec, as.Frames)
	}
	if n := origin.logs.count("AAC to Opus transcoder started"); n != 1 {
		t.Errorf("%d transcoders started on the origin, want 1", n)
	}
	if n := edge.logs.count("AAC to Opus transcoder started"); n != 0 {
		t.Errorf("%d transcoders started on the edge, want 0", n)
	}

	// A key frame every 4 s only: with one a second, a natural new group
	// often reaches the origin before the edge's request, which the relay
	// rule then rightly drops as already answered.
	video, audio := pionMedia(t, rtctest.EncodeOptions{Seconds: 4, GOP: 120})
	pub, err := rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: origin.Web + "/whip/live/pion", Video: video, Audio: audio, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	edge.waitBroadcast(t, ctx, "live/pion")
	time.Sleep(time.Second) // past the rate limit of the publisher's start PLI
	plis := func() int { return origin.logs.count(`msg="PLI sent"`, "reason=viewer") }
	before := plis()
	st = viewWHEP(t, ctx, edge.Web+"/whep/live/pion", 5*time.Second)
	if vs := st["video"]; vs.Frames < 30 || vs.Keyframes < 1 {
		t.Errorf("edge viewer of WHIP: %d frames, %d key frames", vs.Frames, vs.Keyframes)
	}
	if after := plis(); after <= before {
		t.Errorf("the edge viewer's key-frame request never reached the WHIP publisher (PLIs for viewers: %d before, %d after)", before, after)
	}
}

// viewWHEP plays a WHEP URL with a pion viewer for d and returns its stats.
func viewWHEP(t *testing.T, ctx context.Context, url string, d time.Duration) map[string]rtctest.TrackStats {
	t.Helper()
	v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: url})
	if err != nil {
		t.Fatalf("WHEP %s: %v", url, err)
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	st := v.Stats()
	if err := v.Close(); err != nil {
		t.Error(err)
	}
	return st
}
