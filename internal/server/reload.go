package server

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/moqgate/moqgate/internal/config"
	"github.com/moqgate/moqgate/internal/rtc"
)

// reloadable are the settings Reload applies; a change to any other
// waits for a restart (and the reload says so).
var reloadable = map[string]bool{
	"auth.mode":                        true,
	"auth.jwt_secret_file":             true,
	"auth.jwks_file":                   true,
	"auth.jwks_url":                    true,
	"auth.jwks_refresh":                true,
	"limits.sessions_total":            true,
	"limits.sessions_per_ip":           true,
	"limits.http_connections_total":    true,
	"limits.http_connections_per_ip":   true,
	"limits.rtmp_handshakes_total":     true,
	"limits.rtmp_handshakes_per_ip":    true,
	"limits.webrtc_pending_total":      true,
	"limits.webrtc_pending_per_ip":     true,
	"limits.http_body_max":             true,
	"limits.webrtc_max_media_sections": true,
}

// Reload applies what can change without a restart (SIGHUP): the auth
// mode and keys (the secret file is read again), the connection and
// session limits, and the WHIP/WHEP offer bounds. It logs the settings
// it applied and those that need a restart.
func (s *Server) Reload(cfg *config.Config) error {
	a, err := newAuthorizer(cfg, s.log)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.auth.Swap(a).Close()
	l := cfg.Limits
	s.sessions.SetLimits(l.SessionsTotal, l.SessionsPerIP)
	s.httpConns.SetLimits(l.HTTPConnectionsTotal, l.HTTPConnectionsPerIP)
	if h := s.rtmpHandshakes; h != nil {
		h.SetLimits(l.RTMPHandshakesTotal, l.RTMPHandshakesPerIP)
	}
	if w := s.webrtc; w.engine != nil {
		w.pending.SetLimits(l.WebRTCPendingTotal, l.WebRTCPendingPerIP)
		sz := rtc.Sizes{MaxBody: int64(l.HTTPBodyMax), MaxMediaSections: l.WebRTCMaxMediaSections}
		w.whip.SetSizes(sz)
		w.whep.SetSizes(sz)
	}
	s.reloadMu.Lock()
	changed := config.Diff(s.loaded, cfg)
	s.loaded = cfg
	s.reloadMu.Unlock()
	var applied, restart []string
	for _, k := range changed {
		if reloadable[k] {
			applied = append(applied, k)
		} else {
			restart = append(restart, k)
		}
	}
	// Names only: values may be secrets (a forward target's token).
	s.log.Info("configuration reloaded", "applied", strings.Join(applied, ","))
	if len(restart) > 0 {
		s.log.Warn("configuration changes that need a restart were not applied", "settings", strings.Join(restart, ","))
	}
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
