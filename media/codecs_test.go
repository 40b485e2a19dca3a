package media

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// The expected codec strings were checked against tools that derive them
// independently from the same files: ffmpeg 5.1's DASH muxer (avc1, av01,
// vp09, mp4a; `ffmpeg -i F -c copy -f dash x.mpd`, the AV1 IVFs remuxed to
// MP4 first) and mp4box.js 0.5.4's getInfo() (hvc1, which ffmpeg's DASH
// muxer does not spell out).
var codecStringTests = []struct {
	file   string
	codec  string
	width  int
	height int
}{
	{"h264_high.mp4", "avc1.64000d", 320, 180},
	{"h264_baseline.mp4", "avc1.42c01e", 176, 144},
	{"h264_high422_10.mp4", "avc1.7a000b", 176, 144},
	{"hevc_main.mp4", "hvc1.1.6.L60.90", 320, 180},
	{"hevc_main10.mp4", "hvc1.2.4.L60.90", 256, 144},
	{"av1.ivf", "av01.0.00M.08", 320, 180},
	{"av1_hdr.ivf", "av01.0.00M.10.0.110.09.16.09.1", 160, 90},
	{"vp9.mp4", "vp09.00.11.08", 320, 180},
	{"vp8.ivf", "vp8", 320, 180},
	{"aac_lc_48k_stereo.mp4", "mp4a.40.2", 0, 0},
	{"aac_lc_44k_mono.mp4", "mp4a.40.2", 0, 0},
	{"opus.mp4", "opus", 0, 0},
	{"mp3.mp4", "mp3", 0, 0},
}

func TestCodecStringFromRealStreams(t *testing.T) {
	for _, tc := range codecStringTests {
		t.Run(tc.file, func(t *testing.T) {
			s := loadSample(t, tc.file)
			got, err := CodecString(s.info)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.codec {
				t.Errorf("CodecString = %q, want %q", got, tc.codec)
			}
			if tc.width == 0 {
				return
			}
			// The size must come from the parameter sets, not TrackInfo.
			info := s.info
			if info.Codec != VP8 && info.Codec != VP9 {
				info.Width, info.Height = 0, 0
			}
			w, h, err := VideoSize(info)
			if err != nil {
				t.Fatal(err)
			}
			if w != tc.width || h != tc.height {
				t.Errorf("VideoSize = %dx%d, want %dx%d", w, h, tc.width, tc.height)
			}
		})
	}
}

// The description is the configuration record ffmpeg wrote into the file
// (H.264/H.265/AV1) or the AudioSpecificConfig; nothing for the others.
func TestDescriptionMatchesMuxer(t *testing.T) {
	for _, tc := range codecStringTests {
		t.Run(tc.file, func(t *testing.T) {
			s := loadSample(t, tc.file)
			got := Description(s.info)
			switch s.info.Codec {
			case AV1:
				// av1C ffmpeg 5.1 writes when remuxing the IVF to MP4.
				want := map[string]string{"av1.ivf": "81000c000a0b000000043cfeccdaf90040",
					"av1_hdr.ivf": "81004c000a0d00000003b4fd936be542440261"}[tc.file]
				if hex.EncodeToString(got) != want {
					t.Errorf("Description = %x, ffmpeg wrote %s", got, want)
				}
			case H264, AAC:
				if !bytes.Equal(got, s.configBox) {
					t.Errorf("Description = %s\nffmpeg wrote  %s", hex.EncodeToString(got), hex.EncodeToString(s.configBox))
				}
			case H265:
				// ffmpeg fills fields mp4ff leaves at defaults (frame rate,
				// parallelism); the header up to the level and the NAL
				// arrays must agree.
				if len(got) < 23 || !bytes.Equal(got[:13], s.configBox[:13]) {
					t.Errorf("hvcC header = %x, ffmpeg %x", got[:min(13, len(got))], s.configBox[:13])
				}
				// ffmpeg adds x265's SEI as a fourth array; ours has the
				// VPS, SPS and PPS arrays, which must match byte for byte.
				if len(got) > len(s.configBox) || !bytes.Equal(got[23:], s.configBox[23:len(got)]) {
					t.Errorf("hvcC NAL arrays differ:\n%x\n%x", got[23:], s.configBox[23:])
				}
			default:
				if got != nil {
					t.Errorf("Description = %x, want nil", got)
				}
			}
		})
	}
}

func TestCodecStringErrors(t *testing.T) {
	tests := []struct {
		name string
		info TrackInfo
	}{
		{"h264 no sps", TrackInfo{Codec: H264}},
		{"h264 garbage sps", TrackInfo{Codec: H264, SPS: [][]byte{{0x67}}}},
		{"h265 garbage sps", TrackInfo{Codec: H265, SPS: [][]byte{{0x42, 0x01, 0xff}}}},
		{"av1 no header", TrackInfo{Codec: AV1}},
		{"av1 no sequence header obu", TrackInfo{Codec: AV1, AV1SequenceHeader: []byte{0x12, 0x00}}},
		{"aac no config", TrackInfo{Codec: AAC}},
		{"aac short config", TrackInfo{Codec: AAC, AACConfig: []byte{0x12}}},
		{"unknown codec", TrackInfo{Codec: "theora"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := CodecString(tc.info); err == nil {
				t.Fatalf("CodecString = %q, want an error", s)
			}
			if d := Description(tc.info); d != nil {
				t.Fatalf("Description = %x, want nil", d)
			}
		})
	}
	if _, err := CodecString(TrackInfo{Codec: "theora"}); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("unknown codec error = %v, want ErrUnsupportedCodec", err)
	}
}

func TestAACObjectTypes(t *testing.T) {
	tests := []struct {
		asc  []byte
		want string
	}{
		{[]byte{0x11, 0x90}, "mp4a.40.2"},             // AAC-LC 48 kHz stereo
		{[]byte{0x2b, 0x92, 0x08, 0x00}, "mp4a.40.5"}, // HE-AAC (SBR) 24/48 kHz
		{[]byte{0xeb, 0x09, 0x88, 0x00}, "mp4a.40.29"},
		{[]byte{0xf8, 0x46, 0x20}, "mp4a.40.34"}, // escape: AOT 31+1+... = 34 (MPEG-1 layer 3)
	}
	for _, tc := range tests {
		got, err := CodecString(TrackInfo{Codec: AAC, AACConfig: tc.asc})
		if err != nil {
			t.Errorf("%x: %v", tc.asc, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%x: %q, want %q", tc.asc, got, tc.want)
		}
	}
}

// A publisher controls the parameter sets: hostile bytes must give errors,
// never panics.
func TestCodecParsersSurviveGarbage(t *testing.T) {
	seeds := [][]byte{{}, {0}, {0xff, 0xff, 0xff}, bytes.Repeat([]byte{0xaa}, 40), {0x0a, 0x0b, 0, 0, 0, 0x42, 0xab}}
	for _, codec := range []Codec{H264, H265, AV1, AAC} {
		for _, b := range seeds {
			info := TrackInfo{Codec: codec, Timescale: 90000, SPS: [][]byte{b}, PPS: [][]byte{b}, VPS: [][]byte{b},
				AV1SequenceHeader: b, AACConfig: b}
			_, _ = CodecString(info)
			_ = Description(info)
			_, _, _ = VideoSize(info)
			_, _ = InitSegment(info)
		}
	}
}
