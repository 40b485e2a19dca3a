package e2e

import (
	"context"
	"testing"
	"time"
)

// TestRelayChainAcrossDrafts: origin ← edge as two processes, the edge
// pulling over one draft and serving its viewer (`moqgate sub`) over
// another: draft-17 upstream (WebTransport and raw QUIC) to a draft-14 or
// draft-16 viewer, and draft-14 upstream to a draft-17 viewer. ffprobe
// checks what the viewer recorded; the logs show which draft each
// session spoke.
func TestRelayChainAcrossDrafts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upstream func(origin *gate) string
		viewer   string // --draft of the viewer
		up, down string // version= in the origin's / edge's session logs
	}{
		{"webtransport-17-to-14", func(o *gate) string { return o.WT + "?insecure=1&draft=17" }, "14", "0xff000011", "0xff00000e"},
		{"quic-17-to-16", func(o *gate) string { return o.MoQ + "?insecure=1&draft=17" }, "16", "0xff000011", "0xff000010"},
		{"quic-14-to-17", func(o *gate) string { return o.MoQ + "?insecure=1&draft=14" }, "17", "0xff00000e", "0xff000011"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			origin := startGate(t, "rtmp:\n  grace_period: 10s\n")
			edge := startGate(t, "", "--upstream", tc.upstream(origin))
			ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
				"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "40",
				"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac", "-f", "flv", origin.RTMP+"/live/chain")
			origin.waitBroadcast(t, ctx, "live/chain")
			edge.waitBroadcast(t, ctx, "live/chain") // learnt by SUBSCRIBE_NAMESPACE
			file, done := sub(t, ctx, edge.MoQ, "live/chain", "--duration", "6s", "--draft", tc.viewer)
			waitExit(t, done, 30*time.Second)
			p := ffprobe(t, file)
			if len(p.Streams) != 2 || p.Streams[0].CodecName != "h264" || p.Streams[1].CodecName != "aac" {
				t.Fatalf("streams %+v", p.Streams)
			}
			if frames := atoi(p.Streams[0].NbFrames); frames < 4*30 {
				t.Fatalf("only %d video frames in 6 s", frames)
			}
			if origin.logs.count("moq session started", "version="+tc.up) == 0 {
				t.Fatalf("the origin logged no session with version=%s (the edge's)", tc.up)
			}
			if edge.logs.count("moq session started", "version="+tc.down) == 0 {
				t.Fatalf("the edge logged no session with version=%s (the viewer's)", tc.down)
			}
			t.Logf("viewer: %s video frames", p.Streams[0].NbFrames)
		})
	}
}
