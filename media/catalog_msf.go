package media

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The MSF catalog (track "catalog") per draft-ietf-moq-msf (root and track
// fields) with CMSF's "cmaf" packaging and per-track "initData"
// (draft-ietf-moq-cmsf). Field names are the drafts' exactly.

// MSFVersion is the catalog version this package writes. The MSF draft
// asks for "draft-XX"; the drafts' examples, @moq/msf and Shaka Player all
// use or accept "draft-01".
const MSFVersion = "draft-01"

// MSF packaging and role values used here.
const (
	MSFPackagingCMAF = "cmaf"
	MSFPackagingLOC  = "loc"
	MSFRoleVideo     = "video"
	MSFRoleAudio     = "audio"
)

// MSFCatalog is an independent (non-delta) MSF catalog.
type MSFCatalog struct {
	// Version is "draft-XX"; the number 1 (draft-00 and the CMSF example)
	// is read as "1" and written back as the number.
	Version      MSFCatalogVersion `json:"version"`
	GeneratedAt  int64             `json:"generatedAt,omitempty"` // ms since the Unix epoch
	IsComplete   bool              `json:"isComplete,omitempty"`
	Tracks       []MSFTrack        `json:"tracks"`
	InitDataList []MSFInitData     `json:"initDataList,omitempty"`
}

// MSFCatalogVersion is the catalog's version field, a string or (older
// drafts) the number 1.
type MSFCatalogVersion string

// MarshalJSON writes "1" as a number, anything else as a string.
func (v MSFCatalogVersion) MarshalJSON() ([]byte, error) {
	if v == "1" {
		return []byte("1"), nil
	}
	return json.Marshal(string(v))
}

// UnmarshalJSON accepts a string or the number 1.
func (v *MSFCatalogVersion) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("1")) {
		*v = "1"
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("version must be a string or 1: %w", err)
	}
	*v = MSFCatalogVersion(s)
	return nil
}

// MSFInitData is an Initialization Data List entry.
type MSFInitData struct {
	ID   string `json:"id"`
	Type string `json:"type"` // "inline" (base64 data), "track-property", "object-property"
	Data string `json:"data"`
}

// MSFTrack is one track object. Fields not listed are ignored when
// parsing, as the draft requires.
type MSFTrack struct {
	Namespace     string   `json:"namespace,omitempty"`
	Name          string   `json:"name"`
	Packaging     string   `json:"packaging"`
	EventType     string   `json:"eventType,omitempty"`
	IsLive        *bool    `json:"isLive,omitempty"`
	TargetLatency int64    `json:"targetLatency,omitempty"`
	Role          string   `json:"role,omitempty"`
	Label         string   `json:"label,omitempty"`
	RenderGroup   *int64   `json:"renderGroup,omitempty"`
	AltGroup      *int64   `json:"altGroup,omitempty"`
	InitData      string   `json:"initData,omitempty"` // base64 CMAF header (CMSF)
	InitRef       string   `json:"initRef,omitempty"`  // id in initDataList (MSF)
	Depends       []string `json:"depends,omitempty"`
	Codec         string   `json:"codec,omitempty"`
	MimeType      string   `json:"mimeType,omitempty"`
	Framerate     float64  `json:"framerate,omitempty"`
	Timescale     int64    `json:"timescale,omitempty"`
	Bitrate       int64    `json:"bitrate,omitempty"`
	AvgBitrate    int64    `json:"avgBitrate,omitempty"`
	Width         int64    `json:"width,omitempty"`
	Height        int64    `json:"height,omitempty"`
	Samplerate    int64    `json:"samplerate,omitempty"`
	ChannelConfig string   `json:"channelConfig,omitempty"`
	DisplayWidth  int64    `json:"displayWidth,omitempty"`
	DisplayHeight int64    `json:"displayHeight,omitempty"`
	Lang          string   `json:"lang,omitempty"`
	TrackDuration int64    `json:"trackDuration,omitempty"`
	// Jitter (ms) is not an MSF field; @moq/watch reads it like hang's.
	Jitter int64 `json:"jitter,omitempty"`
}

// MSFOptions tunes BuildMSFCatalog.
type MSFOptions struct {
	// GeneratedAt, when set, becomes the catalog's generatedAt.
	GeneratedAt time.Time
}

