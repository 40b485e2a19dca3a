package moq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// SubscribeOptions tune an outgoing SUBSCRIBE.
type SubscribeOptions struct {
	Priority   uint8
	GroupOrder uint8
	// Paused sends Forward = 0: no objects until Resume.
	Paused bool
	// Filter defaults to Largest Object.
	Filter   uint64
	Start    Location
	EndGroup uint64
	// AuthToken is sent as the AUTHORIZATION TOKEN parameter.
	AuthToken string
	// Track, if set, receives the objects (a relay keeps one track across
	// upstream reconnects); otherwise a new track is made with Limits.
	Track  *Track
	Limits TrackLimits
}

// Subscription is an outgoing subscription: its objects arrive in Track.
type Subscription struct {
	s             *Session
	RequestID     uint64
	Alias         uint64
	Track         *Track
	Largest       Location
	ContentExists bool
	GroupOrder    uint8
	// pubPriority is the publisher priority of draft-16 streams and
	// datagrams that leave it out (DEFAULT_PUBLISHER_PRIORITY).
	pubPriority uint8
	// dynamicGroups: the publisher takes NEW_GROUP_REQUEST (draft-16).
	dynamicGroups bool

	done chan struct{}
	once sync.Once

	mu          sync.Mutex
	status      uint64
	reason      string
	expected    *uint64 // stream count from PUBLISH_DONE
	seen        uint64  // streams received
	open        int     // streams being read
	doneTimer   *time.Timer
	unsubscribe bool
	ownTrack    bool // made by Subscribe, so it ends with the subscription
}

// Done is closed when the subscription ends (PUBLISH_DONE, UNSUBSCRIBE or
// the end of the session).
func (sub *Subscription) Done() <-chan struct{} { return sub.done }

// Status returns the PUBLISH_DONE status code and reason once Done.
func (sub *Subscription) Status() (uint64, string) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.status, sub.reason
}

// Subscribe subscribes to a track of the peer.
func (s *Session) Subscribe(ctx context.Context, ns Namespace, name string, opts SubscribeOptions) (*Subscription, error) {
	id, err := s.allocRequestID(ctx)
	if err != nil {
		return nil, err
	}
	track := opts.Track
	if track == nil {
		limits := opts.Limits
		if limits == (TrackLimits{}) {
			limits = s.cfg.TrackLimits
		}
		track = NewTrack(ns, name, limits)
	}
	sub := &Subscription{s: s, RequestID: id, Track: track, done: make(chan struct{}), ownTrack: opts.Track == nil}
	if opts.Filter == 0 {
		opts.Filter = wire.FilterLargestObject
	}
	m := &wire.Subscribe{
		RequestID: id, Namespace: ns, TrackName: name, SubscriberPriority: opts.Priority,
		GroupOrder: opts.GroupOrder, Forward: !opts.Paused, FilterType: opts.Filter,
		Start: wire.Location(opts.Start), EndGroup: opts.EndGroup,
	}
	if opts.AuthToken != "" {
		m.Params = wire.Params{{Key: wire.ParamAuthToken, Bytes: EncodeAuthToken(opts.AuthToken)}}
	}
	s.mu.Lock()
	s.subsOut[id] = sub
	s.mu.Unlock()
	r, err := s.request(ctx, id, m)
	if err != nil {
		s.mu.Lock()
		delete(s.subsOut, id)
		s.mu.Unlock()
		return nil, err
	}
	switch r := r.(type) {
	case *wire.SubscribeError:
		s.mu.Lock()
		delete(s.subsOut, id)
		s.mu.Unlock()
		return nil, &RequestError{Code: r.ErrorCode, Reason: r.Reason}
	case *wire.SubscribeOK:
		sub.Alias, sub.ContentExists, sub.GroupOrder = r.TrackAlias, r.ContentExists, r.GroupOrder
		sub.pubPriority = defaultPublisherPriority(r.TrackExtensions)
		if v, ok := r.TrackExtensions.Uint(wire.Ext16DynamicGroups); ok && v == 1 {
			sub.dynamicGroups = true
		}
		sub.Largest = Location(r.Largest)
		if r.ContentExists {
			track.SetLargest(sub.Largest)
		}
		s.mu.Lock()
		if _, dup := s.subsByAlias[r.TrackAlias]; dup {
			s.mu.Unlock()
			err := &wire.SessionError{Code: wire.DuplicateTrackAlias, Reason: fmt.Sprintf("track alias %d", r.TrackAlias)}
			s.fail(err)
			return nil, err
		}
		s.subsByAlias[r.TrackAlias] = sub
		close(s.aliasChanged)
		s.aliasChanged = make(chan struct{})
		s.mu.Unlock()
		return sub, nil
	default:
		return nil, protocolViolation("unexpected reply %T to SUBSCRIBE", r)
	}
}

