package moq

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"
)

// Conn is the transport a Session runs on: a raw QUIC connection, a
// WebTransport session, or an in-process pipe. Only what MoQ needs.
type Conn interface {
	OpenStreamSync(ctx context.Context) (Stream, error)
	AcceptStream(ctx context.Context) (Stream, error)
	OpenUniStreamSync(ctx context.Context) (SendStream, error)
	AcceptUniStream(ctx context.Context) (ReceiveStream, error)
	SendDatagram(b []byte) error
	ReceiveDatagram(ctx context.Context) ([]byte, error)
	CloseWithError(code uint64, reason string) error
	// Context is done when the connection is closed.
	Context() context.Context
	RemoteAddr() net.Addr
	// Protocol names the transport for logs and metrics ("quic", "webtransport", "local").
	Protocol() string
}

// SendStream is the sending half of a stream.
type SendStream interface {
	io.Writer
	Close() error
	CancelWrite(code uint64)
	// SetPriority sets the send urgency (0 = most urgent, 7 = least). A
	// transport without priorities ignores it.
	SetPriority(urgency int)
}

// ReceiveStream is the receiving half of a stream.
type ReceiveStream interface {
	io.Reader
	CancelRead(code uint64)
}

// Stream is a bidirectional stream.
type Stream interface {
	SendStream
	ReceiveStream
}

// ApplicationProtocol returns the protocol negotiated for c: the TLS ALPN of
// a raw QUIC connection, the WebTransport protocol of a WebTransport
// session ("" if none was selected), "" for other transports. It names the
// MoQ Transport version (see wire.CodecForProtocol).
func ApplicationProtocol(c Conn) string {
	if p, ok := c.(interface{ ApplicationProtocol() string }); ok {
		return p.ApplicationProtocol()
	}
	return ""
}

// ---- raw QUIC ----

type quicConn struct{ c *quic.Conn }

// NewQUICConn wraps a quic-go connection (ALPN moq-00 or moqt-16).
func NewQUICConn(c *quic.Conn) Conn { return quicConn{c} }

func (q quicConn) OpenStreamSync(ctx context.Context) (Stream, error) {
	s, err := q.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{s}, nil
}

func (q quicConn) AcceptStream(ctx context.Context) (Stream, error) {
	s, err := q.c.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{s}, nil
}

func (q quicConn) OpenUniStreamSync(ctx context.Context) (SendStream, error) {
	s, err := q.c.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return quicSend{s}, nil
}

func (q quicConn) AcceptUniStream(ctx context.Context) (ReceiveStream, error) {
	s, err := q.c.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return quicRecv{s}, nil
}

func (q quicConn) SendDatagram(b []byte) error { return q.c.SendDatagram(b) }
func (q quicConn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return q.c.ReceiveDatagram(ctx)
}
func (q quicConn) CloseWithError(code uint64, reason string) error {
	return q.c.CloseWithError(quic.ApplicationErrorCode(code), reason)
}
func (q quicConn) Context() context.Context { return q.c.Context() }
func (q quicConn) RemoteAddr() net.Addr     { return q.c.RemoteAddr() }
func (q quicConn) Protocol() string         { return "quic" }
func (q quicConn) ApplicationProtocol() string {
	return q.c.ConnectionState().TLS.NegotiatedProtocol
}

type quicStream struct{ s *quic.Stream }

func (q quicStream) Write(b []byte) (int, error) { return q.s.Write(b) }
func (q quicStream) Read(b []byte) (int, error)  { return q.s.Read(b) }
func (q quicStream) Close() error                { return q.s.Close() }
func (q quicStream) CancelWrite(code uint64)     { q.s.CancelWrite(quic.StreamErrorCode(code)) }
func (q quicStream) CancelRead(code uint64)      { q.s.CancelRead(quic.StreamErrorCode(code)) }
func (q quicStream) SetPriority(u int)           { q.s.SetPriority(int8(u), false) }

