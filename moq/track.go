package moq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Namespace is a MoQ track namespace tuple.
type Namespace []string

// Path joins the namespace with "/". moqgate identifies a broadcast by its
// path, so ("live","test") and ("live/test") name the same broadcast.
func (n Namespace) Path() string { return strings.Join(n, "/") }

// ParsePath splits a broadcast path into a namespace tuple.
func ParsePath(path string) Namespace {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil
	}
	return Namespace(strings.Split(path, "/"))
}

// Location is a (group, object) position in a track.
type Location struct {
	Group  uint64 `json:"group"`
	Object uint64 `json:"object"`
}

// Less orders locations.
func (l Location) Less(o Location) bool {
	return l.Group < o.Group || (l.Group == o.Group && l.Object < o.Object)
}

// Object status values (draft-14 §10.2.1.1).
const (
	StatusNormal       = 0x0
	StatusDoesNotExist = 0x1
	StatusEndOfGroup   = 0x3
	StatusEndOfTrack   = 0x4
)

// Object is one MoQ object. Payload is shared between every subscriber and
// the cache: nobody may modify it after it was appended.
type Object struct {
	GroupID    uint64
	SubgroupID uint64
	ID         uint64
	Priority   uint8
	Status     uint64
	Extensions []byte
	Payload    []byte
	// Decoded is what an in-process producer knew of Payload before it
	// encoded it (media's frames), so a reader in the same process need not
	// parse it again. It is never sent or received on the wire: readers
	// must treat it as a hint and fall back to Payload when it is nil.
	Decoded any
}

// Errors seen by track readers.
var (
	// ErrGroupDropped: the group was evicted from the cache or reset by the
	// publisher before the reader got to the end of it.
	ErrGroupDropped = errors.New("moq: group dropped")
	// ErrTrackEnded: the publisher ended the track.
	ErrTrackEnded = errors.New("moq: track ended")
)

// TrackLimits bound the cache of a track.
type TrackLimits struct {
	// MaxGroups is the number of most recent groups kept (at least 1).
	MaxGroups int
	// MaxBytes bounds the payload bytes kept; the oldest groups go first, and
	// a single group larger than this is cut off.
	MaxBytes int
}

// DefaultTrackLimits are used when a limit is zero.
var defaultTrackLimits = TrackLimits{MaxGroups: 4, MaxBytes: 32 << 20}

// Track is the cache and fan-out point of one track: publishers append
// groups and objects, any number of readers (local or remote subscribers)
// follow them. It keeps the most recent groups within its limits.
type Track struct {
	Namespace Namespace
	Name      string

	limits TrackLimits

	mu       sync.Mutex
	groups   []*Group // ascending by ID
	bytes    int
	largest  Location
	hasLarge bool
	// floor is the largest location known before the cached groups: of
	// evicted groups, or reported by upstream before its first object.
	floor     Location
	hasFloor  bool
	ended     bool
	endStatus uint64
	endReason string
	endedCh   chan struct{} // closed by End
	// newGroup, if set, asks whoever writes the track for a new group (a
	// key frame): its in-process producer, or the upstream subscription.
	newGroup func()
	askedAt  time.Time // when a new group was last asked for
	// pendingAsk is when a new group was asked for before anyone took
	// such requests (zero if not).
	pendingAsk time.Time
	askedFor   uint64 // the largest group then
	changed    chan struct{}
	// groupOffset is added to incoming group IDs so that IDs keep
	// increasing when a publisher reconnects and starts again from 0.
	groupOffset uint64
	reconnect   bool

	objectsIn atomic.Uint64
	bytesIn   atomic.Uint64
	dropped   atomic.Uint64
}

// NewTrack makes an empty track.
func NewTrack(ns Namespace, name string, limits TrackLimits) *Track {
	if limits.MaxGroups <= 0 {
		limits.MaxGroups = defaultTrackLimits.MaxGroups
	}
	if limits.MaxBytes <= 0 {
		limits.MaxBytes = defaultTrackLimits.MaxBytes
	}
	return &Track{Namespace: ns, Name: name, limits: limits, changed: make(chan struct{}), endedCh: make(chan struct{})}
}

