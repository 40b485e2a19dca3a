// Package srt is moqgate's SRT listener: publishers send MPEG-TS (H.264,
// H.265, AAC, Opus) that becomes a MoQ broadcast like any other, and
// callers with a read: stream ID get a broadcast muxed to MPEG-TS. SRT is
// github.com/datarhei/gosrt (pure Go); MPEG-TS is bluenviron/mediacommon.
package srt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gosrt "github.com/datarhei/gosrt"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// Errors an Authorize or OnPublish hook wraps to choose the SRT rejection
// reason the caller sees.
var (
	ErrUnauthorized = errors.New("srt: unauthorized")
	ErrForbidden    = errors.New("srt: forbidden")
	ErrConflict     = errors.New("srt: broadcast already published")
	ErrNotFound     = errors.New("srt: no such broadcast")
	ErrOverload     = errors.New("srt: too many sessions")
)

// Config configures a Server.
type Config struct {
	// Passphrase, if set, is required of every caller (AES, key length as
	// the caller chooses: 16, 24 or 32 bytes). Callers without one, or with
	// another, are rejected.
	Passphrase string
	// Latency is the TSBPD latency offered (the larger of both sides' wins).
	Latency time.Duration
	// MaxBW bounds a playback session's sending rate in bytes/s (0: no bound).
	MaxBW int64
	// InitTimeout bounds the time a publisher takes to send its program
	// map and first audio frame.
	InitTimeout time.Duration
	Logger      *slog.Logger

	// Admit reserves a session slot for a caller (nil: no limit).
	Admit func(remote net.Addr) (release func(), err error)
	// Authorize checks a caller's stream ID (mode, path and token) and
	// returns when its grant expires (zero: never).
	Authorize func(ctx context.Context, id StreamID, remote net.Addr) (expires time.Time, err error)
	// OnPublish starts the broadcast of a publisher.
	OnPublish func(ctx context.Context, id StreamID, remote net.Addr) (media.BroadcastWriter, error)
	// Source gives the broadcasts read: callers play.
	Source moq.Source
}

// Server accepts SRT callers on one UDP port.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ln    gosrt.Listener
	stats Stats

	mu    sync.Mutex
	conns map[gosrt.Conn]struct{}
	wg    sync.WaitGroup
}

// Listen binds addr (UDP).
func Listen(addr string, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = 10 * time.Second
	}
	c := gosrt.DefaultConfig()
	if cfg.Latency > 0 {
		c.ReceiverLatency, c.PeerLatency = cfg.Latency, cfg.Latency
	}
	c.MaxBW = -1
	if cfg.MaxBW > 0 {
		c.MaxBW = cfg.MaxBW
	}
	ln, err := gosrt.Listen("srt", addr, c)
	if err != nil {
		return nil, fmt.Errorf("listen SRT %s: %w", addr, err)
	}
	return &Server{cfg: cfg, log: cfg.Logger, ln: ln, conns: map[gosrt.Conn]struct{}{}}, nil
}

// Addr is the bound UDP address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Stats returns the counters of the SRT sessions so far.
func (s *Server) Stats() StatsSnapshot { return s.stats.snapshot() }

// Serve accepts callers until ctx is done, then closes every session.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	for {
		req, err := s.ln.Accept2()
		if err != nil {
			s.closeAll()
			s.wg.Wait()
			if ctx.Err() != nil || errors.Is(err, gosrt.ErrListenerClosed) {
				return nil
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, req)
		}()
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *Server) track(c gosrt.Conn) (untrack func()) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}
}

// rejection is a refused caller: the SRT reason and what the log says.
type rejection struct {
	reason gosrt.RejectionReason
	err    error
}

// reasonNames are the rejection reasons moqgate uses, for the log.
var reasonNames = map[gosrt.RejectionReason]string{
	gosrt.REJ_UNSECURE: "REJ_UNSECURE", gosrt.REJ_BADSECRET: "REJ_BADSECRET",
	gosrt.REJX_BAD_REQUEST: "REJX_BAD_REQUEST", gosrt.REJX_UNAUTHORIZED: "REJX_UNAUTHORIZED",
	gosrt.REJX_OVERLOAD: "REJX_OVERLOAD", gosrt.REJX_FORBIDDEN: "REJX_FORBIDDEN",
	gosrt.REJX_NOTFOUND: "REJX_NOTFOUND", gosrt.REJX_BAD_MODE: "REJX_BAD_MODE",
	gosrt.REJX_CONFLICT: "REJX_CONFLICT", gosrt.REJX_ISE: "REJX_ISE",
}

func reject(reason gosrt.RejectionReason, err error) *rejection { return &rejection{reason, err} }

// handle decides on one connection request and runs the session.
func (s *Server) handle(ctx context.Context, req gosrt.ConnRequest) {
	remote := req.RemoteAddr()
	log := s.log.With("remote", remote.String())
	if s.cfg.Admit != nil {
		release, err := s.cfg.Admit(remote)
		if err != nil {
			s.refuse(req, log, reject(gosrt.REJX_OVERLOAD, err))
			return
		}
		defer release()
	}
	id, rej := s.check(ctx, req)
	if rej != nil {
		s.refuse(req, log, rej)
		return
	}
	log = log.With("path", id.Path, "mode", string(id.Mode))
	expires, err := s.authorize(ctx, id, remote)
	if err != nil {
		s.refuse(req, log, rejectFor(err))
		return
	}
	if id.Mode == ModePublish {
		s.publish(ctx, req, id, expires, log)
	} else {
		s.play(ctx, req, id, expires, log)
	}
}

