package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// fmp4Sample describes a committed ffmpeg output (see testdata/gen_fmp4.sh)
// and what ffprobe says about it.
type fmp4Sample struct {
	file  string
	video TrackInfo // Codec, Width, Height, Timescale checked
	audio TrackInfo // Codec, SampleRate, Channels, Timescale checked
	// frame counts and video keyframes, as ffprobe -count_packets reports
	nVideo, nAudio, nKey int
}

var fmp4Samples = []fmp4Sample{
	{"fmp4_h264_aac.mp4", TrackInfo{Codec: H264, Width: 320, Height: 240, Timescale: 15360},
		TrackInfo{Codec: AAC, SampleRate: 48000, Channels: 2, Timescale: 48000}, 30, 48, 1},
	{"fmp4_h264_aac_sep.mp4", TrackInfo{Codec: H264, Width: 320, Height: 240, Timescale: 15360},
		TrackInfo{Codec: AAC, SampleRate: 48000, Channels: 1, Timescale: 48000}, 30, 48, 2},
	{"fmp4_h264_aac_interleave.mp4", TrackInfo{Codec: H264, Width: 320, Height: 240, Timescale: 15360},
		TrackInfo{Codec: AAC, SampleRate: 48000, Channels: 1, Timescale: 48000}, 30, 48, 2},
	{"fmp4_h265_opus.mp4", TrackInfo{Codec: H265, Width: 320, Height: 240, Timescale: 15360},
		TrackInfo{Codec: Opus, SampleRate: 48000, Channels: 1, Timescale: 48000}, 30, 51, 2},
	{"fmp4_av1_opus.mp4", TrackInfo{Codec: AV1, Width: 320, Height: 240, Timescale: 15360},
		TrackInfo{Codec: Opus, SampleRate: 48000, Channels: 1, Timescale: 48000}, 30, 51, 1},
	{"fmp4_vp9_mp3.mp4", TrackInfo{Codec: VP9, Width: 320, Height: 240, Timescale: 15360},
		// ffmpeg writes channel_count 2 for MP3 in mp4a; the moov has no better source.
		TrackInfo{Codec: MP3, SampleRate: 48000, Channels: 2, Timescale: 48000}, 30, 43, 1},
}

func TestFMP4DemuxSamples(t *testing.T) {
	for _, s := range fmp4Samples {
		t.Run(s.file, func(t *testing.T) {
			path := filepath.Join("testdata", s.file)
			got := fmp4DemuxFile(t, path)
			checkFMP4Tracks(t, got, s)
			checkFMP4Frames(t, got, s.nVideo, s.nAudio, s.nKey)

			// The same stream read one byte at a time gives the same result.
			b, _ := os.ReadFile(path)
			slow := fmp4DemuxAll(t, iotest.OneByteReader(bytes.NewReader(b)))
			if !equalFMP4Frames(got.frames, slow.frames) || strings.Join(got.order, ",") != strings.Join(slow.order, ",") {
				t.Error("byte-by-byte reading gives different frames")
			}
		})
	}
}

func checkFMP4Tracks(t *testing.T, got fmp4Demuxed, s fmp4Sample) {
	t.Helper()
	if len(got.tracks) != 2 || got.tracks[0].Name != "video" || got.tracks[1].Name != "audio" {
		t.Fatalf("tracks = %+v, want video and audio", got.tracks)
	}
	v, a := got.tracks[0], got.tracks[1]
	if v.Codec != s.video.Codec || v.Width != s.video.Width || v.Height != s.video.Height || v.Timescale != s.video.Timescale {
		t.Errorf("video = %s %dx%d ts %d, want %s %dx%d ts %d", v.Codec, v.Width, v.Height, v.Timescale,
			s.video.Codec, s.video.Width, s.video.Height, s.video.Timescale)
	}
	if a.Codec != s.audio.Codec || a.SampleRate != s.audio.SampleRate || a.Channels != s.audio.Channels || a.Timescale != s.audio.Timescale {
		t.Errorf("audio = %s %d Hz %d ch ts %d, want %s %d Hz %d ch ts %d", a.Codec, a.SampleRate, a.Channels, a.Timescale,
			s.audio.Codec, s.audio.SampleRate, s.audio.Channels, s.audio.Timescale)
	}
	switch v.Codec {
	case H264:
		if len(v.SPS) != 1 || len(v.PPS) != 1 || v.SPS[0][0]&0x1f != 7 || v.PPS[0][0]&0x1f != 8 {
			t.Errorf("H.264 parameter sets: SPS %x PPS %x", v.SPS, v.PPS)
		}
	case H265:
		if len(v.VPS) != 1 || len(v.SPS) != 1 || len(v.PPS) != 1 ||
			v.VPS[0][0]>>1&0x3f != 32 || v.SPS[0][0]>>1&0x3f != 33 || v.PPS[0][0]>>1&0x3f != 34 {
			t.Errorf("H.265 parameter sets: VPS %x SPS %x PPS %x", v.VPS, v.SPS, v.PPS)
		}
	case AV1:
		// OBU header: type 1 = sequence header.
		if len(v.AV1SequenceHeader) < 2 || v.AV1SequenceHeader[0]>>3&0xf != 1 {
			t.Errorf("AV1 config OBUs %x", v.AV1SequenceHeader)
		}
	case VP9:
		if v.VP9BitDepth != 8 {
			t.Errorf("VP9 bit depth %d", v.VP9BitDepth)
		}
	}
	switch a.Codec {
	case AAC:
		if len(a.AACConfig) < 2 || a.AACConfig[0]>>3 != 2 { // AAC-LC
			t.Errorf("AudioSpecificConfig %x", a.AACConfig)
		}
	case Opus:
		if a.OpusPreSkip == 0 {
			t.Error("Opus pre-skip missing")
		}
	}
}

