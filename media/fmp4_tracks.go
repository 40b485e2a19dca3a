package media

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
)

// errFMP4Unsupported marks a trak the demuxer skips (unknown codec, subtitle
// or data track, encrypted content); the rest of the file stays usable.
var errFMP4Unsupported = errors.New("fmp4: unsupported track")

// fmp4TrakInfo extracts a TrackInfo (without Name) from a trak, plus its
// track ID. It returns errFMP4Unsupported (wrapped) for tracks to skip.
func fmp4TrakInfo(trak *mp4.TrakBox) (TrackInfo, uint32, error) {
	var ti TrackInfo
	if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Hdlr == nil {
		return ti, 0, errors.New("fmp4: trak lacks tkhd, mdhd or hdlr")
	}
	id := trak.Tkhd.TrackID
	if id == 0 {
		return ti, 0, errors.New("fmp4: trak with track ID 0")
	}
	ti.Timescale = trak.Mdia.Mdhd.Timescale
	if ti.Timescale == 0 {
		return ti, id, fmt.Errorf("fmp4: track %d: timescale 0", id)
	}
	hdlr := trak.Mdia.Hdlr.HandlerType
	if hdlr != "vide" && hdlr != "soun" {
		return ti, id, fmt.Errorf("%w: track %d: handler %q", errFMP4Unsupported, id, printableType(hdlr))
	}
	m := trak.Mdia.Minf
	if m == nil || m.Stbl == nil || m.Stbl.Stsd == nil || len(m.Stbl.Stsd.Children) == 0 {
		return ti, id, fmt.Errorf("fmp4: track %d: no sample description", id)
	}
	// Only the first sample entry: fragments of ffmpeg and CMAF never switch.
	switch se := m.Stbl.Stsd.Children[0].(type) {
	case *mp4.VisualSampleEntryBox:
		if hdlr != "vide" {
			return ti, id, fmt.Errorf("%w: track %d: visual sample entry in %q track", errFMP4Unsupported, id, hdlr)
		}
		if err := fmp4VisualInfo(&ti, se); err != nil {
			return ti, id, fmt.Errorf("track %d: %w", id, err)
		}
		if ti.Width == 0 || ti.Height == 0 {
			ti.Width, ti.Height = int(trak.Tkhd.Width>>16), int(trak.Tkhd.Height>>16)
		}
	case *mp4.AudioSampleEntryBox:
		if hdlr != "soun" {
			return ti, id, fmt.Errorf("%w: track %d: audio sample entry in %q track", errFMP4Unsupported, id, hdlr)
		}
		if err := fmp4AudioInfo(&ti, se); err != nil {
			return ti, id, fmt.Errorf("track %d: %w", id, err)
		}
	default:
		return ti, id, fmt.Errorf("%w: track %d: sample entry %q", errFMP4Unsupported, id, printableType(se.Type()))
	}
	return ti, id, nil
}

func fmp4VisualInfo(ti *TrackInfo, se *mp4.VisualSampleEntryBox) error {
	ti.Width, ti.Height = int(se.Width), int(se.Height)
	if se.Btrt != nil {
		ti.Bitrate = int(se.Btrt.AvgBitrate)
	}
	switch typ := se.Type(); typ {
	case "avc1", "avc3":
		ti.Codec = H264
		if se.AvcC == nil {
			if typ == "avc3" {
				return nil // parameter sets in band
			}
			return errors.New("fmp4: avc1 without avcC")
		}
		ti.SPS = fmp4CopyNALUs(se.AvcC.SPSnalus)
		ti.PPS = fmp4CopyNALUs(se.AvcC.PPSnalus)
	case "hvc1", "hev1":
		ti.Codec = H265
		if se.HvcC == nil {
			if typ == "hev1" {
				return nil
			}
			return errors.New("fmp4: hvc1 without hvcC")
		}
		ti.VPS = fmp4CopyNALUs(se.HvcC.GetNalusForType(hevc.NALU_VPS))
		ti.SPS = fmp4CopyNALUs(se.HvcC.GetNalusForType(hevc.NALU_SPS))
		ti.PPS = fmp4CopyNALUs(se.HvcC.GetNalusForType(hevc.NALU_PPS))
	case "av01":
		ti.Codec = AV1
		if se.Av1C != nil {
			// May be empty: the demuxer then takes it from the first keyframe.
			ti.AV1SequenceHeader = bytes.Clone(se.Av1C.ConfigOBUs)
		}
	case "vp09":
		ti.Codec = VP9
		if se.VppC != nil {
			ti.VP9Profile = int(se.VppC.Profile)
			ti.VP9BitDepth = int(se.VppC.BitDepth)
			ti.VP9Chroma = int(se.VppC.ChromaSubsampling)
		}
	case "vp08":
		ti.Codec = VP8
	default:
		return fmt.Errorf("%w: video sample entry %q", errFMP4Unsupported, printableType(typ))
	}
	return nil
}

