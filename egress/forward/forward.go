package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/moqgate/moqgate/moq"
)

// Status is a target's state, for the API and metrics. It never holds the
// token.
type Status struct {
	URL        string `json:"url"`
	Mode       string `json:"mode"`
	Standby    bool   `json:"standby,omitempty"` // a failover target
	Connected  bool   `json:"connected"`
	Broadcasts int    `json:"broadcasts"` // forwarded now
	Forwarded  uint64 `json:"broadcasts_total"`
	Bytes      uint64 `json:"bytes"`
	Reconnects uint64 `json:"reconnects"`
	LastError  string `json:"last_error,omitempty"`
}

// Manager forwards local broadcasts to its targets until Run returns.
type Manager struct {
	local   *moq.LocalClient
	log     *slog.Logger
	targets []*target
}

// New makes a manager for the targets (validated by the caller); local
// is the relay's in-process client ("forward").
func New(local *moq.LocalClient, targets []Target, log *slog.Logger) (*Manager, error) {
	m := &Manager{local: local, log: log}
	for i, t := range targets {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("forward[%d]: %w", i, err)
		}
		if t.Mode == "" {
			t.Mode = ModeAuto
		}
		tg := &target{cfg: t, m: m, log: log.With("forward", redact(t.URL)), changed: make(chan struct{})}
		if t.Failover {
			if i == 0 {
				return nil, fmt.Errorf("forward[0]: failover needs a target before it")
			}
			tg.primary = m.targets[i-1]
		}
		m.targets = append(m.targets, tg)
	}
	return m, nil
}

// Run keeps a session to each target until ctx is done.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range m.targets {
		wg.Go(func() { t.run(ctx) })
	}
	wg.Wait()
}

// Status returns each target's state, in configuration order.
func (m *Manager) Status() []Status {
	out := make([]Status, 0, len(m.targets))
	for _, t := range m.targets {
		out = append(out, t.status())
	}
	return out
}

// target is one target's supervisor.
type target struct {
	cfg     Target
	m       *Manager
	log     *slog.Logger
	primary *target // set for a failover target

	mu         sync.Mutex
	sess       *moq.Session
	connected  bool
	changed    chan struct{} // closed and replaced when connected changes
	live       int
	forwarded  uint64
	bytesDone  uint64 // of the sessions that ended
	reconnects uint64
	lastErr    string
}

func (t *target) status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := Status{URL: redact(t.cfg.URL), Mode: t.cfg.Mode, Standby: t.primary != nil, Connected: t.connected,
		Broadcasts: t.live, Forwarded: t.forwarded, Bytes: t.bytesDone, Reconnects: t.reconnects, LastError: t.lastErr}
	if t.sess != nil {
		_, b, _, _, _ := t.sess.Stats()
		st.Bytes += b
	}
	return st
}

// up reports whether the target is connected, and a channel closed when
// that changes.
func (t *target) up() (bool, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.connected, t.changed
}

func (t *target) setSession(s *moq.Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s == nil && t.sess != nil {
		_, b, _, _, _ := t.sess.Stats()
		t.bytesDone += b
	}
	t.sess, t.connected, t.live = s, s != nil, 0
	close(t.changed)
	t.changed = make(chan struct{})
}

// setError records why a session failed, without the token.
func (t *target) setError(err error) {
	msg := err.Error()
	if t.cfg.Token != "" {
		msg = strings.ReplaceAll(msg, t.cfg.Token, "REDACTED")
	}
	t.mu.Lock()
	t.lastErr = msg
	t.mu.Unlock()
}

// run reconnects with exponential backoff and jitter, each target on its
// own; a standby waits while its primary is connected.
func (t *target) run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		if t.primary != nil && !t.waitPrimaryDown(ctx) {
			return
		}
		start := time.Now()
		err := t.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errPrimaryBack) {
			t.log.Info("primary target is back; standby disconnected")
			continue
		}
		t.setError(err)
		if time.Since(start) > 10*time.Second {
			backoff = 250 * time.Millisecond
		}
		// Jitter: targets that failed together do not retry together.
		d := backoff/2 + rand.N(backoff/2+1)
		t.log.Warn("forward session ended; reconnecting", "err", err, "in", d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
		t.mu.Lock()
		t.reconnects++
		t.mu.Unlock()
		backoff = min(backoff*2, 2*time.Second) // a retry is one handshake: cheap
	}
}

var errPrimaryBack = errors.New("forward: primary target is back")

