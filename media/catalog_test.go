package media

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// catalogTracks is a broadcast with B-frame H.264 and AAC from testdata.
func catalogTracks(t *testing.T) []TrackInfo {
	t.Helper()
	v := loadSample(t, "h264_high.mp4").info
	v.Bitrate = 1_500_000
	a := loadSample(t, "aac_lc_48k_stereo.mp4").info
	a.Bitrate = 64_000
	return []TrackInfo{v, a}
}

// The hang catalog must have exactly the field names @moq/hang 0.3.5's
// zod schema declares (catalog/video.js, audio.js, container.js).
func TestHangCatalogFieldNames(t *testing.T) {
	tracks := catalogTracks(t)
	data, err := BuildHangCatalog(tracks)
	must(t, err)
	var raw map[string]map[string]map[string]map[string]any
	must(t, json.Unmarshal(data, &raw))
	if len(raw) != 2 {
		t.Fatalf("root keys: %v", keys(raw))
	}
	video := raw["video"]["renditions"]["video"]
	audio := raw["audio"]["renditions"]["audio"]
	wantVideo := []string{"bitrate", "codec", "codedHeight", "codedWidth", "container", "description", "framerate", "jitter"}
	wantAudio := []string{"bitrate", "codec", "container", "description", "jitter", "numberOfChannels", "sampleRate"}
	if got := keys(video); strings.Join(got, ",") != strings.Join(wantVideo, ",") {
		t.Errorf("video rendition keys %v, want %v", got, wantVideo)
	}
	if got := keys(audio); strings.Join(got, ",") != strings.Join(wantAudio, ",") {
		t.Errorf("audio rendition keys %v, want %v", got, wantAudio)
	}
	if video["codec"] != "avc1.64000d" || audio["codec"] != "mp4a.40.2" {
		t.Errorf("codecs %v %v", video["codec"], audio["codec"])
	}
	if video["codedWidth"] != 320.0 || video["codedHeight"] != 180.0 || video["framerate"] != 30.0 {
		t.Errorf("video size/rate %v %v %v", video["codedWidth"], video["codedHeight"], video["framerate"])
	}
	// 30 fps with up to 2 reordered frames (x264 -bf 2): 3 frame intervals.
	if video["jitter"] != 100.0 {
		t.Errorf("video jitter %v, want 100", video["jitter"])
	}
	if audio["sampleRate"] != 48000.0 || audio["numberOfChannels"] != 2.0 || audio["jitter"] != 22.0 {
		t.Errorf("audio %v Hz %v ch jitter %v", audio["sampleRate"], audio["numberOfChannels"], audio["jitter"])
	}
	desc := video["description"].(string)
	if desc != strings.ToLower(desc) || desc != hex.EncodeToString(Description(tracks[0])) {
		t.Errorf("description %q is not the lower-case hex avcC", desc)
	}
	if audio["description"] != hex.EncodeToString(tracks[1].AACConfig) {
		t.Errorf("audio description %v", audio["description"])
	}
	for _, r := range []map[string]any{video, audio} {
		c := r["container"].(map[string]any)
		if c["kind"] != "cmaf" || len(c) != 2 {
			t.Errorf("container %v", c)
		}
		init, err := base64.StdEncoding.DecodeString(c["init"].(string))
		must(t, err)
		if !bytes.Equal(init[4:8], []byte("ftyp")) {
			t.Errorf("init does not start with ftyp")
		}
	}
}

func TestHangCatalogRoundTrip(t *testing.T) {
	tracks := catalogTracks(t)
	av1 := loadSample(t, "av1.ivf").info
	av1.Name = "av1"
	opus := loadSample(t, "opus.mp4").info
	opus.Name = "opus"
	tracks = append(tracks, av1, opus)
	data, err := BuildHangCatalog(tracks)
	must(t, err)
	cat, err := ParseHangCatalog(data)
	must(t, err)
	got := cat.MediaTracks()
	if len(got) != 4 {
		t.Fatalf("%d tracks", len(got))
	}
	byName := map[string]CatalogTrack{}
	for _, ct := range got {
		byName[ct.Name] = ct
	}
	for _, ti := range tracks {
		ct := byName[ti.Name]
		codec, _ := CodecString(ti)
		init, _ := InitSegment(ti)
		if ct.Kind != ti.Codec.Kind() || ct.Codec != codec || ct.Packaging != "cmaf" || !bytes.Equal(ct.Init, init) {
			t.Errorf("%s: %+v", ti.Name, ct)
		}
	}
	if byName["av1"].Description != nil || byName["opus"].Description != nil {
		t.Errorf("AV1/Opus renditions carry a description; WebCodecs does not use one")
	}
	if !bytes.Equal(byName["video"].Description, Description(tracks[0])) {
		t.Errorf("video description lost")
	}
}