func (t *Track) signalLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// Largest returns the largest location seen, if any.
func (t *Track) Largest() (Location, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.largest, t.hasLarge
}

// SetLargest records a largest location learnt from upstream before any
// object of it arrived (SUBSCRIBE_OK).
func (t *Track) SetLargest(l Location) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.hasLarge || t.largest.Less(l) {
		t.largest, t.hasLarge = l, true
	}
	t.raiseFloorLocked(l)
}

func (t *Track) raiseFloorLocked(l Location) {
	if !t.hasFloor || t.floor.Less(l) {
		t.floor, t.hasFloor = l, true
	}
}

// joinPoint says where a Largest Object subscription starts and what its
// SUBSCRIBE_OK reports as the Largest Location. Players that never FETCH
// need the newest group from its first object (its keyframe, the current
// catalog), so delivery starts there; the report is the last object
// before that group, so "Largest + 1", where the drafts start such a
// subscription and where a joining FETCH stops, is exactly where delivery
// starts. With nothing before that group there is nothing to report
// (has == false). With no group cached yet (a relay that has just
// subscribed upstream), delivery starts after the Largest it knows.
func (t *Track) joinPoint() (start uint64, haveStart bool, largest Location, has bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.groups)
	if n == 0 {
		return 0, false, t.largest, t.hasLarge
	}
	start = t.groups[n-1].ID
	for i := n - 2; i >= 0; i-- {
		if l, ok := t.groups[i].last(); ok {
			return start, true, l, true
		}
	}
	if t.hasFloor && t.floor.Group < start {
		return start, true, t.floor, true
	}
	return start, true, Location{}, false
}

// newGroupOutstanding is how long a request for a new group holds back the
// next one while the largest group stays the same.
const newGroupOutstanding = time.Second

// setNewGroupHandler sets who takes requests for a new group. A request
// made shortly before (a relay's track whose upstream SUBSCRIBE_OK has not
// arrived yet) is passed on now rather than lost.
func (t *Track) setNewGroupHandler(fn func()) {
	t.mu.Lock()
	t.newGroup = fn
	pending := fn != nil && !t.pendingAsk.IsZero() && time.Since(t.pendingAsk) < newGroupOutstanding
	t.pendingAsk = time.Time{}
	if pending {
		t.askedAt, t.askedFor = time.Now(), t.largest.Group
	}
	t.mu.Unlock()
	if pending {
		go fn()
	}
}

// dynamicGroups reports whether a new group can be asked for.
func (t *Track) dynamicGroups() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.newGroup != nil
}

// requestNewGroup asks for a new group (draft-16 NEW_GROUP_REQUEST): after
// is the asker's largest group plus one, 0 when it knows none. As the
// draft's relay rule says, a value not beyond the largest group is
// ignored, and one request is outstanding until the largest group
// increases (here at most newGroupOutstanding), so a crowd of new viewers
// costs the publisher one key frame.
func (t *Track) requestNewGroup(after uint64) bool {
	t.mu.Lock()
	fn := t.newGroup
	switch {
	case after != 0 && t.hasLarge && after <= t.largest.Group:
		t.mu.Unlock()
		return false
	case fn == nil:
		t.pendingAsk = time.Now()
		t.mu.Unlock()
		return false
	case !t.askedAt.IsZero() && t.askedFor == t.largest.Group && time.Since(t.askedAt) < newGroupOutstanding:
		t.mu.Unlock()
		return true
	}
	t.askedAt, t.askedFor = time.Now(), t.largest.Group
	t.mu.Unlock()
	go fn() // may write to a session: never under the lock
	return true
}

// Ended reports whether the track ended, with the PUBLISH_DONE status.
func (t *Track) Ended() (bool, uint64, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ended, t.endStatus, t.endReason
}

