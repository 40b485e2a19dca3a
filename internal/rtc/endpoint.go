package rtc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Content types of RFC 9725.
const (
	ContentTypeSDP     = "application/sdp"
	ContentTypeSDPFrag = "application/trickle-ice-sdpfrag"
)

// Error is a refusal with an HTTP status and a message for the client.
type Error struct {
	Status int
	Msg    string
	// RetryAfter, if set, is sent as Retry-After (with a 503).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// Errorf makes an *Error.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// AuthorizeFunc decides whether a request may publish (WHIP) or play (WHEP)
// the broadcast at path; token is the `Authorization: Bearer` value ("" if
// none). It returns when the authorization ends (zero: never; the session
// is closed then), or an *Error (401, 403) for the client.
type AuthorizeFunc func(r *http.Request, path, token string) (expires time.Time, err error)

// CreateFunc negotiates a new session: it makes the peer connection with
// s.NewPeerConnection, sets it up for the offer and returns s.Answer's
// result. Errors that are the client's fault should be *Error (4xx).
type CreateFunc func(ctx context.Context, s *Session, offer string) (answer string, err error)

// Endpoint serves one RFC 9725 endpoint (WHIP or WHEP) under Prefix:
// POST Prefix+BROADCAST creates a session and answers 201 with the SDP
// answer and the session's resource URL (Prefix+BROADCAST+"/"+ID) in
// Location; PATCH and DELETE on that URL trickle ICE candidates, restart
// ICE, and end the session. Every response carries CORS headers.
type Endpoint struct {
	// Kind names the protocol in logs and messages ("WHIP", "WHEP").
	Kind string
	// Prefix is the URL path prefix, e.g. "/whip/".
	Prefix string
	Engine *Engine
	// MaxBody bounds request bodies (default 1 MiB).
	MaxBody int64
	// ConnectTimeout reaps a session whose peer never connects (default:
	// the Engine's).
	ConnectTimeout time.Duration
	// Limits bound what one client can make the endpoint hold.
	Limits Limits
	// Authorize, if set, is asked before a session is created; the
	// session is closed when the authorization it returns ends.
	Authorize AuthorizeFunc
	Create    CreateFunc
	Logger    *slog.Logger

	mu       sync.Mutex
	sessions map[string]*Session // by resource path
	closed   bool
	// sizes, once SetSizes was called (a reload), replaces MaxBody and
	// Limits.MaxMediaSections.
	sizes atomic.Pointer[Sizes]
}

// Sizes are the request bounds a reload can change while the endpoint
// serves.
type Sizes struct {
	MaxBody          int64
	MaxMediaSections int
}

// SetSizes applies new bounds to the requests that follow.
func (ep *Endpoint) SetSizes(s Sizes) { ep.sizes.Store(&s) }

func (ep *Endpoint) currentSizes() Sizes {
	if s := ep.sizes.Load(); s != nil {
		return *s
	}
	return Sizes{MaxBody: ep.MaxBody, MaxMediaSections: ep.Limits.MaxMediaSections}
}

func (ep *Endpoint) log() *slog.Logger {
	if ep.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return ep.Logger
}

// Sessions returns the number of live sessions.
func (ep *Endpoint) Sessions() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.sessions)
}

// Close ends every session; later POSTs are refused.
func (ep *Endpoint) Close() {
	ep.mu.Lock()
	ep.closed = true
	all := make([]*Session, 0, len(ep.sessions))
	for _, s := range ep.sessions {
		all = append(all, s)
	}
	ep.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
}

func setCORS(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post")
}

// ServeHTTP implements http.Handler.
func (ep *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setCORS(w)
	rest, ok := strings.CutPrefix(r.URL.Path, ep.Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "POST, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
		h.Set("Access-Control-Max-Age", "86400")
		h.Set("Allow", "POST, PATCH, DELETE, OPTIONS")
		h.Set("Accept-Post", ContentTypeSDP)
		h.Set("Accept-Patch", ContentTypeSDPFrag)
		ep.linkHeaders(w)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		ep.create(w, r, strings.Trim(rest, "/"))
	case http.MethodPatch, http.MethodDelete:
		ep.mu.Lock()
		s := ep.sessions[r.URL.Path]
		ep.mu.Unlock()
		if s == nil {
			writeError(w, Errorf(http.StatusNotFound, "no %s session at %s", ep.Kind, r.URL.Path))
			return
		}
		if s.token != "" && bearerToken(r) != s.token {
			writeError(w, Errorf(http.StatusUnauthorized, "the session's bearer token is required"))
			return
		}
		if r.Method == http.MethodDelete {
			s.Log.Info(ep.Kind + " session ended by the client")
			s.Close()
			w.WriteHeader(http.StatusOK)
			return
		}
		ep.patch(w, r, s)
	default:
		w.Header().Set("Allow", "POST, PATCH, DELETE, OPTIONS")
		writeError(w, Errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
	}
}

func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Msg: err.Error()}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	http.Error(w, e.Msg, e.Status)
}

