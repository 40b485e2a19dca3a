package moq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// What later drafts changed in how requests travel, on top of the codec:
// draft-16 runs SUBSCRIBE_NAMESPACE on a bidirectional stream of its own,
// answers it there and announces with NAMESPACE / NAMESPACE_DONE on it;
// replies name only a request ID; an update of a subscription is answered.

// requestType is the model type of our outstanding request id, for the
// codec (draft-16 replies carry no type of their own).
func (s *Session) requestType(id uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqTypes[id]
}

// maxSkippedRequestIDs bounds the request IDs the peer may leave out and
// send later (see lateRequestIDLocked).
const maxSkippedRequestIDs = 64

// lateRequestIDLocked accepts a request ID out of order when requests
// travel on several streams (a SUBSCRIBE_NAMESPACE on its own stream can
// be overtaken by a later SUBSCRIBE on the control stream): an ID above the
// next one leaves those between to come later; one below must be such an ID.
func (s *Session) lateRequestIDLocked(id uint64) bool {
	if !s.codec.Features().NamespaceStreams || id&1 != s.nextPeerReqID&1 {
		return false
	}
	if id < s.nextPeerReqID {
		if _, ok := s.skippedPeerReqIDs[id]; ok {
			delete(s.skippedPeerReqIDs, id)
			return true
		}
		return false
	}
	limit := uint64(maxSkippedRequestIDs)
	if s.requestStreams() {
		// Every request has a stream of its own: any order is possible.
		limit = max(limit, 2*s.cfg.MaxRequests)
	}
	if (id-s.nextPeerReqID)/2+uint64(len(s.skippedPeerReqIDs)) > limit {
		return false
	}
	for skipped := s.nextPeerReqID; skipped < id; skipped += 2 {
		s.skippedPeerReqIDs[skipped] = struct{}{}
	}
	return true
}

// onUpdateReply handles the draft-16 answer to one of our subscription
// updates; nobody waits for it.
func (s *Session) onUpdateReply(id uint64, err error) {
	s.mu.Lock()
	delete(s.reqTypes, id)
	s.mu.Unlock()
	if err != nil {
		s.log.Info("peer refused a subscription update", "request", id, "err", err)
	}
}

// ---- the peer's namespace subscriptions ----

// nsStreamIn is a peer's SUBSCRIBE_NAMESPACE on a stream of its own.
type nsStreamIn struct {
	s      *Session
	st     Stream
	prefix Namespace

	mu     sync.Mutex
	live   map[string]bool // suffix paths announced with NAMESPACE
	closed bool
}

func (s *Session) acceptBidiLoop() {
	defer s.wg.Done()
	for {
		st, err := s.conn.AcceptStream(s.ctx)
		if err != nil {
			return
		}
		if s.requestStreams() {
			s.wg.Add(1)
			go s.handleBidi17(st)
			continue
		}
		go s.handleNamespaceStream(st)
	}
}

// readFirstMessage reads the message a peer's bidirectional stream begins
// with; nil if there is none (a malformed one ends the session, a stream
// that ends or fails first is reset).
func (s *Session) readFirstMessage(st Stream) (*bufio.Reader, wire.Message) {
	r := bufio.NewReader(st)
	m, err := s.codec.ReadMessage(r)
	if err != nil {
		var se *wire.SessionError
		if errors.As(err, &se) {
			s.fail(err)
		}
		st.CancelRead(wire.ResetCancelled)
		st.CancelWrite(wire.ResetCancelled)
		return nil, nil
	}
	return r, m
}

// handleNamespaceStream serves a bidirectional stream: the only kind a peer
// may open is a SUBSCRIBE_NAMESPACE, which lasts until it closes the stream.
func (s *Session) handleNamespaceStream(st Stream) {
	r, m := s.readFirstMessage(st)
	if m == nil {
		return
	}
	sn, ok := m.(*wire.SubscribeNamespace)
	if !ok {
		s.fail(protocolViolation("bidirectional stream begins with %T", m))
		return
	}
	s.serveNamespaceStream(st, r, sn)
}