// BuildMSFCatalog returns the MSF catalog JSON for tracks: each a live
// CMAF track (packaging "cmaf", isLive true, role video/audio, render
// group 1) whose init segment is given twice, as CMSF's inline initData
// and as an initDataList entry referenced by initRef (the current MSF
// draft), so readers of either draft find it.
func BuildMSFCatalog(tracks []TrackInfo, opts MSFOptions) ([]byte, error) {
	if err := checkTrackSet(tracks); err != nil {
		return nil, err
	}
	cat := MSFCatalog{Version: MSFVersion, Tracks: []MSFTrack{}}
	if !opts.GeneratedAt.IsZero() {
		cat.GeneratedAt = opts.GeneratedAt.UnixMilli()
	}
	live, group := true, int64(1)
	for i, t := range tracks {
		codec, err := CodecString(t)
		if err != nil {
			return nil, fmt.Errorf("media: MSF catalog, track %q: %w", t.Name, err)
		}
		init, err := InitSegment(t)
		if err != nil {
			return nil, err
		}
		b64 := base64.StdEncoding.EncodeToString(init)
		ref := "init" + strconv.Itoa(i)
		mt := MSFTrack{
			Name:        t.Name,
			Packaging:   MSFPackagingCMAF,
			IsLive:      &live,
			RenderGroup: &group,
			InitData:    b64,
			InitRef:     ref,
			Codec:       codec,
			Timescale:   int64(t.Timescale),
			Bitrate:     int64(max(t.Bitrate, 0)),
		}
		cat.InitDataList = append(cat.InitDataList, MSFInitData{ID: ref, Type: "inline", Data: b64})
		if t.Codec.Kind() == Video {
			mt.Role = MSFRoleVideo
			mt.Framerate = t.Framerate
			mt.Jitter = videoJitterMs(t)
			if w, h, err := VideoSize(t); err == nil {
				mt.Width, mt.Height = int64(w), int64(h)
			}
		} else {
			mt.Role = MSFRoleAudio
			rate, ch := audioRateChannels(t)
			if rate <= 0 || ch <= 0 {
				return nil, fmt.Errorf("media: MSF catalog, track %q: sample rate or channel count unknown", t.Name)
			}
			mt.Samplerate = int64(rate)
			mt.ChannelConfig = strconv.Itoa(ch)
			mt.Jitter = audioJitterMs(t)
		}
		cat.Tracks = append(cat.Tracks, mt)
	}
	return json.Marshal(cat)
}

// ParseMSFCatalog parses and validates an independent MSF catalog: the
// payload of object 0 of a catalog group. Delta updates (later objects)
// are refused with ErrCatalogDelta; callers read the latest group's first
// object. initRef entries of type "inline" are checked; other types point
// outside the JSON and are left to the caller.
func ParseMSFCatalog(data []byte) (*MSFCatalog, error) {
	if err := checkCatalogSize(data); err != nil {
		return nil, err
	}
	var root map[string]json.RawMessage
	if err := json.Unmarshal(data, &root); err != nil {
		return nil, catalogErr("msf: %v", err)
	}
	if _, ok := root["deltaUpdate"]; ok {
		return nil, ErrCatalogDelta
	}
	if raw, ok := root["tracks"]; !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, catalogErr("msf: tracks missing")
	}
	if _, ok := root["version"]; !ok {
		return nil, catalogErr("msf: version missing")
	}
	var cat MSFCatalog
	if err := json.Unmarshal(data, &cat); err != nil {
		return nil, catalogErr("msf: %v", err)
	}
	if err := cat.validate(); err != nil {
		return nil, err
	}
	return &cat, nil
}

func (c *MSFCatalog) validate() error {
	if v := string(c.Version); v != "1" && !(strings.HasPrefix(v, "draft-") && len(v) <= 16) {
		return catalogErr("msf: unsupported version %q", truncate(v))
	}
	if c.GeneratedAt < 0 || c.GeneratedAt > maxSafeInteger {
		return catalogErr("msf: generatedAt %d out of range", c.GeneratedAt)
	}
	if len(c.Tracks) > maxCatalogTracks || len(c.InitDataList) > maxCatalogTracks {
		return catalogErr("msf: more than %d tracks or init data entries", maxCatalogTracks)
	}
	inits := make(map[string]MSFInitData, len(c.InitDataList))
	for _, d := range c.InitDataList {
		if d.ID == "" || d.Type == "" {
			return catalogErr("msf: initDataList entry without id or type")
		}
		if err := checkString("msf: initDataList id", d.ID); err != nil {
			return err
		}
		if _, dup := inits[d.ID]; dup {
			return catalogErr("msf: duplicate initDataList id %q", truncate(d.ID))
		}
		if d.Type == "inline" {
			if _, err := decodeBase64(fmt.Sprintf("msf: initDataList %q data", truncate(d.ID)), d.Data); err != nil {
				return err
			}
		}
		inits[d.ID] = d
	}
	seen := make(map[[2]string]bool, len(c.Tracks))
	for i := range c.Tracks {
		if err := c.Tracks[i].validate(inits); err != nil {
			return err
		}
		key := [2]string{c.Tracks[i].Namespace, c.Tracks[i].Name}
		if seen[key] {
			return catalogErr("msf: duplicate track name %q", truncate(c.Tracks[i].Name))
		}
		seen[key] = true
	}
	return nil
}

