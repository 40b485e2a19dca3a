package moq

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	Logger *slog.Logger
	// TrackLimits bound each track's cache.
	TrackLimits TrackLimits
	// GracePeriod keeps a broadcast (and its subscribers) alive after its
	// publisher left, so that a reconnecting publisher continues it.
	GracePeriod time.Duration
	// AllowTakeover lets a new publisher replace a live one on the same
	// path; otherwise the newcomer is refused.
	AllowTakeover bool
	// Authorize, if set, is asked before every publish or subscribe
	// request: action is "publish" or "subscribe", path the broadcast.
	Authorize func(s *Session, action, path string, params wire.Params) error
	// ObserveSubscribe, if set, gets the time each SUBSCRIBE took to be
	// ready (including an upstream subscription) for metrics.
	ObserveSubscribe func(time.Duration)
	// ProduceTrack, if set, is asked when a subscriber (local or remote,
	// e.g. an edge relay's) wants a track that a broadcast's in-process
	// producer does not have: a derived rendition such as transcoded
	// audio. nil means its producer will write the track, which exists
	// (empty) from then on; an error refuses the subscription (a
	// *RequestError as it is, e.g. with SubscribeErrorTimeout for "not
	// yet"). It is asked again whenever a track it made gets a first
	// subscriber after having had none, so that a producer may stop making
	// a rendition nobody watches (TrackSubscribers) and start it again.
	ProduceTrack func(path, name string) error
}

// Relay is the relay core: it routes subscriptions to publishers, keeps
// one upstream subscription per track whatever the number of subscribers,
// caches recent groups and tells namespace subscribers what exists.
type Relay struct {
	cfg RelayConfig
	log *slog.Logger

	mu         sync.Mutex
	broadcasts map[string]*broadcast
	nsSubs     map[*Session]map[string]Namespace
	upstreams  map[*Session]bool // sessions we dialed to upstreams (false) or peers (true)
	// localHandles count the in-process adapters' handles (Local).
	localHandles map[string]*localStat
	// watchers are in-process namespace subscribers (LocalClient.Watch).
	watchers map[*watcher]struct{}
}

type broadcast struct {
	path      string
	ns        Namespace
	publisher *Session
	local     *localPub // an in-process producer instead of a session
	// Learnt from an upstream or peer relay rather than a local publisher.
	fromRelay, fromPeer bool
	// onDemand: made for a subscriber and pulled from an upstream without
	// an announcement; it goes when its last track does.
	onDemand bool
	tracks   map[string]*relayTrack
	// produced: the tracks ProduceTrack made.
	produced map[string]bool
	grace    *time.Timer
	started  time.Time
}

type relayTrack struct {
	name   string
	track  *Track
	refs   int
	sub    *Subscription
	ready  chan struct{}
	err    error
	pushed bool
	local  bool           // written by an in-process producer
	subs   map[string]int // subscriber count by transport
}

// liveLocked reports whether the broadcast has a publisher now.
func (b *broadcast) liveLocked() bool {
	return b.local != nil || (b.publisher != nil && b.publisher.ctx.Err() == nil)
}

// NewRelay makes a relay.
func NewRelay(cfg RelayConfig) *Relay {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{
		cfg:        cfg,
		log:        cfg.Logger,
		broadcasts: make(map[string]*broadcast),
		nsSubs:     make(map[*Session]map[string]Namespace),
		upstreams:  make(map[*Session]bool),

		localHandles: make(map[string]*localStat),
		watchers:     make(map[*watcher]struct{}),
	}
}

var _ Handler = (*Relay)(nil)

// admit checks a session's request for ns (a namespace prefix may be
// empty): a valid broadcast path, then the authorizer.
func (r *Relay) admit(s *Session, action string, ns Namespace, prefix bool, params wire.Params) error {
	if !prefix || len(ns) > 0 {
		if err := CheckNamespace(ns); err != nil {
			return invalidPath(err)
		}
	}
	return r.authorize(s, action, ns.Path(), params)
}

func (r *Relay) authorize(s *Session, action, path string, params wire.Params) error {
	if r.cfg.Authorize == nil {
		return nil
	}
	return r.cfg.Authorize(s, action, path, params)
}

// ---- publishers ----

