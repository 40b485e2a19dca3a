package rtmp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"

	"github.com/moqgate/moqgate/media"
)

// timescale is the clock of every Frame.DTS / Frame.CTO this package
// produces: FLV and RTMP timestamps are integer milliseconds, so a 1 kHz
// clock represents them exactly (no rounding, no drift).
const timescale = 1000

// track is the state of one ingested elementary stream.
type track struct {
	info  media.TrackInfo
	ready bool // info is complete enough for an init segment
	// H.264 / H.265: size of the NAL unit length fields in frames (1, 2 or 4).
	nalLen int
}

// psChange records parameter sets found in-band in an access unit.
type psChange struct {
	vps, sps, pps [][]byte
}

// ---------------------------------------------------------------------------
// Configuration records (sequence headers).

// newTrack builds a track from a sequence header / sequence start payload.
func newTrack(codec media.Codec, cfg []byte) (*track, error) {
	t := &track{info: media.TrackInfo{Codec: codec, Timescale: timescale}}
	switch codec {
	case media.H264:
		return t, t.parseAVCC(cfg)
	case media.H265:
		return t, t.parseHVCC(cfg)
	case media.AV1:
		return t, t.parseAV1C(cfg)
	case media.VP9, media.VP8:
		return t, t.parseVPCC(cfg)
	case media.AAC:
		return t, t.parseASC(cfg)
	case media.Opus:
		return t, t.parseOpusHead(cfg)
	case media.MP3:
		return t, nil // no configuration: sample rate and channels come with frames
	}
	return nil, malformed("no configuration record for %s", codec)
}

// newTrackWithoutConfig is used when a codec that can be configured from its
// frames sends frames before (or without) a sequence header.
func newTrackWithoutConfig(codec media.Codec) *track {
	switch codec {
	case media.AV1, media.VP9, media.VP8, media.MP3, media.Opus:
		return &track{info: media.TrackInfo{Codec: codec, Timescale: timescale}}
	}
	return nil
}

// parseAVCC parses an AVCDecoderConfigurationRecord (ISO 14496-15 5.3.3).
func (t *track) parseAVCC(b []byte) error {
	r := &reader{b: b}
	if v := r.u8(); r.err == nil && v != 1 {
		return malformed("avcC version %d", v)
	}
	r.bytes(3) // profile, compatibility, level
	t.nalLen = int(r.u8()&0x03) + 1
	n := int(r.u8() & 0x1f)
	var sps, pps [][]byte
	for range n {
		sps = append(sps, r.bytes(int(r.u16())))
	}
	n = int(r.u8())
	for range n {
		pps = append(pps, r.bytes(int(r.u16())))
	}
	if r.err != nil {
		return malformed("avcC: %v", r.err)
	}
	if t.nalLen == 3 {
		return malformed("avcC: NAL unit length size 3")
	}
	t.setH26xParams(nil, nonEmpty(sps), nonEmpty(pps))
	return nil
}

// parseHVCC parses an HEVCDecoderConfigurationRecord (ISO 14496-15 8.3.3).
func (t *track) parseHVCC(b []byte) error {
	r := &reader{b: b}
	if v := r.u8(); r.err == nil && v != 1 {
		return malformed("hvcC version %d", v)
	}
	r.bytes(20)
	t.nalLen = int(r.u8()&0x03) + 1
	arrays := int(r.u8())
	var vps, sps, pps [][]byte
	for range arrays {
		typ := h265.NALUType(r.u8() & 0x3f)
		n := int(r.u16())
		for range n {
			nalu := r.bytes(int(r.u16()))
			switch typ {
			case h265.NALUType_VPS_NUT:
				vps = append(vps, nalu)
			case h265.NALUType_SPS_NUT:
				sps = append(sps, nalu)
			case h265.NALUType_PPS_NUT:
				pps = append(pps, nalu)
			}
		}
		if r.err != nil {
			break
		}
	}
	if r.err != nil {
		return malformed("hvcC: %v", r.err)
	}
	if t.nalLen == 3 {
		return malformed("hvcC: NAL unit length size 3")
	}
	t.setH26xParams(nonEmpty(vps), nonEmpty(sps), nonEmpty(pps))
	return nil
}

