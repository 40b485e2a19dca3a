package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moqgate/moqgate/moq"
)

// SessionStats are payload counters summed over the sessions a relay
// served (see the relay child's "sessions" command).
type SessionStats struct {
	// RelayObjectsOut and RelayBytesOut went to relay sessions: edges or
	// peers pulling from this relay (IMPLEMENTATION moqgate-edge or
	// moqgate-peer).
	RelayObjectsOut, RelayBytesOut uint64
	// ObjectsIn and BytesIn came from all sessions (the publishers);
	// ObjectsOut and BytesOut went to all sessions, relays included.
	ObjectsIn, BytesIn, ObjectsOut, BytesOut uint64
}

func (a SessionStats) sub(b SessionStats) SessionStats {
	return SessionStats{
		RelayObjectsOut: a.RelayObjectsOut - b.RelayObjectsOut, RelayBytesOut: a.RelayBytesOut - b.RelayBytesOut,
		ObjectsIn: a.ObjectsIn - b.ObjectsIn, BytesIn: a.BytesIn - b.BytesIn,
		ObjectsOut: a.ObjectsOut - b.ObjectsOut, BytesOut: a.BytesOut - b.BytesOut,
	}
}

// SessionStats asks the child for its sessions' payload counters.
func (p *RelayProcess) SessionStats() (SessionStats, error) {
	l, err := p.command("sessions")
	if err != nil {
		return SessionStats{}, err
	}
	f := strings.Fields(l)
	if len(f) != 7 || f[0] != "sessions" {
		return SessionStats{}, fmt.Errorf("relay child: bad sessions line %q", l)
	}
	var v [6]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return SessionStats{}, fmt.Errorf("relay child: bad sessions line %q", l)
		}
	}
	return SessionStats{RelayObjectsOut: v[0], RelayBytesOut: v[1], ObjectsIn: v[2], BytesIn: v[3], ObjectsOut: v[4], BytesOut: v[5]}, nil
}

// sessionTally is the relay child's handler: the relay, noting the
// sessions it serves requests of so that their counters (moq.Session.Stats)
// can be summed, those of relay sessions apart. Sessions are kept after
// they end: their counters are final then.
type sessionTally struct {
	*moq.Relay
	mu       sync.Mutex
	sessions map[*moq.Session]bool // session -> is a relay
}

func newSessionTally(r *moq.Relay) *sessionTally {
	return &sessionTally{Relay: r, sessions: make(map[*moq.Session]bool)}
}

func (t *sessionTally) note(s *moq.Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.sessions[s]; ok {
		return
	}
	impl := s.PeerImplementation()
	t.sessions[s] = impl == moq.ImplementationEdge || impl == moq.ImplementationPeer
}

func (t *sessionTally) HandleSubscribe(ctx context.Context, s *moq.Session, req *moq.SubscribeRequest) (*moq.Track, func(), error) {
	t.note(s)
	return t.Relay.HandleSubscribe(ctx, s, req)
}

func (t *sessionTally) HandleFetch(ctx context.Context, s *moq.Session, req *moq.FetchRequest) (*moq.Track, func(), error) {
	t.note(s)
	return t.Relay.HandleFetch(ctx, s, req)
}

func (t *sessionTally) HandlePublishNamespace(ctx context.Context, s *moq.Session, ns moq.Namespace, params moq.Params) error {
	t.note(s)
	return t.Relay.HandlePublishNamespace(ctx, s, ns, params)
}

func (t *sessionTally) HandlePublish(ctx context.Context, s *moq.Session, req *moq.PublishRequest) (*moq.Track, func(), error) {
	t.note(s)
	return t.Relay.HandlePublish(ctx, s, req)
}

