package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/moqgate/moqgate/moq"
)

// The broadcast reader is the consumer side of the Packager: it follows a
// broadcast's catalog (hang, else MSF) through a moq.Source (the relay in
// memory or a remote session) and reads its CMAF tracks as frames, each
// with the init segment of the catalog version it was written against.

const (
	// catalogTimeout bounds each catalog subscription attempt by default.
	catalogTimeout = 10 * time.Second
	// catalogSyncWait bounds how long a track reader waits, at the start
	// of a group, for a newer catalog to be handled: a publisher writes a
	// new catalog before the frames it describes.
	catalogSyncWait = time.Second
)

// ErrNotInCatalog ends a FrameReader whose track left the catalog.
var ErrNotInCatalog = errors.New("media: track is not in the catalog")

// BroadcastOptions configures OpenBroadcast.
type BroadcastOptions struct {
	// Subscribe are the options of the catalog subscription.
	Subscribe moq.SubscribeOptions
	// Timeout bounds each subscription attempt (catalog and tracks); zero
	// means 10 s.
	Timeout time.Duration
	// Logger receives notices of unusable catalogs and objects; nil means
	// slog.Default().
	Logger *slog.Logger
}

// CatalogVersion is one version of a broadcast's catalog.
type CatalogVersion struct {
	// Group is the catalog group that carried it.
	Group  uint64
	Tracks []CatalogTrack
}

// CMAF returns the tracks a FrameReader can read: CMAF with an init
// segment in the catalog, in catalog order.
func (v CatalogVersion) CMAF() []CatalogTrack {
	var out []CatalogTrack
	for _, t := range v.Tracks {
		if cmafTrack(t) {
			out = append(out, t)
		}
	}
	return out
}

func cmafTrack(t CatalogTrack) bool {
	return strings.EqualFold(t.Packaging, "cmaf") && len(t.Init) > 0
}

// BroadcastReader follows the catalog of one broadcast and opens readers
// on its tracks. NextCatalog is for one goroutine; Track and Close may be
// called from any.
type BroadcastReader struct {
	src     moq.Source
	path    string
	log     *slog.Logger
	timeout time.Duration
	cat     *moq.TrackConsumer
	rd      *moq.TrackReader

	mu      sync.Mutex
	cur     *CatalogVersion // handled by the caller: what track readers use
	pending *CatalogVersion // returned by NextCatalog, being handled
	handled uint64          // catalog groups up to this one are handled
	have    bool            // handled is set
	changed chan struct{}   // closed and replaced when handled grows
	closed  bool
}

// OpenBroadcast subscribes to the catalog of the broadcast at path: the
// hang catalog (moqgate's own publishers always write it), else the MSF
// one. The error of the last attempt is wrapped (a *moq.RequestError when
// the source refused).
func OpenBroadcast(ctx context.Context, src moq.Source, path string, opts BroadcastOptions) (*BroadcastReader, error) {
	b := &BroadcastReader{src: src, path: path, log: opts.Logger, timeout: opts.Timeout, changed: make(chan struct{})}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.timeout <= 0 {
		b.timeout = catalogTimeout
	}
	var err error
	for _, name := range []string{HangCatalogTrack, MSFCatalogTrack} {
		if b.cat, err = b.subscribe(ctx, name, opts.Subscribe); err == nil {
			b.rd = b.cat.Reader(true)
			return b, nil
		}
	}
	return nil, fmt.Errorf("media: subscribe to the catalog of %s: %w", path, err)
}

func (b *BroadcastReader) subscribe(ctx context.Context, name string, opts moq.SubscribeOptions) (*moq.TrackConsumer, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.src.SubscribeTrack(ctx, b.path, name, opts)
}

// CatalogTrack is the name of the catalog track being followed.
func (b *BroadcastReader) CatalogTrack() string { return b.cat.Name() }

// Close releases the catalog subscription. Track readers are closed by
// their owners.
func (b *BroadcastReader) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cat.Close()
}

