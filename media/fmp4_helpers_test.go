package media

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/av1"
	"github.com/Eyevinn/mp4ff/mp4"
)

// fmp4NeedTool skips the test when an external tool is missing, except in CI
// (CI=true) where the tool is part of the contract and its absence fails.
func fmp4NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (CI=true requires it; apt-get install ffmpeg): %v", name, err)
		}
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

// fmp4Demuxed is everything a demuxer produced.
type fmp4Demuxed struct {
	tracks []TrackInfo
	frames map[string][]Frame
	order  []string // track of each frame, in Next order
}

func fmp4DemuxAll(t testing.TB, r io.Reader) fmp4Demuxed {
	t.Helper()
	d := NewFMP4Demuxer(r, 0)
	tracks, err := d.Tracks()
	if err != nil {
		t.Fatalf("Tracks: %v", err)
	}
	out := fmp4Demuxed{tracks: tracks, frames: map[string][]Frame{}}
	for {
		name, f, err := d.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next after %d frames: %v", len(out.order), err)
		}
		out.frames[name] = append(out.frames[name], f)
		out.order = append(out.order, name)
	}
}

func fmp4DemuxFile(t testing.TB, path string) fmp4Demuxed {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmp4DemuxAll(t, bytes.NewReader(b))
}

func (d fmp4Demuxed) track(name string) TrackInfo {
	for _, ti := range d.tracks {
		if ti.Name == name {
			return ti
		}
	}
	return TrackInfo{}
}

// fmp4TestInit builds a one-track CMAF init segment from a TrackInfo with
// mp4ff, with the given track ID. Test-local on purpose: it exercises what
// the demuxer extracted (wrong parameter sets would not decode) and does not
// depend on the package's own InitSegment.
func fmp4TestInit(t testing.TB, ti TrackInfo, trackID uint32) []byte {
	t.Helper()
	init := mp4.CreateEmptyInit()
	kind := "video"
	if ti.Codec.Kind() == Audio {
		kind = "audio"
	}
	trak := init.AddEmptyTrack(ti.Timescale, kind, "und")
	trak.Tkhd.TrackID = trackID
	init.Moov.Mvex.Trex.TrackID = trackID
	init.Moov.Mvhd.NextTrackID = trackID + 1
	stsd := trak.Mdia.Minf.Stbl.Stsd
	var err error
	switch ti.Codec {
	case H264:
		err = trak.SetAVCDescriptor("avc1", ti.SPS, ti.PPS, true)
	case H265:
		err = trak.SetHEVCDescriptor("hvc1", ti.VPS, ti.SPS, ti.PPS, nil, true)
	case AV1:
		rec := av1.CodecConfRec{ConfigOBUs: ti.AV1SequenceHeader}
		sh, serr := rec.SequenceHeader()
		if serr != nil {
			t.Fatalf("av1 sequence header: %v", serr)
		}
		full := av1.CodecConfRecFromSequenceHeader(sh, ti.AV1SequenceHeader)
		err = trak.SetAV1Descriptor("av01", &mp4.Av1CBox{CodecConfRec: full}, uint16(ti.Width), uint16(ti.Height))
	case VP9:
		vpcc := &mp4.VppCBox{Version: 1, Profile: byte(ti.VP9Profile), Level: 10, BitDepth: byte(ti.VP9BitDepth),
			ChromaSubsampling: byte(ti.VP9Chroma), ColourPrimaries: 2, TransferCharacteristics: 2, MatrixCoefficients: 2}
		err = trak.SetVPxDescriptor("vp09", vpcc, uint16(ti.Width), uint16(ti.Height))
	case AAC:
		stsd.AddChild(mp4.CreateAudioSampleEntryBox("mp4a", uint16(ti.Channels), 16, uint16(ti.SampleRate), mp4.CreateEsdsBox(ti.AACConfig)))
	case MP3:
		esds := mp4.CreateEsdsBox(nil)
		esds.DecConfigDescriptor.ObjectType = mp4.ObjectTypeMP3
		esds.DecConfigDescriptor.DecSpecificInfo = nil
		stsd.AddChild(mp4.CreateAudioSampleEntryBox("mp4a", uint16(ti.Channels), 16, uint16(ti.SampleRate), esds))
	case Opus:
		dops := &mp4.DopsBox{OutputChannelCount: byte(ti.Channels), PreSkip: uint16(ti.OpusPreSkip), InputSampleRate: 48000}
		stsd.AddChild(mp4.CreateAudioSampleEntryBox("Opus", uint16(ti.Channels), 16, 48000, dops))
	default:
		t.Fatalf("fmp4TestInit: codec %s not handled", ti.Codec)
	}
	if err != nil {
		t.Fatalf("init for %s: %v", ti.Codec, err)
	}
	var buf bytes.Buffer
	if err := init.Encode(&buf); err != nil {
		t.Fatalf("encode init: %v", err)
	}
	return buf.Bytes()
}

