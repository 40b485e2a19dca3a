package whep_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/moqgate/moqgate/egress/whep"
	"github.com/moqgate/moqgate/ingest"
	"github.com/moqgate/moqgate/ingest/whip"
	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/rtc"
	"github.com/moqgate/moqgate/internal/rtctest"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

type gate struct {
	URL    string
	relay  *moq.Relay
	whip   *whip.Server
	whep   *whep.Server
	engine *rtc.Engine
	srv    *httptest.Server
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newGate(t *testing.T) *gate { return newGateWith(t, rtc.Config{}, 0) }

// newGateWith makes a gate with engine settings (UDP and Logger are set
// here) and a WHIP idle timeout (0: the default).
func newGateWith(t *testing.T, ec rtc.Config, idle time.Duration) *gate {
	t.Helper()
	log := testLogger(t)
	g := &gate{relay: moq.NewRelay(moq.RelayConfig{Logger: log})}
	var err error
	ec.UDP, ec.Logger = "127.0.0.1:0", log
	g.engine, err = rtc.NewEngine(ec)
	if err != nil {
		t.Fatal(err)
	}
	g.whip, err = whip.New(whip.Config{Engine: g.engine, Logger: log, KeyframeInterval: 2 * time.Second, IdleTimeout: idle,
		Publish: func(ctx context.Context, req whip.PublishRequest) (media.BroadcastWriter, error) {
			return ingest.Start(ctx, ingest.LocalDialer(g.relay, "whip", req.Log), req.Path, req.Log)
		}})
	if err != nil {
		t.Fatal(err)
	}
	g.whep, err = whep.New(whep.Config{Engine: g.engine, Relay: g.relay, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/whip/", g.whip)
	mux.Handle("/whep/", g.whep)
	g.srv = httptest.NewServer(mux)
	g.URL = g.srv.URL
	t.Cleanup(g.close)
	return g
}

func (g *gate) close() {
	g.srv.Close()
	g.whip.Close()
	g.whep.Close()
	g.engine.Close()
}

func testMedia(t *testing.T) (video, audio [][]byte) {
	t.Helper()
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	h264, ogg, err := rtctest.EncodeMedia(t.TempDir(), rtctest.EncodeOptions{Seconds: 4})
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

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// TestWHIPToWHEP: a pion WHIP publisher sends H.264 and Opus; two pion
// WHEP viewers receive both, starting at a key frame, with low latency;
// everything is torn down without leaking goroutines.
func TestWHIPToWHEP(t *testing.T) {
	video, audio := testMedia(t)
	base := runtime.NumGoroutine()
	g := newGate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, err := rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.URL + "/whip/live/test", Video: video, Audio: audio,
		Loop: true, StampSEI: true})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the broadcast", func() bool { return g.relay.HasBroadcast("live/test") })
	time.Sleep(1500 * time.Millisecond) // catalogs published
	var viewers []*rtctest.Viewer
	for range 2 {
		v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.URL + "/whep/live/test"})
		if err != nil {
			t.Fatal(err)
		}
		viewers = append(viewers, v)
	}
	time.Sleep(4 * time.Second)
	for i, v := range viewers {
		st := v.Stats()
		vs, as := st["video"], st["audio"]
		t.Logf("viewer %d: video %s %d frames %d key, audio %s %d packets; latency p50 %v p99 %v", i, vs.Codec, vs.Frames,
			vs.Keyframes, as.Codec, as.Frames, percentile(vs.Latencies, 0.5), percentile(vs.Latencies, 0.99))
		if !strings.EqualFold(vs.Codec, "video/H264") || vs.Frames < 60 || vs.Keyframes < 1 {
			t.Errorf("viewer %d video: %+v", i, vs)
		}
		if !strings.EqualFold(as.Codec, "audio/opus") || as.Frames < 100 {
			t.Errorf("viewer %d audio: %+v", i, as)
		}
		if p := percentile(vs.Latencies, 0.5); p <= 0 || p > 200*time.Millisecond {
			t.Errorf("viewer %d: latency p50 %v", i, p)
		}
	}
	if g.whep.Sessions() != 2 || g.whip.Sessions() != 1 {
		t.Errorf("sessions: whep %d whip %d", g.whep.Sessions(), g.whip.Sessions())
	}
	for _, v := range viewers {
		if err := v.Close(); err != nil {
			t.Error(err)
		}
	}
	if err := pub.Close(); err != nil {
		t.Error(err)
	}
	waitFor(t, ctx, "sessions to end", func() bool { return g.whep.Sessions() == 0 && g.whip.Sessions() == 0 })
	g.close()
	waitFor(t, ctx, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base+5 })
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("timed out waiting for %s; goroutines:\n%s", what, buf[:n])
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stripCandidates removes the candidates from an SDP (a trickling client
// sends them later).
func stripCandidates(sdp string) (string, []string) {
	var out strings.Builder
	var cands []string
	for l := range strings.Lines(sdp) {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "a=candidate:") {
			cands = append(cands, t)
			continue
		}
		if t == "a=end-of-candidates" {
			continue
		}
		out.WriteString(t + "\r\n")
	}
	return out.String(), cands
}

