package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/rtctest"
)

// pushBFrames publishes 640x360 H.264 with two B-frames (x264's default,
// and OBS's) and a key frame every gop frames, with AAC, over RTMP.
func pushBFrames(t *testing.T, ctx context.Context, g *gate, path, size, gop string) *exec.Cmd {
	t.Helper()
	return ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "120", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", gop, "-keyint_min", gop,
		"-c:a", "aac", "-f", "flv", g.RTMP+"/"+path)
}

// TestWHEPTranscodesBFrames: WebRTC has no B-frames. A WHEP viewer of a
// broadcast whose video has them gets it re-encoded (one libx264 ffmpeg
// per broadcast, shared, stopped after the last viewer): decodable H.264
// without B-frames, and Opus. A viewer while the transcoder waits for its
// first key frame gets 503 with Retry-After; over webrtc.max_video_transcodes
// one gets 406 with the reason. `moqgate sub` still gets the original.
func TestWHEPTranscodesBFrames(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	g := startGate(t, "webrtc:\n  max_video_transcodes: 1\n")

	// A 20 s GOP: the transcoder started for the first viewer has no key
	// frame to start from within the wait, and holds the one slot.
	longGOP := pushBFrames(t, ctx, g, "live/longgop", "320x180", "600")
	pushBFrames(t, ctx, g, "live/bframes", "640x360", "30")
	g.waitBroadcast(t, ctx, "live/longgop")
	g.waitBroadcast(t, ctx, "live/bframes")
	time.Sleep(time.Second) // past the long GOP's first key frame
	starting := make(chan error, 1)
	go func() {
		_, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/longgop"})
		starting <- err
	}()
	for g.logs.count("video transcoder started", "broadcast=live/longgop") == 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	// Meanwhile the one slot is taken.
	_, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/bframes"})
	var he *rtctest.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusNotAcceptable || !strings.Contains(he.Body, "max_video_transcodes") {
		t.Fatalf("WHEP over the cap: %v, want 406 naming webrtc.max_video_transcodes", err)
	}
	t.Logf("over the cap: %v", he)
	err = <-starting
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || he.Header.Get("Retry-After") == "" {
		t.Fatalf("WHEP while the transcoder starts: %v, want 503 with Retry-After", err)
	}
	t.Logf("while starting: %v (Retry-After %s)", he, he.Header.Get("Retry-After"))
	// Nobody comes back for it: it stops, and frees the slot.
	for g.logs.count("video transcoder stopped", "broadcast=live/longgop") == 0 && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	longGOP.Process.Kill()

	// Once the slot is free: the viewer gets the re-encoded video.
	rec := filepath.Join(t.TempDir(), "whep.h264")
	f, err := os.Create(rec)
	if err != nil {
		t.Fatal(err)
	}
	v := viewRetrying(t, ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/bframes", H264: f})
	file, subDone := sub(t, ctx, g.MoQ, "live/bframes", "--duration", "4s")
	deadline := time.Now().Add(30 * time.Second)
	for st := v.Stats(); (st["video"].Frames < 150 || st["audio"].Packets < 150) && time.Now().Before(deadline); st = v.Stats() {
		time.Sleep(200 * time.Millisecond)
	}
	st := v.Stats()
	t.Logf("WHEP viewer: %+v", st)
	if !strings.EqualFold(st["video"].Codec, "video/H264") || st["video"].Frames < 150 || st["video"].Keyframes < 3 ||
		!strings.EqualFold(st["audio"].Codec, "audio/opus") || st["audio"].Packets < 150 {
		t.Fatalf("WHEP viewer got %+v, want 150 H.264 frames (a key frame a second) and Opus", st)
	}
	checkTranscodeAPI(t, ctx, g)
	// A second viewer shares the transcoder.
	v2 := viewRetrying(t, ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/bframes"})
	for v2.Stats()["video"].Frames < 30 && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	if n := g.logs.count("video transcoder started", "broadcast=live/bframes"); n != 1 {
		t.Errorf("%d video transcoders started for live/bframes, want 1", n)
	}
	v.Close()
	v2.Close()
	f.Close()
	checkNoBFrames(t, rec)

	// MoQ keeps the original, with its B-frames, beside the rendition.
	waitExit(t, subDone, 20*time.Second)
	p := ffprobe(t, file)
	var profiles []string
	for _, s := range p.Streams {
		profiles = append(profiles, s.CodecName+"/"+s.Profile)
		if s.CodecType == "video" && s.Profile == "High" && reordered(p, s.Index) == 0 {
			t.Errorf("MoQ original track %d has no B-frames", s.Index)
		}
	}
	t.Logf("moqgate sub: %v", profiles)
	if !strings.Contains(strings.Join(profiles, ","), "h264/High") {
		t.Errorf("moqgate sub got %v, want the original High profile H.264", profiles)
	}

	// The last viewer left: the transcoder and its ffmpeg end.
	deadline = time.Now().Add(30 * time.Second)
	for (x264Children(t, g) > 0 || !g.logs.contains("video transcoder stopped")) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := x264Children(t, g); n > 0 || !g.logs.contains("video transcoder stopped") {
		t.Errorf("%d libx264 ffmpeg processes left after the last viewer", n)
	}
	m := scrapeMetrics(t, ctx, g.Web)
	if m[`moqgate_transcodes{rendition="video-webrtc"}`] != 0 || m[`moqgate_transcodes_started_total{rendition="video-webrtc"}`] < 2 ||
		m[`moqgate_video_transcodes_refused_total`] < 1 || m[`moqgate_transcode_cpu_seconds_total{rendition="video-webrtc"}`] <= 0 {
		t.Errorf("/metrics after the transcodes: %v", m)
	}
}

// viewRetrying connects a WHEP viewer, again after a 503 (a transcoder
// starting).
func viewRetrying(t *testing.T, ctx context.Context, o rtctest.ViewOptions) *rtctest.Viewer {
	t.Helper()
	for {
		v, err := rtctest.View(ctx, o)
		var he *rtctest.HTTPError
		if errors.As(err, &he) && he.Status == http.StatusServiceUnavailable && ctx.Err() == nil {
			t.Logf("retrying after %v", he)
			time.Sleep(2 * time.Second)
			continue
		}
		if err != nil {
			t.Fatalf("WHEP viewer: %v", err)
		}
		return v
	}
}

// checkTranscodeAPI: the broadcast lists the rendition and its transcode,
// with its CPU; /metrics counts it.
func checkTranscodeAPI(t *testing.T, ctx context.Context, g *gate) {
	t.Helper()
	body, err := fetchOK(ctx, http.DefaultClient, g.Web+"/api/broadcasts/live/bframes")
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Tracks []struct {
			Name  string `json:"name"`
			Codec string `json:"codec"`
		} `json:"tracks"`
		Transcodes []struct {
			Rendition   string  `json:"rendition"`
			SourceCodec string  `json:"source_codec"`
			Ready       bool    `json:"ready"`
			CPUSeconds  float64 `json:"cpu_seconds"`
		} `json:"transcodes"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	var track, transcode bool
	for _, tr := range b.Tracks {
		track = track || tr.Name == "video-webrtc" && strings.HasPrefix(tr.Codec, "avc1.42")
	}
	for _, tc := range b.Transcodes {
		transcode = transcode || tc.Rendition == "video-webrtc" && tc.SourceCodec == "h264" && tc.Ready && tc.CPUSeconds > 0
	}
	if !track || !transcode {
		t.Errorf("/api/broadcasts/live/bframes: %s", body)
	}
	m := scrapeMetrics(t, ctx, g.Web)
	if m[`moqgate_transcodes{rendition="video-webrtc"}`] != 1 || m[`moqgate_transcodes{rendition="audio-opus"}`] != 1 {
		t.Errorf("/metrics: transcodes video %v audio %v, want 1 and 1", m[`moqgate_transcodes{rendition="video-webrtc"}`],
			m[`moqgate_transcodes{rendition="audio-opus"}`])
	}
}

// checkNoBFrames decodes what a viewer received: no decoder errors, no
// B-frames, and the picture moves (testsrc2 changes every frame).
func checkNoBFrames(t *testing.T, file string) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-f", "h264", "-show_entries", "stream=profile,has_b_frames",
		"-of", "default=nw=1", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "has_b_frames=0") || !strings.Contains(string(out), "Baseline") {
		t.Errorf("ffprobe of the received H.264: %v %s", err, out)
	}
	var stderr strings.Builder
	cmd := exec.Command("ffmpeg", "-v", "error", "-f", "h264", "-i", file, "-f", "framemd5", "-")
	cmd.Stderr = &stderr
	md5s, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("decoding the received H.264: %v %s", err, stderr.String())
	}
	frames, distinct := 0, map[string]bool{}
	for _, l := range strings.Split(string(md5s), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		frames++
		fs := strings.Split(l, ",")
		distinct[strings.TrimSpace(fs[len(fs)-1])] = true
	}
	t.Logf("received H.264: %d frames decoded, %d distinct", frames, len(distinct))
	if frames < 150 || len(distinct) < frames*9/10 {
		t.Errorf("received H.264: %d frames decoded, %d distinct; want 150 moving", frames, len(distinct))
	}
}

// reordered counts a stream's packets presented after they are decoded.
func reordered(p probe, stream int) int {
	n := 0
	for _, pk := range p.Packets {
		if pk.StreamIndex == stream && pk.PTS != nil && pk.DTS != nil && *pk.PTS > *pk.DTS {
			n++
		}
	}
	return n
}

// x264Children counts moqgate's child processes that encode with libx264.
func x264Children(t *testing.T, g *gate) int {
	t.Helper()
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(g.cmd.Process.Pid), "task", "*", "children"))
	n := 0
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, pid := range strings.Fields(string(b)) {
			cl, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
			if strings.Contains(string(cl), "libx264") {
				n++
			}
		}
	}
	return n
}

// TestRTMPBFramesToWHEPChromium: Chromium's RTCPeerConnection plays an
// RTMP broadcast with B-frames over WHEP: the re-encoded H.264 decodes and
// advances, with Opus audio.
func TestRTMPBFramesToWHEPChromium(t *testing.T) {
	pages := requireWebRTCPages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	g := startGate(t, "")
	pushBFrames(t, ctx, g, "live/test", "640x360", "30")
	g.waitBroadcast(t, ctx, "live/test")
	r := playWHEP(t, ctx, pages, g.Web+"/whep/live/test", true)
	if !strings.Contains(strings.ToLower(r.Codec), "h264") || !strings.Contains(strings.ToLower(r.AudioCodec), "opus") {
		t.Errorf("Chromium got %s + %s, want H.264 + Opus", r.Codec, r.AudioCodec)
	}
	if g.logs.count("video transcoder started", "broadcast=live/test") != 1 {
		t.Error("no video transcoder started")
	}
}

// TestWHEPTranscodesHEVC: an HEVC broadcast (over SRT) to a WHEP viewer
// whose offer has H.264 only: the viewer gets the video re-encoded to
// H.264, decodable, with Opus.
func TestWHEPTranscodesHEVC(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "")
	ffmpeg(t, ctx, srtPushArgs(60, hevcArgs, aacArgs, srtURL(g.SRT, "publish:live/hevc"))...)
	g.waitBroadcast(t, ctx, "live/hevc")
	api, err := rtctest.NewLightAPI() // H.264 and Opus only
	if err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(t.TempDir(), "whep.h264")
	f, err := os.Create(rec)
	if err != nil {
		t.Fatal(err)
	}
	v := viewRetrying(t, ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/hevc", API: api, H264: f})
	deadline := time.Now().Add(30 * time.Second)
	for v.Stats()["video"].Frames < 160 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	st := v.Stats()
	v.Close()
	f.Close()
	t.Logf("WHEP viewer of HEVC: %+v", st)
	if !strings.EqualFold(st["video"].Codec, "video/H264") || st["video"].Frames < 160 ||
		!strings.EqualFold(st["audio"].Codec, "audio/opus") || st["audio"].Packets < 100 {
		t.Fatalf("WHEP viewer of HEVC got %+v, want H.264 and Opus", st)
	}
	if g.logs.count("video transcoder started", "broadcast=live/hevc", "source=h265") != 1 {
		t.Error("no video transcoder started from h265")
	}
	checkNoBFrames(t, rec)
}
