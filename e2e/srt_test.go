package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/rtctest"
)

// srtURL is an srt:// URL for moqgate's SRT port with the stream ID (and
// extra query parameters). ffmpeg 5.1 takes the stream ID as written, not
// URL-decoded (so "#!::..." goes in raw, as OBS users type it).
func srtURL(addr, streamID string, extra ...string) string {
	q := "streamid=" + streamID + "&pkt_size=1316"
	for _, e := range extra {
		q += "&" + e
	}
	return "srt://" + addr + "?" + q
}

// srtPushArgs are ffmpeg arguments publishing seconds of test video and
// audio as MPEG-TS over SRT (caller mode).
func srtPushArgs(seconds int, video, audio []string, target string) []string {
	args := []string{"-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(seconds)}
	args = append(append(append(args, video...), audio...), "-f", "mpegts", target)
	return args
}

var (
	h264Args = []string{"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2"}
	hevcArgs = []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint=30", "-g", "30"}
	aacArgs  = []string{"-c:a", "aac"}
	opusArgs = []string{"-c:a", "libopus", "-b:a", "64k"}
)

// linger makes an ffmpeg SRT caller close only once the peer has
// acknowledged everything it sent. In live mode libsrt closes at once by
// default, and the receiver (libsrt's srt-live-transmit exactly as
// moqgate) never delivers what it still holds for its latency when the
// shutdown arrives: at the end of an ffmpeg run that is the encoder's final
// flush, about 0.6 s of a 6 s run (TestSRTReconnect measures it).
const linger = "linger=5"

// srtPush publishes seconds of test video and audio as MPEG-TS over SRT
// (caller mode) to every target and, through ffmpeg's tee muxer, writes the
// same TS to a file: what was sent, to count the frames against.
func srtPush(t *testing.T, ctx context.Context, seconds int, video, audio []string, targets ...string) (*exec.Cmd, string) {
	t.Helper()
	sent := filepath.Join(t.TempDir(), "sent.ts")
	out := "[f=mpegts]" + sent
	for _, u := range targets {
		out += "|[f=mpegts]" + u
	}
	args := []string{"-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(seconds)}
	args = append(append(append(args, video...), audio...), "-map", "0:v", "-map", "1:a", "-f", "tee", out)
	return ffmpeg(t, ctx, args...), sent
}

// srtReference is the reference receiver: srt-live-transmit (libsrt)
// listening for one caller on a free port. It returns the URL to send to
// and a function that waits for the caller to leave and returns the TS
// file srt-live-transmit wrote.
func srtReference(t *testing.T, ctx context.Context) (string, func() string) {
	t.Helper()
	browsertest.RequirePeer(t, "srt-live-transmit")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	file := filepath.Join(t.TempDir(), "reference.ts")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	// -a:no: exit (and flush the file) when the caller leaves.
	cmd := exec.CommandContext(ctx, "srt-live-transmit", "-q", "-a:no", "srt://"+addr+"?mode=listener", "file://con")
	cmd.Stdout, cmd.Stderr = f, testWriter{t, "srt-live-transmit"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); f.Close() })
	time.Sleep(300 * time.Millisecond) // listening
	return "srt://" + addr + "?pkt_size=1316", func() string {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("srt-live-transmit did not exit after its caller left")
		}
		f.Close()
		return file
	}
}

// frames is what ffprobe counts in the TS files: video and audio frames.
func frames(t *testing.T, files ...string) (video, audio int) {
	t.Helper()
	for _, f := range files {
		p := ffprobe(t, f)
		if len(p.Streams) != 2 {
			t.Fatalf("%s: streams %+v", f, p.Streams)
		}
		video += atoi(p.Streams[0].NbFrames)
		audio += atoi(p.Streams[1].NbFrames)
	}
	return video, audio
}

// count is a frame count a recording must have: want, give or take tol.
type count struct{ video, audio, tol int }

