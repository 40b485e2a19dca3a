package moq

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// serveSub delivers one subscription (a peer's SUBSCRIBE, or our own
// PUBLISH) from a Track to the peer.
type serveSub struct {
	s       *Session
	reqID   uint64
	alias   uint64
	track   *Track
	release func()
	ctx     context.Context
	cancel  context.CancelFunc
	pushed  bool // our PUBLISH rather than their SUBSCRIBE

	mu         sync.Mutex
	priority   uint8
	groupOrder uint8
	forward    bool
	filter     uint64
	start      Location
	endGroup   uint64 // 0 = open-ended, else last group + 1
	// largest is the Largest Location reported in SUBSCRIBE_OK (or
	// PUBLISH); a joining FETCH ends there.
	largest    Location
	hasLargest bool
	updated    chan struct{}
	streams    uint64
	writers    map[uint64]*groupWriter
	doneSent   bool
	stopped    bool
	wg         sync.WaitGroup
}

type groupWriter struct {
	g      *Group
	cancel context.CancelCauseFunc
	stream SendStream
	mu     sync.Mutex
}

// errLagging cancels a group stream of a subscriber that fell behind.
var errLagging = errors.New("subscriber fell behind")

func (s *Session) onSubscribe(m *wire.Subscribe) error {
	if err := s.checkPeerRequestID(m.RequestID); err != nil {
		return err
	}
	if m.GroupOrder > wire.GroupOrderDescending {
		return protocolViolation("group order %d", m.GroupOrder)
	}
	switch m.FilterType {
	case wire.FilterNextGroupStart, wire.FilterLargestObject, wire.FilterAbsoluteStart, wire.FilterAbsoluteRange:
	default:
		return protocolViolation("filter type %d", m.FilterType)
	}
	if m.FilterType == wire.FilterAbsoluteRange && m.EndGroup < m.Start.Group {
		// Both drafts' error registries name INVALID_RANGE for this
		// (§13.1.2): refuse the request, keep the session.
		s.refuseRequest(&wire.SubscribeError{RequestID: m.RequestID, ErrorCode: wire.SubscribeErrorInvalidRange,
			Reason: fmt.Sprintf("end group %d before start group %d", m.EndGroup, m.Start.Group)})
		return nil
	}
	ctx, cancel := context.WithCancel(s.ctx)
	ss := &serveSub{
		s: s, reqID: m.RequestID, ctx: ctx, cancel: cancel,
		priority: m.SubscriberPriority, groupOrder: m.GroupOrder, forward: m.Forward,
		filter: m.FilterType, start: Location(m.Start), updated: make(chan struct{}),
		writers: make(map[uint64]*groupWriter),
	}
	if m.FilterType == wire.FilterAbsoluteRange {
		ss.endGroup = m.EndGroup + 1
	}
	s.mu.Lock()
	s.subsIn[m.RequestID] = ss
	s.mu.Unlock()
	req := &SubscribeRequest{
		RequestID: m.RequestID, Namespace: Namespace(m.Namespace), TrackName: m.TrackName,
		Priority: m.SubscriberPriority, GroupOrder: m.GroupOrder, Forward: m.Forward,
		Filter: m.FilterType, Start: Location(m.Start), EndGroup: m.EndGroup, Params: m.Params,
	}
	go func() {
		var track *Track
		var release func()
		err := error(&RequestError{Code: wire.SubscribeErrorNotSupported, Reason: "not a publisher"})
		if h := s.cfg.Handler; h != nil {
			track, release, err = h.HandleSubscribe(ctx, s, req)
		}
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			if release != nil {
				release()
			}
			code, reason := refusal(err, wire.SubscribeErrorTrackDoesNotExist)
			s.log.Debug("subscribe refused", "ns", req.Namespace.Path(), "track", req.TrackName, "err", err)
			s.removeSubIn(m.RequestID)
			s.sendOrClose(&wire.SubscribeError{RequestID: m.RequestID, ErrorCode: code, Reason: reason})
			return
		}
		s.mu.Lock()
		ss.alias = s.nextAlias
		s.nextAlias++
		s.mu.Unlock()
		order := m.GroupOrder
		if order == wire.GroupOrderPublisher {
			order = wire.GroupOrderAscending
		}
		jp := ss.attach(track, release, order, nil)
		// SUBSCRIBE_OK before any data stream, so the peer knows the alias.
		s.sendOrClose(&wire.SubscribeOK{
			RequestID: m.RequestID, TrackAlias: ss.alias, Expires: 0, GroupOrder: order,
			ContentExists: jp.hasLargest, Largest: wire.Location(jp.largest),
			TrackExtensions: trackExtensions(track),
		})
		if v, ok := m.Params.Uint(wire.ParamNewGroupRequest); ok {
			track.requestNewGroup(v)
		}
		ss.run(jp)
	}()
	return nil
}

