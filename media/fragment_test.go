package media

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// packageSample returns the init segment followed by one fragment per
// frame. With keepDurations false the frames' durations are cleared, as
// for a live source, so the writer has to derive them.
func packageSample(t *testing.T, s testSample, keepDurations bool) ([]byte, [][]byte) {
	t.Helper()
	init, err := InitSegment(s.info)
	must(t, err)
	fw := NewFragmentWriter(s.info)
	var frags [][]byte
	for _, f := range s.frames {
		if !keepDurations {
			f.Duration = 0
		}
		b, err := fw.Fragment(f)
		must(t, err)
		frags = append(frags, b)
	}
	return init, frags
}

type probePacket struct {
	PTS   *int64 `json:"pts"`
	DTS   *int64 `json:"dts"`
	Flags string `json:"flags"`
}

// TestFragmentsDecodeWithFFprobe concatenates the init segment and the
// fragments, as a subscriber would, and checks that ffprobe reads every
// frame with the source's DTS, PTS (B-frame offsets) and key flags and
// that ffmpeg decodes all of them without error.
func TestFragmentsDecodeWithFFprobe(t *testing.T) {
	ffprobe := needFFprobe(t)
	ffmpeg, _ := exec.LookPath("ffmpeg")
	dir := t.TempDir()
	for _, tc := range initTests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel() // ffprobe/ffmpeg start-up dominates
			s := loadSample(t, tc.file)
			init, frags := packageSample(t, s, false)
			path := filepath.Join(dir, tc.file+".cmaf.mp4")
			must(t, os.WriteFile(path, append(init, bytes.Join(frags, nil)...), 0o644))

			out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "0", "-show_entries",
				"packet=pts,dts,flags", "-of", "json", path).Output()
			if err != nil {
				t.Fatalf("ffprobe: %v", err)
			}
			var res struct{ Packets []probePacket }
			must(t, json.Unmarshal(out, &res))
			if len(res.Packets) != len(s.frames) {
				t.Fatalf("ffprobe read %d packets, want %d", len(res.Packets), len(s.frames))
			}
			sawCTO := false
			for i, p := range res.Packets {
				f := s.frames[i]
				wantKey := f.Keyframe || s.info.Codec.Kind() == Audio
				if p.DTS == nil || p.PTS == nil || *p.DTS != f.DTS || *p.PTS != f.DTS+f.CTO ||
					(len(p.Flags) > 0 && p.Flags[0] == 'K') != wantKey {
					t.Fatalf("packet %d: ffprobe pts %v dts %v flags %s; want pts %d dts %d key %v",
						i, deref(p.PTS), deref(p.DTS), p.Flags, f.DTS+f.CTO, f.DTS, wantKey)
				}
				sawCTO = sawCTO || f.CTO != 0
			}
			if (tc.file == "h264_high.mp4" || tc.file == "hevc_main.mp4") && !sawCTO {
				t.Errorf("sample has no B-frames: the test does not cover composition offsets")
			}
			if ffmpeg != "" {
				cmd := exec.Command(ffmpeg, "-v", "error", "-i", path, "-f", "null", "-")
				if msg, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(msg)) > 0 {
					t.Errorf("ffmpeg decode: %v: %s", err, msg)
				}
			}
		})
	}
}

