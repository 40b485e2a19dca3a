// Package rtmp is moqgate's RTMP and Enhanced RTMP ingest server.
//
// A publisher (OBS, ffmpeg, a hardware encoder...) connects and publishes
// rtmp://host:1935/<app>/<stream key>; the broadcast path is
// "<app>/<stream key>" (e.g. "live/test"), any "?query" going to
// PublishRequest.Query. Config.OnPublish decides whether the publish is
// allowed and returns the media.BroadcastWriter to feed. Play requests are
// refused: this server only ingests.
//
// Built on github.com/bluenviron/gortmplib: its handshake, chunk stream
// reader (rawmessage), message writer and AMF0 codec are used as they are.
// moqgate adds the session layer (connect / createStream / publish), a
// guard that bounds what the chunk reader may buffer, and its own parsing of
// FLV audio/video tag bodies (legacy and Enhanced RTMP), so that an
// unsupported codec leaves that track out instead of killing the connection.
//
// Codecs: H.264, H.265 (Enhanced RTMP, or the pre-standard legacy codec id
// 12), AV1, VP9 and VP8 video; AAC, Opus and MP3 audio. Others (FLAC, AC-3,
// G.711, Speex, VP6...) leave their track out; a publish with no supported
// track is refused. Tracks are named "video" and "audio"; the timescale of
// DTS and CTO is 1000 (RTMP timestamps are milliseconds). H.264/H.265 frames
// are 4-byte length-prefixed NAL units without parameter sets or AUDs (those
// go to TrackInfo), AV1 frames are OBUs without temporal delimiters, audio
// frames are raw. In multitrack streams only track 0 of each kind is
// ingested.
//
// SetTracks is called once the sequence headers of the expected tracks are
// known (from onMetaData, else after at most 1 s of media), and again when a
// track is added later or its parameters change (new sequence header,
// in-band SPS/PPS/VPS or AV1 sequence header, VP8/VP9 resolution change).
// Slices in a TrackInfo passed to SetTracks are never modified afterwards.
package rtmp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/moqgate/moqgate/internal/limit"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// Defaults for zero Config fields.
const (
	DefaultAddr             = ":1935"
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultReadTimeout      = 30 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxMessageSize   = 8 << 20
	// DefaultMaxPrePublishBuffer bounds what a connection may have
	// buffered before its publish is accepted: commands only.
	DefaultMaxPrePublishBuffer = 256 << 10
	// MaxMessageSizeLimit is the largest MaxMessageSize accepted: the fixed
	// per-message bound of gortmplib's chunk reader.
	MaxMessageSizeLimit = libMaxBodySize
)

// Config configures a Server.
type Config struct {
	// Addr is the TCP address ListenAndServe listens on (default ":1935").
	Addr string
	// TLSConfig, when set, makes ListenAndServe serve RTMPS (RTMP over
	// TLS). Serve serves whatever listener it is given (e.g. tls.NewListener).
	TLSConfig *tls.Config
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
	// OnPublish is called when a publisher starts publishing a path. It
	// returns the BroadcastWriter to feed, or an error to refuse the
	// publish: the publisher then gets an onStatus error whose description
	// is the error text, and the connection is closed. ctx ends with the
	// connection. Required.
	//
	// The writer's methods are called from the connection's goroutine only;
	// Close is called exactly once, when the publisher goes away (also if
	// SetTracks was never called). Frame.Data is not used by the server
	// after WriteFrame returns: the writer may keep it.
	OnPublish func(ctx context.Context, req PublishRequest) (media.BroadcastWriter, error)
	// HandshakeTimeout bounds the time from TCP accept to an accepted
	// publish (default 10 s).
	HandshakeTimeout time.Duration
	// ReadTimeout bounds the silence of a publisher: each read from the
	// socket must complete within it (default 30 s).
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the socket (default 10 s).
	WriteTimeout time.Duration
	// MaxMessageSize bounds any RTMP message (a video frame is one message)
	// buffered by the server (default 8 MiB, at most MaxMessageSizeLimit).
	// Per connection, at most 2×MaxMessageSize bytes of partially received
	// messages and, until the tracks are known, 2×MaxMessageSize bytes of
	// frames are held; what is buffered grows only with the bytes the peer
	// actually sent.
	MaxMessageSize int
	// MaxPrePublishBuffer bounds the bytes of partially received messages
	// before the publish is accepted (and so before auth): default
	// DefaultMaxPrePublishBuffer; then 2×MaxMessageSize applies.
	MaxPrePublishBuffer int
	// Handshakes, if set, counts the connections not yet publishing (TCP
	// accepted, publish not yet accepted), in total and per IP; a
	// newcomer over its limits is closed at once.
	Handshakes *limit.Gate
	// OnRefuse, if set, is told of each connection Handshakes refused.
	OnRefuse func(remote net.Addr, err error)
}

