// Package record writes broadcasts to disk as CMAF fMP4 segments and
// serves them back (GET /api/recordings, /recordings/{broadcast}).
//
// The recorder is one more consumer of the relay's media model: it reads
// each matching broadcast through media.OpenBroadcast like the HLS and
// WHEP egresses, so a slow disk makes the recorder skip groups (the relay
// never waits for a consumer) and never slows live delivery.
//
// Each segment is a self-contained fMP4 file (ftyp+moov of every track,
// then moof+mdat fragments), cut at a key frame of the first video track
// once the segment duration is reached. Each object is written in one
// write(2) as it arrives, so after a crash a segment is readable up to its
// last complete fragment; the next start cuts off the partial one and
// closes the segment in the index.
package record

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqgate/moqgate/moq"
)

// Defaults for the zero values of Config.
const (
	DefaultSegmentDuration = 4 * time.Second
	DefaultRetryAfter      = 10 * time.Second
	// pruneEvery is the retention check interval.
	pruneEvery = 10 * time.Second
)

// Rule turns recording on (or, with Off, off) for the broadcasts under
// Prefix; the longest matching prefix decides.
type Rule struct {
	Prefix string
	Off    bool
}

// Config configures a Recorder.
type Config struct {
	// Dir is the recording root (required).
	Dir string
	// Pattern names segment files below Dir, without the extension:
	// {path} is the broadcast's path, {date} its start day, {time} its
	// start time (UTC). Default DefaultPattern.
	Pattern string
	// SegmentDuration is the minimum segment length; segments are cut at
	// the first key frame past it.
	SegmentDuration time.Duration
	// MaxAge deletes segments that ended longer ago than this (0: keep).
	MaxAge time.Duration
	// MaxBytes deletes the oldest segments while all of them together are
	// larger (0: no limit).
	MaxBytes int64
	// Rules select the broadcasts recorded; none records everything.
	Rules []Rule
	// RetryAfter is how long a broadcast whose recording failed to write
	// waits before it tries again (default DefaultRetryAfter).
	RetryAfter time.Duration
	Logger     *slog.Logger
}

// Stats are the recorder's counters, for metrics.
type Stats struct {
	Recording      int    // broadcasts being recorded now
	Segments       uint64 // segments closed
	Bytes          uint64 // bytes written to segment files
	Errors         uint64 // write failures
	PrunedSegments uint64
	Failing        bool // the last write failed (reset by the next good segment)
}

// Recorder records the relay's broadcasts that match its rules.
type Recorder struct {
	cfg   Config
	src   *moq.LocalClient
	log   *slog.Logger
	store *store

	recording             atomic.Int32
	segments, bytes, errs atomic.Uint64
	pruned                atomic.Uint64
	mu                    sync.Mutex
	failing               bool
	lastErr               string
	open                  map[string]*segProgress // by broadcast: the segment being written
}

// segProgress is how far the open segment of a broadcast is written.
type segProgress struct {
	seg Segment // Start, File, InitSize...; End and Bytes as of the last fragment
}

// New loads the recording index under cfg.Dir (closing segments a crash
// left open); src is the relay's in-process client ("record").
func New(src *moq.LocalClient, cfg Config) (*Recorder, error) {
	if cfg.Dir == "" {
		return nil, errors.New("record: no directory")
	}
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = DefaultSegmentDuration
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := checkPattern(cfg.Pattern); err != nil {
		return nil, err
	}
	r := &Recorder{cfg: cfg, src: src, log: cfg.Logger, open: map[string]*segProgress{}}
	st, err := openStore(cfg.Dir, cfg.Logger)
	if err != nil {
		// An unwritable directory stops recording, not the server.
		r.fail(err)
		st = &store{dir: cfg.Dir, log: cfg.Logger, broadcasts: map[string]*bcIndex{}}
	}
	r.store = st
	return r, nil
}

// wants reports whether the broadcast at path is to be recorded.
func (r *Recorder) wants(path string) bool {
	if len(r.cfg.Rules) == 0 {
		return true
	}
	best, on := -1, false
	for _, rule := range r.cfg.Rules {
		if matchPrefix(path, rule.Prefix) && len(rule.Prefix) > best {
			best, on = len(rule.Prefix), !rule.Off
		}
	}
	return on
}