// Unsubscribe ends the subscription. No UNSUBSCRIBE is sent once the
// publisher ended the subscription with PUBLISH_DONE: the request is closed
// (some peers, e.g. Eyevinn/moqtransport, treat an UNSUBSCRIBE for it as a
// fatal unknown request ID).
func (sub *Subscription) Unsubscribe() {
	sub.mu.Lock()
	already := sub.unsubscribe
	sub.unsubscribe = true
	status, reason := uint64(wire.PublishDoneSubscriptionEnded), "unsubscribed"
	ended := sub.expected != nil // PUBLISH_DONE received
	if ended {
		status, reason = sub.status, sub.reason
	}
	sub.mu.Unlock()
	if already {
		return
	}
	select {
	case <-sub.done:
		ended = true
	default:
	}
	if !ended && sub.s.ctx.Err() == nil {
		sub.s.send(&wire.Unsubscribe{RequestID: sub.RequestID})
	}
	sub.finish(status, reason, false)
}

// Update sends SUBSCRIBE_UPDATE (priority, forward, range).
func (sub *Subscription) Update(ctx context.Context, start Location, endGroup uint64, priority uint8, forward bool) error {
	return sub.update(ctx, &wire.SubscribeUpdate{Start: wire.Location(start), EndGroup: endGroup,
		SubscriberPriority: priority, Forward: forward})
}

// ErrNoDynamicGroups: the subscription's publisher or draft cannot be
// asked for a new group.
var ErrNoDynamicGroups = errors.New("moq: the track takes no new-group requests")

// RequestNewGroup asks the publisher for a new group (draft-16
// NEW_GROUP_REQUEST in REQUEST_UPDATE), where the track allows it.
func (sub *Subscription) RequestNewGroup(ctx context.Context) error {
	if !sub.s.codec.Features().DynamicGroups || !sub.dynamicGroups {
		return ErrNoDynamicGroups
	}
	after := uint64(0)
	if l, ok := sub.Track.Largest(); ok {
		after = l.Group + 1
	}
	return sub.update(ctx, &wire.SubscribeUpdate{Omit: wire.OmitFilter | wire.OmitPriority | wire.OmitForward,
		Params: wire.Params{wire.UintParam(wire.ParamNewGroupRequest, after)}})
}

func (sub *Subscription) update(ctx context.Context, m *wire.SubscribeUpdate) error {
	s := sub.s
	id, err := s.allocRequestID(ctx)
	if err != nil {
		return err
	}
	if s.codec.Features().UpdateReplies {
		// The reply names only the request ID: say what it answers.
		s.mu.Lock()
		s.reqTypes[id] = wire.MsgSubscribeUpdate
		s.mu.Unlock()
	}
	m.RequestID, m.SubscriptionRequestID = id, sub.RequestID
	err = s.send(m)
	s.requestWritten()
	return err
}

// defaultPublisherPriority is the DEFAULT_PUBLISHER_PRIORITY track
// extension (draft-16), 128 when absent.
func defaultPublisherPriority(exts wire.Params) uint8 {
	if v, ok := exts.Uint(wire.Ext16DefaultPublisherPriority); ok && v <= 255 {
		return uint8(v)
	}
	return 128
}

// finish ends the subscription; endTrack ends its track too (not when the
// track is a relay's, which outlives one upstream subscription).
func (sub *Subscription) finish(status uint64, reason string, endTrack bool) {
	sub.once.Do(func() {
		sub.mu.Lock()
		sub.status, sub.reason = status, reason
		if sub.doneTimer != nil {
			sub.doneTimer.Stop()
		}
		sub.mu.Unlock()
		s := sub.s
		s.mu.Lock()
		delete(s.subsOut, sub.RequestID)
		if s.subsByAlias[sub.Alias] == sub {
			delete(s.subsByAlias, sub.Alias)
		}
		s.mu.Unlock()
		if endTrack && sub.ownTrack {
			sub.Track.End(status, reason)
		}
		close(sub.done)
	})
}