// linkHeaders advertises the STUN servers (RFC 9725 section 4.6).
func (ep *Endpoint) linkHeaders(w http.ResponseWriter) {
	if ep.Engine == nil {
		return
	}
	for _, s := range ep.Engine.STUNServers() {
		w.Header().Add("Link", fmt.Sprintf("<%s>; rel=\"ice-server\"", s))
	}
}

// bearerToken returns the `Authorization: Bearer` token, else the jwt
// query parameter (for clients that cannot set headers).
func bearerToken(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return r.URL.Query().Get("jwt")
}

func hasContentType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, want)
}

func (ep *Endpoint) readBody(w http.ResponseWriter, r *http.Request) (string, error) {
	limit := ep.currentSizes().MaxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", Errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
		}
		return "", Errorf(http.StatusBadRequest, "read body: %v", err)
	}
	return string(b), nil
}

func (ep *Endpoint) create(w http.ResponseWriter, r *http.Request, path string) {
	log := ep.log().With("path", path, "remote", r.RemoteAddr)
	bodyRead := false
	fail := func(err error) {
		var e *Error
		if errors.As(err, &e) && e.Status < 500 {
			log.Info(ep.Kind+" offer refused", "status", e.Status, "reason", e.Msg)
		} else {
			log.Warn(ep.Kind+" session failed", "err", err)
		}
		if !bodyRead {
			// Refused before the body was read: net/http would read
			// (up to 256 KiB of) it before answering, as slowly as the
			// client sends it; closing after the answer skips that.
			w.Header().Set("Connection", "close")
		}
		writeError(w, err)
	}
	if path == "" {
		fail(Errorf(http.StatusBadRequest, "no broadcast in the URL: POST %s{broadcast}", ep.Prefix))
		return
	}
	if !hasContentType(r, ContentTypeSDP) {
		fail(Errorf(http.StatusUnsupportedMediaType, "Content-Type must be %s", ContentTypeSDP))
		return
	}
	token := bearerToken(r)
	var expires time.Time
	if ep.Authorize != nil {
		var err error
		if expires, err = ep.Authorize(r, path, token); err != nil {
			fail(err)
			return
		}
	}
	offer, err := ep.readBody(w, r)
	bodyRead = true
	if err != nil {
		fail(err)
		return
	}
	if err := checkOffer(offer, Limits{MaxMediaSections: ep.currentSizes().MaxMediaSections}.maxMediaSections()); err != nil {
		fail(err)
		return
	}
	ep.mu.Lock()
	closed := ep.closed
	ep.mu.Unlock()
	if closed {
		fail(Errorf(http.StatusServiceUnavailable, "shutting down"))
		return
	}
	// Admitted before any pion object is made: a session awaiting ICE
	// holds a slot until it connects or is reaped.
	pending, err := ep.Limits.admitPending(r.RemoteAddr)
	if err != nil {
		fail(err)
		return
	}
	s := newSession(ep, path, token, log)
	s.Remote = r.RemoteAddr
	s.OnClose(pending)
	go func() {
		select {
		case <-s.connected:
			pending()
		case <-s.ctx.Done():
		}
	}()
	answer, err := ep.Create(r.Context(), s, offer)
	if err != nil {
		s.Close()
		fail(err)
		return
	}
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		s.Close()
		fail(Errorf(http.StatusServiceUnavailable, "shutting down"))
		return
	}
	if ep.sessions == nil {
		ep.sessions = make(map[string]*Session)
	}
	ep.sessions[s.Resource] = s
	ep.mu.Unlock()
	select {
	case <-s.ctx.Done(): // closed while negotiating (peer connection failed)
		ep.mu.Lock()
		delete(ep.sessions, s.Resource)
		ep.mu.Unlock()
		fail(Errorf(http.StatusInternalServerError, "session ended during negotiation"))
		return
	default:
	}
	timeout := ep.ConnectTimeout
	if timeout <= 0 && ep.Engine != nil {
		timeout = ep.Engine.ConnectTimeout()
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	t := time.AfterFunc(timeout, func() {
		select {
		case <-s.connected:
		default:
			s.Log.Info(ep.Kind+" peer did not connect; session reaped", "timeout", timeout)
			s.Close()
		}
	})
	s.OnClose(func() { t.Stop() })
	s.expireAt(expires)

	h := w.Header()
	h.Set("Content-Type", ContentTypeSDP)
	h.Set("Location", s.Resource)
	h.Set("ETag", s.ETag())
	h.Set("Accept-Patch", ContentTypeSDPFrag)
	ep.linkHeaders(w)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, answer)
	s.Log.Info(ep.Kind+" session created", "resource", s.Resource)
}

