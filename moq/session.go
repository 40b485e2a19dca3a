package moq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqgate/moqgate/moq/internal/wire"
	"golang.org/x/time/rate"
)

// Config configures a Session.
type Config struct {
	Logger *slog.Logger
	// Handler serves the peer's requests (SUBSCRIBE, FETCH, ...). Nil
	// refuses them all.
	Handler Handler
	// MaxRequests is how many requests the peer may have open at once
	// (granted through MAX_REQUEST_ID). Default 100.
	MaxRequests uint64
	// Client only: PATH and AUTHORITY setup parameters (raw QUIC only).
	Path, Authority string
	// AuthToken is sent in CLIENT_SETUP (client only) as AUTHORIZATION TOKEN.
	AuthToken string
	// Implementation is sent as the MOQT IMPLEMENTATION setup parameter.
	Implementation string
	// SetupTimeout bounds CLIENT_SETUP/SERVER_SETUP. Default 10 s.
	SetupTimeout time.Duration
	// RequestTimeout bounds how long a request waits for its reply.
	// Default 10 s.
	RequestTimeout time.Duration
	// TrackLimits bound the cache of tracks created by Subscribe.
	TrackLimits TrackLimits
	// MaxLagGroups is how many groups a subscriber may fall behind the
	// newest before its oldest group stream is reset. Default 2.
	MaxLagGroups int
	// MaxObjectSize bounds incoming object payloads. Default 16 MiB.
	MaxObjectSize uint64
	// MaxBytesInFlight bounds the bytes of the objects this session is
	// receiving (read, not yet complete); an object that does not fit has
	// its stream reset. Default DefaultMaxBytesInFlight (at least
	// MaxObjectSize); negative: unlimited.
	MaxBytesInFlight int64
	// SharedBytesInFlight, if set, bounds the objects in flight of every
	// session holding it (the server's budget).
	SharedBytesInFlight *ByteBudget
	// MaxControlRate bounds the peer's control messages per second
	// (bursts of up to one second's worth); 0 = unlimited. A peer over it
	// is closed with TOO_MANY_REQUESTS.
	MaxControlRate float64
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = 100
	}
	if c.SetupTimeout == 0 {
		c.SetupTimeout = 10 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MaxLagGroups <= 0 {
		c.MaxLagGroups = 2
	}
	if c.MaxObjectSize == 0 {
		c.MaxObjectSize = 16 << 20
	}
	if c.MaxBytesInFlight == 0 {
		c.MaxBytesInFlight = max(DefaultMaxBytesInFlight, int64(c.MaxObjectSize))
	}
	if c.Implementation == "" {
		c.Implementation = "moqgate"
	}
}

// RequestError is a refusal with one of the draft's error codes; handlers
// return it to choose the code sent in the *_ERROR message.
type RequestError struct {
	Code   uint64
	Reason string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("request refused (code %#x): %s", e.Code, e.Reason)
}

// Is makes errors.Is(err, ErrNotFound) hold for a does-not-exist refusal,
// and errors.Is(err, ErrNotSupported) for a not-supported one (the same
// code in every request's error registry).
func (e *RequestError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == wire.SubscribeErrorTrackDoesNotExist
	case ErrNotSupported:
		return e.Code == wire.SubscribeErrorNotSupported
	case ErrTimeout:
		return e.Code == wire.SubscribeErrorTimeout
	}
	return false
}

// Refusal makes the RequestError that errors.Is matches to kind
// (ErrNotFound, ErrNotSupported or ErrTimeout; anything else is an
// internal error), for handlers that choose the code without the codec.
func Refusal(kind error, reason string) *RequestError {
	code := uint64(wire.SubscribeErrorInternalError)
	switch kind {
	case ErrNotFound:
		code = wire.SubscribeErrorTrackDoesNotExist
	case ErrNotSupported:
		code = wire.SubscribeErrorNotSupported
	case ErrTimeout:
		code = wire.SubscribeErrorTimeout
	}
	return &RequestError{Code: code, Reason: reason}
}

// SessionError is how a session ended: the termination code and reason,
// and whether the peer closed it.
type SessionError struct {
	Code   uint64
	Reason string
	Remote bool
}

func (e *SessionError) Error() string {
	who := "local"
	if e.Remote {
		who = "peer"
	}
	return fmt.Sprintf("moq session closed by %s (code %#x): %s", who, e.Code, e.Reason)
}

