// Package ingest turns publishers (RTMP, WHIP, fMP4 on stdin) into MoQ
// broadcasts. The adapters in its sub-packages speak their protocol and
// hand access units to a Broadcast, which packages them (media) and writes
// them through a moq.BroadcastProducer: into the relay in memory
// (LocalDialer), or to a remote relay over a session (SessionDialer).
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// Publisher priorities: the catalog first, then audio, then video.
const (
	priorityCatalog = 0
	priorityAudio   = 64
	priorityVideo   = 128
)

// Broadcast publishes one broadcast over a MoQ session. It implements
// media.BroadcastWriter.
type Broadcast struct {
	prod *moq.BroadcastProducer
	pkg  *media.Packager
	log  *slog.Logger

	mu     sync.Mutex
	groups map[string]*moq.GroupProducer
	closed bool
	askKey func() // asks the source for a key frame, if it can

	// Timeline continuity across publisher reconnects.
	path       string
	continuity *Continuity
	start      time.Duration // where this publisher's timeline starts
	base       time.Duration // media time of the first frame written
	haveBase   bool
	shift      map[string]int64         // per track, added to DTS
	timescale  map[string]uint32        // per track
	end        map[string]time.Duration // per track, end of the last frame
}

// errPublishEnded: the broadcast was taken over or its relay went away.
var errPublishEnded = errors.New("ingest: broadcast no longer published here")

// Options tune Start.
type Options struct {
	// Continuity, if set, makes a reconnecting publisher continue the
	// broadcast's media timeline.
	Continuity *Continuity
}

var _ media.BroadcastWriter = (*Broadcast)(nil)

// Dialer starts publishing the broadcast at path.
type Dialer func(ctx context.Context, path string) (*moq.BroadcastProducer, error)

// LocalDialer publishes into a relay in memory; proto names the ingest
// protocol in logs, the API and metrics.
func LocalDialer(r *moq.Relay, proto string, _ *slog.Logger) Dialer {
	return r.Local(proto).Publish
}

// SessionDialer publishes to the peer of a MoQ session that dial opens
// with the given handler (e.g. a remote relay).
func SessionDialer(dial func(context.Context, moq.Handler) (*moq.Session, error)) Dialer {
	return func(ctx context.Context, path string) (*moq.BroadcastProducer, error) {
		return moq.Produce(ctx, path, moq.TrackLimits{}, dial)
	}
}

// Start publishes the broadcast at path through a new session from dial.
func Start(ctx context.Context, dial Dialer, path string, logger *slog.Logger) (*Broadcast, error) {
	return StartWith(ctx, dial, path, logger, Options{})
}

// StartWith is Start with options.
func StartWith(ctx context.Context, dial Dialer, path string, logger *slog.Logger, opts Options) (*Broadcast, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ns := moq.ParsePath(path)
	if len(ns) == 0 {
		return nil, errors.New("ingest: empty broadcast path")
	}
	b := &Broadcast{
		log:    logger.With("broadcast", path),
		groups: make(map[string]*moq.GroupProducer),

		path:       path,
		continuity: opts.Continuity,
		start:      opts.Continuity.Resume(path),
		shift:      make(map[string]int64),
		timescale:  make(map[string]uint32),
		end:        make(map[string]time.Duration),
	}
	prod, err := dial(ctx, ns.Path())
	if err != nil {
		return nil, fmt.Errorf("ingest: publish %s: %w", path, err)
	}
	b.prod = prod
	// The catalog tracks exist from the start: a subscriber that comes
	// before the first catalog waits for it instead of being refused.
	prod.Track(media.HangCatalogTrack)
	prod.Track(media.MSFCatalogTrack)
	b.pkg = media.NewPackager(b, media.PackagerOptions{Logger: b.log})
	return b, nil
}

// Done is closed when the broadcast can no longer be published (taken
// over, or the relay session went away).
func (b *Broadcast) Done() <-chan struct{} { return b.prod.Done() }

// OnKeyframeRequest makes the broadcast's video tracks take new-group
// requests from viewers, wherever they are (moq.TrackConsumer.
// RequestNewGroup, forwarded by relays): fn asks the source for a key
// frame. Call it before SetTracks.
func (b *Broadcast) OnKeyframeRequest(fn func()) {
	b.mu.Lock()
	b.askKey = fn
	b.mu.Unlock()
}

