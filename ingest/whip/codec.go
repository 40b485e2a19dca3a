package whip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/moqgate/moqgate/media"
)

// depacketizer turns the in-order RTP packets of one frame into the frame.
type depacketizer interface {
	// add appends the payload of p to the frame being built.
	add(p *rtp.Packet) error
	// frame returns the frame built since the last call and resets.
	frame() []byte
	// reset drops a partial frame (after a loss).
	reset()
}

// newDepacketizer returns the depacketizer of a codec.
func newDepacketizer(c media.Codec) depacketizer {
	var d depacketizer
	switch c {
	case media.H264:
		d = &h264Depack{}
	case media.VP8:
		d = &vp8Depack{}
	case media.VP9:
		d = &vp9Depack{}
	case media.AV1:
		d = &av1Depack{}
	default:
		d = &rawDepack{} // Opus: one packet, one frame
	}
	return &limitDepack{d: d, limit: maxFrameSize}
}

// maxFrameSize bounds the RTP payload bytes a depacketizer takes for one
// frame (and so what it, and pion's fragment buffers, hold): a sender that
// never sets the marker bit nor changes the timestamp, or never ends a
// fragmented NAL unit or OBU, would otherwise grow the frame without end.
// A 4K intra frame is a few MiB.
const maxFrameSize = 16 << 20

var errFrameTooLarge = errors.New("frame larger than the limit")

// limitDepack refuses a frame (and every packet of it) once its payloads
// exceed limit bytes; the partial frame is dropped at once.
type limitDepack struct {
	d     depacketizer
	limit int
	n     int  // payload bytes taken since the last frame or reset
	over  bool // this frame went over the limit
}

func (l *limitDepack) add(p *rtp.Packet) error {
	if l.over {
		return errFrameTooLarge
	}
	l.n += len(p.Payload)
	if l.n > l.limit {
		l.over = true
		l.d.reset()
		return errFrameTooLarge
	}
	return l.d.add(p)
}

func (l *limitDepack) frame() []byte {
	over := l.over
	l.n, l.over = 0, false
	if over {
		l.d.reset()
		return nil
	}
	return l.d.frame()
}

func (l *limitDepack) reset() {
	l.n, l.over = 0, false
	l.d.reset()
}

type rawDepack struct{ buf []byte }

func (d *rawDepack) add(p *rtp.Packet) error { d.buf = append(d.buf, p.Payload...); return nil }
func (d *rawDepack) frame() []byte           { b := d.buf; d.buf = nil; return b }
func (d *rawDepack) reset()                  { d.buf = nil }

// h264Depack collects NAL units (single, STAP-A, FU-A: packetization
// modes 0 and 1) as 4-byte-length-prefixed AVCC.
type h264Depack struct {
	p   codecs.H264Packet
	buf []byte
}

func (d *h264Depack) add(p *rtp.Packet) error {
	d.p.IsAVC = true
	b, err := d.p.Unmarshal(p.Payload)
	if err != nil {
		return err
	}
	d.buf = append(d.buf, b...)
	return nil
}

// frame also drops an unfinished FU-A: a NAL unit does not span access
// units (pion would keep appending the next frames' fragments to it).
func (d *h264Depack) frame() []byte { b := d.buf; d.reset(); return b }
func (d *h264Depack) reset()        { d.buf = nil; d.p = codecs.H264Packet{} }

type vp8Depack struct {
	p     codecs.VP8Packet
	buf   []byte
	start bool
}

func (d *vp8Depack) add(p *rtp.Packet) error {
	b, err := d.p.Unmarshal(p.Payload)
	if err != nil {
		return err
	}
	if len(d.buf) == 0 {
		if d.p.S != 1 || d.p.PID != 0 {
			return errors.New("VP8 frame does not start with partition 0")
		}
	}
	d.buf = append(d.buf, b...)
	return nil
}
func (d *vp8Depack) frame() []byte { b := d.buf; d.buf = nil; return b }
func (d *vp8Depack) reset()        { d.buf = nil }

// vp9Depack collects the frames of one picture; several (spatial layers)
// become one superframe.
type vp9Depack struct {
	p      codecs.VP9Packet
	cur    []byte
	frames [][]byte
}

func (d *vp9Depack) add(p *rtp.Packet) error {
	b, err := d.p.Unmarshal(p.Payload)
	if err != nil {
		return err
	}
	if d.p.B {
		if len(d.cur) > 0 {
			d.frames = append(d.frames, d.cur)
		}
		d.cur = nil
	} else if len(d.cur) == 0 {
		return errors.New("VP9 frame does not start with a B packet")
	}
	d.cur = append(d.cur, b...)
	if d.p.E {
		d.frames = append(d.frames, d.cur)
		d.cur = nil
	}
	return nil
}

