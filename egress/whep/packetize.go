package whep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/moqgate/moqgate/media"
)

// rtpMTU is the largest RTP payload sent: 1200-byte packets (what
// browsers use) leave room for the RTP header and the SRTP tag within any
// path MTU.
const rtpMTU = 1160

// packetizer turns one access unit (media.Frame.Data as the packager
// stores it) into RTP payloads. One packetizer serves every viewer of a
// track: frames are packetized once.
type packetizer interface {
	packetize(data []byte, key bool) ([][]byte, error)
	// setInfo takes new codec parameters (SPS/PPS, AV1 sequence header).
	setInfo(info media.TrackInfo)
}

func newPacketizer(info media.TrackInfo) (packetizer, error) {
	switch info.Codec {
	case media.H264:
		p := &h264Packetizer{}
		p.setInfo(info)
		return p, nil
	case media.H265:
		p := &h265Packetizer{}
		p.setInfo(info)
		return p, nil
	case media.VP8:
		return &payloaderPacketizer{p: &codecs.VP8Payloader{EnablePictureID: true}}, nil
	case media.VP9:
		return &payloaderPacketizer{p: &codecs.VP9Payloader{}}, nil
	case media.AV1:
		p := &av1Packetizer{}
		p.setInfo(info)
		return p, nil
	case media.Opus:
		return opusPacketizer{}, nil
	}
	return nil, fmt.Errorf("whep: %s cannot be sent over WebRTC", info.Codec)
}

type payloaderPacketizer struct{ p rtp.Payloader }

func (p *payloaderPacketizer) packetize(data []byte, _ bool) ([][]byte, error) {
	out := p.p.Payload(rtpMTU, data)
	if len(out) == 0 {
		return nil, errors.New("empty frame")
	}
	return out, nil
}
func (p *payloaderPacketizer) setInfo(media.TrackInfo) {}

type opusPacketizer struct{}

func (opusPacketizer) packetize(data []byte, _ bool) ([][]byte, error) {
	if len(data) == 0 || len(data) > rtpMTU {
		return nil, fmt.Errorf("opus packet of %d bytes", len(data))
	}
	return [][]byte{data}, nil
}
func (opusPacketizer) setInfo(media.TrackInfo) {}

var startCode = []byte{0, 0, 0, 1}

// avccToAnnexB converts 4-byte-length-prefixed NAL units to Annex B,
// putting the parameter sets first when a key frame lacks them. hasPS
// tells whether a NAL unit header is a parameter set of the codec.
func avccToAnnexB(data []byte, prefix [][]byte, key bool, hasPS func(byte) bool) ([]byte, error) {
	out := make([]byte, 0, len(data)+64)
	needPS := key
	if key {
		for rest := data; len(rest) >= 4; {
			n := int(binary.BigEndian.Uint32(rest))
			if n > len(rest)-4 {
				break
			}
			if n > 0 && hasPS(rest[4]) {
				needPS = false
				break
			}
			rest = rest[4+n:]
		}
	}
	if needPS {
		for _, ps := range prefix {
			out = append(out, startCode...)
			out = append(out, ps...)
		}
	}
	for rest := data; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, errors.New("truncated NAL unit length")
		}
		n := int(binary.BigEndian.Uint32(rest))
		if n > len(rest)-4 {
			return nil, errors.New("NAL unit overruns the access unit")
		}
		if n > 0 {
			out = append(out, startCode...)
			out = append(out, rest[4:4+n]...)
		}
		rest = rest[4+n:]
	}
	return out, nil
}

// h264Packetizer: AVCC → Annex B with SPS and PPS before every key frame
// (the packager keeps them out of the samples) → RFC 6184 packetization
// mode 1 (STAP-A for the parameter sets, FU-A for large NAL units).
type h264Packetizer struct {
	ps [][]byte
	p  codecs.H264Payloader
}

func (p *h264Packetizer) setInfo(info media.TrackInfo) {
	p.ps = append(append([][]byte{}, info.SPS...), info.PPS...)
}

func (p *h264Packetizer) packetize(data []byte, key bool) ([][]byte, error) {
	annexB, err := avccToAnnexB(data, p.ps, key, func(h byte) bool { t := h & 0x1f; return t == 7 || t == 8 })
	if err != nil {
		return nil, err
	}
	out := p.p.Payload(rtpMTU, annexB)
	if len(out) == 0 {
		return nil, errors.New("empty access unit")
	}
	return out, nil
}

type h265Packetizer struct {
	ps [][]byte
	p  codecs.H265Payloader
}

func (p *h265Packetizer) setInfo(info media.TrackInfo) {
	p.ps = append(append(append([][]byte{}, info.VPS...), info.SPS...), info.PPS...)
}

func (p *h265Packetizer) packetize(data []byte, key bool) ([][]byte, error) {
	annexB, err := avccToAnnexB(data, p.ps, key, func(h byte) bool { t := (h >> 1) & 0x3f; return t >= 32 && t <= 34 })
	if err != nil {
		return nil, err
	}
	out := p.p.Payload(rtpMTU, annexB)
	if len(out) == 0 {
		return nil, errors.New("empty access unit")
	}
	return out, nil
}

// av1Packetizer puts the sequence header before key frames that lack it.
type av1Packetizer struct {
	seqHdr []byte
	p      codecs.AV1Payloader
}

func (p *av1Packetizer) setInfo(info media.TrackInfo) { p.seqHdr = info.AV1SequenceHeader }

func (p *av1Packetizer) packetize(data []byte, key bool) ([][]byte, error) {
	if key && len(p.seqHdr) > 0 && !av1HasSequenceHeader(data) {
		data = append(bytes.Clone(p.seqHdr), data...)
	}
	out := p.p.Payload(rtpMTU, data)
	if len(out) == 0 {
		return nil, errors.New("empty temporal unit")
	}
	return out, nil
}

// av1HasSequenceHeader reports whether a temporal unit (OBUs with size
// fields) holds a sequence header OBU.
func av1HasSequenceHeader(b []byte) bool {
	for len(b) > 0 {
		h := b[0]
		if (h>>3)&0x0f == 1 {
			return true
		}
		hl := 1
		if h&0x04 != 0 {
			hl = 2
		}
		if h&0x02 == 0 || len(b) <= hl {
			return false
		}
		size, n := binary.Uvarint(b[hl:]) // leb128 is little-endian base 128, like uvarint
		if n <= 0 || size > uint64(len(b)-hl-n) {
			return false
		}
		b = b[hl+n+int(size):]
	}
	return false
}