// PublishRequest describes a publish.
type PublishRequest struct {
	// Path is the broadcast path: the app and the stream name joined by
	// "/", e.g. "live/test" for rtmp://host/live/test.
	Path string
	// Query holds the parameters of a "?query" on the app or stream name
	// (e.g. rtmp://host/live/test?key=secret).
	Query url.Values
	// RemoteAddr is the publisher's address.
	RemoteAddr net.Addr
}

// Server is an RTMP ingest server.
type Server struct {
	cfg Config
	log *slog.Logger
}

// NewServer checks cfg, fills in defaults and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.OnPublish == nil {
		return nil, errors.New("rtmp: Config.OnPublish is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxPrePublishBuffer <= 0 {
		cfg.MaxPrePublishBuffer = DefaultMaxPrePublishBuffer
	}
	switch {
	case cfg.MaxMessageSize == 0:
		cfg.MaxMessageSize = DefaultMaxMessageSize
	case cfg.MaxMessageSize < 64<<10 || cfg.MaxMessageSize > MaxMessageSizeLimit:
		return nil, fmt.Errorf("rtmp: MaxMessageSize %d out of range [%d, %d]",
			cfg.MaxMessageSize, 64<<10, MaxMessageSizeLimit)
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "rtmp")}, nil
}

// ListenAndServe listens on Config.Addr and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("rtmp: %w", err)
	}
	if s.cfg.TLSConfig != nil {
		ln = tls.NewListener(ln, s.cfg.TLSConfig)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts RTMP connections on ln until ctx is done; it then closes ln
// and every connection, waits for their goroutines (so every
// BroadcastWriter has been closed) and returns nil. It returns an error if
// ln fails otherwise.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	s.log.Info("listening", "addr", ln.Addr().String())
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("rtmp: accept: %w", err)
			}
			// e.g. too many open files: back off, like net/http
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		release, ok := s.admit(nc)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release()
			s.serveConn(ctx, nc, release)
		}()
	}
}

// Errors ending a connection on purpose (they are logged, not returned).
var (
	errPlayRefused    = errors.New("play refused: this server only accepts publishing (ingest)")
	errPublishRefused = errors.New("publish refused")
)

// admit counts a new connection against Handshakes, or closes it.
func (s *Server) admit(nc net.Conn) (release func(), ok bool) {
	if s.cfg.Handshakes == nil {
		return func() {}, true
	}
	release, err := s.cfg.Handshakes.Admit(nc.RemoteAddr().String())
	if err != nil {
		nc.Close()
		if s.cfg.OnRefuse != nil {
			s.cfg.OnRefuse(nc.RemoteAddr(), err)
		}
		return nil, false
	}
	return release, true
}

// serveConn serves one connection; published is called when its publish
// is accepted (it no longer counts as in handshake).
func (s *Server) serveConn(ctx context.Context, nc net.Conn, published func()) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()

	sess := &session{
		srv: s,
		nc:  &deadlineConn{Conn: nc},
		log: s.log.With("remote", nc.RemoteAddr().String()),

		published: published,
	}
	err := sess.run(ctx)
	sess.end(err, ctx.Err() != nil)
}

// deadlineConn sets a fresh deadline before each read / write when the
// timeouts are set.
type deadlineConn struct {
	net.Conn
	readTimeout, writeTimeout time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.readTimeout > 0 {
		if err := c.SetReadDeadline(time.Now().Add(c.readTimeout)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		if err := c.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}

// session is one RTMP connection.
type session struct {
	srv *Server
	nc  *deadlineConn
	log *slog.Logger

	r *rawmessage.Reader
	w *message.Writer

	connected bool
	app       string
	tcURL     string
	fourCCs   bool // the client announced Enhanced RTMP FourCCs

	path string
	bw   media.BroadcastWriter
	dem  *demuxer
	done bool // the publisher ended the stream (deleteStream)

	guard     *chunkGuard
	published func()
}

func (s *session) run(ctx context.Context) error {
	cfg := &s.srv.cfg
	if err := s.nc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout)); err != nil {
		return err
	}
	bc := bytecounter.NewReadWriter(s.nc)
	if err := s.handshake(bc); err != nil {
		return err
	}
	s.guard = newChunkGuard(bc.Reader, uint32(cfg.MaxMessageSize))
	s.guard.maxPartial = min(s.guard.maxPartial, int64(cfg.MaxPrePublishBuffer))
	s.w = message.NewWriter(bc.Writer, bc.Writer, false)
	s.r = rawmessage.NewReader(s.guard, bc.Reader, func(count uint32) error {
		return s.w.Write(&message.Acknowledge{Value: count})
	})

	for !s.done {
		raw, err := s.r.Read()
		if err != nil {
			if errors.Is(err, errGuard) {
				return err
			}
			return fmt.Errorf("read: %w", err)
		}
		if err := s.handle(ctx, raw); err != nil {
			return err
		}
	}
	return nil
}

