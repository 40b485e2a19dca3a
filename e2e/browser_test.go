package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

// servePage serves web/dist with the page web/pages/NAME laid over it as it
// is in the source tree, even if web/dist is older, and returns the base URL.
func servePage(t *testing.T, name string) string {
	t.Helper()
	page, err := os.ReadFile("../web/pages/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return browsertest.Serve(t, map[string]string{"/" + name: string(page)})
}

// watchResult is what web/pages/watch.html reports.
type watchResult struct {
	OK              bool                `json:"ok"`
	Reason          string              `json:"reason"`
	ALPN            string              `json:"alpn"`
	Version         string              `json:"version"`
	Codec           string              `json:"codec"`
	DecodedAdvances int                 `json:"decodedAdvances"`
	DecodedSpanMs   float64             `json:"decodedSpanMs"`
	RenderedAdv     int                 `json:"renderedAdvances"`
	PixelChanges    int                 `json:"pixelChanges"`
	FirstFrameMs    float64             `json:"firstFrameMs"`
	Catalog         map[string][]string `json:"catalog"`
	Errors          []string            `json:"errors"`
}

// TestMoQWatchPlaysRTMP: ffmpeg pushes RTMP into moqgate; @moq/watch (an
// independent MoQ player) in headless Chromium finds the broadcast by
// discovery, opens WebTransport with the pinned certificate hash, and
// decodes and renders advancing video. It offers moqt-19..moqt-15 (and
// moq-lite), so moqgate selects moqt-17 and the two speak draft-17; with
// relay.max_draft 16, moqt-16 and draft-16.
func TestMoQWatchPlaysRTMP(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerChromium)
	for _, tc := range []struct {
		name, bframes, extra string
		draft                int
	}{
		{"discovery", "0", "", 17},
		{"bframes-msf-catalog", "2", "&catalog-format=msf&reload=false", 17},
		{"draft16/discovery", "0", "", 16},
		{"draft16/bframes-msf-catalog", "2", "&catalog-format=msf&reload=false", 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			yaml := ""
			if tc.draft == 16 {
				yaml = "relay:\n  max_draft: 16\n"
			}
			g := startGate(t, yaml)
			ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
				"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
				"-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", tc.bframes,
				"-c:a", "aac", "-f", "flv", g.RTMP+"/live/test")
			g.waitBroadcast(t, ctx, "live/test")
			base := servePage(t, "watch.html")
			pageURL := base + "/watch.html?url=" + url.QueryEscape(g.Web+"/") + "&name=live/test&timeout=30000" + tc.extra
			raw, err := browsertest.RunPage(t, ctx, pageURL, browsertest.PageOptions{Timeout: 40 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			r := browsertest.Decode[watchResult](t, raw)
			if !r.OK {
				t.Fatalf("@moq/watch did not play: %s (%s)", r.Reason, raw)
			}
			alpn, version := fmt.Sprintf("moqt-%d", tc.draft), fmt.Sprintf("moq-transport-%d", tc.draft)
			if r.ALPN != alpn || r.Version != version {
				t.Fatalf("@moq/watch negotiated %q and speaks %q, want %s / %s", r.ALPN, r.Version, alpn, version)
			}
			// The server's side of it: the session's version in its log.
			if want := fmt.Sprintf("version=%#x", 0xff000000+tc.draft); g.logs.count("moq session started", want) == 0 {
				t.Fatalf("no moqgate session with %s in the log", want)
			}
			t.Logf("@moq/watch: codec %s, %d decoded frames over %.0f ms, %d rendered, %d pixel changes, first frame after %.0f ms",
				r.Codec, r.DecodedAdvances, r.DecodedSpanMs, r.RenderedAdv, r.PixelChanges, r.FirstFrameMs)
		})
	}
}