type quicSend struct{ s *quic.SendStream }

func (q quicSend) Write(b []byte) (int, error) { return q.s.Write(b) }
func (q quicSend) Close() error                { return q.s.Close() }
func (q quicSend) CancelWrite(code uint64)     { q.s.CancelWrite(quic.StreamErrorCode(code)) }

// Non-incremental: within one urgency the stream opened first (the older
// group) is sent first, which is ascending group order.
func (q quicSend) SetPriority(u int) { q.s.SetPriority(int8(u), false) }

type quicRecv struct{ s *quic.ReceiveStream }

func (q quicRecv) Read(b []byte) (int, error) { return q.s.Read(b) }
func (q quicRecv) CancelRead(code uint64)     { q.s.CancelRead(quic.StreamErrorCode(code)) }

// ---- WebTransport ----

type wtConn struct{ s *webtransport.Session }

// NewWebTransportConn wraps a WebTransport session.
func NewWebTransportConn(s *webtransport.Session) Conn { return wtConn{s} }

func (w wtConn) OpenStreamSync(ctx context.Context) (Stream, error) {
	s, err := w.s.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return wtStream{s}, nil
}

func (w wtConn) AcceptStream(ctx context.Context) (Stream, error) {
	s, err := w.s.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return wtStream{s}, nil
}

func (w wtConn) OpenUniStreamSync(ctx context.Context) (SendStream, error) {
	s, err := w.s.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return wtSend{s}, nil
}

func (w wtConn) AcceptUniStream(ctx context.Context) (ReceiveStream, error) {
	s, err := w.s.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return wtRecv{s}, nil
}

func (w wtConn) SendDatagram(b []byte) error { return w.s.SendDatagram(b) }
func (w wtConn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return w.s.ReceiveDatagram(ctx)
}

// WebTransport session error codes are 32-bit.
func (w wtConn) CloseWithError(code uint64, reason string) error {
	return w.s.CloseWithError(webtransport.SessionErrorCode(code), reason)
}
func (w wtConn) Context() context.Context { return w.s.Context() }
func (w wtConn) RemoteAddr() net.Addr     { return w.s.RemoteAddr() }
func (w wtConn) Protocol() string         { return "webtransport" }
func (w wtConn) ApplicationProtocol() string {
	return w.s.SessionState().ApplicationProtocol
}

type wtStream struct{ s *webtransport.Stream }

func (w wtStream) Write(b []byte) (int, error) { return w.s.Write(b) }
func (w wtStream) Read(b []byte) (int, error)  { return w.s.Read(b) }
func (w wtStream) Close() error                { return w.s.Close() }
func (w wtStream) CancelWrite(code uint64)     { w.s.CancelWrite(webtransport.StreamErrorCode(code)) }
func (w wtStream) CancelRead(code uint64)      { w.s.CancelRead(webtransport.StreamErrorCode(code)) }
func (w wtStream) SetPriority(int)             {}

type wtSend struct{ s *webtransport.SendStream }

func (w wtSend) Write(b []byte) (int, error) { return w.s.Write(b) }
func (w wtSend) Close() error                { return w.s.Close() }
func (w wtSend) CancelWrite(code uint64)     { w.s.CancelWrite(webtransport.StreamErrorCode(code)) }
func (w wtSend) SetPriority(int)             {}

type wtRecv struct{ s *webtransport.ReceiveStream }

func (w wtRecv) Read(b []byte) (int, error) { return w.s.Read(b) }
func (w wtRecv) CancelRead(code uint64)     { w.s.CancelRead(webtransport.StreamErrorCode(code)) }

// ConnClosedError is what a Conn that is not QUIC (the in-process test
// pipe) returns once it is closed: the session records the peer's code and reason from it.
type ConnClosedError struct {
	Code   uint64
	Reason string
	Remote bool
}

func (e *ConnClosedError) Error() string {
	return fmt.Sprintf("connection closed (code %#x): %s", e.Code, e.Reason)
}
