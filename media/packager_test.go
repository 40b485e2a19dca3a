package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// recordingSink is a fake ObjectSink (our own interface) that records
// every call and keeps the groups per track.
type recordingSink struct {
	mu     sync.Mutex
	events []string              // "open T", "write T", "close T"
	groups map[string][][][]byte // track -> groups -> objects
	open   map[string]bool
	fail   map[string]error // op+" "+track -> error to return
}

func newRecordingSink() *recordingSink {
	return &recordingSink{groups: map[string][][][]byte{}, open: map[string]bool{}, fail: map[string]error{}}
}

func (s *recordingSink) OpenGroup(track string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail["open "+track]; err != nil {
		return err
	}
	s.events = append(s.events, "open "+track)
	s.groups[track] = append(s.groups[track], nil)
	s.open[track] = true
	return nil
}

func (s *recordingSink) WriteObject(track string, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail["write "+track]; err != nil {
		return err
	}
	if !s.open[track] {
		return fmt.Errorf("write on %q without an open group", track)
	}
	s.events = append(s.events, "write "+track)
	g := s.groups[track]
	g[len(g)-1] = append(g[len(g)-1], append([]byte(nil), payload...))
	return nil
}

func (s *recordingSink) CloseGroup(track string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, "close "+track)
	s.open[track] = false
	return nil
}

func (s *recordingSink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.events
	s.events = nil
	return ev
}

// groupSizes returns the number of objects in each group of track.
func (s *recordingSink) groupSizes(track string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []int
	for _, g := range s.groups[track] {
		n = append(n, len(g))
	}
	return n
}

// countingHandler counts log records by level, to check "once per burst".
type countingHandler struct {
	mu     sync.Mutex
	counts map[slog.Level]int
	msgs   []string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countingHandler) WithGroup(string) slog.Handler            { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[slog.Level]int{}
	}
	h.counts[r.Level]++
	h.msgs = append(h.msgs, r.Message)
	return nil
}

func (h *countingHandler) warnings() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[slog.LevelWarn]
}

// Synthetic tracks: frame contents do not matter to the packager.
var (
	pkgVideo = func() TrackInfo {
		return TrackInfo{Name: "video", Codec: VP8, Timescale: 90000, Width: 320, Height: 180, Framerate: 30}
	}
	pkgAudio = func() TrackInfo {
		return TrackInfo{Name: "audio", Codec: Opus, Timescale: 48000, SampleRate: 48000, Channels: 2}
	}
)

func vf(dts int64, key bool) Frame {
	return Frame{DTS: dts, Keyframe: key, Data: []byte{0x10, 0x02, 0x00}}
}
func af(dts int64) Frame { return Frame{DTS: dts, Keyframe: true, Data: []byte{0xfc}} }

func newTestPackager(t *testing.T, opts PackagerOptions, tracks ...TrackInfo) (*Packager, *recordingSink, *countingHandler) {
	t.Helper()
	sink := newRecordingSink()
	h := &countingHandler{}
	opts.Logger = slog.New(h)
	p := NewPackager(sink, opts)
	must(t, p.SetTracks(tracks))
	sink.take()
	return p, sink, h
}

