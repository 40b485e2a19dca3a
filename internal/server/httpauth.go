package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/moqgate/moqgate/internal/auth"
)

// With auth on, what the web port lists needs a token too: the broadcast
// API shows only the broadcasts the caller's token may subscribe to, and
// /metrics and /api/forward (every path, codec and viewer count) need a
// token with the admin claim. Refusals count in auth_refusals_total.

// httpToken is the token of an HTTP request: `Authorization: Bearer`,
// else ?jwt= (what the pages and players can send).
func httpToken(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return r.URL.Query().Get("jwt")
}

// httpGrant returns the caller's grant (nil with auth off: everything),
// or answers 401 and returns false.
func (s *Server) httpGrant(w http.ResponseWriter, r *http.Request, proto string) (*auth.Grant, bool) {
	a := s.authorizer()
	if !a.Enabled() {
		return nil, true
	}
	g, err := a.Parse(httpToken(r))
	if err != nil {
		s.refuseRequest(w, r, proto, err)
		return nil, false
	}
	return g, true
}

// adminOnly serves h to anyone with auth off, else only to an admin token.
func (s *Server) adminOnly(proto string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g, ok := s.httpGrant(w, r, proto)
		if !ok {
			return
		}
		if g != nil && !g.Admin {
			s.refuseRequest(w, r, proto, auth.ErrForbidden)
			return
		}
		h(w, r)
	}
}

// refuseRequest counts and answers a refused HTTP request: 401 for a
// missing or invalid token, 403 for one that does not grant it.
func (s *Server) refuseRequest(w http.ResponseWriter, r *http.Request, proto string, err error) {
	s.metrics.authRefusals.WithLabelValues(proto).Inc()
	s.log.Debug("request refused", "protocol", proto, "url", r.URL.Path, "remote", r.RemoteAddr, "reason", err)
	status := http.StatusForbidden
	if !errors.Is(err, auth.ErrForbidden) {
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Bearer realm="moqgate"`)
	}
	http.Error(w, http.StatusText(status), status)
}