// HandlePublishNamespace registers a publisher's broadcast.
func (r *Relay) HandlePublishNamespace(ctx context.Context, s *Session, ns Namespace, params wire.Params) error {
	if err := r.admit(s, "publish", ns, false, params); err != nil {
		return err
	}
	_, err := r.attachPublisher(s, ns)
	return err
}

// attachPublisher makes s the publisher of the broadcast at ns.
func (r *Relay) attachPublisher(s *Session, ns Namespace) (*broadcast, error) {
	path := ns.Path()
	r.mu.Lock()
	fromRelay, fromPeer := r.isRelaySessionLocked(s)
	b := r.broadcasts[path]
	// Two claims on one path: a local publisher wins over one learnt from
	// another relay; otherwise the first live publisher keeps it.
	localOverRelay := b != nil && b.fromRelay && !fromRelay
	switch {
	case b == nil:
		b = &broadcast{path: path, ns: ns, publisher: s, tracks: make(map[string]*relayTrack), started: time.Now(),
			fromRelay: fromRelay, fromPeer: fromPeer}
		r.broadcasts[path] = b
		r.mu.Unlock()
		r.log.Info("broadcast started", "path", path, "publisher", s.conn.RemoteAddr().String(), "from_relay", fromRelay)
		r.announce(b, true)
		return b, nil
	case b.publisher == s:
		r.mu.Unlock()
		return b, nil
	case b.liveLocked() && !r.cfg.AllowTakeover && !localOverRelay:
		r.mu.Unlock()
		r.log.Warn("refused second publisher: broadcast is already live", "path", path,
			"publisher", s.conn.RemoteAddr().String())
		return nil, &RequestError{Code: wire.PublishNamespaceErrorUninterested, Reason: "broadcast " + path + " is already being published"}
	}
	// Reconnect within the grace period, or a take-over.
	if b.grace != nil {
		b.grace.Stop()
		b.grace = nil
	}
	old, oldLocal := b.publisher, b.local
	b.publisher, b.local = s, nil
	b.ns = ns
	b.fromRelay, b.fromPeer = fromRelay, fromPeer
	var resub []*relayTrack
	for _, rt := range b.tracks {
		if rt.pushed {
			continue
		}
		rt.local = false
		rt.track.Reconnect()
		if rt.refs > 0 {
			resub = append(resub, rt)
		}
	}
	r.mu.Unlock()
	if oldLocal != nil {
		oldLocal.end()
	}
	if (old != nil && old != s) || oldLocal != nil {
		r.log.Info("publisher taken over", "path", path)
		old.PublishNamespaceDone(ns) // no-op unless we announced to it
	} else {
		r.log.Info("publisher reconnected; broadcast continues", "path", path)
	}
	for _, rt := range resub {
		go r.subscribeUpstream(b, rt, s)
	}
	return b, nil
}

// HandlePublishNamespaceDone starts the grace period of the broadcast.
func (r *Relay) HandlePublishNamespaceDone(s *Session, ns Namespace) {
	r.detachPublisher(s, ns.Path())
}

func (r *Relay) detachPublisher(s *Session, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.broadcasts[path]
	if b == nil || b.publisher != s {
		return
	}
	b.publisher = nil
	r.startGraceLocked(b)
}

// startGraceLocked ends a broadcast whose publisher left, after the grace
// period unless a publisher comes back.
func (r *Relay) startGraceLocked(b *broadcast) {
	if r.cfg.GracePeriod <= 0 {
		r.endLocked(b)
		return
	}
	r.log.Info("publisher left; keeping broadcast for the grace period", "path", b.path, "grace", r.cfg.GracePeriod)
	b.grace = time.AfterFunc(r.cfg.GracePeriod, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.broadcasts[b.path] == b && b.publisher == nil && b.local == nil {
			r.endLocked(b)
		}
	})
}

// endLocked ends a broadcast: every track ends (PUBLISH_DONE to
// subscribers) and namespace subscribers get PUBLISH_NAMESPACE_DONE.
func (r *Relay) endLocked(b *broadcast) {
	delete(r.broadcasts, b.path)
	if b.local != nil {
		b.local.end()
		b.local = nil
	}
	for _, rt := range b.tracks {
		rt.track.End(wire.PublishDoneTrackEnded, "broadcast ended")
		if rt.sub != nil {
			rt.sub.Unsubscribe()
		}
	}
	r.log.Info("broadcast ended", "path", b.path)
	go r.announce(b, false)
}