// waitPrimaryDown waits until the primary target is not connected.
func (t *target) waitPrimaryDown(ctx context.Context) bool {
	for {
		up, ch := t.primary.up()
		if !up {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// once runs one session: dial, then forward matching broadcasts until the
// session ends (or, on a standby, the primary is back).
func (t *target) once(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if t.primary != nil {
		go func() {
			for {
				up, ch := t.primary.up()
				if up {
					cancel(errPrimaryBack)
					return
				}
				select {
				case <-ch:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	raw, opts, err := t.cfg.dial()
	if err != nil {
		return err
	}
	opts.IdleTimeout = 1200 * time.Millisecond // notice a dead target quickly (failover)
	opts.Session.Logger = t.log
	opts.Session.Handler = t.m.local.Forwarder(func(ns moq.Namespace) (string, bool) { return t.cfg.local(ns.Path()) })
	// Marked as a relay session: the target treats what we forward as
	// learnt from a relay (a local publisher there wins; not forwarded on).
	opts.Session.Implementation = moq.ImplementationEdge
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := moq.Dial(dctx, raw, opts)
	dcancel()
	if err != nil {
		if c := context.Cause(ctx); errors.Is(c, errPrimaryBack) {
			return c
		}
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	t.setSession(s)
	defer t.setSession(nil)
	t.log.Info("forward target connected", "mode", t.cfg.Mode, "version", fmt.Sprintf("%#x", s.Version()))
	fw := &session{t: t, s: s, ctx: ctx, pushes: map[string]*push{}}
	unwatch := t.m.local.Watch("", fw.event)
	defer unwatch()
	<-s.Done()
	fw.stopAll()
	if c := context.Cause(ctx); errors.Is(c, errPrimaryBack) {
		return c
	}
	if err := s.Err(); err != nil {
		return err
	}
	return errors.New("session closed")
}

// session forwards broadcasts over one session to a target.
type session struct {
	t   *target
	s   *moq.Session
	ctx context.Context

	mu     sync.Mutex
	pushes map[string]*push // by local path
}

// push is one broadcast being forwarded.
type push struct {
	remote moq.Namespace
	cancel context.CancelFunc
	done   chan struct{}
}

// event is the local watch's callback: a broadcast started or ended.
func (f *session) event(path string, active bool) {
	remote, ok := f.t.cfg.remote(path)
	if !ok {
		return
	}
	live, origin := f.t.m.local.IsOrigin(path)
	if live && !origin && !f.t.cfg.Relayed {
		return // learnt from another relay: forwarding it could loop
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pushes[path]
	switch {
	case active && live && p == nil && f.ctx.Err() == nil:
		ctx, cancel := context.WithCancel(f.ctx)
		p = &push{remote: moq.ParsePath(remote), cancel: cancel, done: make(chan struct{})}
		f.pushes[path] = p
		go f.forward(ctx, path, p)
	case !active && p != nil:
		p.cancel()
		delete(f.pushes, path)
	}
}

func (f *session) stopAll() {
	f.mu.Lock()
	ps := f.pushes
	f.pushes = map[string]*push{}
	f.mu.Unlock()
	for _, p := range ps {
		p.cancel()
		<-p.done
	}
}

func (f *session) count(d int) {
	f.t.mu.Lock()
	f.t.live += d
	if d > 0 {
		f.t.forwarded++
	}
	f.t.mu.Unlock()
}

// forward announces or pushes one broadcast until ctx is done.
func (f *session) forward(ctx context.Context, path string, p *push) {
	defer close(p.done)
	log := f.t.log.With("path", path, "as", p.remote.Path())
	mode := f.t.cfg.Mode
	if mode != ModePublish {
		err := f.s.PublishNamespace(ctx, p.remote)
		switch {
		case err == nil:
			log.Info("broadcast announced to target")
			f.count(1)
			<-ctx.Done()
			f.count(-1)
			if f.s.Context().Err() == nil {
				f.s.PublishNamespaceDone(p.remote)
			}
			return
		case mode == ModeAuto && errors.Is(err, moq.ErrNotSupported):
			log.Info("target does not take announcements; pushing with PUBLISH")
		default:
			log.Warn("target refused the broadcast", "err", err)
			f.t.setError(fmt.Errorf("announce %s: %w", p.remote.Path(), err))
			return
		}
	}
	f.publish(ctx, log, path, p)
}

// publish pushes every track of the broadcast with PUBLISH, and tracks
// that appear later, until ctx is done.
func (f *session) publish(ctx context.Context, log *slog.Logger, path string, p *push) {
	f.count(1)
	defer f.count(-1)
	pushed := map[string]func(){}
	defer func() {
		for _, stop := range pushed {
			stop()
		}
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, name := range f.t.m.local.Tracks(path) {
			if pushed[name] != nil {
				continue
			}
			stop, err := f.t.m.local.PushTrack(ctx, f.s, p.remote, path, name)
			if err != nil {
				log.Warn("target refused a track", "track", name, "err", err)
				f.t.setError(fmt.Errorf("publish %s/%s: %w", p.remote.Path(), name, err))
				pushed[name] = func() {} // not retried on this session
				continue
			}
			log.Info("track pushed to target", "track", name)
			pushed[name] = stop
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