func fmp4AudioInfo(ti *TrackInfo, se *mp4.AudioSampleEntryBox) error {
	ti.SampleRate, ti.Channels = int(se.SampleRate), int(se.ChannelCount)
	if se.Btrt != nil {
		ti.Bitrate = int(se.Btrt.AvgBitrate)
	}
	switch typ := se.Type(); typ {
	case "mp4a":
		if se.Esds == nil || se.Esds.DecConfigDescriptor == nil {
			return errors.New("fmp4: mp4a without esds")
		}
		dcd := se.Esds.DecConfigDescriptor
		if ti.Bitrate == 0 {
			ti.Bitrate = int(dcd.AvgBitrate)
		}
		switch dcd.ObjectType {
		case mp4.ObjectTypeAAC, 0x66, 0x67, 0x68: // MPEG-4 AAC, MPEG-2 AAC profiles
			ti.Codec = AAC
			if dcd.DecSpecificInfo == nil || len(dcd.DecSpecificInfo.DecConfig) == 0 {
				return errors.New("fmp4: AAC without AudioSpecificConfig")
			}
			ti.AACConfig = bytes.Clone(dcd.DecSpecificInfo.DecConfig)
			// The sample entry's channel count is unreliable (ffmpeg always
			// writes 2), the AudioSpecificConfig is authoritative.
			if rate, ch, ok := fmp4ParseASC(ti.AACConfig); ok {
				if rate > 0 {
					ti.SampleRate = rate
				}
				if ch > 0 {
					ti.Channels = ch
				}
			}
		case mp4.ObjectTypeMP3, mp4.ObjectTypeMPEG2Audio:
			ti.Codec = MP3
		default:
			return fmt.Errorf("%w: mp4a object type 0x%02x", errFMP4Unsupported, dcd.ObjectType)
		}
	case ".mp3":
		ti.Codec = MP3
	case "Opus":
		ti.Codec = Opus
		// Opus always decodes at 48 kHz; dOps' input rate is informative.
		ti.SampleRate = 48000
		if se.Dops != nil {
			ti.Channels = int(se.Dops.OutputChannelCount)
			ti.OpusPreSkip = int(se.Dops.PreSkip)
		}
	default:
		return fmt.Errorf("%w: audio sample entry %q", errFMP4Unsupported, printableType(typ))
	}
	return nil
}

// fmp4ParseASC returns the output sample rate and channel count of an AAC
// AudioSpecificConfig.
func fmp4ParseASC(asc []byte) (rate, channels int, ok bool) {
	var cc byte
	if full, err := aac.DecodeAudioSpecificConfig(bytes.NewReader(asc)); err == nil {
		rate, cc = full.SamplingFrequency, full.ChannelConfiguration
		if full.ExtensionFrequency > 0 {
			rate = full.ExtensionFrequency
		}
	} else if hdr, err := aac.DecodeAudioSpecificConfigHeader(bytes.NewReader(asc)); err == nil {
		rate, cc = hdr.SamplingFrequency, hdr.ChannelConfiguration
	} else {
		return 0, 0, false
	}
	// ISO/IEC 14496-3 Table 1.19 (and 23001-8 for 11-14).
	switch cc {
	case 1, 2, 3, 4, 5, 6:
		channels = int(cc)
	case 7, 12, 14:
		channels = 8
	case 11:
		channels = 7
	case 13:
		channels = 24
	}
	return rate, channels, true
}

func fmp4CopyNALUs(in [][]byte) [][]byte {
	if len(in) == 0 {
		return nil
	}
	out := make([][]byte, len(in))
	for i, n := range in {
		out[i] = bytes.Clone(n)
	}
	return out
}

// fmp4NameTracks assigns MoQ track names: "video"/"audio" for the first track
// of each kind, then "video2", "audio2", ...
func fmp4NameTracks(infos []TrackInfo) {
	count := map[Kind]int{}
	for i := range infos {
		k := infos[i].Codec.Kind()
		count[k]++
		infos[i].Name = string(k)
		if n := count[k]; n > 1 {
			infos[i].Name += strconv.Itoa(n)
		}
	}
}

// fmp4PatchEmptyAV1C renames, in place, av1C boxes too short to hold an
// AV1CodecConfigurationRecord to "free". ffmpeg 5 with libaom-av1 writes an
// empty av1C into an empty_moov, and mp4ff rejects the whole moov for it.
// b is the payload of a moov; only the trak/.../stsd/av01 path is walked.
func fmp4PatchEmptyAV1C(b []byte) {
	for pos := 0; pos+8 <= len(b); {
		h, size, err := fmp4SliceBox(b, pos)
		if err != nil {
			return
		}
		body := b[pos+h.hdrLen : pos+size]
		switch h.typ {
		case "trak", "mdia", "minf", "stbl":
			fmp4PatchEmptyAV1C(body)
		case "stsd": // full box header and entry count precede the entries
			if len(body) > 8 {
				fmp4PatchEmptyAV1C(body[8:])
			}
		case "av01": // fixed VisualSampleEntry fields precede the child boxes
			if len(body) > 78 {
				fmp4PatchEmptyAV1C(body[78:])
			}
		case "av1C":
			if size < h.hdrLen+4 {
				copy(b[pos+4:pos+8], "free")
			}
		}
		pos += size
	}
}
