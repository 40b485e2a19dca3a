package moq

import (
	"context"
	"sync"
	"sync/atomic"
)

// The media model: a broadcast is a set of named tracks, a track a
// sequence of groups, a group a sequence of objects (frames). Each level
// has a producer handle, which writes and ends it, and a consumer handle,
// which only reads. A relay holds the model; sessions of every draft map
// their wire messages onto it, and in-process adapters (ingest and egress)
// use the handles directly, without the wire (Relay.Local).

// A Source gives consumer handles on the tracks of broadcasts: a relay in
// memory (Relay.Local) or a remote peer over a MoQ session, through the
// same API, so an adapter works the same on an edge, an origin or a client.
type Source interface {
	SubscribeTrack(ctx context.Context, path, name string, opts SubscribeOptions) (*TrackConsumer, error)
}

var (
	_ Source = (*Session)(nil)
	_ Source = (*LocalClient)(nil)
)

// handleStats counts what the handles of one adapter moved.
type handleStats struct {
	objectsIn, bytesIn, objectsOut, bytesOut atomic.Uint64
}

// TrackConsumer reads one track. It cannot write or end the track; Close
// releases it (the relay drops its upstream subscription when the last
// consumer of a track is gone).
type TrackConsumer struct {
	t     *Track
	done  <-chan struct{}
	stop  func()
	once  sync.Once
	stats *handleStats
}

// Name is the track name.
func (c *TrackConsumer) Name() string { return c.t.Name }

// Reader starts a reader at the newest group (see Track.NewReader).
func (c *TrackConsumer) Reader(skipOld bool) *TrackReader {
	r := c.t.NewReader(skipOld)
	r.stats = c.stats
	return r
}

// Largest is the largest location of the track seen so far.
func (c *TrackConsumer) Largest() (Location, bool) { return c.t.Largest() }

// RequestNewGroup asks the track's original publisher for a new group (a
// key frame), through every relay on the way. It reports whether the
// track takes such requests.
func (c *TrackConsumer) RequestNewGroup() bool { return c.t.requestNewGroup(0) }

// Done is closed when the subscription ends (the track ended, the
// publisher or the session went away).
func (c *TrackConsumer) Done() <-chan struct{} { return c.done }

// Close releases the consumer.
func (c *TrackConsumer) Close() {
	c.once.Do(func() {
		if c.stop != nil {
			c.stop()
		}
	})
}

// SubscribeTrack subscribes to a track of the peer (path is the broadcast's
// "/"-joined namespace).
func (s *Session) SubscribeTrack(ctx context.Context, path, name string, opts SubscribeOptions) (*TrackConsumer, error) {
	sub, err := s.Subscribe(ctx, ParsePath(path), name, opts)
	if err != nil {
		return nil, err
	}
	return &TrackConsumer{t: sub.Track, done: sub.Done(), stop: sub.Unsubscribe}, nil
}

// BroadcastProducer publishes one broadcast: it makes its tracks and ends
// them. Close withdraws the broadcast (a relay keeps it for its grace
// period, so that a reconnecting publisher continues it).
type BroadcastProducer struct {
	path   string
	create func(name string) *Track
	done   <-chan struct{}
	close  func()
	stats  *handleStats

	mu     sync.Mutex
	tracks map[string]*TrackProducer
	closed bool
}

// Path is the broadcast's path.
func (p *BroadcastProducer) Path() string { return p.path }

// Track returns the producer of the named track, making the track.
func (p *BroadcastProducer) Track(name string) *TrackProducer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tp := p.tracks[name]; tp != nil {
		return tp
	}
	tp := &TrackProducer{stats: p.stats, done: p.done}
	if !p.closed {
		tp.t = p.create(name)
	}
	p.tracks[name] = tp
	return tp
}

// Done is closed when the broadcast can no longer be published: it was
// taken over by another publisher, ended, or its session went away.
func (p *BroadcastProducer) Done() <-chan struct{} { return p.done }

// Close withdraws the broadcast. Open groups are closed first, so what is
// in flight is delivered.
func (p *BroadcastProducer) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.close()
}

// TrackProducer writes one track.
type TrackProducer struct {
	t     *Track // nil when the broadcast was closed or taken over
	stats *handleStats
	done  <-chan struct{}
}

// Name is the track name ("" for a dead track).
func (tp *TrackProducer) Name() string {
	if tp.t == nil {
		return ""
	}
	return tp.t.Name
}

// NewGroup opens the group after the largest one; nil when the track ended.
func (tp *TrackProducer) NewGroup() *GroupProducer {
	if tp.t == nil {
		return nil
	}
	select {
	case <-tp.done: // taken over: the track is someone else's now
		return nil
	default:
	}
	g := tp.t.NewGroup()
	if g == nil {
		return nil
	}
	return &GroupProducer{g: g, stats: tp.stats}
}

// OnNewGroupRequest makes the track take requests for a new group
// (TrackConsumer.RequestNewGroup, draft-16 NEW_GROUP_REQUEST): fn should
// start one soon, e.g. by asking the encoder for a key frame.
func (tp *TrackProducer) OnNewGroupRequest(fn func()) {
	if tp.t != nil {
		tp.t.setNewGroupHandler(fn)
	}
}

// End ends the track: subscribers get the end of the track after what is
// cached.
func (tp *TrackProducer) End(status uint64, reason string) {
	if tp.t != nil {
		tp.t.End(status, reason)
	}
}

// GroupProducer writes one group.
type GroupProducer struct {
	g     *Group
	next  uint64
	stats *handleStats
}

// ID is the group ID.
func (gp *GroupProducer) ID() uint64 { return gp.g.ID }

// SetPriority sets the group's publisher priority.
func (gp *GroupProducer) SetPriority(p uint8) { gp.g.SetPriority(p) }

// Write appends the next object (IDs from 0, one by one). The payload is
// shared with every consumer and the cache: the caller must not modify it.
func (gp *GroupProducer) Write(payload []byte) error {
	return gp.WriteDecoded(payload, nil)
}

// WriteDecoded is Write with the decoded form of payload attached for
// readers in this process (see Object.Decoded); remote subscribers get
// payload alone. Neither may be modified afterwards.
func (gp *GroupProducer) WriteDecoded(payload []byte, decoded any) error {
	if err := gp.g.Append(Object{ID: gp.next, Payload: payload, Decoded: decoded}); err != nil {
		return err
	}
	gp.next++
	if gp.stats != nil {
		gp.stats.objectsIn.Add(1)
		gp.stats.bytesIn.Add(uint64(len(payload)))
	}
	return nil
}

// Close marks the group complete.
func (gp *GroupProducer) Close() { gp.g.Close() }