// allOf: every frame of the TS files a publisher sent (SRT retransmits
// what is lost and the caller lingers until all is acknowledged), none
// twice.
func allOf(t *testing.T, sent ...string) count {
	t.Helper()
	v, a := frames(t, sent...)
	return count{video: v, audio: a}
}

func checkCount(t *testing.T, kind string, got, want, tol int) {
	t.Helper()
	if want <= 0 || got < want-tol || got > want+tol {
		t.Fatalf("%s frames %d, want %d (±%d)", kind, got, want, tol)
	}
}

// checkAV checks what `moqgate sub` recorded: codecs, frame counts,
// timestamps, a clean decode.
func checkAV(t *testing.T, file, video, audio string, want count) {
	t.Helper()
	p := ffprobe(t, file)
	if len(p.Streams) != 2 {
		t.Fatalf("streams %+v", p.Streams)
	}
	v, a := p.Streams[0], p.Streams[1]
	if v.CodecName != video || v.Width != 320 || v.Height != 240 {
		t.Fatalf("video stream %+v, want %s 320x240", v, video)
	}
	if a.CodecName != audio {
		t.Fatalf("audio stream %+v, want %s", a, audio)
	}
	t.Logf("video %s frames (want %d), audio %s frames (want %d)", v.NbFrames, want.video, a.NbFrames, want.audio)
	checkCount(t, "video", atoi(v.NbFrames), want.video, want.tol)
	checkCount(t, "audio", atoi(a.NbFrames), want.audio, want.tol*48000/30/1024)
	checkTimestamps(t, p, v.Index)
	decodes(t, file)
}

// TestSRTToMoQ: ffmpeg publishes H.264+AAC and HEVC+Opus over SRT;
// `moqgate sub` records the MoQ broadcast and ffprobe checks it; LL-HLS
// serves it (ffprobe reads the playlist); the API names the publisher.
func TestSRTToMoQ(t *testing.T) {
	for _, tc := range []struct {
		name, video, audio string
		v, a               []string
	}{
		{"h264-aac", "h264", "aac", h264Args, aacArgs},
		{"hevc-opus", "hevc", "opus", hevcArgs, opusArgs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			browsertest.RequirePeer(t, browsertest.PeerFFprobe)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			g := startGate(t, "rtmp:\n  grace_period: 500ms\n")
			_, sent := srtPush(t, ctx, 6, tc.v, tc.a, srtURL(g.SRT, "publish:live/test", linger))
			g.waitBroadcast(t, ctx, "live/test")
			file, done := sub(t, ctx, g.MoQ, "live/test")
			for _, b := range g.broadcasts(t) {
				if p, _ := b["publisher"].(string); b["path"] == "live/test" && !strings.HasPrefix(p, "srt") {
					t.Errorf("API publisher %v, want srt", b["publisher"])
				}
			}
			// Played back over SRT as MPEG-TS, meanwhile.
			ts, read := filepath.Join(t.TempDir(), "read.ts"), make(chan error, 1)
			go func() {
				if out, err := srtRead(ctx, srtURL(g.SRT, "read:live/test"), 1, ts); err != nil {
					read <- fmt.Errorf("%w: %s", err, out)
				}
				close(read)
			}()
			time.Sleep(2 * time.Second) // a few LL-HLS parts
			hp := probeHLS(t, ctx, g.Web+"/hls/live/test/index.m3u8")
			var names []string
			for _, s := range hp.Streams {
				names = append(names, s.CodecName)
			}
			slices.Sort(names)
			want := []string{tc.video, tc.audio}
			slices.Sort(want)
			if !slices.Equal(names, want) || len(hp.Packets) < 30 {
				t.Errorf("LL-HLS: streams %v, %d packets", names, len(hp.Packets))
			}
			if err := <-read; err != nil {
				t.Fatalf("SRT read: %v", err)
			}
			if p := ffprobe(t, ts); len(p.Streams) != 2 || p.Streams[0].CodecName != tc.video || p.Streams[1].CodecName != tc.audio {
				t.Errorf("SRT read: streams %+v", p.Streams)
			}
			waitExit(t, done, 30*time.Second)
			checkAV(t, file, tc.video, tc.audio, allOf(t, sent))
		})
	}
}