// Session is one MoQ Transport session, in either role. It can publish
// and subscribe at the same time.
type Session struct {
	conn    Conn
	cfg     Config
	log     *slog.Logger
	client  bool
	version uint64
	// PeerPath is the PATH the client asked for (raw QUIC), or the URL
	// path and query of the WebTransport request.
	PeerPath string
	// inflight is the budget of the objects being received.
	inflight *ByteBudget
	// PeerParams are the peer's setup parameters.
	PeerParams wire.Params

	ctx    context.Context
	cancel context.CancelCauseFunc

	ctrl    Stream
	ctrlR   *bufio.Reader
	sendMu  sync.Mutex
	sendBuf []byte
	// reqOrder (one token) is held from taking a request ID until the
	// request is written (see allocRequestID).
	reqOrder chan struct{}
	// grantMu keeps MAX_REQUEST_ID grants in the order they are made.
	grantMu sync.Mutex
	// codec is the negotiated version's wire format.
	codec wire.Codec

	mu sync.Mutex
	// Our requests.
	nextReqID     uint64
	peerMaxReqID  uint64
	blockedSentAt uint64
	reqIDChanged  chan struct{}
	pending       map[uint64]chan wire.Message
	subsOut       map[uint64]*Subscription // by request ID
	subsByAlias   map[uint64]*Subscription
	aliasChanged  chan struct{}
	fetchesOut    map[uint64]*FetchResult
	nsSubsOut     map[uint64]*NamespaceSubscription
	announcedOut  map[string]uint64 // path -> request ID of our PUBLISH_NAMESPACE
	// The peer's requests.
	nextPeerReqID uint64
	maxPeerReqID  uint64
	activePeerReq uint64
	subsIn        map[uint64]*serveSub
	fetchesIn     map[uint64]*serveFetch
	nsSubsIn      map[string]Namespace // prefix path -> prefix as sent
	announcedIn   map[string]Namespace
	nextAlias     uint64
	goawayRecv    bool
	goawaySent    bool
	expiry        *time.Timer
	expiresAt     time.Time

	// reqTypes are the model types of our outstanding requests: draft-16
	// replies (REQUEST_OK/REQUEST_ERROR) name only the request ID.
	reqTypes map[uint64]uint64
	// abandoned are our requests we stopped waiting for (timeout, caller
	// gone), oldest first: their replies may still come (see lateReply).
	// Their reqTypes are kept so that those replies still parse.
	abandoned []uint64
	// Request IDs the peer skipped: with requests on several streams
	// (draft-16 SUBSCRIBE_NAMESPACE) they may still come, late.
	skippedPeerReqIDs map[uint64]struct{}
	// announcedInReq: the peer's PUBLISH_NAMESPACE request ID -> path
	// (draft-16 withdraws by request ID). nsStreamsIn: the peer's
	// SUBSCRIBE_NAMESPACE streams by prefix path (draft-16).
	announcedInReq map[uint64]string
	nsStreamsIn    map[string]*nsStreamIn
	// reqStreams are the draft-17 request streams, ours and the peer's,
	// by request ID (and by the ID of an update on them, until answered).
	reqStreams map[uint64]*reqStream

	wg sync.WaitGroup
	// writers counts group streams being written, for Drain.
	writers sync.WaitGroup

	// Stats.
	objectsOut, bytesOut, objectsIn, bytesIn, groupsDropped atomic.Uint64
}

// Handler serves requests a peer sends. Each method runs on its own
// goroutine; returning a *RequestError chooses the error code.
type Handler interface {
	// HandleSubscribe returns the track to serve the subscription from and
	// a release function called when the subscription ends.
	HandleSubscribe(ctx context.Context, s *Session, req *SubscribeRequest) (*Track, func(), error)
	// HandleFetch returns the track whose cache answers a standalone fetch.
	HandleFetch(ctx context.Context, s *Session, req *FetchRequest) (*Track, func(), error)
	// HandleTrackStatus returns the track to report on.
	HandleTrackStatus(ctx context.Context, s *Session, req *SubscribeRequest) (*Track, func(), error)
	// HandlePublishNamespace: the peer announces a namespace it publishes.
	HandlePublishNamespace(ctx context.Context, s *Session, ns Namespace, params wire.Params) error
	// HandlePublishNamespaceDone: the peer withdrew a namespace (or the
	// session ended).
	HandlePublishNamespaceDone(s *Session, ns Namespace)
	// HandleSubscribeNamespace: the peer wants PUBLISH_NAMESPACE for
	// namespaces under prefix. The returned function runs after
	// SUBSCRIBE_NAMESPACE_OK went out; it announces what exists already
	// (with s.PublishNamespace).
	HandleSubscribeNamespace(ctx context.Context, s *Session, prefix Namespace, params wire.Params) (func(), error)
	HandleUnsubscribeNamespace(s *Session, prefix Namespace)
	// HandlePublish: the peer pushes a track (PUBLISH); return the track
	// to append its objects to and a release function.
	HandlePublish(ctx context.Context, s *Session, req *PublishRequest) (*Track, func(), error)
	// HandleSessionClosed is called once when the session ends.
	HandleSessionClosed(s *Session)
}

// SubscribeRequest is an incoming SUBSCRIBE or TRACK_STATUS.
type SubscribeRequest struct {
	RequestID  uint64
	Namespace  Namespace
	TrackName  string
	Priority   uint8
	GroupOrder uint8
	Forward    bool
	Filter     uint64
	Start      Location
	EndGroup   uint64
	Params     wire.Params
}

