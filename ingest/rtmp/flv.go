package rtmp

import (
	"errors"
	"fmt"

	"github.com/moqgate/moqgate/media"
)

// This file parses the bodies of RTMP audio (type 8) and video (type 9)
// messages, which are FLV AUDIODATA / VIDEODATA tag bodies, legacy or
// Enhanced RTMP (v1 and v2: ExHeader, ModEx, multitrack). gortmplib's
// message package parses them too, but treats every codec or packet type it
// does not know as a fatal error for the connection and keeps only the
// first SPS/PPS, so moqgate parses the tag headers itself; the codec
// configuration records are decoded with go-mp4 and mediacommon.

// errMalformed marks a malformed FLV tag body.
var errMalformed = errors.New("malformed FLV tag")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// packetKind is what an audio or video packet carries.
type packetKind uint8

const (
	pktConfig  packetKind = iota // sequence header / sequence start
	pktFrame                     // one coded frame / access unit
	pktEnd                       // end of sequence
	pktIgnored                   // metadata, command frame, multichannel config...
)

// FLV video frame types.
const (
	frameTypeKey     = 1
	frameTypeCommand = 5
)

// codecID identifies the codec of a packet: a supported media.Codec, or the
// name of an unsupported one (Codec empty).
type codecID struct {
	Codec media.Codec
	Name  string // human-readable, for logs
}

func (c codecID) supported() bool { return c.Codec != "" }

// packet is one parsed audio or video packet (for a multitrack message,
// one of its tracks).
type packet struct {
	Kind      packetKind
	Codec     codecID
	TrackID   uint8
	FrameType uint8 // video only: 1 key, 2 inter, ...
	CTO       int32 // composition time offset in ms (H.264/H.265 only)
	Data      []byte
}

// Enhanced RTMP FourCCs.
const (
	fourCCAVC  = 'a'<<24 | 'v'<<16 | 'c'<<8 | '1'
	fourCCHEVC = 'h'<<24 | 'v'<<16 | 'c'<<8 | '1'
	fourCCAV1  = 'a'<<24 | 'v'<<16 | '0'<<8 | '1'
	fourCCVP9  = 'v'<<24 | 'p'<<16 | '0'<<8 | '9'
	fourCCVP8  = 'v'<<24 | 'p'<<16 | '0'<<8 | '8'
	fourCCAAC  = 'm'<<24 | 'p'<<16 | '4'<<8 | 'a'
	fourCCOpus = 'O'<<24 | 'p'<<16 | 'u'<<8 | 's'
	fourCCMP3  = '.'<<24 | 'm'<<16 | 'p'<<8 | '3'
)

func fourCCString(v uint32) string {
	b := []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%08x", v)
		}
	}
	return string(b)
}

func videoFourCC(v uint32) codecID {
	switch v {
	case fourCCAVC:
		return codecID{media.H264, "H.264"}
	case fourCCHEVC:
		return codecID{media.H265, "H.265"}
	case fourCCAV1:
		return codecID{media.AV1, "AV1"}
	case fourCCVP9:
		return codecID{media.VP9, "VP9"}
	case fourCCVP8:
		return codecID{media.VP8, "VP8"}
	}
	return codecID{Name: "FourCC " + fourCCString(v)}
}

func audioFourCC(v uint32) codecID {
	switch v {
	case fourCCAAC:
		return codecID{media.AAC, "AAC"}
	case fourCCOpus:
		return codecID{media.Opus, "Opus"}
	case fourCCMP3:
		return codecID{media.MP3, "MP3"}
	}
	return codecID{Name: "FourCC " + fourCCString(v)}
}

// Legacy FLV video codec IDs.
func legacyVideoCodec(id byte) codecID {
	switch id {
	case 7:
		return codecID{media.H264, "H.264"}
	case 12: // not in the FLV spec, but widely used before Enhanced RTMP
		return codecID{media.H265, "H.265"}
	case 2:
		return codecID{Name: "Sorenson H.263"}
	case 3, 6:
		return codecID{Name: "Screen video"}
	case 4, 5:
		return codecID{Name: "On2 VP6"}
	}
	return codecID{Name: fmt.Sprintf("FLV video codec %d", id)}
}