// Stats returns objects and payload bytes appended and groups dropped.
func (t *Track) Stats() (objects, bytes, droppedGroups uint64) {
	return t.objectsIn.Load(), t.bytesIn.Load(), t.dropped.Load()
}

// CachedBytes returns the payload bytes currently cached.
func (t *Track) CachedBytes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bytes
}

// OpenGroup returns the group with the given ID, creating it if needed. A
// group older than everything cached while the cache is full is refused
// (nil): it would be evicted at once.
func (t *Track) OpenGroup(id uint64) *Group {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return nil
	}
	if t.reconnect {
		// First group of a new publisher: continue after what we have.
		t.reconnect = false
		if t.hasLarge && id+t.groupOffset <= t.largest.Group {
			t.groupOffset = t.largest.Group + 1 - id
		}
	}
	id += t.groupOffset
	i := len(t.groups)
	for i > 0 && t.groups[i-1].ID >= id {
		if t.groups[i-1].ID == id {
			return t.groups[i-1]
		}
		i--
	}
	if i == 0 && len(t.groups) >= t.limits.MaxGroups {
		return nil
	}
	g := &Group{ID: id, track: t, changed: make(chan struct{})}
	t.groups = append(t.groups, nil)
	copy(t.groups[i+1:], t.groups[i:])
	t.groups[i] = g
	if !t.hasLarge || t.largest.Group < id {
		t.largest, t.hasLarge = Location{Group: id}, true
	}
	t.evictLocked()
	t.signalLocked()
	return g
}

// Reconnect prepares the track for a new publisher that may restart its
// group IDs: its first group is renumbered to follow the largest group
// seen, and the following ones keep that offset.
func (t *Track) Reconnect() {
	t.mu.Lock()
	t.reconnect = true
	t.mu.Unlock()
}

// NewGroup opens the group after the largest one (for local publishers).
func (t *Track) NewGroup() *Group {
	t.mu.Lock()
	id := uint64(0)
	if t.hasLarge {
		id = t.largest.Group + 1
	}
	id -= t.groupOffset
	t.mu.Unlock()
	return t.OpenGroup(id)
}

func (t *Track) evictLocked() {
	for len(t.groups) > 1 && (len(t.groups) > t.limits.MaxGroups || t.bytes > t.limits.MaxBytes) {
		g := t.groups[0]
		t.groups[0] = nil
		t.groups = t.groups[1:]
		if l, ok := g.last(); ok {
			t.raiseFloorLocked(l)
		}
		t.bytes -= g.evict()
		t.dropped.Add(1)
	}
}

// End ends the track: no more groups; readers see ErrTrackEnded after the
// cached groups.
func (t *Track) End(status uint64, reason string) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended, t.endStatus, t.endReason = true, status, reason
	close(t.endedCh)
	groups := append([]*Group(nil), t.groups...)
	t.signalLocked()
	t.mu.Unlock()
	for _, g := range groups {
		g.Close()
	}
}

// groupAfter returns the first cached group with ID > after (any group
// when !have), or a channel that changes when a group is added.
func (t *Track) groupAfter(after uint64, have bool) (*Group, <-chan struct{}, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, g := range t.groups {
		if !have || g.ID > after {
			return g, nil, false
		}
	}
	return nil, t.changed, t.ended
}

// groupFrom returns the oldest cached group with ID >= from (any ID when
// !have) that is not in skip, or a channel that changes when a group is
// added.
func (t *Track) groupFrom(from uint64, have bool, skip map[uint64]bool) (*Group, <-chan struct{}, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, g := range t.groups {
		if (!have || g.ID >= from) && !skip[g.ID] {
			return g, nil, false
		}
	}
	return nil, t.changed, t.ended
}

// latestGroup returns the newest cached group.
func (t *Track) latestGroup() *Group {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.groups) == 0 {
		return nil
	}
	return t.groups[len(t.groups)-1]
}

// group returns the cached group with the ID, or nil.
func (t *Track) group(id uint64) *Group {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, g := range t.groups {
		if g.ID == id {
			return g
		}
	}
	return nil
}