// stats formats the counters for the "sessions" reply.
func (t *sessionTally) stats() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var st SessionStats
	for s, relay := range t.sessions {
		oo, bo, oi, bi, _ := s.Stats()
		st.ObjectsOut += oo
		st.BytesOut += bo
		st.ObjectsIn += oi
		st.BytesIn += bi
		if relay {
			st.RelayObjectsOut += oo
			st.RelayBytesOut += bo
		}
	}
	return fmt.Sprintf("%d %d %d %d %d %d", st.RelayObjectsOut, st.RelayBytesOut, st.ObjectsIn, st.BytesIn, st.ObjectsOut, st.BytesOut)
}

// HopConfig configures RunHop.
type HopConfig struct {
	// FanoutConfig sets the publisher (bit rate, FPS, groups), the
	// timings and the logger. Its URL is the origin's, where the publisher
	// and the control subscriber connect; Subscribers is the number of
	// subscribers at the edge; RelayStats, if set, samples the origin's
	// resource use. Broadcast defaults to "bench/hop".
	FanoutConfig
	// EdgeURL is the edge relay's (moqt://HOST:PORT/), which pulls the
	// broadcast from the origin.
	EdgeURL string
	// EdgeStats, if set, samples the edge's resource use.
	EdgeStats func() (RelayStats, error)
	// OriginSessions, if set, samples the origin's session counters at
	// the edges of the window: upstream (origin to edge) bandwidth.
	OriginSessions func() (SessionStats, error)
}

// LatencyStats summarises what a group of subscribers received in the
// window.
type LatencyStats struct {
	Subscribers int
	// Objects and Bytes (payload) summed over the subscribers;
	// MinObjects is the worst subscriber's.
	Objects, Bytes, MinObjects uint64
	// Publish-to-receive latency percentiles; the Delta ones leave out
	// the first (keyframe-like) object of every group.
	P50, P99, Max      time.Duration
	DeltaP50, DeltaP99 time.Duration
}

func summarize(subs []*subscriber) LatencyStats {
	st := LatencyStats{Subscribers: len(subs), MinObjects: math.MaxUint64}
	var lat, delta []time.Duration
	for _, s := range subs {
		s.mu.Lock()
		st.Objects += s.objects
		st.Bytes += s.bytes
		st.MinObjects = min(st.MinObjects, s.objects)
		lat = append(lat, s.lat...)
		for i, key := range s.key {
			if !key {
				delta = append(delta, s.lat[i])
			}
		}
		s.mu.Unlock()
	}
	if len(lat) > 0 {
		st.P50, st.P99, st.Max = quantile(lat, 0.50), quantile(lat, 0.99), slices.Max(lat)
	}
	if len(delta) > 0 {
		st.DeltaP50, st.DeltaP99 = quantile(delta, 0.50), quantile(delta, 0.99)
	}
	return st
}

// HopResult is what RunHop measured over the steady-state window.
type HopResult struct {
	Subscribers   int
	Setup, Window time.Duration
	// Published objects and payload bytes the publisher sent in the window.
	PublishedObjects, PublishedBytes uint64
	// Edge is the edge subscribers' tally, Origin the control
	// subscriber's.
	Edge, Origin LatencyStats
	// Sessions is the origin's session counters over the window (if
	// HaveSessions): BytesIn is what the publisher sent it,
	// RelayBytesOut what it sent the edge.
	Sessions     SessionStats
	HaveSessions bool
	// OriginRelay and EdgeRelay are the relays' resource use over the
	// window (if HaveOrigin, HaveEdge).
	OriginRelay, EdgeRelay RelayStats
	HaveOrigin, HaveEdge   bool
	// LoadGenCPU is this process's CPU time (publisher and subscribers)
	// over the window; MachineBusy all CPUs' busy time (0 if unknown).
	LoadGenCPU, MachineBusy time.Duration
}

// HopP50 and HopP99 are the latency the edge adds: the edge subscribers'
// percentile minus the control subscriber's at the origin.
func (r HopResult) HopP50() time.Duration { return r.Edge.P50 - r.Origin.P50 }

// HopP99: see HopP50.
func (r HopResult) HopP99() time.Duration { return r.Edge.P99 - r.Origin.P99 }