// TestSRTToWHEP: an SRT broadcast (H.264 without B-frames, AAC) plays
// over WHEP (a pion viewer): H.264 video and the AAC transcoded to Opus.
func TestSRTToWHEP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := startGate(t, "")
	video := []string{"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "0"}
	srtPush(t, ctx, 15, video, aacArgs, srtURL(g.SRT, "publish:live/w"))
	g.waitBroadcast(t, ctx, "live/w")
	v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/w"})
	if err != nil {
		t.Fatalf("WHEP viewer: %v", err)
	}
	defer v.Close()
	// 1 s of Opus (50 packets) and of video, once the transcoder runs.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && (v.Stats()["audio"].Packets < 50 || v.Stats()["video"].Frames < 30) {
		time.Sleep(100 * time.Millisecond)
	}
	st := v.Stats()
	t.Logf("WHEP: video %s %d frames, audio %s %d packets", st["video"].Codec, st["video"].Frames, st["audio"].Codec, st["audio"].Packets)
	if !strings.EqualFold(st["audio"].Codec, "audio/opus") || st["audio"].Packets < 50 {
		t.Errorf("WHEP audio %+v, want Opus", st["audio"])
	}
	if !strings.EqualFold(st["video"].Codec, "video/H264") || st["video"].Frames < 30 || st["video"].Keyframes < 1 {
		t.Errorf("WHEP video %+v, want H.264 with a key frame", st["video"])
	}
}

// TestSRTReconnect: the SRT publisher drops and comes back within the
// grace period; one subscriber sees one broadcast with a continuous
// timeline that decodes cleanly.
//
// The first publisher closes without lingering, so its stream is cut
// before the encoder's final flush, mid-GOP (B-frames shown after the last
// frame decoded): the second must continue after its latest presentation
// time. What moqgate gets of the cut stream is measured against the
// reference libsrt receiver, which the same ffmpeg feeds at the same
// time: the two shutdowns arrive a few milliseconds apart, hence the
// tolerance of 0.1 s.
func TestSRTReconnect(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFprobe)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "rtmp:\n  grace_period: 3s\n")
	ref, refFile := srtReference(t, ctx)
	first := make(chan error, 1)
	cmd, sent1 := srtPush(t, ctx, 4, h264Args, aacArgs, srtURL(g.SRT, "publish:live/re"), ref)
	go func() { first <- cmd.Wait() }()
	g.waitBroadcast(t, ctx, "live/re")
	file, done := sub(t, ctx, g.MoQ, "live/re")
	if err := <-first; err != nil {
		t.Fatalf("first ffmpeg: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	cmd, sent2 := srtPush(t, ctx, 4, h264Args, aacArgs, srtURL(g.SRT, "publish:live/re", linger))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("second ffmpeg: %v", err)
	}
	waitExit(t, done, 20*time.Second)
	if !g.logs.contains("publisher reconnected; broadcast continues") {
		t.Fatal("the relay did not see a reconnect")
	}
	sv, sa := frames(t, sent1)
	rv, ra := frames(t, refFile())
	t.Logf("first publisher (no linger): sent %d video and %d audio frames, libsrt received %d and %d", sv, sa, rv, ra)
	v2, a2 := frames(t, sent2)
	checkAV(t, file, "h264", "aac", count{video: rv + v2, audio: ra + a2, tol: 3})
}