// NextCatalog waits for the next valid catalog version (unusable ones are
// logged and skipped); moq.ErrTrackEnded when the broadcast ended. Call it
// in a loop: a version becomes the one track readers use when the caller
// comes back for the next, so that no frame reaches the caller before the
// catalog that describes it was handled.
func (b *BroadcastReader) NextCatalog(ctx context.Context) (CatalogVersion, error) {
	b.mu.Lock()
	if b.pending != nil {
		b.cur, b.pending = b.pending, nil
		b.handledLocked(b.cur.Group)
	}
	b.mu.Unlock()
	for {
		g, err := b.rd.NextGroup(ctx)
		if err != nil {
			return CatalogVersion{}, err
		}
		tracks, err := b.parse(ctx, g)
		if err == nil {
			v := CatalogVersion{Group: g.ID(), Tracks: tracks}
			b.mu.Lock()
			b.pending = &v
			b.mu.Unlock()
			return v, nil
		}
		if ctx.Err() != nil {
			return CatalogVersion{}, ctx.Err()
		}
		b.log.Warn("media: unusable catalog", "broadcast", b.path, "track", b.cat.Name(), "group", g.ID(), "err", err)
		b.mu.Lock()
		b.handledLocked(g.ID())
		b.mu.Unlock()
	}
}

func (b *BroadcastReader) handledLocked(group uint64) {
	if !b.have || group > b.handled {
		b.handled, b.have = group, true
		close(b.changed)
		b.changed = make(chan struct{})
	}
}

// parse reads the catalog in object 0 of g.
func (b *BroadcastReader) parse(ctx context.Context, g *moq.GroupReader) ([]CatalogTrack, error) {
	o, err := g.Next(ctx)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty catalog group")
		}
		return nil, err
	}
	if b.cat.Name() == HangCatalogTrack {
		c, err := ParseHangCatalog(o.Payload)
		if err != nil {
			return nil, err
		}
		return c.MediaTracks(), nil
	}
	c, err := ParseMSFCatalog(o.Payload)
	if err != nil {
		return nil, err
	}
	return c.MediaTracks(), nil
}