// HandlePublish accepts a pushed track (PUBLISH).
func (r *Relay) HandlePublish(ctx context.Context, s *Session, req *PublishRequest) (*Track, func(), error) {
	if err := r.admit(s, "publish", req.Namespace, false, req.Params); err != nil {
		return nil, nil, err
	}
	b, err := r.attachPublisher(s, req.Namespace)
	if err != nil {
		return nil, nil, &RequestError{Code: wire.PublishErrorUninterested, Reason: err.Error()}
	}
	r.mu.Lock()
	rt := b.tracks[req.TrackName]
	if rt == nil {
		rt = &relayTrack{name: req.TrackName, track: NewTrack(req.Namespace, req.TrackName, r.cfg.TrackLimits),
			ready: make(chan struct{}), subs: map[string]int{}}
		close(rt.ready)
		b.tracks[req.TrackName] = rt
	} else if rt.sub == nil || rt.sub.s != s {
		// A new publisher may restart its group IDs; the same session
		// now pushing what it served to our SUBSCRIBE keeps its numbering.
		rt.track.Reconnect()
	}
	rt.pushed = true
	rt.refs++
	// A subscription made to the publisher before it pushed the track
	// would write the same objects into the track a second time.
	old := rt.sub
	rt.sub = nil
	r.mu.Unlock()
	if old != nil {
		go old.Unsubscribe()
	}
	return rt.track, func() { r.release(b, rt, "") }, nil
}

// ---- subscribers ----

// acquire takes a reference on a track for a subscriber: s (nil for an
// in-process consumer, which its adapter authorized) over transport proto.
func (r *Relay) acquire(ctx context.Context, s *Session, proto string, ns Namespace, name string, params wire.Params) (*broadcast, *relayTrack, error) {
	path := ns.Path()
	if s != nil {
		if err := r.admit(s, "subscribe", ns, false, params); err != nil {
			return nil, nil, err
		}
	}
	r.mu.Lock()
	b := r.broadcasts[path]
	if b == nil {
		// Nobody announced it here: ask an upstream relay, if we have one.
		up := r.upstreamForLocked()
		if up == nil {
			r.mu.Unlock()
			return nil, nil, &RequestError{Code: wire.SubscribeErrorTrackDoesNotExist, Reason: "no such broadcast"}
		}
		b = &broadcast{path: path, ns: ns, publisher: up, tracks: make(map[string]*relayTrack), started: time.Now(),
			fromRelay: true, onDemand: true}
		r.broadcasts[path] = b
	}
	rt := b.tracks[name]
	if b.local != nil && (rt == nil || (b.produced[name] && rt.refs == 0)) {
		r.mu.Unlock()
		var err error
		if rt, err = r.produceTrack(b, name); err != nil {
			return nil, nil, err
		}
		r.mu.Lock()
	}
	if rt == nil {
		if b.publisher == nil {
			r.mu.Unlock()
			return nil, nil, &RequestError{Code: wire.SubscribeErrorTrackDoesNotExist, Reason: "publisher is reconnecting"}
		}
		rt = &relayTrack{name: name, track: NewTrack(b.ns, name, r.cfg.TrackLimits), ready: make(chan struct{}), subs: map[string]int{}}
		b.tracks[name] = rt
		go r.subscribeUpstream(b, rt, b.publisher)
	}
	rt.refs++
	rt.subs[proto]++
	r.mu.Unlock()
	select {
	case <-rt.ready:
	case <-ctx.Done():
		r.release(b, rt, proto)
		return nil, nil, ctx.Err()
	}
	if rt.err != nil {
		r.release(b, rt, proto)
		return nil, nil, rt.err
	}
	return b, rt, nil
}

// produceTrack asks ProduceTrack for a track an in-process producer does
// not have yet and makes it.
func (r *Relay) produceTrack(b *broadcast, name string) (*relayTrack, error) {
	unknown := &RequestError{Code: wire.SubscribeErrorTrackDoesNotExist, Reason: "unknown track"}
	if r.cfg.ProduceTrack == nil {
		return nil, unknown
	}
	if err := r.cfg.ProduceTrack(b.path, name); err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			return nil, re
		}
		unknown.Reason += ": " + err.Error()
		return nil, unknown
	}
	r.mu.Lock()
	lp := b.local
	if b.produced == nil {
		b.produced = map[string]bool{}
	}
	b.produced[name] = true
	r.mu.Unlock()
	if lp == nil || r.localTrack(b, lp, name) == nil {
		return nil, &RequestError{Code: wire.SubscribeErrorTrackDoesNotExist, Reason: "publisher is reconnecting"}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt := b.tracks[name]; rt != nil {
		return rt, nil
	}
	return nil, unknown
}