// matchPrefix: "live" and "live/" match "live/x"; "" matches everything.
func matchPrefix(path, prefix string) bool {
	prefix = strings.Trim(prefix, "/")
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// Run records until ctx is done.
func (r *Recorder) Run(ctx context.Context) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	active := map[string]context.CancelFunc{}
	stop := r.src.Watch("", func(path string, live bool) {
		if !r.wants(path) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if cancel, ok := active[path]; ok && !live {
			cancel()
			delete(active, path)
		}
		if _, ok := active[path]; ok || !live || ctx.Err() != nil {
			return
		}
		bctx, cancel := context.WithCancel(ctx)
		active[path] = cancel
		wg.Go(func() {
			defer cancel()
			r.follow(bctx, path)
		})
	})
	wg.Go(func() { r.pruneLoop(ctx) })
	<-ctx.Done()
	stop()
	mu.Lock()
	for _, cancel := range active {
		cancel()
	}
	mu.Unlock()
	wg.Wait()
}

// follow records the broadcast at path until ctx is done, starting over
// when its tracks change and, after a failure, once RetryAfter has passed.
func (r *Recorder) follow(ctx context.Context, path string) {
	log := r.log.With("broadcast", path)
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := r.recordOnce(ctx, path, log)
		wait := backoff
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errTracksChanged):
			log.Info("record: tracks changed; starting a new segment")
			continue
		case errors.Is(err, moq.ErrTrackEnded):
			return
		case errors.Is(err, errWrite):
			wait = r.cfg.RetryAfter // logged once by fail
		default:
			// Not ready yet (no catalog, a track missing): soon again.
			log.Debug("record: recording stopped", "err", err)
		}
		if time.Since(start) > r.cfg.RetryAfter {
			backoff = 250 * time.Millisecond
		} else {
			backoff = min(2*backoff, r.cfg.RetryAfter)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

// fail records a write failure: the first of a run is logged.
func (r *Recorder) fail(err error) {
	r.errs.Add(1)
	r.mu.Lock()
	first := !r.failing
	r.failing, r.lastErr = true, err.Error()
	r.mu.Unlock()
	if first {
		r.log.Error("record: cannot write the recording; recording stops, live delivery goes on", "dir", r.cfg.Dir, "err", err)
	}
}

// ok clears the failing state after a segment was written.
func (r *Recorder) ok() {
	r.mu.Lock()
	was := r.failing
	r.failing, r.lastErr = false, ""
	r.mu.Unlock()
	if was {
		r.log.Info("record: writing again", "dir", r.cfg.Dir)
	}
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	failing := r.failing
	r.mu.Unlock()
	return Stats{Recording: int(r.recording.Load()), Segments: r.segments.Load(), Bytes: r.bytes.Load(),
		Errors: r.errs.Load(), PrunedSegments: r.pruned.Load(), Failing: failing}
}

func (r *Recorder) pruneLoop(ctx context.Context) {
	if r.cfg.MaxAge <= 0 && r.cfg.MaxBytes <= 0 {
		return
	}
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		r.prune(time.Now())
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (r *Recorder) prune(now time.Time) {
	deleted, err := r.store.prune(now, r.cfg.MaxAge, r.cfg.MaxBytes)
	r.pruned.Add(uint64(len(deleted)))
	if err != nil {
		r.log.Warn("record: retention could not delete every segment", "err", err)
	}
	if len(deleted) > 0 {
		r.log.Debug("record: retention deleted segments", "count", len(deleted))
	}
}

// setOpen publishes the progress of the open segment of path (nil: none).
func (r *Recorder) setOpen(path string, seg *Segment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seg == nil {
		delete(r.open, path)
		return
	}
	cp := *seg
	cp.Keys = slices.Clone(seg.Keys) // the writer appends to its own
	r.open[path] = &segProgress{seg: cp}
}

// openSegment returns the progress of the open segment of path.
func (r *Recorder) openSegment(path string) (Segment, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.open[path]
	if !ok || p.seg.Bytes <= p.seg.InitSize {
		return Segment{}, false
	}
	return p.seg, true
}

// status is the failing flag and the last error.
func (r *Recorder) status() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failing, r.lastErr
}

// Segments returns the recorded segments of path, oldest first: the
// closed ones and, last, the one being written (Open set) if it has a
// complete fragment.
func (r *Recorder) Segments(path string) []Segment {
	segs := r.store.segments(path)
	if s, ok := r.openSegment(path); ok {
		s.Open = true
		segs = append(segs, s)
	}
	return segs
}

// Paths lists the recorded broadcasts.
func (r *Recorder) Paths() []string {
	ps := r.store.paths()
	r.mu.Lock()
	for p := range r.open {
		if !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	r.mu.Unlock()
	slices.Sort(ps)
	return ps
}

func checkPattern(p string) error {
	if p == "" {
		return nil
	}
	if !strings.Contains(p, "{time}") {
		return fmt.Errorf("record: pattern %q must contain {time}", p)
	}
	return nil
}
