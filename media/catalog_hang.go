package media

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// The hang catalog (track "catalog.json"), as @moq/hang 0.3.5's zod schema
// (catalog/root.js, video.js, audio.js, container.js) defines it and
// @moq/watch 0.4.6 reads it. Renditions are WebCodecs decoder configs keyed
// by track name.

// HangCatalog is the root of a hang catalog. Unknown root sections are
// ignored when parsing (the schema is a loose object).
type HangCatalog struct {
	Video *HangVideo `json:"video,omitempty"`
	Audio *HangAudio `json:"audio,omitempty"`
}

// HangVideo is the catalog's video section.
type HangVideo struct {
	Renditions map[string]HangVideoConfig `json:"renditions"`
	Display    *HangDisplay               `json:"display,omitempty"`
	Rotation   float64                    `json:"rotation,omitempty"`
	Flip       bool                       `json:"flip,omitempty"`
}

// HangDisplay is the size to render the video at.
type HangDisplay struct {
	Width  int64 `json:"width"`
	Height int64 `json:"height"`
}

// HangAudio is the catalog's audio section.
type HangAudio struct {
	Renditions map[string]HangAudioConfig `json:"renditions"`
}

// HangContainer says how each frame of a rendition is framed. Kind is
// "legacy" (the default when absent), "cmaf" (Init = base64 ftyp+moov, each
// frame a moof+mdat) or "loc"; other kinds parse but must be ignored.
type HangContainer struct {
	Kind string `json:"kind"`
	Init string `json:"init,omitempty"`
}

// Hang container kinds.
const (
	HangContainerLegacy = "legacy"
	HangContainerCMAF   = "cmaf"
	HangContainerLOC    = "loc"
)

// HangVideoConfig mirrors WebCodecs VideoDecoderConfig plus hang's fields.
type HangVideoConfig struct {
	Codec               string        `json:"codec"`
	Container           HangContainer `json:"container"`
	Description         string        `json:"description,omitempty"` // lower-case hex
	CodedWidth          int64         `json:"codedWidth,omitempty"`
	CodedHeight         int64         `json:"codedHeight,omitempty"`
	DisplayAspectWidth  int64         `json:"displayAspectWidth,omitempty"`
	DisplayAspectHeight int64         `json:"displayAspectHeight,omitempty"`
	Framerate           float64       `json:"framerate,omitempty"`
	Bitrate             int64         `json:"bitrate,omitempty"`
	OptimizeForLatency  *bool         `json:"optimizeForLatency,omitempty"`
	// Jitter is the longest wait for the next frame, in ms (rounded up).
	Jitter int64 `json:"jitter,omitempty"`
}

// HangAudioConfig mirrors WebCodecs AudioDecoderConfig plus hang's fields.
type HangAudioConfig struct {
	Codec            string        `json:"codec"`
	Container        HangContainer `json:"container"`
	Description      string        `json:"description,omitempty"`
	SampleRate       int64         `json:"sampleRate"`
	NumberOfChannels int64         `json:"numberOfChannels"`
	Bitrate          int64         `json:"bitrate,omitempty"`
	Jitter           int64         `json:"jitter,omitempty"`
}

// BuildHangCatalog returns the hang catalog JSON for tracks, every
// rendition CMAF-packaged with its init segment inline.
func BuildHangCatalog(tracks []TrackInfo) ([]byte, error) {
	if err := checkTrackSet(tracks); err != nil {
		return nil, err
	}
	var cat HangCatalog
	for _, t := range tracks {
		codec, err := CodecString(t)
		if err != nil {
			return nil, fmt.Errorf("media: hang catalog, track %q: %w", t.Name, err)
		}
		init, err := InitSegment(t)
		if err != nil {
			return nil, err
		}
		container := HangContainer{Kind: HangContainerCMAF, Init: base64.StdEncoding.EncodeToString(init)}
		if t.Codec.Kind() == Video {
			vc := HangVideoConfig{
				Codec:     codec,
				Container: container,
				Framerate: t.Framerate,
				Bitrate:   int64(max(t.Bitrate, 0)),
				Jitter:    videoJitterMs(t),
			}
			if t.Codec != AV1 { // WebCodecs: "description is not used" for AV1
				vc.Description = hex.EncodeToString(Description(t))
			}
			if w, h, err := VideoSize(t); err == nil {
				vc.CodedWidth, vc.CodedHeight = int64(w), int64(h)
			}
			if cat.Video == nil {
				cat.Video = &HangVideo{Renditions: map[string]HangVideoConfig{}}
			}
			cat.Video.Renditions[t.Name] = vc
			continue
		}
		rate, ch := audioRateChannels(t)
		if rate <= 0 || ch <= 0 {
			return nil, fmt.Errorf("media: hang catalog, track %q: sample rate or channel count unknown", t.Name)
		}
		ac := HangAudioConfig{
			Codec:            codec,
			Container:        container,
			Description:      hex.EncodeToString(Description(t)),
			SampleRate:       int64(rate),
			NumberOfChannels: int64(ch),
			Bitrate:          int64(max(t.Bitrate, 0)),
			Jitter:           audioJitterMs(t),
		}
		if cat.Audio == nil {
			cat.Audio = &HangAudio{Renditions: map[string]HangAudioConfig{}}
		}
		cat.Audio.Renditions[t.Name] = ac
	}
	return json.Marshal(cat)
}

