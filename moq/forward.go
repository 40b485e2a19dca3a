package moq

import (
	"context"
	"sort"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// Forwarding pushes local broadcasts into another relay over a session
// this relay dials (package egress/forward supervises those sessions).
// The hooks here give it the relay's own tracks, so that objects go out
// with their group and object IDs and a slow target is served like any
// slow subscriber (its groups dropped, never the local viewers blocked).

// IsOrigin reports whether the broadcast at path is live here and
// published here (by ingest or a publishing client), not learnt from an
// upstream or a peer relay: only those are forwarded by default (loops).
func (l *LocalClient) IsOrigin(path string) (live, origin bool) {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	b := l.r.broadcasts[path]
	if b == nil || !b.liveLocked() {
		return false, false
	}
	return true, !b.fromRelay && !b.onDemand
}

// Tracks lists the track names of the broadcast at path, sorted.
func (l *LocalClient) Tracks(path string) []string {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	b := l.r.broadcasts[path]
	if b == nil {
		return nil
	}
	names := make([]string, 0, len(b.tracks))
	for n := range b.tracks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// PushTrack pushes the local track (path, name) to the peer of s with
// PUBLISH under the namespace remote. stop ends the push.
func (l *LocalClient) PushTrack(ctx context.Context, s *Session, remote Namespace, path, name string) (stop func(), err error) {
	b, rt, err := l.r.acquire(ctx, nil, l.proto, ParsePath(path), name, nil)
	if err != nil {
		return nil, err
	}
	release := func() { l.r.release(b, rt, l.proto) }
	end, err := s.Publish(ctx, remote, name, rt.track)
	if err != nil {
		release()
		return nil, err
	}
	return func() { end(); release() }, nil
}

// Forwarder is the Handler of a session that pushes local broadcasts to a
// remote relay: the peer's SUBSCRIBE, FETCH and TRACK_STATUS for a
// namespace that resolve maps to a local broadcast are served from the
// local relay's tracks; everything the peer would publish is refused.
type Forwarder struct {
	l       *LocalClient
	resolve func(remote Namespace) (path string, ok bool)
}

var _ Handler = (*Forwarder)(nil)

// Forwarder returns a handler serving the local broadcasts that resolve
// maps remote namespaces to.
func (l *LocalClient) Forwarder(resolve func(remote Namespace) (path string, ok bool)) *Forwarder {
	return &Forwarder{l: l, resolve: resolve}
}

func (f *Forwarder) track(ctx context.Context, ns Namespace, name string, notFound uint64) (*Track, func(), error) {
	path, ok := f.resolve(ns)
	if !ok {
		return nil, nil, &RequestError{Code: notFound, Reason: "not forwarded here"}
	}
	b, rt, err := f.l.r.acquire(ctx, nil, f.l.proto, ParsePath(path), name, nil)
	if err != nil {
		return nil, nil, err
	}
	return rt.track, func() { f.l.r.release(b, rt, f.l.proto) }, nil
}

// HandleSubscribe implements Handler.
func (f *Forwarder) HandleSubscribe(ctx context.Context, _ *Session, req *SubscribeRequest) (*Track, func(), error) {
	return f.track(ctx, req.Namespace, req.TrackName, wire.SubscribeErrorTrackDoesNotExist)
}

// HandleFetch implements Handler.
func (f *Forwarder) HandleFetch(ctx context.Context, _ *Session, req *FetchRequest) (*Track, func(), error) {
	return f.track(ctx, req.Namespace, req.TrackName, wire.FetchErrorTrackDoesNotExist)
}

// HandleTrackStatus implements Handler.
func (f *Forwarder) HandleTrackStatus(ctx context.Context, _ *Session, req *SubscribeRequest) (*Track, func(), error) {
	return f.track(ctx, req.Namespace, req.TrackName, wire.SubscribeErrorTrackDoesNotExist)
}

// HandlePublishNamespace implements Handler (refused: we only push).
func (f *Forwarder) HandlePublishNamespace(context.Context, *Session, Namespace, wire.Params) error {
	return &RequestError{Code: wire.PublishNamespaceErrorNotSupported, Reason: "forwarding session: push only"}
}

// HandlePublishNamespaceDone implements Handler.
func (f *Forwarder) HandlePublishNamespaceDone(*Session, Namespace) {}

// HandleSubscribeNamespace implements Handler: what we forward is
// announced by the forwarder anyway, so nothing more is sent.
func (f *Forwarder) HandleSubscribeNamespace(context.Context, *Session, Namespace, wire.Params) (func(), error) {
	return nil, nil
}

// HandleUnsubscribeNamespace implements Handler.
func (f *Forwarder) HandleUnsubscribeNamespace(*Session, Namespace) {}

// HandlePublish implements Handler (refused).
func (f *Forwarder) HandlePublish(context.Context, *Session, *PublishRequest) (*Track, func(), error) {
	return nil, nil, &RequestError{Code: wire.PublishErrorNotSupported, Reason: "forwarding session: push only"}
}

// HandleSessionClosed implements Handler.
func (f *Forwarder) HandleSessionClosed(*Session) {}