// handshake performs the RTMP handshake (gortmplib), refusing RTMPE and
// non-RTMP clients with a clear error.
func (s *session) handshake(bc *bytecounter.ReadWriter) error {
	var c0 [1]byte
	if _, err := io.ReadFull(bc, c0[:]); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	switch v := c0[0]; {
	case v == 3:
	case v == 6:
		return errors.New("handshake: RTMPE (encrypted RTMP) is not supported; use rtmp:// or rtmps://")
	case v >= 'A' && v <= 'Z':
		return fmt.Errorf("handshake: not an RTMP client (first byte %q: an HTTP request?)", v)
	case v == 0x16:
		return errors.New("handshake: not an RTMP client (a TLS handshake: rtmps:// to a plain rtmp:// port?)")
	default:
		return fmt.Errorf("handshake: not an RTMP client (version byte 0x%02x)", v)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{io.MultiReader(bytes.NewReader(c0[:]), bc), bc}
	if _, _, err := handshake.DoServer(rw, false); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	return nil
}

func (s *session) handle(ctx context.Context, raw *rawmessage.Message) error {
	switch message.Type(raw.Type) {
	case message.TypeSetChunkSize:
		v, err := ctrlValue(raw)
		if err == nil {
			err = validChunkSize(v)
		}
		if err != nil {
			return fmt.Errorf("set chunk size: %w", err)
		}
		return s.r.SetChunkSize(v)

	case message.TypeAbortMessage:
		v, err := ctrlValue(raw)
		if err != nil {
			return fmt.Errorf("abort message: %w", err)
		}
		s.r.AbortChunkStream(v)

	case message.TypeSetWindowAckSize:
		if v, err := ctrlValue(raw); err == nil {
			s.r.SetWindowAckSize(v)
		}

	case message.TypeUserControl:
		b := raw.Body
		if len(b) == 6 && b[0] == 0 && b[1] == byte(message.UserControlTypePingRequest) {
			return s.w.Write(&message.UserControlPingResponse{ServerTime: u32(b[2:])})
		}

	case message.TypeCommandAMF0:
		return s.handleCommand(ctx, raw.Body)

	case message.TypeCommandAMF3:
		if len(raw.Body) > 0 && raw.Body[0] == 0 { // AMF0 inside an AMF3 command
			return s.handleCommand(ctx, raw.Body[1:])
		}

	case message.TypeDataAMF0:
		return s.handleData(raw.Body)

	case message.TypeDataAMF3:
		if len(raw.Body) > 0 && raw.Body[0] == 0 {
			return s.handleData(raw.Body[1:])
		}

	case message.TypeAudio:
		if s.dem != nil {
			return s.dem.handleAudio(uint32(raw.Timestamp/time.Millisecond), raw.Body)
		}

	case message.TypeVideo:
		if s.dem != nil {
			return s.dem.handleVideo(uint32(raw.Timestamp/time.Millisecond), raw.Body)
		}
	}
	return nil
}

func ctrlValue(raw *rawmessage.Message) (uint32, error) {
	if len(raw.Body) != 4 {
		return 0, fmt.Errorf("%d bytes, want 4", len(raw.Body))
	}
	return u32(raw.Body), nil
}

func amfObject(v any) (amf0.Object, bool) {
	switch o := v.(type) {
	case amf0.Object:
		return o, true
	case amf0.ECMAArray:
		return amf0.Object(o), true
	}
	return nil, false
}

// supportedFourCCs is what the server answers to a client that announces
// Enhanced RTMP support in connect.
func supportedFourCCs() amf0.StrictArray {
	var out amf0.StrictArray
	for _, v := range []uint32{fourCCAVC, fourCCHEVC, fourCCAV1, fourCCVP9, fourCCVP8, fourCCAAC, fourCCOpus, fourCCMP3} {
		out = append(out, fourCCString(v))
	}
	return out
}

func (s *session) handleCommand(ctx context.Context, body []byte) error {
	data, err := amf0.Unmarshal(body)
	if err != nil {
		return fmt.Errorf("malformed command: %w", err)
	}
	if len(data) < 2 {
		return errors.New("malformed command: fewer than 2 values")
	}
	name, ok := data[0].(string)
	if !ok {
		return errors.New("malformed command: no name")
	}
	txID, _ := data[1].(float64)
	args := data[2:]
	arg := func(i int) any {
		if i < len(args) {
			return args[i]
		}
		return nil
	}

	switch name {
	case "connect":
		if s.connected {
			return errors.New("second connect on one connection")
		}
		obj, ok := amfObject(arg(0))
		if !ok {
			return errors.New("malformed connect command: no command object")
		}
		s.app, _ = obj.GetString("app")
		s.tcURL, _ = obj.GetString("tcUrl")
		if s.tcURL == "" {
			s.tcURL, _ = obj.GetString("tcurl")
		}
		_, s.fourCCs = obj.Get("fourCcList")
		s.connected = true
		return s.acceptConnect(txID)

	case "createStream":
		return s.w.Write(&message.CommandAMF0{
			ChunkStreamID: 3,
			Name:          "_result",
			CommandID:     int(txID),
			Arguments:     []any{nil, float64(1)},
		})

	case "publish":
		streamName, _ := arg(1).(string)
		return s.publish(ctx, streamName)

	case "play", "play2":
		s.log.Warn("refusing play request: ingest only", "stream", fmt.Sprint(arg(1)))
		_ = s.sendStatus("error", "NetStream.Play.Failed", "this server only accepts publishing (ingest)")
		return errPlayRefused

	case "deleteStream", "closeStream":
		if s.dem != nil {
			s.done = true
		}
	}
	// releaseStream, FCPublish, FCUnpublish, _checkbw, ...: nothing to do
	return nil
}

func (s *session) acceptConnect(txID float64) error {
	for _, m := range []message.Message{
		&message.SetWindowAckSize{Value: 2500000},
		&message.SetPeerBandwidth{Value: 2500000, Type: 2},
		&message.SetChunkSize{Value: 65536},
	} {
		if err := s.w.Write(m); err != nil {
			return err
		}
	}
	props := amf0.Object{
		{Key: "fmsVer", Value: "FMS/3,0,1,123"},
		{Key: "capabilities", Value: float64(31)},
	}
	if s.fourCCs {
		props = append(props, amf0.ObjectEntry{Key: "fourCcList", Value: supportedFourCCs()})
	}
	return s.w.Write(&message.CommandAMF0{
		ChunkStreamID: 3,
		Name:          "_result",
		CommandID:     int(txID),
		Arguments: []any{
			props,
			amf0.Object{
				{Key: "level", Value: "status"},
				{Key: "code", Value: "NetConnection.Connect.Success"},
				{Key: "description", Value: "Connection succeeded."},
				{Key: "objectEncoding", Value: float64(0)},
			},
		},
	})
}

// sendStatus sends an onStatus command on the publish / play stream.
func (s *session) sendStatus(level, code, desc string) error {
	return s.w.Write(&message.CommandAMF0{
		ChunkStreamID:   5,
		MessageStreamID: 0x1000000, // stream 1 (gortmplib writes this field big-endian)
		Name:            "onStatus",
		CommandID:       0,
		Arguments: []any{
			nil,
			amf0.Object{
				{Key: "level", Value: level},
				{Key: "code", Value: code},
				{Key: "description", Value: desc},
			},
		},
	})
}

func (s *session) publish(ctx context.Context, streamName string) error {
	if !s.connected {
		return errors.New("publish before connect")
	}
	if s.bw != nil {
		return errors.New("second publish on one connection")
	}
	app := s.app
	if app == "" {
		if u, err := url.Parse(s.tcURL); err == nil {
			app = u.Path
			if u.RawQuery != "" {
				app += "?" + u.RawQuery
			}
		}
	}
	path, query, err := publishTarget(app, streamName)
	if err != nil {
		s.log.Warn("refusing publish: invalid path", "app", app, "stream", streamName, "error", err)
		_ = s.sendStatus("error", "NetStream.Publish.BadName", err.Error())
		return fmt.Errorf("%w: %w", errPublishRefused, err)
	}
	log := s.log.With("path", path)
	bw, err := s.srv.cfg.OnPublish(ctx, PublishRequest{Path: path, Query: query, RemoteAddr: s.nc.RemoteAddr()})
	if err != nil {
		desc := err.Error()
		if len(desc) > 256 {
			desc = desc[:256]
		}
		_ = s.sendStatus("error", "NetStream.Publish.Denied", desc)
		s.log = log
		return fmt.Errorf("%w: %w", errPublishRefused, err)
	}
	s.path, s.bw, s.log = path, bw, log
	s.dem = newDemuxer(log, bw, 2*s.srv.cfg.MaxMessageSize)
	// Accepted (and authorized): media may be buffered now, and the
	// connection no longer counts as in handshake.
	if s.guard != nil {
		s.guard.maxPartial = 2 * int64(s.srv.cfg.MaxMessageSize)
	}
	if s.published != nil {
		s.published()
	}

	// From now on: per-operation timeouts instead of the handshake deadline.
	if err := s.nc.SetDeadline(time.Time{}); err != nil {
		return err
	}
	s.nc.readTimeout, s.nc.writeTimeout = s.srv.cfg.ReadTimeout, s.srv.cfg.WriteTimeout
	if err := s.w.Write(&message.UserControlStreamBegin{StreamID: 1}); err != nil {
		return err
	}
	if err := s.sendStatus("status", "NetStream.Publish.Start", "publishing "+path); err != nil {
		return err
	}
	log.Info("publish started")
	return nil
}

// handleData handles an AMF data message: onMetaData (possibly wrapped in
// @setDataFrame).
func (s *session) handleData(body []byte) error {
	if s.dem == nil {
		return nil
	}
	data, err := amf0.Unmarshal(body)
	if err != nil {
		// metadata is optional: a broken one is not worth the connection
		s.dem.once("badmeta", "ignoring malformed data message", "error", err)
		return nil
	}
	if len(data) > 0 && data[0] == "@setDataFrame" {
		data = data[1:]
	}
	if len(data) >= 2 && data[0] == "onMetaData" {
		if obj, ok := amfObject(data[1]); ok {
			s.dem.handleMetadata(obj)
		}
	}
	return nil
}

// end logs how the connection ended and closes the BroadcastWriter.
func (s *session) end(err error, shutdown bool) {
	if s.bw != nil && !errors.Is(err, errBroadcastWriter) {
		if ferr := s.dem.finish(); ferr != nil && err == nil {
			err = ferr
		}
	}
	switch {
	case errors.Is(err, errPlayRefused):
		s.log.Warn("connection closed: " + err.Error())
	case errors.Is(err, errPublishRefused):
		s.log.Warn("connection closed: "+errPublishRefused.Error(), "error", err)
	case errors.Is(err, errNoSupportedTracks):
		s.log.Warn("connection closed: publish refused", "error", err)
	case shutdown:
		s.log.Info("connection closed: server shutting down")
	case err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		if s.bw != nil {
			s.log.Info("publisher disconnected")
		} else {
			// e.g. a TCP health check
			s.log.Debug("connection closed before publishing", "error", err)
		}
	default:
		s.log.Warn("connection closed", "error", err)
	}
	if s.bw != nil {
		if s.dem != nil {
			var attrs []any
			for _, ks := range s.dem.kinds {
				if ks.frames > 0 || ks.dropped > 0 {
					attrs = append(attrs, ks.name+"_frames", ks.frames, ks.name+"_dropped", ks.dropped)
				}
			}
			s.log.Info("publish ended", attrs...)
		}
		if cerr := s.bw.Close(); cerr != nil {
			s.log.Warn("broadcast writer close", "error", cerr)
		}
	}
}

// publishTarget builds the broadcast path and query from the connect app and
// the publish stream name; either may carry a "?query".
func publishTarget(app, streamName string) (string, url.Values, error) {
	appPath, appQuery, _ := strings.Cut(app, "?")
	namePath, nameQuery, _ := strings.Cut(streamName, "?")
	path := strings.Trim(appPath, "/")
	if p := strings.Trim(namePath, "/"); p != "" {
		if path != "" {
			path += "/"
		}
		path += p
	}
	if err := moq.CheckPath(path); err != nil {
		return "", nil, err
	}
	query := url.Values{}
	for _, q := range []string{appQuery, nameQuery} {
		// lenient: keep what parses (stream keys are not always escaped)
		v, _ := url.ParseQuery(q)
		for k, vs := range v {
			query[k] = append(query[k], vs...)
		}
	}
	return path, query, nil
}
