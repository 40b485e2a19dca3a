package hls

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"github.com/moqgate/moqgate/media"
)

// errUnsupported marks a track HLS (or gohlslib) cannot carry; the track is
// left out of the muxer, the rest of the broadcast goes on.
var errUnsupported = errors.New("hls: codec not supported")

// H.265 NAL unit types that carry parameter sets or start a random access
// point (ITU-T H.265 table 7-1).
const (
	h265VPS = 32
	h265SPS = 33
	h265PPS = 34
)

// sample is one access unit ready for gohlslib: timestamps already on the
// output timeline, in the track's clock.
type sample struct {
	pts      int64 // presentation time in clock units
	ntp      time.Time
	keyframe bool
	data     []byte // as stored in MP4 (AVCC, low-overhead OBUs, raw frame)
}

// codecAdapter turns MP4 samples of one codec into the access units one of
// gohlslib's Muxer.Write* methods takes.
type codecAdapter struct {
	codec media.Codec
	info  media.TrackInfo
	clock int // the clock rate gohlslib requires for the codec
	// frameSamples is the fixed duration of an audio access unit in clock
	// units (AAC 1024 or 960); 0 when it varies (Opus: read from the packet)
	// or for video.
	frameSamples int64
	// paramSets are prepended to key frames that lack them: gohlslib derives
	// H.264/H.265 DTS from the in-band SPS, and CMAF keeps parameter sets in
	// the init segment only.
	paramSets [][]byte
	// av1SeqHdr is the sequence header OBU (AV1): gohlslib detects random
	// access by its presence in a temporal unit.
	av1SeqHdr []byte
}

// newCodecAdapter maps a track of the catalog to a gohlslib track, or
// returns errUnsupported (wrapped) for a codec HLS cannot carry.
func newCodecAdapter(info media.TrackInfo) (*gohlslib.Track, *codecAdapter, error) {
	a := &codecAdapter{codec: info.Codec, info: info}
	var c codecs.Codec
	switch info.Codec {
	case media.H264:
		if len(info.SPS) == 0 || len(info.PPS) == 0 {
			return nil, nil, errors.New("hls: H.264 track without SPS/PPS in its init segment")
		}
		c = &codecs.H264{SPS: info.SPS[0], PPS: info.PPS[0]}
		a.clock = 90000
		a.paramSets = append(append([][]byte{}, info.SPS...), info.PPS...)
	case media.H265:
		if len(info.VPS) == 0 || len(info.SPS) == 0 || len(info.PPS) == 0 {
			return nil, nil, errors.New("hls: H.265 track without VPS/SPS/PPS in its init segment")
		}
		c = &codecs.H265{VPS: info.VPS[0], SPS: info.SPS[0], PPS: info.PPS[0]}
		a.clock = 90000
		a.paramSets = append(append(append([][]byte{}, info.VPS...), info.SPS...), info.PPS...)
	case media.AV1:
		var obus av1.Bitstream
		if err := obus.Unmarshal(info.AV1SequenceHeader); err != nil {
			return nil, nil, fmt.Errorf("hls: AV1 configuration OBUs: %w", err)
		}
		for _, o := range obus {
			var h av1.OBUHeader
			if h.Unmarshal(o) == nil && h.Type == av1.OBUTypeSequenceHeader {
				a.av1SeqHdr = o
			}
		}
		if a.av1SeqHdr == nil {
			return nil, nil, errors.New("hls: AV1 track without a sequence header")
		}
		c = &codecs.AV1{SequenceHeader: a.av1SeqHdr}
		a.clock = 90000
	case media.VP9:
		depth := info.VP9BitDepth
		if depth == 0 {
			depth = 8
		}
		// gohlslib refines these from the first key frame's header.
		c = &codecs.VP9{Width: info.Width, Height: info.Height, Profile: uint8(info.VP9Profile),
			BitDepth: uint8(depth), ChromaSubsampling: uint8(info.VP9Chroma)}
		a.clock = 90000
	case media.AAC:
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(info.AACConfig); err != nil {
			return nil, nil, fmt.Errorf("hls: AAC AudioSpecificConfig: %w", err)
		}
		if asc.SampleRate <= 0 {
			return nil, nil, errors.New("hls: AAC without a sample rate")
		}
		c = &codecs.MPEG4Audio{Config: asc}
		a.clock = asc.SampleRate
		a.frameSamples = mpeg4audio.SamplesPerAccessUnit
		if asc.FrameLengthFlag {
			a.frameSamples = 960
		}
	case media.Opus:
		ch := info.Channels
		if ch <= 0 {
			ch = 2
		}
		c = &codecs.Opus{ChannelCount: ch}
		a.clock = 48000
	default:
		// VP8, MP3: no fMP4 HLS carriage in gohlslib (nor in most players).
		return nil, nil, fmt.Errorf("%w: %s", errUnsupported, info.Codec)
	}
	return &gohlslib.Track{Codec: c, ClockRate: a.clock}, a, nil
}

