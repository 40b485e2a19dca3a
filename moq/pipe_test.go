package moq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// Pipe returns two connected in-process Conns: tests run a normal Session
// over it to check the wire paths without QUIC (in-process adapters use the
// relay's handles instead: Relay.Local).
func Pipe() (Conn, Conn) { return PipeNamed("local") }

// PipeNamed is Pipe with a transport name for logs and metrics (e.g.
// "rtmp", "hls", "whep": the protocol the in-process adapter serves).
func PipeNamed(proto string) (Conn, Conn) {
	ctx := context.Background()
	a := newPipeConn(ctx, proto+"-client")
	b := newPipeConn(ctx, proto+"-relay")
	a.proto, b.proto = proto, proto
	a.peer, b.peer = b, a
	return a, b
}

// pipeBufferSize bounds the bytes in flight per stream direction, standing
// in for QUIC flow control.
const pipeBufferSize = 1 << 20

type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

type pipeConn struct {
	name   string
	proto  string
	peer   *pipeConn
	ctx    context.Context
	cancel context.CancelCauseFunc
	bidi   chan *pipeStream
	uni    chan *pipeStream
	dgrams chan []byte
	once   sync.Once
}

func newPipeConn(parent context.Context, name string) *pipeConn {
	ctx, cancel := context.WithCancelCause(parent)
	return &pipeConn{
		name:   name,
		ctx:    ctx,
		cancel: cancel,
		bidi:   make(chan *pipeStream, 16),
		uni:    make(chan *pipeStream, 256),
		dgrams: make(chan []byte, 64),
	}
}

func (c *pipeConn) err() error {
	if err := context.Cause(c.ctx); err != nil {
		return err
	}
	return net.ErrClosed
}

func (c *pipeConn) open(ctx context.Context, bidi bool) (*pipeStream, error) {
	// Local side writes into out, reads from in.
	out := newPipeBuf(c, c.peer)
	var in *pipeBuf
	if bidi {
		in = newPipeBuf(c.peer, c)
	}
	local := &pipeStream{out: out, in: in}
	remote := &pipeStream{out: in, in: out}
	ch := c.peer.uni
	if bidi {
		ch = c.peer.bidi
	}
	select {
	case ch <- remote:
		return local, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, c.err()
	case <-c.peer.ctx.Done():
		return nil, c.peer.err()
	}
}

func (c *pipeConn) OpenStreamSync(ctx context.Context) (Stream, error) {
	s, err := c.open(ctx, true)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c *pipeConn) OpenUniStreamSync(ctx context.Context) (SendStream, error) {
	s, err := c.open(ctx, false)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c *pipeConn) AcceptStream(ctx context.Context) (Stream, error) {
	select {
	case s := <-c.bidi:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, c.err()
	}
}

func (c *pipeConn) AcceptUniStream(ctx context.Context) (ReceiveStream, error) {
	select {
	case s := <-c.uni:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, c.err()
	}
}

// SendDatagram drops the datagram when the peer is not keeping up, like a
// network would.
func (c *pipeConn) SendDatagram(b []byte) error {
	if c.ctx.Err() != nil {
		return c.err()
	}
	select {
	case c.peer.dgrams <- append([]byte(nil), b...):
	default:
	}
	return nil
}

func (c *pipeConn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case b := <-c.dgrams:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, c.err()
	}
}

func (c *pipeConn) CloseWithError(code uint64, reason string) error {
	// The two Do calls must not nest: when both ends close at once, each
	// would hold its own once while waiting for the other's (a deadlock).
	c.once.Do(func() {
		c.cancel(&ConnClosedError{Code: code, Reason: reason})
	})
	c.peer.once.Do(func() {
		c.peer.cancel(&ConnClosedError{Code: code, Reason: reason, Remote: true})
	})
	return nil
}

func (c *pipeConn) Context() context.Context { return c.ctx }
func (c *pipeConn) RemoteAddr() net.Addr     { return pipeAddr(c.peer.name) }
func (c *pipeConn) Protocol() string         { return c.proto }

// pipeBuf is one direction of a stream: a bounded byte queue.
type pipeBuf struct {
	writer, reader *pipeConn
	mu             sync.Mutex
	changed        chan struct{}
	buf            []byte
	fin            bool
	resetCode      *uint64 // writer reset
	stopCode       *uint64 // reader cancelled
}

