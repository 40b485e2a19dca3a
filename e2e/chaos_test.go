package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestHalfOpenConnections: connections that open TCP and then say nothing
// (RTMP and the web port) are closed after the handshake timeout, and a
// real publisher and viewer are served meanwhile.
func TestHalfOpenConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The per-IP cap on RTMP connections not yet publishing (16) would
	// refuse the publisher from the same IP: TestHardenRTMPBeforePublish
	// tests it; here the handshake timeout is under test.
	g := startGate(t, "limits:\n  handshake_timeout: 2s\n  rtmp_handshakes_per_ip: 64\n")
	var conns []net.Conn
	for i := 0; i < 20; i++ {
		for _, addr := range []string{strings.TrimPrefix(g.RTMP, "rtmp://"), strings.TrimPrefix(g.Web, "http://")} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
	}
	ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "20",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-f", "flv", g.RTMP+"/live/ok")
	g.waitBroadcast(t, ctx, "live/ok")
	file, done := sub(t, ctx, g.MoQ, "live/ok", "--duration", "3s")
	waitExit(t, done, 20*time.Second)
	if p := ffprobe(t, file); len(p.Streams) != 1 || atoi(p.Streams[0].NbFrames) < 60 {
		t.Fatalf("viewer during the half-open connections: %+v", p.Streams)
	}
	// Every silent connection has been closed by the server.
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1)
		if _, err := c.Read(buf); err == nil {
			// RTMP may answer nothing; HTTP nothing either: a read that
			// returns data means the server spoke first, which it must not.
			t.Fatalf("connection %d: unexpected data", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection %d is still open after the handshake timeout", i)
		}
		c.Close()
	}
}
