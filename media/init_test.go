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

var initTests = []struct {
	file  string
	entry string // sample entry box type
	// ffprobe's view of the init segment alone.
	codecName string
}{
	{"h264_high.mp4", "avc1", "h264"},
	{"h264_baseline.mp4", "avc1", "h264"},
	{"h264_high422_10.mp4", "avc1", "h264"},
	{"hevc_main.mp4", "hvc1", "hevc"},
	{"hevc_main10.mp4", "hvc1", "hevc"},
	{"av1.ivf", "av01", "av1"},
	{"av1_hdr.ivf", "av01", "av1"},
	{"vp9.mp4", "vp09", "vp9"},
	{"vp8.ivf", "vp08", "vp8"},
	{"aac_lc_48k_stereo.mp4", "mp4a", "aac"},
	{"aac_lc_44k_mono.mp4", "mp4a", "aac"},
	{"opus.mp4", "Opus", "opus"},
	{"mp3.mp4", "mp4a", "mp3"},
}

// decodeInit parses an init segment with mp4ff and checks the CMAF
// structure every player relies on.
func decodeInit(t *testing.T, data []byte, want TrackInfo) *mp4.TrakBox {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("mp4ff cannot parse the init segment: %v", err)
	}
	if f.Init == nil || f.Ftyp == nil || f.Moov == nil || len(f.Segments) != 0 {
		t.Fatalf("want exactly ftyp+moov")
	}
	if f.Ftyp.MajorBrand() != "iso6" || !bytes.Contains(data[:32], []byte("cmfc")) {
		t.Errorf("ftyp brands: %s %v", f.Ftyp.MajorBrand(), f.Ftyp.CompatibleBrands())
	}
	if n := len(f.Moov.Traks); n != 1 {
		t.Fatalf("%d tracks, want 1", n)
	}
	trak := f.Moov.Trak
	if id := trak.Tkhd.TrackID; id != 1 {
		t.Errorf("track ID %d, want 1", id)
	}
	if ts := trak.Mdia.Mdhd.Timescale; ts != want.Timescale {
		t.Errorf("mdhd timescale %d, want %d", ts, want.Timescale)
	}
	if f.Moov.Mvex == nil || f.Moov.Mvex.Trex == nil || f.Moov.Mvex.Trex.TrackID != 1 {
		t.Errorf("missing mvex/trex for track 1")
	}
	wantHdlr := map[Kind]string{Video: "vide", Audio: "soun"}[want.Codec.Kind()]
	if h := trak.Mdia.Hdlr.HandlerType; h != wantHdlr {
		t.Errorf("handler %q, want %q", h, wantHdlr)
	}
	return trak
}

func TestInitSegmentParsesBack(t *testing.T) {
	for _, tc := range initTests {
		t.Run(tc.file, func(t *testing.T) {
			s := loadSample(t, tc.file)
			data, err := InitSegment(s.info)
			if err != nil {
				t.Fatal(err)
			}
			trak := decodeInit(t, data, s.info)
			stsd := trak.Mdia.Minf.Stbl.Stsd
			if len(stsd.Children) != 1 || stsd.Children[0].Type() != tc.entry {
				t.Fatalf("sample entry %v, want one %s", stsd.Children, tc.entry)
			}
			desc := Description(s.info)
			var cfg bytes.Buffer
			switch tc.entry {
			case "avc1":
				must(t, stsd.AvcX.AvcC.DecConfRec.Encode(&cfg))
			case "hvc1":
				must(t, stsd.HvcX.HvcC.DecConfRec.Encode(&cfg))
			case "av01":
				must(t, stsd.Av01.Av1C.CodecConfRec.Encode(&cfg))
			case "vp09", "vp08":
				c := stsd.VpXX.VppC
				if tc.entry == "vp09" && (int(c.Profile) != s.info.VP9Profile || c.Level != 11 || c.BitDepth != 8) {
					t.Errorf("vpcC profile %d level %d depth %d", c.Profile, c.Level, c.BitDepth)
				}
				if w := stsd.VpXX.Width; int(w) != s.info.Width {
					t.Errorf("width %d, want %d", w, s.info.Width)
				}
			case "mp4a":
				dcd := stsd.Mp4a.Esds.DecConfigDescriptor
				if s.info.Codec == AAC {
					cfg.Write(dcd.DecSpecificInfo.DecConfig)
					if dcd.ObjectType != mp4.ObjectTypeAAC || !bytes.Equal(dcd.DecSpecificInfo.DecConfig, s.info.AACConfig) {
						t.Errorf("esds object type %#x config %x", dcd.ObjectType, dcd.DecSpecificInfo.DecConfig)
					}
				} else if dcd.ObjectType != mp4.ObjectTypeMP3 || dcd.DecSpecificInfo != nil {
					t.Errorf("mp3 esds object type %#x", dcd.ObjectType)
				}
			case "Opus":
				d := stsd.Opus.Dops
				if int(d.OutputChannelCount) != s.info.Channels || int(d.PreSkip) != s.info.OpusPreSkip || stsd.Opus.SampleRate != 48000 {
					t.Errorf("dOps %+v, sample rate %d", d, stsd.Opus.SampleRate)
				}
			}
			if desc != nil && !bytes.Equal(cfg.Bytes(), desc) {
				t.Errorf("config box in init %x != Description %x", cfg.Bytes(), desc)
			}
		})
	}
}