// ParseHangCatalog parses and validates a full hang catalog: the payload
// of object 0 of a catalog.json group. Later objects in a group are JSON
// merge patches (RFC 7396) and are not handled here; callers read the
// latest group's first object. The legacy array forms of old hang
// versions are rejected.
func ParseHangCatalog(data []byte) (*HangCatalog, error) {
	if err := checkCatalogSize(data); err != nil {
		return nil, err
	}
	var cat HangCatalog
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cat); err != nil {
		return nil, catalogErr("hang: %v", err)
	}
	if dec.More() {
		return nil, catalogErr("hang: trailing data after the JSON object")
	}
	if err := cat.validate(); err != nil {
		return nil, err
	}
	return &cat, nil
}

func (c *HangCatalog) validate() error {
	n := 0
	if v := c.Video; v != nil {
		if v.Renditions == nil {
			return catalogErr("hang: video.renditions missing")
		}
		n += len(v.Renditions)
		if d := v.Display; d != nil {
			if err := checkCount("video.display.width", d.Width); err != nil {
				return err
			}
			if err := checkCount("video.display.height", d.Height); err != nil {
				return err
			}
		}
		if math.IsNaN(v.Rotation) || math.IsInf(v.Rotation, 0) {
			return catalogErr("hang: video.rotation is not finite")
		}
		for name, r := range v.Renditions {
			if err := r.validate(name); err != nil {
				return err
			}
			v.Renditions[name] = r // keeps the defaulted container kind
		}
	}
	if a := c.Audio; a != nil {
		if a.Renditions == nil {
			return catalogErr("hang: audio.renditions missing")
		}
		n += len(a.Renditions)
		for name, r := range a.Renditions {
			if err := r.validate(name); err != nil {
				return err
			}
			a.Renditions[name] = r
		}
	}
	if n > maxCatalogTracks {
		return catalogErr("hang: %d renditions exceed the limit of %d", n, maxCatalogTracks)
	}
	return nil
}

func (r *HangVideoConfig) validate(name string) error {
	if err := validateHangCommon(name, r.Codec, &r.Container, r.Description); err != nil {
		return err
	}
	for what, v := range map[string]int64{"codedWidth": r.CodedWidth, "codedHeight": r.CodedHeight,
		"displayAspectWidth": r.DisplayAspectWidth, "displayAspectHeight": r.DisplayAspectHeight,
		"bitrate": r.Bitrate, "jitter": r.Jitter} {
		if err := checkCount(fmt.Sprintf("hang: video rendition %q: %s", name, what), v); err != nil {
			return err
		}
	}
	return checkFloat(fmt.Sprintf("hang: video rendition %q: framerate", name), r.Framerate)
}

func (r *HangAudioConfig) validate(name string) error {
	if err := validateHangCommon(name, r.Codec, &r.Container, r.Description); err != nil {
		return err
	}
	if r.SampleRate <= 0 || r.NumberOfChannels <= 0 {
		return catalogErr("hang: audio rendition %q: sampleRate and numberOfChannels are required", name)
	}
	for what, v := range map[string]int64{"sampleRate": r.SampleRate, "numberOfChannels": r.NumberOfChannels,
		"bitrate": r.Bitrate, "jitter": r.Jitter} {
		if err := checkCount(fmt.Sprintf("hang: audio rendition %q: %s", name, what), v); err != nil {
			return err
		}
	}
	return nil
}

