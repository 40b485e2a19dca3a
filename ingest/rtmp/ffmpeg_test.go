package rtmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/moqgate/moqgate/media"
)

// TestFFmpegPublish pushes H.264 + AAC from ffmpeg (a real RTMP client) for
// 3 s, with and without B-frames.
func TestFFmpegPublish(t *testing.T) {
	ffmpeg := requireTool(t, "ffmpeg")
	for _, bf := range []int{2, 0} {
		t.Run(fmt.Sprintf("bf=%d", bf), func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			var got PublishRequest
			srv := startServer(t, Config{OnPublish: func(_ context.Context, req PublishRequest) (media.BroadcastWriter, error) {
				got = req
				return rec, nil
			}})

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error",
				"-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=3",
				"-f", "lavfi", "-i", "sine=frequency=440:duration=3",
				"-c:v", "libx264", "-g", "30", "-bf", strconv.Itoa(bf), "-c:a", "aac",
				"-f", "flv", "rtmp://"+srv.addr+"/live/test?key=abc")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			rec.waitClosed(t, 10*time.Second)
			sets, frames := rec.snapshot(t)

			if got.Path != "live/test" || got.Query.Get("key") != "abc" || got.RemoteAddr == nil {
				t.Errorf("publish request = %+v", got)
			}
			if len(sets) != 1 {
				t.Errorf("SetTracks called %d times, want 1", len(sets))
			}
			v := lastTrack(t, sets, "video")
			a := lastTrack(t, sets, "audio")
			if v.Codec != media.H264 || v.Width != 320 || v.Height != 240 || v.Timescale != 1000 ||
				len(v.SPS) != 1 || len(v.PPS) != 1 || v.SPS[0][0]&0x1f != 7 || v.PPS[0][0]&0x1f != 8 {
				t.Errorf("video track = %+v", v)
			}
			if v.Framerate != 30 {
				t.Errorf("video framerate = %v, want 30", v.Framerate)
			}
			var asc mpeg4audio.AudioSpecificConfig
			if a.Codec != media.AAC || asc.Unmarshal(a.AACConfig) != nil || a.SampleRate != 44100 ||
				a.Channels != 1 || a.Timescale != 1000 {
				t.Errorf("audio track = %+v", a)
			}

			vf, af := frames["video"], frames["audio"]
			within(t, "video frames", len(vf), 90)
			within(t, "audio frames", len(af), 3*44100/1024)

			cto := false
			for i, f := range vf {
				if want := i%30 == 0; f.Keyframe != want {
					t.Errorf("video frame %d: keyframe=%v, want %v", i, f.Keyframe, want)
				}
				if i > 0 && f.DTS <= vf[i-1].DTS {
					t.Errorf("video frame %d: DTS %d after %d", i, f.DTS, vf[i-1].DTS)
				}
				if f.CTO < 0 {
					t.Errorf("video frame %d: CTO %d < 0 (PTS before DTS)", i, f.CTO)
				}
				cto = cto || f.CTO > 0
				checkAVCC(t, i, f.Data)
			}
			if cto != (bf > 0) {
				t.Errorf("CTO > 0 seen: %v, with -bf %d", cto, bf)
			}
			for i, f := range af {
				if !f.Keyframe || f.CTO != 0 || (i > 0 && f.DTS < af[i-1].DTS) {
					t.Errorf("audio frame %d = DTS %d CTO %d key %v", i, f.DTS, f.CTO, f.Keyframe)
				}
			}

			// The frames must decode: rebuild elementary streams for ffprobe.
			var h264 bytes.Buffer
			for i, f := range vf {
				if i == 0 {
					for _, ps := range append(append([][]byte{}, v.SPS...), v.PPS...) {
						h264.Write([]byte{0, 0, 0, 1})
						h264.Write(ps)
					}
				}
				for b := f.Data; len(b) > 0; {
					n := binary.BigEndian.Uint32(b)
					h264.Write([]byte{0, 0, 0, 1})
					h264.Write(b[4 : 4+n])
					b = b[4+n:]
				}
			}
			if n := probeFrames(t, "v.h264", h264.Bytes()); n != len(vf) {
				t.Errorf("ffprobe decoded %d video frames of %d", n, len(vf))
			}
			var adts bytes.Buffer
			for _, f := range af {
				adts.Write(adtsHeader(t, asc, len(f.Data)))
				adts.Write(f.Data)
			}
			if n := probeFrames(t, "a.aac", adts.Bytes()); n != len(af) {
				t.Errorf("ffprobe decoded %d audio frames of %d", n, len(af))
			}
			if !strings.Contains(srv.logs.String(), "publisher disconnected") {
				t.Errorf("no disconnect log line:\n%s", srv.logs.String())
			}
		})
	}
}

// within checks n is within ±5 % of want.
func within(t *testing.T, what string, n, want int) {
	t.Helper()
	if d := float64(n-want) / float64(want); d < -0.05 || d > 0.05 {
		t.Errorf("%s: %d, want %d ±5%%", what, n, want)
	}
}

// checkAVCC checks an H.264 frame is 4-byte length-prefixed NAL units with
// no parameter set or AUD.
func checkAVCC(t *testing.T, i int, b []byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("frame %d: truncated length", i)
		}
		n := int(binary.BigEndian.Uint32(b))
		if n == 0 || n > len(b)-4 {
			t.Fatalf("frame %d: bad NAL unit length %d", i, n)
		}
		if typ := b[4] & 0x1f; typ == 7 || typ == 8 || typ == 9 {
			t.Errorf("frame %d: NAL unit type %d in frame", i, typ)
		}
		b = b[4+n:]
	}
}

func adtsHeader(t *testing.T, asc mpeg4audio.AudioSpecificConfig, n int) []byte {
	t.Helper()
	pkts := mpeg4audio.ADTSPackets{{
		Type: asc.Type, SampleRate: asc.SampleRate, ChannelConfig: asc.ChannelConfig, AU: make([]byte, n),
	}}
	b, err := pkts.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b[:len(b)-n]
}

// probeFrames decodes an elementary stream with ffprobe and returns the
// number of frames read.
func probeFrames(t *testing.T, name string, data []byte) int {
	t.Helper()
	ffprobe := requireTool(t, "ffprobe")
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	s := strings.TrimSpace(string(out))
	if strings.Contains(s, "\n") || strings.Contains(strings.ToLower(s), "error") {
		t.Errorf("ffprobe reported errors:\n%s", s)
		s = s[strings.LastIndex(s, "\n")+1:]
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("ffprobe output %q", out)
	}
	return n
}