func (s *Session) onPublishDone(m *wire.PublishDone) {
	s.mu.Lock()
	sub := s.subsOut[m.RequestID]
	s.mu.Unlock()
	if sub == nil {
		return
	}
	sub.mu.Lock()
	n := m.StreamCount
	sub.expected = &n
	sub.status, sub.reason = m.StatusCode, m.Reason
	complete := sub.seen >= n && sub.open == 0
	if !complete {
		// Streams may still be in flight; don't wait for them forever.
		sub.doneTimer = time.AfterFunc(2*time.Second, func() { sub.finish(m.StatusCode, m.Reason, true) })
	}
	sub.mu.Unlock()
	if complete {
		sub.finish(m.StatusCode, m.Reason, true)
	}
}

func (sub *Subscription) streamStarted() {
	sub.mu.Lock()
	sub.seen++
	sub.open++
	sub.mu.Unlock()
}

func (sub *Subscription) streamEnded() {
	sub.mu.Lock()
	sub.open--
	complete := sub.expected != nil && sub.seen >= *sub.expected && sub.open == 0
	status, reason := sub.status, sub.reason
	sub.mu.Unlock()
	if complete {
		sub.finish(status, reason, true)
	}
}

// lookupAlias finds the subscription of a track alias, waiting a little:
// data can overtake the SUBSCRIBE_OK / PUBLISH that names the alias.
func (s *Session) lookupAlias(alias uint64) *Subscription {
	deadline := time.NewTimer(s.cfg.RequestTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		sub := s.subsByAlias[alias]
		ch := s.aliasChanged
		s.mu.Unlock()
		if sub != nil {
			return sub
		}
		select {
		case <-ch:
		case <-deadline.C:
			return nil
		case <-s.ctx.Done():
			return nil
		}
	}
}

// ---- data streams ----

func (s *Session) acceptUniLoop() {
	defer s.wg.Done()
	for {
		st, err := s.conn.AcceptUniStream(s.ctx)
		if err != nil {
			return
		}
		go s.handleUniStream(st)
	}
}

func (s *Session) handleUniStream(st ReceiveStream) {
	r := s.codec.NewStreamReader(st)
	typ, err := r.ReadStreamType()
	if err != nil {
		st.CancelRead(wire.ResetInternalError)
		var se *wire.SessionError
		if errors.As(err, &se) {
			s.fail(err) // an unknown stream type
		}
		return
	}
	// The reader knows the version's types: anything else is a subgroup.
	if typ == wire.StreamTypeFetch {
		s.readFetch(r, st)
	} else {
		s.readSubgroup(r, typ, st)
	}
}

// readPayload reads n bytes, growing the buffer as bytes arrive so that a
// declared length alone cannot make us allocate; every allocation is
// charged to the session's budgets first (ErrBudget if over), and given
// back when the object is complete or abandoned: the caller's done.
func (s *Session) readPayload(r io.Reader, n uint64) (_ []byte, done func(), err error) {
	const chunk = 64 << 10
	f := &inflight{session: s.inflight, shared: s.cfg.SharedBytesInFlight}
	defer func() {
		if err != nil {
			f.done()
		}
	}()
	if n <= chunk {
		if err := f.take(int(n)); err != nil {
			return nil, nil, err
		}
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, f.done, err
	}
	if err := f.take(chunk); err != nil {
		return nil, nil, err
	}
	b := make([]byte, 0, chunk)
	for uint64(len(b)) < n {
		k := min(n-uint64(len(b)), chunk)
		if uint64(cap(b)-len(b)) < k {
			c := min(n, uint64(2*cap(b)))
			if err := f.take(int(c)); err != nil {
				return nil, nil, err
			}
			nb := make([]byte, len(b), c)
			copy(nb, b)
			f.give(cap(b)) // the old buffer is garbage now
			b = nb
		}
		m, err := io.ReadFull(r, b[len(b):len(b)+int(k)])
		b = b[:len(b)+m]
		if err != nil {
			return nil, nil, err
		}
	}
	return b, f.done, nil
}