// TrackSubscribers is the number of subscribers of a track (local and
// remote, e.g. an edge relay's one subscription for all its viewers).
func (r *Relay) TrackSubscribers(path, name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.broadcasts[path]; b != nil {
		if rt := b.tracks[name]; rt != nil {
			return max(rt.refs, 0)
		}
	}
	return 0
}

// subscribeUpstream makes the one upstream subscription of a track.
func (r *Relay) subscribeUpstream(b *broadcast, rt *relayTrack, pub *Session) {
	var sub *Subscription
	var err error
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(pub.ctx, 10*time.Second)
		sub, err = pub.Subscribe(ctx, b.ns, rt.name, SubscribeOptions{Track: rt.track, Priority: 128})
		cancel()
		if err == nil || !r.shouldRetry(b, rt, pub, attempt) {
			break
		}
		// A reconnecting publisher may not know its tracks yet (an
		// encoder announces before its first frames): try again.
		select {
		case <-time.After(200 * time.Millisecond):
		case <-pub.ctx.Done():
		}
	}
	r.mu.Lock()
	first := rt.err == nil && rt.sub == nil
	select {
	case <-rt.ready:
		first = false
	default:
	}
	if err != nil {
		if first {
			var re *RequestError
			if errors.As(err, &re) {
				rt.err = re
			} else {
				rt.err = &RequestError{Code: wire.SubscribeErrorInternalError, Reason: "upstream: " + err.Error()}
			}
			if b.tracks[rt.name] == rt {
				delete(b.tracks, rt.name)
			}
			if b.onDemand && len(b.tracks) == 0 && r.broadcasts[b.path] == b {
				delete(r.broadcasts, b.path)
			}
			close(rt.ready)
		}
		r.mu.Unlock()
		r.log.Debug("upstream subscribe failed", "path", b.path, "track", rt.name, "err", err)
		return
	}
	// New-group requests go on to the publisher (draft-16 relay rule),
	// where its draft and track allow them; set before a subscriber can
	// ask.
	var ask func()
	if sub.dynamicGroups {
		ask = func() {
			ctx, cancel := context.WithTimeout(pub.ctx, 5*time.Second)
			defer cancel()
			if err := sub.RequestNewGroup(ctx); err != nil {
				r.log.Debug("new-group request upstream", "path", b.path, "track", rt.name, "err", err)
			}
		}
	}
	rt.track.setNewGroupHandler(ask)
	rt.sub = sub
	if first {
		close(rt.ready)
	}
	r.mu.Unlock()
	<-sub.Done()
	// The publisher ended the track deliberately (its session is still up
	// and it is still the broadcast's publisher): end ours too.
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt.sub == sub && b.publisher == pub && pub.ctx.Err() == nil && r.broadcasts[b.path] == b {
		status, reason := sub.Status()
		if status != wire.PublishDoneSubscriptionEnded || reason != "unsubscribed" {
			rt.track.End(status, reason)
			delete(b.tracks, rt.name)
		}
	}
}

// shouldRetry: a re-subscription after a publisher reconnect is retried
// for a while; a first subscription reports its error at once.
func (r *Relay) shouldRetry(b *broadcast, rt *relayTrack, pub *Session, attempt int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-rt.ready:
	default:
		return false
	}
	return attempt < 50 && rt.refs > 0 && b.publisher == pub && pub.ctx.Err() == nil && r.broadcasts[b.path] == b
}