func TestPackagerPublishesCatalogsOnChangeOnly(t *testing.T) {
	sink := newRecordingSink()
	p := NewPackager(sink, PackagerOptions{Logger: slog.New(&countingHandler{}),
		Now: func() time.Time { return time.UnixMilli(1746104606044) }})
	tracks := []TrackInfo{pkgVideo(), pkgAudio()}
	must(t, p.SetTracks(tracks))
	want := "open catalog.json,write catalog.json,close catalog.json,open catalog,write catalog,close catalog"
	if got := strings.Join(sink.take(), ","); got != want {
		t.Fatalf("events %s\nwant %s", got, want)
	}
	hang, err := ParseHangCatalog(sink.groups[HangCatalogTrack][0][0])
	must(t, err)
	if len(hang.MediaTracks()) != 2 {
		t.Errorf("hang catalog tracks: %+v", hang.MediaTracks())
	}
	msf, err := ParseMSFCatalog(sink.groups[MSFCatalogTrack][0][0])
	must(t, err)
	if len(msf.MediaTracks()) != 2 || msf.GeneratedAt != 1746104606044 {
		t.Errorf("msf catalog: %+v", msf)
	}

	// Same tracks (a fresh copy): nothing happens.
	must(t, p.SetTracks([]TrackInfo{pkgVideo(), pkgAudio()}))
	if ev := sink.take(); len(ev) != 0 {
		t.Errorf("unchanged SetTracks produced %v", ev)
	}
	// A changed parameter: new catalog groups.
	changed := []TrackInfo{pkgVideo(), pkgAudio()}
	changed[0].Bitrate = 2_000_000
	must(t, p.SetTracks(changed))
	if got := strings.Join(sink.take(), ","); got != want {
		t.Errorf("after change: %s", got)
	}
	if n := len(sink.groups[HangCatalogTrack]); n != 2 {
		t.Errorf("%d hang catalog groups, want 2", n)
	}
	if st := p.Stats(); st.CatalogUpdates != 2 || st.ObjectsOut != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestPackagerVideoGroups(t *testing.T) {
	p, sink, _ := newTestPackager(t, PackagerOptions{}, pkgVideo())
	frames := []Frame{vf(0, false), vf(3000, false), vf(6000, true), vf(9000, false), vf(12000, false),
		vf(15000, true), vf(18000, false)}
	for _, f := range frames {
		must(t, p.WriteFrame("video", f))
	}
	if got := fmt.Sprint(sink.groupSizes("video")); got != "[3 2]" {
		t.Errorf("video groups %s, want [3 2]", got)
	}
	st := p.Stats()
	if st.FramesIn != 7 || st.FramesDropped != 2 || st.DroppedBeforeKeyframe != 2 || st.ObjectsOut != 2+5 {
		t.Errorf("stats %+v", st)
	}
	// Every object is one moof+mdat with one sample; the first of a group
	// is a sync sample.
	for gi, g := range sink.groups["video"] {
		for oi, obj := range g {
			f, err := mp4.DecodeFile(bytes.NewReader(obj))
			must(t, err)
			smp := f.Segments[0].Fragments[0].Moof.Traf.Trun.Samples
			if len(smp) != 1 || smp[0].IsSync() != (oi == 0) {
				t.Errorf("group %d object %d: samples %+v", gi, oi, smp)
			}
		}
	}
	must(t, p.Close())
	if ev := sink.take(); ev[len(ev)-1] != "close video" {
		t.Errorf("Close did not end the open group: %v", ev)
	}
	if err := p.WriteFrame("video", vf(21000, true)); !errors.Is(err, ErrPackagerClosed) {
		t.Errorf("write after close: %v", err)
	}
	must(t, p.Close())
}

func TestPackagerAudioFollowsVideo(t *testing.T) {
	p, sink, _ := newTestPackager(t, PackagerOptions{}, pkgVideo(), pkgAudio())
	steps := []struct {
		track string
		f     Frame
	}{
		{"audio", af(0)}, // before any video: audio starts its own group
		{"audio", af(960)},
		{"video", vf(0, true)}, // video group 1
		{"audio", af(1920)},    // audio group 2
		{"video", vf(3000, false)},
		{"audio", af(2880)},
		{"audio", af(3840)},
		{"video", vf(6000, true)}, // video group 2
		{"video", vf(9000, false)},
		{"audio", af(4800)}, // audio group 3
	}
	for _, s := range steps {
		must(t, p.WriteFrame(s.track, s.f))
	}
	if got := fmt.Sprint(sink.groupSizes("audio")); got != "[2 3 1]" {
		t.Errorf("audio groups %s, want [2 3 1]", got)
	}
	if got := fmt.Sprint(sink.groupSizes("video")); got != "[2 2]" {
		t.Errorf("video groups %s, want [2 2]", got)
	}
}

func TestPackagerAudioOnlyGroupDuration(t *testing.T) {
	for _, tc := range []struct {
		dur  time.Duration
		want string
	}{
		{0, "[50 50 20]"}, // default 1 s of 20 ms frames
		{500 * time.Millisecond, "[25 25 25 25 20]"},
	} {
		p, sink, _ := newTestPackager(t, PackagerOptions{AudioGroupDuration: tc.dur}, pkgAudio())
		for i := range 120 {
			must(t, p.WriteFrame("audio", af(int64(i)*960)))
		}
		if got := fmt.Sprint(sink.groupSizes("audio")); got != tc.want {
			t.Errorf("group duration %v: groups %s, want %s", tc.dur, got, tc.want)
		}
	}
}

func TestPackagerBadTimestamps(t *testing.T) {
	p, sink, logs := newTestPackager(t, PackagerOptions{}, pkgVideo())
	must(t, p.WriteFrame("video", vf(90000, true)))
	must(t, p.WriteFrame("video", vf(93000, false)))
	// A burst going backwards, then one jumping 20 s ahead: dropped,
	// counted, one warning per burst.
	for i := range 5 {
		must(t, p.WriteFrame("video", vf(int64(i)*3000, false)))
	}
	must(t, p.WriteFrame("video", vf(96000, false))) // back in order
	must(t, p.WriteFrame("video", vf(96000+20*90000, false)))
	must(t, p.WriteFrame("video", vf(-5, true)))
	must(t, p.WriteFrame("video", vf(99000, false)))
	st := p.Stats()
	if st.DroppedBadTimestamp != 7 || st.FramesDropped != 7 {
		t.Errorf("stats %+v", st)
	}
	if w := logs.warnings(); w != 2 {
		t.Errorf("%d warnings, want 2 (one per burst): %v", w, logs.msgs)
	}
	if got := fmt.Sprint(sink.groupSizes("video")); got != "[4]" {
		t.Errorf("groups %s", got)
	}
}

// A publisher whose clock restarts is followed after a burst of drops.
func TestPackagerResyncsToNewTimeline(t *testing.T) {
	p, sink, _ := newTestPackager(t, PackagerOptions{}, pkgVideo(), pkgAudio())
	for i := range 10 {
		must(t, p.WriteFrame("video", vf(900000+int64(i)*3000, i == 0)))
		must(t, p.WriteFrame("audio", af(480000+int64(i)*960)))
	}
	// Restart at 0: dropped until resyncAfterDrops, then followed.
	for i := range resyncAfterDrops + 20 {
		must(t, p.WriteFrame("video", vf(int64(i)*3000, i%30 == 0)))
		must(t, p.WriteFrame("audio", af(int64(i)*960)))
	}
	v := sink.groupSizes("video")
	a := sink.groupSizes("audio")
	// Video resumes at the first key frame after the resync (frame 60).
	if fmt.Sprint(v) != "[10 20]" {
		t.Errorf("video groups %v, want [10 20]", v)
	}
	if len(a) < 2 || a[len(a)-1] == 0 {
		t.Errorf("audio groups %v: audio did not resume", a)
	}
	st := p.Stats()
	if st.DroppedBadTimestamp != 2*(resyncAfterDrops-1) {
		t.Errorf("stats %+v", st)
	}
}

func TestPackagerErrors(t *testing.T) {
	p, sink, _ := newTestPackager(t, PackagerOptions{}, pkgVideo())
	if err := p.WriteFrame("nope", vf(0, true)); !errors.Is(err, ErrUnknownTrack) {
		t.Errorf("unknown track: %v", err)
	}
	if err := p.WriteFrame("video", Frame{DTS: 0, Keyframe: true}); err == nil {
		t.Error("empty frame accepted")
	}
	// A sink failure is reported, and the track restarts at a key frame.
	sink.fail["write video"] = errors.New("boom")
	if err := p.WriteFrame("video", vf(0, true)); err == nil {
		t.Error("sink error not reported")
	}
	delete(sink.fail, "write video")
	must(t, p.WriteFrame("video", vf(3000, false))) // no group: dropped
	must(t, p.WriteFrame("video", vf(6000, true)))
	if got := fmt.Sprint(sink.groupSizes("video")); got != "[0 1]" {
		t.Errorf("groups %s", got)
	}
	if err := p.SetTracks([]TrackInfo{{Name: "x", Codec: "theora", Timescale: 1}}); err == nil {
		t.Error("bad tracks accepted")
	}
	if st := p.Stats(); st.FramesIn != 5 || st.FramesDropped != 4 {
		t.Errorf("stats %+v", st)
	}
}

// Changing the tracks ends the open groups and makes the video wait for a
// key frame under the new parameters.
func TestPackagerSetTracksMidStream(t *testing.T) {
	p, sink, _ := newTestPackager(t, PackagerOptions{}, pkgVideo(), pkgAudio())
	must(t, p.WriteFrame("video", vf(0, true)))
	must(t, p.WriteFrame("audio", af(0)))
	v2 := pkgVideo()
	v2.Width, v2.Height = 640, 360
	must(t, p.SetTracks([]TrackInfo{v2, pkgAudio()}))
	ev := strings.Join(sink.take(), ",")
	for _, want := range []string{"close video", "close audio"} {
		if !strings.Contains(ev, want) {
			t.Errorf("events %s: missing %s", ev, want)
		}
	}
	if strings.Index(ev, "close video") > strings.Index(ev, "open catalog.json") {
		t.Errorf("media groups must end before the new catalog: %s", ev)
	}
	must(t, p.WriteFrame("video", vf(3000, false))) // waits for a key frame
	must(t, p.WriteFrame("video", vf(6000, true)))
	must(t, p.WriteFrame("audio", af(960)))
	if got := fmt.Sprint(sink.groupSizes("video")); got != "[1 1]" {
		t.Errorf("video groups %s", got)
	}
	// Dropping a track: writing to it is an error now.
	must(t, p.SetTracks([]TrackInfo{pkgAudio()}))
	if err := p.WriteFrame("video", vf(9000, true)); !errors.Is(err, ErrUnknownTrack) {
		t.Errorf("removed track: %v", err)
	}
}

func TestPackagerConcurrentWriters(t *testing.T) {
	p, sink, _ := newTestPackager(t, PackagerOptions{}, pkgVideo(), pkgAudio())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 300 {
			_ = p.WriteFrame("video", vf(int64(i)*3000, i%30 == 0))
		}
	})
	wg.Go(func() {
		for i := range 500 {
			_ = p.WriteFrame("audio", af(int64(i)*960))
		}
	})
	wg.Go(func() {
		for range 50 {
			_ = p.Stats()
		}
	})
	wg.Wait()
	if st := p.Stats(); st.FramesIn != 800 || st.ObjectsOut != 800+2 { // + the two catalogs
		t.Errorf("stats %+v", st)
	}
	if n := len(sink.groupSizes("video")); n != 10 {
		t.Errorf("%d video groups, want 10", n)
	}
}