// Legacy FLV audio sound formats.
func legacyAudioCodec(id byte) codecID {
	switch id {
	case 10:
		return codecID{media.AAC, "AAC"}
	case 2, 14:
		return codecID{media.MP3, "MP3"}
	case 0, 3:
		return codecID{Name: "LPCM"}
	case 1:
		return codecID{Name: "ADPCM"}
	case 4, 5, 6:
		return codecID{Name: "Nellymoser"}
	case 7, 8:
		return codecID{Name: "G.711"}
	case 11:
		return codecID{Name: "Speex"}
	}
	return codecID{Name: fmt.Sprintf("FLV sound format %d", id)}
}

// Enhanced RTMP packet types (shared numbering where they overlap).
const (
	exSequenceStart        = 0
	exCodedFrames          = 1
	exSequenceEnd          = 2
	exCodedFramesX         = 3 // video
	exMetadata             = 4 // video
	exMultichannelConfig   = 4 // audio
	exMPEG2TSSequenceStart = 5 // video
	exAudioMultitrack      = 5 // audio
	exVideoMultitrack      = 6 // video
	exModEx                = 7
)

// Multitrack types.
const (
	mtOneTrack             = 0
	mtManyTracks           = 1
	mtManyTracksManyCodecs = 2
)

// reader is a tiny bounds-checked big-endian reader.
type reader struct {
	b   []byte
	err error
}

