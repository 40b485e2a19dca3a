package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// errTracksChanged ends a recording session whose broadcast's tracks or
// init segments changed: the next one starts with the new ones.
var errTracksChanged = errors.New("record: tracks changed")

// errWrite wraps a failure to write the recording (disk full, directory
// not writable).
var errWrite = errors.New("record: write")

// Subscriber priority of the recorder: after every live viewer (lower is
// more urgent), since a late recording loses nothing a viewer would see.
const priorityRecord = 200

// chunkQueue bounds the objects waiting for the writer per broadcast; a
// track reader blocked on it falls behind in the relay's cache, which
// skips ahead (a discontinuity in the recording), never the live path.
const chunkQueue = 256

// item is one object for the writer.
type item struct {
	track    string
	payload  []byte
	first    float64 // decode time of its first sample, seconds
	end      float64 // decode time after its last sample, seconds
	key      bool    // starts with a key frame
	start    bool    // first object of a group
	disc     bool    // something was lost before it
	cutTrack bool    // segments are cut on this track
}

// session is one recording run of a broadcast with one set of tracks.
type session struct {
	r      *Recorder
	path   string
	log    *slog.Logger
	tracks []media.CatalogTrack
	cut    string // the track segments are cut on

	w         *segWriter
	segMedia  float64 // media time the open segment starts at
	wall0     time.Time
	media0    float64
	haveClock bool
	lastEnd   time.Time // end of the previous segment
	forceCut  bool
	failed    bool // a write failed: the failing state stays
}

// recordOnce records path with the tracks of its current catalog until
// the broadcast ends, the tracks change, a write fails or ctx is done.
func (r *Recorder) recordOnce(ctx context.Context, path string, log *slog.Logger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	br, err := media.OpenBroadcast(ctx, r.src, path, media.BroadcastOptions{
		Subscribe: moq.SubscribeOptions{Priority: priorityRecord}, Logger: log})
	if err != nil {
		return err
	}
	defer br.Close()
	v, err := br.NextCatalog(ctx)
	if err != nil {
		return err
	}
	tracks := v.CMAF()
	if len(tracks) == 0 {
		return fmt.Errorf("record: catalog %s has no CMAF track", br.CatalogTrack())
	}
	slices.SortStableFunc(tracks, func(a, b media.CatalogTrack) int { // video first
		return strings.Compare(string(b.Kind), string(a.Kind))
	})
	go func() {
		for {
			nv, err := br.NextCatalog(ctx)
			if err != nil {
				return
			}
			if !sameTracks(tracks, nv.CMAF()) {
				cancel(errTracksChanged)
				return
			}
		}
	}()
	items := make(chan item, chunkQueue)
	var wg sync.WaitGroup
	for i, t := range tracks {
		fr, err := br.Track(ctx, t.Name, moq.SubscribeOptions{Priority: priorityRecord})
		if err != nil {
			cancel(err)
			wg.Wait()
			return err
		}
		wg.Go(func() {
			defer fr.Close()
			// A track that ended leaves the others to finish: what they
			// have queued is still written.
			err := readTrack(ctx, fr, i == 0, items)
			if err != nil && !errors.Is(err, moq.ErrTrackEnded) && ctx.Err() == nil {
				cancel(err)
			}
		})
	}
	go func() { wg.Wait(); close(items) }()
	log.Info("record: recording", "tracks", len(tracks), "dir", r.cfg.Dir)
	r.recording.Add(1)
	defer r.recording.Add(-1)
	s := &session{r: r, path: path, log: log, tracks: tracks, cut: tracks[0].Name}
	err = s.write(ctx, items)
	cancel(err)
	wg.Wait()
	s.close()
	if err != nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause // tracks changed, a track failed
	}
	return moq.ErrTrackEnded
}

// sameTracks reports whether two catalog versions have the same CMAF
// tracks with the same init segments (order aside).
func sameTracks(a, b []media.CatalogTrack) bool {
	if len(a) != len(b) {
		return false
	}
	for _, t := range a {
		i := slices.IndexFunc(b, func(u media.CatalogTrack) bool { return u.Name == t.Name })
		if i < 0 || !bytes.Equal(b[i].Init, t.Init) {
			return false
		}
	}
	return true
}

