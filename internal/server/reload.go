package server

import (
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/moqgate/moqgate/internal/config"
)

// Reload applies what can change without a restart (SIGHUP): the auth
// mode and secret, and the session limits. Listeners, caches and
// adapters keep their settings until the next start.
func (s *Server) Reload(cfg *config.Config) error {
	a, err := newAuthorizer(cfg, s.log)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.auth.Swap(a).Close()
	s.sessions.SetLimits(cfg.Limits.SessionsTotal, cfg.Limits.SessionsPerIP)
	s.httpConns.SetLimits(cfg.Limits.HTTPConnectionsTotal, cfg.Limits.HTTPConnectionsPerIP)
	if h := s.rtmpHandshakes; h != nil {
		h.SetLimits(cfg.Limits.RTMPHandshakesTotal, cfg.Limits.RTMPHandshakesPerIP)
	}
	if p := s.webrtc.pending; p != nil {
		p.SetLimits(cfg.Limits.WebRTCPendingTotal, cfg.Limits.WebRTCPendingPerIP)
	}
	s.log.Info("configuration reloaded", "auth", cfg.Auth.Mode,
		"sessions_total", cfg.Limits.SessionsTotal, "sessions_per_ip", cfg.Limits.SessionsPerIP,
		"webrtc_pending_total", cfg.Limits.WebRTCPendingTotal, "webrtc_pending_per_ip", cfg.Limits.WebRTCPendingPerIP,
		"rtmp_handshakes_total", cfg.Limits.RTMPHandshakesTotal, "rtmp_handshakes_per_ip", cfg.Limits.RTMPHandshakesPerIP,
		"http_connections_total", cfg.Limits.HTTPConnectionsTotal, "http_connections_per_ip", cfg.Limits.HTTPConnectionsPerIP)
	return nil
}

// pprofRoutes mounts net/http/pprof (debug.pprof in the config).
func (s *Server) pprofRoutes() {
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

var _ http.HandlerFunc = pprof.Index