// checkFMP4Frames checks counts and timing invariants of demuxed frames.
func checkFMP4Frames(t *testing.T, got fmp4Demuxed, nVideo, nAudio, nKey int) {
	t.Helper()
	vf, af := got.frames["video"], got.frames["audio"]
	if len(vf) != nVideo || len(af) != nAudio {
		t.Errorf("frames: %d video %d audio, want %d and %d", len(vf), len(af), nVideo, nAudio)
	}
	keys := 0
	for _, f := range vf {
		if f.Keyframe {
			keys++
		}
	}
	if keys != nKey {
		t.Errorf("video keyframes = %d, want %d", keys, nKey)
	}
	if len(vf) > 0 && !vf[0].Keyframe {
		t.Error("first video frame is not a keyframe")
	}
	for _, f := range af {
		if !f.Keyframe {
			t.Fatal("audio frame not marked key")
		}
	}
	codec := got.track("video").Codec
	for name, fs := range got.frames {
		for i, f := range fs {
			if len(f.Data) == 0 || f.Duration <= 0 {
				t.Fatalf("%s frame %d: %d bytes, duration %d", name, i, len(f.Data), f.Duration)
			}
			if i > 0 {
				prev := fs[i-1]
				// Strictly monotonic and gap-free: tfdt and durations agree.
				if f.DTS != prev.DTS+prev.Duration {
					t.Fatalf("%s frame %d: DTS %d, previous %d + %d", name, i, f.DTS, prev.DTS, prev.Duration)
				}
			}
			if name == "video" && (codec == H264 || codec == H265) && !validAVCC(f.Data) {
				t.Fatalf("video frame %d is not 4-byte length-prefixed NAL units", i)
			}
		}
	}
}

func validAVCC(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		n := binary.BigEndian.Uint32(b)
		if n == 0 || uint64(n) > uint64(len(b)-4) {
			return false
		}
		b = b[4+n:]
	}
	return true
}

func equalFMP4Frames(a, b map[string][]Frame) bool {
	if len(a) != len(b) {
		return false
	}
	for name, fa := range a {
		fb := b[name]
		if len(fa) != len(fb) {
			return false
		}
		for i := range fa {
			x, y := fa[i], fb[i]
			if x.DTS != y.DTS || x.CTO != y.CTO || x.Duration != y.Duration || x.Keyframe != y.Keyframe || !bytes.Equal(x.Data, y.Data) {
				return false
			}
		}
	}
	return true
}

// TestFMP4DemuxMatchesFFprobe compares every packet's PTS, DTS step and key
// flag with what ffprobe reads from the same file.
func TestFMP4DemuxMatchesFFprobe(t *testing.T) {
	fmp4NeedTool(t, "ffprobe")
	for _, s := range fmp4Samples {
		t.Run(s.file, func(t *testing.T) {
			path := filepath.Join("testdata", s.file)
			compareWithFFprobe(t, path, fmp4DemuxFile(t, path))
		})
	}
}