func (s *Session) readSubgroup(r wire.DataReader, typ uint64, st ReceiveStream) {
	hdr, err := r.ReadSubgroupHeader(typ)
	if err != nil {
		s.dataStreamError(st, err)
		return
	}
	sub := s.lookupAlias(hdr.TrackAlias)
	if sub == nil {
		s.log.Debug("data stream for unknown track alias", "alias", hdr.TrackAlias)
		st.CancelRead(wire.ResetCancelled)
		return
	}
	sub.streamStarted()
	defer sub.streamEnded()
	if hdr.DefaultPriority {
		hdr.PublisherPriority = sub.pubPriority
	}
	g := sub.Track.OpenGroup(hdr.GroupID)
	if g == nil {
		s.log.Debug("group refused (too old for the cache)", "track", sub.Track.Name, "group", hdr.GroupID)
		st.CancelRead(wire.ResetCancelled)
		return
	}
	g.SetPriority(hdr.PublisherPriority)
	var prev uint64
	first := true
	for {
		oh, err := r.ReadSubgroupObject(hdr, prev, first, s.cfg.MaxObjectSize)
		if err == io.EOF {
			g.Close()
			return
		}
		if err != nil {
			g.Drop()
			s.dataStreamError(st, err)
			return
		}
		if first && hdr.SubgroupIDMode() == wire.SubgroupIDFirstObject {
			hdr.SubgroupID = oh.ObjectID
		}
		prev, first = oh.ObjectID, false
		var payload []byte
		if oh.PayloadLen > 0 {
			var done func()
			if payload, done, err = s.readPayload(r, oh.PayloadLen); err != nil {
				g.Drop()
				s.dataStreamError(st, err)
				return
			}
			// Complete: the cache's limits take over.
			done()
		}
		o := Object{SubgroupID: hdr.SubgroupID, ID: oh.ObjectID, Priority: hdr.PublisherPriority,
			Extensions: oh.Extensions, Payload: payload}
		if oh.PayloadLen == 0 {
			o.Status = oh.Status
		}
		s.objectsIn.Add(1)
		s.bytesIn.Add(uint64(len(payload)))
		if o.Status == StatusEndOfGroup || o.Status == StatusEndOfTrack {
			g.Close()
			if o.Status == StatusEndOfTrack {
				sub.Track.End(wire.PublishDoneTrackEnded, "end of track")
			}
			continue
		}
		if err := g.Append(o); err != nil {
			s.log.Debug("object refused", "track", sub.Track.Name, "err", err)
			g.Drop()
			st.CancelRead(wire.ResetCancelled)
			return
		}
	}
}

// dataStreamError handles a failed data stream: a reset is normal; a
// malformed stream is a protocol violation that ends the session.
func (s *Session) dataStreamError(st ReceiveStream, err error) {
	s.log.Debug("data stream ended", "err", err)
	var se *wire.SessionError
	if errors.As(err, &se) {
		st.CancelRead(wire.ResetInternalError)
		s.fail(err)
		return
	}
	st.CancelRead(wire.ResetCancelled)
}

func (s *Session) datagramLoop() {
	defer s.wg.Done()
	for {
		b, err := s.conn.ReceiveDatagram(s.ctx)
		if err != nil {
			return
		}
		d, err := s.codec.ParseDatagram(b)
		if err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		sub := s.subsByAlias[d.TrackAlias]
		s.mu.Unlock()
		if sub == nil {
			continue // unknown alias: a datagram may be dropped
		}
		if d.DefaultPriority {
			d.PublisherPriority = sub.pubPriority
		}
		g := sub.Track.OpenGroup(d.GroupID)
		if g == nil {
			continue
		}
		g.SetPriority(d.PublisherPriority)
		if len(d.Payload) == 0 && d.Status != StatusNormal {
			if d.Status == StatusEndOfGroup {
				g.Close()
			}
			continue
		}
		// The datagram buffer is ours to keep.
		g.Append(Object{ID: d.ObjectID, Priority: d.PublisherPriority, Extensions: d.Extensions, Payload: d.Payload})
		if d.EndOfGroup {
			g.Close()
		}
		s.objectsIn.Add(1)
		s.bytesIn.Add(uint64(len(d.Payload)))
	}
}