// PublishedBps is the publisher's payload rate, in bytes per second, as
// the origin received it (as the publisher sent it without session
// counters).
func (r HopResult) PublishedBps() float64 {
	if r.HaveSessions {
		return float64(r.Sessions.BytesIn) / r.Window.Seconds()
	}
	return float64(r.PublishedBytes) / r.Window.Seconds()
}

// UpstreamBps is the payload rate from the origin to the edge, in bytes
// per second (0 without session counters).
func (r HopResult) UpstreamBps() float64 {
	return float64(r.Sessions.RelayBytesOut) / r.Window.Seconds()
}

// UpstreamRatio is the payload sent upstream-to-edge over the payload
// published, both counted by the origin: 1 is one copy.
func (r HopResult) UpstreamRatio() float64 {
	if r.Sessions.BytesIn == 0 {
		return 0
	}
	return float64(r.Sessions.RelayBytesOut) / float64(r.Sessions.BytesIn)
}

// EdgeDeliveredRatio is the objects the edge subscribers received over
// the objects published times the subscribers.
func (r HopResult) EdgeDeliveredRatio() float64 {
	want := float64(r.PublishedObjects) * float64(r.Subscribers)
	if want == 0 {
		return 0
	}
	return float64(r.Edge.Objects) / want
}

func (r HopResult) cores(d time.Duration) float64 { return d.Seconds() / r.Window.Seconds() }

// OtherCores is the average CPU use, in cores, of everything on the
// machine but the two relays and the load generator (0 without both
// relays' stats or /proc/stat): above 0, the run was disturbed.
func (r HopResult) OtherCores() float64 {
	if !r.HaveOrigin || !r.HaveEdge || r.MachineBusy == 0 {
		return 0
	}
	return max(0, r.cores(r.MachineBusy-r.OriginRelay.CPU-r.EdgeRelay.CPU-r.LoadGenCPU))
}

func (r HopResult) String() string {
	s := fmt.Sprintf("edge subscribers=%d setup=%s window=%s published=%.0f kB/s (%d objects)"+
		" edge: delivered %.1f%% (worst subscriber %d objects) p50=%.2f ms p99=%.2f ms max=%.2f ms (without first objects p50=%.2f p99=%.2f)"+
		" origin: p50=%.2f ms p99=%.2f ms max=%.2f ms (without first objects p50=%.2f p99=%.2f)"+
		" hop: p50=%+.2f ms p99=%+.2f ms",
		r.Subscribers, r.Setup.Round(time.Millisecond), r.Window.Round(time.Millisecond), r.PublishedBps()/1e3, r.PublishedObjects,
		100*r.EdgeDeliveredRatio(), r.Edge.MinObjects, ms(r.Edge.P50), ms(r.Edge.P99), ms(r.Edge.Max), ms(r.Edge.DeltaP50), ms(r.Edge.DeltaP99),
		ms(r.Origin.P50), ms(r.Origin.P99), ms(r.Origin.Max), ms(r.Origin.DeltaP50), ms(r.Origin.DeltaP99),
		ms(r.HopP50()), ms(r.HopP99()))
	if r.HaveSessions {
		s += fmt.Sprintf(" upstream: %.0f kB/s, %d objects = %.3f x published (%d objects)",
			r.UpstreamBps()/1e3, r.Sessions.RelayObjectsOut, r.UpstreamRatio(), r.Sessions.ObjectsIn)
	}
	s += fmt.Sprintf(" cores: loadgen %.2f", r.cores(r.LoadGenCPU))
	if r.HaveOrigin {
		s += fmt.Sprintf(" origin %.2f", r.cores(r.OriginRelay.CPU))
	}
	if r.HaveEdge {
		s += fmt.Sprintf(" edge %.2f", r.cores(r.EdgeRelay.CPU))
	}
	if r.MachineBusy > 0 {
		s += fmt.Sprintf(" machine %.2f", r.cores(r.MachineBusy))
		if r.HaveOrigin && r.HaveEdge {
			s += fmt.Sprintf(" (other %.2f)", r.OtherCores())
		}
	}
	return s
}