// isVideo reports whether the adapter's track is video.
func (a *codecAdapter) isVideo() bool { return a.codec.Kind() == media.Video }

// duration returns the audio frame duration in clock units of data, or 0
// when unknown (video).
func (a *codecAdapter) duration(data []byte) int64 {
	switch a.codec {
	case media.AAC:
		return a.frameSamples
	case media.Opus:
		return opus.PacketDuration2(data)
	}
	return 0
}

// write hands one sample to m.
func (a *codecAdapter) write(m *gohlslib.Muxer, t *gohlslib.Track, s sample) error {
	switch a.codec {
	case media.H264, media.H265:
		var au h264.AVCC
		if err := au.Unmarshal(s.data); err != nil {
			return fmt.Errorf("hls: %s sample: %w", a.codec, err)
		}
		if s.keyframe && !a.hasParamSets(au) {
			au = append(append(make(h264.AVCC, 0, len(a.paramSets)+len(au)), a.paramSets...), au...)
		}
		if a.codec == media.H264 {
			return m.WriteH264(t, s.ntp, s.pts, au)
		}
		return m.WriteH265(t, s.ntp, s.pts, au)
	case media.AV1:
		var tu av1.Bitstream
		if err := tu.Unmarshal(s.data); err != nil {
			return fmt.Errorf("hls: AV1 sample: %w", err)
		}
		if s.keyframe && !hasAV1SeqHdr(tu) {
			tu = append(av1.Bitstream{a.av1SeqHdr}, tu...)
		}
		return m.WriteAV1(t, s.ntp, s.pts, tu)
	case media.VP9:
		return m.WriteVP9(t, s.ntp, s.pts, s.data)
	case media.AAC:
		return m.WriteMPEG4Audio(t, s.ntp, s.pts, [][]byte{s.data})
	case media.Opus:
		return m.WriteOpus(t, s.ntp, s.pts, [][]byte{s.data})
	}
	return fmt.Errorf("%w: %s", errUnsupported, a.codec)
}

// hasParamSets reports whether an access unit carries an SPS in band.
func (a *codecAdapter) hasParamSets(au [][]byte) bool {
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if a.codec == media.H264 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			return true
		}
		if a.codec == media.H265 && (n[0]>>1)&0x3f == h265SPS {
			return true
		}
	}
	return false
}

func hasAV1SeqHdr(tu av1.Bitstream) bool {
	for _, o := range tu {
		var h av1.OBUHeader
		if h.Unmarshal(o) == nil && h.Type == av1.OBUTypeSequenceHeader {
			return true
		}
	}
	return false
}

// codecKey identifies the decoder configuration of a track: two inits with
// the same key can share one muxer (one HLS init segment), a different key
// needs a new one.
func codecKey(t media.TrackInfo) string {
	return fmt.Sprintf("%s|%d|%d|%x|%x|%x|%x|%d.%d.%d|%x|%d|%d",
		t.Codec, t.Width, t.Height, t.VPS, t.SPS, t.PPS, t.AV1SequenceHeader,
		t.VP9Profile, t.VP9BitDepth, t.VP9Chroma, t.AACConfig, t.SampleRate, t.Channels)
}