func compareWithFFprobe(t *testing.T, path string, got fmp4Demuxed) {
	t.Helper()
	streams := ffprobeStreams(t, path)
	if len(streams) != len(got.tracks) {
		t.Fatalf("ffprobe sees %d streams, demuxer %d tracks", len(streams), len(got.tracks))
	}
	pkts := ffprobePackets(t, path)
	for i, ti := range got.tracks {
		var ps []ffprobePacket
		for _, p := range pkts {
			if p.stream == i {
				ps = append(ps, p)
			}
		}
		fs := got.frames[ti.Name]
		if want := streams[i].NbReadPackets; want != fmt.Sprint(len(fs)) {
			t.Errorf("%s: %d frames, ffprobe counts %s packets", ti.Name, len(fs), want)
		}
		if want := streams[i].NbReadFrames; want != fmt.Sprint(len(fs)) {
			t.Errorf("%s: %d frames, ffprobe decodes %s", ti.Name, len(fs), want)
		}
		if len(ps) != len(fs) {
			t.Fatalf("%s: %d frames, ffprobe lists %d packets", ti.Name, len(fs), len(ps))
		}
		for j := range fs {
			f, p := fs[j], ps[j]
			// ffmpeg shifts PTS by a constant when CTOs are negative
			// (dts_shift), so compare both relative to the first packet.
			if f.DTS+f.CTO-fs[0].DTS-fs[0].CTO != p.pts-ps[0].pts || f.DTS-fs[0].DTS != p.dts-ps[0].dts || f.Keyframe != p.key {
				t.Fatalf("%s frame %d: pts %d dts %d key %v; ffprobe pts %d dts %d key %v",
					ti.Name, j, f.DTS+f.CTO, f.DTS, f.Keyframe, p.pts, p.dts, p.key)
			}
		}
	}
}

// TestFMP4DemuxFFmpegPipe demuxes ffmpeg's output straight from its stdout
// pipe, as `ffmpeg ... - | moqgate pub` does, and checks it against ffprobe
// on the very same bytes.
func TestFMP4DemuxFFmpegPipe(t *testing.T) {
	fmp4NeedTool(t, "ffmpeg")
	fmp4NeedTool(t, "ffprobe")
	if testing.Short() {
		t.Skip("encodes with ffmpeg")
	}
	encoders := ffmpegEncoders(t)
	src := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"}
	cases := []struct {
		name    string
		enc     string
		args    []string
		seconds int // at 30 fps
		video   Codec
		audio   Codec
	}{
		{"h264_bf2_aac", "libx264", []string{"-c:v", "libx264", "-bf", "2", "-g", "30", "-c:a", "aac"}, 2, H264, AAC},
		{"h264_bf0_aac", "libx264", []string{"-c:v", "libx264", "-bf", "0", "-g", "30", "-c:a", "aac"}, 2, H264, AAC},
		{"h265_opus", "libx265", []string{"-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error", "-bf", "2", "-g", "30", "-c:a", "libopus"}, 2, H265, Opus},
		{"svtav1_opus", "libsvtav1", []string{"-c:v", "libsvtav1", "-preset", "12", "-g", "30", "-c:a", "libopus"}, 2, AV1, Opus},
		// libaom is slow; one GOP is enough to see its empty av1C handled.
		{"aom_aac", "libaom-av1", []string{"-c:v", "libaom-av1", "-cpu-used", "8", "-g", "30", "-c:a", "aac"}, 1, AV1, AAC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !encoders[c.enc] || (c.audio == Opus && !encoders["libopus"]) {
				t.Skipf("ffmpeg lacks %s", c.enc)
			}
			args := append([]string{"-hide_banner", "-nostdin", "-v", "error"}, src...)
			args = append(args, "-t", strconv.Itoa(c.seconds))
			args = append(args, c.args...)
			args = append(args, "-f", "mp4", "-movflags", "cmaf+frag_keyframe+empty_moov+default_base_moof", "-")
			cmd := exec.Command("ffmpeg", args...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var copyBuf bytes.Buffer
			got := fmp4DemuxAll(t, io.TeeReader(stdout, &copyBuf))
			if err := cmd.Wait(); err != nil {
				t.Fatalf("ffmpeg: %v: %s", err, stderr.String())
			}
			if got.track("video").Codec != c.video || got.track("audio").Codec != c.audio {
				t.Fatalf("tracks %+v", got.tracks)
			}
			if v := got.track("video"); v.Codec == AV1 && (len(v.AV1SequenceHeader) < 2 || v.AV1SequenceHeader[0]>>3&0xf != 1) {
				// libaom leaves av1C empty; the demuxer takes it from the first keyframe.
				t.Errorf("AV1 config OBUs %x", v.AV1SequenceHeader)
			}
			if n := len(got.frames["video"]); n != 30*c.seconds {
				t.Errorf("%d video frames, want %d", n, 30*c.seconds)
			}
			path := filepath.Join(t.TempDir(), "out.mp4")
			if err := os.WriteFile(path, copyBuf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			compareWithFFprobe(t, path, got)
			// And on to a subscriber: per-frame fragments, muxed, decoded.
			checkFMP4WithFFmpeg(t, fmp4MuxFrames(t, got), got)
			for _, name := range []string{"video", "audio"} {
				fs := got.frames[name]
				for i := 1; i < len(fs); i++ {
					if fs[i].DTS <= fs[i-1].DTS {
						t.Fatalf("%s DTS not increasing at %d", name, i)
					}
				}
			}
		})
	}
}

func ffmpegEncoders(t *testing.T) map[string]bool {
	out, err := exec.Command("ffmpeg", "-hide_banner", "-encoders").Output()
	if err != nil {
		t.Fatalf("ffmpeg -encoders: %v", err)
	}
	m := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			m[f[1]] = true
		}
	}
	return m
}