// CheckOffer rejects what is not an SDP offer with media (400).
func CheckOffer(offer string) error { return checkOffer(offer, 0) }

// checkOffer is CheckOffer with at most max media sections (0: any); the
// m-lines are counted before the offer is parsed.
func checkOffer(offer string, max int) error {
	if n := countMediaSections(offer); max > 0 && n > max {
		return Errorf(http.StatusBadRequest, "the SDP offer has %d media sections; at most %d are accepted", n, max)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return Errorf(http.StatusBadRequest, "malformed SDP offer: %v", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return Errorf(http.StatusBadRequest, "the SDP offer has no media section")
	}
	return nil
}

// countMediaSections counts the lines that start with "m=".
func countMediaSections(offer string) int {
	n := 0
	if strings.HasPrefix(offer, "m=") {
		n++
	}
	return n + strings.Count(offer, "\nm=")
}

func (ep *Endpoint) patch(w http.ResponseWriter, r *http.Request, s *Session) {
	if !hasContentType(r, ContentTypeSDPFrag) {
		writeError(w, Errorf(http.StatusUnsupportedMediaType, "Content-Type must be %s", ContentTypeSDPFrag))
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != s.ETag() {
		writeError(w, Errorf(http.StatusPreconditionFailed, "If-Match %s does not match the ICE session %s", m, s.ETag()))
		return
	}
	body, err := ep.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	frag, err := ParseSDPFrag(body)
	if err != nil {
		writeError(w, Errorf(http.StatusBadRequest, "malformed %s: %v", ContentTypeSDPFrag, err))
		return
	}
	resp, restarted, err := s.patch(frag)
	if err != nil {
		s.Log.Info(ep.Kind+" PATCH failed", "err", err)
		writeError(w, err)
		return
	}
	if !restarted {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", ContentTypeSDPFrag)
	w.Header().Set("ETag", s.ETag())
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, resp)
}

// Session is one WHIP or WHEP resource and its peer connection.
type Session struct {
	ID       string
	Path     string // the broadcast
	Resource string // URL path of the resource
	Remote   string // the client's address (of its POST)
	Log      *slog.Logger

	ep    *Endpoint
	token string
	ctx   context.Context
	stop  context.CancelFunc

	connected chan struct{}
	connOnce  sync.Once

	mu   sync.Mutex // signaling: one offer/answer or PATCH at a time
	pc   *webrtc.PeerConnection
	etag string

	cmu     sync.Mutex
	closers []func()
	closed  bool
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newSession(ep *Endpoint, path, token string, log *slog.Logger) *Session {
	id := newID()
	ctx, cancel := context.WithCancel(context.Background())
	return &Session{
		ID: id, Path: path, Resource: ep.Prefix + path + "/" + id,
		Log: log.With("session", id[:8]), ep: ep, token: token,
		ctx: ctx, stop: cancel, connected: make(chan struct{}), etag: `"` + newID()[:16] + `"`,
	}
}

// Token is the bearer token the session was created with ("" if none);
// PATCH and DELETE must present it too.
func (s *Session) Token() string { return s.token }

// Context is cancelled when the session closes.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed when the session closes.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Connected is closed when the peer connection first connects.
func (s *Session) Connected() <-chan struct{} { return s.connected }

// ETag identifies the current ICE session (it changes with ICE restarts).
func (s *Session) ETag() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etag
}

// PeerConnection returns the session's peer connection (nil before
// NewPeerConnection).
func (s *Session) PeerConnection() *webrtc.PeerConnection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pc
}

// OnClose runs f when the session closes (at once if it is closed).
func (s *Session) OnClose(f func()) {
	s.cmu.Lock()
	if s.closed {
		s.cmu.Unlock()
		f()
		return
	}
	s.closers = append(s.closers, f)
	s.cmu.Unlock()
}

// Close ends the session: the peer connection closes, the OnClose
// functions run (last registered first), the resource goes away.
func (s *Session) Close() {
	s.cmu.Lock()
	if s.closed {
		s.cmu.Unlock()
		return
	}
	s.closed = true
	closers := s.closers
	s.closers = nil
	s.cmu.Unlock()
	s.stop()
	s.ep.mu.Lock()
	if s.ep.sessions[s.Resource] == s {
		delete(s.ep.sessions, s.Resource)
	}
	s.ep.mu.Unlock()
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if pc != nil {
		if err := pc.Close(); err != nil {
			s.Log.Debug("close peer connection", "err", err)
		}
	}
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	s.Log.Info(s.ep.Kind + " session closed")
}

// expireAt closes the session when its authorization ends (never if t is
// zero): the peer connection is closed and the resource goes away.
func (s *Session) expireAt(t time.Time) {
	if t.IsZero() {
		return
	}
	ctx, cancel := context.WithDeadline(s.ctx, t)
	go func() {
		<-ctx.Done()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && s.ctx.Err() == nil {
			s.Log.Info(s.ep.Kind+" token expired; closing the session", "expires", t.UTC().Format(time.RFC3339))
			s.Close()
		}
	}()
	s.OnClose(cancel)
}

// NewPeerConnection makes the session's peer connection with api (from
// Engine.API) and reaps the session when it fails or closes.
func (s *Session) NewPeerConnection(api *webrtc.API) (*webrtc.PeerConnection, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	s.mu.Lock()
	s.pc = pc
	s.mu.Unlock()
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.Log.Debug("peer connection state", "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.connOnce.Do(func() { close(s.connected) })
		case webrtc.PeerConnectionStateFailed:
			s.Log.Info(s.ep.Kind + " peer connection failed (ICE or DTLS); session reaped")
			go s.Close()
		case webrtc.PeerConnectionStateClosed:
			go s.Close()
		}
	})
	if s.ctx.Err() != nil { // closed meanwhile
		pc.Close()
		return nil, errors.New("session closed")
	}
	return pc, nil
}

