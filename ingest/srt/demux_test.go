package srt

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/moqgate/moqgate/media"
)

// recorder is a media.BroadcastWriter that keeps what it is given and
// checks the media.Frame conventions the packager relies on.
type recorder struct {
	t      testing.TB
	tracks []media.TrackInfo
	sets   int
	frames map[string][]media.Frame
}

func newRecorder(t testing.TB) *recorder { return &recorder{t: t, frames: map[string][]media.Frame{}} }

func (r *recorder) SetTracks(tracks []media.TrackInfo) error {
	for _, ti := range tracks {
		if _, err := media.InitSegment(ti); err != nil {
			r.t.Errorf("track %s: no init segment: %v", ti.Name, err)
		}
	}
	r.tracks = tracks
	r.sets++
	return nil
}

func (r *recorder) WriteFrame(track string, f media.Frame) error {
	fs := r.frames[track]
	if n := len(fs); n > 0 && f.DTS <= fs[n-1].DTS {
		r.t.Errorf("track %s frame %d: DTS %d after %d", track, n, f.DTS, fs[n-1].DTS)
	}
	r.frames[track] = append(fs, f)
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) info(name string) media.TrackInfo {
	for _, ti := range r.tracks {
		if ti.Name == name {
			return ti
		}
	}
	r.t.Fatalf("no track %s in %+v", name, r.tracks)
	return media.TrackInfo{}
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func demuxFile(t *testing.T, data []byte) *recorder {
	t.Helper()
	rec := newRecorder(t)
	err := Demux(bytes.NewReader(data), rec, testLog(t), nil)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Demux: %v, want io.EOF at the end", err)
	}
	return rec
}

func readTestdata(t testing.TB, name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The testdata files are 2 s of ffmpeg output: 25 fps video (50 frames),
// 48 kHz audio (AAC: 1024 samples a frame; Opus: 20 ms).
func TestDemuxFiles(t *testing.T) {
	for _, tc := range []struct {
		file         string
		video, audio media.Codec
		audioFrames  int
	}{
		{"h264_aac.ts", media.H264, media.AAC, 95},
		{"hevc_opus.ts", media.H265, media.Opus, 101},
		{"wrap.ts", media.H264, media.AAC, 95},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rec := demuxFile(t, readTestdata(t, tc.file))
			v, a := rec.info("video"), rec.info("audio")
			if v.Codec != tc.video || v.Width != 160 || v.Height != 120 || len(v.SPS) == 0 || len(v.PPS) == 0 {
				t.Errorf("video track %+v", v)
			}
			if a.Codec != tc.audio || a.SampleRate != 48000 || a.Channels != 1 {
				t.Errorf("audio track %+v", a)
			}
			if tc.audio == media.AAC && len(a.AACConfig) == 0 {
				t.Error("no AudioSpecificConfig")
			}
			vf, af := rec.frames["video"], rec.frames["audio"]
			if len(vf) != 50 {
				t.Errorf("video frames %d, want 50", len(vf))
			}
			if len(af) != tc.audioFrames {
				t.Errorf("audio frames %d, want %d (ffprobe's count)", len(af), tc.audioFrames)
			}
			if len(vf) > 0 && !vf[0].Keyframe {
				t.Error("first video frame is not a key frame")
			}
			checkAVCC(t, vf)
			// 50 frames at 25 fps on the 90 kHz clock.
			if span := vf[len(vf)-1].DTS - vf[0].DTS; span != 49*3600 {
				t.Errorf("video DTS span %d, want %d", span, 49*3600)
			}
			if rec.sets != 1 {
				t.Errorf("SetTracks called %d times, want once", rec.sets)
			}
		})
	}
}

// checkAVCC: every frame is 4-byte-length-prefixed NAL units without
// parameter sets or delimiters.
func checkAVCC(t *testing.T, frames []media.Frame) {
	t.Helper()
	for i, f := range frames {
		nalus := splitAVCC(f.Data)
		n := 0
		for _, u := range nalus {
			n += 4 + len(u)
		}
		if n != len(f.Data) || len(nalus) == 0 {
			t.Fatalf("frame %d is not AVCC (%d of %d bytes)", i, n, len(f.Data))
		}
	}
}

// The wrap file's 33-bit clock wraps: the raw PTS go from near 2^33 to
// near 0, and the demuxer's DTS still increase (checked by recorder).
func TestDemuxWrapFileWraps(t *testing.T) {
	rd := &mpegts.Reader{R: bytes.NewReader(readTestdata(t, "wrap.ts"))}
	if err := rd.Initialize(); err != nil {
		t.Fatal(err)
	}
	var high, low bool
	for _, tr := range rd.Tracks() {
		if tr.Codec.IsVideo() {
			rd.OnDataH264(tr, func(pts, _ int64, _ [][]byte) error {
				high = high || pts > 1<<33-10*90000
				low = low || pts < 10*90000
				return nil
			})
		}
	}
	for rd.Read() == nil {
	}
	if !high || !low {
		t.Fatalf("testdata/wrap.ts does not wrap (near 2^33: %v, near 0: %v)", high, low)
	}
}

func TestDemuxRefusesMP2(t *testing.T) {
	rec := newRecorder(t)
	err := Demux(bytes.NewReader(readTestdata(t, "h264_mp2.ts")), rec, testLog(t), nil)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Demux: %v", err)
	}
	if len(rec.tracks) != 1 || rec.tracks[0].Codec != media.H264 {
		t.Fatalf("tracks %+v, want the video only", rec.tracks)
	}
}

// Damaged TS packets (bytes flipped, packets cut short) drop what they
// carried, not the stream.
func TestDemuxDamaged(t *testing.T) {
	data := readTestdata(t, "h264_aac.ts")
	var out []byte
	for i := 0; i+188 <= len(data); i += 188 {
		pkt := data[i : i+188]
		switch {
		case i/188%50 == 17:
			out = append(out, pkt[:100]...) // truncated
		case i/188%50 == 33:
			bad := bytes.Clone(pkt)
			for j := 4; j < len(bad); j += 7 {
				bad[j] ^= 0xa5
			}
			out = append(out, bad...)
		default:
			out = append(out, pkt...)
		}
	}
	rec := demuxFile(t, out)
	vf := rec.frames["video"]
	if len(vf) < 30 {
		t.Fatalf("%d video frames survived, want most of 50", len(vf))
	}
	t.Logf("%d of 50 video frames, %d audio frames survived", len(vf), len(rec.frames["audio"]))
}

// A stream that is not MPEG-TS ends with an error, after a bounded read.
func TestDemuxGarbage(t *testing.T) {
	g := &initGuard{r: bytes.NewReader(bytes.Repeat([]byte{0x47, 1, 2, 3}, 2<<20)), max: 1 << 20}
	err := Demux(g, newRecorder(t), testLog(t), nil)
	if err == nil {
		t.Fatal("no error")
	}
	if g.n > 1<<20 {
		t.Fatalf("read %d bytes before giving up", g.n)
	}
}

// An encoder restart inside one session (the clock jumps back): the
// timeline continues, one frame interval after the last frame.
func TestDemuxDiscontinuity(t *testing.T) {
	data := readTestdata(t, "h264_aac.ts")
	rec := demuxFile(t, append(bytes.Clone(data), data...))
	vf := rec.frames["video"]
	if len(vf) != 100 {
		t.Fatalf("video frames %d, want 100", len(vf))
	}
	if d := vf[50].DTS - vf[49].DTS; d != 3600 {
		t.Errorf("step across the restart %d, want one frame (3600)", d)
	}
}
