// Package ui serves moqgate's web pages from files embedded in the binary:
// the live broadcast list at /, a player at /watch/{broadcast} (MoQ over
// WebTransport, WHEP or LL-HLS) and a WHIP publisher at
// /publish/{broadcast}. The pages are plain HTML, CSS and JavaScript; the
// players they use (@moq/watch, hls.js) are bundled into assets/vendor by
// `make ui-bundle` and committed, so serving needs no npm step.
package ui

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"strings"

	"github.com/moqgate/moqgate/internal/auth"
)

//go:embed assets
var embedded embed.FS

// AssetPrefix is the URL path under which the pages' CSS, scripts and
// bundles are served.
const AssetPrefix = "/ui/"

// maxPathLen bounds the broadcast path a page is rendered for.
const maxPathLen = 1024

// Token states told to the watch page, so that it can explain a refusal
// before a transport fails with a bare error.
const (
	TokenOff       = "off"       // auth is off
	TokenOK        = "ok"        // the token grants subscribe on the broadcast
	TokenMissing   = "missing"   // auth is on and the page URL has no ?jwt=
	TokenInvalid   = "invalid"   // bad signature, malformed or expired
	TokenForbidden = "forbidden" // valid, but not for this broadcast
)

// Config is what the pages need from the server.
type Config struct {
	// Auth returns the current authorizer (auth may be turned on or off by
	// a reload); nil, or nil Auth, means auth is off.
	Auth func() *auth.Authorizer
}

// Handler serves the pages and their assets.
type Handler struct {
	cfg    Config
	assets fs.FS
	pages  map[string][]byte // name → the page in the layout, with the config marker
}

// Markers in assets/layout.html. The page bodies (index.html, watch.html,
// publish.html) go into the layout once, at New; the JSON configuration
// on every request.
var (
	configMarker = []byte("/*CONFIG*/{}")
	titleMarker  = []byte("/*TITLE*/")
	pageMarker   = []byte("/*PAGE*/")
	bodyMarker   = []byte("/*BODY*/")
)

// pages names each page's body file and its (initial) title.
var pages = map[string]string{
	"index":   "moqgate — live broadcasts",
	"watch":   "Watch — moqgate",
	"publish": "Publish — moqgate",
}

// New reads the embedded pages.
func New(cfg Config) (*Handler, error) {
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		return nil, err
	}
	layout, err := fs.ReadFile(sub, "layout.html")
	if err != nil {
		return nil, err
	}
	for _, m := range [][]byte{configMarker, titleMarker, pageMarker, bodyMarker} {
		if !bytes.Contains(layout, m) {
			return nil, fmt.Errorf("ui: layout.html lacks %s", m)
		}
	}
	h := &Handler{cfg: cfg, assets: sub, pages: map[string][]byte{}}
	for name, title := range pages {
		body, err := fs.ReadFile(sub, name+".html")
		if err != nil {
			return nil, err
		}
		page := bytes.Replace(layout, titleMarker, []byte(html.EscapeString(title)), 1)
		page = bytes.Replace(page, pageMarker, []byte(name), 1)
		h.pages[name] = bytes.Replace(page, bodyMarker, body, 1)
	}
	return h, nil
}

// Register adds the routes to mux: GET /, /watch/{broadcast},
// /publish/{broadcast} and the assets.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", h.index)
	mux.HandleFunc("GET /watch/{path...}", h.watch)
	mux.HandleFunc("GET /publish/{path...}", h.publish)
	assets := http.StripPrefix(AssetPrefix, http.FileServerFS(h.assets))
	mux.Handle("GET "+AssetPrefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || strings.HasSuffix(r.URL.Path, ".html") {
			http.NotFound(w, r) // no directory listings; pages only at their routes
			return
		}
		// The bundles change only with the binary; revalidate cheaply.
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	}))
}

// csp keeps the pages to this server: scripts, styles and media from here
// (blob: for hls.js's worker and MSE, mediastream: for WebRTC), network
// requests to here ('self' includes the https: and ws: forms of this
// origin: WebTransport and the @moq/watch WebSocket fallback).
const csp = "default-src 'self'; script-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; " +
	"media-src 'self' blob: mediastream:; img-src 'self' data: blob:; style-src 'self'; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// pageConfig is the JSON each page reads from its config script.
type pageConfig struct {
	Page      string `json:"page"`
	Broadcast string `json:"broadcast,omitempty"`
	Auth      bool   `json:"auth"`
	Token     string `json:"token,omitempty"` // one of the Token* states (watch page)
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	h.render(w, "index", pageConfig{Page: "index", Auth: h.authOn()})
}

func (h *Handler) watch(w http.ResponseWriter, r *http.Request) {
	path, ok := broadcastPath(w, r)
	if !ok {
		return
	}
	h.render(w, "watch", pageConfig{Page: "watch", Broadcast: path, Auth: h.authOn(),
		Token: h.tokenState(r.URL.Query().Get("jwt"), path)})
}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request) {
	path, ok := broadcastPath(w, r)
	if !ok {
		return
	}
	h.render(w, "publish", pageConfig{Page: "publish", Broadcast: path, Auth: h.authOn()})
}

// broadcastPath returns the page's broadcast, or redirects to the list when
// there is none and refuses an oversized one.
func broadcastPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	path := strings.Trim(r.PathValue("path"), "/")
	switch {
	case path == "":
		http.Redirect(w, r, "/", http.StatusFound)
		return "", false
	case len(path) > maxPathLen:
		http.Error(w, "broadcast path too long", http.StatusRequestURITooLong)
		return "", false
	}
	return path, true
}

func (h *Handler) authorizer() *auth.Authorizer {
	if h.cfg.Auth == nil {
		return nil
	}
	return h.cfg.Auth()
}

func (h *Handler) authOn() bool { return h.authorizer().Enabled() }

// tokenState classifies the watch page's ?jwt= (never logged).
func (h *Handler) tokenState(token, path string) string {
	a := h.authorizer()
	if !a.Enabled() {
		return TokenOff
	}
	_, err := a.Check(token, auth.Subscribe, path)
	switch {
	case err == nil:
		return TokenOK
	case token == "":
		return TokenMissing
	case errors.Is(err, auth.ErrForbidden):
		return TokenForbidden
	}
	return TokenInvalid
}

func (h *Handler) render(w http.ResponseWriter, name string, cfg pageConfig) {
	js, err := json.Marshal(cfg) // escapes <, > and &, so it cannot end the script
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body := bytes.Replace(h.pages[name], configMarker, js, 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer") // the page URL may carry ?jwt=
	w.Header().Set("Content-Security-Policy", csp)
	w.Write(body)
}