func (s *Session) removeSubIn(id uint64) {
	s.mu.Lock()
	_, ok := s.subsIn[id]
	delete(s.subsIn, id)
	s.mu.Unlock()
	if ok {
		s.peerRequestDone()
	}
}

func (s *Session) onSubscribeUpdate(m *wire.SubscribeUpdate) error {
	if err := s.checkPeerRequestID(m.RequestID); err != nil {
		return err
	}
	// The update's request ID is used up at once: nothing stays open.
	defer s.peerRequestDone()
	// Draft-16 answers updates (REQUEST_OK/REQUEST_ERROR) and lets the
	// start move backwards; draft-14 does neither.
	replies := s.codec.Features().UpdateReplies
	s.mu.Lock()
	ss := s.subsIn[m.SubscriptionRequestID]
	s.mu.Unlock()
	if ss == nil {
		// The subscription may have just ended.
		if replies {
			s.sendOrClose(&wire.SubscribeUpdateError{RequestID: m.RequestID,
				ErrorCode: wire.SubscribeErrorTrackDoesNotExist, Reason: "no such subscription"})
		}
		return nil
	}
	ss.mu.Lock()
	if m.Omit&wire.OmitFilter == 0 {
		start := Location(m.Start)
		if start.Less(ss.start) && !replies {
			// Draft-14 forbids it, but moqtransport v0.9.0 sends start
			// {0, 0} in every update it does not give a start: keep the
			// current start and apply the rest.
			start = ss.start
		}
		switch m.Filter {
		case 0: // draft-14: start and end group (+1, 0 = unchanged)
			ss.start = start
			if m.EndGroup > 0 {
				ss.endGroup = m.EndGroup
			}
		case wire.FilterAbsoluteStart:
			ss.start, ss.endGroup = start, 0
		case wire.FilterAbsoluteRange:
			ss.start, ss.endGroup = start, m.EndGroup
		}
		// Largest Object / Next Group Start in an update: the delivery
		// already follows the newest group.
	}
	if m.Omit&wire.OmitPriority == 0 {
		ss.priority = m.SubscriberPriority
	}
	if m.Omit&wire.OmitForward == 0 {
		ss.forward = m.Forward
	}
	if v, ok := m.Params.Uint(wire.ParamNewGroupRequest); ok && ss.track != nil {
		ss.track.requestNewGroup(v)
	}
	close(ss.updated)
	ss.updated = make(chan struct{})
	ss.mu.Unlock()
	if replies {
		s.sendOrClose(&wire.SubscribeUpdateOK{RequestID: m.RequestID})
	}
	return nil
}

func (s *Session) onUnsubscribe(m *wire.Unsubscribe) {
	s.mu.Lock()
	ss := s.subsIn[m.RequestID]
	s.mu.Unlock()
	if ss == nil {
		return
	}
	ss.mu.Lock()
	ss.doneSent = true // no PUBLISH_DONE after UNSUBSCRIBE
	ss.mu.Unlock()
	ss.stop()
}

// stop cancels every stream of the subscription and releases it.
func (ss *serveSub) stop() {
	ss.cancel()
}

// trackExtensions are the Track Extensions a SUBSCRIBE_OK carries
// (draft-16; draft-14 has none): DYNAMIC_GROUPS when the track takes
// new-group requests.
func trackExtensions(t *Track) wire.Params {
	if t.dynamicGroups() {
		return wire.Params{wire.UintParam(wire.Ext16DynamicGroups, 1)}
	}
	return nil
}

// joinAt is where a subscription starts and the Largest Location it
// reports (see Track.joinPoint).
type joinAt struct {
	start      uint64
	haveStart  bool
	largest    Location
	hasLargest bool
}