func (d *vp9Depack) frame() []byte {
	if len(d.cur) > 0 {
		d.frames = append(d.frames, d.cur)
	}
	frames := d.frames
	d.frames, d.cur = nil, nil
	switch len(frames) {
	case 0:
		return nil
	case 1:
		return frames[0]
	}
	return vp9Superframe(frames)
}
func (d *vp9Depack) reset() { d.frames, d.cur = nil, nil }

// vp9Superframe joins frames with a superframe index (VP9 spec Annex B).
func vp9Superframe(frames [][]byte) []byte {
	if len(frames) > 8 {
		frames = frames[:8]
	}
	maxSize := 0
	for _, f := range frames {
		maxSize = max(maxSize, len(f))
	}
	mag := 0
	for maxSize >= 1<<(8*(mag+1)) && mag < 3 {
		mag++
	}
	marker := byte(0xc0 | mag<<3 | (len(frames) - 1))
	var out []byte
	for _, f := range frames {
		out = append(out, f...)
	}
	out = append(out, marker)
	for _, f := range frames {
		n := len(f)
		for i := 0; i <= mag; i++ {
			out = append(out, byte(n>>(8*i)))
		}
	}
	return append(out, marker)
}

// av1Depack collects OBUs (with size fields) of one temporal unit.
type av1Depack struct {
	p   codecs.AV1Depacketizer
	buf []byte
}

func (d *av1Depack) add(p *rtp.Packet) error {
	b, err := d.p.Unmarshal(p.Payload)
	if err != nil {
		return err
	}
	d.buf = append(d.buf, b...)
	return nil
}

// frame also drops an unfinished OBU fragment: an OBU does not span
// temporal units.
func (d *av1Depack) frame() []byte { b := d.buf; d.reset(); return b }
func (d *av1Depack) reset()        { d.buf = nil; d.p = codecs.AV1Depacketizer{} }

// ---------------------------------------------------------------------------
// Frame inspection: key frames and the codec parameters a TrackInfo needs.

// inspect looks at a frame of info's codec: it reports whether it is a key
// frame, returns the frame as media wants it (AVCC without AUDs, AV1 OBUs
// without temporal delimiters) and updates info from in-band parameters;
// changed reports that info changed.
func inspect(info *media.TrackInfo, data []byte) (out []byte, key, changed bool, err error) {
	switch info.Codec {
	case media.H264:
		return inspectH264(info, data)
	case media.VP8:
		key, changed = inspectVP8(info, data)
		return data, key, changed, nil
	case media.VP9:
		key, changed = inspectVP9(info, data)
		return data, key, changed, nil
	case media.AV1:
		return inspectAV1(info, data)
	case media.Opus:
		if info.Channels == 0 && len(data) > 0 {
			info.Channels = 1 + int(data[0]>>2&1) // TOC stereo flag
			changed = true
		}
		return data, true, changed, nil
	}
	return data, true, false, nil
}

// inspectH264 keeps SPS and PPS in band (they also go in TrackInfo, so the
// init segment and the catalogs follow changes) and drops access unit
// delimiters and filler data.
func inspectH264(info *media.TrackInfo, data []byte) ([]byte, bool, bool, error) {
	var sps, pps [][]byte
	key, drop := false, false
	for rest := data; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, false, false, errors.New("truncated NAL unit length")
		}
		n := int(binary.BigEndian.Uint32(rest))
		if n > len(rest)-4 {
			return nil, false, false, errors.New("NAL unit overruns the access unit")
		}
		nalu := rest[4 : 4+n]
		rest = rest[4+n:]
		if n == 0 {
			drop = true
			continue
		}
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = append(sps, nalu)
		case h264.NALUTypePPS:
			pps = append(pps, nalu)
		case h264.NALUTypeIDR:
			key = true
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			drop = true
		}
	}
	changed := false
	if len(sps) > 0 && !equalNALUs(sps, info.SPS) {
		info.SPS = media.CloneNALUs(sps)
		var s h264.SPS
		if s.Unmarshal(sps[0]) == nil {
			info.Width, info.Height = saneDims(s.Width(), s.Height())
			if f := s.FPS(); f > 0 && f < 1000 && !math.IsNaN(f) {
				info.Framerate = f
			}
		}
		changed = true
	}
	if len(pps) > 0 && !equalNALUs(pps, info.PPS) {
		info.PPS = media.CloneNALUs(pps)
		changed = true
	}
	if !drop {
		return data, key, changed, nil
	}
	out := make([]byte, 0, len(data))
	for rest := data; len(rest) > 0; {
		n := int(binary.BigEndian.Uint32(rest))
		nalu := rest[4 : 4+n]
		rest = rest[4+n:]
		if n == 0 {
			continue
		}
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(n))
		out = append(out, nalu...)
	}
	return out, key, changed, nil
}

