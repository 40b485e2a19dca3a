package record

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/mediatest"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// recordClip publishes loops of the 1 s test clip (one GOP a loop) into a
// relay with a recorder of 1 s segments, and returns the recorder once the
// broadcast has ended and the recorder stopped.
func recordClip(t *testing.T, clip string, loops int) *Recorder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, publish, done := startRecorder(t, ctx, clip, Config{Dir: t.TempDir(), SegmentDuration: time.Second})
	if err := publish(loops); err != nil {
		t.Fatal(err)
	}
	// The broadcast ended: the recorder closes its last segment.
	for r.Stats().Recording > 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	return r
}

// startRecorder runs a recorder with cfg on a relay until ctx ends (done
// is closed then); publish plays loops of the 1 s test clip (a file of
// media/testdata) as live/rec.
func startRecorder(t *testing.T, ctx context.Context, clipName string, cfg Config) (r *Recorder, publish func(loops int) error, done chan struct{}) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			cfg.Logger = slog.Default()
		}
	}
	relay := moq.NewRelay(moq.RelayConfig{Logger: cfg.Logger})
	r, err := New(relay.Local("record"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	clip, err := mediatest.LoadClip(mediatest.TestdataPath(clipName))
	if err != nil {
		t.Fatal(err)
	}
	return r, func(loops int) error {
		return clip.Publish(ctx, relay, "live/rec", mediatest.PublishOptions{Loops: loops, Logger: cfg.Logger})
	}, done
}

// TestFailAndRecover: a directory that cannot be written makes the
// recorder fail with one log line however often it retries; once it can
// write again, recording resumes and the flag clears.
func TestFailAndRecover(t *testing.T) {
	t.Parallel()
	blocker := filepath.Join(t.TempDir(), "blocker")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, publish, done := startRecorder(t, ctx, "fmp4_h264_aac.mp4", Config{Dir: filepath.Join(blocker, "rec"), SegmentDuration: time.Second,
		RetryAfter: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	go publish(0)
	waitFor(t, ctx, "several failures", func() bool { return r.Stats().Errors >= 3 })
	if st := r.Stats(); !st.Failing || st.Segments != 0 {
		t.Errorf("while failing: %+v", st)
	}
	if failing, msg := r.status(); !failing || !strings.Contains(msg, "not a directory") {
		t.Errorf("status %v %q", failing, msg)
	}
	if n := strings.Count(logs.String(), "cannot write the recording"); n != 1 {
		t.Errorf("%d failure log lines, want 1:\n%s", n, logs.String())
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "a segment after the recovery", func() bool { return r.Stats().Segments > 0 && !r.Stats().Failing })
	if !strings.Contains(logs.String(), "record: writing again") {
		t.Errorf("no recovery log line:\n%s", logs.String())
	}
	cancel()
	<-done
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not in time", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use (a log sink).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRecordClip: every segment is a self-contained fMP4 starting with a
// video key frame, the segments follow each other without a gap, and the
// index read back from disk is the one in memory.
func TestRecordClip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		clip         string
		video, audio media.Codec
	}{
		{"fmp4_h264_aac.mp4", media.H264, media.AAC},
		{"fmp4_h265_opus.mp4", media.H265, media.Opus},
		{"fmp4_av1_opus.mp4", media.AV1, media.Opus},
		{"fmp4_vp9_mp3.mp4", media.VP9, media.MP3},
	} {
		t.Run(tc.clip, func(t *testing.T) {
			t.Parallel()
			recordAndCheck(t, tc.clip, tc.video, tc.audio)
		})
	}
}

func recordAndCheck(t *testing.T, clip string, video, audio media.Codec) {
	r := recordClip(t, clip, 5)
	segs := r.Segments("live/rec")
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3: %+v", len(segs), segs)
	}
	for i, s := range segs {
		if s.Open {
			t.Errorf("segment %d still open", i)
		}
		data, err := os.ReadFile(filepath.Join(r.cfg.Dir, s.File))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != s.Bytes {
			t.Errorf("segment %d: %d bytes on disk, index says %d", i, len(data), s.Bytes)
		}
		first, end := checkSegment(t, data, video, audio)
		decodes(t, filepath.Join(r.cfg.Dir, s.File))
		if got := s.Duration().Seconds(); abs(got-(end-first)) > 0.05 {
			t.Errorf("segment %d: index duration %.3f s, media %.3f s", i, got, end-first)
		}
		if i > 0 {
			if gap := s.Start.Sub(segs[i-1].End); gap < 0 || gap > 40*time.Millisecond {
				t.Errorf("segment %d starts %s after the previous one ends", i, gap)
			}
			if abs(s.MediaStart-(segs[i-1].MediaStart+segs[i-1].Duration().Seconds())) > 0.04 {
				t.Errorf("segment %d: media start %.3f does not continue %.3f+%.3f", i, s.MediaStart,
					segs[i-1].MediaStart, segs[i-1].Duration().Seconds())
			}
		}
	}
	checkOpenRecords(t, r.cfg.Dir, len(segs)) // before openStore rewrites the index
	st, err := openStore(r.cfg.Dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	again := st.segments("live/rec")
	if len(again) != len(segs) {
		t.Fatalf("index on disk has %d segments, memory %d", len(again), len(segs))
	}
	for i := range again {
		if again[i].ID != segs[i].ID || !again[i].Start.Equal(segs[i].Start) || again[i].Bytes != segs[i].Bytes {
			t.Errorf("segment %d on disk %+v, in memory %+v", i, again[i], segs[i])
		}
	}
	if st := r.Stats(); st.Segments != uint64(len(segs)) || st.Errors != 0 || st.Failing {
		t.Errorf("stats %+v", st)
	}
}

// checkOpenRecords: each segment's open record on disk already names the
// key frame the segment starts with, so that a segment repaired after a
// crash in its first GOP keeps it.
func checkOpenRecords(t *testing.T, dir string, segments int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "live", "rec", indexName))
	if err != nil {
		t.Fatal(err)
	}
	opens := 0
	for line := range strings.Lines(string(data)) {
		var seg Segment
		if err := json.Unmarshal([]byte(line), &seg); err != nil {
			t.Fatalf("index line %q: %v", line, err)
		}
		if !seg.Open {
			continue
		}
		opens++
		if len(seg.Keys) == 0 || seg.Keys[0] != (KeyPoint{Off: seg.InitSize, T: seg.MediaStart}) {
			t.Errorf("open record of segment %d: key frames %+v, want the first at %d, %.3f", seg.ID, seg.Keys, seg.InitSize, seg.MediaStart)
		}
	}
	if opens < segments {
		t.Errorf("%d open records for %d segments", opens, segments)
	}
}

