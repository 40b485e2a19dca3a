package srt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	mcodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/moqgate/moqgate/media"
)

// tsTrack is the state of one elementary stream of the MPEG-TS input.
type tsTrack struct {
	pid       uint16
	info      media.TrackInfo
	ready     bool // info is complete (video: parameter sets seen)
	published bool // info is in the broadcast's catalogs
	sawKey    bool // video: a key frame was written
	frames    int  // written

	lastDTS int64 // in info.Timescale
	haveDTS bool

	// Audio: where the next access unit starts, in info.Timescale.
	nextAudio int64
	haveNext  bool

	// Timeline (90 kHz, after the session's offset).
	last90, dur90 int64
	have90        bool
}

func newAACTrack(c *mcodecs.MPEG4Audio) (*tsTrack, error) {
	cfg, err := c.Config.Marshal()
	if err != nil {
		return nil, fmt.Errorf("AAC configuration: %w", err)
	}
	rate := c.Config.SampleRate
	if rate <= 0 || rate > 192000 {
		return nil, fmt.Errorf("AAC sample rate %d", rate)
	}
	ch := int(c.Config.ChannelConfig)
	if ch == 7 {
		ch = 8
	}
	if ch < 1 || ch > 8 {
		ch = 2
	}
	return &tsTrack{ready: true, info: media.TrackInfo{Name: "audio", Codec: media.AAC, Timescale: uint32(rate),
		SampleRate: rate, Channels: ch, AACConfig: cfg}}, nil
}

// audioDuration is the duration of one access unit in the track timescale.
func (t *tsTrack) audioDuration(u []byte) int64 {
	if t.info.Codec == media.Opus {
		if d := opus.PacketDuration2(u); d > 0 {
			return d
		}
		return 960
	}
	return 1024 // AAC frame (ADTS carries no 960-sample frames)
}

// audioClock converts a 90 kHz time to the audio timescale, keeping the
// sample count running where the stream's PTS agrees with it (PES PTS are
// rounded to 90 kHz ticks; the sample clock is exact).
func (t *tsTrack) audioClock(ts90 int64) int64 {
	at := ts90 * int64(t.info.Timescale) / 90000
	if t.haveNext && abs(at-t.nextAudio) < int64(t.info.Timescale)/20 {
		return t.nextAudio
	}
	return at
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// videoFrame turns an access unit (NAL units without start codes) into the
// MP4 sample format (4-byte lengths) without parameter sets and
// delimiters; parameter sets that differ from the track's replace them.
func (t *tsTrack) videoFrame(au [][]byte) (data []byte, key, changed bool) {
	h265Track := t.info.Codec == media.H265
	var vps, sps, pps [][]byte
	size := 0
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch nalKind(h265Track, n) {
		case nalVPS:
			vps = append(vps, n)
		case nalSPS:
			sps = append(sps, n)
		case nalPPS:
			pps = append(pps, n)
		case nalSkip:
		default:
			size += 4 + len(n)
		}
	}
	changed = t.setParams(vps, sps, pps)
	if h265Track {
		key = h265.IsRandomAccess(au)
	} else {
		key = h264.IsRandomAccess(au)
	}
	data = make([]byte, 0, size)
	for _, n := range au {
		if len(n) > 0 && nalKind(h265Track, n) == nalMedia {
			data = binary.BigEndian.AppendUint32(data, uint32(len(n)))
			data = append(data, n...)
		}
	}
	return data, key, changed
}

type nalType int

const (
	nalMedia nalType = iota
	nalVPS
	nalSPS
	nalPPS
	nalSkip // delimiters and filler
)

func nalKind(isH265 bool, n []byte) nalType {
	if isH265 {
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			return nalVPS
		case h265.NALUType_SPS_NUT:
			return nalSPS
		case h265.NALUType_PPS_NUT:
			return nalPPS
		case h265.NALUType_AUD_NUT, h265.NALUType_FD_NUT:
			return nalSkip
		}
		return nalMedia
	}
	switch h264.NALUType(n[0] & 0x1f) {
	case h264.NALUTypeSPS:
		return nalSPS
	case h264.NALUTypePPS:
		return nalPPS
	case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
		return nalSkip
	}
	return nalMedia
}