func iceCreds(sdp string) (ufrag, pwd string) {
	for l := range strings.Lines(sdp) {
		t := strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(t, "a=ice-ufrag:"); ok && ufrag == "" {
			ufrag = v
		}
		if v, ok := strings.CutPrefix(t, "a=ice-pwd:"); ok && pwd == "" {
			pwd = v
		}
	}
	return ufrag, pwd
}

// TestTrickleAndICERestart: a WHEP client that sends its candidates in a
// PATCH (trickle ICE, RFC 9725 4.4.1) gets 204 and plays; an ICE restart through
// PATCH (new credentials, If-Match) answers new server credentials and a
// new ETag, and media flows again on the new ICE session.
func TestTrickleAndICERestart(t *testing.T) {
	video, audio := testMedia(t)
	g := newGate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, err := rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.URL + "/whip/live/trickle", Video: video, Audio: audio, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	waitFor(t, ctx, "the broadcast", func() bool { return g.relay.HasBroadcast("live/trickle") })
	time.Sleep(time.Second)

	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	var packets atomic.Int64
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			packets.Add(1)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	bare, cands := stripCandidates(pc.LocalDescription().SDP)
	if len(cands) == 0 {
		t.Fatal("no local candidates")
	}
	status, hdr, body, err := rtctest.Do(ctx, "POST", g.URL+"/whep/live/trickle", "", "application/sdp", bare, nil)
	if err != nil || status != 201 {
		t.Fatalf("POST: %d %s %v", status, body, err)
	}
	resource := g.URL + hdr.Get("Location")
	etag := hdr.Get("ETag")
	if hdr.Get("Accept-Patch") != "application/trickle-ice-sdpfrag" || etag == "" {
		t.Errorf("201 headers: %v", hdr)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	// (The server may connect before the PATCH: the client's checks make
	// it learn the client's address as a peer-reflexive candidate.)
	ufrag, pwd := iceCreds(bare)
	frag := "a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:" + pwd + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		strings.Join(cands, "\r\n") + "\r\na=end-of-candidates\r\n"
	// A stale ETag is refused.
	if status, _, _, _ := rtctest.Do(ctx, "PATCH", resource, "", "application/trickle-ice-sdpfrag", frag,
		http.Header{"If-Match": {`"stale"`}}); status != http.StatusPreconditionFailed {
		t.Errorf("PATCH with a stale ETag: %d, want 412", status)
	}
	status, _, body, err = rtctest.Do(ctx, "PATCH", resource, "", "application/trickle-ice-sdpfrag", frag,
		http.Header{"If-Match": {etag}})
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("trickle PATCH: %d %s %v", status, body, err)
	}
	waitFor(t, ctx, "media after trickling", func() bool { return packets.Load() > 50 })

	// ICE restart.
	serverUfrag, _ := iceCreds(pc.RemoteDescription().SDP)
	offer, err = pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	newUfrag, newPwd := iceCreds(pc.LocalDescription().SDP)
	_, cands = stripCandidates(pc.LocalDescription().SDP)
	frag = "a=ice-ufrag:" + newUfrag + "\r\na=ice-pwd:" + newPwd + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		strings.Join(cands, "\r\n") + "\r\na=end-of-candidates\r\n"
	status, hdr, body, err = rtctest.Do(ctx, "PATCH", resource, "", "application/trickle-ice-sdpfrag", frag,
		http.Header{"If-Match": {"*"}})
	if err != nil || status != http.StatusOK || hdr.Get("Content-Type") != "application/trickle-ice-sdpfrag" {
		t.Fatalf("ICE restart PATCH: %d %s %v", status, body, err)
	}
	if hdr.Get("ETag") == "" || hdr.Get("ETag") == etag {
		t.Errorf("ETag after the restart: %q (was %q)", hdr.Get("ETag"), etag)
	}
	su, sp := iceCreds(body)
	if su == "" || sp == "" || su == serverUfrag || !strings.Contains(body, "a=candidate:") {
		t.Fatalf("restart answer fragment:\n%s", body)
	}
	// The answer: the previous one with the server's new credentials and
	// candidates.
	answer, _ := stripCandidates(pc.RemoteDescription().SDP)
	ou, op := iceCreds(answer)
	answer = strings.ReplaceAll(strings.ReplaceAll(answer, "a=ice-ufrag:"+ou, "a=ice-ufrag:"+su), "a=ice-pwd:"+op, "a=ice-pwd:"+sp)
	var fragCands []string
	for l := range strings.Lines(body) {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "a=candidate:") {
			fragCands = append(fragCands, t)
		}
	}
	answer = strings.Replace(answer, "a=mid:0\r\n", "a=mid:0\r\n"+strings.Join(fragCands, "\r\n")+"\r\n", 1)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("restart answer: %v\n%s", err, answer)
	}
	n0 := packets.Load()
	waitFor(t, ctx, "media after the ICE restart", func() bool { return packets.Load() > n0+100 })
	if status, _, _, _ := rtctest.Do(ctx, "DELETE", resource, "", "", "", nil); status != http.StatusOK {
		t.Errorf("DELETE: %d", status)
	}
	if status, _, _, _ := rtctest.Do(ctx, "DELETE", resource, "", "", "", nil); status != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", status)
	}
}