func validateHangCommon(name, codec string, c *HangContainer, description string) error {
	if err := checkTrackName(name); err != nil {
		return err
	}
	if !validCodecString(codec) {
		return catalogErr("hang: rendition %q: invalid codec %q", name, truncate(codec))
	}
	if c.Kind == "" {
		c.Kind = HangContainerLegacy // the schema's default
	}
	if err := checkString("hang: container kind", c.Kind); err != nil {
		return err
	}
	if c.Kind == HangContainerCMAF {
		if _, err := decodeBase64(fmt.Sprintf("hang: rendition %q: container.init", name), c.Init); err != nil {
			return err
		}
	}
	if _, err := decodeHex(fmt.Sprintf("hang: rendition %q: description", name), description); err != nil {
		return err
	}
	return nil
}

// MediaTracks lists the catalog's renditions, video first, each sorted by name.
// Init and Description are decoded (ParseHangCatalog validated them).
func (c *HangCatalog) MediaTracks() []CatalogTrack {
	var out []CatalogTrack
	if c.Video != nil {
		for _, name := range sortedKeys(c.Video.Renditions) {
			r := c.Video.Renditions[name]
			out = append(out, CatalogTrack{
				Name: name, Kind: Video, Codec: r.Codec, Packaging: hangKind(r.Container),
				Init: hangInit(r.Container), Description: mustHex(r.Description),
				Width: int(r.CodedWidth), Height: int(r.CodedHeight),
				Bitrate: int(r.Bitrate), Framerate: r.Framerate,
			})
		}
	}
	if c.Audio != nil {
		for _, name := range sortedKeys(c.Audio.Renditions) {
			r := c.Audio.Renditions[name]
			out = append(out, CatalogTrack{
				Name: name, Kind: Audio, Codec: r.Codec, Packaging: hangKind(r.Container),
				Init: hangInit(r.Container), Description: mustHex(r.Description),
				SampleRate: int(r.SampleRate), Channels: int(r.NumberOfChannels), Bitrate: int(r.Bitrate),
			})
		}
	}
	return out
}

func hangKind(c HangContainer) string {
	if c.Kind == "" {
		return HangContainerLegacy
	}
	return c.Kind
}

func hangInit(c HangContainer) []byte {
	if c.Kind != HangContainerCMAF {
		return nil
	}
	b, _ := base64.StdEncoding.DecodeString(c.Init)
	return b
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	if len(b) == 0 {
		return nil
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// videoJitterMs is hang's jitter for a track whose frames go out as they
// arrive: one frame interval, times the reorder depth plus one when
// B-frames hold frames back. 0 (omitted) when the frame rate is unknown.
func videoJitterMs(t TrackInfo) int64 {
	if t.Framerate <= 0 || t.Framerate > 1000 {
		return 0
	}
	return int64(math.Ceil(1000 / t.Framerate * float64(1+reorderDepth(t))))
}

// audioJitterMs is one audio frame's duration in ms, rounded up.
func audioJitterMs(t TrackInfo) int64 {
	if t.Timescale == 0 {
		return 0
	}
	return int64(math.Ceil(float64(defaultFrameDuration(t)) * 1000 / float64(t.Timescale)))
}

// audioRateChannels returns the sample rate and channel count to advertise,
// from TrackInfo or, when it lacks them, the codec config.
func audioRateChannels(t TrackInfo) (rate, channels int) {
	rate, channels = t.SampleRate, t.Channels
	if t.Codec == AAC {
		if hdr, err := parseASC(t.AACConfig); err == nil {
			if rate <= 0 {
				rate = hdr.SamplingFrequency
			}
			if channels <= 0 {
				channels = int(hdr.ChannelConfiguration)
			}
		}
	}
	if t.Codec == Opus {
		if rate <= 0 {
			rate = 48000
		}
		if channels <= 0 {
			channels = 2
		}
	}
	return rate, channels
}

// checkTrackSet validates the track list a catalog is built from.
func checkTrackSet(tracks []TrackInfo) error {
	if len(tracks) > maxCatalogTracks {
		return fmt.Errorf("media: %d tracks exceed the limit of %d", len(tracks), maxCatalogTracks)
	}
	seen := make(map[string]bool, len(tracks))
	for _, t := range tracks {
		if t.Name == "" || len(t.Name) > maxCatalogNameLen {
			return fmt.Errorf("media: invalid track name %q", truncate(t.Name))
		}
		if t.Name == HangCatalogTrack || t.Name == MSFCatalogTrack {
			return fmt.Errorf("media: track name %q is reserved for a catalog", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("media: duplicate track name %q", t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}
