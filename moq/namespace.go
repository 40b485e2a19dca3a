package moq

import (
	"context"
	"sync"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// HasPrefix reports whether prefix is a tuple prefix of the path segments
// of ns (so ("live") and ("live/x") both prefix ("live","x")).
func HasPrefix(path string, prefix Namespace) bool {
	segs := ParsePath(path)
	pre := ParsePath(prefix.Path())
	if len(pre) > len(segs) {
		return false
	}
	for i := range pre {
		if pre[i] != segs[i] {
			return false
		}
	}
	return true
}

// InPrefixForm expresses a broadcast path as a namespace that starts with
// the subscriber's own prefix tuple, so each client sees the form it used.
func InPrefixForm(path string, prefix Namespace) Namespace {
	segs := ParsePath(path)
	n := len(ParsePath(prefix.Path()))
	out := append(Namespace(nil), prefix...)
	return append(out, segs[n:]...)
}

// PublishNamespace announces a namespace to the peer and waits for its
// PUBLISH_NAMESPACE_OK. Under a draft-16 namespace subscription of the
// peer it is a NAMESPACE on that subscription's stream instead (no reply).
func (s *Session) PublishNamespace(ctx context.Context, ns Namespace) error {
	return s.PublishNamespaceParams(ctx, ns, nil)
}

// PublishNamespaceParams is PublishNamespace with request parameters.
func (s *Session) PublishNamespaceParams(ctx context.Context, ns Namespace, params wire.Params) error {
	if n := s.nsStreamFor(ns); n != nil {
		return n.announce(ns, true)
	}
	id, err := s.allocRequestID(ctx)
	if err != nil {
		return err
	}
	path := ns.Path()
	s.mu.Lock()
	s.announcedOut[path] = id
	s.mu.Unlock()
	r, err := s.request(ctx, id, &wire.PublishNamespace{RequestID: id, Namespace: ns, Params: params})
	if err == nil {
		switch r := r.(type) {
		case *wire.PublishNamespaceOK:
			return nil
		case *wire.PublishNamespaceError:
			err = &RequestError{Code: r.ErrorCode, Reason: r.Reason}
		default:
			err = protocolViolation("unexpected reply %T to PUBLISH_NAMESPACE", r)
		}
	}
	s.mu.Lock()
	if s.announcedOut[path] == id {
		delete(s.announcedOut, path)
	}
	s.mu.Unlock()
	return err
}

// PublishNamespaceDone withdraws a namespace announced with
// PublishNamespace.
func (s *Session) PublishNamespaceDone(ns Namespace) {
	if n := s.nsStreamFor(ns); n != nil && n.announce(ns, false) == nil {
		return
	}
	s.mu.Lock()
	id, ok := s.announcedOut[ns.Path()]
	delete(s.announcedOut, ns.Path())
	s.mu.Unlock()
	if ok && s.ctx.Err() == nil {
		s.send(&wire.PublishNamespaceDone{Namespace: ns, RequestID: id})
	}
}

func (s *Session) onPublishNamespace(m *wire.PublishNamespace) error {
	if err := s.checkPeerRequestID(m.RequestID); err != nil {
		return err
	}
	ns := Namespace(m.Namespace)
	go func() {
		var err error
		if h := s.cfg.Handler; h != nil {
			err = h.HandlePublishNamespace(s.ctx, s, ns, m.Params)
		} else if !s.wantsNamespace(ns.Path()) {
			err = &RequestError{Code: wire.PublishNamespaceErrorUninterested, Reason: "not interested"}
		}
		if err != nil {
			code, reason := refusal(err, wire.PublishNamespaceErrorUninterested)
			s.sendOrClose(&wire.PublishNamespaceError{RequestID: m.RequestID, ErrorCode: code, Reason: reason})
			s.peerRequestDone()
			return
		}
		s.mu.Lock()
		s.announcedIn[ns.Path()] = ns
		s.announcedInReq[m.RequestID] = ns.Path()
		s.mu.Unlock()
		s.sendOrClose(&wire.PublishNamespaceOK{RequestID: m.RequestID})
		s.notifyNamespace(ns, true)
	}()
	return nil
}

func (s *Session) onPublishNamespaceDone(m *wire.PublishNamespaceDone) {
	s.mu.Lock()
	// Draft-14 names the namespace, draft-16 the PUBLISH_NAMESPACE.
	path, byID := s.announcedInReq[m.RequestID]
	if m.Namespace != nil {
		path = Namespace(m.Namespace).Path()
		byID = false
		for id, p := range s.announcedInReq {
			if p == path {
				delete(s.announcedInReq, id)
			}
		}
	}
	if byID {
		delete(s.announcedInReq, m.RequestID)
	}
	ns, ok := s.announcedIn[path]
	delete(s.announcedIn, path)
	s.mu.Unlock()
	if !ok {
		return
	}
	if h := s.cfg.Handler; h != nil {
		h.HandlePublishNamespaceDone(s, ns)
	}
	s.notifyNamespace(ns, false)
	s.peerRequestDone()
}

func (s *Session) onPublishNamespaceCancel(m *wire.PublishNamespaceCancel) {
	path := Namespace(m.Namespace).Path()
	s.mu.Lock()
	if m.Namespace == nil { // draft-16: by request ID
		for p, id := range s.announcedOut {
			if id == m.RequestID {
				path = p
			}
		}
	}
	delete(s.announcedOut, path)
	s.mu.Unlock()
	s.log.Info("peer cancelled our namespace", "ns", path, "code", m.ErrorCode, "reason", m.Reason)
}

// AnnouncedByPeer returns the namespaces the peer has announced.
func (s *Session) AnnouncedByPeer() []Namespace {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Namespace, 0, len(s.announcedIn))
	for _, ns := range s.announcedIn {
		out = append(out, ns)
	}
	return out
}