// waitCatalog waits, for a bounded time, until the newest catalog group
// has been handled.
func (b *BroadcastReader) waitCatalog(ctx context.Context) {
	l, ok := b.cat.Largest()
	if !ok {
		return
	}
	timer := time.NewTimer(catalogSyncWait)
	defer timer.Stop()
	for {
		b.mu.Lock()
		done := b.closed || b.have && b.handled >= l.Group
		ch := b.changed
		b.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// track returns a CMAF track of the handled catalog version (of the one
// being handled before any was).
func (b *BroadcastReader) track(name string) (CatalogTrack, bool) {
	b.mu.Lock()
	v := b.cur
	if v == nil {
		v = b.pending
	}
	b.mu.Unlock()
	if v != nil {
		for _, t := range v.Tracks {
			if t.Name == name && cmafTrack(t) {
				return t, true
			}
		}
	}
	return CatalogTrack{}, false
}

// Chunk is one object of a media track, read with its init segment.
type Chunk struct {
	Group, Object uint64
	// Payload is the object as published (moof+mdat pairs); it is shared:
	// do not modify it.
	Payload []byte
	// Frames are its samples; their Data points into Payload. The slice is
	// reused by the next call of Next.
	Frames []Frame
	// GroupStart marks the first chunk read of a group.
	GroupStart bool
	// Discontinuity: something was lost right before this chunk (a group
	// skipped, dropped or cut short, an unreadable object).
	Discontinuity bool
	// InitChanged: from this chunk on, the track has a new init segment
	// (FrameReader.Info changed), at a group boundary.
	InitChanged bool
}

// FrameReader reads one CMAF track of a broadcast object by object. Next
// is for one goroutine; RequestNewGroup and Close may be called from any.
type FrameReader struct {
	b    *BroadcastReader
	name string

	mu  sync.Mutex
	sub *moq.TrackConsumer

	rd        *moq.TrackReader
	group     *moq.GroupReader
	lastGroup uint64
	haveGroup bool
	init      []byte
	cr        *ChunkReader
	start     bool // the next chunk starts a group
	disc      bool
	changed   bool
	buf       []Frame
	drops     int
}

// Track subscribes to the named track. opts are its subscription options.
func (b *BroadcastReader) Track(ctx context.Context, name string, opts moq.SubscribeOptions) (*FrameReader, error) {
	sub, err := b.subscribe(ctx, name, opts)
	if err != nil {
		return nil, fmt.Errorf("media: subscribe to track %s: %w", name, err)
	}
	return &FrameReader{b: b, name: name, sub: sub, rd: sub.Reader(true)}, nil
}

// Name is the track name.
func (r *FrameReader) Name() string { return r.name }

// Info describes the track as the init segment of the last chunk does.
func (r *FrameReader) Info() TrackInfo {
	if r.cr == nil {
		return TrackInfo{}
	}
	return r.cr.Info()
}

// RequestNewGroup asks the publisher for a new group (a key frame); it
// reports whether the track takes such requests.
func (r *FrameReader) RequestNewGroup() bool {
	r.mu.Lock()
	sub := r.sub
	r.mu.Unlock()
	return sub != nil && sub.RequestNewGroup()
}

// Close releases the subscription.
func (r *FrameReader) Close() {
	r.mu.Lock()
	sub := r.sub
	r.sub = nil
	r.mu.Unlock()
	if sub != nil {
		sub.Close()
	}
}

// Next returns the next readable chunk. It ends with moq.ErrTrackEnded,
// ErrNotInCatalog, an unusable init segment, or the context's error.
func (r *FrameReader) Next(ctx context.Context) (Chunk, error) {
	for {
		if r.group == nil {
			if err := r.nextGroup(ctx); err != nil {
				return Chunk{}, err
			}
		}
		o, err := r.group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return Chunk{}, ctx.Err()
			}
			r.group = nil
			r.disc = r.disc || !errors.Is(err, io.EOF)
			continue
		}
		if len(o.Payload) == 0 {
			continue
		}
		frames, err := r.frames(o)
		if err != nil {
			r.drops++
			if r.drops == 1 || r.drops%100 == 0 {
				r.b.log.Warn("media: unreadable object, skipping the rest of its group", "broadcast", r.b.path,
					"track", r.name, "group", r.group.ID(), "object", o.ID, "count", r.drops, "err", err)
			}
			r.group, r.disc = nil, true
			continue
		}
		r.buf = frames
		c := Chunk{Group: r.group.ID(), Object: o.ID, Payload: o.Payload, Frames: frames,
			GroupStart: r.start, Discontinuity: r.disc, InitChanged: r.changed}
		r.start, r.disc, r.changed = false, false, false
		return c, nil
	}
}

// frames are the samples of o: the ones its in-process producer attached
// (the frame at hand, not parsed again), else parsed from its payload.
func (r *FrameReader) frames(o moq.Object) ([]Frame, error) {
	if fs, ok := o.Decoded.([]Frame); ok && len(fs) > 0 {
		r.cr.follow(fs)
		return append(r.buf[:0], fs...), nil // a copy: callers may change theirs
	}
	return r.cr.Frames(o.Payload, r.buf[:0])
}

// nextGroup moves to the next group, with the init segment of the catalog
// version it belongs to.
func (r *FrameReader) nextGroup(ctx context.Context) error {
	g, err := r.rd.NextGroup(ctx)
	if err != nil {
		return err
	}
	r.disc = r.disc || r.haveGroup && g.ID() != r.lastGroup+1
	r.lastGroup, r.haveGroup = g.ID(), true
	r.b.waitCatalog(ctx)
	t, ok := r.b.track(r.name)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotInCatalog, r.name)
	}
	if r.cr == nil || !bytes.Equal(t.Init, r.init) {
		cr, err := NewChunkReader(t.Init)
		if err != nil {
			return fmt.Errorf("media: track %s: %w", r.name, err)
		}
		r.changed = r.changed || r.cr != nil
		r.cr, r.init = cr, t.Init
	}
	r.group, r.start = g, true
	return nil
}