// FetchRequest is an incoming standalone FETCH (joining fetches are
// answered by the session from the joined subscription's track).
type FetchRequest struct {
	RequestID uint64
	Namespace Namespace
	TrackName string
	Start     Location
	End       Location
	Params    wire.Params
}

// PublishRequest is an incoming PUBLISH.
type PublishRequest struct {
	RequestID     uint64
	Namespace     Namespace
	TrackName     string
	GroupOrder    uint8
	ContentExists bool
	Largest       Location
	Params        wire.Params
}

// Accept runs the server side of setup on conn and starts the session.
func Accept(ctx context.Context, conn Conn, cfg Config, peerPath string) (*Session, error) {
	s := newSession(conn, cfg, false)
	s.PeerPath = peerPath
	setupCtx, cancel := context.WithTimeout(ctx, s.cfg.SetupTimeout)
	defer cancel()
	stop := context.AfterFunc(setupCtx, func() {
		if setupCtx.Err() == context.DeadlineExceeded {
			conn.CloseWithError(wire.ControlMessageTimeout, "setup timeout")
		}
	})
	defer stop()
	if s.requestStreams() {
		if err := s.openControl17(setupCtx); err != nil {
			return nil, err
		}
		if err := s.acceptControl17(setupCtx); err != nil {
			return nil, err
		}
	} else {
		ctrl, err := conn.AcceptStream(setupCtx)
		if err != nil {
			return nil, fmt.Errorf("moq: accept control stream: %w", err)
		}
		s.ctrl, s.ctrlR = ctrl, bufio.NewReaderSize(ctrl, 4096)
	}
	msg, err := s.codec.ReadMessage(s.ctrlR)
	if err != nil {
		s.fail(err)
		return nil, fmt.Errorf("moq: read CLIENT_SETUP: %w", err)
	}
	cs, ok := msg.(*wire.ClientSetup)
	if !ok {
		s.closeWith(wire.ProtocolViolation, "expected CLIENT_SETUP")
		return nil, fmt.Errorf("moq: expected CLIENT_SETUP, got %T", msg)
	}
	// Draft-14 negotiates here; from draft-15 on the ALPN chose the
	// version and the codec reports it as the only one offered.
	if !slices.Contains(cs.Versions, s.codec.Version()) {
		s.closeWith(wire.VersionNegotiationFailed, "no supported version")
		return nil, fmt.Errorf("moq: client offers no supported version (%x)", cs.Versions)
	}
	s.PeerParams = cs.Params
	s.peerQuirks17()
	if p, ok := cs.Params.Bytes(wire.ParamPath); ok {
		if conn.Protocol() == "webtransport" {
			s.closeWith(wire.InvalidPath, "PATH over WebTransport")
			return nil, errors.New("moq: PATH parameter over WebTransport")
		}
		s.PeerPath = string(p)
	}
	if max, ok := cs.Params.Uint(wire.ParamMaxRequestID); ok && !s.requestStreams() {
		s.peerMaxReqID = max
	}
	params := wire.Params{{Key: wire.ParamImplementation, Bytes: []byte(s.cfg.Implementation)}}
	if !s.requestStreams() {
		s.maxPeerReqID = 2 * s.cfg.MaxRequests // client IDs are even
		params = append(wire.Params{{Key: wire.ParamMaxRequestID, Value: s.maxPeerReqID}}, params...)
	}
	err = s.send(&wire.ServerSetup{Version: s.version, Params: params})
	if err != nil {
		s.fail(err)
		return nil, fmt.Errorf("moq: send SERVER_SETUP: %w", err)
	}
	s.start()
	return s, nil
}