// TestPackagerSubscriberView plays a real stream through the Packager and
// decodes what a subscriber gets: the init segment from the hang catalog
// followed by every object of the video and the audio track, each checked
// with ffprobe.
func TestPackagerSubscriberView(t *testing.T) {
	ffprobe := needFFprobe(t)
	v := loadSample(t, "h264_high.mp4")
	a := loadSample(t, "aac_lc_48k_stereo.mp4")
	p, sink, _ := newTestPackager(t, PackagerOptions{}, v.info, a.info)
	// Interleave by time as an ingest would, without durations.
	vi, ai := 0, 0
	for vi < len(v.frames) || ai < len(a.frames) {
		useVideo := ai >= len(a.frames) || (vi < len(v.frames) &&
			v.frames[vi].DTS*int64(a.info.Timescale) <= a.frames[ai].DTS*int64(v.info.Timescale))
		if useVideo {
			f := v.frames[vi]
			f.Duration = 0
			must(t, p.WriteFrame("video", f))
			vi++
		} else {
			f := a.frames[ai]
			f.Duration = 0
			must(t, p.WriteFrame("audio", f))
			ai++
		}
	}
	must(t, p.Close())
	cat, err := ParseHangCatalog(sink.groups[HangCatalogTrack][0][0])
	must(t, err)
	dir := t.TempDir()
	for _, ct := range cat.MediaTracks() {
		src := map[string]testSample{"video": v, "audio": a}[ct.Name]
		var file bytes.Buffer
		file.Write(ct.Init)
		for _, g := range sink.groups[ct.Name] {
			for _, obj := range g {
				file.Write(obj)
			}
		}
		path := filepath.Join(dir, ct.Name+".mp4")
		must(t, os.WriteFile(path, file.Bytes(), 0o644))
		out, err := exec.Command(ffprobe, "-v", "error", "-count_packets", "-count_frames", "-show_entries",
			"stream=codec_name,nb_read_packets,nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: ffprobe: %v %s", ct.Name, err, out)
		}
		// Decoded frame count: AAC decoders hold back nothing; H.264 frames
		// all come out at EOF.
		want := fmt.Sprintf("%s,%d,%d", map[string]string{"video": "h264", "audio": "aac"}[ct.Name], len(src.frames), len(src.frames))
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s: ffprobe %q, want %q", ct.Name, got, want)
		}
	}
	if got := sink.groupSizes("video"); fmt.Sprint(got) != "[15 15]" {
		t.Errorf("video groups %v, want two GOPs of 15", got)
	}
	if got := sink.groupSizes("audio"); len(got) != 2 {
		t.Errorf("audio groups %v, want 2 (one per video group)", got)
	}
}

