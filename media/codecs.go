package media

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/vp9"
)

// ErrUnsupportedCodec is returned for a codec this package cannot package.
var ErrUnsupportedCodec = errors.New("media: unsupported codec")

// CodecString returns the codec string of t as the WebCodecs codec registry
// and RFC 6381 spell it (the two agree for every codec here except MP3, where
// WebCodecs says "mp3"): avc1.PPCCLL, hvc1.… (ISO/IEC 14496-15 Annex E),
// av01.P.LLT.DD[.M.CCC.TTT.MMM.F], vp09.PP.LL.DD, vp8, mp4a.40.AOT, opus, mp3.
// It is derived from the parameter sets in t, not from guesses.
func CodecString(t TrackInfo) (string, error) {
	switch t.Codec {
	case H264:
		sps, err := parseAVCSPS(t)
		if err != nil {
			return "", err
		}
		// Lower-case hex like the WebCodecs and MSF examples.
		return fmt.Sprintf("avc1.%02x%02x%02x", sps.Profile&0xff, sps.ProfileCompatibility&0xff, sps.Level&0xff), nil
	case H265:
		sps, err := parseHEVCSPS(t)
		if err != nil {
			return "", err
		}
		return hevc.CodecString("hvc1", sps), nil
	case AV1:
		sh, _, err := av1Config(t)
		if err != nil {
			return "", err
		}
		return av1CodecString(sh), nil
	case VP9:
		return vp9CodecString(t), nil
	case VP8:
		return "vp8", nil
	case AAC:
		asc, err := parseASC(t.AACConfig)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("mp4a.40.%d", asc.ObjectType), nil
	case Opus:
		return "opus", nil
	case MP3:
		return "mp3", nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnsupportedCodec, t.Codec)
}

// Description returns the codec configuration a decoder needs out of band:
// the avcC / hvcC / av1C payload (without box header) for H.264, H.265 and
// AV1, the AudioSpecificConfig for AAC, and nil for codecs that carry
// everything in-band (VP8, VP9, Opus, MP3) or when the parameters in t do
// not parse. This is WebCodecs' VideoDecoderConfig / AudioDecoderConfig
// description, except for AV1, whose WebCodecs registration says the
// description is not used (the hang catalog leaves it out for that reason).
func Description(t TrackInfo) []byte {
	var b []byte
	err := guard(func() error {
		var err error
		b, err = description(t)
		return err
	})
	if err != nil {
		return nil
	}
	return b
}

func description(t TrackInfo) ([]byte, error) {
	var buf bytes.Buffer
	switch t.Codec {
	case H264:
		rec, err := avcDecConfRec(t)
		if err != nil {
			return nil, err
		}
		err = rec.Encode(&buf)
		return buf.Bytes(), err
	case H265:
		rec, err := hevcDecConfRec(t)
		if err != nil {
			return nil, err
		}
		err = rec.Encode(&buf)
		return buf.Bytes(), err
	case AV1:
		rec, err := av1ConfRec(t)
		if err != nil {
			return nil, err
		}
		err = rec.Encode(&buf)
		return buf.Bytes(), err
	case AAC:
		if _, err := parseASC(t.AACConfig); err != nil {
			return nil, err
		}
		return bytes.Clone(t.AACConfig), nil
	}
	return nil, nil
}

// VideoSize returns the coded picture size (after cropping) of a video
// track. The parameter sets win over TrackInfo.Width/Height because they
// are what the decoder will see; TrackInfo's values are the fallback for
// VP8/VP9 (whose size is only in key frames) and unparsable parameters.
func VideoSize(t TrackInfo) (width, height int, err error) {
	width, height = t.Width, t.Height
	var w, h uint32
	perr := guard(func() error {
		switch t.Codec {
		case H264:
			sps, err := parseAVCSPS(t)
			if err != nil {
				return err
			}
			w, h = uint32(sps.Width), uint32(sps.Height)
		case H265:
			sps, err := parseHEVCSPS(t)
			if err != nil {
				return err
			}
			w, h = sps.ImageSize()
		case AV1:
			sh, _, err := av1Config(t)
			if err != nil {
				return err
			}
			w, h = sh.Width(), sh.Height()
		}
		return nil
	})
	if perr == nil && w > 0 && h > 0 && w <= maxVideoDimension && h <= maxVideoDimension {
		return int(w), int(h), nil
	}
	if width > 0 && height > 0 {
		return width, height, nil
	}
	if perr != nil {
		return 0, 0, perr
	}
	return 0, 0, fmt.Errorf("media: %s track %q: video size unknown", t.Codec, t.Name)
}

// maxVideoDimension bounds sizes read from untrusted parameter sets.
const maxVideoDimension = 16384

// vp9CodecString builds vp09.PP.LL.DD. The level is not in TrackInfo, so it
// is the smallest VP9 level that fits the picture size and frame rate (as
// ffmpeg does for vpcC); 30 fps is assumed when the rate is unknown.
func vp9CodecString(t TrackInfo) string {
	return fmt.Sprintf("vp09.%02d.%02d.%02d", vp9Profile(t), vp9Level(t), vp9BitDepth(t))
}

func vp9Profile(t TrackInfo) int {
	if t.VP9Profile < 0 || t.VP9Profile > 3 {
		return 0
	}
	return t.VP9Profile
}

func vp9BitDepth(t TrackInfo) int {
	switch t.VP9BitDepth {
	case 10, 12:
		return t.VP9BitDepth
	}
	return 8
}

func vp9Level(t TrackInfo) int {
	fps := t.Framerate
	if fps <= 0 {
		fps = 30
	}
	if t.Width <= 0 || t.Height <= 0 {
		return 31 // level 3.1: a common, permissive default when the size is unknown
	}
	return int(vp9.Level(uint32(t.Width), uint32(t.Height), fps))
}

// parseASC validates an AAC AudioSpecificConfig and returns its header.
func parseASC(cfg []byte) (*aac.AudioSpecificConfigHeader, error) {
	if len(cfg) < 2 {
		return nil, errors.New("media: aac: AudioSpecificConfig missing or shorter than 2 bytes")
	}
	var hdr *aac.AudioSpecificConfigHeader
	err := guard(func() error {
		var err error
		hdr, err = aac.DecodeAudioSpecificConfigHeader(bytes.NewReader(cfg))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("media: aac: AudioSpecificConfig: %w", err)
	}
	if hdr.ObjectType == 0 {
		return nil, errors.New("media: aac: AudioSpecificConfig has audio object type 0")
	}
	return hdr, nil
}

// guard runs f and turns a panic (a third-party parser fed hostile
// parameter sets from a publisher) into an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("media: malformed codec parameters: %v", r)
		}
	}()
	return f()
}

// validCodecString bounds and sanity-checks a codec string read from a
// catalog (it ends up in logs, MIME types and playlists).
func validCodecString(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	return !strings.ContainsAny(s, " \t\r\n\"")
}
