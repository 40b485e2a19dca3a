package e2e

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

func freePort(t *testing.T) int {
	t.Helper()
	// A port free on both UDP and TCP.
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// subCount returns the number of subscriptions on a track of a broadcast
// as the gate's API reports them, by protocol.
func subCount(t *testing.T, g *gate, path, track string) map[string]float64 {
	t.Helper()
	for _, b := range g.broadcasts(t) {
		if b["path"] != path {
			continue
		}
		tracks, _ := b["tracks"].([]any)
		for _, tr := range tracks {
			m, _ := tr.(map[string]any)
			if m["name"] == track {
				out := map[string]float64{}
				subs, _ := m["subscribers"].(map[string]any)
				for k, v := range subs {
					out[k], _ = v.(float64)
				}
				return out
			}
		}
	}
	return nil
}

// TestRelayChain: origin ← edge1 ← edge2, three real processes. ffmpeg
// pushes RTMP into the origin; viewers on edge2 play; edge1 serves the
// broadcast as LL-HLS too (ffprobe finds H.264 and AAC); the origin serves
// one subscription per track to edge1 however many viewers edge2 and HLS
// on edge1 have; the edges list the broadcast; the origin restarts and
// viewers resume.
func TestRelayChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	originPort, rtmpPort := freePort(t), freePort(t)
	originListen := fmt.Sprintf("127.0.0.1:%d", originPort)
	origin := startGate(t, "rtmp:\n  grace_period: 10s\n", "--listen", originListen, "--rtmp", fmt.Sprintf("127.0.0.1:%d", rtmpPort))
	edge1 := startGate(t, "rtmp:\n  grace_period: 10s\n", "--upstream", origin.MoQ+"?insecure=1")
	edge2 := startGate(t, "rtmp:\n  grace_period: 10s\n", "--upstream", edge1.WT+"?insecure=1")

	push := func() *exec.Cmd {
		return ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "60",
			"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac", "-f", "flv", origin.RTMP+"/live/chain")
	}
	enc := push()
	origin.waitBroadcast(t, ctx, "live/chain")
	// The edges learn of it by SUBSCRIBE_NAMESPACE.
	edge2.waitBroadcast(t, ctx, "live/chain")
	edge1.waitBroadcast(t, ctx, "live/chain")

	const viewers = 3
	var files []string
	var dones []<-chan error
	for i := 0; i < viewers; i++ {
		f, d := sub(t, ctx, edge2.MoQ, "live/chain", "--duration", "14s")
		files, dones = append(files, f), append(dones, d)
	}
	viewing := time.Now()
	// LL-HLS from edge1 plays too (ffprobe reads ~4 s of it while edge2's
	// viewers play), served from the same upstream subscriptions.
	checkLLHLS(t, ctx, edge1.Web+"/hls/live/chain/index.m3u8")
	time.Sleep(time.Until(viewing.Add(3 * time.Second)))
	for _, track := range []string{"video", "audio"} {
		if n := subCount(t, origin, "live/chain", track); n["quic"] != 1 || len(n) != 1 {
			t.Fatalf("origin serves %s subscriptions %v, want exactly one (edge1)", track, n)
		}
		// edge2 pulls from edge1 over WebTransport.
		if n := subCount(t, edge1, "live/chain", track); n["webtransport"] != 1 || n["hls"] < 1 || len(n) != 2 {
			t.Fatalf("edge1 serves %s subscriptions %v, want one to edge2 and its HLS muxer's", track, n)
		}
		t.Logf("%s subscriptions: origin %v, edge1 %v", track, subCount(t, origin, "live/chain", track), subCount(t, edge1, "live/chain", track))
	}
	if n := subCount(t, edge2, "live/chain", "video"); n["quic"] != viewers {
		t.Fatalf("edge2 serves video subscriptions %v, want %d", n, viewers)
	}

	// Kill the origin; restart it on the same ports; the encoder reconnects.
	origin.cmd.Process.Kill()
	origin.cmd.Wait()
	enc.Process.Kill()
	killed := time.Now()
	origin = startGate(t, "rtmp:\n  grace_period: 10s\n", "--listen", originListen, "--rtmp", fmt.Sprintf("127.0.0.1:%d", rtmpPort))
	push()
	for _, d := range dones {
		waitExit(t, d, 30*time.Second)
	}
	t.Logf("origin down and back in %s", time.Since(killed))
	for i, f := range files {
		p := ffprobe(t, f)
		if len(p.Streams) != 2 {
			t.Fatalf("viewer %d: streams %+v", i, p.Streams)
		}
		frames := atoi(p.Streams[0].NbFrames)
		// 14 s of viewing; the origin outage costs at most a few seconds.
		if frames < 9*30 {
			t.Fatalf("viewer %d: only %d video frames: did not resume after the origin restart", i, frames)
		}
		t.Logf("viewer %d: %d video frames", i, frames)
	}
}