// ffprobe must recognise the codec, size and rate from the init segment
// alone.
func TestInitSegmentFFprobe(t *testing.T) {
	ffprobe := needFFprobe(t)
	dir := t.TempDir()
	for _, tc := range initTests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel() // ffprobe/ffmpeg start-up dominates
			s := loadSample(t, tc.file)
			data, err := InitSegment(s.info)
			must(t, err)
			path := filepath.Join(dir, tc.file+".init.mp4")
			must(t, os.WriteFile(path, data, 0o644))
			out, err := exec.Command(ffprobe, "-v", "error", "-show_streams", "-of", "json", path).Output()
			if err != nil {
				t.Fatalf("ffprobe: %v", err)
			}
			var res struct {
				Streams []struct {
					CodecName  string `json:"codec_name"`
					Width      int    `json:"width"`
					Height     int    `json:"height"`
					SampleRate string `json:"sample_rate"`
					Channels   int    `json:"channels"`
					TimeBase   string `json:"time_base"`
				} `json:"streams"`
			}
			must(t, json.Unmarshal(out, &res))
			if len(res.Streams) != 1 {
				t.Fatalf("ffprobe found %d streams", len(res.Streams))
			}
			st := res.Streams[0]
			if st.CodecName != tc.codecName {
				t.Errorf("ffprobe codec %q, want %q", st.CodecName, tc.codecName)
			}
			if s.info.Codec.Kind() == Video && tc.entry != "vp08" && tc.entry != "vp09" {
				w, h, _ := VideoSize(s.info)
				if st.Width != w || st.Height != h {
					t.Errorf("ffprobe size %dx%d, want %dx%d", st.Width, st.Height, w, h)
				}
			}
			if want := "1/" + itoa(int(s.info.Timescale)); st.TimeBase != want {
				t.Errorf("ffprobe time base %s, want %s", st.TimeBase, want)
			}
			if s.info.Codec.Kind() == Audio {
				rate, ch := audioRateChannels(s.info)
				if st.SampleRate != itoa(rate) || (st.Channels != ch && s.info.Codec != AAC) {
					t.Errorf("ffprobe %s Hz %d ch, want %d Hz %d ch", st.SampleRate, st.Channels, rate, ch)
				}
			}
		})
	}
}

func TestInitSegmentErrors(t *testing.T) {
	for _, info := range []TrackInfo{
		{Codec: H264, Timescale: 0},
		{Codec: H264, Timescale: 90000},
		{Codec: Opus, Timescale: 48000, Channels: 6},
		{Codec: "theora", Timescale: 90000},
	} {
		if _, err := InitSegment(info); err == nil {
			t.Errorf("InitSegment(%+v) succeeded, want an error", info)
		}
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