// readTrack feeds the objects of one track to the writer.
func readTrack(ctx context.Context, fr *media.FrameReader, cutTrack bool, out chan<- item) error {
	for {
		c, err := fr.Next(ctx)
		if err != nil {
			if errors.Is(err, moq.ErrTrackEnded) {
				return moq.ErrTrackEnded
			}
			return err
		}
		if len(c.Frames) == 0 {
			continue
		}
		if c.InitChanged {
			return errTracksChanged
		}
		ts := float64(fr.Info().Timescale)
		last := c.Frames[len(c.Frames)-1]
		it := item{track: fr.Name(), payload: c.Payload, first: float64(c.Frames[0].DTS) / ts,
			end: float64(last.DTS+last.Duration) / ts, key: c.Frames[0].Keyframe,
			start: c.GroupStart, disc: c.Discontinuity, cutTrack: cutTrack}
		select {
		case out <- it:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// write takes objects until every track ended, ctx is done or a write
// fails.
func (s *session) write(ctx context.Context, items <-chan item) error {
	for {
		var it item
		var ok bool
		select {
		case it, ok = <-items:
			if !ok {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
		if err := s.add(it); err != nil {
			s.failed = true
			s.r.fail(err)
			return fmt.Errorf("%w: %w", errWrite, err)
		}
	}
}

// add writes one object, opening a new segment at a key frame of the cut
// track when the open one is long enough.
func (s *session) add(it item) error {
	if it.cutTrack {
		if it.disc {
			s.forceCut = true
		}
		if it.start && it.key && (s.w == nil || s.forceCut || it.first-s.segMedia >= s.r.cfg.SegmentDuration.Seconds()) {
			if err := s.rotate(it.first); err != nil {
				return err
			}
		}
	}
	if s.w == nil {
		return nil // before the first key frame
	}
	if it.cutTrack && it.start && it.key && s.w.cw.n > s.w.seg.InitSize {
		// The index learns each GOP before its first byte is written, so
		// that a segment repaired after a crash keeps the key frames of
		// every GOP it holds (a repair drops those past the file's end).
		s.w.seg.Keys = append(s.w.seg.Keys, KeyPoint{Off: s.w.cw.n, T: it.first})
		if err := s.r.store.progress(s.w.seg); err != nil {
			return err
		}
	}
	if err := s.w.write(it.track, it.payload); err != nil {
		return err
	}
	s.r.bytes.Add(uint64(len(it.payload)))
	if it.cutTrack {
		s.w.seg.End = s.wall(it.end)
	}
	s.w.seg.Bytes = s.w.cw.n
	s.r.setOpen(s.path, &s.w.seg)
	return nil
}

// wall maps a media time of the session to wall-clock time.
func (s *session) wall(t float64) time.Time {
	return s.wall0.Add(time.Duration((t - s.media0) * float64(time.Second)))
}

// rotate closes the open segment and opens one starting at media time t.
func (s *session) rotate(t float64) error {
	if err := s.finish(); err != nil {
		return err
	}
	if !s.haveClock {
		s.wall0, s.media0, s.haveClock = time.Now(), t, true
	}
	start := s.wall(t)
	if start.Before(s.lastEnd) {
		start = s.lastEnd // the index keeps segments in order
	}
	file, err := segmentFile(s.r.cfg.Dir, s.r.cfg.Pattern, s.path, start)
	if err != nil {
		return err
	}
	mt := make([]media.FMP4MuxTrack, 0, len(s.tracks))
	for _, tr := range s.tracks {
		mt = append(mt, media.FMP4MuxTrack{Name: tr.Name, Init: tr.Init})
	}
	// The file (with its init) first, so that the index's open record
	// names a file a restart can repair.
	w, err := createSegment(s.r.cfg.Dir, Segment{Path: s.path, File: file, Start: start, End: start, MediaStart: t}, mt)
	if err != nil {
		return err
	}
	// The segment starts with this key frame: the open record has it.
	w.seg.Keys = []KeyPoint{{Off: w.seg.InitSize, T: t}}
	if w.seg, err = s.r.store.begin(w.seg); err != nil {
		w.discard()
		return err
	}
	s.w, s.segMedia, s.forceCut = w, t, false
	return nil
}

// finish closes the open segment, if any, in the index.
func (s *session) finish() error {
	if s.w == nil {
		return nil
	}
	w := s.w
	s.w = nil
	s.r.setOpen(s.path, nil)
	seg, err := w.close(w.seg.End)
	if err == nil && seg.Bytes <= seg.InitSize {
		// Nothing but the init: not worth an entry.
		w.discard()
		s.r.store.abandon(seg)
		return nil
	}
	if err == nil {
		err = s.r.store.finish(seg)
	}
	if err != nil {
		return err
	}
	s.lastEnd = seg.End
	s.r.segments.Add(1)
	if !s.failed {
		s.r.ok()
	}
	return nil
}

// close ends the session: the open segment is closed in the index.
func (s *session) close() {
	if err := s.finish(); err != nil {
		s.r.fail(err)
	}
}