// check parses the stream ID and checks the passphrase.
func (s *Server) check(_ context.Context, req gosrt.ConnRequest) (StreamID, *rejection) {
	if req.Version() < 5 {
		return StreamID{}, reject(gosrt.REJX_BAD_REQUEST, errors.New("HSv4 caller: no stream ID"))
	}
	id, err := ParseStreamID(req.StreamId())
	if err != nil {
		if errors.Is(err, ErrBadMode) {
			return StreamID{}, reject(gosrt.REJX_BAD_MODE, err)
		}
		return StreamID{}, reject(gosrt.REJX_BAD_REQUEST, err)
	}
	switch {
	case s.cfg.Passphrase == "" && req.IsEncrypted():
		return id, reject(gosrt.REJ_UNSECURE, errors.New("caller encrypts but no passphrase is configured"))
	case s.cfg.Passphrase != "" && !req.IsEncrypted():
		return id, reject(gosrt.REJ_UNSECURE, errors.New("passphrase required"))
	case s.cfg.Passphrase != "":
		if err := req.SetPassphrase(s.cfg.Passphrase); err != nil {
			return id, reject(gosrt.REJ_BADSECRET, errors.New("wrong passphrase"))
		}
	}
	return id, nil
}

func (s *Server) authorize(ctx context.Context, id StreamID, remote net.Addr) (time.Time, error) {
	if s.cfg.Authorize == nil {
		return time.Time{}, nil
	}
	return s.cfg.Authorize(ctx, id, remote)
}

// rejectFor maps a hook's error to an SRT rejection reason.
func rejectFor(err error) *rejection {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return reject(gosrt.REJX_UNAUTHORIZED, err)
	case errors.Is(err, ErrForbidden):
		return reject(gosrt.REJX_FORBIDDEN, err)
	case errors.Is(err, ErrConflict):
		return reject(gosrt.REJX_CONFLICT, err)
	case errors.Is(err, ErrNotFound):
		return reject(gosrt.REJX_NOTFOUND, err)
	case errors.Is(err, ErrOverload):
		return reject(gosrt.REJX_OVERLOAD, err)
	}
	return reject(gosrt.REJX_ISE, err)
}

func (s *Server) refuse(req gosrt.ConnRequest, log *slog.Logger, r *rejection) {
	s.stats.refused.Add(1)
	log.Info("SRT caller rejected", "reason", reasonNames[r.reason], "code", int(r.reason), "err", r.err)
	req.Reject(r.reason)
}

// accept completes the handshake and arranges for the session to end at
// expires (a token's expiry) and with the server.
func (s *Server) accept(req gosrt.ConnRequest, expires time.Time, log *slog.Logger) (gosrt.Conn, func(), error) {
	conn, err := req.Accept()
	if err != nil {
		return nil, nil, err
	}
	untrack := s.track(conn)
	var timer *time.Timer
	if !expires.IsZero() {
		timer = time.AfterFunc(time.Until(expires), func() {
			log.Info("SRT: token expired; closing the session")
			conn.Close()
		})
	}
	stop := s.stats.follow(conn)
	return conn, func() {
		if timer != nil {
			timer.Stop()
		}
		conn.Close()
		stop()
		untrack()
	}, nil
}

// publish runs a publisher: its broadcast starts before the handshake is
// accepted, so a path already published is rejected before any media.
func (s *Server) publish(ctx context.Context, req gosrt.ConnRequest, id StreamID, expires time.Time, log *slog.Logger) {
	if s.cfg.OnPublish == nil {
		s.refuse(req, log, reject(gosrt.REJX_BAD_MODE, errors.New("publishing is off")))
		return
	}
	w, err := s.cfg.OnPublish(ctx, id, req.RemoteAddr())
	if err != nil {
		s.refuse(req, log, rejectFor(err))
		return
	}
	defer w.Close()
	conn, done, err := s.accept(req, expires, log)
	if err != nil {
		log.Info("SRT handshake failed", "err", err)
		return
	}
	defer done()
	s.stats.publishers.Add(1)
	defer s.stats.publishers.Add(-1)
	log.Info("SRT publisher started")
	in := &initGuard{r: conn, max: maxInitBytes}
	timer := time.AfterFunc(s.cfg.InitTimeout, func() {
		log.Info("SRT: no MPEG-TS program in time; closing")
		conn.Close()
	})
	err = Demux(in, w, log, func() {
		timer.Stop()
		in.done.Store(true)
	})
	timer.Stop()
	if err != nil && !errors.Is(err, io.EOF) {
		log.Info("SRT publisher ended", "err", err)
		return
	}
	log.Info("SRT publisher ended")
}

// maxInitBytes bounds what is read (and buffered) before the program map.
const maxInitBytes = 4 << 20

// errInitTooLong: no program map (or no AAC frame) in the first bytes.
var errInitTooLong = errors.New("srt: no MPEG-TS program map in the first 4 MiB")

// initGuard limits the bytes read before the program is known: the
// demuxer buffers them to read them again.
type initGuard struct {
	r    io.Reader
	n    int
	max  int
	done atomic.Bool
}

func (g *initGuard) Read(p []byte) (int, error) {
	if !g.done.Load() {
		if g.n >= g.max {
			return 0, errInitTooLong
		}
		if len(p) > g.max-g.n {
			p = p[:g.max-g.n]
		}
	}
	n, err := g.r.Read(p)
	g.n += n
	return n, err
}
