package server

import (
	"net/http"
	"strings"

	"github.com/moqgate/moqgate/moq"
)

// broadcastRoutes are the web routes that name a broadcast after their
// prefix; tail tells whether the last element is not part of it (an
// LL-HLS file; a WHIP/WHEP session resource).
var broadcastRoutes = []struct {
	prefix string
	tail   func(r *http.Request) bool
}{
	{"/hls/", func(*http.Request) bool { return true }},
	{"/whip/", resourceRequest},
	{"/whep/", resourceRequest},
	{"/watch/", nil},
	{"/publish/", nil},
	{"/api/broadcasts/", nil},
}

// resourceRequest: WHIP/WHEP PATCH and DELETE address a session under
// the broadcast.
func resourceRequest(r *http.Request) bool {
	return r.Method == http.MethodPatch || r.Method == http.MethodDelete
}

// pathGuard answers 400 to a request whose broadcast path breaks the
// rules every protocol applies (moq.CheckPath), before the mux would
// redirect a "..", "." or empty element to another broadcast.
func pathGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, rt := range broadcastRoutes {
			rest, ok := strings.CutPrefix(r.URL.Path, rt.prefix)
			if !ok {
				continue
			}
			rest = strings.TrimSuffix(rest, "/")
			if rt.tail != nil && rt.tail(r) {
				rest = rest[:max(0, strings.LastIndexByte(rest, '/'))]
			}
			if rest == "" {
				break // the route's own answer (e.g. /watch/ redirects to /)
			}
			if err := moq.CheckPath(rest); err != nil {
				// Readable by the web players and publishers, as the routes' own errors are.
				w.Header().Set("Access-Control-Allow-Origin", "*")
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			break
		}
		next.ServeHTTP(w, r)
	})
}