// serveNamespaceStream serves the peer's SUBSCRIBE_NAMESPACE sn, read from
// st through r.
func (s *Session) serveNamespaceStream(st Stream, r *bufio.Reader, sn *wire.SubscribeNamespace) {
	n := &nsStreamIn{s: s, st: st, prefix: Namespace(sn.Prefix), live: make(map[string]bool)}
	if err := s.onSubscribeNamespace(sn, n); err != nil {
		s.fail(err)
		return
	}
	// Nothing more is defined from the subscriber: the end of the stream
	// (FIN or reset) is the end of the subscription.
	if _, err := io.Copy(io.Discard, r); err == nil {
		st.Close()
	}
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	s.mu.Lock()
	mine := s.nsStreamsIn[n.prefix.Path()] == n
	s.mu.Unlock()
	if mine {
		s.unsubscribeNamespace(n.prefix.Path())
	}
}

// reply sends the answer to the SUBSCRIBE_NAMESPACE; a refusal ends the
// stream (FIN).
func (n *nsStreamIn) reply(m wire.Message) {
	if err := n.write(m); err != nil {
		n.s.log.Debug("namespace subscription reply not sent", "err", err)
		return
	}
	if _, refused := m.(*wire.SubscribeNamespaceError); refused {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		n.st.Close()
	}
}

func (n *nsStreamIn) write(m wire.Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.writeLocked(m)
}

func (n *nsStreamIn) writeLocked(m wire.Message) error {
	if n.closed {
		return errors.New("moq: namespace subscription ended")
	}
	b, err := n.s.codec.AppendMessage(nil, m)
	if err != nil {
		return fmt.Errorf("moq: encode %T: %w", m, err)
	}
	if _, err := n.st.Write(b); err != nil {
		return fmt.Errorf("moq: write %T: %w", m, err)
	}
	return nil
}

// announce sends NAMESPACE (active) or NAMESPACE_DONE for ns, which is
// under the subscription's prefix. NAMESPACE_DONE only follows a NAMESPACE.
func (n *nsStreamIn) announce(ns Namespace, active bool) error {
	full := InPrefixForm(ns.Path(), n.prefix)
	suffix := full[len(n.prefix):]
	key := suffix.Path()
	n.mu.Lock()
	defer n.mu.Unlock()
	if active == n.live[key] {
		if active {
			return nil // already announced
		}
		return errors.New("moq: namespace not announced on this subscription")
	}
	var m wire.Message = &wire.Namespace{Suffix: suffix}
	if !active {
		m = &wire.NamespaceDone{Suffix: suffix}
	}
	if err := n.writeLocked(m); err != nil {
		return err
	}
	if active {
		n.live[key] = true
	} else {
		delete(n.live, key)
	}
	return nil
}

// nsStreamFor returns the peer's stream-borne namespace subscription that
// ns falls under, if any.
func (s *Session) nsStreamFor(ns Namespace) *nsStreamIn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.nsStreamsIn) == 0 {
		return nil
	}
	path := ns.Path()
	for _, n := range s.nsStreamsIn {
		if HasPrefix(path, n.prefix) {
			return n
		}
	}
	return nil
}

// ---- our namespace subscriptions ----