func (r *reader) u8() byte {
	if len(r.b) < 1 {
		r.err = malformed("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 { return uint16(r.u8())<<8 | uint16(r.u8()) }

func (r *reader) u24() uint32 { return uint32(r.u8())<<16 | uint32(r.u16()) }

func (r *reader) u32() uint32 { return uint32(r.u16())<<16 | uint32(r.u16()) }

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.err = malformed("truncated")
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func si24(v uint32) int32 { return int32(v<<8) >> 8 }

// skipModEx skips Enhanced RTMP v2 ModEx blocks (e.g. nanosecond timestamp
// offsets, which moqgate does not use) and returns the real packet type.
func skipModEx(r *reader, pktType byte) byte {
	for pktType == exModEx && r.err == nil {
		size := int(r.u8()) + 1
		if size == 256 {
			size = int(r.u16()) + 1
		}
		r.bytes(size)
		b := r.u8()
		pktType = b & 0x0f // high nibble: ModEx type
	}
	return pktType
}

// parseVideo parses a VIDEODATA body.
func parseVideo(body []byte) ([]packet, error) {
	r := &reader{b: body}
	b0 := r.u8()
	if r.err != nil {
		return nil, r.err
	}
	if b0&0x80 == 0 {
		return parseLegacyVideo(b0, r)
	}

	frameType := (b0 >> 4) & 0x07
	pktType := skipModEx(r, b0&0x0f)
	if r.err != nil {
		return nil, r.err
	}
	if frameType == frameTypeCommand && pktType != exMetadata {
		return nil, nil // video command (seek start/end): no media
	}

	mtType := -1
	var fourCC uint32
	if pktType == exVideoMultitrack {
		b := r.u8()
		mtType = int(b >> 4)
		pktType = b & 0x0f
		if mtType > mtManyTracksManyCodecs {
			return nil, malformed("unknown video multitrack type %d", mtType)
		}
		if pktType == exVideoMultitrack || pktType == exModEx {
			return nil, malformed("invalid packet type %d inside a multitrack packet", pktType)
		}
		if mtType != mtManyTracksManyCodecs {
			fourCC = r.u32()
		}
	} else {
		fourCC = r.u32()
	}
	if r.err != nil {
		return nil, r.err
	}

	var out []packet
	for {
		var trackID uint8
		tr := r
		if mtType >= 0 {
			if mtType == mtManyTracksManyCodecs {
				fourCC = r.u32()
			}
			trackID = r.u8()
			if mtType != mtOneTrack {
				size := r.u24()
				tr = &reader{b: r.bytes(int(size))}
			}
			if r.err != nil {
				return nil, r.err
			}
		}
		p, err := parseExVideoBody(tr, frameType, pktType, videoFourCC(fourCC), fourCC)
		if err != nil {
			return nil, err
		}
		p.TrackID = trackID
		out = append(out, p)
		if mtType < 0 || mtType == mtOneTrack || len(r.b) == 0 {
			return out, nil
		}
	}
}

func parseExVideoBody(r *reader, frameType, pktType byte, codec codecID, fourCC uint32) (packet, error) {
	p := packet{Codec: codec, FrameType: frameType}
	switch pktType {
	case exSequenceStart:
		p.Kind = pktConfig
		p.Data = r.b
	case exCodedFrames:
		p.Kind = pktFrame
		if fourCC == fourCCAVC || fourCC == fourCCHEVC {
			p.CTO = si24(r.u24())
		}
		p.Data = r.b
	case exCodedFramesX:
		p.Kind = pktFrame
		p.Data = r.b
	case exSequenceEnd:
		p.Kind = pktEnd
	case exMetadata, exMPEG2TSSequenceStart:
		p.Kind = pktIgnored
	default:
		return p, malformed("unknown video packet type %d", pktType)
	}
	return p, r.err
}

func parseLegacyVideo(b0 byte, r *reader) ([]packet, error) {
	frameType := b0 >> 4
	codec := legacyVideoCodec(b0 & 0x0f)
	p := packet{Codec: codec, FrameType: frameType}
	if frameType == frameTypeCommand {
		return nil, nil
	}
	if !codec.supported() {
		p.Kind = pktFrame // whatever it is, it is left out
		return []packet{p}, nil
	}
	pktType := r.u8()
	cto := r.u24()
	if r.err != nil {
		return nil, r.err
	}
	switch pktType {
	case 0:
		p.Kind = pktConfig
	case 1:
		p.Kind = pktFrame
		p.CTO = si24(cto)
	case 2:
		p.Kind = pktEnd
	default:
		return nil, malformed("unknown AVC packet type %d", pktType)
	}
	p.Data = r.b
	return []packet{p}, nil
}

// parseAudio parses an AUDIODATA body.
func parseAudio(body []byte) ([]packet, error) {
	r := &reader{b: body}
	b0 := r.u8()
	if r.err != nil {
		return nil, r.err
	}
	format := b0 >> 4
	if format != 9 {
		codec := legacyAudioCodec(format)
		p := packet{Codec: codec, Kind: pktFrame}
		if codec.Codec == media.AAC {
			switch r.u8() {
			case 0:
				p.Kind = pktConfig
			case 1:
			default:
				if r.err == nil {
					return nil, malformed("unknown AAC packet type")
				}
			}
			if r.err != nil {
				return nil, r.err
			}
		}
		p.Data = r.b
		return []packet{p}, nil
	}

	pktType := skipModEx(r, b0&0x0f)
	if r.err != nil {
		return nil, r.err
	}
	mtType := -1
	var fourCC uint32
	if pktType == exAudioMultitrack {
		b := r.u8()
		mtType = int(b >> 4)
		pktType = b & 0x0f
		if mtType > mtManyTracksManyCodecs {
			return nil, malformed("unknown audio multitrack type %d", mtType)
		}
		if pktType == exAudioMultitrack || pktType == exModEx {
			return nil, malformed("invalid packet type %d inside a multitrack packet", pktType)
		}
		if mtType != mtManyTracksManyCodecs {
			fourCC = r.u32()
		}
	} else {
		fourCC = r.u32()
	}
	if r.err != nil {
		return nil, r.err
	}

	var out []packet
	for {
		var trackID uint8
		tr := r
		if mtType >= 0 {
			if mtType == mtManyTracksManyCodecs {
				fourCC = r.u32()
			}
			trackID = r.u8()
			if mtType != mtOneTrack {
				size := r.u24()
				tr = &reader{b: r.bytes(int(size))}
			}
			if r.err != nil {
				return nil, r.err
			}
		}
		p := packet{Codec: audioFourCC(fourCC), TrackID: trackID}
		switch pktType {
		case exSequenceStart:
			p.Kind = pktConfig
		case exCodedFrames:
			p.Kind = pktFrame
		case exSequenceEnd:
			p.Kind = pktEnd
		case exMultichannelConfig:
			p.Kind = pktIgnored
		default:
			return nil, malformed("unknown audio packet type %d", pktType)
		}
		p.Data = tr.b
		out = append(out, p)
		if mtType < 0 || mtType == mtOneTrack || len(r.b) == 0 {
			return out, nil
		}
	}
}
