// Package bench measures the MoQ relay core: the fan-out of one live track
// from one publisher to many subscribers over raw QUIC.
//
// RunFanout is the load generator: one publisher session publishes a
// synthetic video-like track (constant bit rate, one group per second,
// a bigger first object per group like a keyframe) and N subscriber
// sessions, each its own QUIC connection, receive it. Every payload starts
// with its send time (UnixNano, big endian), so subscribers measure
// publish-to-receive latency; publisher and subscribers share a clock
// because they run in one process. The relay runs in a child process
// (StartRelayProcess) so that its CPU time is measured alone.
//
// BenchmarkFanout drives it for several N; cmd/fanout runs it by hand,
// also against another relay such as `moqgate serve`.
package bench

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqgate/moqgate/moq"
)

// FanoutConfig configures RunFanout. Zero fields take the defaults.
type FanoutConfig struct {
	// URL of the relay: moqt://HOST:PORT/ (raw QUIC, certificate not
	// verified).
	URL string
	// Broadcast path and track name; default "bench/fanout" and "video".
	Broadcast, Track string
	// Subscribers is the number of subscriber sessions (at least 1).
	Subscribers int
	// Bitrate of the published track in bit/s of payload; default 2 Mbit/s.
	Bitrate int
	// FPS is objects per second (default 30); GroupObjects the objects of
	// a group (default FPS: one group per second).
	FPS, GroupObjects int
	// KeyframeFactor: object 0 of every group is this many times the
	// average object size (default 6); the others share the rest.
	KeyframeFactor float64
	// Warmup is waited after the last subscriber got its first object
	// (default 2 s); Window is the measured steady state (default 5 s).
	Warmup, Window time.Duration
	// DialConcurrency bounds the subscriber handshakes in flight
	// (default 16).
	DialConcurrency int
	// SetupTimeout bounds connecting every subscriber until its first
	// object (default 2 min).
	SetupTimeout time.Duration
	// RelayStats, if set, samples the relay's resource use at the edges
	// of the window (RelayProcess.Stats, or ProcCPU for another process).
	RelayStats func() (RelayStats, error)
	// WindowStart and WindowEnd, if set, run at the edges of the window
	// (for instance to profile the relay over the steady state only).
	WindowStart, WindowEnd func() error
	// Logger receives progress; nil discards it. Sessions never log.
	Logger *slog.Logger
}

