package media

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Catalog track names (DESIGN.md): every broadcast carries both catalogs.
const (
	HangCatalogTrack = "catalog.json"
	MSFCatalogTrack  = "catalog"
)

// OpusRendition is the track of a broadcast's AAC audio transcoded to Opus
// (for WebRTC, which cannot carry AAC). Subscribing to it asks the origin
// to make it.
const OpusRendition = "audio-opus"

// WebRTCVideoRendition is the track of a broadcast's video re-encoded for
// WebRTC (H.264 constrained baseline without B-frames, a key frame at
// every source key frame), for viewers that cannot take the original.
// Subscribing to it asks the origin to make it.
const WebRTCVideoRendition = "video-webrtc"

// Bounds enforced by the catalog parsers. A catalog holds a few init
// segments (about 1 KiB each); these leave ample room and stop a hostile
// publisher from making subscribers allocate without limit.
const (
	MaxCatalogSize      = 1 << 20
	maxCatalogTracks    = 256
	maxCatalogNameLen   = 1024
	maxCatalogStringLen = 4096
	maxSafeInteger      = 1<<53 - 1 // JSON numbers as JavaScript reads them (hang's u53)
)

// ErrInvalidCatalog wraps every catalog validation error.
var ErrInvalidCatalog = errors.New("media: invalid catalog")

// ErrCatalogDelta is returned for an MSF delta update: only independent
// catalogs (object 0 of a catalog group) are parsed.
var ErrCatalogDelta = errors.New("media: MSF catalog is a delta update")

// CatalogTrack is one media track as a catalog describes it, whichever the
// catalog format: what a subscriber needs to pick and decode the track.
type CatalogTrack struct {
	Name string
	Kind Kind
	// Codec is the codec string (e.g. "avc1.64001f", "mp4a.40.2").
	Codec string
	// Packaging is the payload format: "cmaf", "loc", "legacy" (hang's
	// default) or whatever unknown value the catalog names.
	Packaging string
	// Init is the CMAF header (ftyp+moov) when Packaging is "cmaf" and the
	// catalog carries it inline.
	Init []byte
	// Description is the decoder config (avcC, hvcC, AudioSpecificConfig...)
	// when the catalog gives one (hang only).
	Description []byte

	Width, Height        int
	SampleRate, Channels int
	Bitrate              int
	Framerate            float64
	Timescale            int
}

func catalogErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidCatalog}, args...)...)
}

func checkCatalogSize(data []byte) error {
	if len(data) == 0 {
		return catalogErr("empty")
	}
	if len(data) > MaxCatalogSize {
		return catalogErr("%d bytes exceeds the %d byte limit", len(data), MaxCatalogSize)
	}
	return nil
}

func checkTrackName(name string) error {
	if name == "" {
		return catalogErr("empty track name")
	}
	if len(name) > maxCatalogNameLen {
		return catalogErr("track name of %d bytes is too long", len(name))
	}
	return nil
}

func checkCount(what string, v int64) error {
	if v < 0 || v > maxSafeInteger {
		return catalogErr("%s %d out of range", what, v)
	}
	return nil
}

func checkFloat(what string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > maxSafeInteger {
		return catalogErr("%s %v out of range", what, v)
	}
	return nil
}

func checkString(what, s string) error {
	if len(s) > maxCatalogStringLen {
		return catalogErr("%s of %d bytes is too long", what, len(s))
	}
	return nil
}

// decodeHex decodes a hang `description` (hex, either case).
func decodeHex(what, s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, catalogErr("%s is not hex: %v", what, err)
	}
	return b, nil
}

// decodeBase64 decodes standard padded base64 (RFC 4648 section 4), the
// encoding of hang's `init` and MSF's `initData`.
func decodeBase64(what, s string) ([]byte, error) {
	if s == "" {
		return nil, catalogErr("%s is empty", what)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, catalogErr("%s is not base64: %v", what, err)
	}
	return b, nil
}

// kindFromCodecString guesses video or audio from a codec string, for
// catalogs that do not say (MSF tracks without a role).
func kindFromCodecString(codec string) (Kind, bool) {
	prefix, _, _ := strings.Cut(strings.ToLower(codec), ".")
	switch prefix {
	case "avc1", "avc3", "hvc1", "hev1", "av01", "vp09", "vp9", "vp8", "vp08", "dvh1", "dvhe", "vvc1", "vvi1":
		return Video, true
	case "mp4a", "opus", "mp3", "flac", "ac-3", "ec-3", "ac-4", "alaw", "ulaw", "pcm-s16", "pcm-f32", "pcm":
		return Audio, true
	}
	return "", false
}