// Connect runs the client side of setup on conn and starts the session.
func Connect(ctx context.Context, conn Conn, cfg Config) (*Session, error) {
	s := newSession(conn, cfg, true)
	setupCtx, cancel := context.WithTimeout(ctx, s.cfg.SetupTimeout)
	defer cancel()
	params := wire.Params{{Key: wire.ParamImplementation, Bytes: []byte(s.cfg.Implementation)}}
	if s.requestStreams() {
		if err := s.openControl17(setupCtx); err != nil {
			return nil, err
		}
	} else {
		ctrl, err := conn.OpenStreamSync(setupCtx)
		if err != nil {
			return nil, fmt.Errorf("moq: open control stream: %w", err)
		}
		s.ctrl, s.ctrlR = ctrl, bufio.NewReaderSize(ctrl, 4096)
		s.maxPeerReqID = 2*s.cfg.MaxRequests + 1 // server IDs are odd
		params = append(wire.Params{{Key: wire.ParamMaxRequestID, Value: s.maxPeerReqID}}, params...)
	}
	if conn.Protocol() == "quic" {
		if s.cfg.Path != "" {
			params = append(params, wire.Param{Key: wire.ParamPath, Bytes: []byte(s.cfg.Path)})
		}
		if s.cfg.Authority != "" {
			params = append(params, wire.Param{Key: wire.ParamAuthority, Bytes: []byte(s.cfg.Authority)})
		}
	}
	if s.cfg.AuthToken != "" {
		params = append(params, wire.Param{Key: wire.ParamAuthorizationToken, Bytes: EncodeAuthToken(s.cfg.AuthToken)})
	}
	if err := s.send(&wire.ClientSetup{Versions: []uint64{s.version}, Params: params}); err != nil {
		s.fail(err)
		return nil, fmt.Errorf("moq: send CLIENT_SETUP: %w", err)
	}
	if s.requestStreams() {
		if err := s.acceptControl17(setupCtx); err != nil {
			s.closeWith(wire.ControlMessageTimeout, "no control stream")
			return nil, err
		}
	}
	type result struct {
		m   wire.Message
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := s.codec.ReadMessage(s.ctrlR)
		ch <- result{m, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-setupCtx.Done():
		s.closeWith(wire.ControlMessageTimeout, "setup timeout")
		return nil, fmt.Errorf("moq: waiting for SERVER_SETUP: %w", setupCtx.Err())
	}
	if r.err != nil {
		s.fail(r.err)
		return nil, fmt.Errorf("moq: read SERVER_SETUP: %w", r.err)
	}
	ss, ok := r.m.(*wire.ServerSetup)
	if !ok {
		s.closeWith(wire.ProtocolViolation, "expected SERVER_SETUP")
		return nil, fmt.Errorf("moq: expected SERVER_SETUP, got %T", r.m)
	}
	if ss.Version != s.version {
		s.closeWith(wire.VersionNegotiationFailed, "unexpected version")
		return nil, fmt.Errorf("moq: server selected version %#x", ss.Version)
	}
	s.PeerParams = ss.Params
	s.peerQuirks17()
	if max, ok := ss.Params.Uint(wire.ParamMaxRequestID); ok && !s.requestStreams() {
		s.peerMaxReqID = max
	}
	s.start()
	return s, nil
}

func newSession(conn Conn, cfg Config, client bool) *Session {
	cfg.defaults()
	ctx, cancel := context.WithCancelCause(conn.Context())
	s := &Session{
		conn:         conn,
		cfg:          cfg,
		log:          cfg.Logger.With("remote", conn.RemoteAddr().String(), "transport", conn.Protocol()),
		client:       client,
		ctx:          ctx,
		cancel:       cancel,
		reqIDChanged: make(chan struct{}),
		reqOrder:     make(chan struct{}, 1),
		pending:      make(map[uint64]chan wire.Message),
		subsOut:      make(map[uint64]*Subscription),
		subsByAlias:  make(map[uint64]*Subscription),
		aliasChanged: make(chan struct{}),
		fetchesOut:   make(map[uint64]*FetchResult),
		nsSubsOut:    make(map[uint64]*NamespaceSubscription),
		announcedOut: make(map[string]uint64),
		subsIn:       make(map[uint64]*serveSub),
		fetchesIn:    make(map[uint64]*serveFetch),
		nsSubsIn:     make(map[string]Namespace),
		announcedIn:  make(map[string]Namespace),

		reqTypes:          make(map[uint64]uint64),
		skippedPeerReqIDs: make(map[uint64]struct{}),
		announcedInReq:    make(map[uint64]string),
		nsStreamsIn:       make(map[string]*nsStreamIn),
		reqStreams:        make(map[uint64]*reqStream),
	}
	s.inflight = NewByteBudget(cfg.MaxBytesInFlight)
	// The negotiated ALPN or WebTransport protocol names the version
	// (none, or moq-00: draft-14, negotiated in setup). Server and
	// client only offer protocols of versions we speak.
	codec, ok := wire.CodecForProtocol(ApplicationProtocol(conn), s.requestType)
	if !ok {
		codec = wire.Draft14{}
	}
	if c, ok := codec.(wire.Draft17); ok {
		c.Client = client
		codec = c
	}
	s.codec, s.version = codec, codec.Version()
	s.log = s.log.With("version", fmt.Sprintf("%#x", s.version))
	if client {
		s.nextReqID, s.nextPeerReqID = 0, 1
	} else {
		s.nextReqID, s.nextPeerReqID = 1, 0
	}
	return s
}

func (s *Session) start() {
	s.wg.Add(3)
	go s.controlLoop()
	go s.acceptUniLoop()
	go s.datagramLoop()
	if s.codec.Features().NamespaceStreams {
		s.wg.Add(1)
		go s.acceptBidiLoop()
	}
	go func() {
		<-s.ctx.Done()
		s.teardown()
	}()
}

// Context is done when the session ends.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Err returns why the session ended (nil while it runs).
func (s *Session) Err() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return context.Cause(s.ctx)
}

// Conn returns the underlying transport.
func (s *Session) Conn() Conn { return s.conn }

