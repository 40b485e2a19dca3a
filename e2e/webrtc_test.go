package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/rtctest"
)

// Chromium flags for WebRTC pages: a fake camera and microphone, loopback
// ICE candidates, and playback without a user gesture.
var webrtcChromiumArgs = []string{
	"--use-fake-device-for-media-stream",
	"--use-fake-ui-for-media-stream",
	"--allow-loopback-in-peer-connection",
	"--autoplay-policy=no-user-gesture-required",
}

// whipResult is what web/pages/whip.html reports.
type whipResult struct {
	OK            bool     `json:"ok"`
	Reason        string   `json:"reason"`
	Codec         string   `json:"codec"`
	FramesEncoded int      `json:"framesEncoded"`
	PacketsSent   int      `json:"packetsSent"`
	AudioPackets  int      `json:"audioPacketsSent"`
	DeleteStatus  int      `json:"deleteStatus"`
	Errors        []string `json:"errors"`
}

// whepResult is what web/pages/whep.html reports.
type whepResult struct {
	OK              bool     `json:"ok"`
	Reason          string   `json:"reason"`
	Codec           string   `json:"codec"`
	AudioCodec      string   `json:"audioCodec"`
	FramesDecoded   int      `json:"framesDecoded"`
	KeyFrames       int      `json:"keyFramesDecoded"`
	FramesDropped   int      `json:"framesDropped"`
	Presented       int      `json:"presented"`
	PresentedSpanMs int      `json:"presentedSpanMs"`
	FirstFrameMs    int      `json:"firstFrameMs"`
	AudioMaxRms     float64  `json:"audioMaxRms"`
	AudioPackets    int      `json:"audioPackets"`
	JitterBufferMs  int      `json:"jitterBufferMs"`
	PLIs            int      `json:"pliCount"`
	Errors          []string `json:"errors"`
	HTTPStatus      int      `json:"httpStatus"`
	Body            string   `json:"body"`
}

func requireWebRTCPages(t *testing.T) string {
	t.Helper()
	browsertest.RequirePeer(t, browsertest.PeerChromium)
	browsertest.RequirePeer(t, browsertest.PeerNodeModules)
	browsertest.RequirePeer(t, browsertest.PeerWebDist)
	web, err := browsertest.WebDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"whip.html", "whep.html"} {
		if _, err := os.Stat(filepath.Join(web, "dist", p)); err != nil {
			if browsertest.InCI() {
				t.Fatalf("web/dist/%s missing (npm run --prefix web build): %v", p, err)
			}
			t.Skipf("web/dist/%s missing (npm run --prefix web build)", p)
		}
	}
	return browsertest.Serve(t, nil)
}

// playWHEP plays a broadcast in Chromium over WHEP and checks the result.
func playWHEP(t *testing.T, ctx context.Context, pages, whepURL string, audio bool) whepResult {
	t.Helper()
	page := pages + "/whep.html?url=" + url.QueryEscape(whepURL) + "&frames=60&span=1500&timeout=30000"
	if audio {
		page += "&audio=1"
	}
	raw, err := browsertest.RunPage(t, ctx, page, browsertest.PageOptions{Timeout: 40 * time.Second, ChromiumArgs: webrtcChromiumArgs})
	if err != nil {
		t.Fatal(err)
	}
	r := browsertest.Decode[whepResult](t, raw)
	t.Logf("WHEP in Chromium: ok=%v %s + %s, %d frames decoded (%d key, %d dropped), %d presented over %d ms, first frame after %d ms, jitter buffer %d ms, audio max RMS %.4f over %d packets, %d PLIs",
		r.OK, r.Codec, r.AudioCodec, r.FramesDecoded, r.KeyFrames, r.FramesDropped, r.Presented, r.PresentedSpanMs, r.FirstFrameMs,
		r.JitterBufferMs, r.AudioMaxRms, r.AudioPackets, r.PLIs)
	if !r.OK {
		t.Errorf("WHEP playback in Chromium failed: %s (%s)", r.Reason, raw)
	}
	return r
}