// ---- incoming PUBLISH ----

func (s *Session) onPublish(m *wire.Publish) error {
	if err := s.checkPeerRequestID(m.RequestID); err != nil {
		return err
	}
	s.mu.Lock()
	_, dup := s.subsByAlias[m.TrackAlias]
	s.mu.Unlock()
	if dup {
		return &wire.SessionError{Code: wire.DuplicateTrackAlias, Reason: fmt.Sprintf("track alias %d", m.TrackAlias)}
	}
	go func() {
		var track *Track
		var release func()
		err := error(&RequestError{Code: wire.PublishErrorNotSupported, Reason: "not accepting PUBLISH"})
		if h := s.cfg.Handler; h != nil {
			track, release, err = h.HandlePublish(s.ctx, s, &PublishRequest{
				RequestID: m.RequestID, Namespace: Namespace(m.Namespace), TrackName: m.TrackName,
				GroupOrder: m.GroupOrder, ContentExists: m.ContentExists, Largest: Location(m.Largest), Params: m.Params,
			})
		}
		if err != nil {
			if release != nil {
				release()
			}
			code, reason := refusal(err, wire.PublishErrorUninterested)
			s.sendOrClose(&wire.PublishError{RequestID: m.RequestID, ErrorCode: code, Reason: reason})
			s.peerRequestDone()
			return
		}
		sub := &Subscription{s: s, RequestID: m.RequestID, Alias: m.TrackAlias, Track: track,
			Largest: Location(m.Largest), ContentExists: m.ContentExists, GroupOrder: m.GroupOrder,
			done: make(chan struct{}), pubPriority: defaultPublisherPriority(m.TrackExtensions)}
		s.mu.Lock()
		s.subsOut[m.RequestID] = sub
		s.subsByAlias[m.TrackAlias] = sub
		close(s.aliasChanged)
		s.aliasChanged = make(chan struct{})
		s.mu.Unlock()
		s.sendOrClose(&wire.PublishOK{RequestID: m.RequestID, Forward: true, SubscriberPriority: 128,
			GroupOrder: wire.GroupOrderAscending, FilterType: wire.FilterLargestObject})
		<-sub.done
		if release != nil {
			release()
		}
		s.peerRequestDone()
	}()
	return nil
}

// ---- FETCH (client side) ----

// FetchResult delivers the objects of a FETCH.
type FetchResult struct {
	s          *Session
	RequestID  uint64
	End        Location
	EndOfTrack bool
	objs       chan Object
	done       chan struct{}
	once       sync.Once
	err        error
}

// Next returns the next fetched object, or io.EOF after the last one.
func (f *FetchResult) Next(ctx context.Context) (Object, error) {
	select {
	case o, ok := <-f.objs:
		if ok {
			return o, nil
		}
		if f.err != nil {
			return Object{}, f.err
		}
		return Object{}, io.EOF
	case <-ctx.Done():
		return Object{}, ctx.Err()
	}
}

// Cancel sends FETCH_CANCEL.
func (f *FetchResult) Cancel() {
	if f.s.ctx.Err() == nil {
		f.s.send(&wire.FetchCancel{RequestID: f.RequestID})
	}
	f.finish(errors.New("moq: fetch cancelled"))
}

func (f *FetchResult) finish(err error) {
	f.once.Do(func() {
		f.err = err
		close(f.done)
	})
}

// Fetch sends a standalone FETCH for [start, end] (end.Object 0 = the
// whole end group).
func (s *Session) Fetch(ctx context.Context, ns Namespace, name string, start, end Location, priority uint8) (*FetchResult, error) {
	return s.fetch(ctx, &wire.Fetch{SubscriberPriority: priority, FetchType: wire.FetchStandalone,
		Namespace: ns, TrackName: name, Start: wire.Location(start), End: wire.Location(end)})
}

