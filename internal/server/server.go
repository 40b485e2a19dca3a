// Package server wires moqgate's pieces together from a configuration:
// the relay core, the MoQ listener (raw QUIC and WebTransport on UDP), the
// web listener on TCP, and the ingest and egress adapters.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqgate/moqgate/egress/forward"
	"github.com/moqgate/moqgate/egress/hls"
	"github.com/moqgate/moqgate/egress/record"
	"github.com/moqgate/moqgate/ingest"
	"github.com/moqgate/moqgate/ingest/rtmp"
	"github.com/moqgate/moqgate/ingest/srt"
	"github.com/moqgate/moqgate/internal/auth"
	"github.com/moqgate/moqgate/internal/certs"
	"github.com/moqgate/moqgate/internal/config"
	"github.com/moqgate/moqgate/internal/limit"
	"github.com/moqgate/moqgate/internal/ui"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// Server is a running moqgate.
type Server struct {
	cfg *config.Config
	// loaded is the configuration last applied (Reload diffs against it).
	loaded   *config.Config
	reloadMu sync.Mutex
	log      *slog.Logger
	certs    *certs.Manager
	relay    *moq.Relay
	// forward pushes local broadcasts to other relays (nil: no targets).
	forward *forward.Manager
	// recorder writes broadcasts to disk (nil: recording is off).
	recorder *record.Recorder
	moq      *moq.Server
	http     *http.Server
	mux      *http.ServeMux

	// Bound addresses (useful when the config asked for port 0).
	WebAddr  net.Addr // TCP
	MoQAddr  net.Addr // UDP
	RTMPAddr net.Addr
	SRTAddr  net.Addr // nil: SRT off

	udp     net.PacketConn
	tcp     net.Listener
	rtmpLn  net.Listener
	rtmpSrv *rtmp.Server
	srtSrv  *srt.Server
	// continuity lets a reconnecting publisher continue the timeline.
	continuity     *ingest.Continuity
	auth           atomic.Pointer[auth.Authorizer] // swapped on reload
	hls            *hls.Server
	metrics        *metrics
	sessions       *limit.Gate     // MoQ sessions
	rtmpHandshakes *limit.Gate     // RTMP connections not yet publishing (nil: RTMP off)
	httpConns      *limit.Gate     // open connections of the web port
	inFlight       *moq.ByteBudget // objects being received, over every MoQ session
	catalogs       *catalogWatcher
	webrtc         *webRTC
	pages          *ui.Handler
}