func newPipeBuf(writer, reader *pipeConn) *pipeBuf {
	return &pipeBuf{writer: writer, reader: reader, changed: make(chan struct{})}
}

func (p *pipeBuf) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *pipeBuf) write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		p.mu.Lock()
		switch {
		case p.stopCode != nil:
			code := *p.stopCode
			p.mu.Unlock()
			return n, &StreamResetError{Code: code}
		case p.resetCode != nil || p.fin:
			p.mu.Unlock()
			return n, errors.New("write on closed stream")
		}
		room := pipeBufferSize - len(p.buf)
		if room > 0 {
			k := min(room, len(b))
			p.buf = append(p.buf, b[:k]...)
			b = b[k:]
			n += k
			p.signal()
			p.mu.Unlock()
			continue
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.writer.ctx.Done():
			return n, p.writer.err()
		case <-p.reader.ctx.Done():
			return n, p.reader.err()
		}
	}
	return n, nil
}

func (p *pipeBuf) read(b []byte) (int, error) {
	for {
		p.mu.Lock()
		if p.resetCode != nil {
			code := *p.resetCode
			p.mu.Unlock()
			return 0, &StreamResetError{Code: code}
		}
		if p.stopCode != nil {
			p.mu.Unlock()
			return 0, errors.New("read on cancelled stream")
		}
		if len(p.buf) > 0 {
			n := copy(b, p.buf)
			p.buf = p.buf[n:]
			if len(p.buf) == 0 {
				p.buf = nil // let the backing array go
			}
			p.signal()
			p.mu.Unlock()
			return n, nil
		}
		if p.fin {
			p.mu.Unlock()
			return 0, io.EOF
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.reader.ctx.Done():
			return 0, p.reader.err()
		case <-p.writer.ctx.Done():
			return 0, p.writer.err()
		}
	}
}

func (p *pipeBuf) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resetCode == nil {
		p.fin = true
		p.signal()
	}
	return nil
}

func (p *pipeBuf) reset(code uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resetCode == nil && p.stopCode == nil {
		p.resetCode = &code
		p.buf = nil
		p.signal()
	}
}

func (p *pipeBuf) stop(code uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopCode == nil {
		p.stopCode = &code
		p.buf = nil
		p.signal()
	}
}

type pipeStream struct {
	out *pipeBuf // nil for a receive-only stream
	in  *pipeBuf // nil for a send-only stream
}

func (s *pipeStream) Write(b []byte) (int, error) {
	if s.out == nil {
		return 0, errors.New("write on receive-only stream")
	}
	return s.out.write(b)
}

func (s *pipeStream) Read(b []byte) (int, error) {
	if s.in == nil {
		return 0, errors.New("read on send-only stream")
	}
	return s.in.read(b)
}

func (s *pipeStream) Close() error {
	if s.out == nil {
		return nil
	}
	return s.out.close()
}

func (s *pipeStream) CancelWrite(code uint64) {
	if s.out != nil {
		s.out.reset(code)
	}
}

func (s *pipeStream) CancelRead(code uint64) {
	if s.in != nil {
		s.in.stop(code)
	}
}

func (s *pipeStream) SetPriority(int) {}

// ConnectLocal opens an in-process session to the relay: the client end is
// returned; it behaves exactly like a remote client's session.
func (r *Relay) ConnectLocal(ctx context.Context, cfg Config, serverCfg Config) (*Session, error) {
	return r.ConnectLocalAs(ctx, "local", cfg, serverCfg)
}

// ConnectLocalAs is ConnectLocal with a transport name for logs and
// metrics (the protocol the adapter serves: "rtmp", "hls", ...).
func (r *Relay) ConnectLocalAs(ctx context.Context, proto string, cfg Config, serverCfg Config) (*Session, error) {
	a, b := PipeNamed(proto)
	serverCfg.Handler = r
	if serverCfg.Logger == nil {
		serverCfg.Logger = r.log
	}
	errc := make(chan error, 1)
	go func() {
		_, err := Accept(ctx, b, serverCfg, "")
		errc <- err
	}()
	s, err := Connect(ctx, a, cfg)
	if err != nil {
		a.CloseWithError(wire.InternalError, "setup failed")
		return nil, err
	}
	if err := <-errc; err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// StreamResetError is what a pipe stream returns once its peer reset it.
type StreamResetError struct{ Code uint64 }

func (e *StreamResetError) Error() string { return fmt.Sprintf("stream reset with code %#x", e.Code) }