func equalNALUs(a, b [][]byte) bool { return slices.EqualFunc(a, b, bytes.Equal) }

func saneDims(w, h int) (int, int) {
	if w <= 0 || h <= 0 || w > 1<<16 || h > 1<<16 {
		return 0, 0
	}
	return w, h
}

// inspectVP8 detects key frames (RFC 6386 9.1) and their dimensions.
func inspectVP8(info *media.TrackInfo, b []byte) (key, changed bool) {
	if len(b) < 10 || b[0]&0x01 != 0 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return false, false
	}
	w, h := saneDims(int(binary.LittleEndian.Uint16(b[6:])&0x3fff), int(binary.LittleEndian.Uint16(b[8:])&0x3fff))
	if w != info.Width || h != info.Height {
		info.Width, info.Height = w, h
		changed = true
	}
	return true, changed
}

// inspectVP9 detects key frames and takes the size, profile, bit depth and
// chroma subsampling from them.
func inspectVP9(info *media.TrackInfo, b []byte) (key, changed bool) {
	var h vp9.Header
	if h.Unmarshal(b) != nil || h.ShowExistingFrame || h.NonKeyFrame {
		return false, false
	}
	ni := *info
	ni.Width, ni.Height = saneDims(h.Width(), h.Height())
	ni.VP9Profile = int(h.Profile)
	if h.ColorConfig != nil {
		ni.VP9BitDepth = int(h.ColorConfig.BitDepth)
	}
	ni.VP9Chroma = int(h.ChromaSubsampling())
	if ni.Width != info.Width || ni.Height != info.Height || ni.VP9Profile != info.VP9Profile ||
		ni.VP9BitDepth != info.VP9BitDepth || ni.VP9Chroma != info.VP9Chroma {
		*info = ni
		changed = true
	}
	return true, changed
}

// inspectAV1 drops temporal delimiters, and takes the sequence header
// (which the RTP sender puts before every key frame).
func inspectAV1(info *media.TrackInfo, b []byte) ([]byte, bool, bool, error) {
	out := make([]byte, 0, len(b))
	key, changed := false, false
	for rest := b; len(rest) > 0; {
		hdr := rest[0]
		if hdr&0x80 != 0 {
			return nil, false, false, errors.New("AV1 OBU forbidden bit set")
		}
		hl := 1
		if hdr&0x04 != 0 {
			hl = 2
		}
		if hdr&0x02 == 0 || len(rest) < hl+1 {
			return nil, false, false, errors.New("AV1 OBU without size field")
		}
		var size av1.LEB128
		n, err := size.Unmarshal(rest[hl:])
		if err != nil {
			return nil, false, false, err
		}
		total := hl + n + int(size)
		if total > len(rest) {
			return nil, false, false, errors.New("AV1 OBU overruns the temporal unit")
		}
		obu := rest[:total]
		rest = rest[total:]
		switch av1.OBUType((hdr >> 3) & 0x0f) {
		case av1.OBUTypeTemporalDelimiter:
			continue
		case av1.OBUTypeSequenceHeader:
			key = true
			if !bytes.Equal(obu, info.AV1SequenceHeader) {
				info.AV1SequenceHeader = bytes.Clone(obu)
				var sh av1.SequenceHeader
				if sh.Unmarshal(obu) == nil {
					info.Width, info.Height = saneDims(sh.Width(), sh.Height())
				}
				changed = true
			}
		}
		out = append(out, obu...)
	}
	return out, key, changed, nil
}

// opusDuration is the duration of an Opus packet in 48 kHz samples (0 if
// the TOC is unreadable).
func opusDuration(pkt []byte) int64 {
	if len(pkt) == 0 {
		return 0
	}
	return opus.PacketDuration2(pkt)
}

// ready reports whether info is complete enough for an init segment.
func ready(info media.TrackInfo) bool {
	switch info.Codec {
	case media.H264:
		return len(info.SPS) > 0 && len(info.PPS) > 0
	case media.AV1:
		return len(info.AV1SequenceHeader) > 0
	case media.VP8, media.VP9:
		return info.Width > 0 // from the first key frame
	case media.Opus:
		return info.Channels > 0
	}
	return false
}
