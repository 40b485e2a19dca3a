package moq

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// The raw-QUIC ALPNs and WebTransport protocols served: draft-14 (moq-00,
// version negotiated in setup) and draft-16 (moqt-16).
const (
	ALPN14 = wire.ALPN14
	ALPN16 = wire.ALPN16
	ALPN17 = wire.ALPN17
)

// QUICConfig is the QUIC configuration moqgate uses on both ends.
func QUICConfig() *quic.Config {
	return &quic.Config{
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true, // required by WebTransport
		MaxIncomingStreams:               256,
		MaxIncomingUniStreams:            1024,
		MaxIdleTimeout:                   30 * time.Second,
		KeepAlivePeriod:                  10 * time.Second,
		HandshakeIdleTimeout:             10 * time.Second,
	}
}

// Server accepts MoQ sessions on one UDP socket: raw QUIC (ALPN moqt-17,
// moqt-16 or moq-00; TLS picks the newest the client offers) and
// WebTransport over HTTP/3 (ALPN h3) side by side. Over WebTransport the
// first of the client's protocols that is one of those is selected; a
// client that offers none speaks draft-14.
type Server struct {
	// MaxDraft, if set (14, 16 or 17), is the newest draft offered.
	MaxDraft int
	// Handler serves every session (normally the Relay).
	Handler Handler
	// Session is the template configuration of accepted sessions.
	Session Config
	// TLSConfig provides the certificate (GetCertificate or Certificates).
	TLSConfig *tls.Config
	// HTTPHandler serves plain HTTP/3 requests (not WebTransport); may be nil.
	HTTPHandler http.Handler
	// Admit, if set, is asked before a session is set up (limits); an
	// error refuses the connection.
	Admit  func(remote net.Addr, protocol string) (release func(), err error)
	Logger *slog.Logger

	mu       sync.Mutex
	sessions map[*Session]struct{}
	closed   map[string]*TransportStats // totals of ended sessions
	closing  bool
	ln       *quic.EarlyListener
	wt       *webtransport.Server
	wg       sync.WaitGroup
}

// Serve accepts connections on pc until ctx is done or Shutdown.
func (srv *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	if srv.Logger == nil {
		srv.Logger = slog.New(slog.DiscardHandler)
	}
	tlsConf := srv.TLSConfig.Clone()
	// TLS picks the first of ours the client offers: the newest draft.
	protos := srv.protocols()
	tlsConf.NextProtos = append(slices.Clone(protos), http3.NextProtoH3)
	qconf := QUICConfig()
	// The uni-stream credit is sized from the session's budget for
	// objects in flight.
	sc := srv.Session
	sc.defaults()
	qconf.MaxIncomingUniStreams = uniStreamCredit(sc.MaxBytesInFlight)
	h3 := &http3.Server{TLSConfig: tlsConf, QUICConfig: qconf}
	wt := &webtransport.Server{
		H3: h3,
		// webtransport-go selects the first of the client's list that is
		// here, so the client's preference wins (Shaka's "auto" offers
		// moqt-16 first and expects it; @moq/watch offers moqt-19..15).
		ApplicationProtocols: protos,
		// Browser clients come from any page; access control is by token.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	h3.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			srv.serveWebTransport(ctx, wt, w, r)
			return
		}
		if srv.HTTPHandler != nil {
			srv.HTTPHandler.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
	webtransport.ConfigureHTTP3Server(h3)
	ln, err := quic.ListenEarly(pc, tlsConf, qconf)
	if err != nil {
		return fmt.Errorf("moq: listen: %w", err)
	}
	srv.mu.Lock()
	srv.ln, srv.wt = ln, wt
	if srv.sessions == nil {
		srv.sessions = make(map[*Session]struct{})
	}
	srv.mu.Unlock()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, quic.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("moq: accept: %w", err)
		}
		srv.wg.Add(1)
		go func() {
			defer srv.wg.Done()
			switch conn.ConnectionState().TLS.NegotiatedProtocol {
			case ALPN14, ALPN16, ALPN17:
				srv.serveRaw(ctx, conn)
			default:
				if err := wt.ServeQUICConn(conn); err != nil {
					srv.Logger.Debug("http3 connection ended", "err", err)
				}
			}
		}()
	}
}

// protocols are the ALPNs / WebTransport protocols offered, newest first.
func (srv *Server) protocols() []string {
	all := []struct {
		draft int
		alpn  string
	}{{17, ALPN17}, {16, ALPN16}, {14, ALPN14}}
	var out []string
	for _, p := range all {
		if srv.MaxDraft == 0 || p.draft <= srv.MaxDraft {
			out = append(out, p.alpn)
		}
	}
	return out
}

