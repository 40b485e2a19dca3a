package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestHardenMoQSessionsPerIP: limits.sessions_per_ip bounds one address's
// MoQ sessions: with 2 allowed and 2 viewers watching, 20 more QUIC
// sessions from the same address are refused at once (the QUIC close
// names the limit; limit_refusals_total{limit="sessions"} counts them)
// while the first viewer keeps receiving; after a SIGHUP raising the
// limit a newcomer gets in.
func TestHardenMoQSessionsPerIP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const yaml = "limits:\n  sessions_per_ip: %d\n"
	g := startGate(t, strings.Replace(yaml, "%d", "2", 1))
	ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30", "-t", "60",
		"-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30", "-f", "flv", g.RTMP+"/live/s")
	g.waitBroadcast(t, ctx, "live/s")
	healthy, healthyDone := sub(t, ctx, g.MoQ, "live/s", "--duration", "15s")
	_, secondDone := sub(t, ctx, g.MoQ, "live/s", "--duration", "15s")
	time.Sleep(time.Second) // both set up
	const refused = 20
	base := g.peakRSS(t)
	for i := range refused {
		if out := moqClient(t, ctx, g, "sub", "live/s"); !strings.Contains(out, "limit per IP reached") {
			t.Fatalf("session %d over the per-IP limit: not refused for it:\n%s", i+3, out)
		}
	}
	if got := scrapeMetrics(t, ctx, g.Web)[`moqgate_limit_refusals_total{limit="sessions"}`]; got != refused {
		t.Errorf(`limit_refusals_total{limit="sessions"} = %v, want %d`, got, refused)
	}
	peak := g.peakRSS(t)
	t.Logf("%d sessions over the limit refused; peak RSS %d -> %d MiB", refused, base>>20, peak>>20)
	peakBound(t, base, peak, 32<<20)
	waitExit(t, healthyDone, 30*time.Second)
	waitExit(t, secondDone, 30*time.Second)
	var frames int
	for _, s := range ffprobe(t, healthy).Streams {
		if s.CodecType == "video" {
			frames = atoi(s.NbFrames)
		}
	}
	if frames < 300 { // 15 s at 30 fps, with slack for a loaded machine
		t.Errorf("the healthy viewer got %d frames in 15 s", frames)
	}
	t.Logf("healthy viewer: %d frames in 15 s while %d sessions were refused", frames, refused)
	g.reload(t, strings.Replace(yaml, "%d", "20", 1))
	_, done := sub(t, ctx, g.MoQ, "live/s", "--duration", "1s")
	waitExit(t, done, 30*time.Second) // a viewer after raising the limit
}