// fmp4TestFragment writes f as one single-sample moof+mdat. With absBase
// != 0 the tfhd carries an explicit base_data_offset instead of
// default-base-is-moof, as if the moof sat at absBase in some file.
func fmp4TestFragment(t testing.TB, trackID, seq uint32, f Frame, absBase uint64) []byte {
	t.Helper()
	frag, err := mp4.CreateFragment(seq, trackID)
	if err != nil {
		t.Fatal(err)
	}
	flags := mp4.NonSyncSampleFlags
	if f.Keyframe {
		flags = mp4.SyncSampleFlags
	}
	frag.AddFullSample(mp4.FullSample{
		Sample: mp4.Sample{Flags: flags, Dur: uint32(f.Duration), Size: uint32(len(f.Data)),
			CompositionTimeOffset: int32(f.CTO)},
		DecodeTime: uint64(f.DTS),
		Data:       f.Data,
	})
	if absBase != 0 {
		tfhd := frag.Moof.Traf.Tfhd
		tfhd.Flags = mp4.TfhdBaseDataOffsetPresentFlag
		tfhd.BaseDataOffset = absBase
	}
	var buf bytes.Buffer
	if err := frag.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ffprobeStream is the subset of `ffprobe -show_streams` we check.
type ffprobeStream struct {
	Index         int    `json:"index"`
	CodecName     string `json:"codec_name"`
	CodecType     string `json:"codec_type"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
	SampleRate    string `json:"sample_rate"`
	Channels      int    `json:"channels"`
	NbReadFrames  string `json:"nb_read_frames"`
	NbReadPackets string `json:"nb_read_packets"`
}

// ffprobeStreams runs ffprobe -show_streams -count_frames -count_packets.
func ffprobeStreams(t testing.TB, path string) []ffprobeStream {
	t.Helper()
	fmp4NeedTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-count_packets",
		"-show_streams", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v (%s)", path, err, fmp4Stderr(err))
	}
	var res struct {
		Streams []ffprobeStream `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe json: %v", err)
	}
	return res.Streams
}

// ffprobePacket is one packet of `ffprobe -show_packets`.
type ffprobePacket struct {
	stream int
	pts    int64
	dts    int64
	key    bool
}

func ffprobePackets(t testing.TB, path string) []ffprobePacket {
	t.Helper()
	fmp4NeedTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts,dts,flags",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets %s: %v (%s)", path, err, fmp4Stderr(err))
	}
	var pkts []ffprobePacket
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 4 {
			t.Fatalf("ffprobe packet line %q", line)
		}
		var p ffprobePacket
		p.stream, _ = strconv.Atoi(f[0])
		p.pts, _ = strconv.ParseInt(f[1], 10, 64)
		p.dts, _ = strconv.ParseInt(f[2], 10, 64)
		p.key = strings.Contains(f[3], "K")
		pkts = append(pkts, p)
	}
	return pkts
}

func fmp4Stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// ffmpegDecodeErrors fully decodes path and returns what ffmpeg complained about.
func ffmpegDecodeErrors(t testing.TB, path string) string {
	t.Helper()
	fmp4NeedTool(t, "ffmpeg")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("ffmpeg: %v: %s", err, stderr.String())
	}
	return stderr.String()
}

// fmp4IterBoxes calls fn for every top-level box of b.
func fmp4IterBoxes(t testing.TB, b []byte, fn func(typ string, box []byte)) {
	t.Helper()
	for pos := 0; pos < len(b); {
		h, size, err := fmp4SliceBox(b, pos)
		if err != nil {
			t.Fatalf("box walk: %v", err)
		}
		fn(h.typ, b[pos:pos+size])
		pos += size
	}
}

// ffmpegPipeFrameCounts decodes data from ffmpeg's stdin, as `| ffplay -`
// reads it (non-seekable), and returns the decoded frames per media type
// ("video", "audio"; one stream of each) and anything ffmpeg complained about.
func ffmpegPipeFrameCounts(t testing.TB, data []byte) (map[string]int, string) {
	t.Helper()
	fmp4NeedTool(t, "ffmpeg")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-v", "error", "-f", "mp4", "-i", "pipe:0", "-f", "framecrc", "-")
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Sprintf("ffmpeg: %v: %s", err, stderr.String())
	}
	kinds := map[string]string{} // output stream index -> media type
	counts := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "#media_type "); ok {
			if idx, kind, ok := strings.Cut(rest, ": "); ok {
				kinds[idx] = kind
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexByte(line, ','); i > 0 {
			counts[kinds[strings.TrimSpace(line[:i])]]++
		}
	}
	return counts, stderr.String()
}