func (c *FanoutConfig) defaults() error {
	if c.URL == "" {
		return errors.New("bench: no relay URL")
	}
	if c.Subscribers < 1 {
		return errors.New("bench: need at least one subscriber")
	}
	if c.Broadcast == "" {
		c.Broadcast = "bench/fanout"
	}
	if c.Track == "" {
		c.Track = "video"
	}
	if c.Bitrate <= 0 {
		c.Bitrate = 2_000_000
	}
	if c.FPS <= 0 {
		c.FPS = 30
	}
	if c.GroupObjects <= 0 {
		c.GroupObjects = c.FPS
	}
	if c.KeyframeFactor <= 0 {
		c.KeyframeFactor = 6
	}
	c.KeyframeFactor = min(c.KeyframeFactor, float64(c.GroupObjects))
	if c.Warmup <= 0 {
		c.Warmup = 2 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 5 * time.Second
	}
	if c.DialConcurrency <= 0 {
		c.DialConcurrency = 16
	}
	if c.SetupTimeout <= 0 {
		c.SetupTimeout = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// objectSizes returns the payload sizes of object 0 and of the others.
func (c *FanoutConfig) objectSizes() (key, other int) {
	avg := float64(c.Bitrate) / 8 / float64(c.FPS)
	if c.GroupObjects == 1 {
		return int(avg), int(avg)
	}
	key = int(avg * c.KeyframeFactor)
	other = int((avg*float64(c.GroupObjects) - float64(key)) / float64(c.GroupObjects-1))
	return max(key, 8), max(other, 8)
}

// FanoutResult is what RunFanout measured over the steady-state window.
type FanoutResult struct {
	Subscribers int
	// Setup is the time from the first subscriber dial until every
	// subscriber received an object.
	Setup time.Duration
	// Window is the measured wall time.
	Window time.Duration
	// Published objects and payload bytes sent by the publisher in the window.
	PublishedObjects, PublishedBytes uint64
	// Delivered objects and payload bytes received in the window, summed
	// over subscribers; MinSubscriberObjects is the worst subscriber's.
	DeliveredObjects, DeliveredBytes uint64
	MinSubscriberObjects             uint64
	// Latency percentiles (publish to receive) of the objects received in
	// the window; DeltaP50 and DeltaP99 leave out the first (big,
	// keyframe-like) object of every group, which dominates the tail.
	P50, P99, Max      time.Duration
	DeltaP50, DeltaP99 time.Duration
	// Relay is the relay's resource use over the window (zero if
	// RelayStats was not given); HaveRelay tells which.
	Relay     RelayStats
	HaveRelay bool
	// LoadGenCPU is the CPU time of this process (publisher and
	// subscribers) over the window.
	LoadGenCPU time.Duration
	// PacketsIn and PacketsOut are the QUIC packets the subscribers
	// received and sent (ACKs, mostly) in the window.
	PacketsIn, PacketsOut uint64
	// PacketBytesIn is the size of the packets received (QUIC, without
	// UDP and IP headers).
	PacketBytesIn uint64
	// MachineBusy is the busy time of all the machine's CPUs over the
	// window (/proc/stat; 0 where unavailable): what it has beyond relay
	// and load generator is other work disturbing the measurement.
	MachineBusy time.Duration
}

// DeliveredMbps is the payload bit rate delivered to all subscribers.
func (r FanoutResult) DeliveredMbps() float64 {
	return float64(r.DeliveredBytes) * 8 / r.Window.Seconds() / 1e6
}

// DeliveredRatio is the objects delivered over the objects published
// times the subscribers (1 when nobody lost anything).
func (r FanoutResult) DeliveredRatio() float64 {
	want := float64(r.PublishedObjects) * float64(r.Subscribers)
	if want == 0 {
		return 0
	}
	return float64(r.DeliveredObjects) / want
}

// RelayCPUPerGbit is the relay's CPU seconds per delivered Gbit of payload.
func (r FanoutResult) RelayCPUPerGbit() float64 {
	gbit := float64(r.DeliveredBytes) * 8 / 1e9
	if gbit == 0 {
		return math.Inf(1)
	}
	return r.Relay.CPU.Seconds() / gbit
}

// RelayCores is the relay's average CPU use in cores.
func (r FanoutResult) RelayCores() float64 { return r.Relay.CPU.Seconds() / r.Window.Seconds() }

// LoadGenCores is the load generator's average CPU use in cores.
func (r FanoutResult) LoadGenCores() float64 { return r.LoadGenCPU.Seconds() / r.Window.Seconds() }

// OtherCores is the average CPU use, in cores, of everything on the
// machine but the relay and the load generator (0 without RelayStats or
// /proc/stat).
func (r FanoutResult) OtherCores() float64 {
	if !r.HaveRelay || r.MachineBusy == 0 {
		return 0
	}
	return max(0, (r.MachineBusy-r.Relay.CPU-r.LoadGenCPU).Seconds()/r.Window.Seconds())
}

// PacketsPerObject is the QUIC packets a subscriber received per
// delivered object, and AcksPerObject the packets it sent.
func (r FanoutResult) PacketsPerObject() (in, out float64) {
	if r.DeliveredObjects == 0 {
		return 0, 0
	}
	n := float64(r.DeliveredObjects)
	return float64(r.PacketsIn) / n, float64(r.PacketsOut) / n
}

// RelayAllocsPerObject is relay heap allocations per delivered object.
func (r FanoutResult) RelayAllocsPerObject() float64 {
	if r.DeliveredObjects == 0 {
		return 0
	}
	return float64(r.Relay.Mallocs) / float64(r.DeliveredObjects)
}

// RelayAllocBytesPerObject is relay heap bytes allocated per delivered object.
func (r FanoutResult) RelayAllocBytesPerObject() float64 {
	if r.DeliveredObjects == 0 {
		return 0
	}
	return float64(r.Relay.AllocBytes) / float64(r.DeliveredObjects)
}

func (r FanoutResult) String() string {
	s := fmt.Sprintf("subscribers=%d setup=%s window=%s delivered=%.1f Mbit/s (%.1f%% of %d objects x %d, worst subscriber %d) latency p50=%.2f ms p99=%.2f ms max=%.2f ms (without first objects p50=%.2f ms p99=%.2f ms) loadgen=%.2f cores",
		r.Subscribers, r.Setup.Round(time.Millisecond), r.Window.Round(time.Millisecond), r.DeliveredMbps(),
		100*r.DeliveredRatio(), r.PublishedObjects, r.Subscribers, r.MinSubscriberObjects,
		ms(r.P50), ms(r.P99), ms(r.Max), ms(r.DeltaP50), ms(r.DeltaP99), r.LoadGenCores())
	if r.MachineBusy > 0 {
		s += fmt.Sprintf(" other=%.2f cores", r.OtherCores())
	}
	in, out := r.PacketsPerObject()
	s += fmt.Sprintf(" packets/object: %.2f in (%.0f B each), %.2f out", in, float64(r.PacketBytesIn)/float64(max(r.PacketsIn, 1)), out)
	if r.HaveRelay {
		s += fmt.Sprintf(" relay: %.2f cores, %.3f cpu-s/Gbit (%.2f Gbit/s per core)",
			r.RelayCores(), r.RelayCPUPerGbit(), 1/r.RelayCPUPerGbit())
		// Only a relay child reports these.
		if r.Relay.SysCPU > 0 {
			s += fmt.Sprintf(", %.0f%% system", 100*r.Relay.SysCPU.Seconds()/r.Relay.CPU.Seconds())
		}
		if r.Relay.Mallocs > 0 {
			s += fmt.Sprintf(", %.1f allocs/object, %.0f B/object, %d GCs",
				r.RelayAllocsPerObject(), r.RelayAllocBytesPerObject(), r.Relay.NumGC)
		}
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// window is the measured interval in UnixNano; nothing is inside it until
// set.
type window struct{ start, end atomic.Int64 }

func newWindow() *window {
	w := &window{}
	w.start.Store(math.MaxInt64)
	w.end.Store(math.MaxInt64)
	return w
}

func (w *window) contains(t int64) bool { return t >= w.start.Load() && t < w.end.Load() }

// subscriber is one subscriber's tally.
type subscriber struct {
	conn      *quic.Conn
	first     chan struct{}
	firstOnce sync.Once
	// QUIC packets received and sent (ACKs, mostly) at the window's start.
	pktsIn0, pktsOut0, bytesIn0 uint64

	mu      sync.Mutex
	objects uint64
	bytes   uint64
	lat     []time.Duration
	key     []bool // lat[i] is the first object of a group
}

func (s *subscriber) record(w *window, o moq.Object) {
	now := time.Now().UnixNano()
	s.firstOnce.Do(func() { close(s.first) })
	if len(o.Payload) < 8 || !w.contains(now) {
		return
	}
	sent := int64(binary.BigEndian.Uint64(o.Payload))
	s.mu.Lock()
	s.objects++
	s.bytes += uint64(len(o.Payload))
	s.lat = append(s.lat, time.Duration(now-sent))
	s.key = append(s.key, o.ID == 0)
	s.mu.Unlock()
}

// read follows the track; each group is read on its own goroutine since
// groups arrive on their own streams and may overlap.
func (s *subscriber) read(ctx context.Context, w *window, t *moq.Track) {
	var wg sync.WaitGroup
	defer wg.Wait()
	rd := t.NewReader(false)
	for {
		gr, err := rd.NextGroup(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			for {
				o, err := gr.Next(ctx)
				if err != nil {
					return
				}
				s.record(w, o)
			}
		})
	}
}

// publisher counts what it sent in the window.
type publisher struct {
	objects, bytes atomic.Uint64
}

// sink is where the publisher writes: a moq.Track, or a floor stream.
type sink interface {
	NewGroup(ctx context.Context) error
	Append(id uint64, payload []byte) error
	Close()
}

// trackSink publishes into a moq.Track.
type trackSink struct {
	t *moq.Track
	g *moq.Group
}

func (s *trackSink) NewGroup(context.Context) error {
	s.Close()
	if s.g = s.t.NewGroup(); s.g == nil {
		return errors.New("bench: publisher track refused a new group")
	}
	return nil
}

func (s *trackSink) Append(id uint64, payload []byte) error {
	return s.g.Append(moq.Object{ID: id, Payload: payload})
}

func (s *trackSink) Close() {
	if s.g != nil {
		s.g.Close()
	}
}

// publish appends objects to out at cfg.FPS until ctx is done. Sending
// follows a fixed schedule, so a stall is caught up rather than lowering
// the rate; each payload is stamped right before it is appended.
func (p *publisher) publish(ctx context.Context, cfg *FanoutConfig, w *window, out sink) error {
	key, other := cfg.objectSizes()
	interval := time.Second / time.Duration(cfg.FPS)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	next := time.Now()
	defer out.Close()
	for i := 0; ; i++ {
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil
			}
		} else if ctx.Err() != nil {
			return nil
		}
		next = next.Add(interval)
		id := i % cfg.GroupObjects
		size := other
		if id == 0 {
			size = key
			if err := out.NewGroup(ctx); err != nil {
				return err
			}
		}
		payload := make([]byte, size)
		now := time.Now().UnixNano()
		binary.BigEndian.PutUint64(payload, uint64(now))
		if err := out.Append(uint64(id), payload); err != nil {
			return fmt.Errorf("bench: publish: %w", err)
		}
		if w.contains(now) {
			p.objects.Add(1)
			p.bytes.Add(uint64(size))
		}
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy returns the busy time of all CPUs (the first line of
// /proc/stat minus idle and iowait), or 0.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	const userHZ = 100
	return time.Duration(busy) * (time.Second / userHZ)
}

// dialQUIC connects a session over raw QUIC like moq.Dial does with
// Insecure set, and also returns the QUIC connection for its statistics.
func dialQUIC(ctx context.Context, rawURL string, cfg moq.Config) (*moq.Session, *quic.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	if u.Scheme != "moqt" || u.Port() == "" {
		return nil, nil, fmt.Errorf("bench: want moqt://HOST:PORT/, got %q", rawURL)
	}
	tlsConf := &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: true, NextProtos: []string{moq.ALPN14}}
	qc, err := quic.DialAddr(ctx, u.Host, tlsConf, moq.QUICConfig())
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", u.Host, err)
	}
	cfg.Path, cfg.Authority = u.EscapedPath(), u.Host
	s, err := moq.Connect(ctx, moq.NewQUICConn(qc), cfg)
	if err != nil {
		qc.CloseWithError(0, "setup failed")
		return nil, nil, err
	}
	return s, qc, nil
}

// RunFanout publishes one track to the relay at cfg.URL, connects
// cfg.Subscribers subscribers to it and measures the steady state.
func RunFanout(ctx context.Context, cfg FanoutConfig) (FanoutResult, error) {
	if err := cfg.defaults(); err != nil {
		return FanoutResult{}, err
	}
	log := cfg.Logger
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	dialOpts := moq.DialOptions{Insecure: true, Session: moq.Config{Logger: quiet}}
	ns := moq.ParsePath(cfg.Broadcast)
	w := newWindow()

	// The publisher.
	pub := moq.NewPublisher(ns, moq.TrackLimits{})
	track := pub.Track(cfg.Track)
	popts := dialOpts
	popts.Session.Handler = pub
	ps, err := moq.Dial(ctx, cfg.URL, popts)
	if err != nil {
		return FanoutResult{}, fmt.Errorf("bench: publisher: %w", err)
	}
	defer ps.Close()
	if err := ps.PublishNamespace(ctx, ns); err != nil {
		return FanoutResult{}, fmt.Errorf("bench: publish namespace: %w", err)
	}
	var p publisher
	pubErr := make(chan error, 1)
	go func() { pubErr <- p.publish(ctx, &cfg, w, &trackSink{t: track}) }()

	// The subscribers.
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
	subs, sessions, err := subscribeAll(setupCtx, ctx, &cfg, cfg.URL, cfg.Subscribers, w, &readers)
	if err != nil {
		return FanoutResult{}, err
	}
	log.Info("subscribers connected", "n", cfg.Subscribers, "elapsed", time.Since(setupStart))
	return measure(ctx, &cfg, setupStart, w, subs, &p, pubErr)
}

// measure waits until every subscriber got an object, then for the
// warm-up, and measures the window.
func measure(ctx context.Context, cfg *FanoutConfig, setupStart time.Time, w *window, subs []*subscriber, p *publisher, pubErr <-chan error) (FanoutResult, error) {
	log := cfg.Logger
	var err error
	setupCtx, setupCancel := context.WithDeadline(ctx, setupStart.Add(cfg.SetupTimeout))
	defer setupCancel()
	for i, s := range subs {
		select {
		case <-s.first:
		case err := <-pubErr:
			return FanoutResult{}, fmt.Errorf("%w: %w", errPublisherStopped, err)
		case <-setupCtx.Done():
			return FanoutResult{}, fmt.Errorf("bench: subscriber %d got no object: %w", i, setupCtx.Err())
		}
	}
	res := FanoutResult{Subscribers: cfg.Subscribers, Setup: time.Since(setupStart), HaveRelay: cfg.RelayStats != nil}
	log.Info("every subscriber receives", "setup", res.Setup)

	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case err := <-pubErr:
			return fmt.Errorf("%w: %w", errPublisherStopped, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sleep(cfg.Warmup); err != nil {
		return res, err
	}

	// The window.
	var r0, r1 RelayStats
	if cfg.WindowStart != nil {
		if err := cfg.WindowStart(); err != nil {
			return res, err
		}
	}
	if cfg.RelayStats != nil {
		if r0, err = cfg.RelayStats(); err != nil {
			return res, err
		}
	}
	for _, s := range subs {
		st := s.conn.ConnectionStats()
		s.pktsIn0, s.pktsOut0, s.bytesIn0 = st.PacketsReceived, st.PacketsSent, st.BytesReceived
	}
	c0, m0 := selfCPU(), machineBusy()
	start := time.Now()
	w.end.Store(start.Add(cfg.Window).UnixNano())
	w.start.Store(start.UnixNano())
	if err := sleep(time.Until(start.Add(cfg.Window))); err != nil {
		return res, err
	}
	if cfg.RelayStats != nil {
		if r1, err = cfg.RelayStats(); err != nil {
			return res, err
		}
	}
	c1, m1 := selfCPU(), machineBusy()
	res.Window = time.Since(start)
	for _, s := range subs {
		st := s.conn.ConnectionStats()
		res.PacketsIn += st.PacketsReceived - s.pktsIn0
		res.PacketsOut += st.PacketsSent - s.pktsOut0
		res.PacketBytesIn += st.BytesReceived - s.bytesIn0
	}
	if cfg.WindowEnd != nil {
		if err := cfg.WindowEnd(); err != nil {
			return res, err
		}
	}
	res.Relay = RelayStats{CPU: r1.CPU - r0.CPU, SysCPU: r1.SysCPU - r0.SysCPU, Mallocs: r1.Mallocs - r0.Mallocs,
		AllocBytes: r1.AllocBytes - r0.AllocBytes, NumGC: r1.NumGC - r0.NumGC}
	res.LoadGenCPU = c1 - c0
	if m0 > 0 && m1 > m0 {
		res.MachineBusy = m1 - m0
	}
	// Objects received before the end are being tallied by now, except
	// for a reader that was descheduled at the boundary: give it a moment.
	time.Sleep(100 * time.Millisecond)

	res.PublishedObjects, res.PublishedBytes = p.objects.Load(), p.bytes.Load()
	st := summarize(subs)
	res.DeliveredObjects, res.DeliveredBytes, res.MinSubscriberObjects = st.Objects, st.Bytes, st.MinObjects
	res.P50, res.P99, res.Max, res.DeltaP50, res.DeltaP99 = st.P50, st.P99, st.Max, st.DeltaP50, st.DeltaP99
	return res, nil
}

// quantile returns the q-quantile (nearest rank) of d, sorting it.
func quantile(d []time.Duration, q float64) time.Duration {
	slices.Sort(d)
	return d[max(0, int(math.Ceil(q*float64(len(d))))-1)]
}

func collect(errc <-chan error) []error {
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errs
}