// TestWHIPFromChromiumToWHEP: Chromium publishes its fake camera and
// microphone over WHIP (H.264, then VP8, with Opus); `moqgate sub` records
// decodable video and Opus through MoQ; a second Chromium plays the
// broadcast over WHEP with advancing video and audible audio.
func TestWHIPFromChromiumToWHEP(t *testing.T) {
	pages := requireWebRTCPages(t)
	for _, codec := range []string{"h264", "vp8"} {
		t.Run(codec, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
			defer cancel()
			g := startGate(t, "")
			path := "live/" + codec
			pub := pages + "/whip.html?url=" + url.QueryEscape(g.Web+"/whip/"+path) + "&codec=" + codec + "&seconds=22"
			type res struct {
				r   whipResult
				err error
			}
			pubDone := make(chan res, 1)
			go func() {
				raw, err := browsertest.RunPage(t, ctx, pub, browsertest.PageOptions{Timeout: 60 * time.Second, ChromiumArgs: webrtcChromiumArgs})
				var r whipResult
				if err == nil {
					r = browsertest.Decode[whipResult](t, raw)
				}
				pubDone <- res{r, err}
			}()
			g.waitBroadcast(t, ctx, path)

			file, subDone := sub(t, ctx, g.MoQ, path, "--duration", "6s")
			playWHEP(t, ctx, pages, g.Web+"/whep/"+path, true)
			waitExit(t, subDone, 30*time.Second)
			p := ffprobe(t, file)
			var codecs []string
			for _, s := range p.Streams {
				codecs = append(codecs, s.CodecName)
			}
			t.Logf("moqgate sub recorded: %v, %d packets", codecs, len(p.Packets))
			if !slices.Contains(codecs, codec) || !slices.Contains(codecs, "opus") {
				t.Errorf("recorded streams %v, want %s and opus", codecs, codec)
			}
			monotonic(t, p)
			decodesVFR(t, file)

			pr := <-pubDone
			if pr.err != nil {
				t.Fatalf("WHIP publisher page: %v", pr.err)
			}
			t.Logf("WHIP from Chromium: %s, %d frames encoded, %d packets, %d audio packets, DELETE %d",
				pr.r.Codec, pr.r.FramesEncoded, pr.r.PacketsSent, pr.r.AudioPackets, pr.r.DeleteStatus)
			if !pr.r.OK || !strings.EqualFold(pr.r.Codec, "video/"+codec) {
				t.Errorf("WHIP publisher: %+v", pr.r)
			}
		})
	}
}

// TestWHIPSimulcast: Chromium publishes two VP8 encodings (rid "h" at
// 1280x720, "l" at half size) over WHIP; both become renditions of the
// broadcast (video-h, video-l) and a WHEP viewer gets the larger one.
func TestWHIPSimulcast(t *testing.T) {
	pages := requireWebRTCPages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "")
	pub := pages + "/whip.html?url=" + url.QueryEscape(g.Web+"/whip/live/sim") + "&codec=vp8&simulcast=1&width=1280&height=720&seconds=20"
	pubDone := make(chan error, 1)
	go func() {
		_, err := browsertest.RunPage(t, ctx, pub, browsertest.PageOptions{Timeout: 60 * time.Second, ChromiumArgs: webrtcChromiumArgs})
		pubDone <- err
	}()
	g.waitBroadcast(t, ctx, "live/sim")
	var names []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		names = names[:0]
		for _, b := range g.broadcasts(t) {
			if b["path"] != "live/sim" {
				continue
			}
			tracks, _ := b["tracks"].([]any)
			for _, tr := range tracks {
				if m, ok := tr.(map[string]any); ok {
					if n, _ := m["name"].(string); strings.HasPrefix(n, "video") {
						names = append(names, n)
					}
				}
			}
		}
		if slices.Contains(names, "video-h") && slices.Contains(names, "video-l") {
			break
		}
	}
	if !slices.Contains(names, "video-h") || !slices.Contains(names, "video-l") {
		t.Fatalf("video renditions %v, want video-h and video-l", names)
	}
	playWHEP(t, ctx, pages, g.Web+"/whep/live/sim", false)
	if !g.logs.contains("tracks=\"video-h=vp8") {
		t.Error("the WHEP viewer did not get the larger rendition (video-h)")
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
}