// attach gives the subscription its track and fixes where it starts.
// A PUBLISH passes the point it reported; a SUBSCRIBE's is computed here.
func (ss *serveSub) attach(track *Track, release func(), order uint8, reported *joinAt) joinAt {
	var jp joinAt
	switch {
	case reported != nil:
		jp = *reported
	case ss.filter == wire.FilterLargestObject:
		jp.start, jp.haveStart, jp.largest, jp.hasLargest = track.joinPoint()
	default:
		jp.largest, jp.hasLargest = track.Largest()
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.track, ss.release, ss.groupOrder = track, release, order
	ss.largest, ss.hasLargest = jp.largest, jp.hasLargest
	return jp
}

// joined returns the subscription's track and reported Largest Location
// for a joining FETCH (nil before the subscription was accepted).
func (ss *serveSub) joined() (*Track, Location, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.track, ss.largest, ss.hasLargest
}

// run is the dispatcher of one subscription: it starts a writer per group.
func (ss *serveSub) run(jp joinAt) {
	s := ss.s
	defer func() {
		ss.cancel()
		ss.wg.Wait()
		if ss.release != nil {
			ss.release()
		}
		if ss.pushed {
			s.mu.Lock()
			delete(s.subsIn, ss.reqID)
			s.mu.Unlock()
		} else {
			s.removeSubIn(ss.reqID)
		}
	}()

	// Where to start. Largest Object starts at the first object of the
	// newest group: players need the group's keyframe (see README).
	var next uint64 // first group to deliver
	firstObj := uint64(0)
	haveNext := false
	switch ss.filter {
	case wire.FilterLargestObject:
		// Fixed when SUBSCRIBE_OK was sent, not from the cache now:
		// groups may have arrived since.
		switch {
		case jp.haveStart:
			next, haveNext = jp.start, true
		case jp.hasLargest:
			next, haveNext, firstObj = jp.largest.Group, true, jp.largest.Object+1
		}
	case wire.FilterNextGroupStart:
		if jp.hasLargest {
			next, haveNext = jp.largest.Group+1, true
		}
	case wire.FilterAbsoluteStart, wire.FilterAbsoluteRange:
		next, haveNext, firstObj = ss.start.Group, true, ss.start.Object
	}
	// Groups can complete out of order (one stream each), so remember
	// which ones were handed to a writer rather than just the last one.
	delivered := make(map[uint64]bool)
	var newest uint64
	for {
		ss.mu.Lock()
		forward, endGroup, updated := ss.forward, ss.endGroup, ss.updated
		if ss.start.Group > next {
			next, haveNext, firstObj = ss.start.Group, true, ss.start.Object
		}
		ss.mu.Unlock()
		if endGroup > 0 && haveNext && next >= endGroup && len(delivered) == 0 {
			ss.finish(wire.PublishDoneSubscriptionEnded, "end group reached")
			return
		}
		if !forward {
			// Paused: when forwarding resumes, start at the newest group.
			if g := ss.track.latestGroup(); g != nil {
				next, haveNext, firstObj = g.ID, true, 0
			}
		}
		var g *Group
		var wait <-chan struct{}
		var ended bool
		if forward {
			g, wait, ended = ss.track.groupFrom(next, haveNext, delivered)
		} else {
			_, wait, ended = ss.track.groupAfter(^uint64(0), true)
		}
		if g != nil {
			if endGroup > 0 && g.ID >= endGroup {
				ss.finish(wire.PublishDoneSubscriptionEnded, "end group reached")
				return
			}
			from := uint64(0)
			if haveNext && g.ID == next {
				from = firstObj
			}
			delivered[g.ID] = true
			if g.ID > newest || len(delivered) == 1 {
				newest = g.ID
			}
			// Forget old entries; groups that old are not delivered any more.
			for id := range delivered {
				if id+64 < newest {
					delete(delivered, id)
				}
			}
			// ...and never look at them again: a group forgotten above but
			// still cached (group IDs jumped by more than 64) would be found
			// again at once, and this loop would spin forever without
			// noticing the end of the subscription.
			if haveNext && newest > 64 && next < newest-64 {
				next, firstObj = newest-64, 0
			}
			if !haveNext || g.ID+uint64(ss.s.cfg.MaxLagGroups) >= newest {
				if !haveNext {
					next, haveNext = g.ID, true
				}
				ss.startWriter(g, from)
			}
			continue
		}
		if ended {
			ss.waitWriters()
			_, status, reason := ss.track.Ended()
			if status == 0 {
				status = wire.PublishDoneTrackEnded
			}
			ss.finish(status, reason)
			return
		}
		select {
		case <-wait:
		case <-updated:
		case <-ss.ctx.Done():
			return
		}
	}
}

// joiningRange is the range of a joining FETCH (draft-14 §9.16.2.1, the
// same in draft-16): from the Largest Location reported in SUBSCRIBE_OK
// back by JoiningStart groups (relative) or from group JoiningStart
// (absolute), up to that Largest Location inclusive. end is exclusive.
func joiningRange(m *wire.Fetch, largest Location) (start, end Location) {
	if m.FetchType == wire.FetchRelativeJoining {
		if largest.Group > m.JoiningStart {
			start.Group = largest.Group - m.JoiningStart
		}
	} else {
		start.Group = m.JoiningStart
	}
	return start, Location{largest.Group, largest.Object + 1}
}

// waitWriters waits until the writers have finished their groups.
func (ss *serveSub) waitWriters() {
	done := make(chan struct{})
	go func() { ss.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ss.ctx.Done():
	}
}

func (ss *serveSub) finish(status uint64, reason string) {
	ss.waitWriters()
	ss.mu.Lock()
	if ss.doneSent {
		ss.mu.Unlock()
		return
	}
	ss.doneSent = true
	count := ss.streams
	ss.mu.Unlock()
	if ss.s.ctx.Err() == nil {
		ss.s.sendOrClose(&wire.PublishDone{RequestID: ss.reqID, StatusCode: status, StreamCount: count, Reason: reason})
	}
}

// urgency maps MoQ priorities (lower = more important) to the transport's
// eight urgency levels; old groups sink below everything current.
func urgency(subscriber, publisher uint8, old bool) int {
	u := int(subscriber)/64 + int(publisher)/128 // 0..4
	if old {
		u += 2
	}
	return min(u, 7)
}

func (ss *serveSub) startWriter(g *Group, from uint64) {
	ctx, cancel := context.WithCancelCause(ss.ctx)
	w := &groupWriter{g: g, cancel: cancel}
	ss.mu.Lock()
	ss.writers[g.ID] = w
	// A subscriber more than MaxLagGroups behind loses its oldest groups.
	var lagging []*groupWriter
	var older []*groupWriter
	for id, ow := range ss.writers {
		if id+uint64(ss.s.cfg.MaxLagGroups) < g.ID {
			lagging = append(lagging, ow)
		} else if id < g.ID {
			older = append(older, ow)
		}
	}
	prio, order := ss.priority, ss.groupOrder
	ss.mu.Unlock()
	for _, ow := range lagging {
		ow.cancel(errLagging)
	}
	if order == wire.GroupOrderDescending {
		for _, ow := range older {
			ow.mu.Lock()
			if ow.stream != nil {
				ow.stream.SetPriority(urgency(prio, ow.g.Priority(), true))
			}
			ow.mu.Unlock()
		}
	}
	ss.wg.Add(1)
	ss.s.writers.Add(1)
	go func() {
		defer ss.wg.Done()
		defer ss.s.writers.Done()
		defer func() {
			ss.mu.Lock()
			delete(ss.writers, g.ID)
			ss.mu.Unlock()
		}()
		ss.writeGroup(ctx, w, from)
	}()
}

// writeGroup sends one group on its own subgroup stream.
func (ss *serveSub) writeGroup(ctx context.Context, w *groupWriter, from uint64) {
	s := ss.s
	g := w.g
	var stream SendStream
	var hdr wire.SubgroupHeader
	var prevID uint64
	first := true
	buf := make([]byte, 0, 64)
	reset := func(code uint64) {
		if stream != nil {
			stream.CancelWrite(code)
		}
	}
	writeFailed := func() {
		if context.Cause(ctx) == errLagging {
			s.groupsDropped.Add(1)
			reset(wire.ResetDeliveryTimeout)
		}
	}
	for i := 0; ; {
		o, ok, done, dropped, wait := g.object(i)
		if !ok {
			if done {
				s.log.Debug("group writer done", "req", ss.reqID, "group", g.ID, "dropped", dropped, "objects", i, "stream", stream != nil)
				if dropped {
					s.groupsDropped.Add(1)
					reset(wire.ResetDeliveryTimeout)
				} else if stream != nil {
					stream.Close()
				}
				return
			}
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				if context.Cause(ctx) == errLagging {
					s.groupsDropped.Add(1)
					reset(wire.ResetDeliveryTimeout)
				} else {
					reset(wire.ResetCancelled)
				}
				return
			}
		}
		i++
		if o.ID < from {
			continue
		}
		if stream == nil {
			st, err := s.conn.OpenUniStreamSync(ctx)
			if err != nil {
				return
			}
			stream = st
			// A blocked Write does not watch ctx: reset the stream when the
			// group is abandoned (lagging subscriber, unsubscribe, close).
			stop := context.AfterFunc(ctx, func() {
				code := uint64(wire.ResetCancelled)
				if context.Cause(ctx) == errLagging {
					code = wire.ResetDeliveryTimeout
				}
				st.CancelWrite(code)
			})
			defer stop()
			ss.mu.Lock()
			ss.streams++
			prio := ss.priority
			ss.mu.Unlock()
			st.SetPriority(urgency(prio, g.Priority(), false))
			w.mu.Lock()
			w.stream = st
			w.mu.Unlock()
			// Subgroup 0 implicit (0x10) unless the object says otherwise;
			// extensions are carried when the group has them.
			mode := 0
			if o.SubgroupID != 0 {
				mode = 2
			}
			hdr = wire.SubgroupHeader{
				Type:       wire.SubgroupType(len(o.Extensions) > 0, false, mode),
				TrackAlias: ss.alias, GroupID: g.ID, SubgroupID: o.SubgroupID,
				PublisherPriority: g.Priority(),
			}
			// The stream's header alone: the objects' headers go with
			// their payload in images shared between subscribers, and
			// this one names the subscriber's track alias.
			if _, err := st.Write(s.codec.AppendSubgroupHeader(buf[:0], hdr)); err != nil {
				writeFailed()
				return
			}
		}
		ext := o.Extensions
		if !hdr.HasExtensions() {
			ext = nil
		}
		var err error
		buf, err = s.codec.AppendSubgroupObject(buf[:0], hdr.Type, prevID, first, wire.ObjectHeader{
			ObjectID: o.ID, Extensions: ext, PayloadLen: uint64(len(o.Payload)), Status: o.Status,
		})
		if err != nil {
			// Not expressible in this version (draft-16 has no Does Not
			// Exist status: leaving the object out says the same).
			s.log.Debug("object left out", "group", g.ID, "object", o.ID, "err", err)
			continue
		}
		prevID, first = o.ID, false
		img := g.wire(i-1, buf)
		if img == nil {
			continue // evicted: the next object() says so
		}
		if _, err = stream.Write(img); err != nil {
			writeFailed()
			return
		}
		s.objectsOut.Add(1)
		s.bytesOut.Add(uint64(len(o.Payload)))
	}
}

