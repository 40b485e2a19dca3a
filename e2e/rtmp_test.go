package e2e

import (
	"context"
	"testing"
	"time"
)

// TestRTMPToMoQ: ffmpeg pushes H.264/AAC over RTMP, `moqgate sub` records
// the MoQ broadcast (draft-14, and draft-16 / draft-17 with --draft),
// ffprobe checks what came out.
func TestRTMPToMoQ(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bframes string
		url     func(g *gate) string
		args    []string
	}{
		{"no-bframes-quic", "0", func(g *gate) string { return g.MoQ }, nil},
		{"bframes-quic", "2", func(g *gate) string { return g.MoQ }, nil},
		{"bframes-webtransport", "2", func(g *gate) string { return g.WT }, nil},
		{"bframes-quic-draft16", "2", func(g *gate) string { return g.MoQ }, []string{"--draft", "16"}},
		{"bframes-webtransport-draft16", "2", func(g *gate) string { return g.WT }, []string{"--draft", "16"}},
		{"bframes-quic-draft17", "2", func(g *gate) string { return g.MoQ }, []string{"--draft", "17"}},
		{"bframes-webtransport-draft17", "2", func(g *gate) string { return g.WT }, []string{"--draft", "17"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			g := startGate(t, "rtmp:\n  grace_period: 500ms\n")
			const seconds, fps = 6, 30
			ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
				"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
				"-t", "6", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", tc.bframes,
				"-c:a", "aac", "-f", "flv", g.RTMP+"/live/test")
			g.waitBroadcast(t, ctx, "live/test")
			file, done := sub(t, ctx, tc.url(g), "live/test", tc.args...)
			// The broadcast ends after ffmpeg stops and the grace period:
			// sub then sees PUBLISH_DONE and exits by itself.
			waitExit(t, done, 20*time.Second)
			p := ffprobe(t, file)
			if len(p.Streams) != 2 {
				t.Fatalf("streams %+v", p.Streams)
			}
			v, a := p.Streams[0], p.Streams[1]
			if v.CodecName != "h264" || v.Width != 320 || v.Height != 240 {
				t.Fatalf("video stream %+v", v)
			}
			if a.CodecName != "aac" {
				t.Fatalf("audio stream %+v", a)
			}
			frames := atoi(v.NbFrames)
			want := seconds * fps
			if frames < want*95/100 || frames > want*105/100 {
				t.Fatalf("video frames %d, sent %d (±5%%)", frames, want)
			}
			audio := atoi(a.NbFrames)
			wantAudio := seconds * 48000 / 1024
			if audio < wantAudio*95/100 || audio > wantAudio*105/100 {
				t.Fatalf("audio frames %d, sent %d (±5%%)", audio, wantAudio)
			}
			checkTimestamps(t, p, v.Index)
			checkStartsAtZero(t, file, 1.5/fps)
			decodes(t, file)
			if len(tc.args) == 2 {
				// The server spoke the draft asked for.
				want := "version=0xff0000" + map[string]string{"16": "10", "17": "11"}[tc.args[1]]
				if g.logs.count("moq session started", want) == 0 {
					t.Fatalf("no moqgate session with %s in the log", want)
				}
			}
			t.Logf("video %d frames, audio %d frames", frames, audio)
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// checkTimestamps: DTS strictly increasing, PTS >= DTS, and with B-frames
// some PTS > DTS.
func checkTimestamps(t *testing.T, p probe, stream int) {
	t.Helper()
	var last int64 = -1 << 62
	n := 0
	for _, pk := range p.Packets {
		if pk.StreamIndex != stream || pk.DTS == nil || pk.PTS == nil {
			continue
		}
		if *pk.DTS <= last {
			t.Fatalf("packet %d: DTS %d after %d", n, *pk.DTS, last)
		}
		if *pk.PTS < *pk.DTS {
			t.Fatalf("packet %d: PTS %d < DTS %d", n, *pk.PTS, *pk.DTS)
		}
		last = *pk.DTS
		n++
	}
	if n == 0 {
		t.Fatal("no video packets")
	}
}

// TestRTMPReconnect: the encoder drops and reconnects within the grace
// period. The subscriber keeps its subscriptions (one `moqgate sub` runs
// throughout), group IDs keep increasing and the media timeline continues.
func TestRTMPReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "rtmp:\n  grace_period: 3s\n")
	push := func() error {
		cmd := ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-t", "4", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "0",
			"-c:a", "aac", "-f", "flv", g.RTMP+"/live/re")
		return cmd.Wait()
	}
	first := make(chan error, 1)
	go func() { first <- push() }()
	g.waitBroadcast(t, ctx, "live/re")
	file, done := sub(t, ctx, g.MoQ, "live/re")
	time.Sleep(5 * time.Second) // first publisher ends after 4 s
	if err := <-first; err != nil {
		t.Fatalf("first ffmpeg: %v", err)
	}
	if err := push(); err != nil { // reconnect within the 3 s grace period
		t.Fatalf("second ffmpeg: %v", err)
	}
	waitExit(t, done, 20*time.Second)
	if !g.logs.contains("publisher reconnected; broadcast continues") {
		t.Fatal("the relay did not see a reconnect")
	}
	p := ffprobe(t, file)
	if len(p.Streams) != 2 {
		t.Fatalf("streams %+v", p.Streams)
	}
	frames := atoi(p.Streams[0].NbFrames)
	// Two 4 s pushes, the subscriber joined shortly after the first began.
	if frames < 200 || frames > 250 {
		t.Fatalf("video frames %d, want about 240 from both publishers", frames)
	}
	checkTimestamps(t, p, p.Streams[0].Index)
	decodes(t, file)
	t.Logf("%d video frames across the reconnect", frames)
}

// TestSubStartsAtZero: a subscriber that joins a broadcast 3 s in still
// records a file that starts at 0 and whose duration is what it holds
// (ffprobe, players), not the broadcast's age plus that.
func TestSubStartsAtZero(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := startGate(t, "rtmp:\n  grace_period: 500ms\n")
	const fps = 30
	ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "7", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "0",
		"-c:a", "aac", "-f", "flv", g.RTMP+"/live/late")
	g.waitBroadcast(t, ctx, "live/late")
	time.Sleep(3 * time.Second)
	file, done := sub(t, ctx, g.MoQ, "live/late")
	waitExit(t, done, 20*time.Second)
	checkStartsAtZero(t, file, 1.5/fps)
	if tm := ffprobeTiming(t, file); tm.duration < 3 || tm.duration > 6 {
		t.Errorf("duration %.3f s, want 3-6 s (joined about 3 s into a 7 s broadcast)", tm.duration)
	}
	decodes(t, file)
}