// ---- SUBSCRIBE_NAMESPACE ----

// NamespaceEvent reports a namespace the peer announced or withdrew.
type NamespaceEvent struct {
	Namespace Namespace
	Active    bool
}

// NamespaceSubscription receives the peer's announcements under a prefix.
type NamespaceSubscription struct {
	s      *Session
	id     uint64
	Prefix Namespace
	events chan NamespaceEvent
	once   sync.Once
	done   chan struct{}
	// stream carries the subscription in draft-16 (nil in draft-14).
	stream Stream
}

// Events delivers announcements; it is closed when the subscription ends.
// A consumer that stops reading loses events rather than stalling the
// session.
func (n *NamespaceSubscription) Events() <-chan NamespaceEvent { return n.events }

func (n *NamespaceSubscription) close() {
	n.once.Do(func() {
		close(n.done)
		close(n.events)
	})
}

// Close sends UNSUBSCRIBE_NAMESPACE (draft-16: closes its stream).
func (n *NamespaceSubscription) Close() {
	n.s.mu.Lock()
	_, ok := n.s.nsSubsOut[n.id]
	delete(n.s.nsSubsOut, n.id)
	n.s.mu.Unlock()
	if n.stream != nil {
		n.stream.Close()
		n.stream.CancelRead(wire.ResetCancelled)
	} else if ok && n.s.ctx.Err() == nil {
		n.s.send(&wire.UnsubscribeNamespace{Prefix: n.Prefix})
	}
	n.close()
}

// SubscribeNamespace asks the peer for PUBLISH_NAMESPACE of every
// namespace under prefix.
func (s *Session) SubscribeNamespace(ctx context.Context, prefix Namespace) (*NamespaceSubscription, error) {
	if s.codec.Features().NamespaceStreams {
		return s.subscribeNamespaceStream(ctx, prefix)
	}
	id, err := s.allocRequestID(ctx)
	if err != nil {
		return nil, err
	}
	n := &NamespaceSubscription{s: s, id: id, Prefix: prefix, events: make(chan NamespaceEvent, 256), done: make(chan struct{})}
	s.mu.Lock()
	s.nsSubsOut[id] = n
	s.mu.Unlock()
	r, err := s.request(ctx, id, &wire.SubscribeNamespace{RequestID: id, Prefix: prefix})
	if err == nil {
		switch r := r.(type) {
		case *wire.SubscribeNamespaceOK:
			return n, nil
		case *wire.SubscribeNamespaceError:
			err = &RequestError{Code: r.ErrorCode, Reason: r.Reason}
		default:
			err = protocolViolation("unexpected reply %T to SUBSCRIBE_NAMESPACE", r)
		}
	}
	s.mu.Lock()
	delete(s.nsSubsOut, id)
	s.mu.Unlock()
	return nil, err
}