// TestSRTLiveTransmit: the reference libsrt tool sends a TS file (paced by
// ffmpeg -re) with an Access Control stream ID, and pulls the broadcast
// out over read:; ffmpeg reads it too. ffprobe reads what they wrote.
func TestSRTLiveTransmit(t *testing.T) {
	browsertest.RequirePeer(t, "srt-live-transmit")
	browsertest.RequirePeer(t, browsertest.PeerFFprobe)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "")
	dir := t.TempDir()
	src := filepath.Join(dir, "in.ts")
	if err := ffmpeg(t, ctx, srtPushArgs(10, h264Args, aacArgs, src)[1:]...).Wait(); err != nil {
		t.Fatalf("make TS file: %v", err)
	}
	// ffmpeg -re paces the file into srt-live-transmit's stdin.
	pace := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", src,
		"-c", "copy", "-f", "mpegts", "pipe:1")
	slt := exec.CommandContext(ctx, "srt-live-transmit", "-q", "file://con",
		"srt://"+g.SRT+"?streamid=#!::r=live/slt,m=publish")
	pipe, err := pace.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	slt.Stdin, slt.Stderr, pace.Stderr = pipe, testWriter{t, "srt-live-transmit"}, testWriter{t, "ffmpeg"}
	for _, c := range []*exec.Cmd{pace, slt} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	g.waitBroadcast(t, ctx, "live/slt")
	time.Sleep(1500 * time.Millisecond) // the first key frame and catalog

	var wg sync.WaitGroup
	outSLT, outFF := filepath.Join(dir, "slt.ts"), filepath.Join(dir, "ff.ts")
	wg.Add(2)
	go func() {
		defer wg.Done()
		pullSLT(t, ctx, "srt://"+g.SRT+"?streamid=read:live/slt", outSLT, 4*time.Second)
	}()
	go func() {
		defer wg.Done()
		if out, err := srtRead(ctx, srtURL(g.SRT, "read:live/slt"), 4, outFF); err != nil {
			t.Errorf("ffmpeg read: %v: %s", err, out)
		}
	}()
	wg.Wait()
	// ffmpeg copies 4 s (120 frames at 30 fps); srt-live-transmit runs
	// for 4 s from its start, less its handshake: at least 3 s of frames.
	for _, c := range []struct {
		file string
		min  int
	}{{outSLT, 90}, {outFF, 117}} {
		f := c.file
		p := ffprobe(t, f)
		if len(p.Streams) != 2 || p.Streams[0].CodecName != "h264" || p.Streams[1].CodecName != "aac" {
			t.Fatalf("%s: streams %+v", filepath.Base(f), p.Streams)
		}
		if n := atoi(p.Streams[0].NbFrames); n < c.min {
			t.Fatalf("%s: %d video frames, want at least %d", filepath.Base(f), n, c.min)
		}
		decodes(t, f)
		t.Logf("%s: %s video frames, %s audio frames", filepath.Base(f), p.Streams[0].NbFrames, p.Streams[1].NbFrames)
	}
	// A broadcast that does not exist is rejected before the handshake
	// completes.
	before := g.logs.count("reason=REJX_NOTFOUND")
	out, err := srtRead(ctx, srtURL(g.SRT, "read:live/none"), 1, filepath.Join(dir, "none.ts"))
	if err == nil || g.logs.count("reason=REJX_NOTFOUND") <= before {
		t.Fatalf("read of a missing broadcast: %v, %s; want a REJX_NOTFOUND rejection", err, out)
	}
}

// srtRead has ffmpeg copy seconds of what it reads from src (SRT caller)
// into the TS file out.
func srtRead(ctx context.Context, src string, seconds int, out string) ([]byte, error) {
	return exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-i", src, "-c", "copy", "-t", strconv.Itoa(seconds), "-f", "mpegts", "-y", out).CombinedOutput()
}

// pullSLT has srt-live-transmit write what it reads from src to file for d.
func pullSLT(t *testing.T, ctx context.Context, src, file string, d time.Duration) {
	f, err := os.Create(file)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "srt-live-transmit", "-q", src, "file://con")
	cmd.Stdout, cmd.Stderr = f, testWriter{t, "srt-live-transmit"}
	if err := cmd.Start(); err != nil {
		t.Error(err)
		return
	}
	time.Sleep(d)
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
}