// TestWHIPFromPion: a pion-based publisher sends H.264 (Annex B) and Opus
// (Ogg) files ffmpeg encoded, as OBS would; `moqgate sub` records them
// decodable, and a pion WHEP viewer receives both with low latency.
func TestWHIPFromPion(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	video, audio := pionMedia(t, rtctest.EncodeOptions{Seconds: 4})
	g := startGate(t, "")
	pub, err := rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.Web + "/whip/live/pion", Video: video, Audio: audio,
		Loop: true, StampSEI: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	g.waitBroadcast(t, ctx, "live/pion")
	file, subDone := sub(t, ctx, g.MoQ, "live/pion", "--duration", "5s")
	v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/pion"})
	if err != nil {
		t.Fatal(err)
	}
	waitExit(t, subDone, 30*time.Second)
	checkWebRTCMetrics(t, ctx, g)
	st := v.Stats()
	if err := v.Close(); err != nil {
		t.Error(err)
	}
	vs, as := st["video"], st["audio"]
	t.Logf("pion WHEP viewer: video %s %d frames (%d key), audio %s %d packets, latency p50 %v p99 %v",
		vs.Codec, vs.Frames, vs.Keyframes, as.Codec, as.Frames, pct(vs.Latencies, 0.5), pct(vs.Latencies, 0.99))
	if vs.Frames < 60 || vs.Keyframes < 1 || as.Frames < 100 {
		t.Errorf("viewer got too little: %+v / %+v", vs, as)
	}
	p := ffprobe(t, file)
	var codecs []string
	for _, s := range p.Streams {
		codecs = append(codecs, s.CodecName)
	}
	if !slices.Contains(codecs, "h264") || !slices.Contains(codecs, "opus") {
		t.Errorf("recorded streams %v, want h264 and opus", codecs)
	}
	decodes(t, file)
}

// checkWebRTCMetrics: with one WHIP publisher and one WHEP viewer
// connected, /metrics counts each as a session of its protocol and the
// media each moves, like the other protocols'.
func checkWebRTCMetrics(t *testing.T, ctx context.Context, g *gate) {
	t.Helper()
	m := scrapeMetrics(t, ctx, g.Web)
	for _, want := range []struct {
		name string
		min  float64
	}{
		{`moqgate_sessions{protocol="whip"}`, 1},
		{`moqgate_sessions{protocol="whep"}`, 1},
		{`moqgate_bytes_received_total{protocol="whip"}`, 10000},
		{`moqgate_bytes_sent_total{protocol="whep"}`, 10000},
		{`moqgate_subscriptions{protocol="whep"}`, 1},
	} {
		if v, ok := m[want.name]; !ok || v < want.min {
			t.Errorf("/metrics: %s = %v (present %v), want at least %v", want.name, v, ok, want.min)
		}
	}
	if v := m[`moqgate_sessions{protocol="whep"}`]; v > 1 {
		t.Errorf("/metrics: %v WHEP sessions for one viewer", v)
	}
}

