package e2e

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

// pubPipeline runs `ffmpeg ... -f mp4 - | moqgate pub URL BROADCAST`.
func pubPipeline(t *testing.T, ctx context.Context, url, broadcast string, ffargs ...string) <-chan error {
	t.Helper()
	return pubPipelineWith(t, ctx, nil, url, broadcast, ffargs...)
}

// pubPipelineWith is pubPipeline with extra `moqgate pub` flags.
func pubPipelineWith(t *testing.T, ctx context.Context, pubArgs []string, url, broadcast string, ffargs ...string) <-chan error {
	t.Helper()
	browsertest.RequirePeer(t, "ffmpeg")
	enc := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, ffargs...)...)
	enc.Stderr = testWriter{t, "ffmpeg"}
	out, err := enc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	pub := exec.CommandContext(ctx, binPath, append(append([]string{"pub", "--insecure", "--log-level", "info"}, pubArgs...), url, broadcast)...)
	pub.Stdin = out
	pub.Stderr = testWriter{t, "pub"}
	if err := enc.Start(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := pub.Wait()
		enc.Wait()
		done <- err
	}()
	t.Cleanup(func() {
		enc.Process.Kill()
		pub.Process.Kill()
	})
	return done
}

// TestPubHEVCOpus: ffmpeg encodes HEVC + Opus as fragmented MP4 (what RTMP
// without the enhanced extensions cannot carry), `moqgate pub` publishes
// it over raw QUIC, `moqgate sub` records it back over WebTransport
// (draft-14, and both ends over draft-17 with --draft 17); ffprobe checks
// codecs, frame counts and timestamps.
func TestPubHEVCOpus(t *testing.T) {
	for _, tc := range []struct {
		name, vcodec, tag, acodec, wantV, wantA string
		args                                    []string
	}{
		{"hevc-opus", "libx265", "hvc1", "libopus", "hevc", "opus", nil},
		{"h264-bframes-aac", "libx264", "avc1", "aac", "h264", "aac", nil},
		{"hevc-opus-draft17", "libx265", "hvc1", "libopus", "hevc", "opus", []string{"--draft", "17"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			g := startGate(t, "rtmp:\n  grace_period: 500ms\n")
			const seconds, fps = 5, 25
			done := pubPipelineWith(t, ctx, tc.args, g.MoQ, "live/pub", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
				"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "5",
				"-c:v", tc.vcodec, "-tag:v", tc.tag, "-g", "25", "-c:a", tc.acodec, "-x265-params", "log-level=error",
				"-f", "mp4", "-movflags", "cmaf+frag_keyframe+empty_moov+default_base_moof", "-")
			g.waitBroadcast(t, ctx, "live/pub")
			file, subDone := sub(t, ctx, g.WT, "live/pub", tc.args...)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("moqgate pub: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("pub did not finish")
			}
			waitExit(t, subDone, 20*time.Second)
			p := ffprobe(t, file)
			if len(p.Streams) != 2 || p.Streams[0].CodecName != tc.wantV || p.Streams[1].CodecName != tc.wantA {
				t.Fatalf("streams %+v", p.Streams)
			}
			if p.Streams[0].Width != 320 || p.Streams[0].Height != 240 {
				t.Fatalf("video %+v", p.Streams[0])
			}
			frames := atoi(p.Streams[0].NbFrames)
			if want := seconds * fps; frames < want*95/100 || frames > want*105/100 {
				t.Fatalf("video frames %d, sent %d", frames, want)
			}
			checkTimestamps(t, p, p.Streams[0].Index)
			checkStartsAtZero(t, file, 1.5/fps)
			decodes(t, file)
			if tc.args != nil && g.logs.count("moq session started", "version=0xff000011") < 2 {
				t.Fatal("pub and sub did not both speak draft-17 to moqgate")
			}
		})
	}
}
