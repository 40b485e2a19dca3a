package media

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/Eyevinn/mp4ff/av1"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/ivf"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/Eyevinn/mp4ff/vp8"
)

// testSample is one elementary stream read from media/testdata (made by
// testdata/gen.sh with ffmpeg): its TrackInfo as an ingest would fill it
// and its frames in decode order.
type testSample struct {
	file   string
	info   TrackInfo
	frames []Frame
	// configBox is the codec configuration record in the ffmpeg-written
	// file (avcC/hvcC/av1C payload or AudioSpecificConfig), for comparison.
	configBox []byte
}

// loadSample reads a one-track fragmented MP4 (or, for VP8, an IVF file).
func loadSample(t *testing.T, file string) testSample {
	t.Helper()
	path := filepath.Join("testdata", file)
	if filepath.Ext(file) == ".ivf" {
		return loadIVF(t, path)
	}
	f, err := mp4.ReadMP4File(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if f.Init == nil || len(f.Init.Moov.Traks) != 1 {
		t.Fatalf("%s: want a fragmented file with one track", file)
	}
	trak := f.Init.Moov.Trak
	s := testSample{file: file}
	s.info = TrackInfo{Name: "t", Timescale: trak.Mdia.Mdhd.Timescale}
	stsd := trak.Mdia.Minf.Stbl.Stsd
	var buf bytes.Buffer
	switch {
	case stsd.AvcX != nil:
		c := stsd.AvcX.AvcC
		s.info.Codec, s.info.SPS, s.info.PPS = H264, c.SPSnalus, c.PPSnalus
		s.info.Width, s.info.Height = int(stsd.AvcX.Width), int(stsd.AvcX.Height)
		must(t, c.DecConfRec.Encode(&buf))
	case stsd.HvcX != nil:
		c := stsd.HvcX.HvcC
		s.info.Codec = H265
		s.info.VPS = c.GetNalusForType(hevc.NALU_VPS)
		s.info.SPS = c.GetNalusForType(hevc.NALU_SPS)
		s.info.PPS = c.GetNalusForType(hevc.NALU_PPS)
		s.info.Width, s.info.Height = int(stsd.HvcX.Width), int(stsd.HvcX.Height)
		must(t, c.DecConfRec.Encode(&buf))
	case stsd.Av01 != nil:
		c := stsd.Av01.Av1C
		s.info.Codec, s.info.AV1SequenceHeader = AV1, c.ConfigOBUs
		s.info.Width, s.info.Height = int(stsd.Av01.Width), int(stsd.Av01.Height)
		must(t, c.CodecConfRec.Encode(&buf))
	case stsd.VpXX != nil:
		c := stsd.VpXX.VppC
		s.info.Codec = VP9
		s.info.VP9Profile, s.info.VP9BitDepth, s.info.VP9Chroma = int(c.Profile), int(c.BitDepth), int(c.ChromaSubsampling)
		s.info.Width, s.info.Height = int(stsd.VpXX.Width), int(stsd.VpXX.Height)
	case stsd.Mp4a != nil && stsd.Mp4a.Esds.DecConfigDescriptor.ObjectType == mp4.ObjectTypeAAC:
		s.info.Codec = AAC
		s.info.AACConfig = stsd.Mp4a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig
		s.info.SampleRate = int(stsd.Mp4a.SampleRate)
		buf.Write(s.info.AACConfig)
	case stsd.Mp4a != nil:
		s.info.Codec = MP3
		s.info.SampleRate, s.info.Channels = int(stsd.Mp4a.SampleRate), int(stsd.Mp4a.ChannelCount)
	case stsd.Opus != nil:
		s.info.Codec = Opus
		s.info.SampleRate, s.info.Channels = 48000, int(stsd.Opus.Dops.OutputChannelCount)
		s.info.OpusPreSkip = int(stsd.Opus.Dops.PreSkip)
	default:
		t.Fatalf("%s: unexpected sample entry", file)
	}
	s.configBox = buf.Bytes()
	if s.info.Codec.Kind() == Video {
		s.info.Framerate = 30
		s.info.Name = "video"
	} else {
		s.info.Name = "audio"
	}
	trex := f.Init.Moov.Mvex.Trex
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			fss, err := frag.GetFullSamples(trex)
			must(t, err)
			for _, fs := range fss {
				s.frames = append(s.frames, Frame{
					DTS:      int64(fs.DecodeTime),
					CTO:      int64(fs.CompositionTimeOffset),
					Duration: int64(fs.Dur),
					Keyframe: fs.Flags&mp4.NonSyncSampleFlags == 0,
					Data:     fs.Data,
				})
			}
		}
	}
	if len(s.frames) == 0 {
		t.Fatalf("%s: no samples", file)
	}
	return s
}

func loadIVF(t *testing.T, path string) testSample {
	t.Helper()
	fh, err := os.Open(path)
	must(t, err)
	defer fh.Close()
	rd, err := ivf.NewReader(fh)
	must(t, err)
	s := testSample{file: filepath.Base(path)}
	s.info = TrackInfo{Name: "video", Codec: VP8, Timescale: rd.Header.Rate,
		Width: int(rd.Header.Width), Height: int(rd.Header.Height), Framerate: 30}
	var seqHdr *av1.SequenceHeader
	if rd.Header.FourCC == "AV01" {
		s.info.Codec = AV1
	}
	for {
		fr, err := rd.ReadFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		frame := Frame{DTS: int64(fr.Timestamp * uint64(rd.Header.Scale)), Data: fr.Data}
		if s.info.Codec == VP8 {
			frame.Keyframe, err = vp8.IsKeyFrame(fr.Data)
			must(t, err)
		} else {
			// IVF holds temporal units: drop the temporal delimiters (the
			// MP4 sample format has none) and take the sequence header.
			obus, err := av1.SplitOBUs(fr.Data)
			must(t, err)
			frame.Data = nil
			for _, o := range obus {
				if o.Header.Type == av1.OBUTemporalDelimiter {
					continue
				}
				if o.Header.Type == av1.OBUSequenceHeader && seqHdr == nil {
					s.info.AV1SequenceHeader = o.Encode()
					seqHdr, err = av1.ParseSequenceHeader(o.Payload)
					must(t, err)
				}
				frame.Data = append(frame.Data, o.Encode()...)
			}
			frame.Keyframe, err = av1.IsRAPSample(frame.Data, seqHdr)
			must(t, err)
		}
		s.frames = append(s.frames, frame)
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// needFFprobe returns the ffprobe path, skipping the test when it is
// missing, unless CI=true, where a missing ffprobe fails the test.
func needFFprobe(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ffprobe")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ffprobe is required when CI=true: %v", err)
		}
		t.Skip("ffprobe not installed")
	}
	return p
}