func (s *Session) wantsNamespace(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nsSubsOut {
		if HasPrefix(path, n.Prefix) {
			return true
		}
	}
	return false
}

func (s *Session) notifyNamespace(ns Namespace, active bool) {
	s.mu.Lock()
	var targets []*NamespaceSubscription
	for _, n := range s.nsSubsOut {
		if HasPrefix(ns.Path(), n.Prefix) {
			targets = append(targets, n)
		}
	}
	s.mu.Unlock()
	for _, n := range targets {
		select {
		case n.events <- NamespaceEvent{Namespace: ns, Active: active}:
		case <-n.done:
		default:
		}
	}
}

// onSubscribeNamespace serves a namespace subscription; in draft-16 it came
// on its own stream n, which carries the reply and the announcements.
func (s *Session) onSubscribeNamespace(m *wire.SubscribeNamespace, n *nsStreamIn) error {
	if err := s.checkPeerRequestID(m.RequestID); err != nil {
		return err
	}
	prefix := Namespace(m.Prefix)
	path := prefix.Path()
	reply := s.sendOrClose
	if n != nil {
		reply = n.reply
	}
	if m.NoNamespaces {
		// Only PUBLISH wanted: the relay does not push tracks.
		reply(&wire.SubscribeNamespaceError{RequestID: m.RequestID, ErrorCode: wire.SubscribeNamespaceErrorNotSupported, Reason: "PUBLISH for namespace subscriptions is not supported"})
		s.peerRequestDone()
		return nil
	}
	s.mu.Lock()
	overlap := false
	for p := range s.nsSubsIn {
		if HasPrefix(p, prefix) || HasPrefix(path, ParsePath(p)) {
			overlap = true
		}
	}
	if !overlap {
		s.nsSubsIn[path] = prefix
		if n != nil {
			s.nsStreamsIn[path] = n
		}
	}
	s.mu.Unlock()
	if overlap {
		reply(&wire.SubscribeNamespaceError{RequestID: m.RequestID, ErrorCode: wire.SubscribeNamespaceErrorNamespacePrefixOverlap, Reason: "prefix overlaps an earlier one"})
		s.peerRequestDone()
		return nil
	}
	go func() {
		var after func()
		err := error(&RequestError{Code: wire.SubscribeNamespaceErrorNotSupported, Reason: "not a publisher"})
		if h := s.cfg.Handler; h != nil {
			after, err = h.HandleSubscribeNamespace(s.ctx, s, prefix, m.Params)
		}
		if err != nil {
			s.mu.Lock()
			delete(s.nsSubsIn, path)
			if n != nil && s.nsStreamsIn[path] == n {
				delete(s.nsStreamsIn, path)
			}
			s.mu.Unlock()
			code, reason := refusal(err, wire.SubscribeNamespaceErrorNamespacePrefixUnknown)
			reply(&wire.SubscribeNamespaceError{RequestID: m.RequestID, ErrorCode: code, Reason: reason})
			s.peerRequestDone()
			return
		}
		// Announcements only after the OK: @moq/watch waits for it.
		reply(&wire.SubscribeNamespaceOK{RequestID: m.RequestID})
		if after != nil {
			after()
		}
	}()
	return nil
}

// NamespaceSubscribers returns the prefixes the peer subscribed to.
func (s *Session) NamespaceSubscribers() []Namespace {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Namespace, 0, len(s.nsSubsIn))
	for _, p := range s.nsSubsIn {
		out = append(out, p)
	}
	return out
}

func (s *Session) onUnsubscribeNamespace(m *wire.UnsubscribeNamespace) {
	s.unsubscribeNamespace(Namespace(m.Prefix).Path())
}

// unsubscribeNamespace ends the peer's namespace subscription of prefix path.
func (s *Session) unsubscribeNamespace(path string) {
	s.mu.Lock()
	orig, ok := s.nsSubsIn[path]
	delete(s.nsSubsIn, path)
	delete(s.nsStreamsIn, path)
	s.mu.Unlock()
	if !ok {
		return
	}
	if h := s.cfg.Handler; h != nil {
		h.HandleUnsubscribeNamespace(s, orig)
	}
	s.peerRequestDone()
}