// TestReaping: sessions whose peer never connects, vanishes without a
// DELETE, or (WHIP) stops sending are reaped, and nothing leaks.
func TestReaping(t *testing.T) {
	video, _ := testMedia(t)
	base := runtime.NumGoroutine()
	g := newGateWith(t, rtc.Config{ICEFailedTimeout: 2 * time.Second, ConnectTimeout: 2 * time.Second}, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A WHIP publisher that sends one second of video, then nothing.
	pub, err := rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.URL + "/whip/live/reap", Video: video[:30]})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	waitFor(t, ctx, "the broadcast", func() bool { return g.relay.HasBroadcast("live/reap") })
	time.Sleep(500 * time.Millisecond)
	// A viewer that goes away without a DELETE.
	v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.URL + "/whep/live/reap"})
	if err != nil {
		t.Fatal(err)
	}
	<-v.Connected
	v.PC.Close()
	// A viewer that never connects: its offer has no usable candidate.
	api, _ := rtctest.NewAPI()
	pc, _ := api.NewPeerConnection(webrtc.Configuration{})
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	offer, _ := pc.CreateOffer(nil)
	pc.SetLocalDescription(offer)
	bare, _ := stripCandidates(offer.SDP)
	pc.Close()
	if status, _, body, err := rtctest.Do(ctx, "POST", g.URL+"/whep/live/reap", "", "application/sdp", bare, nil); err != nil || status != 201 {
		t.Fatalf("POST: %d %s %v", status, body, err)
	}
	waitFor(t, ctx, "every session to be reaped", func() bool { return g.whep.Sessions() == 0 && g.whip.Sessions() == 0 })
	pub.Close()
	v.Close()
	g.close()
	waitFor(t, ctx, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base+5 })
}