// checkSegment demuxes a segment: the two tracks' codecs, video first
// starting with a key frame, decode times increasing per track; it returns
// the video track's first decode time and end, in seconds.
func checkSegment(t *testing.T, data []byte, video, audio media.Codec) (first, end float64) {
	t.Helper()
	d := media.NewFMP4Demuxer(bytes.NewReader(data), 0)
	tracks, err := d.Tracks()
	if err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 2 || tracks[0].Codec != video || tracks[1].Codec != audio {
		t.Fatalf("tracks %+v", tracks)
	}
	last := map[string]int64{}
	n := 0
	for {
		name, f, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if name == tracks[0].Name {
			ts := float64(tracks[0].Timescale)
			if n == 0 {
				if !f.Keyframe {
					t.Error("segment does not start with a key frame")
				}
				first = float64(f.DTS) / ts
			}
			end = float64(f.DTS+f.Duration) / ts
			n++
		}
		if prev, ok := last[name]; ok && f.DTS <= prev {
			t.Errorf("track %s: DTS %d after %d", name, f.DTS, prev)
		}
		last[name] = f.DTS
	}
	if n == 0 {
		t.Fatal("no video frame")
	}
	return first, end
}

// decodes has ffmpeg decode the file: no error, not a word on stderr.
func decodes(t *testing.T, file string) {
	t.Helper()
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", file, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("ffmpeg decoding %s: %v\n%s", filepath.Base(file), err, out)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// TestRepair: a segment a crash left open, its last fragment cut short,
// is cut back to its last complete fragment and closed in the index.
func TestRepair(t *testing.T) {
	t.Parallel()
	r := recordClip(t, "fmp4_h264_aac.mp4", 3)
	segs := r.Segments("live/rec")
	if len(segs) == 0 {
		t.Fatal("nothing recorded")
	}
	src := segs[len(segs)-1]
	data, err := os.ReadFile(filepath.Join(r.cfg.Dir, src.File))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	open := src
	open.File, open.Open, open.End, open.Bytes = "live/rec/crashed.mp4", true, open.Start, 0
	if err := os.MkdirAll(filepath.Join(dir, "live/rec"), 0o755); err != nil {
		t.Fatal(err)
	}
	cut := len(data) * 2 / 3 // inside a fragment, video ones after it lost
	if err := os.WriteFile(filepath.Join(dir, open.File), data[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	st := &store{dir: dir, log: slog.Default(), broadcasts: map[string]*bcIndex{}}
	if err := st.appendLocked(open); err != nil {
		t.Fatal(err)
	}
	// A line cut short by the crash follows.
	f, _ := os.OpenFile(st.indexFile("live/rec"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":7,"path":"live/r`)
	f.Close()

	st, err = openStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	got := st.segments("live/rec")
	if len(got) != 1 || !got[0].Repaired || got[0].Open {
		t.Fatalf("after repair: %+v", got)
	}
	fixed, err := os.ReadFile(filepath.Join(dir, open.File))
	if err != nil {
		t.Fatal(err)
	}
	keep, _ := completeFragments(data[:cut])
	if int64(len(fixed)) != keep || got[0].Bytes != keep || keep >= int64(cut) || keep <= src.InitSize {
		t.Fatalf("repaired file %d bytes (index %d), want %d of %d", len(fixed), got[0].Bytes, keep, cut)
	}
	if len(got[0].Keys) == 0 || len(got[0].Keys) > len(src.Keys) || got[0].Keys[len(got[0].Keys)-1].Off >= keep {
		t.Errorf("repaired key frames %+v of %+v (file cut to %d)", got[0].Keys, src.Keys, keep)
	}
	first, end := checkSegment(t, fixed, media.H264, media.AAC)
	if d := got[0].Duration().Seconds(); abs(d-(end-first)) > 0.001 || d >= src.Duration().Seconds() {
		t.Errorf("repaired duration %.3f s, media %.3f s, whole segment %.3f s", d, end-first, src.Duration().Seconds())
	}
	// The rewritten index is clean: loading it again changes nothing.
	st2, err := openStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if again := st2.segments("live/rec"); len(again) != 1 || again[0].Bytes != keep {
		t.Errorf("second load: %+v", again)
	}
}

// newTestStore opens a store on an empty directory.
func newTestStore(t *testing.T) (string, *store) {
	t.Helper()
	dir := t.TempDir()
	st, err := openStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return dir, st
}

// TestPrune: retention by age, then by bytes, deletes the oldest segments
// and only those, files and index entries.
func TestPrune(t *testing.T) {
	t.Parallel()
	dir, st := newTestStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		path := []string{"a", "b/c"}[i%2]
		start := t0.Add(time.Duration(i) * 10 * time.Second)
		file, err := segmentFile(dir, "", path, start)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, file)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, file), make([]byte, 100), 0o644); err != nil {
			t.Fatal(err)
		}
		seg, err := st.begin(Segment{Path: path, File: file, Start: start})
		if err != nil {
			t.Fatal(err)
		}
		seg.End, seg.Bytes = start.Add(10*time.Second), 100
		if err := st.finish(seg); err != nil {
			t.Fatal(err)
		}
	}
	// Segments end at 10, 20, ... 60 s; at 65 s with 30 s of age, the
	// three ending before 35 s go.
	del, err := st.prune(t0.Add(65*time.Second), 30*time.Second, 0)
	if err != nil || len(del) != 3 {
		t.Fatalf("by age: deleted %d (%v)", len(del), err)
	}
	for _, s := range del {
		if !s.End.Before(t0.Add(35 * time.Second)) {
			t.Errorf("deleted a segment ending at %s", s.End)
		}
		if _, err := os.Stat(filepath.Join(dir, s.File)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file %s still there", s.File)
		}
	}
	// 300 bytes left; a 150 byte budget deletes the two oldest.
	del, err = st.prune(t0.Add(65*time.Second), 0, 150)
	if err != nil || len(del) != 2 || !del[0].Start.Equal(t0.Add(30*time.Second)) || !del[1].Start.Equal(t0.Add(40*time.Second)) {
		t.Fatalf("by bytes: deleted %+v (%v)", del, err)
	}
	st2, err := openStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	left := append(st2.segments("a"), st2.segments("b/c")...)
	if len(left) != 1 || !left[0].Start.Equal(t0.Add(50*time.Second)) {
		t.Fatalf("left on disk: %+v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, left[0].File)); err != nil {
		t.Error(err)
	}
}

func TestWants(t *testing.T) {
	r := &Recorder{cfg: Config{Rules: []Rule{{Prefix: "live/"}, {Prefix: "live/private", Off: true}, {Prefix: "live/private/ok"}}}}
	for path, want := range map[string]bool{"live/a": true, "live": true, "livex/a": false, "other": false,
		"live/private/x": false, "live/private": false, "live/private/ok": true, "live/private/okx": false} {
		if got := r.wants(path); got != want {
			t.Errorf("wants(%q) = %v", path, got)
		}
	}
	if !(&Recorder{}).wants("anything") {
		t.Error("no rules: record everything")
	}
}

func TestDirOf(t *testing.T) {
	for in, want := range map[string]string{"live/test": "live/test", "a/../b": "a/%2E%2E%00/b",
		"x//y": "x/%00/y", "a b/c%d": "a%20b/c%25d"} {
		if got := dirOf(in); got != filepath.FromSlash(want) {
			t.Errorf("dirOf(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := segmentFile(t.TempDir(), "../{time}", "a", time.Now()); err == nil {
		t.Error("a pattern climbing out of the directory was accepted")
	}
}

// TestIndexCompaction: the open and progress records of closed segments
// are dropped from the index file once they are many, and a load reads
// the same segments.
func TestIndexCompaction(t *testing.T) {
	t.Parallel()
	dir, st := newTestStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 600 // 2 stale lines each: one rewrite at 500
	for i := range n {
		start := t0.Add(time.Duration(i) * time.Second)
		seg, err := st.begin(Segment{Path: "a", File: fmt.Sprintf("a/%d.mp4", i), Start: start, InitSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		seg.Keys = []KeyPoint{{Off: 10}, {Off: 20}}
		if err := st.progress(seg); err != nil {
			t.Fatal(err)
		}
		seg.End, seg.Bytes = start.Add(time.Second), 30
		if err := st.finish(seg); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(st.indexFile("a"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(data, []byte("\n")); lines != 500+3*(n-500) {
		t.Errorf("%d lines in the index, want %d", lines, 500+3*(n-500))
	}
	st2, err := openStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	segs := st2.segments("a")
	if len(segs) != n || segs[n-1].ID != n-1 || len(segs[0].Keys) != 2 {
		t.Fatalf("%d segments loaded, last %+v", len(segs), segs[len(segs)-1])
	}
}
