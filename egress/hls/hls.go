// Package hls serves every broadcast of the relay as Low-Latency HLS
// (fMP4 parts, blocking playlist reload, preload hints) at
// /hls/{broadcast}/index.m3u8.
//
// A muxer (github.com/bluenviron/gohlslib/v2) starts on the first request
// for a broadcast, or for every broadcast as it appears when AlwaysOn is
// set, and stops after IdleTimeout without requests or when the broadcast
// ends. It reaches the relay only through the public moq API over an
// in-process session, exactly like a remote MoQ client: it subscribes to
// the broadcast's catalog and media tracks and unpacks their CMAF objects,
// so it works the same on an edge relay as on the origin.
package hls

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/moqgate/moqgate/moq"
)

// Defaults for the zero values of Config.
const (
	DefaultPartDuration       = 200 * time.Millisecond
	DefaultSegmentMinDuration = time.Second
	DefaultSegmentCount       = 7
	DefaultIdleTimeout        = 60 * time.Second
	DefaultMaxMuxers          = 100
	DefaultSegmentMaxSize     = 16 << 20
	DefaultMaxRequests        = 10000
	DefaultWaitTimeout        = 10 * time.Second
)

// errNoBroadcast: the relay has no such broadcast (HTTP 404).
var errNoBroadcast = errors.New("hls: no such broadcast")

// Config configures a Server.
type Config struct {
	// Relay is the relay whose broadcasts are served (required).
	Relay  *moq.Relay
	Logger *slog.Logger

	// PartDuration is the minimum part duration (parts are cut at the
	// first sample past it, so they come out about this long).
	PartDuration time.Duration
	// SegmentMinDuration is the minimum segment duration; segments are
	// cut at the first video key frame past it.
	SegmentMinDuration time.Duration
	// SegmentCount is the number of segments listed in a playlist;
	// Low-Latency HLS needs at least 7, a lower value is raised.
	SegmentCount int
	// IdleTimeout stops a muxer that had no request for this long (unless
	// AlwaysOn).
	IdleTimeout time.Duration
	// AlwaysOn runs a muxer for every broadcast from the moment it
	// appears, so that the first viewer gets a full playlist at once.
	AlwaysOn bool

	// MaxMuxers bounds the broadcasts muxed at once; a request for one
	// more gets 503.
	MaxMuxers int
	// SegmentMaxSize bounds a segment of one rendition, in bytes; with
	// SegmentCount and MaxMuxers it bounds the memory HLS may hold.
	SegmentMaxSize int
	// MaxRequests bounds the requests being served at once (blocking
	// playlist reloads wait inside); more get 503.
	MaxRequests int
	// WaitTimeout bounds how long a request waits for a broadcast's first
	// segment.
	WaitTimeout time.Duration
	// Authorize, if set, is asked before every request for a file of the
	// broadcast at path; an error answers 403.
	Authorize func(r *http.Request, path string) error
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PartDuration <= 0 {
		c.PartDuration = DefaultPartDuration
	}
	if c.SegmentMinDuration <= 0 {
		c.SegmentMinDuration = DefaultSegmentMinDuration
	}
	if c.SegmentCount <= 0 {
		c.SegmentCount = DefaultSegmentCount
	}
	if c.SegmentCount < lowLatencyGaps {
		c.Logger.Info("hls: segment count raised to the Low-Latency HLS minimum", "configured", c.SegmentCount, "used", lowLatencyGaps)
		c.SegmentCount = lowLatencyGaps
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxMuxers <= 0 {
		c.MaxMuxers = DefaultMaxMuxers
	}
	if c.SegmentMaxSize <= 0 {
		c.SegmentMaxSize = DefaultSegmentMaxSize
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = DefaultMaxRequests
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
}

// Server is the LL-HLS egress: an http.Handler for paths under /hls/.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // lives until Close
	cancel context.CancelFunc
	slots  chan struct{} // MaxRequests tokens

	mu      sync.Mutex
	streams map[string]*stream
	closed  bool
}

// New returns a Server; call Run to expire idle muxers (and, with
// AlwaysOn, to start muxers for new broadcasts) and Close to stop.
func New(cfg Config) *Server {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel,
		slots:   make(chan struct{}, cfg.MaxRequests),
		streams: map[string]*stream{},
	}
}