// New binds the listeners; Run serves them.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, loaded: cfg, log: log, mux: http.NewServeMux(), continuity: ingest.NewContinuity(cfg.RTMP.GracePeriod)}
	cm, err := certs.New(certs.Options{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile,
		Hostnames: cfg.TLS.Hostnames, Logger: log})
	if err != nil {
		return nil, err
	}
	s.certs = cm
	a, err := newAuthorizer(cfg, log)
	if err != nil {
		return nil, err
	}
	s.auth.Store(a)
	if s.pages, err = ui.New(ui.Config{Auth: s.authorizer}); err != nil {
		return nil, err
	}
	s.metrics = newMetrics(s)
	s.inFlight = moq.NewByteBudget(int64(cfg.Relay.InFlightTotal))
	s.httpConns = limit.New("HTTP connections", cfg.Limits.HTTPConnectionsTotal, cfg.Limits.HTTPConnectionsPerIP)
	s.sessions = limit.New("session", cfg.Limits.SessionsTotal, cfg.Limits.SessionsPerIP)
	s.relay = moq.NewRelay(moq.RelayConfig{
		Authorize:        s.authorizeMoQ,
		ObserveSubscribe: func(d time.Duration) { s.metrics.subscribeLat.Observe(d.Seconds()) },
		Logger:           log,
		TrackLimits:      moq.TrackLimits{MaxGroups: cfg.Relay.CacheMaxGroups, MaxBytes: int(cfg.Relay.CacheMaxBytes)},
		GracePeriod:      cfg.RTMP.GracePeriod,
		AllowTakeover:    cfg.RTMP.AllowTakeover,
		ProduceTrack:     s.produceTrack,
	})
	s.catalogs = newCatalogWatcher(s.relay, log.With("component", "api"))
	s.udp, err = net.ListenPacket("udp", cfg.Listen.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen UDP %s: %w", cfg.Listen.Addr, err)
	}
	// The same port number on TCP: browsers fetch /certificate.sha256
	// there before opening WebTransport on UDP.
	tcpAddr := cfg.Listen.Addr
	if udpPort := s.udp.LocalAddr().(*net.UDPAddr).Port; strings.HasSuffix(tcpAddr, ":0") {
		host, _, _ := net.SplitHostPort(tcpAddr)
		tcpAddr = net.JoinHostPort(host, fmt.Sprint(udpPort))
	}
	s.tcp, err = net.Listen("tcp", tcpAddr)
	if err != nil {
		s.udp.Close()
		return nil, fmt.Errorf("listen TCP %s: %w", tcpAddr, err)
	}
	s.WebAddr, s.MoQAddr = s.tcp.Addr(), s.udp.LocalAddr()
	if cfg.RTMP.Addr != "" {
		s.rtmpLn, err = net.Listen("tcp", cfg.RTMP.Addr)
		if err != nil {
			s.udp.Close()
			s.tcp.Close()
			return nil, fmt.Errorf("listen RTMP %s: %w", cfg.RTMP.Addr, err)
		}
		s.RTMPAddr = s.rtmpLn.Addr()
		s.rtmpHandshakes = limit.New("RTMP connections not yet publishing", cfg.Limits.RTMPHandshakesTotal, cfg.Limits.RTMPHandshakesPerIP)
		s.rtmpSrv, err = rtmp.NewServer(rtmp.Config{Logger: log, OnPublish: s.onRTMPPublish,
			HandshakeTimeout: cfg.Limits.HandshakeTimeout, Handshakes: s.rtmpHandshakes,
			OnRefuse: func(remote net.Addr, err error) {
				s.metrics.limitRefusals.WithLabelValues("rtmp_handshakes").Inc()
				log.Debug("RTMP connection refused", "component", "rtmp", "remote", remote.String(), "reason", err)
			}})
		if err != nil {
			return nil, err
		}
	}
	s.moq = &moq.Server{
		MaxDraft: cfg.Relay.MaxDraft,
		Handler:  s.relay,
		Admit: func(remote net.Addr, proto string) (func(), error) {
			release, err := s.sessions.Admit(remote.String())
			if err != nil {
				s.metrics.limitRefusals.WithLabelValues("sessions").Inc()
			}
			return release, err
		},
		Session: moq.Config{
			MaxRequests:         uint64(cfg.Limits.SubscriptionsPerSession),
			MaxControlRate:      cfg.Limits.MaxControlMessageRate,
			SetupTimeout:        cfg.Limits.HandshakeTimeout,
			MaxLagGroups:        cfg.Relay.MaxSubscriberLagGroups,
			TrackLimits:         moq.TrackLimits{MaxGroups: cfg.Relay.CacheMaxGroups, MaxBytes: int(cfg.Relay.CacheMaxBytes)},
			MaxBytesInFlight:    int64(cfg.Relay.InFlightPerSession),
			SharedBytesInFlight: s.inFlight,
		},
		TLSConfig:   &tls.Config{GetCertificate: cm.GetCertificate},
		HTTPHandler: pathGuard(s.mux),
		Logger:      log.With("component", "moq"),
	}
	s.hls = hls.New(hls.Config{Relay: s.relay, Logger: log.With("component", "hls"), Authorize: s.authorizeHLS,
		PartDuration: cfg.HLS.PartDuration, SegmentMinDuration: cfg.HLS.SegmentMinDuration,
		SegmentCount: cfg.HLS.SegmentCount, IdleTimeout: cfg.HLS.IdleTimeout, AlwaysOn: cfg.HLS.AlwaysOn,
		MaxMuxers: cfg.HLS.MaxMuxers, SegmentMaxSize: int(cfg.HLS.SegmentMaxSize)})
	if err := s.setupWebRTC(); err != nil {
		s.udp.Close()
		s.tcp.Close()
		if s.rtmpLn != nil {
			s.rtmpLn.Close()
		}
		return nil, err
	}
	if err := s.setupSRT(); err != nil {
		s.udp.Close()
		s.tcp.Close()
		if s.rtmpLn != nil {
			s.rtmpLn.Close()
		}
		s.closeWebRTC()
		return nil, err
	}
	if s.forward, err = s.newForwarder(); err != nil {
		return nil, err
	}
	if s.recorder, err = s.newRecorder(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Relay returns the relay core.
func (s *Server) Relay() *moq.Relay { return s.relay }

// Fingerprint returns the hex SHA-256 of the current certificate.
func (s *Server) Fingerprint() string { return s.certs.Fingerprint() }

func (s *Server) routes() {
	s.mux.Handle("GET /certificate.sha256", s.certs.Handler())
	s.mux.Handle("OPTIONS /certificate.sha256", s.certs.Handler())
	s.mux.Handle("/hls/", s.hls)
	s.webrtcRoutes()
	s.mux.HandleFunc("GET /api/broadcasts", s.apiBroadcastsHandler)
	s.mux.HandleFunc("GET /api/broadcasts/{path...}", s.apiBroadcastHandler)
	s.mux.HandleFunc("GET /metrics", s.adminOnly("metrics", s.metrics.handler().ServeHTTP))
	s.mux.HandleFunc("GET /api/forward", s.adminOnly("api", s.apiForwardHandler))
	s.recordRoutes()
	if s.cfg.Debug.Pprof {
		s.pprofRoutes()
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})
	s.pages.Register(s.mux) // GET /, /watch/..., /publish/... and their assets
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// onRTMPPublish turns an RTMP publisher into a MoQ broadcast published
// through an in-process session.
func (s *Server) onRTMPPublish(ctx context.Context, req rtmp.PublishRequest) (media.BroadcastWriter, error) {
	log := s.log.With("component", "rtmp", "path", req.Path, "remote", req.RemoteAddr.String())
	// The token travels as ?jwt= on the URL or the stream key.
	g, err := s.authorizePublish(ctx, "rtmp", req.Query.Get("jwt"), req.Path, req.RemoteAddr.String())
	if err != nil {
		return nil, err
	}
	ib, err := ingest.StartWith(ctx, ingest.LocalDialer(s.relay, "rtmp", log), req.Path, log, ingest.Options{Continuity: s.continuity})
	if err != nil {
		var re *moq.RequestError
		if errors.As(err, &re) {
			return nil, errors.New(re.Reason)
		}
		return nil, err
	}
	b := s.withOpus(req.Path, ib) // AAC to Opus for WHEP viewers, on demand
	log.Info("RTMP publisher started")
	if g.Expires.IsZero() {
		return b, nil
	}
	return &expiringWriter{BroadcastWriter: b, expires: g.Expires,
		onExp: func() { log.Info("publisher token expired; closing") }}, nil
}

// Run serves until ctx is done, then shuts down gracefully: GOAWAY to MoQ
// sessions, then everything closes.
func (s *Server) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.certs.Run(runCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.catalogs.run(runCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.moq.Serve(runCtx, s.udp); err != nil {
			errc <- fmt.Errorf("moq listener: %w", err)
		}
	}()
	s.http = &http.Server{Handler: pathGuard(s.mux), ReadHeaderTimeout: s.cfg.Limits.HandshakeTimeout,
		ReadTimeout: s.cfg.Limits.HTTPReadTimeout, IdleTimeout: s.cfg.Limits.HTTPIdleTimeout,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	web := &limitListener{Listener: s.tcp, gate: s.httpConns, refuse: refuseHTTP(!s.certs.SelfSigned()),
		onRefuse: func() { s.metrics.limitRefusals.WithLabelValues("http_connections").Inc() }}
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchFDs(runCtx.Done(), s.log)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		if s.certs.SelfSigned() {
			err = s.http.Serve(web)
		} else {
			s.http.TLSConfig = &tls.Config{GetCertificate: s.certs.GetCertificate}
			err = s.http.ServeTLS(web, "", "")
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("web listener: %w", err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.hls.Run(runCtx)
	}()
	if s.rtmpSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.rtmpSrv.Serve(runCtx, s.rtmpLn); err != nil && runCtx.Err() == nil {
				errc <- fmt.Errorf("rtmp listener: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.runSRT(runCtx, errc)
	}()
	var prefixes []moq.Namespace
	for _, p := range s.cfg.Relay.UpstreamPrefixes {
		prefixes = append(prefixes, moq.ParsePath(p))
	}
	for i, list := range [][]string{s.cfg.Upstreams, s.cfg.Peers} {
		for _, raw := range list {
			u, opts, err := moq.ParseUpstreamURL(raw)
			if err != nil {
				return err
			}
			uc := moq.UpstreamConfig{URL: u, Peer: i == 1, Prefixes: prefixes, Dial: opts,
				// An upstream carries many broadcasts: only the server's
				// budget bounds its objects in flight.
				Session: moq.Config{Logger: s.log.With("component", "upstream"),
					MaxBytesInFlight: -1, SharedBytesInFlight: s.inFlight,
					TrackLimits: moq.TrackLimits{MaxGroups: s.cfg.Relay.CacheMaxGroups, MaxBytes: int(s.cfg.Relay.CacheMaxBytes)}}}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.relay.RunUpstream(runCtx, uc)
			}()
		}
	}
	if s.forward != nil {
		wg.Go(func() { s.forward.Run(runCtx) })
	}
	if s.recorder != nil {
		wg.Go(func() { s.recorder.Run(runCtx) })
	}
	scheme := "http"
	if !s.certs.SelfSigned() {
		scheme = "https"
	}
	s.log.Info("moqgate serving", "web", scheme+"://"+s.WebAddr.String(), "moq", "moqt://"+s.MoQAddr.String(),
		"rtmp", addrString(s.RTMPAddr), "webrtc", s.webrtcAddr(), "srt", s.srtAddr(), "fingerprint", s.certs.Fingerprint())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	s.moq.Shutdown(sctx)
	s.hls.Close() // releases blocking playlist requests, which the HTTP shutdown would wait for
	s.http.Shutdown(sctx)
	s.closeWebRTC()
	s.authorizer().Close()
	cancel()
	wg.Wait()
	s.udp.Close()
	return err
}

// newAuthorizer makes the authorizer of cfg.Auth.
func newAuthorizer(cfg *config.Config, log *slog.Logger) (*auth.Authorizer, error) {
	return auth.NewWith(auth.Options{Mode: cfg.Auth.Mode, SecretFile: cfg.Auth.JWTSecretFile,
		JWKSFile: cfg.Auth.JWKSFile, JWKSURL: cfg.Auth.JWKSURL, JWKSRefresh: cfg.Auth.JWKSRefresh,
		Logger: log.With("component", "auth")})
}

// authorizeHLS checks an LL-HLS request's token when auth is on, and
// counts a refusal.
func (s *Server) authorizeHLS(r *http.Request, path string) error {
	err := s.checkSubscribe(r, path)
	if err != nil {
		s.metrics.authRefusals.WithLabelValues("hls").Inc()
	}
	return err
}

// checkSubscribe checks that an HTTP request's token (?jwt=, which the
// playlists carry on to every URI they name, or a bearer token) may
// subscribe to path, when auth is on.
func (s *Server) checkSubscribe(r *http.Request, path string) error {
	if !s.authorizer().Enabled() {
		return nil
	}
	_, err := s.authorizer().Check(httpToken(r), auth.Subscribe, path)
	return err
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return "rtmp://" + a.String()
}