func (r *Relay) release(b *broadcast, rt *relayTrack, proto string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt.refs--
	if proto != "" {
		rt.subs[proto]--
	}
	if rt.refs > 0 || rt.pushed || rt.local {
		if rt.refs <= 0 && rt.pushed {
			// The pushing publisher went away; its track ends unless the
			// broadcast's grace period brings a new one.
			if b.publisher != nil && b.publisher.ctx.Err() == nil {
				rt.track.End(wire.PublishDoneTrackEnded, "publisher ended the track")
				delete(b.tracks, rt.name)
			}
		}
		return
	}
	// Last subscriber gone: drop the upstream subscription.
	if b.tracks[rt.name] == rt {
		delete(b.tracks, rt.name)
	}
	if b.onDemand && len(b.tracks) == 0 && r.broadcasts[b.path] == b {
		delete(r.broadcasts, b.path)
	}
	if rt.sub != nil {
		go rt.sub.Unsubscribe()
	}
}

// HandleSubscribe serves a subscription from the relay's track.
func (r *Relay) HandleSubscribe(ctx context.Context, s *Session, req *SubscribeRequest) (*Track, func(), error) {
	start := time.Now()
	b, rt, err := r.acquire(ctx, s, s.conn.Protocol(), req.Namespace, req.TrackName, req.Params)
	if err != nil {
		return nil, nil, err
	}
	if r.cfg.ObserveSubscribe != nil {
		r.cfg.ObserveSubscribe(time.Since(start))
	}
	var once sync.Once
	return rt.track, func() { once.Do(func() { r.release(b, rt, s.conn.Protocol()) }) }, nil
}

// HandleFetch answers a standalone fetch from the cache.
func (r *Relay) HandleFetch(ctx context.Context, s *Session, req *FetchRequest) (*Track, func(), error) {
	b, rt, err := r.acquire(ctx, s, s.conn.Protocol(), req.Namespace, req.TrackName, req.Params)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) && re.Code == wire.SubscribeErrorTrackDoesNotExist {
			re = &RequestError{Code: wire.FetchErrorTrackDoesNotExist, Reason: re.Reason}
			return nil, nil, re
		}
		return nil, nil, err
	}
	return rt.track, func() { r.release(b, rt, s.conn.Protocol()) }, nil
}

// HandleTrackStatus reports from the relay's track.
func (r *Relay) HandleTrackStatus(ctx context.Context, s *Session, req *SubscribeRequest) (*Track, func(), error) {
	return r.HandleSubscribe(ctx, s, req)
}

// ---- namespace subscribers ----

// HandleSubscribeNamespace registers a namespace subscriber.
func (r *Relay) HandleSubscribeNamespace(ctx context.Context, s *Session, prefix Namespace, params wire.Params) (func(), error) {
	if err := r.admit(s, "subscribe", prefix, true, params); err != nil {
		return nil, err
	}
	r.mu.Lock()
	m := r.nsSubs[s]
	if m == nil {
		m = make(map[string]Namespace)
		r.nsSubs[s] = m
	}
	m[prefix.Path()] = prefix
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		var live []*broadcast
		_, toPeer := r.isRelaySessionLocked(s)
		for _, b := range r.broadcasts {
			if b.publisher != s && HasPrefix(b.path, prefix) && !(toPeer && b.fromPeer) && !b.onDemand {
				live = append(live, b)
			}
		}
		r.mu.Unlock()
		for _, b := range live {
			go r.announceTo(s, prefix, b.path, true)
		}
	}, nil
}

// HandleUnsubscribeNamespace forgets a namespace subscriber.
func (r *Relay) HandleUnsubscribeNamespace(s *Session, prefix Namespace) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.nsSubs[s]; m != nil {
		delete(m, prefix.Path())
		if len(m) == 0 {
			delete(r.nsSubs, s)
		}
	}
}

// announce tells every matching namespace subscriber that a broadcast
// started or ended.
func (r *Relay) announce(b *broadcast, active bool) {
	type target struct {
		s      *Session
		prefix Namespace
	}
	r.mu.Lock()
	var ts []target
	for s, m := range r.nsSubs {
		if s == b.publisher {
			continue
		}
		if _, peer := r.isRelaySessionLocked(s); peer && b.fromPeer {
			continue // never hand a peer's broadcast on to another peer
		}
		for _, p := range m {
			if HasPrefix(b.path, p) {
				ts = append(ts, target{s, p})
			}
		}
	}
	var ws []*watcher
	for w := range r.watchers {
		if HasPrefix(b.path, w.prefix) && !b.onDemand {
			ws = append(ws, w)
		}
	}
	r.mu.Unlock()
	for _, t := range ts {
		go r.announceTo(t.s, t.prefix, b.path, active)
	}
	for _, w := range ws {
		go w.fn(b.path, active)
	}
}