// subscribeAll connects n subscribers to url, each on its own QUIC
// connection, at most cfg.DialConcurrency handshakes at a time. A
// SUBSCRIBE that fails is retried until ctx ends: an edge knows a
// broadcast only once its upstream session is up. Their readers run until
// readCtx ends, in readers. The sessions are returned, those connected,
// even with an error: the caller closes them.
func subscribeAll(ctx, readCtx context.Context, cfg *FanoutConfig, url string, n int, w *window, readers *sync.WaitGroup) ([]*subscriber, []*moq.Session, error) {
	quiet := moq.Config{Logger: slog.New(slog.DiscardHandler)}
	ns := moq.ParsePath(cfg.Broadcast)
	subs := make([]*subscriber, n)
	sessions := make([]*moq.Session, n)
	sem := make(chan struct{}, cfg.DialConcurrency)
	errc := make(chan error, n)
	var dials sync.WaitGroup
	for i := range subs {
		subs[i] = &subscriber{first: make(chan struct{})}
		dials.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
			defer func() { <-sem }()
			s, qc, err := dialQUIC(ctx, url, quiet)
			if err != nil {
				errc <- fmt.Errorf("bench: subscriber %d to %s: %w", i, url, err)
				return
			}
			sessions[i], subs[i].conn = s, qc
			for {
				sub, err := s.Subscribe(ctx, ns, cfg.Track, moq.SubscribeOptions{Limits: moq.TrackLimits{MaxGroups: 2}})
				if err == nil {
					readers.Go(func() { subs[i].read(readCtx, w, sub.Track) })
					return
				}
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
					errc <- fmt.Errorf("bench: subscriber %d to %s: subscribe: %w", i, url, err)
					return
				}
			}
		})
	}
	dials.Wait()
	close(errc)
	return subs, sessions, errors.Join(collect(errc)...)
}