// TestFragmentBoxes checks the moof of each fragment with mp4ff: one traf
// for track 1, tfdt = DTS, trun version 1 with one sample, derived
// durations, sync flags, signed composition offsets, and increasing
// sequence numbers.
func TestFragmentBoxes(t *testing.T) {
	info := TrackInfo{Name: "video", Codec: H264, Timescale: 90000, Framerate: 25}
	fw := NewFragmentWriter(info)
	frames := []Frame{
		{DTS: 0, CTO: 6000, Keyframe: true, Data: []byte{0, 0, 0, 1, 0x65}}, // no history: 1/25 s
		{DTS: 3000, CTO: -3000, Data: []byte{0, 0, 0, 1, 0x41}},             // previous DTS delta
		{DTS: 6000, CTO: 0, Duration: 1234, Data: []byte{0, 0, 0, 1, 0x41}}, // explicit duration
		{DTS: 6000 + 1<<33, Keyframe: true, Data: []byte{0, 0, 0, 1, 0x65}}, // 64-bit tfdt
	}
	// The jump is no frame interval: the previous duration is reused.
	wantDur := []uint32{3600, 3000, 1234, 1234}
	for i, f := range frames {
		data, err := fw.Fragment(f)
		must(t, err)
		file, err := mp4.DecodeFile(bytes.NewReader(data))
		must(t, err)
		if len(file.Segments) != 1 || len(file.Segments[0].Fragments) != 1 {
			t.Fatalf("frame %d: want one moof+mdat", i)
		}
		frag := file.Segments[0].Fragments[0]
		if n := frag.Moof.Mfhd.SequenceNumber; n != uint32(i+1) {
			t.Errorf("frame %d: sequence number %d", i, n)
		}
		traf := frag.Moof.Traf
		if len(frag.Moof.Trafs) != 1 || traf.Tfhd.TrackID != 1 || !traf.Tfhd.DefaultBaseIfMoof() {
			t.Errorf("frame %d: traf/tfhd wrong", i)
		}
		if traf.Tfdt.BaseMediaDecodeTime() != uint64(f.DTS) {
			t.Errorf("frame %d: tfdt %d, want %d", i, traf.Tfdt.BaseMediaDecodeTime(), f.DTS)
		}
		if traf.Trun.Version != 1 || traf.Trun.SampleCount() != 1 {
			t.Errorf("frame %d: trun version %d, %d samples", i, traf.Trun.Version, traf.Trun.SampleCount())
		}
		smp := traf.Trun.Samples[0]
		if smp.Dur != wantDur[i] || smp.CompositionTimeOffset != int32(f.CTO) || smp.Size != uint32(len(f.Data)) {
			t.Errorf("frame %d: sample %+v", i, smp)
		}
		if smp.IsSync() != f.Keyframe {
			t.Errorf("frame %d: sync %v, want %v (flags %#x)", i, smp.IsSync(), f.Keyframe, smp.Flags)
		}
		if !bytes.Equal(frag.Mdat.Data, f.Data) {
			t.Errorf("frame %d: mdat payload differs", i)
		}
	}
}

func TestFragmentAudioDefaultsAndErrors(t *testing.T) {
	tests := []struct {
		info TrackInfo
		want uint32
	}{
		{TrackInfo{Codec: AAC, Timescale: 48000, AACConfig: []byte{0x11, 0x90}}, 1024},
		{TrackInfo{Codec: AAC, Timescale: 1000, AACConfig: []byte{0x11, 0x90}}, 21},
		{TrackInfo{Codec: Opus, Timescale: 48000}, 960},
		{TrackInfo{Codec: MP3, Timescale: 44100, SampleRate: 44100}, 1152},
		{TrackInfo{Codec: MP3, Timescale: 22050, SampleRate: 22050}, 576},
		{TrackInfo{Codec: VP8, Timescale: 90000}, 3000},
	}
	for _, tc := range tests {
		fw := NewFragmentWriter(tc.info)
		data, err := fw.Fragment(Frame{DTS: 5, Data: []byte{1}})
		must(t, err)
		file, err := mp4.DecodeFile(bytes.NewReader(data))
		must(t, err)
		smp := file.Segments[0].Fragments[0].Moof.Traf.Trun.Samples[0]
		if smp.Dur != tc.want {
			t.Errorf("%s@%d: default duration %d, want %d", tc.info.Codec, tc.info.Timescale, smp.Dur, tc.want)
		}
		if tc.info.Codec.Kind() == Audio && !smp.IsSync() {
			t.Errorf("%s: audio sample not sync", tc.info.Codec)
		}
	}
	fw := NewFragmentWriter(TrackInfo{Codec: AAC, Timescale: 48000})
	for _, f := range []Frame{{DTS: -1, Data: []byte{1}}, {DTS: 0}, {DTS: 0, CTO: 1 << 40, Data: []byte{1}}} {
		if _, err := fw.Fragment(f); err == nil {
			t.Errorf("Fragment(%+v) succeeded, want an error", f)
		}
	}
	if _, err := NewFragmentWriter(TrackInfo{Codec: AAC}).Fragment(Frame{Data: []byte{1}}); err == nil {
		t.Error("timescale 0 accepted")
	}
}

func deref(p *int64) any {
	if p == nil {
		return "none"
	}
	return *p
}