// checkLLHLS asserts that src (a multivariant playlist) leads to an LL-HLS
// media playlist (parts, blocking reloads) and that ffprobe reads H.264
// video and AAC audio from it.
func checkLLHLS(t *testing.T, ctx context.Context, src string) {
	t.Helper()
	browsertest.RequirePeer(t, browsertest.PeerFFprobe)
	start := time.Now()
	p := probeHLS(t, ctx, src)
	packets := map[int]int{}
	for _, pk := range p.Packets {
		packets[pk.StreamIndex]++
	}
	codecs := map[string]int{}
	for _, s := range p.Streams {
		codecs[s.CodecType+"/"+s.CodecName] = packets[s.Index]
	}
	if len(p.Streams) != 2 || codecs["video/h264"] == 0 || codecs["audio/aac"] == 0 {
		t.Fatalf("ffprobe %s: streams %+v, packets by stream %v: want H.264 video and AAC audio", src, p.Streams, packets)
	}
	t.Logf("ffprobe read %s in %s: packets %v", src, time.Since(start).Round(time.Millisecond), codecs)

	mv := httpGet(t, src)
	if !strings.HasPrefix(mv.body, "#EXTM3U") || !strings.Contains(mv.body, "avc1.") || !strings.Contains(mv.body, "mp4a.40.2") {
		t.Fatalf("multivariant playlist %s:\n%s", src, mv.body)
	}
	var media string
	for _, line := range strings.Split(mv.body, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			media = line
			break
		}
	}
	if media == "" {
		t.Fatalf("multivariant playlist %s names no variant:\n%s", src, mv.body)
	}
	base, err := url.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	mu := base.ResolveReference(&url.URL{Path: media}).String()
	pl := httpGet(t, mu)
	for _, want := range []string{"#EXT-X-PART:", "#EXT-X-PART-INF:PART-TARGET=", "#EXT-X-SERVER-CONTROL:"} {
		if !strings.Contains(pl.body, want) {
			t.Fatalf("media playlist %s lacks %s:\n%s", mu, want, pl.body)
		}
	}
	for _, line := range strings.Split(pl.body, "\n") {
		if strings.HasPrefix(line, "#EXT-X-SERVER-CONTROL:") && !strings.Contains(line, "CAN-BLOCK-RELOAD=YES") {
			t.Fatalf("media playlist %s: %s, want CAN-BLOCK-RELOAD=YES", mu, line)
		}
	}
}

// TestPeers: two peers announce their local broadcasts to each other. A
// broadcast published on A plays on B; when both have a local publisher
// for the same path, each node serves its own (local wins), and nothing
// loops back.
func TestPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	pa, pb := freePort(t), freePort(t)
	cfg := func(peer int) string {
		return fmt.Sprintf("peers:\n  - moqt://127.0.0.1:%d?insecure=1\n", peer)
	}
	a := startGate(t, cfg(pb), "--listen", fmt.Sprintf("127.0.0.1:%d", pa))
	b := startGate(t, cfg(pa), "--listen", fmt.Sprintf("127.0.0.1:%d", pb))
	push := func(g *gate, path, size string) {
		ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30", "-t", "40",
			"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-f", "flv", g.RTMP+"/"+path)
	}
	// Published on A, watched on B.
	push(a, "live/onA", "320x240")
	b.waitBroadcast(t, ctx, "live/onA")
	file, done := sub(t, ctx, b.MoQ, "live/onA", "--duration", "3s")
	waitExit(t, done, 20*time.Second)
	if p := ffprobe(t, file); len(p.Streams) != 1 || p.Streams[0].Width != 320 {
		t.Fatalf("live/onA on B: %+v", p.Streams)
	}
	// The same path published on both nodes: each serves its own.
	push(a, "live/both", "320x240")
	a.waitBroadcast(t, ctx, "live/both")
	time.Sleep(time.Second) // B learns of A's
	push(b, "live/both", "640x360")
	time.Sleep(2 * time.Second)
	for _, tc := range []struct {
		g     *gate
		width int
	}{{a, 320}, {b, 640}} {
		file, done := sub(t, ctx, tc.g.MoQ, "live/both", "--duration", "3s")
		waitExit(t, done, 20*time.Second)
		if p := ffprobe(t, file); len(p.Streams) != 1 || p.Streams[0].Width != tc.width {
			t.Fatalf("live/both on %s: %+v, want the local publisher's %d px", tc.g.Web, p.Streams, tc.width)
		}
	}
	// No loop: A does not list live/onA as learnt from B, and B's own
	// publisher was not taken over by A's announcement.
	for _, bc := range a.broadcasts(t) {
		if bc["path"] == "live/onA" && bc["publisher"] != nil && fmt.Sprint(bc["publisher"]) != "rtmp-client" {
			t.Fatalf("A's own broadcast now comes from %v", bc["publisher"])
		}
	}
}