// publishFails runs an SRT publish that moqgate must reject: ffmpeg exits
// with an error and the log names the rejection reason.
func publishFails(t *testing.T, ctx context.Context, g *gate, target, reason string) {
	t.Helper()
	before := g.logs.count("reason=" + reason)
	cmd := ffmpeg(t, ctx, srtPushArgs(20, h264Args, aacArgs, target)...)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("publish to %s succeeded", target)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("publish to %s was not refused", target)
	}
	if g.logs.count("reason="+reason) <= before {
		t.Fatalf("no %s rejection in the log for %s", reason, target)
	}
}

// publishWorks publishes briefly and waits for the broadcast.
func publishWorks(t *testing.T, ctx context.Context, g *gate, target, path string) *exec.Cmd {
	t.Helper()
	cmd := ffmpeg(t, ctx, srtPushArgs(20, h264Args, aacArgs, target)...)
	g.waitBroadcast(t, ctx, path)
	return cmd
}

// TestSRTPassphrase: with srt.passphrase set, the right passphrase
// publishes; a wrong one and none are rejected before any media.
func TestSRTPassphrase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "srt:\n  passphrase: correcthorsebattery\n")
	publishFails(t, ctx, g, srtURL(g.SRT, "publish:live/p", "passphrase=wrongpassphrase1"), "REJ_BADSECRET")
	publishFails(t, ctx, g, srtURL(g.SRT, "publish:live/p"), "REJ_UNSECURE")
	for _, b := range g.broadcasts(t) {
		if b["path"] == "live/p" {
			t.Fatal("a rejected publisher started the broadcast")
		}
	}
	cmd := publishWorks(t, ctx, g, srtURL(g.SRT, "publish:live/p", "passphrase=correcthorsebattery", "pbkeylen=32"), "live/p")
	// A reader needs the passphrase too.
	time.Sleep(1500 * time.Millisecond)
	out := filepath.Join(t.TempDir(), "read.ts")
	if b, err := srtRead(ctx, srtURL(g.SRT, "read:live/p", "passphrase=correcthorsebattery"), 2, out); err != nil {
		t.Fatalf("encrypted read: %v: %s", err, b)
	}
	if p := ffprobe(t, out); len(p.Streams) != 2 {
		t.Fatalf("encrypted read: streams %+v", p.Streams)
	}
	cmd.Process.Kill()
}

// TestSRTSessionLimit: SRT sessions count against the same budget as MoQ
// sessions (limits.sessions_per_ip): with one per IP, an SRT publisher
// takes the slot, so a second SRT caller is rejected with REJX_OVERLOAD
// and a MoQ session from the same IP is refused; the publisher goes on.
func TestSRTSessionLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "limits:\n  sessions_per_ip: 1\n")
	publishWorks(t, ctx, g, srtURL(g.SRT, "publish:live/one"), "live/one")
	publishFails(t, ctx, g, srtURL(g.SRT, "publish:live/two"), "REJX_OVERLOAD")
	_, done := sub(t, ctx, g.MoQ, "live/one", "--duration", "2s")
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a MoQ session was admitted over the per-IP budget the SRT publisher holds")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("moqgate sub neither refused nor done")
	}
	if n := metric(t, g, `moqgate_limit_refusals_total{limit="sessions"}`); n < 2 {
		t.Fatalf("%v session refusals counted, want 2 (SRT and MoQ)", n)
	}
	if !slices.ContainsFunc(g.broadcasts(t), func(b map[string]any) bool { return b["path"] == "live/one" }) {
		t.Fatal("the admitted publisher's broadcast is gone")
	}
}