// Version returns the MoQ Transport version the session speaks
// (wire.Version14, wire.Version16).
func (s *Session) Version() uint64 { return s.version }

// Logger returns the session's logger.
func (s *Session) Logger() *slog.Logger { return s.log }

// IsClient reports the session's role.
func (s *Session) IsClient() bool { return s.client }

// Stats returns objects and payload bytes sent and received, and groups
// dropped for this subscriber because it could not keep up.
func (s *Session) Stats() (objectsOut, bytesOut, objectsIn, bytesIn, groupsDropped uint64) {
	return s.objectsOut.Load(), s.bytesOut.Load(), s.objectsIn.Load(), s.bytesIn.Load(), s.groupsDropped.Load()
}

// Close ends the session with NO_ERROR.
func (s *Session) Close() error {
	s.closeWith(wire.NoError, "")
	return nil
}

// CloseWithError ends the session with a termination code.
func (s *Session) CloseWithError(code uint64, reason string) {
	s.closeWith(code, reason)
}

func (s *Session) closeWith(code uint64, reason string) {
	if s.ctx.Err() != nil {
		return
	}
	if code != wire.NoError {
		s.log.Info("closing moq session", "code", code, "reason", reason)
	}
	s.cancel(&SessionError{Code: code, Reason: reason})
	s.conn.CloseWithError(code, reason)
}

// fail ends the session after an error on the control stream or a
// protocol violation, with the matching code.
func (s *Session) fail(err error) {
	var se *wire.SessionError
	switch {
	case errors.As(err, &se):
		s.closeWith(se.Code, se.Reason)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		s.closeWith(wire.ProtocolViolation, "control stream ended")
	default:
		if s.ctx.Err() == nil {
			// The transport went away: record the peer's reason if known.
			var code uint64
			reason := err.Error()
			var pe *ConnClosedError
			if errors.As(err, &pe) {
				code, reason = pe.Code, pe.Reason
			}
			s.cancel(&SessionError{Code: code, Reason: reason, Remote: true})
			s.conn.CloseWithError(code, reason)
		}
	}
}

// GoAway sends GOAWAY (once) so the peer moves elsewhere; uri may be "".
func (s *Session) GoAway(uri string) error {
	s.mu.Lock()
	if s.goawaySent {
		s.mu.Unlock()
		return nil
	}
	s.goawaySent = true
	s.mu.Unlock()
	return s.send(&wire.GoAway{NewSessionURI: uri})
}