func (r *Relay) announceTo(s *Session, prefix Namespace, path string, active bool) {
	ns := InPrefixForm(path, prefix)
	if !active {
		s.PublishNamespaceDone(ns)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := s.PublishNamespace(ctx, ns); err != nil {
		r.log.Debug("namespace announcement refused", "path", path, "err", err)
	}
}

// HandleSessionClosed cleans up after a session.
func (r *Relay) HandleSessionClosed(s *Session) {
	r.mu.Lock()
	delete(r.nsSubs, s)
	var paths []string
	for p, b := range r.broadcasts {
		if b.publisher == s {
			paths = append(paths, p)
		}
	}
	r.mu.Unlock()
	for _, p := range paths {
		r.detachPublisher(s, p)
	}
}

// ---- introspection ----

// TrackInfo describes a track for the API.
type TrackInfo struct {
	Name        string         `json:"name"`
	Subscribers map[string]int `json:"subscribers"`
	Objects     uint64         `json:"objects"`
	Bytes       uint64         `json:"bytes"`
	CacheBytes  int            `json:"cache_bytes"`
	Largest     *Location      `json:"largest,omitempty"`
	track       *Track
}

// BroadcastInfo describes a broadcast for the API.
type BroadcastInfo struct {
	Path      string      `json:"path"`
	Live      bool        `json:"live"`
	FromRelay bool        `json:"from_relay,omitempty"`
	OnDemand  bool        `json:"on_demand,omitempty"`
	Publisher string      `json:"publisher,omitempty"`
	Since     time.Time   `json:"since"`
	Tracks    []TrackInfo `json:"tracks"`
}

// Broadcasts lists the broadcasts the relay knows.
func (r *Relay) Broadcasts() []BroadcastInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]BroadcastInfo, 0, len(r.broadcasts))
	for _, b := range r.broadcasts {
		bi := BroadcastInfo{Path: b.path, Live: b.publisher != nil || b.local != nil, Since: b.started, FromRelay: b.fromRelay, OnDemand: b.onDemand}
		switch {
		case b.publisher != nil:
			bi.Publisher = b.publisher.conn.RemoteAddr().String()
		case b.local != nil:
			bi.Publisher = b.local.proto + "-client"
		}
		for _, rt := range b.tracks {
			objs, bytes, _ := rt.track.Stats()
			ti := TrackInfo{Name: rt.name, Subscribers: map[string]int{}, Objects: objs, Bytes: bytes,
				CacheBytes: rt.track.CachedBytes(), track: rt.track}
			for k, v := range rt.subs {
				if v > 0 {
					ti.Subscribers[k] = v
				}
			}
			if l, ok := rt.track.Largest(); ok {
				ti.Largest = &l
			}
			bi.Tracks = append(bi.Tracks, ti)
		}
		sort.Slice(bi.Tracks, func(i, j int) bool { return bi.Tracks[i].Name < bi.Tracks[j].Name })
		out = append(out, bi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// HasBroadcast reports whether a broadcast exists at path.
func (r *Relay) HasBroadcast(path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.broadcasts[path] != nil
}

// MayHaveBroadcast reports whether a subscription to path could succeed
// now: the broadcast is known here, or an upstream could have it. Egress
// adapters answer "no such broadcast" from it before spending anything.
func (r *Relay) MayHaveBroadcast(path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.broadcasts[path] != nil || r.upstreamForLocked() != nil
}

// LocalStats returns live counts and cumulative counters of the
// in-process sessions, by adapter protocol.
func (r *Relay) LocalStats() map[string]TransportStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]TransportStats)
	for proto, st := range r.localHandles {
		t := out[proto]
		t.Sessions += st.live
		t.ObjectsIn += st.stats.objectsIn.Load()
		t.BytesIn += st.stats.bytesIn.Load()
		t.ObjectsOut += st.stats.objectsOut.Load()
		t.BytesOut += st.stats.bytesOut.Load()
		out[proto] = t
	}
	return out
}

// CacheBytes returns the payload bytes cached over all tracks.
func (r *Relay) CacheBytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.broadcasts {
		for _, rt := range b.tracks {
			n += rt.track.CachedBytes()
		}
	}
	return n
}