func TestParseHangCatalogForeign(t *testing.T) {
	// As moq-dev's publishers write it: legacy container by default,
	// unknown root sections and fields.
	in := `{"video":{"renditions":{"v":{"codec":"avc1.42e01e","codedWidth":640,"codedHeight":360,"timeline":{"track":"t"}}},
		"display":{"width":640,"height":360},"rotation":90,"flip":false},
		"audio":{"renditions":{"a":{"codec":"opus","container":{"kind":"loc"},"sampleRate":48000,"numberOfChannels":2}}},
		"scte35":{"anything":true}}`
	cat, err := ParseHangCatalog([]byte(in))
	must(t, err)
	tr := cat.MediaTracks()
	if len(tr) != 2 || tr[0].Packaging != "legacy" || tr[1].Packaging != "loc" || tr[0].Width != 640 {
		t.Fatalf("%+v", tr)
	}
	// A future container kind parses (and is left to the caller to skip).
	if _, err := ParseHangCatalog([]byte(`{"audio":{"renditions":{"a":{"codec":"opus","container":{"kind":"future"},"sampleRate":48000,"numberOfChannels":2}}}}`)); err != nil {
		t.Fatal(err)
	}
}

func TestParseHangCatalogRejects(t *testing.T) {
	tests := map[string]string{
		"not json":             `{`,
		"trailing":             `{} {}`,
		"array root":           `[]`,
		"legacy array video":   `{"video":[{"track":{"name":"v"},"config":{"codec":"avc1"}}]}`,
		"renditions missing":   `{"video":{}}`,
		"no codec":             `{"video":{"renditions":{"v":{"container":{"kind":"legacy"}}}}}`,
		"cmaf without init":    `{"video":{"renditions":{"v":{"codec":"avc1","container":{"kind":"cmaf"}}}}}`,
		"cmaf init not base64": `{"video":{"renditions":{"v":{"codec":"avc1","container":{"kind":"cmaf","init":"%%%"}}}}}`,
		"description not hex":  `{"video":{"renditions":{"v":{"codec":"avc1","description":"AAAA="}}}}`,
		"odd hex":              `{"video":{"renditions":{"v":{"codec":"avc1","description":"abc"}}}}`,
		"negative width":       `{"video":{"renditions":{"v":{"codec":"avc1","codedWidth":-1}}}}`,
		"fractional width":     `{"video":{"renditions":{"v":{"codec":"avc1","codedWidth":1.5}}}}`,
		"audio no rate":        `{"audio":{"renditions":{"a":{"codec":"opus","numberOfChannels":2}}}}`,
		"empty track name":     `{"audio":{"renditions":{"":{"codec":"opus","sampleRate":48000,"numberOfChannels":2}}}}`,
		"codec with space":     `{"audio":{"renditions":{"a":{"codec":"op us","sampleRate":48000,"numberOfChannels":2}}}}`,
		"huge":                 `{"x":"` + strings.Repeat("a", MaxCatalogSize) + `"}`,
		"empty":                ``,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseHangCatalog([]byte(in))
			if !errors.Is(err, ErrInvalidCatalog) {
				t.Fatalf("err = %v, want ErrInvalidCatalog", err)
			}
		})
	}
}