// SetTracks implements media.BroadcastWriter.
func (b *Broadcast) SetTracks(tracks []media.TrackInfo) error {
	// Tracks exist from the moment the catalog names them, so a player
	// that subscribes before the first key frame waits instead of failing.
	b.mu.Lock()
	for _, t := range tracks {
		tp := b.prod.Track(t.Name)
		if t.Codec.Kind() == media.Video && b.askKey != nil {
			tp.OnNewGroupRequest(b.askKey)
		}
		if b.timescale[t.Name] != t.Timescale {
			delete(b.shift, t.Name)
		}
		b.timescale[t.Name] = t.Timescale
	}
	b.mu.Unlock()
	return b.pkg.SetTracks(tracks)
}

// WriteFrame implements media.BroadcastWriter.
func (b *Broadcast) WriteFrame(track string, f media.Frame) error {
	select {
	case <-b.prod.Done():
		return errPublishEnded
	default:
	}
	b.mu.Lock()
	ts := int64(b.timescale[track])
	shift, ok := b.shift[track]
	if !ok && ts > 0 {
		// The broadcast's first frame lands where the previous publisher's
		// timeline ended; the other tracks keep their offset from it, which
		// keeps them in sync (and places a rendition that starts later,
		// such as transcoded audio, where it belongs). A track that would
		// start before zero lands where the timeline ended instead.
		if !b.haveBase {
			b.base = time.Duration(f.DTS/ts)*time.Second + time.Duration(f.DTS%ts*int64(time.Second)/ts)
			b.haveBase = true
		}
		shift = int64(b.start-b.base) * ts / int64(time.Second)
		if f.DTS+shift < 0 {
			shift = int64(b.start)*ts/int64(time.Second) - f.DTS
		}
		b.shift[track] = shift
	}
	f.DTS += shift
	if ts > 0 {
		dur := f.Duration
		if dur <= 0 {
			dur = ts / 30 // unknown: about one video frame
		}
		// The end is the latest presentation time, not the last DTS: with
		// B-frames a publisher cut mid-GOP leaves frames shown after the
		// last one decoded, and the next publisher must start after them.
		end := time.Duration((f.DTS + max(f.CTO, 0) + dur) * int64(time.Second) / ts)
		b.end[track] = max(b.end[track], end)
	}
	b.mu.Unlock()
	return b.pkg.WriteFrame(track, f)
}

// Close ends the broadcast: tracks end, the namespace is withdrawn and the
// session closes (the relay then keeps the broadcast for its grace period).
func (b *Broadcast) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var end time.Duration
	for _, e := range b.end {
		end = max(end, e)
	}
	if end > 0 {
		b.continuity.Ended(b.path, end)
	}
	for name, g := range b.groups {
		g.Close()
		delete(b.groups, name)
	}
	b.mu.Unlock()
	// The tracks do not end here: the relay keeps the broadcast for its
	// grace period so that a reconnecting publisher continues it.
	b.prod.Close()
	return nil
}

// OpenGroup implements media.ObjectSink.
func (b *Broadcast) OpenGroup(track string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("ingest: broadcast closed")
	}
	if g := b.groups[track]; g != nil {
		g.Close()
	}
	g := b.prod.Track(track).NewGroup()
	if g == nil {
		return fmt.Errorf("ingest: track %s: %w", track, errPublishEnded)
	}
	switch {
	case track == "catalog" || track == "catalog.json":
		g.SetPriority(priorityCatalog)
	case len(track) >= 5 && track[:5] == "audio":
		g.SetPriority(priorityAudio)
	default:
		g.SetPriority(priorityVideo)
	}
	b.groups[track] = g
	return nil
}

// WriteObject implements media.ObjectSink.
func (b *Broadcast) WriteObject(track string, payload []byte) error {
	return b.WriteDecodedObject(track, payload, nil)
}

// WriteDecodedObject implements media.DecodedObjectSink: readers in this
// process get the frames without parsing the object.
func (b *Broadcast) WriteDecodedObject(track string, payload []byte, frames []media.Frame) error {
	b.mu.Lock()
	g := b.groups[track]
	b.mu.Unlock()
	if g == nil {
		return fmt.Errorf("ingest: no open group on track %s", track)
	}
	if frames == nil {
		return g.Write(payload)
	}
	return g.WriteDecoded(payload, frames)
}

// CloseGroup implements media.ObjectSink.
func (b *Broadcast) CloseGroup(track string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g := b.groups[track]; g != nil {
		g.Close()
		delete(b.groups, track)
	}
	return nil
}