// ExpireAt closes the session with EXPIRED_AUTH_TOKEN at t (the earliest
// of all calls wins): a token that expires ends what it granted.
func (s *Session) ExpireAt(t time.Time) {
	if t.IsZero() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expiry != nil && !s.expiresAt.After(t) {
		return
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.expiresAt = t
	s.expiry = time.AfterFunc(time.Until(t), func() {
		s.closeWith(wire.ExpiredAuthToken, "authorization token expired")
	})
}

// AuthToken returns the token the peer presented for the whole session:
// the AUTHORIZATION TOKEN setup parameter, or a jwt query parameter on
// the connection path (raw QUIC PATH or the WebTransport URL).
func (s *Session) AuthToken() string {
	if b, ok := s.PeerParams.Bytes(wire.ParamAuthorizationToken); ok {
		if tok, err := DecodeAuthToken(b); err == nil {
			return tok
		}
	}
	if i := strings.IndexByte(s.PeerPath, '?'); i >= 0 {
		if q, err := url.ParseQuery(s.PeerPath[i+1:]); err == nil {
			return q.Get("jwt")
		}
	}
	return ""
}

// RequestAuthToken returns the AUTHORIZATION TOKEN of a request's
// parameters, if any.
func RequestAuthToken(params wire.Params) string {
	if b, ok := params.Bytes(wire.ParamAuthToken); ok {
		if tok, err := DecodeAuthToken(b); err == nil {
			return tok
		}
	}
	return ""
}

// Drain waits until the group streams being written have been handed to
// the transport (or ctx is done), so that closing afterwards loses nothing.
func (s *Session) Drain(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Shutdown sends GOAWAY, waits until the peer closes or ctx is done, then
// closes the session.
func (s *Session) Shutdown(ctx context.Context) {
	if err := s.GoAway(""); err == nil {
		select {
		case <-s.ctx.Done():
		case <-ctx.Done():
		}
	}
	s.closeWith(wire.NoError, "shutting down")
}

// send writes one control message.
func (s *Session) send(m wire.Message) error {
	if s.requestStreams() {
		return s.send17(m)
	}
	return s.sendControl(m)
}

// sendOrClose sends a reply; a failure to write the control stream ends
// the session.
func (s *Session) sendOrClose(m wire.Message) {
	if err := s.send(m); err != nil {
		s.fail(err)
	}
}

// refuseRequest answers a peer's request with its error reply m and frees
// the request's slot: a bad value in one request ends that request only.
func (s *Session) refuseRequest(m wire.Message) {
	s.sendOrClose(m)
	s.peerRequestDone()
}

func (s *Session) teardown() {
	s.wg.Wait()
	s.mu.Lock()
	subsIn := make([]*serveSub, 0, len(s.subsIn))
	for _, ss := range s.subsIn {
		subsIn = append(subsIn, ss)
	}
	fetchesIn := make([]*serveFetch, 0, len(s.fetchesIn))
	for _, f := range s.fetchesIn {
		fetchesIn = append(fetchesIn, f)
	}
	subsOut := make([]*Subscription, 0, len(s.subsOut))
	for _, sub := range s.subsOut {
		subsOut = append(subsOut, sub)
	}
	fetchesOut := make([]*FetchResult, 0, len(s.fetchesOut))
	for _, f := range s.fetchesOut {
		fetchesOut = append(fetchesOut, f)
	}
	nsOut := make([]*NamespaceSubscription, 0, len(s.nsSubsOut))
	for _, n := range s.nsSubsOut {
		nsOut = append(nsOut, n)
	}
	announced := make([]Namespace, 0, len(s.announcedIn))
	for _, ns := range s.announcedIn {
		announced = append(announced, ns)
	}
	prefixes := make([]Namespace, 0, len(s.nsSubsIn))
	for _, p := range s.nsSubsIn {
		prefixes = append(prefixes, p)
	}
	s.announcedIn = map[string]Namespace{}
	s.nsSubsIn = map[string]Namespace{}
	s.mu.Unlock()
	for _, ss := range subsIn {
		ss.stop()
	}
	for _, f := range fetchesIn {
		f.cancel()
	}
	for _, sub := range subsOut {
		sub.finish(wire.PublishDoneInternalError, "session closed", true)
	}
	for _, f := range fetchesOut {
		f.finish(errors.New("moq: session closed"))
	}
	for _, n := range nsOut {
		n.close()
	}
	if h := s.cfg.Handler; h != nil {
		for _, ns := range announced {
			h.HandlePublishNamespaceDone(s, ns)
		}
		for _, p := range prefixes {
			h.HandleUnsubscribeNamespace(s, p)
		}
		h.HandleSessionClosed(s)
	}
}

// ---- request IDs ----

// allocRequestID takes our next request ID, waiting for the peer's
// MAX_REQUEST_ID if needed (REQUESTS_BLOCKED is sent once per limit).
//
// The peer closes the session when a request ID on the control stream is
// not the next one (INVALID_REQUEST_ID), so requests must be written in
// the order of their IDs, also when several goroutines make requests at
// once: on success the caller holds the request order until it calls
// requestWritten, once the request is written (request and Update do) or
// when it goes on a stream of its own.
func (s *Session) allocRequestID(ctx context.Context) (id uint64, err error) {
	select {
	case s.reqOrder <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.ctx.Done():
		return 0, s.Err()
	}
	defer func() {
		if err != nil {
			s.requestWritten()
		}
	}()
	for {
		s.mu.Lock()
		if s.goawayRecv {
			s.mu.Unlock()
			return 0, errors.New("moq: peer sent GOAWAY")
		}
		if s.nextReqID < s.peerMaxReqID {
			id := s.nextReqID
			s.nextReqID += 2
			s.mu.Unlock()
			return id, nil
		}
		ch := s.reqIDChanged
		max := s.peerMaxReqID
		sendBlocked := s.blockedSentAt != max+1
		s.blockedSentAt = max + 1
		s.mu.Unlock()
		if sendBlocked {
			if err := s.send(&wire.RequestsBlocked{MaximumRequestID: max}); err != nil {
				return 0, err
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("moq: blocked on MAX_REQUEST_ID: %w", ctx.Err())
		case <-s.ctx.Done():
			return 0, s.Err()
		}
	}
}

// requestWritten releases the request order taken by allocRequestID.
func (s *Session) requestWritten() { <-s.reqOrder }

// checkPeerRequestID validates a new request from the peer.
func (s *Session) checkPeerRequestID(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != s.nextPeerReqID && !s.lateRequestIDLocked(id) {
		return &wire.SessionError{Code: wire.InvalidRequestID, Reason: fmt.Sprintf("request ID %d, expected %d", id, s.nextPeerReqID)}
	}
	if id >= s.maxPeerReqID {
		return &wire.SessionError{Code: wire.TooManyRequests, Reason: fmt.Sprintf("request ID %d over the limit %d", id, s.maxPeerReqID)}
	}
	if id >= s.nextPeerReqID {
		s.nextPeerReqID = id + 2
	}
	s.activePeerReq++
	return nil
}

// peerRequestDone releases one request slot and grants a new request ID
// so that the peer can keep MaxRequests requests open.
func (s *Session) peerRequestDone() {
	// A grant is computed and written as one step: a smaller one written
	// after a larger one would be a protocol violation to the peer.
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	s.mu.Lock()
	if s.activePeerReq > 0 {
		s.activePeerReq--
	}
	grant := s.nextPeerReqID + 2*(s.cfg.MaxRequests-min(s.activePeerReq, s.cfg.MaxRequests))
	send := grant > s.maxPeerReqID && grant-s.maxPeerReqID >= 2*max(1, s.cfg.MaxRequests/4)
	if send {
		s.maxPeerReqID = grant
	}
	s.mu.Unlock()
	if send && s.ctx.Err() == nil {
		s.sendOrClose(&wire.MaxRequestID{RequestID: grant})
	}
}

// request sends a request and waits for its reply.
func (s *Session) request(ctx context.Context, id uint64, m wire.Message) (wire.Message, error) {
	ch := make(chan wire.Message, 1)
	s.mu.Lock()
	s.pending[id] = ch
	s.reqTypes[id] = m.Type()
	s.mu.Unlock()
	sent := false
	defer func() {
		s.mu.Lock()
		if _, waiting := s.pending[id]; waiting && sent {
			s.abandonLocked(id)
		} else {
			delete(s.reqTypes, id)
		}
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	err := s.send(m)
	s.requestWritten()
	if err != nil {
		return nil, err
	}
	sent = true
	timer := time.NewTimer(s.cfg.RequestTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, s.Err()
	case <-timer.C:
		return nil, fmt.Errorf("moq: no reply to %T in %v", m, s.cfg.RequestTimeout)
	}
}

// reply routes a response to the request waiting for it.
func (s *Session) reply(id uint64, m wire.Message) error {
	s.mu.Lock()
	ch, ok := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if !ok {
		if s.takeAbandoned(id) {
			s.lateReply(id, m)
			return nil
		}
		return &wire.SessionError{Code: wire.ProtocolViolation, Reason: fmt.Sprintf("%T for unknown request %d", m, id)}
	}
	ch <- m
	return nil
}

// maxAbandonedRequests bounds how many abandoned requests are remembered.
const maxAbandonedRequests = 256

func (s *Session) abandonLocked(id uint64) {
	s.abandoned = append(s.abandoned, id)
	if len(s.abandoned) > maxAbandonedRequests {
		delete(s.reqTypes, s.abandoned[0])
		s.abandoned = s.abandoned[1:]
	}
}

// takeAbandoned reports whether id is a request we abandoned, and forgets it.
func (s *Session) takeAbandoned(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.abandoned, id)
	if i < 0 {
		return false
	}
	s.abandoned = slices.Delete(s.abandoned, i, i+1)
	delete(s.reqTypes, id)
	return true
}

// lateReply handles the reply to a request we gave up waiting for. It is
// not the peer's fault (it answered, only slowly), so the session stays; a
// subscription or fetch it opened is ended at once.
func (s *Session) lateReply(id uint64, m wire.Message) {
	s.log.Debug("late reply to an abandoned request", "request", id, "reply", fmt.Sprintf("%T", m))
	switch m.(type) {
	case *wire.SubscribeOK:
		s.sendOrClose(&wire.Unsubscribe{RequestID: id})
	case *wire.FetchOK:
		s.sendOrClose(&wire.FetchCancel{RequestID: id})
	case *wire.PublishOK:
		s.sendOrClose(&wire.PublishDone{RequestID: id, StatusCode: wire.PublishDoneInternalError, Reason: "PUBLISH abandoned"})
	}
}

// ---- control loop ----

func (s *Session) controlLoop() {
	defer s.wg.Done()
	var limiter *rate.Limiter
	if s.cfg.MaxControlRate > 0 {
		limiter = rate.NewLimiter(rate.Limit(s.cfg.MaxControlRate), int(max(1, s.cfg.MaxControlRate)))
	}
	for {
		m, err := s.codec.ReadMessage(s.ctrlR)
		if err != nil {
			if s.ctx.Err() == nil {
				s.fail(err)
			}
			return
		}
		if limiter != nil && !limiter.Allow() {
			s.closeWith(wire.TooManyRequests, "control message rate limit")
			return
		}
		if err := s.dispatch(m); err != nil {
			s.fail(err)
			return
		}
	}
}

func protocolViolation(format string, args ...any) error {
	return &wire.SessionError{Code: wire.ProtocolViolation, Reason: fmt.Sprintf(format, args...)}
}

func (s *Session) dispatch(m wire.Message) error {
	switch m := m.(type) {
	case *wire.ClientSetup, *wire.ServerSetup:
		return protocolViolation("duplicate setup message")
	case *wire.GoAway:
		s.mu.Lock()
		dup := s.goawayRecv
		s.goawayRecv = true
		s.mu.Unlock()
		if dup {
			return protocolViolation("second GOAWAY")
		}
		if !s.client && m.NewSessionURI != "" {
			return protocolViolation("GOAWAY with a URI from a client")
		}
		s.log.Info("peer sent GOAWAY", "uri", m.NewSessionURI)
	case *wire.MaxRequestID:
		s.mu.Lock()
		if m.RequestID <= s.peerMaxReqID {
			s.mu.Unlock()
			return protocolViolation("MAX_REQUEST_ID %d does not increase %d", m.RequestID, s.peerMaxReqID)
		}
		s.peerMaxReqID = m.RequestID
		close(s.reqIDChanged)
		s.reqIDChanged = make(chan struct{})
		s.mu.Unlock()
	case *wire.RequestsBlocked:
		s.log.Debug("peer is blocked on request IDs", "max", m.MaximumRequestID)
	case *wire.Subscribe:
		return s.onSubscribe(m)
	case *wire.SubscribeOK:
		return s.reply(m.RequestID, m)
	case *wire.SubscribeError:
		return s.reply(m.RequestID, m)
	case *wire.SubscribeUpdate:
		return s.onSubscribeUpdate(m)
	case *wire.Unsubscribe:
		s.onUnsubscribe(m)
	case *wire.PublishDone:
		s.onPublishDone(m)
	case *wire.Publish:
		return s.onPublish(m)
	case *wire.PublishOK:
		return s.reply(m.RequestID, m)
	case *wire.PublishError:
		return s.reply(m.RequestID, m)
	case *wire.Fetch:
		return s.onFetch(m)
	case *wire.FetchOK:
		return s.reply(m.RequestID, m)
	case *wire.FetchError:
		return s.reply(m.RequestID, m)
	case *wire.FetchCancel:
		s.onFetchCancel(m)
	case *wire.TrackStatus:
		return s.onTrackStatus(m)
	case *wire.TrackStatusOK:
		return s.reply(m.RequestID, m)
	case *wire.TrackStatusError:
		return s.reply(m.RequestID, m)
	case *wire.PublishNamespace:
		return s.onPublishNamespace(m)
	case *wire.PublishNamespaceOK:
		return s.reply(m.RequestID, m)
	case *wire.PublishNamespaceError:
		return s.reply(m.RequestID, m)
	case *wire.PublishNamespaceDone:
		s.onPublishNamespaceDone(m)
	case *wire.PublishNamespaceCancel:
		s.onPublishNamespaceCancel(m)
	case *wire.SubscribeNamespace:
		if s.codec.Features().NamespaceStreams {
			return protocolViolation("SUBSCRIBE_NAMESPACE on the control stream")
		}
		return s.onSubscribeNamespace(m, nil)
	case *wire.SubscribeUpdateOK:
		s.onUpdateReply(m.RequestID, nil)
	case *wire.SubscribeUpdateError:
		s.onUpdateReply(m.RequestID, &RequestError{Code: m.ErrorCode, Reason: m.Reason})
	case *wire.SubscribeNamespaceOK:
		return s.reply(m.RequestID, m)
	case *wire.SubscribeNamespaceError:
		return s.reply(m.RequestID, m)
	case *wire.UnsubscribeNamespace:
		s.onUnsubscribeNamespace(m)
	default:
		return protocolViolation("unexpected message %T", m)
	}
	return nil
}

// refusal converts a handler error to a code and reason for *_ERROR.
func refusal(err error, notFound uint64) (uint64, string) {
	var re *RequestError
	if errors.As(err, &re) {
		return re.Code, re.Reason
	}
	if errors.Is(err, ErrNotFound) {
		return notFound, "not found"
	}
	return 0, "internal error" // every *_ERROR registry has INTERNAL_ERROR = 0
}

// ErrNotFound is returned by handlers for an unknown track or namespace;
// errors.Is also matches it to a does-not-exist RequestError, whether this
// relay or a remote peer refused.
var ErrNotFound = errors.New("moq: not found")

// ErrNotSupported matches a peer's NOT_SUPPORTED refusal of a request.
var ErrNotSupported = errors.New("moq: not supported")

// ErrTimeout matches a TIMEOUT refusal: not yet, ask again shortly (e.g.
// a derived rendition still starting).
var ErrTimeout = errors.New("moq: timeout")

// EncodeAuthToken encodes a token value as an AUTHORIZATION TOKEN
// parameter value (Alias Type USE_VALUE, Token Type 0).
func EncodeAuthToken(token string) []byte {
	b := wire.AppendVarint(nil, 0x3) // USE_VALUE
	b = wire.AppendVarint(b, 0)      // token type: unspecified
	return append(b, token...)
}

// DecodeAuthToken returns the token value of an AUTHORIZATION TOKEN
// parameter that uses USE_VALUE (aliases are not supported).
func DecodeAuthToken(b []byte) (string, error) {
	aliasType, n, err := wire.ParseVarint(b)
	if err != nil {
		return "", fmt.Errorf("malformed token: %w", err)
	}
	b = b[n:]
	if aliasType != 0x3 {
		return "", fmt.Errorf("token alias type %d not supported", aliasType)
	}
	_, n, err = wire.ParseVarint(b)
	if err != nil {
		return "", fmt.Errorf("malformed token type: %w", err)
	}
	return string(b[n:]), nil
}