// The MSF catalog must use the MSF draft's field names (and CMSF's
// initData), with the values players need: packaging cmaf, isLive, role,
// base64 init data.
func TestMSFCatalogFieldNames(t *testing.T) {
	tracks := catalogTracks(t)
	at := time.UnixMilli(1746104606044)
	data, err := BuildMSFCatalog(tracks, MSFOptions{GeneratedAt: at})
	must(t, err)
	var raw struct {
		Version      any              `json:"version"`
		GeneratedAt  int64            `json:"generatedAt"`
		Tracks       []map[string]any `json:"tracks"`
		InitDataList []map[string]any `json:"initDataList"`
	}
	must(t, json.Unmarshal(data, &raw))
	var root map[string]any
	must(t, json.Unmarshal(data, &root))
	if got := keys(root); strings.Join(got, ",") != "generatedAt,initDataList,tracks,version" {
		t.Errorf("root keys %v", got)
	}
	if raw.Version != "draft-01" || raw.GeneratedAt != 1746104606044 {
		t.Errorf("version %v generatedAt %v", raw.Version, raw.GeneratedAt)
	}
	// The draft wants the init data list after the tracks array.
	if bytes.Index(data, []byte(`"initDataList"`)) < bytes.Index(data, []byte(`"tracks"`)) {
		t.Errorf("initDataList precedes tracks")
	}
	v, a := raw.Tracks[0], raw.Tracks[1]
	wantV := "bitrate,codec,framerate,height,initData,initRef,isLive,jitter,name,packaging,renderGroup,role,timescale,width"
	wantA := "bitrate,channelConfig,codec,initData,initRef,isLive,jitter,name,packaging,renderGroup,role,samplerate,timescale"
	if got := strings.Join(keys(v), ","); got != wantV {
		t.Errorf("video track keys %s\nwant %s", got, wantV)
	}
	if got := strings.Join(keys(a), ","); got != wantA {
		t.Errorf("audio track keys %s\nwant %s", got, wantA)
	}
	if v["name"] != "video" || v["packaging"] != "cmaf" || v["isLive"] != true || v["role"] != "video" ||
		v["codec"] != "avc1.64000d" || v["width"] != 320.0 || v["height"] != 180.0 || v["bitrate"] != 1.5e6 {
		t.Errorf("video track %v", v)
	}
	if a["role"] != "audio" || a["samplerate"] != 48000.0 || a["channelConfig"] != "2" || a["codec"] != "mp4a.40.2" {
		t.Errorf("audio track %v", a)
	}
	for i, tr := range raw.Tracks {
		init, err := base64.StdEncoding.DecodeString(tr["initData"].(string))
		must(t, err)
		want, _ := InitSegment(tracks[i])
		if !bytes.Equal(init, want) {
			t.Errorf("track %d initData is not the init segment", i)
		}
		ref := raw.InitDataList[i]
		if ref["id"] != tr["initRef"] || ref["type"] != "inline" || ref["data"] != tr["initData"] {
			t.Errorf("initDataList entry %v does not match track %d", ref, i)
		}
	}
}

func TestMSFCatalogRoundTrip(t *testing.T) {
	tracks := catalogTracks(t)
	data, err := BuildMSFCatalog(tracks, MSFOptions{})
	must(t, err)
	if bytes.Contains(data, []byte("generatedAt")) {
		t.Errorf("generatedAt written without a time")
	}
	cat, err := ParseMSFCatalog(data)
	must(t, err)
	got := cat.MediaTracks()
	if len(got) != 2 || got[0].Name != "video" || got[1].Name != "audio" {
		t.Fatalf("%+v", got)
	}
	for i, ct := range got {
		codec, _ := CodecString(tracks[i])
		init, _ := InitSegment(tracks[i])
		if ct.Codec != codec || ct.Packaging != "cmaf" || !bytes.Equal(ct.Init, init) || ct.Timescale != int(tracks[i].Timescale) {
			t.Errorf("track %d: %+v", i, ct)
		}
	}
	if got[1].SampleRate != 48000 || got[1].Channels != 2 || got[0].Width != 320 {
		t.Errorf("media fields lost: %+v", got)
	}
}