// setParams stores in-band parameter sets (each kind only when present)
// and reports whether anything changed.
func (t *tsTrack) setParams(vps, sps, pps [][]byte) bool {
	ni := t.info
	if len(vps) > 0 {
		ni.VPS = vps
	}
	if len(sps) > 0 {
		ni.SPS = sps
	}
	if len(pps) > 0 {
		ni.PPS = pps
	}
	if sameParams(ni, t.info) {
		return false
	}
	ni.VPS, ni.SPS, ni.PPS = media.CloneNALUs(ni.VPS), media.CloneNALUs(ni.SPS), media.CloneNALUs(ni.PPS)
	ni.Width, ni.Height, ni.Framerate = spsGeometry(ni)
	// Usable once the parameter sets make an init segment. Damaged ones do
	// not: a ready track keeps its previous sets (the next key frame
	// brings them again).
	ok := len(ni.SPS) > 0 && len(ni.PPS) > 0 && (ni.Codec != media.H265 || len(ni.VPS) > 0)
	if ok {
		_, err := media.InitSegment(ni)
		ok = err == nil
	}
	if !ok && t.ready {
		return false
	}
	t.info, t.ready = ni, ok
	return true
}

// sameParams compares what the catalogs and init segments are built from.
func sameParams(a, b media.TrackInfo) bool {
	eq := func(x, y [][]byte) bool { return slices.EqualFunc(x, y, bytes.Equal) }
	return a.Name == b.Name && a.Codec == b.Codec && a.Timescale == b.Timescale &&
		eq(a.VPS, b.VPS) && eq(a.SPS, b.SPS) && eq(a.PPS, b.PPS) &&
		a.SampleRate == b.SampleRate && a.Channels == b.Channels && bytes.Equal(a.AACConfig, b.AACConfig)
}

// spsGeometry reads the dimensions and frame rate from the first SPS (0
// when it cannot be parsed or is not sane).
func spsGeometry(t media.TrackInfo) (w, h int, fps float64) {
	if len(t.SPS) == 0 {
		return 0, 0, 0
	}
	if t.Codec == media.H265 {
		var s h265.SPS
		// Width indexes a table by chroma_format_idc: only trust legal values.
		if s.Unmarshal(t.SPS[0]) != nil || s.ChromaFormatIdc > 3 {
			return 0, 0, 0
		}
		w, h, fps = s.Width(), s.Height(), s.FPS()
	} else {
		var s h264.SPS
		if s.Unmarshal(t.SPS[0]) != nil {
			return 0, 0, 0
		}
		w, h, fps = s.Width(), s.Height(), s.FPS()
	}
	if w <= 0 || h <= 0 || w > 1<<16 || h > 1<<16 {
		w, h = 0, 0
	}
	if math.IsNaN(fps) || fps <= 0 || fps > 1000 {
		fps = 0
	}
	return w, h, fps
}

// timeline keeps one session's media time monotonic: MPEG-TS clocks wrap
// after 26.5 hours (the TimeDecoder unwraps that) and jump at encoder
// restarts and PCR discontinuities. A jump on any track moves the session
// offset, which keeps the tracks in sync.
type timeline struct {
	offset int64 // added to 90 kHz times
	log    *slog.Logger
	jumps  int
}

// Jumps larger than these (90 kHz) are discontinuities.
const (
	maxForward  = 10 * 90000
	maxBackward = 90000
)

// adjust returns the 90 kHz time on the session timeline; ok is false for
// a frame that must be dropped (a small step back: out of order).
func (l *timeline) adjust(t *tsTrack, ts90 int64) (int64, bool) {
	at := ts90 + l.offset
	if t.have90 {
		d := at - t.last90
		if d > maxForward || d < -maxBackward {
			step := t.dur90
			if step <= 0 || step > 90000 {
				step = 3000
			}
			l.offset = t.last90 + step - ts90
			at = ts90 + l.offset
			l.jumps++
			l.log.Info("SRT: timestamp discontinuity; timeline continues", "track", t.info.Name, "jump_ms", d/90)
		} else if d <= 0 && t.info.Codec.Kind() == media.Video {
			return 0, false
		}
		if d > 0 && d <= 90000 {
			t.dur90 = d
		}
	}
	t.last90, t.have90 = at, true
	return at, true
}