// ---- FETCH ----

type serveFetch struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (s *Session) onFetch(m *wire.Fetch) error {
	if err := s.checkPeerRequestID(m.RequestID); err != nil {
		return err
	}
	if m.GroupOrder > wire.GroupOrderDescending {
		return protocolViolation("group order %d", m.GroupOrder)
	}
	var joined *serveSub
	switch m.FetchType {
	case wire.FetchStandalone:
		if Location(m.End).Less(Location(m.Start)) && !(m.End.Group == m.Start.Group && m.End.Object == 0) {
			// INVALID_RANGE in both drafts (draft-14 §13.1.5): refuse
			// the fetch, keep the session.
			s.refuseRequest(&wire.FetchError{RequestID: m.RequestID, ErrorCode: wire.FetchErrorInvalidRange,
				Reason: "fetch end before start"})
			return nil
		}
	case wire.FetchRelativeJoining, wire.FetchAbsoluteJoining:
		s.mu.Lock()
		joined = s.subsIn[m.JoiningRequestID]
		s.mu.Unlock()
		if joined != nil && joined.filter != wire.FilterLargestObject {
			return protocolViolation("joining fetch on a subscription without the Largest Object filter")
		}
	default:
		return protocolViolation("fetch type %d", m.FetchType)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	f := &serveFetch{ctx: ctx, cancel: cancel}
	s.mu.Lock()
	s.fetchesIn[m.RequestID] = f
	s.mu.Unlock()
	go func() {
		defer func() {
			cancel()
			s.mu.Lock()
			delete(s.fetchesIn, m.RequestID)
			s.mu.Unlock()
			s.peerRequestDone()
			if s.requestStreams() {
				s.finishRequest17(m.RequestID, nil) // the fetch is over: FIN its request stream
			}
		}()
		fail := func(code uint64, reason string) {
			s.sendOrClose(&wire.FetchError{RequestID: m.RequestID, ErrorCode: code, Reason: reason})
		}
		var track *Track
		var start Location
		var end Location // exclusive
		switch m.FetchType {
		case wire.FetchStandalone:
			var release func()
			err := error(&RequestError{Code: wire.FetchErrorNotSupported, Reason: "not a publisher"})
			if h := s.cfg.Handler; h != nil {
				track, release, err = h.HandleFetch(ctx, s, &FetchRequest{
					RequestID: m.RequestID, Namespace: Namespace(m.Namespace), TrackName: m.TrackName,
					Start: Location(m.Start), End: Location(m.End), Params: m.Params,
				})
			}
			if release != nil {
				defer release()
			}
			if err != nil {
				code, reason := refusal(err, wire.FetchErrorTrackDoesNotExist)
				fail(code, reason)
				return
			}
			start = Location(m.Start)
			end = Location(m.End)
			if end.Object == 0 { // the whole end group
				end = Location{Group: end.Group + 1}
			}
		default:
			var largest Location
			var has bool
			if joined != nil {
				track, largest, has = joined.joined()
			}
			if track == nil {
				fail(wire.FetchErrorInvalidJoiningRequestID, "no such subscription")
				return
			}
			if !has {
				fail(wire.FetchErrorInvalidRange, "no content before the subscription")
				return
			}
			start, end = joiningRange(m, largest)
		}
		// Collect the cached objects in range.
		type item struct{ o Object }
		var objs []Object
		for _, g := range track.cachedGroups() {
			os, _ := g.Objects()
			for _, o := range os {
				l := Location{g.ID, o.ID}
				if l.Less(start) || !l.Less(end) {
					continue
				}
				objs = append(objs, o)
			}
		}
		order := m.GroupOrder
		if order == wire.GroupOrderPublisher {
			order = wire.GroupOrderAscending
		}
		// Draft-16 answers an empty range with FETCH_OK and an empty stream.
		if len(objs) == 0 && m.FetchType == wire.FetchStandalone && !s.codec.Features().EmptyFetchOK {
			fail(wire.FetchErrorNoObjects, "no objects in range")
			return
		}
		if order == wire.GroupOrderDescending {
			objs = descendingGroups(objs)
		}
		endLoc := start
		endOfTrack := false
		if n := len(objs); n > 0 {
			last := objs[n-1]
			if order == wire.GroupOrderDescending {
				last = objs[0]
				for _, o := range objs {
					if last.GroupID < o.GroupID || (last.GroupID == o.GroupID && last.ID < o.ID) {
						last = o
					}
				}
			}
			endLoc = Location{last.GroupID, last.ID + 1}
		}
		if ended, _, _ := track.Ended(); ended {
			if l, ok := track.Largest(); ok && !endLoc.Less(Location{l.Group, l.Object + 1}) {
				endOfTrack = true
			}
		}
		s.sendOrClose(&wire.FetchOK{RequestID: m.RequestID, GroupOrder: order, EndOfTrack: endOfTrack, End: wire.Location(endLoc)})
		st, err := s.conn.OpenUniStreamSync(ctx)
		if err != nil {
			return
		}
		st.SetPriority(urgency(m.SubscriberPriority, 128, false))
		buf := s.codec.AppendFetchHeader(nil, m.RequestID)
		var prev *wire.FetchObjectHeader // draft-16 encodes each object against the previous one
		for _, o := range objs {
			oh := wire.FetchObjectHeader{
				GroupID: o.GroupID, SubgroupID: o.SubgroupID, ObjectID: o.ID, PublisherPriority: o.Priority,
				Extensions: o.Extensions, PayloadLen: uint64(len(o.Payload)), Status: o.Status,
			}
			var err error
			if buf, err = s.codec.AppendFetchObject(buf, prev, oh); err != nil {
				continue // a status draft-16 fetches do not carry: its absence says it
			}
			prev = &oh
			if _, err := st.Write(buf); err != nil {
				return
			}
			if _, err := st.Write(o.Payload); err != nil {
				return
			}
			buf = buf[:0]
			s.objectsOut.Add(1)
			s.bytesOut.Add(uint64(len(o.Payload)))
			if ctx.Err() != nil {
				st.CancelWrite(wire.ResetCancelled)
				return
			}
		}
		if len(buf) > 0 {
			st.Write(buf)
		}
		st.Close()
	}()
	return nil
}

// descendingGroups reorders objects by descending group, keeping object
// order inside each group.
func descendingGroups(objs []Object) []Object {
	out := make([]Object, 0, len(objs))
	end := len(objs)
	for end > 0 {
		startIdx := end - 1
		for startIdx > 0 && objs[startIdx-1].GroupID == objs[end-1].GroupID {
			startIdx--
		}
		out = append(out, objs[startIdx:end]...)
		end = startIdx
	}
	return out
}

func (s *Session) onFetchCancel(m *wire.FetchCancel) {
	s.mu.Lock()
	f := s.fetchesIn[m.RequestID]
	s.mu.Unlock()
	if f != nil {
		f.cancel()
	}
}

// ---- TRACK_STATUS ----

func (s *Session) onTrackStatus(m *wire.TrackStatus) error {
	if err := s.checkPeerRequestID(m.RequestID); err != nil {
		return err
	}
	go func() {
		defer s.peerRequestDone()
		var track *Track
		var release func()
		err := error(&RequestError{Code: wire.SubscribeErrorNotSupported, Reason: "not a publisher"})
		if h := s.cfg.Handler; h != nil {
			track, release, err = h.HandleTrackStatus(s.ctx, s, &SubscribeRequest{
				RequestID: m.RequestID, Namespace: Namespace(m.Namespace), TrackName: m.TrackName,
				Priority: m.SubscriberPriority, GroupOrder: m.GroupOrder, Filter: m.FilterType, Params: m.Params,
			})
		}
		if release != nil {
			defer release()
		}
		if err != nil {
			code, reason := refusal(err, wire.SubscribeErrorTrackDoesNotExist)
			s.sendOrClose(&wire.TrackStatusError{RequestID: m.RequestID, ErrorCode: code, Reason: reason})
			return
		}
		largest, has := track.Largest()
		s.sendOrClose(&wire.TrackStatusOK{RequestID: m.RequestID, TrackAlias: 0, GroupOrder: wire.GroupOrderAscending,
			ContentExists: has, Largest: wire.Location(largest)})
	}()
	return nil
}

// ---- PUBLISH (push) ----

// Publish pushes a track to the peer with PUBLISH; objects flow as soon
// as the peer accepts with Forward set. The returned stop function ends
// the push with PUBLISH_DONE.
func (s *Session) Publish(ctx context.Context, ns Namespace, name string, track *Track) (func(), error) {
	id, err := s.allocRequestID(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	alias := s.nextAlias
	s.nextAlias++
	s.mu.Unlock()
	// A peer that takes the PUBLISH as a Largest Object subscription gets
	// the newest group from its first object, as a SUBSCRIBE would.
	var jp joinAt
	jp.start, jp.haveStart, jp.largest, jp.hasLargest = track.joinPoint()
	r, err := s.request(ctx, id, &wire.Publish{
		RequestID: id, Namespace: ns, TrackName: name, TrackAlias: alias,
		GroupOrder: wire.GroupOrderAscending, ContentExists: jp.hasLargest, Largest: wire.Location(jp.largest), Forward: true,
	})
	if err != nil {
		return nil, err
	}
	switch r := r.(type) {
	case *wire.PublishError:
		return nil, &RequestError{Code: r.ErrorCode, Reason: r.Reason}
	case *wire.PublishOK:
		sctx, cancel := context.WithCancel(s.ctx)
		ss := &serveSub{
			s: s, reqID: id, alias: alias, track: track, ctx: sctx, cancel: cancel, pushed: true,
			priority: r.SubscriberPriority, groupOrder: r.GroupOrder, forward: r.Forward,
			filter: r.FilterType, start: Location(r.Start), updated: make(chan struct{}),
			writers: make(map[uint64]*groupWriter),
		}
		if ss.filter == 0 {
			ss.filter = wire.FilterLargestObject
		}
		if r.FilterType == wire.FilterAbsoluteRange {
			ss.endGroup = r.EndGroup + 1
		}
		order := ss.groupOrder
		if order == wire.GroupOrderPublisher {
			order = wire.GroupOrderAscending
		}
		ss.attach(track, nil, order, &jp)
		s.mu.Lock()
		s.subsIn[id] = ss
		s.mu.Unlock()
		go ss.run(jp)
		return func() {
			ss.finish(wire.PublishDoneTrackEnded, "publisher stopped")
			ss.stop()
		}, nil
	default:
		return nil, protocolViolation("unexpected reply %T to PUBLISH", r)
	}
}