func TestParseMSFCatalogDraftVariants(t *testing.T) {
	init := base64.StdEncoding.EncodeToString([]byte("\x00\x00\x00\x08ftyp"))
	// CMSF's example shape: version 1, initData inline on the track.
	v0 := `{"version":1,"tracks":[{"name":"hd","packaging":"cmaf","isLive":true,"initData":"` + init + `","role":"video","codec":"avc1.640028","width":1920,"height":1080}]}`
	cat, err := ParseMSFCatalog([]byte(v0))
	must(t, err)
	if cat.Version != "1" || len(cat.MediaTracks()[0].Init) != 8 {
		t.Errorf("draft-00 catalog: %+v", cat)
	}
	out, err := json.Marshal(cat)
	must(t, err)
	if !bytes.HasPrefix(out, []byte(`{"version":1,`)) {
		t.Errorf("version 1 not written back as a number: %s", out)
	}
	// MSF draft-01 shape: initRef into initDataList, no role (codec says audio).
	v1 := `{"version":"draft-01","tracks":[{"name":"a","packaging":"cmaf","isLive":true,"initRef":"i","codec":"opus","samplerate":48000,"channelConfig":"2"},
		{"name":"tl","packaging":"eventtimeline","eventType":"com.example","mimeType":"application/json"}],
		"initDataList":[{"id":"i","type":"inline","data":"` + init + `"}],"com.example-custom":{"x":1}}`
	cat, err = ParseMSFCatalog([]byte(v1))
	must(t, err)
	mt := cat.MediaTracks()
	if len(mt) != 1 || mt[0].Kind != Audio || len(mt[0].Init) != 8 || mt[0].Channels != 2 {
		t.Errorf("draft-01 catalog: %+v", mt)
	}
	// A terminated broadcast.
	if _, err := ParseMSFCatalog([]byte(`{"version":"draft-01","isComplete":true,"tracks":[]}`)); err != nil {
		t.Error(err)
	}
	// A delta update is refused with its own error.
	_, err = ParseMSFCatalog([]byte(`{"generatedAt":1,"deltaUpdate":[{"op":"remove","tracks":[{"name":"video"}]}]}`))
	if !errors.Is(err, ErrCatalogDelta) {
		t.Errorf("delta update: %v", err)
	}
}

func TestParseMSFCatalogRejects(t *testing.T) {
	tr := func(extra string) string {
		return `{"version":"draft-01","tracks":[{"name":"v","packaging":"cmaf"` + extra + `}]}`
	}
	tests := map[string]string{
		"not json":           `nope`,
		"no tracks":          `{"version":"draft-01"}`,
		"null tracks":        `{"version":"draft-01","tracks":null}`,
		"no version":         `{"tracks":[]}`,
		"bad version":        `{"version":"v9","tracks":[]}`,
		"version 2":          `{"version":2,"tracks":[]}`,
		"no name":            `{"version":"draft-01","tracks":[{"packaging":"cmaf"}]}`,
		"no packaging":       `{"version":"draft-01","tracks":[{"name":"v"}]}`,
		"duplicate name":     `{"version":"draft-01","tracks":[{"name":"v","packaging":"loc"},{"name":"v","packaging":"loc"}]}`,
		"initData garbage":   tr(`,"initData":"!!"`),
		"dangling initRef":   tr(`,"initRef":"x"`),
		"negative bitrate":   tr(`,"bitrate":-5`),
		"string width":       tr(`,"width":"1920"`),
		"too big number":     tr(`,"width":1e300`),
		"channelConfig num":  tr(`,"channelConfig":2`),
		"negative framerate": tr(`,"framerate":-1`),
		"bad codec":          tr(`,"codec":"a\nb"`),
		"bad init list":      `{"version":"draft-01","tracks":[],"initDataList":[{"id":"","type":"inline","data":""}]}`,
		"huge":               `{"version":"draft-01","tracks":[],"pad":"` + strings.Repeat("x", MaxCatalogSize) + `"}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseMSFCatalog([]byte(in))
			if !errors.Is(err, ErrInvalidCatalog) {
				t.Fatalf("err = %v, want ErrInvalidCatalog", err)
			}
		})
	}
}

func TestBuildCatalogsRejectBadTrackSets(t *testing.T) {
	v := loadSample(t, "h264_high.mp4").info
	for name, tracks := range map[string][]TrackInfo{
		"duplicate": {v, v},
		"reserved":  {func() TrackInfo { x := v; x.Name = "catalog"; return x }()},
		"unnamed":   {func() TrackInfo { x := v; x.Name = ""; return x }()},
		"no sps":    {func() TrackInfo { x := v; x.SPS = nil; return x }()},
	} {
		if _, err := BuildHangCatalog(tracks); err == nil {
			t.Errorf("hang %s: no error", name)
		}
		if _, err := BuildMSFCatalog(tracks, MSFOptions{}); err == nil {
			t.Errorf("msf %s: no error", name)
		}
	}
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }
