package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

// The embedded pages (internal/ui) in a real Chromium against a real
// moqgate fed by ffmpeg over RTMP and by the publish page over WHIP.

// watchState is the watch page's window.__watch.
type watchState struct {
	Transport   string `json:"transport"`
	State       string `json:"state"`
	Frames      int    `json:"frames"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	LatencyMs   *int   `json:"latencyMs"`
	LatencyKind string `json:"latencyKind"`
	Stalls      int    `json:"stalls"`
	Message     string `json:"message"`
	Error       string `json:"error"`
}

// artifactDir is where the UI tests keep their screenshots:
// $MOQGATE_TEST_ARTIFACTS/<test> when set (CI uploads it), else a
// temporary directory of the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if base := os.Getenv("MOQGATE_TEST_ARTIFACTS"); base != "" {
		dir = filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, p *browsertest.Page, dir, name string) {
	t.Helper()
	file := filepath.Join(dir, name+".png")
	if err := p.Screenshot(ctx, file); err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", file)
}

// rtmpPush publishes a 640x360 H.264 (no B-frames, a keyframe a second)
// and AAC test signal for the given time.
func rtmpPush(t *testing.T, ctx context.Context, rtmpURL string, seconds int) {
	ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30", "-bf", "0",
		"-c:a", "aac", "-f", "flv", rtmpURL)
}

// tall is a viewport that shows the watch page's stats below the player.
var tall = browsertest.OpenOptions{Width: 1280, Height: 900}

// watchPlays opens the watch page and checks that decoded frames keep
// being presented for 5 s and that the page names the transport.
func watchPlays(t *testing.T, ctx context.Context, b *browsertest.Browser, pageURL, transport, shots string) watchState {
	t.Helper()
	p, err := b.Open(ctx, "watch-"+transport, pageURL, tall)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var st watchState
	if err := p.Wait(ctx, `window.__watch && window.__watch.frames > 0 && window.__watch`, 40*time.Second, &st); err != nil {
		p.Eval(ctx, `window.__watch`, &st)
		screenshot(t, ctx, p, shots, "watch-"+transport+"-failed")
		t.Fatalf("no frame over %s: %v (page state %+v)", transport, err, st)
	}
	// Frames must advance in every one of five seconds.
	prev := st.Frames
	for i := range 5 {
		time.Sleep(time.Second)
		if err := p.Eval(ctx, `window.__watch`, &st); err != nil {
			t.Fatal(err)
		}
		if st.Frames <= prev {
			screenshot(t, ctx, p, shots, "watch-"+transport+"-stuck")
			t.Fatalf("%s: frames stopped at %d in second %d (%+v)", transport, st.Frames, i+1, st)
		}
		prev = st.Frames
	}
	var shown string
	if err := p.Eval(ctx, `document.querySelector("#s-transport").textContent + " / " + document.querySelector("#s-resolution").textContent`, &shown); err != nil {
		t.Fatal(err)
	}
	noCSPViolations(t, ctx, p)
	screenshot(t, ctx, p, shots, "watch-"+transport)
	want := map[string]string{"moq": "MoQ", "whep": "WHEP", "hls": "LL-HLS"}[transport]
	if st.Transport != transport || !strings.HasPrefix(shown, want+" / ") {
		t.Errorf("page shows transport %q (state %q), want %s", shown, st.Transport, want)
	}
	if st.Width != 640 || st.Height != 360 {
		t.Errorf("%s: resolution %dx%d, want 640x360", transport, st.Width, st.Height)
	}
	lat := "none"
	if st.LatencyMs != nil {
		lat = fmt.Sprintf("%d ms (%s)", *st.LatencyMs, st.LatencyKind)
	}
	t.Logf("%s: %d frames, %dx%d, latency %s, %d stalls; page shows %q", transport, st.Frames, st.Width, st.Height, lat, st.Stalls, shown)
	return st
}

// noCSPViolations fails t if the page's Content-Security-Policy (which
// allows this server only) blocked anything.
func noCSPViolations(t *testing.T, ctx context.Context, p *browsertest.Page) {
	t.Helper()
	var v []string
	if err := p.Eval(ctx, `window.__cspViolations`, &v); err != nil {
		t.Fatal(err)
	}
	if len(v) > 0 {
		t.Errorf("the page's Content-Security-Policy blocked: %v", v)
	}
}

// listPaths is the broadcast paths the list page shows.
const listPaths = `[...document.querySelectorAll("#list .card")].map((c) => c.dataset.path)`

// TestWebUI: one moqgate, one Chromium. The list page shows an RTMP
// broadcast within 2 s of the API and drops it within 2 s after it ends;
// the watch page plays it over MoQ (its default in Chromium), WHEP and
// LL-HLS, falls back to WHEP without WebTransport, and explains an unknown
// broadcast and a WHEP refusal; the publish page (fake camera) becomes a
// broadcast that `moqgate sub` records as H.264 and Opus, and shares a
// screen in VP8.
func TestWebUI(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	g := startGate(t, "")
	b := browsertest.Launch(t, webrtcChromiumArgs...)
	shots := artifactDir(t)

	list, err := b.Open(ctx, "list", g.Web+"/", browsertest.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Wait(ctx, `!document.querySelector("#empty").classList.contains("hidden")`, 10*time.Second, nil); err != nil {
		t.Fatalf("the list page does not say that nothing is live: %v", err)
	}
	screenshot(t, ctx, list, shots, "list-empty")

	const path = "live/ui"
	pushCtx, stopPush := context.WithCancel(ctx)
	defer stopPush()
	rtmpPush(t, pushCtx, g.RTMP+"/"+path, 120)
	g.waitBroadcast(t, ctx, path)
	t0 := time.Now()
	if err := list.Wait(ctx, listPaths+`.includes("live/ui")`, 2*time.Second, nil); err != nil {
		t.Fatalf("the list page did not show %s within 2 s of the API: %v", path, err)
	}
	t.Logf("list page showed %s %s after the API", path, time.Since(t0).Round(time.Millisecond))

	for _, tr := range []string{"moq", "whep", "hls"} {
		t.Run(tr, func(t *testing.T) {
			u := g.Web + "/watch/" + path + "?transport=" + tr
			if tr == "moq" {
				u = g.Web + "/watch/" + path // the default where there is WebTransport
			}
			watchPlays(t, ctx, b, u, tr, shots)
		})
	}
	t.Run("no-webtransport", func(t *testing.T) {
		// A browser without WebTransport: the default falls back to WHEP,
		// and asking for MoQ says what is missing.
		noWT := browsertest.OpenOptions{Init: "delete window.WebTransport;"}
		p, err := b.Open(ctx, "watch-nowt", g.Web+"/watch/"+path, noWT)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		var tr string
		if err := p.Wait(ctx, `window.__watch && window.__watch.frames > 0 && window.__watch.transport`, 40*time.Second, &tr); err != nil || tr != "whep" {
			t.Errorf("default transport without WebTransport %q (%v), want whep", tr, err)
		}
		q, err := b.Open(ctx, "watch-nowt-moq", g.Web+"/watch/"+path+"?transport=moq", noWT)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close(ctx)
		var msg string
		if err := q.Wait(ctx, `window.__watch && window.__watch.state === "unsupported" && window.__watch.message`, 10*time.Second, &msg); err != nil {
			t.Fatalf("no message for MoQ without WebTransport: %v", err)
		}
		t.Logf("MoQ without WebTransport: %q", msg)
		if !strings.Contains(msg, "WebTransport") {
			t.Errorf("message %q does not name WebTransport", msg)
		}
		screenshot(t, ctx, q, shots, "watch-no-webtransport")
	})
	t.Run("unknown", func(t *testing.T) {
		p, err := b.Open(ctx, "watch-unknown", g.Web+"/watch/live/nobody", browsertest.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		var msg string
		if err := p.Wait(ctx, `window.__watch && window.__watch.state === "offline" && window.__watch.message`, 10*time.Second, &msg); err != nil {
			t.Fatalf("no message for an unknown broadcast: %v", err)
		}
		if !strings.Contains(msg, "live/nobody") {
			t.Errorf("unknown broadcast message %q does not name it", msg)
		}
		screenshot(t, ctx, p, shots, "watch-unknown")
	})

	t.Run("whep-bframes", func(t *testing.T) {
		// A broadcast with B-frames plays over WHEP too: moqgate
		// re-encodes its video for WebRTC (the page retries a 503 while
		// the transcoder starts).
		ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-t", "60",
			"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2", "-f", "flv", g.RTMP+"/live/bframes")
		g.waitBroadcast(t, ctx, "live/bframes")
		p, err := b.Open(ctx, "watch-bframes", g.Web+"/watch/live/bframes?transport=whep", browsertest.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		var st watchState
		if err := p.Wait(ctx, `window.__watch && window.__watch.frames > 30 && window.__watch`, 40*time.Second, &st); err != nil {
			p.Eval(ctx, `window.__watch`, &st)
			screenshot(t, ctx, p, shots, "watch-whep-bframes-failed")
			t.Fatalf("B-frames over WHEP: no frames (%+v): %v", st, err)
		}
		prev := st.Frames
		time.Sleep(2 * time.Second)
		if err := p.Eval(ctx, `window.__watch`, &st); err != nil || st.Frames <= prev || st.Transport != "whep" {
			t.Errorf("B-frames over WHEP: frames %d then %+v (%v)", prev, st, err)
		}
		screenshot(t, ctx, p, shots, "watch-whep-bframes")
	})

	t.Run("publish", func(t *testing.T) { publishPage(t, ctx, g, b, list, shots) })
	t.Run("publish-screen", func(t *testing.T) {
		// Headless Chromium with the fake UI shares a fake screen.
		const path = "live/screen"
		p, err := b.Open(ctx, "publish-screen", g.Web+"/publish/"+path+"?source=screen&codec=vp8", tall)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		if err := p.Eval(ctx, `document.querySelector("#start").click()`, nil); err != nil {
			t.Fatal(err)
		}
		var codec string
		if err := p.Wait(ctx, `window.__publish.state === "live" && window.__publish.framesSent > 30 && window.__publish.codec`, 30*time.Second, &codec); err != nil {
			var st map[string]any
			p.Eval(ctx, `window.__publish`, &st)
			t.Fatalf("screen not published: %v (%v)", err, st)
		}
		if !strings.EqualFold(codec, "vp8") {
			t.Errorf("screen sent as %q, want VP8", codec)
		}
		g.waitBroadcast(t, ctx, path)
		screenshot(t, ctx, p, shots, "publish-screen")
	})

	screenshot(t, ctx, list, shots, "list-live")
	noCSPViolations(t, ctx, list)
	stopPush()
	waitFor(t, ctx, "the RTMP broadcast to end", func() bool {
		return !slices.ContainsFunc(g.broadcasts(t), func(b map[string]any) bool { return b["path"] == path })
	})
	t0 = time.Now()
	if err := list.Wait(ctx, `!`+listPaths+`.includes("live/ui")`, 2*time.Second, nil); err != nil {
		t.Fatalf("the list page still shows %s 2 s after it ended: %v", path, err)
	}
	t.Logf("list page dropped %s %s after the API", path, time.Since(t0).Round(time.Millisecond))
}

// publishPage publishes the fake camera and microphone from
// /publish/live/webcam over WHIP and records it with `moqgate sub`.
func publishPage(t *testing.T, ctx context.Context, g *gate, b *browsertest.Browser, list *browsertest.Page, shots string) {
	const path = "live/webcam"
	p, err := b.Open(ctx, "publish", g.Web+"/publish/"+path, tall)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.Wait(ctx, `window.__publish && document.querySelector("#start")`, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Eval(ctx, `document.querySelector("#start").click()`, nil); err != nil {
		t.Fatal(err)
	}
	var state string
	if err := p.Wait(ctx, `window.__publish.state !== "starting" && window.__publish.state !== "idle" && window.__publish.state`, 20*time.Second, &state); err != nil || state != "live" {
		var msg string
		p.Eval(ctx, `window.__publish.error`, &msg)
		t.Fatalf("publish page state %q (%v): %s", state, err, msg)
	}
	g.waitBroadcast(t, ctx, path)
	if err := list.Wait(ctx, listPaths+`.includes("live/webcam")`, 2*time.Second, nil); err != nil {
		t.Errorf("the list page did not show %s within 2 s of the API: %v", path, err)
	}
	file, subDone := sub(t, ctx, g.MoQ, path, "--duration", "5s")
	waitExit(t, subDone, 30*time.Second)
	screenshot(t, ctx, p, shots, "publish")
	noCSPViolations(t, ctx, p)
	pr := ffprobe(t, file)
	var codecs []string
	for _, s := range pr.Streams {
		codecs = append(codecs, s.CodecName)
	}
	t.Logf("moqgate sub recorded the publish page: %v, %d packets", codecs, len(pr.Packets))
	if !slices.Contains(codecs, "h264") || !slices.Contains(codecs, "opus") {
		t.Errorf("recorded streams %v, want h264 and opus", codecs)
	}
	decodesVFR(t, file)
	// Stop ends the WHIP session (DELETE), and with it the broadcast.
	if err := p.Eval(ctx, `document.querySelector("#stop").click()`, nil); err != nil {
		t.Fatal(err)
	}
	var del int
	if err := p.Wait(ctx, `window.__publish.deleteStatus`, 5*time.Second, &del); err != nil || del != 200 {
		t.Errorf("Stop: WHIP DELETE answered %d (%v), want 200", del, err)
	}
	waitFor(t, ctx, "the published broadcast to end", func() bool {
		return !slices.ContainsFunc(g.broadcasts(t), func(b map[string]any) bool { return b["path"] == path })
	})
}

// TestWebUIAuth: with JWT auth on, the watch page with a valid ?jwt=
// plays over each transport; without a token, or with one for another
// path, it shows the refusal and plays nothing. The publish page is
// refused without a token and, with one, publishes VP8 in two simulcast
// renditions.
func TestWebUIAuth(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	secret := writeSecret(t, "0123456789abcdef0123456789abcdef")
	g := startGate(t, "", "--jwt-secret-file", secret)
	const path = "live/secret"
	rtmpPush(t, ctx, g.RTMP+"/"+path+"?jwt="+mint(t, secret, "--pub", "live/"), 120)
	g.waitBroadcast(t, ctx, path)
	b := browsertest.Launch(t, webrtcChromiumArgs...)
	shots := artifactDir(t)

	tok := url.QueryEscape(mint(t, secret, "--sub", "live/"))
	for _, tr := range []string{"moq", "whep", "hls"} {
		t.Run("token-"+tr, func(t *testing.T) {
			watchPlays(t, ctx, b, g.Web+"/watch/"+path+"?transport="+tr+"&jwt="+tok, tr, shots)
		})
	}
	t.Run("list", func(t *testing.T) {
		// The list shows what the page's token may watch, and its links
		// carry the token on; without one it says a token is needed.
		rtmpPush(t, ctx, g.RTMP+"/other/hidden?jwt="+mint(t, secret, "--pub", "other/"), 60)
		g.waitBroadcast(t, ctx, "other/hidden")
		p, err := b.Open(ctx, "list", g.Web+"/?jwt="+tok, browsertest.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		var paths []string
		if err := p.Wait(ctx, listPaths+`.length > 0 && `+listPaths, 10*time.Second, &paths); err != nil {
			t.Fatalf("the list page with a live/ token shows nothing: %v", err)
		}
		time.Sleep(1500 * time.Millisecond) // a poll more
		p.Eval(ctx, listPaths, &paths)
		if strings.Join(paths, ",") != path {
			t.Errorf("the list page with a live/ token shows %v, want [%s]", paths, path)
		}
		var href string
		p.Eval(ctx, `document.querySelector("#list .card a.name").href`, &href)
		if !strings.Contains(href, "jwt=") {
			t.Errorf("the card's link %s does not carry the token", href)
		}
		anon, err := b.Open(ctx, "list-anon", g.Web+"/", browsertest.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer anon.Close(ctx)
		var msg string
		if err := anon.Wait(ctx, `document.querySelector("#updated").textContent.includes("needs a token") && document.querySelector("#updated").textContent`, 10*time.Second, &msg); err != nil {
			t.Errorf("the list page without a token does not ask for one: %v", err)
		}
		if err := anon.Eval(ctx, listPaths, &paths); err != nil || len(paths) != 0 {
			t.Errorf("the list page without a token shows %v", paths)
		}
	})
	for name, q := range map[string]string{
		"no-token":      "",
		"other-path":    "&jwt=" + url.QueryEscape(mint(t, secret, "--sub", "other/")),
		"bad-signature": "&jwt=" + tok + "x",
	} {
		t.Run(name, func(t *testing.T) {
			p, err := b.Open(ctx, "refused-"+name, g.Web+"/watch/"+path+"?transport=moq"+q, browsertest.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(ctx)
			var st watchState
			if err := p.Wait(ctx, `window.__watch && window.__watch.state === "refused" && window.__watch`, 10*time.Second, &st); err != nil {
				t.Fatalf("no refusal: %v", err)
			}
			var form bool
			if err := p.Eval(ctx, `!document.querySelector("#tokenform").classList.contains("hidden")`, &form); err != nil || !form {
				t.Errorf("the refusal offers no token field (%v)", err)
			}
			time.Sleep(2 * time.Second)
			if err := p.Eval(ctx, `window.__watch`, &st); err != nil || st.Frames != 0 {
				t.Errorf("refused page shows frames: %+v %v", st, err)
			}
			t.Logf("%s: %q", name, st.Message)
			noCSPViolations(t, ctx, p)
			screenshot(t, ctx, p, shots, "refused-"+name)
		})
	}
	t.Run("publish", func(t *testing.T) {
		const cam = "live/cam"
		p, err := b.Open(ctx, "publish", g.Web+"/publish/"+cam+"?codec=vp8&simulcast=1", tall)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		start := func() string {
			t.Helper()
			if err := p.Wait(ctx, `window.__publish && document.querySelector("#start") && !document.querySelector("#start").disabled`, 10*time.Second, nil); err != nil {
				t.Fatal(err)
			}
			if err := p.Eval(ctx, `document.querySelector("#start").click()`, nil); err != nil {
				t.Fatal(err)
			}
			var state string
			if err := p.Wait(ctx, `!["starting", "idle"].includes(window.__publish.state) && window.__publish.state`, 20*time.Second, &state); err != nil {
				t.Fatal(err)
			}
			return state
		}
		if state := start(); state != "error" {
			t.Fatalf("publishing without a token: state %q, want error", state)
		}
		var msg string
		p.Eval(ctx, `window.__publish.error`, &msg)
		t.Logf("without a token: %q", msg)
		if !strings.Contains(msg, "401") {
			t.Errorf("refusal message %q does not tell the 401", msg)
		}
		screenshot(t, ctx, p, shots, "publish-refused")
		pub := mint(t, secret, "--pub", cam)
		if err := p.Eval(ctx, `document.querySelector("#token").value = `+jsString(pub), nil); err != nil {
			t.Fatal(err)
		}
		if state := start(); state != "live" {
			p.Eval(ctx, `window.__publish.error`, &msg)
			t.Fatalf("publishing with a token: state %q: %s", state, msg)
		}
		g.waitBroadcast(t, ctx, cam)
		waitFor(t, ctx, "the simulcast renditions video-h and video-l", func() bool {
			for _, b := range g.broadcasts(t) {
				if b["path"] != cam {
					continue
				}
				var names []string
				tracks, _ := b["tracks"].([]any)
				for _, tr := range tracks {
					if m, ok := tr.(map[string]any); ok {
						n, _ := m["name"].(string)
						names = append(names, n)
					}
				}
				return slices.Contains(names, "video-h") && slices.Contains(names, "video-l")
			}
			return false
		})
		var codec string
		if err := p.Wait(ctx, `window.__publish.codec`, 10*time.Second, &codec); err != nil || !strings.EqualFold(codec, "vp8") {
			t.Errorf("publish page sends %q (%v), want VP8", codec, err)
		}
		screenshot(t, ctx, p, shots, "publish-simulcast")
	})
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