// pionMedia encodes H.264 (Annex B access units) and Opus packets with
// ffmpeg, for the pion WHIP publisher.
func pionMedia(t *testing.T, o rtctest.EncodeOptions) (video, audio [][]byte) {
	t.Helper()
	h264, ogg, err := rtctest.EncodeMedia(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	if video, err = rtctest.LoadH264(h264); err != nil {
		t.Fatal(err)
	}
	if audio, err = rtctest.LoadOgg(ogg); err != nil {
		t.Fatal(err)
	}
	return video, audio
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// TestWHIPToLLHLS: a WHIP broadcast (pion: H.264 + Opus) is LL-HLS too:
// ffprobe reads H.264 and Opus from it, and hls.js in Chromium plays it.
func TestWHIPToLLHLS(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFprobe)
	pages := requireWebRTCPages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	video, audio := pionMedia(t, rtctest.EncodeOptions{Seconds: 4})
	g := startGate(t, "")
	pub, err := rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.Web + "/whip/live/whiphls", Video: video, Audio: audio, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	g.waitBroadcast(t, ctx, "live/whiphls")
	src := g.Web + "/hls/live/whiphls/index.m3u8"
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", src).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", src, err)
	}
	codecs := strings.Fields(string(out))
	t.Logf("LL-HLS of a WHIP broadcast: %v", codecs)
	if !slices.Contains(codecs, "h264") || !slices.Contains(codecs, "opus") {
		t.Errorf("LL-HLS streams %v, want h264 and opus", codecs)
	}
	raw, err := browsertest.RunPage(t, ctx, pages+"/hls.html?src="+url.QueryEscape(src)+"&advance=4&timeout=40000",
		browsertest.PageOptions{Timeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		OK     bool     `json:"ok"`
		Reason string   `json:"reason"`
		Fatal  []string `json:"fatal"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || !res.OK || len(res.Fatal) > 0 {
		t.Fatalf("hls.js did not play the WHIP broadcast: %s (%v)", raw, err)
	}
}

// TestRTMPToWHEPWithAudio: ffmpeg pushes H.264/AAC over RTMP; Chromium
// plays it over WHEP with audio: the AAC is transcoded to Opus once (an
// extra audio rendition, which MoQ subscribers see too).
func TestRTMPToWHEPWithAudio(t *testing.T) {
	pages := requireWebRTCPages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	g := startGate(t, "")
	pushRTMP(t, ctx, g, "640x360", "0")
	g.waitBroadcast(t, ctx, "live/test")
	playWHEP(t, ctx, pages, g.Web+"/whep/live/test", true)
	if !g.logs.contains("AAC to Opus transcoder started") {
		t.Error("no transcoder started")
	}
	// A second viewer reuses the same transcoder.
	playWHEP(t, ctx, pages, g.Web+"/whep/live/test", true)
	if n := g.logs.count("AAC to Opus transcoder started"); n != 1 {
		t.Errorf("%d transcoders started, want 1", n)
	}
	// MoQ subscribers see the rendition too.
	file, subDone := sub(t, ctx, g.MoQ, "live/test", "--duration", "4s")
	waitExit(t, subDone, 20*time.Second)
	var codecs []string
	for _, s := range ffprobe(t, file).Streams {
		codecs = append(codecs, s.CodecName)
	}
	if !slices.Contains(codecs, "opus") || !slices.Contains(codecs, "aac") {
		t.Errorf("MoQ subscriber got %v, want aac and the opus rendition", codecs)
	}
}

// TestWHEPRefusesBFrames: WebRTC has no B-frames; with video transcoding
// off, a WHEP viewer of a broadcast whose video has them gets a clear 406,
// not garbage (sent as is, in decode order with presentation or decode
// timestamps, Chromium decodes a frame every few hundred milliseconds and
// asks for key frames all the time). An audio-only viewer still gets the
// audio.
func TestWHEPRefusesBFrames(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := startGate(t, "webrtc:\n  video_transcode: \"off\"\n")
	ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2", "-c:a", "aac", "-f", "flv", g.RTMP+"/live/bframes")
	g.waitBroadcast(t, ctx, "live/bframes")
	time.Sleep(time.Second)
	_, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/bframes"})
	he, ok := err.(*rtctest.HTTPError)
	if !ok || he.Status != http.StatusNotAcceptable || !strings.Contains(he.Body, "B-frames") ||
		!strings.Contains(he.Body, "webrtc.video_transcode") {
		t.Fatalf("WHEP of a B-frame broadcast: %v, want 406 mentioning B-frames and webrtc.video_transcode", err)
	}
	t.Logf("refused: %v", he)
	v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/bframes", NoVideo: true})
	if err != nil {
		t.Fatalf("audio-only viewer: %v", err)
	}
	defer v.Close()
	deadline := time.Now().Add(15 * time.Second)
	for v.Stats()["audio"].Packets < 50 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if st := v.Stats(); st["audio"].Packets < 50 || !strings.EqualFold(st["audio"].Codec, "audio/opus") {
		t.Errorf("audio-only viewer got %+v", st)
	}
}

// TestWHIPWHEPErrors: bad requests get clear 4xx answers and the server
// carries on.
func TestWHIPWHEPErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := startGate(t, "")
	const okOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	g711Offer := okOffer + "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 8\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n" +
		"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 " + strings.Repeat("AB:", 31) + "AB\r\n" +
		"a=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
	for _, tc := range []struct {
		name, method, path, ctype, body string
		hdr                             http.Header
		want                            int
		wantBody                        string
	}{
		{"malformed SDP", "POST", "/whip/live/x", "application/sdp", "this is not SDP", nil, 400, "malformed SDP"},
		{"no media", "POST", "/whip/live/x", "application/sdp", okOffer, nil, 400, "no media"},
		{"unsupported codecs only", "POST", "/whip/live/x", "application/sdp", g711Offer, nil, 406, "no supported codec"},
		{"wrong content type", "POST", "/whip/live/x", "text/plain", "v=0", nil, 415, "application/sdp"},
		{"no broadcast in URL", "POST", "/whip/", "application/sdp", okOffer, nil, 400, "no broadcast"},
		{"WHEP malformed SDP", "POST", "/whep/live/x", "application/sdp", "garbage\r\n", nil, 400, "malformed SDP"},
		{"WHEP unknown broadcast", "POST", "/whep/live/nothing", "application/sdp",
			strings.ReplaceAll(g711Offer, "a=sendonly", "a=recvonly"), nil, 404, "no broadcast"},
		{"DELETE unknown session", "DELETE", "/whip/live/x/0123456789abcdef", "", "", nil, 404, "no WHIP session"},
		{"PATCH unknown session", "PATCH", "/whep/live/x/0123456789abcdef", "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n", nil, 404, "no WHEP session"},
		{"GET", "GET", "/whip/live/x", "", "", nil, 405, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body, err := rtctest.Do(ctx, tc.method, g.Web+tc.path, "", tc.ctype, tc.body, tc.hdr)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, status, body, tc.want, tc.wantBody)
			}
			if hdr.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("no CORS header")
			}
		})
	}
	// CORS preflight.
	status, hdr, _, err := rtctest.Do(ctx, "OPTIONS", g.Web+"/whip/live/x", "", "", "",
		http.Header{"Origin": {"http://example.com"}, "Access-Control-Request-Method": {"POST"}})
	if err != nil || status != http.StatusNoContent || !strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(hdr.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("OPTIONS: %d %v %v", status, hdr, err)
	}
	// Still serving.
	if r := httpGet(t, g.Web+"/healthz"); r.body != "ok" {
		t.Errorf("healthz %q", r.body)
	}
	for _, l := range []string{"panic", "goroutine "} {
		if g.logs.contains(l) {
			t.Errorf("log mentions %q", l)
		}
	}
}

// count returns how many log lines contain sub.
// count counts the log lines that contain every one of subs.
func (l *logBuf) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		all := true
		for _, sub := range subs {
			all = all && strings.Contains(s, sub)
		}
		if all {
			n++
		}
	}
	return n
}

// monotonic checks that every stream's DTS increase strictly.
func monotonic(t *testing.T, p probe) {
	t.Helper()
	last := map[int]int64{}
	for _, pk := range p.Packets {
		if pk.DTS == nil {
			continue
		}
		if l, ok := last[pk.StreamIndex]; ok && *pk.DTS <= l {
			t.Errorf("stream %d: DTS %d after %d", pk.StreamIndex, *pk.DTS, l)
			return
		}
		last[pk.StreamIndex] = *pk.DTS
	}
}

// decodesVFR is decodes for variable frame rate video (a browser's camera
// under load): ffmpeg keeps the file's time base instead of rounding
// timestamps to 1/framerate, where frames a few ms apart would collide.
func decodesVFR(t *testing.T, file string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", file, "-enc_time_base:v", "-1", "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("ffmpeg could not decode %s cleanly: %v\n%s", file, err, out)
	}
}
