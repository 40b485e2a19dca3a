package moq

import (
	"context"
	"sync"
	"time"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// LocalClient is an in-process adapter's handle on the relay: it publishes
// and consumes broadcasts through the media model directly, without a
// session or the wire. Its adapter authorizes its own clients; the relay
// does not ask Authorize again.
type LocalClient struct {
	r     *Relay
	proto string
}

// Local returns the relay's in-process client for an adapter; proto names
// it in logs, the API and metrics ("rtmp", "hls", "whep", ...).
func (r *Relay) Local(proto string) *LocalClient { return &LocalClient{r: r, proto: proto} }

// localPub is an in-process producer holding a broadcast.
type localPub struct {
	proto string
	done  chan struct{}
	once  sync.Once
}

func (lp *localPub) end() { lp.once.Do(func() { close(lp.done) }) }

// localStat counts the handles of one adapter protocol.
type localStat struct {
	live  int
	stats handleStats
}

func (r *Relay) localStat(proto string) *localStat {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.localHandles[proto]
	if st == nil {
		st = &localStat{}
		r.localHandles[proto] = st
	}
	st.live++
	return st
}

func (r *Relay) localDone(st *localStat) {
	r.mu.Lock()
	st.live--
	r.mu.Unlock()
}

// SubscribeTrack implements Source: a consumer of the relay's track, pulled
// from the broadcast's publisher (or an upstream relay) when it is the
// first one.
func (l *LocalClient) SubscribeTrack(ctx context.Context, path, name string, _ SubscribeOptions) (*TrackConsumer, error) {
	b, rt, err := l.r.acquire(ctx, nil, l.proto, ParsePath(path), name, nil)
	if err != nil {
		return nil, err
	}
	st := l.r.localStat(l.proto)
	return &TrackConsumer{t: rt.track, done: rt.track.endedCh, stats: &st.stats, stop: func() {
		l.r.localDone(st)
		l.r.release(b, rt, l.proto)
	}}, nil
}

// Publish starts the broadcast at path, written in memory. A broadcast
// that is live elsewhere is refused (unless the relay allows take-overs, or
// it was only learnt from another relay); one in its grace period is
// continued: its tracks and subscribers stay, group IDs keep increasing.
func (l *LocalClient) Publish(ctx context.Context, path string) (*BroadcastProducer, error) {
	ns := ParsePath(path)
	if err := CheckNamespace(ns); err != nil {
		return nil, err
	}
	b, lp, err := l.r.attachLocal(ns, l.proto)
	if err != nil {
		return nil, err
	}
	st := l.r.localStat(l.proto)
	var once sync.Once
	return &BroadcastProducer{
		path: ns.Path(), done: lp.done, stats: &st.stats, tracks: map[string]*TrackProducer{},
		create: func(name string) *Track { return l.r.localTrack(b, lp, name) },
		close: func() {
			once.Do(func() {
				l.r.localDone(st)
				l.r.detachLocal(b, lp)
			})
		},
	}, nil
}

// attachLocal makes an in-process producer the publisher of ns.
func (r *Relay) attachLocal(ns Namespace, proto string) (*broadcast, *localPub, error) {
	path := ns.Path()
	lp := &localPub{proto: proto, done: make(chan struct{})}
	r.mu.Lock()
	b := r.broadcasts[path]
	if b == nil {
		b = &broadcast{path: path, ns: ns, local: lp, tracks: make(map[string]*relayTrack), started: time.Now()}
		r.broadcasts[path] = b
		r.mu.Unlock()
		r.log.Info("broadcast started", "path", path, "publisher", proto)
		r.announce(b, true)
		return b, lp, nil
	}
	if b.liveLocked() && !b.fromRelay && !r.cfg.AllowTakeover {
		r.mu.Unlock()
		r.log.Warn("refused second publisher: broadcast is already live", "path", path, "publisher", proto)
		return nil, nil, &RequestError{Code: wire.PublishNamespaceErrorUninterested, Reason: "broadcast " + path + " is already being published"}
	}
	if b.grace != nil {
		b.grace.Stop()
		b.grace = nil
	}
	live := b.liveLocked()
	oldLocal, oldSess := b.local, b.publisher
	b.local, b.publisher, b.ns = lp, nil, ns
	b.fromRelay, b.fromPeer, b.onDemand = false, false, false
	var subs []*Subscription
	for _, rt := range b.tracks {
		if rt.sub != nil {
			subs = append(subs, rt.sub)
			rt.sub = nil
		}
		rt.local, rt.pushed = true, false
		rt.track.Reconnect()
	}
	r.mu.Unlock()
	if oldLocal != nil {
		oldLocal.end()
	}
	for _, sub := range subs {
		go sub.Unsubscribe()
	}
	if oldSess != nil {
		go oldSess.PublishNamespaceDone(ns) // no-op unless we announced to it
	}
	if live {
		r.log.Info("publisher taken over", "path", path, "publisher", proto)
	} else {
		r.log.Info("publisher reconnected; broadcast continues", "path", path, "publisher", proto)
	}
	return b, lp, nil
}

// localTrack returns the relay track an in-process producer writes, making
// it; nil once the producer no longer holds the broadcast.
func (r *Relay) localTrack(b *broadcast, lp *localPub, name string) *Track {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broadcasts[b.path] != b || b.local != lp {
		return nil
	}
	rt := b.tracks[name]
	if rt == nil {
		rt = &relayTrack{name: name, track: NewTrack(b.ns, name, r.cfg.TrackLimits), ready: make(chan struct{}),
			subs: map[string]int{}, local: true}
		close(rt.ready)
		b.tracks[name] = rt
	}
	return rt.track
}

// detachLocal withdraws an in-process producer: the broadcast's grace
// period starts.
func (r *Relay) detachLocal(b *broadcast, lp *localPub) {
	lp.end()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broadcasts[b.path] != b || b.local != lp {
		return
	}
	b.local = nil
	r.startGraceLocked(b)
}

// watcher is an in-process namespace subscriber.
type watcher struct {
	prefix Namespace
	fn     func(path string, active bool)
}

// Watch calls fn for every broadcast under prefix ("" for all) that is
// live now and that starts (active) or ends from now on, as a namespace
// subscription does for a remote client. fn runs on its own goroutine;
// the returned function stops the watch.
func (l *LocalClient) Watch(prefix string, fn func(path string, active bool)) (stop func()) {
	w := &watcher{prefix: ParsePath(prefix), fn: fn}
	r := l.r
	r.mu.Lock()
	r.watchers[w] = struct{}{}
	var live []string
	for _, b := range r.broadcasts {
		if HasPrefix(b.path, w.prefix) && !b.onDemand {
			live = append(live, b.path)
		}
	}
	r.mu.Unlock()
	for _, p := range live {
		go fn(p, true)
	}
	return func() {
		r.mu.Lock()
		delete(r.watchers, w)
		r.mu.Unlock()
	}
}