// TestFMP4DemuxCTOSign: without the cmaf flag ffmpeg uses
// trun v0 (unsigned offsets), so PTS >= DTS holds; with it, B-frames get
// negative offsets (PTS < DTS), which Frame.CTO carries as is.
func TestFMP4DemuxCTOSign(t *testing.T) {
	sep := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac_sep.mp4")) // -bf 0, trun v0
	for i, f := range sep.frames["video"] {
		if f.CTO < 0 {
			t.Fatalf("v0 trun frame %d: CTO %d", i, f.CTO)
		}
	}
	cmaf := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4")) // -bf 2, trun v1
	neg := 0
	for _, f := range cmaf.frames["video"] {
		if f.CTO < 0 {
			neg++
		}
		if f.DTS+f.CTO < 0 {
			t.Fatalf("negative PTS %d", f.DTS+f.CTO)
		}
	}
	if neg == 0 {
		t.Error("expected negative CTOs from a v1 trun with B-frames")
	}
}

// TestFMP4DemuxTracksChanged: concatenated files (a new ftyp+moov mid-stream)
// switch tracks and signal it; the second file's absolute base_data_offsets
// count from its own ftyp.
func TestFMP4DemuxTracksChanged(t *testing.T) {
	a, _ := os.ReadFile(filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	b, _ := os.ReadFile(filepath.Join("testdata", "fmp4_h265_opus.mp4"))
	c, _ := os.ReadFile(filepath.Join("testdata", "fmp4_h264_aac_sep.mp4"))
	stream := bytes.Join([][]byte{a, b, c}, nil)
	d := NewFMP4Demuxer(bytes.NewReader(stream), 0)
	tracks, err := d.Tracks()
	if err != nil || tracks[0].Codec != H264 {
		t.Fatalf("Tracks = %+v, %v", tracks, err)
	}
	var counts []int
	var codecs []Codec
	n := 0
	for {
		_, _, err := d.Next()
		if errors.Is(err, ErrFMP4TracksChanged) {
			counts = append(counts, n)
			n = 0
			tr, err := d.Tracks()
			if err != nil {
				t.Fatal(err)
			}
			codecs = append(codecs, tr[0].Codec, tr[1].Codec)
			continue
		}
		if err == io.EOF {
			counts = append(counts, n)
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		n++
	}
	if fmt.Sprint(counts) != "[78 81 78]" || fmt.Sprint(codecs) != "[h265 opus h264 aac]" {
		t.Errorf("segments %v codecs %v", counts, codecs)
	}
}

// TestFMP4DemuxLive checks the demuxer does not wait for more than the box
// it needs: Tracks returns as soon as the moov is in, frames as soon as
// their mdat is.
func TestFMP4DemuxLive(t *testing.T) {
	b, _ := os.ReadFile(filepath.Join("testdata", "fmp4_h264_aac_sep.mp4"))
	var boxes [][]byte
	fmp4IterBoxes(t, b, func(_ string, box []byte) { boxes = append(boxes, box) })
	pr, pw := io.Pipe()
	defer pr.Close()
	d := NewFMP4Demuxer(pr, 0)
	go func() {
		pw.Write(bytes.Join(boxes[:2], nil)) // ftyp, moov
	}()
	done := make(chan error, 1)
	go func() { _, err := d.Tracks(); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Tracks blocked although the moov was written")
	}
	go func() {
		pw.Write(bytes.Join(boxes[2:4], nil)) // first video moof+mdat
	}()
	got := make(chan string, 1)
	go func() { name, _, _ := d.Next(); got <- name }()
	select {
	case name := <-got:
		if name != "video" {
			t.Fatalf("first frame of track %q", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next blocked although a whole fragment was written")
	}
	pw.Close()
}

func TestFMP4DemuxErrors(t *testing.T) {
	good, _ := os.ReadFile(filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	var boxes [][]byte
	fmp4IterBoxes(t, good, func(_ string, box []byte) { boxes = append(boxes, box) })
	head := bytes.Join(boxes[:2], nil)

	t.Run("box too large", func(t *testing.T) {
		d := NewFMP4Demuxer(bytes.NewReader(good), 4096) // the first mdat is larger
		if _, err := d.Tracks(); err != nil {
			t.Fatal(err)
		}
		var err error
		for err == nil {
			_, _, err = d.Next()
		}
		if !strings.Contains(err.Error(), "exceeds limit 4096") {
			t.Fatalf("err = %v", err)
		}
		if _, _, err2 := d.Next(); err2 != err {
			t.Fatalf("error not sticky: %v", err2)
		}
	})
	t.Run("forged huge size", func(t *testing.T) {
		in := append(bytes.Clone(head), 0xff, 0xff, 0xff, 0xf0, 'm', 'd', 'a', 't')
		d := NewFMP4Demuxer(bytes.NewReader(in), 0)
		d.Tracks()
		if _, _, err := d.Next(); err == nil || !strings.Contains(err.Error(), "exceeds limit") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for _, cut := range []int{len(good) - 1, len(head) + 100, len(head) + 3, 5} {
			d := NewFMP4Demuxer(bytes.NewReader(good[:cut]), 0)
			var err error
			if _, err = d.Tracks(); err == nil {
				for err == nil {
					_, _, err = d.Next()
				}
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("cut at %d: err = %v, want unexpected EOF", cut, err)
			}
		}
	})
	t.Run("clean end after moov", func(t *testing.T) {
		d := NewFMP4Demuxer(bytes.NewReader(head), 0)
		if _, err := d.Tracks(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.Next(); err != io.EOF {
			t.Fatalf("err = %v, want io.EOF", err)
		}
	})
	t.Run("moof before moov", func(t *testing.T) {
		in := bytes.Join([][]byte{boxes[0], boxes[2], boxes[3]}, nil)
		if _, err := NewFMP4Demuxer(bytes.NewReader(in), 0).Tracks(); err == nil || !strings.Contains(err.Error(), "before moov") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if _, err := NewFMP4Demuxer(bytes.NewReader(nil), 0).Tracks(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		if _, err := NewFMP4Demuxer(strings.NewReader("this is not an mp4 file at all"), 0).Tracks(); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("sample outside mdat", func(t *testing.T) {
		moof := bytes.Clone(boxes[2])
		// Shrink the mdat so the moof's samples run past it.
		mdat := bytes.Clone(boxes[3][:len(boxes[3])-100])
		binary.BigEndian.PutUint32(mdat, uint32(len(mdat)))
		in := bytes.Join([][]byte{head, moof, mdat}, nil)
		d := NewFMP4Demuxer(bytes.NewReader(in), 0)
		d.Tracks()
		if _, _, err := d.Next(); err == nil || !strings.Contains(err.Error(), "outside mdat") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestFMP4DemuxFileOrder: samples come out in mdat order even when one moof
// interleaves runs of two tracks.
func TestFMP4DemuxFileOrder(t *testing.T) {
	src := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	vf, af := fmp4SmallFrames(src, "video", 3), fmp4SmallFrames(src, "audio", 3)
	var boxes [][]byte
	b, _ := os.ReadFile(filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	fmp4IterBoxes(t, b, func(_ string, box []byte) { boxes = append(boxes, box) })
	stream := append(bytes.Join(boxes[:2], nil), fmp4InterleavedFragment(t, vf, af)...)
	got := fmp4DemuxAll(t, bytes.NewReader(stream))
	if o := strings.Join(got.order, ","); o != "video,audio,video,audio,video,audio" {
		t.Fatalf("order %s", o)
	}
	for i, f := range got.frames["audio"] {
		if !bytes.Equal(f.Data, af[i].Data) || f.DTS != af[i].DTS {
			t.Fatalf("audio frame %d: %x at %d, want %x at %d", i, f.Data, f.DTS, af[i].Data, af[i].DTS)
		}
	}
}