func TestPackagerAddTrackKeepsGroups(t *testing.T) {
	p, sink, _ := newTestPackager(t, PackagerOptions{}, pkgVideo(), pkgAudio())
	must(t, p.WriteFrame("video", vf(0, true)))
	must(t, p.WriteFrame("audio", af(0)))
	extra := pkgAudio()
	extra.Name = "audio-opus"
	must(t, p.SetTracks([]TrackInfo{pkgVideo(), pkgAudio(), extra}))
	ev := strings.Join(sink.take(), ",")
	if strings.Contains(ev, "close video") || strings.Contains(ev, "close audio") {
		t.Errorf("adding a track closed groups: %s", ev)
	}
	if !strings.Contains(ev, "open catalog.json") || !strings.Contains(ev, "open catalog,") {
		t.Errorf("no catalog update: %s", ev)
	}
	// The video group goes on without waiting for a key frame.
	must(t, p.WriteFrame("video", vf(3000, false)))
	must(t, p.WriteFrame("audio-opus", af(960)))
	if got := fmt.Sprint(sink.groupSizes("video")); got != "[2]" {
		t.Errorf("video groups %s, want [2]", got)
	}
	hang, err := ParseHangCatalog(sink.groups[HangCatalogTrack][len(sink.groups[HangCatalogTrack])-1][0])
	must(t, err)
	if n := len(hang.MediaTracks()); n != 3 {
		t.Errorf("catalog has %d tracks, want 3", n)
	}
	// The same set again is a no-op; removing the extra ends only its
	// group, and the others go on.
	sink.take()
	must(t, p.SetTracks([]TrackInfo{pkgVideo(), pkgAudio(), extra}))
	if ev := sink.take(); len(ev) != 0 {
		t.Errorf("unchanged SetTracks produced %v", ev)
	}
	must(t, p.SetTracks([]TrackInfo{pkgVideo(), pkgAudio()}))
	ev = strings.Join(sink.take(), ",")
	if strings.Contains(ev, "close video") || strings.Contains(ev, "close audio,") || !strings.HasSuffix(ev, "close audio-opus") ||
		!strings.Contains(ev, "open catalog,") {
		t.Errorf("removing a track: %s, want new catalogs and only its group closed", ev)
	}
	must(t, p.WriteFrame("video", vf(6000, false)))
	if got := fmt.Sprint(sink.groupSizes("video")); got != "[3]" {
		t.Errorf("video groups %s after the removal, want [3]", got)
	}
	// A changed track is still a full reset.
	changed := pkgVideo()
	changed.Width *= 2
	must(t, p.SetTracks([]TrackInfo{changed, pkgAudio()}))
	if ev := strings.Join(sink.take(), ","); !strings.Contains(ev, "close video") {
		t.Errorf("changing a track did not restart the groups: %s", ev)
	}
}