func (t *MSFTrack) validate(inits map[string]MSFInitData) error {
	if err := checkTrackName(t.Name); err != nil {
		return err
	}
	name := truncate(t.Name)
	if t.Packaging == "" {
		return catalogErr("msf: track %q: packaging missing", name)
	}
	for what, s := range map[string]string{"namespace": t.Namespace, "packaging": t.Packaging,
		"eventType": t.EventType, "role": t.Role, "label": t.Label, "mimeType": t.MimeType,
		"channelConfig": t.ChannelConfig, "lang": t.Lang, "initRef": t.InitRef} {
		if err := checkString(fmt.Sprintf("msf: track %q: %s", name, what), s); err != nil {
			return err
		}
	}
	if len(t.Depends) > maxCatalogTracks {
		return catalogErr("msf: track %q: too many dependencies", name)
	}
	if t.Codec != "" && !validCodecString(t.Codec) {
		return catalogErr("msf: track %q: invalid codec %q", name, truncate(t.Codec))
	}
	for what, v := range map[string]int64{"targetLatency": t.TargetLatency, "timescale": t.Timescale,
		"bitrate": t.Bitrate, "avgBitrate": t.AvgBitrate, "width": t.Width, "height": t.Height,
		"samplerate": t.Samplerate, "displayWidth": t.DisplayWidth, "displayHeight": t.DisplayHeight,
		"trackDuration": t.TrackDuration, "jitter": t.Jitter} {
		if err := checkCount(fmt.Sprintf("msf: track %q: %s", name, what), v); err != nil {
			return err
		}
	}
	if err := checkFloat(fmt.Sprintf("msf: track %q: framerate", name), t.Framerate); err != nil {
		return err
	}
	if t.InitData != "" {
		if _, err := decodeBase64(fmt.Sprintf("msf: track %q: initData", name), t.InitData); err != nil {
			return err
		}
	}
	if t.InitRef != "" {
		if _, ok := inits[t.InitRef]; !ok {
			return catalogErr("msf: track %q: initRef %q not in initDataList", name, truncate(t.InitRef))
		}
	}
	return nil
}

// MediaTracks lists the catalog's audio and video tracks in catalog order
// (tracks whose role is video or audio, or, without a role, whose codec
// says so). Init is the inline initData, else the inline initDataList
// entry initRef names.
func (c *MSFCatalog) MediaTracks() []CatalogTrack {
	inits := make(map[string]MSFInitData, len(c.InitDataList))
	for _, d := range c.InitDataList {
		inits[d.ID] = d
	}
	var out []CatalogTrack
	for _, t := range c.Tracks {
		var kind Kind
		switch t.Role {
		case MSFRoleVideo:
			kind = Video
		case MSFRoleAudio, "audiodescription":
			kind = Audio
		case "":
			k, ok := kindFromCodecString(t.Codec)
			if !ok {
				continue
			}
			kind = k
		default:
			continue
		}
		ct := CatalogTrack{
			Name: t.Name, Kind: kind, Codec: t.Codec, Packaging: t.Packaging,
			Width: int(t.Width), Height: int(t.Height), SampleRate: int(t.Samplerate),
			Bitrate: int(t.Bitrate), Framerate: t.Framerate, Timescale: int(t.Timescale),
		}
		if ch, err := strconv.Atoi(t.ChannelConfig); err == nil && ch > 0 {
			ct.Channels = ch
		}
		if t.InitData != "" {
			ct.Init, _ = base64.StdEncoding.DecodeString(t.InitData)
		} else if d, ok := inits[t.InitRef]; ok && d.Type == "inline" {
			ct.Init, _ = base64.StdEncoding.DecodeString(d.Data)
		}
		out = append(out, ct)
	}
	return out
}