// JoiningFetch sends a relative joining FETCH for the groups before the
// subscription's start.
func (s *Session) JoiningFetch(ctx context.Context, sub *Subscription, groups uint64, priority uint8) (*FetchResult, error) {
	return s.fetch(ctx, &wire.Fetch{SubscriberPriority: priority, FetchType: wire.FetchRelativeJoining,
		JoiningRequestID: sub.RequestID, JoiningStart: groups})
}

func (s *Session) fetch(ctx context.Context, m *wire.Fetch) (*FetchResult, error) {
	id, err := s.allocRequestID(ctx)
	if err != nil {
		return nil, err
	}
	m.RequestID = id
	f := &FetchResult{s: s, RequestID: id, objs: make(chan Object, 64), done: make(chan struct{})}
	s.mu.Lock()
	s.fetchesOut[id] = f
	s.mu.Unlock()
	r, err := s.request(ctx, id, m)
	if err != nil {
		s.mu.Lock()
		delete(s.fetchesOut, id)
		s.mu.Unlock()
		return nil, err
	}
	switch r := r.(type) {
	case *wire.FetchError:
		s.mu.Lock()
		delete(s.fetchesOut, id)
		s.mu.Unlock()
		return nil, &RequestError{Code: r.ErrorCode, Reason: r.Reason}
	case *wire.FetchOK:
		f.End, f.EndOfTrack = Location(r.End), r.EndOfTrack
		return f, nil
	default:
		return nil, protocolViolation("unexpected reply %T to FETCH", r)
	}
}

func (s *Session) readFetch(r wire.DataReader, st ReceiveStream) {
	h, err := r.ReadFetchHeader()
	if err != nil {
		s.dataStreamError(st, err)
		return
	}
	// The stream can overtake FETCH_OK; the fetch is registered before the
	// FETCH is sent, so it is there.
	s.mu.Lock()
	f := s.fetchesOut[h.RequestID]
	s.mu.Unlock()
	if f == nil {
		st.CancelRead(wire.ResetCancelled)
		return
	}
	defer func() {
		s.mu.Lock()
		delete(s.fetchesOut, h.RequestID)
		s.mu.Unlock()
		if s.requestStreams() {
			s.finishRequest17(h.RequestID, nil) // all received: FIN the request stream
		}
	}()
	for {
		oh, err := r.ReadFetchObject(s.cfg.MaxObjectSize)
		if err == io.EOF {
			f.finish(nil)
			close(f.objs)
			return
		}
		if err != nil {
			f.finish(fmt.Errorf("moq: fetch stream: %w", err))
			close(f.objs)
			s.dataStreamError(st, err)
			return
		}
		var payload []byte
		if oh.PayloadLen > 0 {
			var done func()
			if payload, done, err = s.readPayload(r, oh.PayloadLen); err == nil {
				done() // complete: handed to the fetch's reader
			} else {
				f.finish(fmt.Errorf("moq: fetch stream: %w", err))
				close(f.objs)
				st.CancelRead(wire.ResetCancelled)
				return
			}
		}
		o := Object{GroupID: oh.GroupID, SubgroupID: oh.SubgroupID, ID: oh.ObjectID,
			Priority: oh.PublisherPriority, Extensions: oh.Extensions, Payload: payload}
		if oh.PayloadLen == 0 {
			o.Status = oh.Status
		}
		select {
		case f.objs <- o:
		case <-f.done:
			st.CancelRead(wire.ResetCancelled)
			close(f.objs)
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// ---- TRACK_STATUS (client side) ----

// TrackStatus asks the peer for a track's status: whether it has content
// and its largest location.
func (s *Session) TrackStatus(ctx context.Context, ns Namespace, name string) (Location, bool, error) {
	id, err := s.allocRequestID(ctx)
	if err != nil {
		return Location{}, false, err
	}
	r, err := s.request(ctx, id, &wire.TrackStatus{RequestID: id, Namespace: ns, TrackName: name,
		FilterType: wire.FilterLargestObject, Forward: true})
	if err != nil {
		return Location{}, false, err
	}
	switch r := r.(type) {
	case *wire.TrackStatusError:
		return Location{}, false, &RequestError{Code: r.ErrorCode, Reason: r.Reason}
	case *wire.TrackStatusOK:
		return Location(r.Largest), r.ContentExists, nil
	default:
		return Location{}, false, protocolViolation("unexpected reply %T to TRACK_STATUS", r)
	}
}