// subscribeNamespaceStream is SubscribeNamespace in draft-16: the request
// opens a stream, which brings the reply and then the announcements.
func (s *Session) subscribeNamespaceStream(ctx context.Context, prefix Namespace) (*NamespaceSubscription, error) {
	id, err := s.allocRequestID(ctx)
	if err != nil {
		return nil, err
	}
	// On a stream of its own it may reach the peer after later requests
	// (see lateRequestIDLocked).
	s.requestWritten()
	st, err := s.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("moq: open namespace subscription stream: %w", err)
	}
	n := &NamespaceSubscription{s: s, id: id, Prefix: prefix, events: make(chan NamespaceEvent, 256),
		done: make(chan struct{}), stream: st}
	s.mu.Lock()
	s.reqTypes[id] = wire.MsgSubscribeNamespace
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.reqTypes, id)
		s.mu.Unlock()
	}()
	fail := func(err error) (*NamespaceSubscription, error) {
		st.CancelRead(wire.ResetCancelled)
		st.CancelWrite(wire.ResetCancelled)
		return nil, err
	}
	b, err := s.codec.AppendMessage(nil, &wire.SubscribeNamespace{RequestID: id, Prefix: prefix})
	if err != nil {
		return fail(fmt.Errorf("moq: encode SUBSCRIBE_NAMESPACE: %w", err))
	}
	if _, err := st.Write(b); err != nil {
		return fail(fmt.Errorf("moq: write SUBSCRIBE_NAMESPACE: %w", err))
	}
	r := bufio.NewReader(st)
	type result struct {
		m   wire.Message
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := s.readOn(r, id, wire.MsgSubscribeNamespace)
		ch <- result{m, err}
	}()
	timer := time.NewTimer(s.cfg.RequestTimeout)
	defer timer.Stop()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-s.ctx.Done():
		return fail(s.Err())
	case <-timer.C:
		return fail(fmt.Errorf("moq: no reply to SUBSCRIBE_NAMESPACE in %v", s.cfg.RequestTimeout))
	}
	if res.err != nil {
		var se *wire.SessionError
		if errors.As(res.err, &se) {
			s.fail(res.err)
		}
		return fail(fmt.Errorf("moq: SUBSCRIBE_NAMESPACE reply: %w", res.err))
	}
	switch m := res.m.(type) {
	case *wire.SubscribeNamespaceOK:
	case *wire.SubscribeNamespaceError:
		return fail(&RequestError{Code: m.ErrorCode, Reason: m.Reason})
	default:
		err := protocolViolation("%T answers SUBSCRIBE_NAMESPACE", m)
		s.fail(err)
		return fail(err)
	}
	s.mu.Lock()
	s.nsSubsOut[id] = n
	s.mu.Unlock()
	go s.readNamespaceStream(n, r)
	return n, nil
}

// readNamespaceStream turns NAMESPACE / NAMESPACE_DONE into what a
// PUBLISH_NAMESPACE / PUBLISH_NAMESPACE_DONE does (without their reply);
// when the stream ends, what it announced is withdrawn.
func (s *Session) readNamespaceStream(n *NamespaceSubscription, r *bufio.Reader) {
	learnt := map[string]Namespace{}
	defer func() {
		for _, ns := range learnt {
			s.namespaceEntry(ns, false)
		}
		s.mu.Lock()
		delete(s.nsSubsOut, n.id)
		s.mu.Unlock()
		n.close()
	}()
	for {
		m, err := s.codec.ReadMessage(r)
		if err != nil {
			var se *wire.SessionError
			if errors.As(err, &se) && s.ctx.Err() == nil {
				s.fail(err)
			}
			return
		}
		var suffix []string
		active := true
		switch m := m.(type) {
		case *wire.Namespace:
			suffix = m.Suffix
		case *wire.NamespaceDone:
			suffix, active = m.Suffix, false
		case *wire.PublishBlocked:
			continue // we ask for no PUBLISH, so none is missed
		default:
			s.fail(protocolViolation("%T on a namespace subscription stream", m))
			return
		}
		ns := append(append(Namespace(nil), n.Prefix...), suffix...)
		path := ns.Path()
		if _, ok := learnt[path]; ok == active {
			if !active {
				s.fail(protocolViolation("NAMESPACE_DONE for %q before its NAMESPACE", path))
				return
			}
			continue // repeated: nothing new
		}
		if active {
			if !s.namespaceEntry(ns, true) {
				continue
			}
			learnt[path] = ns
		} else {
			delete(learnt, path)
			s.namespaceEntry(ns, false)
		}
	}
}

// namespaceEntry registers (or withdraws) a namespace the peer announced on
// a namespace subscription stream, as onPublishNamespace does for
// PUBLISH_NAMESPACE. It reports whether an announcement was accepted.
func (s *Session) namespaceEntry(ns Namespace, active bool) bool {
	if ns == nil {
		return false
	}
	path := ns.Path()
	h := s.cfg.Handler
	if !active {
		s.mu.Lock()
		_, ok := s.announcedIn[path]
		delete(s.announcedIn, path)
		s.mu.Unlock()
		if ok {
			if h != nil {
				h.HandlePublishNamespaceDone(s, ns)
			}
			s.notifyNamespace(ns, false)
		}
		return ok
	}
	if h != nil {
		if err := h.HandlePublishNamespace(s.ctx, s, ns, nil); err != nil {
			s.log.Debug("announced namespace refused", "ns", path, "err", err)
			return false
		}
	}
	s.mu.Lock()
	s.announcedIn[path] = ns
	s.mu.Unlock()
	s.notifyNamespace(ns, true)
	return true
}