func nonEmpty(list [][]byte) [][]byte {
	var out [][]byte
	for _, b := range list {
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// setH26xParams sets the parameter sets of an H.264 / H.265 track, updates
// the dimensions and frame rate from the SPS, and whether the track is ready.
func (t *track) setH26xParams(vps, sps, pps [][]byte) {
	t.info.VPS, t.info.SPS, t.info.PPS = vps, sps, pps
	t.info.Width, t.info.Height = 0, 0
	if t.info.Codec == media.H264 {
		t.ready = len(sps) > 0 && len(pps) > 0
		if len(sps) > 0 {
			var s h264.SPS
			if s.Unmarshal(sps[0]) == nil {
				t.info.Width, t.info.Height = saneDims(s.Width(), s.Height())
				t.info.Framerate = saneFPS(s.FPS())
			}
		}
		return
	}
	t.ready = len(vps) > 0 && len(sps) > 0 && len(pps) > 0
	if len(sps) > 0 {
		var s h265.SPS
		// Width() indexes a table by chroma_format_idc: only call it on
		// values the spec allows.
		if s.Unmarshal(sps[0]) == nil && s.ChromaFormatIdc <= 3 {
			t.info.Width, t.info.Height = saneDims(s.Width(), s.Height())
			t.info.Framerate = saneFPS(s.FPS())
		}
	}
}

func saneDims(w, h int) (int, int) {
	if w <= 0 || h <= 0 || w > 1<<16 || h > 1<<16 {
		return 0, 0
	}
	return w, h
}

func saneFPS(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1000 {
		return 0
	}
	return f
}

// parseAV1C parses an AV1CodecConfigurationRecord (AV1-ISOBMFF 2.3).
func (t *track) parseAV1C(b []byte) error {
	if len(b) < 4 {
		return malformed("av1C: %d bytes", len(b))
	}
	if b[0] != 0x81 {
		return malformed("av1C: bad marker/version 0x%02x", b[0])
	}
	obus, err := splitOBUs(b[4:])
	if err != nil {
		return malformed("av1C config OBUs: %v", err)
	}
	for _, o := range obus {
		if o.typ == av1.OBUTypeSequenceHeader {
			t.setAV1SequenceHeader(o.withSize())
			break
		}
	}
	return nil
}

// setAV1SequenceHeader stores a sequence header OBU (with its size field).
func (t *track) setAV1SequenceHeader(obu []byte) {
	t.info.AV1SequenceHeader = obu
	t.ready = true
	var sh av1.SequenceHeader
	if sh.Unmarshal(obu) == nil {
		t.info.Width, t.info.Height = saneDims(sh.Width(), sh.Height())
	}
}

// parseVPCC parses a VPCodecConfigurationRecord (the vpcC box payload,
// version and flags included). VP8/VP9 tracks become ready with their first
// key frame, which carries the dimensions.
func (t *track) parseVPCC(b []byte) error {
	if len(b) == 0 {
		return nil // tolerated: everything needed is in the bitstream
	}
	r := &reader{b: b}
	r.u32() // version, flags
	profile := r.u8()
	r.u8() // level
	bc := r.u8()
	if r.err != nil {
		return malformed("vpcC: %v", r.err)
	}
	if t.info.Codec == media.VP9 {
		t.info.VP9Profile = int(profile)
		t.info.VP9BitDepth = int(bc >> 4)
		t.info.VP9Chroma = int((bc >> 1) & 0x07)
	}
	return nil
}

// parseASC parses an AAC AudioSpecificConfig.
func (t *track) parseASC(b []byte) error {
	var c mpeg4audio.AudioSpecificConfig
	if err := c.Unmarshal(b); err != nil {
		return malformed("AAC AudioSpecificConfig: %v", err)
	}
	t.info.AACConfig = b
	t.info.SampleRate = c.SampleRate
	if c.ExtensionSampleRate > 0 {
		t.info.SampleRate = c.ExtensionSampleRate
	}
	switch {
	case c.ChannelConfig >= 1 && c.ChannelConfig <= 6:
		t.info.Channels = int(c.ChannelConfig)
	case c.ChannelConfig == 7:
		t.info.Channels = 8
	}
	t.ready = true
	return nil
}

// parseOpusHead parses an Opus identification header (RFC 7845 5.1).
func (t *track) parseOpusHead(b []byte) error {
	var h opus.IDHeader
	if err := h.Unmarshal(b); err != nil {
		return malformed("OpusHead: %v", err)
	}
	t.info.SampleRate = 48000
	t.info.Channels = int(h.ChannelCount)
	t.info.OpusPreSkip = int(h.PreSkip)
	t.ready = true
	return nil
}

// ---------------------------------------------------------------------------
// Frames.

// frame converts the payload of a coded-frame packet into a media.Frame.
// It may update t.info (in-band parameter sets, dimensions from a key
// frame); changed reports that. ok is false when there is no frame to write
// (e.g. an access unit made only of parameter sets).
func (t *track) frame(p packet, dts int64) (f media.Frame, ok, changed bool, err error) {
	f = media.Frame{DTS: dts, Keyframe: true}
	switch t.info.Codec {
	case media.H264, media.H265:
		f.CTO = int64(p.CTO)
		var key bool
		f.Data, key, changed, err = t.h26xFrame(p.Data)
		f.Keyframe = key || p.FrameType == frameTypeKey
	case media.AV1:
		var key bool
		f.Data, key, changed, err = t.av1Frame(p.Data)
		f.Keyframe = key || p.FrameType == frameTypeKey
	case media.VP9:
		f.Data = p.Data
		f.Keyframe, changed = t.vp9Frame(p.Data)
	case media.VP8:
		f.Data = p.Data
		f.Keyframe, changed = t.vp8Frame(p.Data)
	case media.AAC, media.Opus:
		f.Data = p.Data
		if t.info.Codec == media.Opus && !t.ready && len(p.Data) > 0 {
			// no OpusHead: channel count from the TOC byte (RFC 6716 3.1)
			t.info.SampleRate = 48000
			t.info.Channels = 1 + int(p.Data[0]>>2&1)
			t.ready, changed = true, true
		}
	case media.MP3:
		f.Data = p.Data
		changed, err = t.mp3Frame(p.Data)
	}
	if err != nil {
		return f, false, changed, err
	}
	return f, len(f.Data) > 0, changed, nil
}

// h26xFrame converts an AVCC access unit (NAL units with t.nalLen-byte
// length prefixes) into 4-byte-length-prefixed NAL units without parameter
// sets and access unit delimiters. In-band parameter sets that differ from
// the track's replace them (changed = true).
func (t *track) h26xFrame(b []byte) (out []byte, key, changed bool, err error) {
	isH264 := t.info.Codec == media.H264
	var ps psChange
	keep := 0 // bytes of kept NAL units
	dropped := false
	for rest := b; len(rest) > 0; {
		nalu, r, e := nextNALU(rest, t.nalLen)
		if e != nil {
			return nil, false, false, e
		}
		rest = r
		if len(nalu) == 0 {
			dropped = true
			continue
		}
		if isH264 {
			switch h264.NALUType(nalu[0] & 0x1f) {
			case h264.NALUTypeSPS:
				ps.sps = append(ps.sps, nalu)
				dropped = true
				continue
			case h264.NALUTypePPS:
				ps.pps = append(ps.pps, nalu)
				dropped = true
				continue
			case h264.NALUTypeAccessUnitDelimiter:
				dropped = true
				continue
			case h264.NALUTypeIDR:
				key = true
			}
		} else {
			typ := h265.NALUType((nalu[0] >> 1) & 0x3f)
			switch typ {
			case h265.NALUType_VPS_NUT:
				ps.vps = append(ps.vps, nalu)
				dropped = true
				continue
			case h265.NALUType_SPS_NUT:
				ps.sps = append(ps.sps, nalu)
				dropped = true
				continue
			case h265.NALUType_PPS_NUT:
				ps.pps = append(ps.pps, nalu)
				dropped = true
				continue
			case h265.NALUType_AUD_NUT:
				dropped = true
				continue
			}
			if typ >= h265.NALUType_BLA_W_LP && typ <= h265.NALUType_CRA_NUT {
				key = true
			}
		}
		keep += 4 + len(nalu)
	}

	changed = t.applyInBandParams(ps)

	if !dropped && t.nalLen == 4 {
		return b, key, changed, nil
	}
	out = make([]byte, 0, keep)
	for rest := b; len(rest) > 0; {
		nalu, r, _ := nextNALU(rest, t.nalLen)
		rest = r
		if len(nalu) == 0 || isParamSetOrAUD(isH264, nalu[0]) {
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(nalu)))
		out = append(out, nalu...)
	}
	return out, key, changed, nil
}

func isParamSetOrAUD(isH264 bool, hdr byte) bool {
	if isH264 {
		switch h264.NALUType(hdr & 0x1f) {
		case h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeAccessUnitDelimiter:
			return true
		}
		return false
	}
	switch h265.NALUType((hdr >> 1) & 0x3f) {
	case h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT, h265.NALUType_AUD_NUT:
		return true
	}
	return false
}

// nextNALU splits the first length-prefixed NAL unit off b.
func nextNALU(b []byte, lenSize int) (nalu, rest []byte, err error) {
	if len(b) < lenSize {
		return nil, nil, malformed("truncated NAL unit length")
	}
	var n uint64
	for _, c := range b[:lenSize] {
		n = n<<8 | uint64(c)
	}
	b = b[lenSize:]
	if n > uint64(len(b)) {
		return nil, nil, malformed("NAL unit of %d bytes overruns the %d bytes left", n, len(b))
	}
	return b[:n], b[n:], nil
}

// applyInBandParams replaces the track's parameter sets with those found
// in-band (each kind separately) when they differ.
func (t *track) applyInBandParams(ps psChange) bool {
	vps, sps, pps := t.info.VPS, t.info.SPS, t.info.PPS
	if len(ps.vps) > 0 && !equalLists(ps.vps, vps) {
		vps = media.CloneNALUs(ps.vps)
	}
	if len(ps.sps) > 0 && !equalLists(ps.sps, sps) {
		sps = media.CloneNALUs(ps.sps)
	}
	if len(ps.pps) > 0 && !equalLists(ps.pps, pps) {
		pps = media.CloneNALUs(ps.pps)
	}
	if equalLists(vps, t.info.VPS) && equalLists(sps, t.info.SPS) && equalLists(pps, t.info.PPS) {
		return false
	}
	t.setH26xParams(vps, sps, pps)
	return true
}

func equalLists(a, b [][]byte) bool { return slices.EqualFunc(a, b, bytes.Equal) }

// obu is one AV1 OBU inside a buffer.
type obu struct {
	typ     av1.OBUType
	full    []byte // header (+ extension) + optional size field + payload
	hdr     []byte // header byte and optional extension byte
	payload []byte
	hasSize bool
}

// withSize returns the OBU in low-overhead format (obu_has_size_field = 1).
func (o obu) withSize() []byte {
	if o.hasSize {
		return o.full
	}
	out := make([]byte, 0, len(o.hdr)+8+len(o.payload))
	out = append(out, o.hdr[0]|0x02)
	out = append(out, o.hdr[1:]...)
	out = appendLEB128(out, uint64(len(o.payload)))
	return append(out, o.payload...)
}

func appendLEB128(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// splitOBUs splits a temporal unit / config OBU list in low-overhead
// bitstream format (AV1 spec 5.2). An OBU without a size field extends to
// the end of the buffer.
func splitOBUs(b []byte) ([]obu, error) {
	var out []obu
	for len(b) > 0 {
		h := b[0]
		if h&0x80 != 0 {
			return nil, malformed("AV1 OBU forbidden bit set")
		}
		hl := 1
		if h&0x04 != 0 {
			hl = 2
		}
		if len(b) < hl {
			return nil, malformed("truncated AV1 OBU header")
		}
		o := obu{typ: av1.OBUType((h >> 3) & 0x0f), hdr: b[:hl], hasSize: h&0x02 != 0}
		rest := b[hl:]
		if o.hasSize {
			size, n := uvarintLEB128(rest)
			if n <= 0 {
				return nil, malformed("bad AV1 OBU size field")
			}
			rest = rest[n:]
			if size > uint64(len(rest)) {
				return nil, malformed("AV1 OBU of %d bytes overruns the %d bytes left", size, len(rest))
			}
			o.payload = rest[:size]
			o.full = b[:hl+n+int(size)]
			b = rest[size:]
		} else {
			o.payload = rest
			o.full = b
			b = nil
		}
		out = append(out, o)
	}
	return out, nil
}

// uvarintLEB128 decodes an AV1 leb128 (at most 8 bytes); n <= 0 on error.
func uvarintLEB128(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, -1
}

// av1Frame strips temporal delimiters from a temporal unit, and picks up an
// in-band sequence header that differs from the track's.
func (t *track) av1Frame(b []byte) (out []byte, key, changed bool, err error) {
	obus, err := splitOBUs(b)
	if err != nil {
		return nil, false, false, err
	}
	rewrite := false
	size := 0
	for _, o := range obus {
		switch o.typ {
		case av1.OBUTypeTemporalDelimiter:
			rewrite = true
			continue
		case av1.OBUTypeSequenceHeader:
			key = true
			cur := t.info.AV1SequenceHeader
			if !t.ready || !bytes.Equal(o.withSize(), cur) {
				t.setAV1SequenceHeader(bytes.Clone(o.withSize()))
				changed = true
			}
		}
		if !o.hasSize {
			rewrite = true
		}
		size += len(o.full) + 8
	}
	if !rewrite {
		return b, key, changed, nil
	}
	out = make([]byte, 0, size)
	for _, o := range obus {
		if o.typ == av1.OBUTypeTemporalDelimiter {
			continue
		}
		out = append(out, o.withSize()...)
	}
	return out, key, changed, nil
}

// vp9Frame detects key frames and picks up dimensions, profile, bit depth
// and chroma subsampling from them.
func (t *track) vp9Frame(b []byte) (key, changed bool) {
	var h vp9.Header
	if h.Unmarshal(b) != nil || h.ShowExistingFrame || h.NonKeyFrame {
		return false, false
	}
	ni := t.info
	ni.Width, ni.Height = saneDims(h.Width(), h.Height())
	ni.VP9Profile = int(h.Profile)
	if h.ColorConfig != nil {
		ni.VP9BitDepth = int(h.ColorConfig.BitDepth)
	}
	ni.VP9Chroma = int(h.ChromaSubsampling())
	if !t.ready || ni.Width != t.info.Width || ni.Height != t.info.Height ||
		ni.VP9Profile != t.info.VP9Profile || ni.VP9BitDepth != t.info.VP9BitDepth ||
		ni.VP9Chroma != t.info.VP9Chroma {
		t.info = ni
		t.ready = true
		changed = true
	}
	return true, changed
}

// vp8Frame detects key frames (RFC 6386 9.1) and picks up their dimensions.
func (t *track) vp8Frame(b []byte) (key, changed bool) {
	if len(b) < 10 || b[0]&0x01 != 0 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return false, false
	}
	w, h := saneDims(int(binary.LittleEndian.Uint16(b[6:])&0x3fff), int(binary.LittleEndian.Uint16(b[8:])&0x3fff))
	if !t.ready || w != t.info.Width || h != t.info.Height {
		t.info.Width, t.info.Height = w, h
		t.ready = true
		changed = true
	}
	return true, changed
}

// errMP3Header marks an MP3 frame whose header mediacommon cannot parse
// (e.g. MPEG-2.5); such frames are dropped, not treated as malformed.
type errMP3Header struct{ err error }

func (e errMP3Header) Error() string { return "MP3 frame header: " + e.err.Error() }

// mp3Frame takes the sample rate and channel count from an MP3 frame header.
func (t *track) mp3Frame(b []byte) (changed bool, err error) {
	var h mpeg1audio.FrameHeader
	if err := h.Unmarshal(b); err != nil {
		return false, errMP3Header{err}
	}
	if h.Layer != 3 {
		return false, errMP3Header{fmt.Errorf("MPEG audio layer %d is not MP3", h.Layer)}
	}
	ch := 2
	if h.ChannelMode == mpeg1audio.ChannelModeMono {
		ch = 1
	}
	if !t.ready || h.SampleRate != t.info.SampleRate || ch != t.info.Channels {
		t.info.SampleRate, t.info.Channels = h.SampleRate, ch
		t.ready = true
		return true, nil
	}
	return false, nil
}