// TestSRTAuth: with JWT auth on, the token in the stream ID is checked
// before the handshake completes: none, a wrong signature and a wrong
// prefix are rejected; a valid one publishes in both stream ID forms, and
// readers need a subscribe grant.
func TestSRTAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	secret := writeSecret(t, "0123456789abcdef0123456789abcdef")
	other := writeSecret(t, "ffffffffffffffffffffffffffffffff")
	g := startGate(t, "", "--jwt-secret-file", secret)
	publishFails(t, ctx, g, srtURL(g.SRT, "publish:live/a"), "REJX_UNAUTHORIZED")
	publishFails(t, ctx, g, srtURL(g.SRT, "publish:live/a:"+mint(t, other, "--pub", "live/")), "REJX_UNAUTHORIZED")
	publishFails(t, ctx, g, srtURL(g.SRT, "publish:live/a:"+mint(t, secret, "--pub", "other/")), "REJX_FORBIDDEN")
	publishFails(t, ctx, g, srtURL(g.SRT, "#!::r=live/a,m=publish,t="+mint(t, secret, "--sub", "")), "REJX_FORBIDDEN")

	pub := mint(t, secret, "--pub", "live/")
	publishWorks(t, ctx, g, srtURL(g.SRT, "publish:live/a:"+pub), "live/a")
	publishWorks(t, ctx, g, srtURL(g.SRT, "#!::r=live/b,m=publish,t="+pub), "live/b")

	time.Sleep(1500 * time.Millisecond)
	read := func(streamID string) error {
		_, err := srtRead(ctx, srtURL(g.SRT, streamID), 1, filepath.Join(t.TempDir(), "read.ts"))
		return err
	}
	if err := read("read:live/a"); err == nil {
		t.Error("a reader without a token got the broadcast")
	}
	if err := read("read:live/a:" + mint(t, secret, "--sub", "live/a")); err != nil {
		t.Errorf("a reader with a subscribe token: %v", err)
	}
}

// lossyRelay forwards UDP between one SRT caller and moqgate, dropping
// each datagram (either way) with probability loss during the first
// window after the first datagram.
func lossyRelay(t *testing.T, target string, loss float64, window time.Duration) (addr string, dropped func() int) {
	t.Helper()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.Dial("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); back.Close() })
	var mu sync.Mutex
	var client net.Addr
	n := 0
	rng := rand.New(rand.NewSource(1))
	var start time.Time
	drop := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if start.IsZero() {
			start = time.Now()
		}
		if time.Since(start) < window && rng.Float64() < loss {
			n++
			return true
		}
		return false
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			k, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			client = from
			mu.Unlock()
			if !drop() {
				back.Write(buf[:k])
			}
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			k, err := back.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			c := client
			mu.Unlock()
			if c != nil && !drop() {
				front.WriteTo(buf[:k], c)
			}
		}
	}()
	return front.LocalAddr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestSRTLoss: the publisher reaches moqgate through a relay that drops
// 5 % of the datagrams both ways; SRT's retransmissions still make a
// complete broadcast (every frame, clean decode), and the metrics count
// the retransmissions. The loss stops 1.5 s before the publisher does: a
// receiver (libsrt's as gosrt's) learns of a lost packet from a later one
// (and the sender, told that the receiver reports losses, does not resend
// blindly), so the loss of a stream's very last packets is never repaired.
func TestSRTLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "rtmp:\n  grace_period: 500ms\n")
	relay, dropped := lossyRelay(t, g.SRT, 0.05, 4500*time.Millisecond)
	_, sent := srtPush(t, ctx, 6, h264Args, aacArgs, srtURL(relay, "publish:live/loss", "latency=300000", linger))
	g.waitBroadcast(t, ctx, "live/loss")
	file, done := sub(t, ctx, g.MoQ, "live/loss")
	waitExit(t, done, 30*time.Second)
	retrans := metric(t, g, "moqgate_srt_packets_retransmitted_total")
	t.Logf("relay dropped %d datagrams; %v retransmitted, %v lost, %v dropped as late", dropped(), retrans,
		metric(t, g, "moqgate_srt_packets_lost_total"), metric(t, g, "moqgate_srt_packets_dropped_total"))
	if dropped() < 20 || retrans < 10 {
		t.Fatalf("relay dropped %d datagrams, moqgate counted %v retransmissions", dropped(), retrans)
	}
	checkAV(t, file, "h264", "aac", allOf(t, sent))
}

// metric reads one unlabelled sample from /metrics.
func metric(t *testing.T, g *gate, name string) float64 {
	t.Helper()
	resp, err := http.Get(g.Web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

var _ = io.Discard