// Run expires idle muxers and, with AlwaysOn, watches the relay for new
// broadcasts, until ctx ends or Close is called; it then stops every
// muxer.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if s.cfg.AlwaysOn {
		go s.watch(ctx)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			s.expire(now)
		}
	}
}

// Close stops every muxer and refuses new requests.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	sts := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		sts = append(sts, st)
	}
	s.mu.Unlock()
	s.cancel()
	for _, st := range sts {
		<-st.done
	}
}

// expire stops muxers that have had no request for IdleTimeout.
func (s *Server) expire(now time.Time) {
	s.mu.Lock()
	var idle, all []*stream
	for _, st := range s.streams {
		all = append(all, st)
		if !st.alwaysOn && st.idleFor(now) > s.cfg.IdleTimeout {
			idle = append(idle, st)
		}
	}
	s.mu.Unlock()
	for _, st := range all {
		st.expireOld(now)
	}
	for _, st := range idle {
		st.log.Info("hls: muxer idle, stopping", "idle_timeout", s.cfg.IdleTimeout)
		st.cancel()
	}
}

// watch starts a muxer for each broadcast the relay announces (AlwaysOn),
// through the relay's in-process namespace watch.
func (s *Server) watch(ctx context.Context) {
	stop := s.cfg.Relay.Local("hls").Watch("", func(path string, active bool) {
		if !active || ctx.Err() != nil {
			return
		}
		if _, err := s.stream(path, true); err != nil {
			s.log.Warn("hls: cannot start muxer", "broadcast", path, "err", err)
		}
	})
	<-ctx.Done()
	stop()
}

var errTooMany = errors.New("hls: too many muxers")

// stream returns the running stream of a broadcast, starting one if needed.
func (s *Server) stream(path string, alwaysOn bool) (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("hls: server closed")
	}
	if st := s.streams[path]; st != nil && st.ctx.Err() == nil {
		st.touch()
		return st, nil
	}
	// None, or one that is stopping (broadcast ended, idle): a new one
	// replaces it.
	if len(s.streams) >= s.cfg.MaxMuxers {
		return nil, errTooMany
	}
	st := newStream(s, path, alwaysOn)
	s.streams[path] = st
	go func() {
		st.run()
		s.mu.Lock()
		if s.streams[path] == st {
			delete(s.streams, path)
		}
		s.mu.Unlock()
	}()
	return st, nil
}

// running reports whether a muxer for path is running (it answers for a
// broadcast that just ended too).
func (s *Server) running(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[path]
	return st != nil && st.ctx.Err() == nil
}

// Muxers returns the broadcasts being muxed.
func (s *Server) Muxers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.streams))
	for p := range s.streams {
		out = append(out, p)
	}
	return out
}

// ServeHTTP serves /hls/{broadcast}/index.m3u8 and the files it names.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Web players on other origins (hls.js sites) must be able to read
	// everything.
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet, http.MethodHead:
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	path, file, ok := splitPath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if s.cfg.Authorize != nil {
		if err := s.cfg.Authorize(r, path); err != nil {
			s.log.Info("hls: request refused", "broadcast", path, "remote", r.RemoteAddr, "reason", err)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
	}
	// An unknown broadcast is answered from the relay's directory: no
	// request slot, no muxer.
	if !s.running(path) && !s.cfg.Relay.MayHaveBroadcast(path) {
		http.Error(w, "no such broadcast", http.StatusNotFound)
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		unavailable(w, "too many HLS requests")
		return
	}
	st, err := s.stream(path, false)
	if err != nil {
		unavailable(w, err.Error())
		return
	}
	st.inflight.Add(1)
	defer func() {
		st.touch()
		st.inflight.Add(-1)
	}()
	st.serve(w, r, file)
}

// splitPath splits /hls/{broadcast}/{file} into the broadcast path and the
// file name.
func splitPath(p string) (broadcast, file string, ok bool) {
	rest, found := strings.CutPrefix(p, "/hls/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	dir, file := rest[:i], rest[i+1:]
	segs := strings.Split(dir, "/")
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", false
		}
	}
	return dir, file, true
}

func unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Cache-Control", "no-cache")
	http.Error(w, msg, http.StatusServiceUnavailable)
}