// gatherTimeout bounds host candidate gathering (immediate on a mux).
const gatherTimeout = 5 * time.Second

// Answer applies offer, answers it and returns the answer with every
// candidate (no server-side trickle). A bad offer is a 400 *Error.
func (s *Session) Answer(offer string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pc := s.pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", Errorf(http.StatusBadRequest, "SDP offer not usable: %v", err)
	}
	return s.answerLocked()
}

func (s *Session) answerLocked() (string, error) {
	pc := s.pc
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", Errorf(http.StatusBadRequest, "cannot answer the offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-time.After(gatherTimeout):
		s.Log.Warn("ICE gathering did not complete; answering with the candidates so far")
	case <-s.ctx.Done():
		return "", errors.New("session closed")
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return "", errors.New("no local description")
	}
	return ld.SDP, nil
}

// patch applies a trickle-ice-sdpfrag: an ICE restart when it carries new
// credentials (the answer's fragment is returned), else new candidates.
func (s *Session) patch(frag *SDPFrag) (resp string, restarted bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pc := s.pc
	if pc == nil {
		return "", false, Errorf(http.StatusConflict, "session not negotiated")
	}
	rd := pc.RemoteDescription()
	if rd == nil {
		return "", false, Errorf(http.StatusConflict, "session not negotiated")
	}
	ufrag, _ := iceCredentials(rd.SDP)
	if frag.Ufrag != "" && frag.Ufrag != ufrag {
		if frag.Pwd == "" {
			return "", false, Errorf(http.StatusBadRequest, "ICE restart without ice-pwd")
		}
		offer := restartOffer(rd.SDP, frag.Ufrag, frag.Pwd)
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
			return "", false, Errorf(http.StatusBadRequest, "ICE restart: %v", err)
		}
		answer, err := s.answerLocked()
		if err != nil {
			return "", false, err
		}
		s.etag = `"` + newID()[:16] + `"`
		restarted = true
		resp = answerFrag(answer)
		s.Log.Info("ICE restart")
	}
	for _, c := range frag.Candidates {
		if err := pc.AddICECandidate(c); err != nil {
			return "", false, Errorf(http.StatusBadRequest, "candidate %q: %v", c.Candidate, err)
		}
	}
	return resp, restarted, nil
}