// RunHop publishes one track to the origin at cfg.URL, connects
// cfg.Subscribers subscribers to the edge at cfg.EdgeURL and one control
// subscriber to the origin, and measures the steady state.
//
// It measures what one relay hop adds: a publisher sends to an origin
// relay, an edge relay pulls the broadcast from the origin (its upstream)
// and serves N subscribers, and one control subscriber reads the same
// track at the origin directly. Every payload carries its send time, so
// the edge subscribers' latency minus the control subscriber's is the
// hop's. The origin's session counters tell how many payload bytes went
// to the edge against how many came from the publisher: one copy per
// track, so a ratio of 1 whatever N is.
//
// The publisher and subscriber code is RunFanout's (publisher.publish,
// subscriber.read, dialQUIC). BenchmarkRelayHop runs the two relays as
// relay children (StartRelayProcess, the edge with RelayUpstreamEnv).
func RunHop(ctx context.Context, cfg HopConfig) (HopResult, error) {
	if cfg.Broadcast == "" {
		cfg.Broadcast = "bench/hop"
	}
	if err := cfg.defaults(); err != nil {
		return HopResult{}, err
	}
	if cfg.EdgeURL == "" {
		return HopResult{}, errors.New("bench: no edge URL")
	}
	log := cfg.Logger
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ns := moq.ParsePath(cfg.Broadcast)
	w := newWindow()

	// The publisher, at the origin.
	pub := moq.NewPublisher(ns, moq.TrackLimits{})
	track := pub.Track(cfg.Track)
	ps, err := moq.Dial(ctx, cfg.URL, moq.DialOptions{Insecure: true,
		Session: moq.Config{Logger: slog.New(slog.DiscardHandler), Handler: pub}})
	if err != nil {
		return HopResult{}, fmt.Errorf("bench: publisher: %w", err)
	}
	defer ps.Close()
	if err := ps.PublishNamespace(ctx, ns); err != nil {
		return HopResult{}, fmt.Errorf("bench: publish namespace: %w", err)
	}
	var p publisher
	pubErr := make(chan error, 1)
	go func() { pubErr <- p.publish(ctx, &cfg.FanoutConfig, w, &trackSink{t: track}) }()

	// The control subscriber at the origin, the others at the edge.
	var readers sync.WaitGroup
	var sessions []*moq.Session
	defer func() {
		cancel()
		var wg sync.WaitGroup
		for _, s := range sessions {
			if s != nil {
				wg.Go(func() { s.Close() })
			}
		}
		wg.Wait()
		readers.Wait()
	}()
	setupStart := time.Now()
	setupCtx, setupCancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer setupCancel()
	control, cs, err := subscribeAll(setupCtx, ctx, &cfg.FanoutConfig, cfg.URL, 1, w, &readers)
	sessions = append(sessions, cs...)
	if err != nil {
		return HopResult{}, err
	}
	edge, es, err := subscribeAll(setupCtx, ctx, &cfg.FanoutConfig, cfg.EdgeURL, cfg.Subscribers, w, &readers)
	sessions = append(sessions, es...)
	if err != nil {
		return HopResult{}, err
	}
	log.Info("subscribers connected", "edge", cfg.Subscribers, "elapsed", time.Since(setupStart))
	for i, s := range append(slices.Clone(control), edge...) {
		select {
		case <-s.first:
		case err := <-pubErr:
			return HopResult{}, fmt.Errorf("bench: publisher stopped: %w", err)
		case <-setupCtx.Done():
			return HopResult{}, fmt.Errorf("bench: subscriber %d got no object: %w", i, setupCtx.Err())
		}
	}
	res := HopResult{Subscribers: cfg.Subscribers, Setup: time.Since(setupStart),
		HaveSessions: cfg.OriginSessions != nil, HaveOrigin: cfg.RelayStats != nil, HaveEdge: cfg.EdgeStats != nil}
	log.Info("every subscriber receives", "setup", res.Setup)

	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case err := <-pubErr:
			return fmt.Errorf("bench: publisher stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sleep(cfg.Warmup); err != nil {
		return res, err
	}

	// The window.
	type sample struct {
		sess         SessionStats
		origin, edge RelayStats
		cpu, busy    time.Duration
	}
	snap := func() (sample, error) {
		var s sample
		var err1, err2, err3 error
		if cfg.OriginSessions != nil {
			s.sess, err1 = cfg.OriginSessions()
		}
		if cfg.RelayStats != nil {
			s.origin, err2 = cfg.RelayStats()
		}
		if cfg.EdgeStats != nil {
			s.edge, err3 = cfg.EdgeStats()
		}
		s.cpu, s.busy = selfCPU(), machineBusy()
		return s, errors.Join(err1, err2, err3)
	}
	s0, err := snap()
	if err != nil {
		return res, err
	}
	start := time.Now()
	w.end.Store(start.Add(cfg.Window).UnixNano())
	w.start.Store(start.UnixNano())
	if err := sleep(time.Until(start.Add(cfg.Window))); err != nil {
		return res, err
	}
	s1, err := snap()
	if err != nil {
		return res, err
	}
	res.Window = time.Since(start)
	res.Sessions = s1.sess.sub(s0.sess)
	res.OriginRelay = RelayStats{CPU: s1.origin.CPU - s0.origin.CPU, SysCPU: s1.origin.SysCPU - s0.origin.SysCPU}
	res.EdgeRelay = RelayStats{CPU: s1.edge.CPU - s0.edge.CPU, SysCPU: s1.edge.SysCPU - s0.edge.SysCPU}
	res.LoadGenCPU = s1.cpu - s0.cpu
	if s0.busy > 0 && s1.busy > s0.busy {
		res.MachineBusy = s1.busy - s0.busy
	}
	// Let readers descheduled at the boundary tally what they received.
	time.Sleep(100 * time.Millisecond)
	res.PublishedObjects, res.PublishedBytes = p.objects.Load(), p.bytes.Load()
	res.Edge, res.Origin = summarize(edge), summarize(control)
	return res, nil
}