// cachedGroups returns the cached groups in ascending order.
func (t *Track) cachedGroups() []*Group {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*Group(nil), t.groups...)
}

func (t *Track) addBytes(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bytes += n
	t.evictLocked()
	return true
}

// Group is one group of a track.
type Group struct {
	ID    uint64
	track *Track

	mu      sync.Mutex
	objects []Object
	bytes   int
	// images[i] is object i as a subgroup stream carries it, heads[i] its
	// header bytes (see wire); imageBytes counts them in the track's cache.
	images     [][]byte
	heads      [][]byte
	imageBytes int
	done       bool
	dropped    bool
	evicted    bool
	priority   uint8
	changed    chan struct{}
}

// Priority returns the publisher priority of the group.
func (g *Group) Priority() uint8 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.priority
}

// SetPriority sets the publisher priority of the group.
func (g *Group) SetPriority(p uint8) {
	g.mu.Lock()
	g.priority = p
	g.mu.Unlock()
}

func (g *Group) signalLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// Append adds the next object. Objects are kept in arrival order; object
// IDs must increase within a subgroup.
func (g *Group) Append(o Object) error {
	g.mu.Lock()
	if g.done || g.dropped {
		g.mu.Unlock()
		return ErrGroupDropped
	}
	for i := len(g.objects) - 1; i >= 0; i-- {
		if g.objects[i].SubgroupID == o.SubgroupID {
			if g.objects[i].ID >= o.ID {
				g.mu.Unlock()
				return fmt.Errorf("moq: object %d after %d in group %d", o.ID, g.objects[i].ID, g.ID)
			}
			break
		}
	}
	if g.bytes+len(o.Payload) > g.track.limits.MaxBytes {
		g.mu.Unlock()
		return fmt.Errorf("moq: group %d exceeds the track cache limit of %d bytes", g.ID, g.track.limits.MaxBytes)
	}
	o.GroupID = g.ID
	g.objects = append(g.objects, o)
	g.bytes += len(o.Payload)
	g.signalLocked()
	g.mu.Unlock()

	t := g.track
	t.objectsIn.Add(1)
	t.bytesIn.Add(uint64(len(o.Payload)))
	t.mu.Lock()
	if t.largest.Less(Location{g.ID, o.ID}) {
		t.largest, t.hasLarge = Location{g.ID, o.ID}, true
	}
	t.mu.Unlock()
	t.addBytes(len(o.Payload))
	return nil
}

// Close marks the group complete.
func (g *Group) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done {
		g.done = true
		g.signalLocked()
	}
}

// Drop marks the group as cut short (publisher reset its stream).
func (g *Group) Drop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.dropped {
		g.dropped = true
		g.done = true
		g.signalLocked()
	}
}

func (g *Group) evict() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	// A reader still inside an evicted group sees ErrGroupDropped: that is
	// what bounds the memory a slow subscriber can pin.
	g.evicted = true
	g.dropped = true
	g.done = true
	g.signalLocked()
	g.images, g.heads = nil, nil
	return g.bytes + g.imageBytes
}

// wire returns object i as written after the header bytes head: one
// buffer, head then payload, so that the object takes a single Write.
// quic-go returns from a Write once the connection has taken all of it
// but the last packet's worth, so each further Write of an object costs
// its writer a wait (and the connection an idle gap), and a header
// written alone goes out in a packet of its own. The image is built once
// and shared by every writer with the same header (subscribers of one
// draft from the same point: no copy per subscriber); another header
// gets a buffer of its own. Shared images count in the track's cache.
func (g *Group) wire(i int, head []byte) []byte {
	g.mu.Lock()
	if i >= len(g.objects) || g.evicted {
		g.mu.Unlock()
		return nil
	}
	payload := g.objects[i].Payload
	if i < len(g.images) && g.images[i] != nil {
		img := g.images[i]
		same := bytes.Equal(g.heads[i], head)
		g.mu.Unlock()
		if same {
			return img
		}
		return joinBytes(head, payload)
	}
	img := joinBytes(head, payload)
	for len(g.images) <= i {
		g.images, g.heads = append(g.images, nil), append(g.heads, nil)
	}
	g.images[i], g.heads[i] = img, bytes.Clone(head)
	g.imageBytes += len(img)
	g.mu.Unlock()
	g.track.addBytes(len(img)) // after g.mu: eviction takes t.mu, then g.mu
	return img
}

