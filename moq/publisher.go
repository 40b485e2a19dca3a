package moq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// Publisher serves the tracks of one broadcast from their caches: it is
// the Handler of a publishing session (ingest adapters, `moqgate pub`).
// A subscriber with the Largest Object filter starts at the first object
// of the newest group, like it does on the relay.
type Publisher struct {
	ns     Namespace
	limits TrackLimits

	mu     sync.Mutex
	tracks map[string]*Track
	ended  bool
}

var _ Handler = (*Publisher)(nil)

// NewPublisher makes a publisher for the broadcast ns.
func NewPublisher(ns Namespace, limits TrackLimits) *Publisher {
	return &Publisher{ns: ns, limits: limits, tracks: make(map[string]*Track)}
}

// Namespace returns the broadcast's namespace.
func (p *Publisher) Namespace() Namespace { return p.ns }

// Track returns the named track, creating it.
func (p *Publisher) Track(name string) *Track {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tracks[name]
	if t == nil {
		t = NewTrack(p.ns, name, p.limits)
		p.tracks[name] = t
	}
	return t
}

// End ends every track (subscribers get PUBLISH_DONE).
func (p *Publisher) End() {
	p.mu.Lock()
	p.ended = true
	tracks := make([]*Track, 0, len(p.tracks))
	for _, t := range p.tracks {
		tracks = append(tracks, t)
	}
	p.mu.Unlock()
	for _, t := range tracks {
		t.End(wire.PublishDoneTrackEnded, "publisher ended")
	}
}

func (p *Publisher) lookup(ns Namespace, name string) (*Track, error) {
	if ns.Path() != p.ns.Path() {
		return nil, &RequestError{Code: wire.SubscribeErrorTrackDoesNotExist, Reason: "unknown namespace"}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tracks[name]
	if t == nil {
		return nil, &RequestError{Code: wire.SubscribeErrorTrackDoesNotExist, Reason: "unknown track"}
	}
	return t, nil
}

// HandleSubscribe implements Handler.
func (p *Publisher) HandleSubscribe(_ context.Context, _ *Session, req *SubscribeRequest) (*Track, func(), error) {
	t, err := p.lookup(req.Namespace, req.TrackName)
	return t, nil, err
}

// HandleFetch implements Handler.
func (p *Publisher) HandleFetch(_ context.Context, _ *Session, req *FetchRequest) (*Track, func(), error) {
	t, err := p.lookup(req.Namespace, req.TrackName)
	if err != nil {
		return nil, nil, &RequestError{Code: wire.FetchErrorTrackDoesNotExist, Reason: "unknown track"}
	}
	return t, nil, nil
}

// HandleTrackStatus implements Handler.
func (p *Publisher) HandleTrackStatus(_ context.Context, _ *Session, req *SubscribeRequest) (*Track, func(), error) {
	t, err := p.lookup(req.Namespace, req.TrackName)
	return t, nil, err
}

// HandlePublishNamespace implements Handler (refused: we only publish).
func (p *Publisher) HandlePublishNamespace(context.Context, *Session, Namespace, wire.Params) error {
	return &RequestError{Code: wire.PublishNamespaceErrorNotSupported, Reason: "publisher only"}
}

// HandlePublishNamespaceDone implements Handler.
func (p *Publisher) HandlePublishNamespaceDone(*Session, Namespace) {}

// HandleSubscribeNamespace implements Handler: the broadcast itself is
// announced to a peer whose prefix matches.
func (p *Publisher) HandleSubscribeNamespace(_ context.Context, s *Session, prefix Namespace, _ wire.Params) (func(), error) {
	if !HasPrefix(p.ns.Path(), prefix) {
		return nil, nil
	}
	return func() {
		go s.PublishNamespace(s.ctx, InPrefixForm(p.ns.Path(), prefix))
	}, nil
}

// HandleUnsubscribeNamespace implements Handler.
func (p *Publisher) HandleUnsubscribeNamespace(*Session, Namespace) {}

// HandlePublish implements Handler (refused).
func (p *Publisher) HandlePublish(context.Context, *Session, *PublishRequest) (*Track, func(), error) {
	return nil, nil, &RequestError{Code: wire.PublishErrorNotSupported, Reason: "publisher only"}
}

// HandleSessionClosed implements Handler.
func (p *Publisher) HandleSessionClosed(*Session) {}

// Produce publishes the broadcast to the peer of a new session: dial opens
// the session with the publisher as its handler, the namespace is
// announced, and the returned producer's tracks are served to the peer's
// subscribers. Close drains what is in flight and closes the session.
func Produce(ctx context.Context, path string, limits TrackLimits, dial func(context.Context, Handler) (*Session, error)) (*BroadcastProducer, error) {
	ns := ParsePath(path)
	if len(ns) == 0 {
		return nil, errors.New("moq: empty broadcast path")
	}
	p := NewPublisher(ns, limits)
	s, err := dial(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("moq: connect: %w", err)
	}
	if err := s.PublishNamespace(ctx, ns); err != nil {
		s.Close()
		return nil, fmt.Errorf("moq: publish %s: %w", path, err)
	}
	return &BroadcastProducer{
		path: ns.Path(), done: s.Done(), tracks: map[string]*TrackProducer{}, create: p.Track,
		close: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			s.Drain(ctx)
			s.Close()
		},
	}, nil
}
