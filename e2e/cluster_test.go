package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"
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
// pushes RTMP into the origin; viewers on edge2 play; the origin serves one
// subscription per track to edge1 however many viewers edge2 has; the
// edges list the broadcast; the origin restarts and viewers resume.
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
	time.Sleep(3 * time.Second)
	if n := subCount(t, origin, "live/chain", "video"); n["quic"] != 1 || len(n) != 1 {
		t.Fatalf("origin serves video subscriptions %v, want exactly one (edge1)", n)
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
