package e2e

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

// shakaSessionRE matches moqgate's debug line for a new WebTransport MoQ
// session and captures its MoQ version.
var shakaSessionRE = regexp.MustCompile(`msg="moq session started" .*transport=webtransport version=(0x[0-9a-f]+)`)

// shakaMode is one entry of web/pages/shaka.html's result.
type shakaMode struct {
	Version       string   `json:"version"`
	OK            bool     `json:"ok"`
	Reason        string   `json:"reason"`
	Configured    string   `json:"configured"`
	Offered       []string `json:"offered"`
	Protocol      string   `json:"protocol"`
	Advanced      float64  `json:"advanced"`
	FramesDecoded int      `json:"framesDecoded"`
	FramesDropped int      `json:"framesDropped"`
	Presented     int      `json:"presented"`
	FirstFrameMs  float64  `json:"firstFrameMs"`
	ElapsedMs     float64  `json:"elapsedMs"`
	Width         int      `json:"width"`
	Height        int      `json:"height"`
	PlayerErrors  []string `json:"playerErrors"`
	PageErrors    []string `json:"pageErrors"`
}

// TestShakaPlaysRTMP: ffmpeg pushes RTMP into moqgate; Shaka Player 5.2.12
// (an independent MSF player) in headless Chromium plays it over MoQ with
// manifest.msf.version left at its default ("auto": offers moqt-16 and
// moq-00), then forced to draft-14 (offers no protocol) and draft-16
// (offers moqt-16), one after the other in one page. Each mode must advance
// currentTime by 5 s while decoding and presenting frames, with no player
// error, and reach the MoQ version its setting implies.
func TestShakaPlaysRTMP(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerChromium)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	g := startGate(t, "")
	pushRTMP(t, ctx, g, "640x360", "0")
	g.waitBroadcast(t, ctx, "live/test")
	base := servePage(t, "shaka.html")
	modes := []struct {
		version, configured, protocol string
		offered                       []string
		wire                          string // the session's version in moqgate's log
	}{
		{"default", "auto", "moqt-16", []string{"moqt-16", "moq-00"}, "0xff000010"},
		{"draft-14", "draft-14", "", nil, "0xff00000e"},
		{"draft-16", "draft-16", "moqt-16", []string{"moqt-16"}, "0xff000010"},
	}
	var versions []string
	for _, m := range modes {
		versions = append(versions, m.version)
	}
	pageURL := base + "/shaka.html?url=" + url.QueryEscape(g.WT) +
		"&fingerprint=" + url.QueryEscape(g.Web+"/certificate.sha256") +
		"&namespace=live/test&advance=5&timeout=30000&versions=" + strings.Join(versions, ",")
	raw, err := browsertest.RunPage(t, ctx, pageURL, browsertest.PageOptions{
		Timeout:      time.Duration(len(modes)) * 40 * time.Second,
		ChromiumArgs: []string{"--autoplay-policy=no-user-gesture-required"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := browsertest.Decode[struct {
		Modes        []shakaMode `json:"modes"`
		ShakaVersion string      `json:"shakaVersion"`
		Errors       []string    `json:"errors"`
	}](t, raw)
	if r.ShakaVersion != "v5.2.12" {
		t.Errorf("Shaka Player version %q, want v5.2.12", r.ShakaVersion)
	}
	if len(r.Modes) != len(modes) {
		t.Fatalf("page ran %d modes, want %d: %s", len(r.Modes), len(modes), raw)
	}
	sessions := g.logs.submatches(shakaSessionRE)
	if len(sessions) != len(modes) {
		t.Errorf("moqgate logged %d WebTransport MoQ sessions, want %d (one per mode): %v", len(sessions), len(modes), sessions)
	}
	for i, want := range modes {
		m := r.Modes[i]
		if i < len(sessions) && sessions[i][1] != want.wire {
			t.Errorf("Shaka %s: moqgate's session speaks %s, want %s", m.Version, sessions[i][1], want.wire)
		}
		t.Logf("Shaka %s (%s): %s; offered %v, server selected %q; currentTime +%.2f s, %d frames decoded (%d dropped), %d presented, %dx%d, first frame after %.0f ms, %.1f s in all; uncaught page errors meanwhile: %q",
			m.Version, m.Configured, m.Reason, m.Offered, m.Protocol, m.Advanced, m.FramesDecoded, m.FramesDropped,
			m.Presented, m.Width, m.Height, m.FirstFrameMs, m.ElapsedMs/1000, m.PageErrors)
		if !m.OK {
			t.Errorf("Shaka %s did not play: %s (player errors %v)", m.Version, m.Reason, m.PlayerErrors)
		}
		if m.Configured != want.configured || m.Protocol != want.protocol || strings.Join(m.Offered, ",") != strings.Join(want.offered, ",") {
			t.Errorf("Shaka %s: configured %q offering %v got %q, want %q offering %v getting %q",
				m.Version, m.Configured, m.Offered, m.Protocol, want.configured, want.offered, want.protocol)
		}
	}
}