func joinBytes(a, b []byte) []byte {
	return append(append(make([]byte, 0, len(a)+len(b)), a...), b...)
}

// object returns object i, or a channel to wait on. done is true when
// there will be no object i.
func (g *Group) object(i int) (o Object, ok bool, done bool, dropped bool, wait <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.evicted {
		return Object{}, false, true, true, nil
	}
	if i < len(g.objects) {
		return g.objects[i], true, false, false, nil
	}
	if g.done {
		return Object{}, false, true, g.dropped, nil
	}
	return Object{}, false, false, false, g.changed
}

// last returns the location of the group's largest object so far.
func (g *Group) last() (Location, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var id uint64
	for _, o := range g.objects {
		id = max(id, o.ID)
	}
	return Location{g.ID, id}, len(g.objects) > 0
}

// Len returns the number of objects so far.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.objects)
}

// Objects returns a snapshot of the objects so far and whether the group
// is complete.
func (g *Group) Objects() ([]Object, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.objects[:len(g.objects):len(g.objects)], g.done
}

// TrackReader follows a track group by group (for in-process consumers
// such as egress adapters and the sub command).
type TrackReader struct {
	t       *Track
	from    uint64
	have    bool
	skipOld bool
	seen    map[uint64]bool
	newest  uint64
	stats   *handleStats // of the consumer handle, if any
}

// NewReader starts a reader at the newest cached group (or the first group
// to come). When skipOld is set, NextGroup jumps to the newest group when
// the reader has fallen behind.
func (t *Track) NewReader(skipOld bool) *TrackReader {
	r := &TrackReader{t: t, skipOld: skipOld, seen: make(map[uint64]bool)}
	if g := t.latestGroup(); g != nil {
		r.from, r.have = g.ID, true
	}
	return r
}

// NextGroup waits for the next group. Groups that complete out of order
// are still returned once each.
func (r *TrackReader) NextGroup(ctx context.Context) (*GroupReader, error) {
	for {
		g, wait, ended := r.t.groupFrom(r.from, r.have, r.seen)
		if g != nil {
			if r.skipOld {
				if l := r.t.latestGroup(); l != nil && l.ID > g.ID && !r.seen[l.ID] {
					g = l
				}
			}
			if !r.have {
				r.from, r.have = g.ID, true
			}
			if r.skipOld && g.ID > r.from {
				r.from = g.ID
			}
			r.seen[g.ID] = true
			if g.ID > r.newest {
				r.newest = g.ID
			}
			for id := range r.seen {
				if id+64 < r.newest {
					delete(r.seen, id)
				}
			}
			if r.newest > 64 && r.from < r.newest-64 {
				r.from = r.newest - 64
			}
			return &GroupReader{g: g, stats: r.stats}, nil
		}
		if ended {
			return nil, ErrTrackEnded
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// GroupReader reads the objects of one group in order.
type GroupReader struct {
	g     *Group
	i     int
	stats *handleStats
}

// ID is the group ID.
func (gr *GroupReader) ID() uint64 { return gr.g.ID }

// Next returns the next object, io.EOF at the end of the group, or
// ErrGroupDropped if the group was cut short.
func (gr *GroupReader) Next(ctx context.Context) (Object, error) {
	for {
		o, ok, done, dropped, wait := gr.g.object(gr.i)
		if ok {
			gr.i++
			if gr.stats != nil {
				gr.stats.objectsOut.Add(1)
				gr.stats.bytesOut.Add(uint64(len(o.Payload)))
			}
			return o, nil
		}
		if done {
			if dropped {
				return Object{}, ErrGroupDropped
			}
			return Object{}, io.EOF
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return Object{}, ctx.Err()
		}
	}
}