func (srv *Server) admit(remote net.Addr, proto string) (func(), error) {
	srv.mu.Lock()
	closing := srv.closing
	srv.mu.Unlock()
	if closing {
		return nil, errors.New("shutting down")
	}
	if srv.Admit == nil {
		return func() {}, nil
	}
	return srv.Admit(remote, proto)
}

func (srv *Server) serveRaw(ctx context.Context, qc *quic.Conn) {
	release, err := srv.admit(qc.RemoteAddr(), "quic")
	if err != nil {
		srv.Logger.Info("moq connection refused", "remote", qc.RemoteAddr().String(), "err", err)
		// Before the handshake completes QUIC may only send a bare
		// APPLICATION_ERROR (RFC 9000 §10.2.3): wait for it (bounded by
		// the handshake timeout) so the client reads the code and reason.
		select {
		case <-qc.HandshakeComplete():
		case <-qc.Context().Done():
		case <-ctx.Done():
		}
		qc.CloseWithError(quic.ApplicationErrorCode(wire.TooManyRequests), err.Error())
		return
	}
	defer release()
	srv.run(ctx, NewQUICConn(qc), "")
}

func (srv *Server) serveWebTransport(ctx context.Context, wt *webtransport.Server, w http.ResponseWriter, r *http.Request) {
	release, err := srv.admit(remoteAddr(r), "webtransport")
	if err != nil {
		srv.Logger.Info("webtransport session refused", "remote", r.RemoteAddr, "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	defer release()
	ws, err := wt.Upgrade(w, r)
	if err != nil {
		srv.Logger.Info("webtransport upgrade failed", "remote", r.RemoteAddr, "err", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	path := r.URL.Path
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	srv.run(ctx, NewWebTransportConn(ws), path)
}

func remoteAddr(r *http.Request) net.Addr {
	if a, err := net.ResolveUDPAddr("udp", r.RemoteAddr); err == nil {
		return a
	}
	return &net.UDPAddr{}
}

// run sets up and serves one session until it ends.
func (srv *Server) run(ctx context.Context, c Conn, path string) {
	cfg := srv.Session
	cfg.Handler = srv.Handler
	if cfg.Logger == nil {
		cfg.Logger = srv.Logger
	}
	s, err := Accept(ctx, c, cfg, path)
	if err != nil {
		srv.Logger.Info("moq setup failed", "remote", c.RemoteAddr().String(), "transport", c.Protocol(), "err", err)
		c.CloseWithError(wire.ProtocolViolation, "setup failed")
		return
	}
	srv.mu.Lock()
	srv.sessions[s] = struct{}{}
	srv.mu.Unlock()
	s.Logger().Debug("moq session started", "path", s.PeerPath)
	<-s.Done()
	s.Logger().Debug("moq session ended", "err", s.Err())
	srv.mu.Lock()
	delete(srv.sessions, s)
	if srv.closed == nil {
		srv.closed = make(map[string]*TransportStats)
	}
	t := srv.closed[c.Protocol()]
	if t == nil {
		t = &TransportStats{}
		srv.closed[c.Protocol()] = t
	}
	t.add(s)
	srv.mu.Unlock()
}

// TransportStats are cumulative counters of the sessions of one transport.
type TransportStats struct {
	Sessions                                 int // live
	ObjectsOut, BytesOut, ObjectsIn, BytesIn uint64
	GroupsDropped                            uint64
}

func (t *TransportStats) add(s *Session) {
	oo, bo, oi, bi, d := s.Stats()
	t.ObjectsOut += oo
	t.BytesOut += bo
	t.ObjectsIn += oi
	t.BytesIn += bi
	t.GroupsDropped += d
}

// Stats returns live session counts and cumulative counters (ended and
// live sessions) by transport.
func (srv *Server) Stats() map[string]TransportStats {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return mergeStats(srv.closed, srv.sessions)
}

// mergeStats adds the live sessions' counters to the ended ones'.
func mergeStats(closed map[string]*TransportStats, live map[*Session]struct{}) map[string]TransportStats {
	out := map[string]TransportStats{}
	for p, t := range closed {
		out[p] = *t
	}
	for s := range live {
		t := out[s.conn.Protocol()]
		t.Sessions++
		t.add(s)
		out[s.conn.Protocol()] = t
	}
	return out
}

// Sessions returns the number of live sessions by transport.
func (srv *Server) Sessions() map[string]int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	out := map[string]int{}
	for s := range srv.sessions {
		out[s.conn.Protocol()]++
	}
	return out
}

// Shutdown sends GOAWAY to every session, waits for them to leave until
// ctx is done, then closes what is left.
func (srv *Server) Shutdown(ctx context.Context) {
	srv.mu.Lock()
	srv.closing = true
	sessions := make([]*Session, 0, len(srv.sessions))
	for s := range srv.sessions {
		sessions = append(sessions, s)
	}
	ln, wt := srv.ln, srv.wt
	srv.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Shutdown(ctx)
		}()
	}
	wg.Wait()
	if wt != nil {
		wt.Close()
	}
	if ln != nil {
		ln.Close()
	}
}

// ---- dialing ----

// DialOptions configure Dial.
type DialOptions struct {
	// Insecure skips certificate verification.
	Insecure bool
	// Fingerprint pins the server certificate by the hex SHA-256 of its DER.
	Fingerprint string
	// RootCAs overrides the system roots.
	RootCAs *x509.CertPool
	// Session configures the session.
	Session Config
	// IdleTimeout, if set, replaces the QUIC idle timeout (keep-alives are
	// sent at a third of it): relay-to-relay sessions use a short one to
	// notice a dead upstream quickly.
	IdleTimeout time.Duration
	// Version is the MoQ Transport version to speak: 0 or
	// wire.Version14 (ALPN / WebTransport protocol moq-00) or
	// wire.Version16 (moqt-16). The server must select it.
	Version uint64
}

// dialProtocol is the ALPN / WebTransport protocol of a version.
func dialProtocol(version uint64) (string, error) {
	switch version {
	case 0, wire.Version14:
		return ALPN14, nil
	case wire.Version16:
		return ALPN16, nil
	case wire.Version17:
		return ALPN17, nil
	}
	return "", fmt.Errorf("moq: unsupported version %#x", version)
}

// Dial connects to a MoQ server: moqt://host:port[/path] (raw QUIC) or
// https://host:port/path (WebTransport).
func Dial(ctx context.Context, rawURL string, opts DialOptions) (*Session, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("moq: bad URL %q: %w", rawURL, err)
	}
	tlsConf := &tls.Config{RootCAs: opts.RootCAs, ServerName: u.Hostname()}
	if opts.Insecure || opts.Fingerprint != "" {
		tlsConf.InsecureSkipVerify = true
		want := strings.ToLower(strings.ReplaceAll(opts.Fingerprint, ":", ""))
		if want != "" {
			tlsConf.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("no certificate")
				}
				sum := sha256.Sum256(raw[0])
				if hex.EncodeToString(sum[:]) != want {
					return fmt.Errorf("certificate fingerprint %x does not match the pinned one", sum)
				}
				return nil
			}
		}
	}
	proto, err := dialProtocol(opts.Version)
	if err != nil {
		return nil, err
	}
	cfg := opts.Session
	qconf := QUICConfig()
	if opts.IdleTimeout > 0 {
		qconf.MaxIdleTimeout = opts.IdleTimeout
		qconf.KeepAlivePeriod = opts.IdleTimeout / 3
	}
	switch u.Scheme {
	case "moqt", "moq":
		tlsConf.NextProtos = []string{proto}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "443")
		}
		qc, err := quic.DialAddr(ctx, host, tlsConf, qconf)
		if err != nil {
			return nil, fmt.Errorf("moq: dial %s: %w", host, err)
		}
		if cfg.Path == "" {
			cfg.Path = u.EscapedPath()
			if u.RawQuery != "" {
				cfg.Path += "?" + u.RawQuery
			}
		}
		if cfg.Authority == "" {
			cfg.Authority = u.Host
		}
		s, err := Connect(ctx, NewQUICConn(qc), cfg)
		if err != nil {
			qc.CloseWithError(0, "setup failed")
			return nil, err
		}
		return s, nil
	case "https":
		d := &webtransport.Transport{
			TLSClientConfig:      tlsConf,
			QUICConfig:           qconf,
			ApplicationProtocols: []string{proto},
		}
		_, ws, err := d.Dial(ctx, u.String(), http.Header{})
		if err != nil {
			return nil, fmt.Errorf("moq: webtransport dial %s: %w", u.Host, err)
		}
		// No protocol selected means draft-14 negotiated in setup, which
		// does not do for a later draft.
		if got := ws.SessionState().ApplicationProtocol; got != proto && !(proto == ALPN14 && got == "") {
			ws.CloseWithError(0, "protocol not selected")
			return nil, fmt.Errorf("moq: server selected WebTransport protocol %q, not %q", got, proto)
		}
		s, err := Connect(ctx, NewWebTransportConn(ws), cfg)
		if err != nil {
			ws.CloseWithError(0, "setup failed")
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("moq: unsupported URL scheme %q (want moqt:// or https://)", u.Scheme)
	}
}

// SessionList returns the live sessions.
func (srv *Server) SessionList() []*Session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	out := make([]*Session, 0, len(srv.sessions))
	for s := range srv.sessions {
		out = append(out, s)
	}
	return out
}
