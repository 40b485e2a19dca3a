package record

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSplitRecordingPath(t *testing.T) {
	for in, want := range map[string][3]string{
		"live/test":                           {"live/test", "range", "0"},
		"live/test/index.m3u8":                {"live/test", "playlist", "0"},
		"live/test/segments/12.mp4":           {"live/test", "segment", "12"},
		"live/test/segments/x.mp4":            {"live/test/segments/x.mp4", "range", "0"},
		"/live/test/":                         {"live/test", "range", "0"},
		"a/segments/3.mp4/index.m3u8":         {"a/segments/3.mp4", "playlist", "0"},
		"a/segments/18446744073709551616.mp4": {"a/segments/18446744073709551616.mp4", "range", "0"},
	} {
		p, k, id := splitRecordingPath(in)
		if p != want[0] || k != want[1] || want[2] != strconv.FormatUint(id, 10) {
			t.Errorf("%q: %q %q %d, want %v", in, p, k, id, want)
		}
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	q := url.Values{"start": {t0.Format(time.RFC3339)}, "duration": {"90s"}}
	from, to, err := window(q)
	if err != nil || !from.Equal(t0) || !to.Equal(t0.Add(90*time.Second)) {
		t.Errorf("start+duration: %s %s %v", from, to, err)
	}
	q = url.Values{"start": {t0.Format(time.RFC3339)}, "duration": {"2.5"}}
	if _, to, err := window(q); err != nil || !to.Equal(t0.Add(2500*time.Millisecond)) {
		t.Errorf("seconds: %s %v", to, err)
	}
	for _, bad := range []url.Values{{"start": {"now"}}, {"duration": {"5s"}}, {"start": {t0.Format(time.RFC3339)}, "duration": {"-5s"}},
		{"start": {t0.Format(time.RFC3339)}, "duration": {"1e300"}}, {"end": {"x"}}} {
		if _, _, err := window(bad); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}

// TestPlaylist: one EXT-X-MAP per init, a discontinuity where the
// timeline restarts, byte ranges after the init, VOD or EVENT.
func TestPlaylist(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	seg := func(id uint64, start, media float64, hash string) Segment {
		s := t0.Add(time.Duration(start * float64(time.Second)))
		return Segment{ID: id, Start: s, End: s.Add(2 * time.Second), MediaStart: media, InitHash: hash, InitSize: 1000, Bytes: 5000}
	}
	segs := []Segment{seg(0, 0, 10, "a"), seg(1, 2, 12, "a"), seg(2, 30, 0, "a"), seg(3, 32, 2, "b")}
	pl := playlist(segs, "?jwt=T", false)
	for _, want := range []string{
		"#EXT-X-PLAYLIST-TYPE:VOD\n", "#EXT-X-TARGETDURATION:2\n",
		"#EXT-X-MAP:URI=\"segments/0.mp4?jwt=T\",BYTERANGE=\"1000@0\"\n#EXT-X-PROGRAM-DATE-TIME:2026-12-03T16:00:00.000Z\n#EXTINF:2.000,\n#EXT-X-BYTERANGE:4000@1000\nsegments/0.mp4?jwt=T\n#EXTINF:2.000,",
		"#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"segments/2.mp4?jwt=T\"", "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"segments/3.mp4?jwt=T\"",
		"#EXT-X-ENDLIST\n",
	} {
		if !strings.Contains(pl, want) {
			t.Errorf("playlist lacks %q:\n%s", want, pl)
		}
	}
	if n := strings.Count(pl, "#EXT-X-MAP"); n != 3 {
		t.Errorf("%d maps", n)
	}
	ev := playlist(segs[:1], "", true)
	if !strings.Contains(ev, "#EXT-X-PLAYLIST-TYPE:EVENT") || strings.Contains(ev, "ENDLIST") {
		t.Errorf("event playlist:\n%s", ev)
	}
	if r := ranges(segs); len(r) != 2 || !r[0].End.Equal(t0.Add(4*time.Second)) || !r[1].Start.Equal(t0.Add(30*time.Second)) {
		t.Errorf("ranges %+v", r)
	}
	if got := pick(segs, t0.Add(3*time.Second), t0.Add(31*time.Second)); len(got) != 2 || got[0].ID != 1 || got[1].ID != 2 {
		t.Errorf("pick %+v", got)
	}
}

// TestCutRange: a range starts at the key frame at or before its start
// and ends at the key frame at or after its end, across segments, and
// stops where the timeline breaks.
func TestCutRange(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	// Segments of 4 s with a key frame every second, 1000 bytes a GOP.
	seg := func(id uint64, start float64) Segment {
		s := Segment{ID: id, Start: at(start), End: at(start + 4), MediaStart: 100 + start, InitSize: 500, Bytes: 4500, InitHash: "h"}
		for i := range 4 {
			s.Keys = append(s.Keys, KeyPoint{Off: 500 + int64(i)*1000, T: 100 + start + float64(i)})
		}
		return s
	}
	segs := []Segment{seg(0, 0), seg(1, 4), seg(2, 8)}
	pieces, start, end := cutRange(segs[:2], at(2.5), at(5.2))
	if len(pieces) != 2 || pieces[0].off != 2500 || pieces[0].end != 4500 || pieces[1].off != 500 || pieces[1].end != 2500 ||
		!start.Equal(at(2)) || !end.Equal(at(6)) {
		t.Errorf("2.5-5.2 s: %+v %s %s", pieces, start, end)
	}
	pieces, start, end = cutRange(segs[1:2], at(5), at(6))
	if len(pieces) != 1 || pieces[0].off != 1500 || pieces[0].end != 2500 || !start.Equal(at(5)) || !end.Equal(at(6)) {
		t.Errorf("5-6 s: %+v %s %s", pieces, start, end)
	}
	pieces, _, end = cutRange(segs, time.Time{}, time.Time{})
	if len(pieces) != 3 || pieces[0].off != 500 || pieces[2].end != 4500 || !end.Equal(at(12)) {
		t.Errorf("everything: %+v", pieces)
	}
	broken := append([]Segment{}, segs...)
	broken[2].MediaStart = 0 // a new run of the publisher
	if pieces, _, end = cutRange(broken, time.Time{}, time.Time{}); len(pieces) != 2 || !end.Equal(at(8)) {
		t.Errorf("timeline break: %d pieces to %s", len(pieces), end)
	}
	noKeys := segs[0]
	noKeys.Keys = nil // repaired
	if pieces, start, _ = cutRange([]Segment{noKeys}, at(2.5), at(3)); pieces[0].off != 500 || pieces[0].end != 4500 || !start.Equal(at(0)) {
		t.Errorf("without key frames: %+v", pieces)
	}
}
