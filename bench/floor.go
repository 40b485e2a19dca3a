package bench

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqgate/moqgate/moq"
)

// The floor is plain quic-go doing the relay's job with nothing of MoQ:
// the same publisher, the same track shape and the same subscribers'
// connections, but a server that forwards each object's bytes to every
// subscriber's stream for the group as soon as it has read them. What it
// measures is what loopback QUIC costs for the fan-out, so a relay's
// figures next to it (in the same run) show the relay's own share.
//
// Its wire format: the publisher opens one uni stream per group, the
// subscribers one uni stream each to say who they are (one byte 'S');
// then the server opens one uni stream per group to every subscriber.
// Every group stream carries frames of object ID and payload length (two
// big-endian uint32) followed by the payload.

// FloorChildEnv, set to "1" next to RelayChildEnv, makes the relay child
// serve the floor instead of a moq.Relay (same line protocol).
const FloorChildEnv = "MOQGATE_BENCH_FLOOR"

const floorALPN = "moqgate-bench-floor"

// floorQueue bounds the frames waiting for one subscriber: beyond that it
// is dropped, as a relay drops a lagging subscriber.
const floorQueue = 256

type floorFrame struct {
	newGroup bool
	b        []byte // header and payload, shared by every subscriber
}

// floorServer fans out what its publisher sends.
type floorServer struct {
	mu   sync.Mutex
	subs map[*floorSub]struct{}
}

type floorSub struct {
	conn *quic.Conn
	ch   chan floorFrame
}

func serveFloor(ctx context.Context, pc net.PacketConn, tlsConf *tls.Config, log *slog.Logger) error {
	tlsConf = tlsConf.Clone()
	tlsConf.NextProtos = []string{floorALPN}
	ln, err := (&quic.Transport{Conn: pc}).Listen(tlsConf, moq.QUICConfig())
	if err != nil {
		return err
	}
	defer ln.Close()
	fs := &floorServer{subs: make(map[*floorSub]struct{})}
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go fs.serve(ctx, c, log)
	}
}

func (fs *floorServer) serve(ctx context.Context, c *quic.Conn, log *slog.Logger) {
	for {
		st, err := c.AcceptUniStream(ctx)
		if err != nil {
			return
		}
		var role [1]byte
		if _, err := io.ReadFull(st, role[:]); err != nil {
			return
		}
		switch role[0] {
		case 'S':
			sub := &floorSub{conn: c, ch: make(chan floorFrame, floorQueue)}
			fs.mu.Lock()
			fs.subs[sub] = struct{}{}
			fs.mu.Unlock()
			go func() {
				sub.write()
				fs.mu.Lock()
				delete(fs.subs, sub)
				fs.mu.Unlock()
			}()
		case 'G':
			go fs.readGroup(st, log)
		}
	}
}

// readGroup reads one group's objects and hands each to every subscriber.
func (fs *floorServer) readGroup(st *quic.ReceiveStream, log *slog.Logger) {
	first := true
	for {
		b, err := readFrame(st)
		if err != nil {
			if err != io.EOF {
				log.Debug("floor: group stream", "err", err)
			}
			return
		}
		f := floorFrame{newGroup: first, b: b}
		first = false
		fs.mu.Lock()
		for sub := range fs.subs {
			select {
			case sub.ch <- f:
			default:
				sub.conn.CloseWithError(1, "too slow")
			}
		}
		fs.mu.Unlock()
	}
}

// write sends the subscriber its frames, a new stream per group.
func (sub *floorSub) write() {
	var st *quic.SendStream
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	for {
		var f floorFrame
		select {
		case f = <-sub.ch:
		case <-sub.conn.Context().Done():
			return
		}
		if f.newGroup || st == nil {
			if st != nil {
				st.Close()
			}
			var err error
			if st, err = sub.conn.OpenUniStream(); err != nil {
				return
			}
		}
		if _, err := st.Write(f.b); err != nil {
			return
		}
	}
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > 16<<20 {
		return nil, fmt.Errorf("floor: frame of %d bytes", n)
	}
	b := make([]byte, 8+n)
	copy(b, hdr[:])
	_, err := io.ReadFull(r, b[8:])
	return b, err
}

func dialFloor(ctx context.Context, addr string) (*quic.Conn, error) {
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{floorALPN}}
	return quic.DialAddr(ctx, addr, tlsConf, moq.QUICConfig())
}

// floorSink publishes to the floor server: a uni stream per group.
type floorSink struct {
	conn *quic.Conn
	st   *quic.SendStream
	buf  []byte
}

func (s *floorSink) NewGroup(ctx context.Context) error {
	if s.st != nil {
		s.st.Close()
	}
	st, err := s.conn.OpenUniStreamSync(ctx)
	if err != nil {
		return err
	}
	s.st = st
	_, err = st.Write([]byte{'G'})
	return err
}

func (s *floorSink) Append(id uint64, payload []byte) error {
	s.buf = binary.BigEndian.AppendUint32(s.buf[:0], uint32(id))
	s.buf = binary.BigEndian.AppendUint32(s.buf, uint32(len(payload)))
	s.buf = append(s.buf, payload...)
	_, err := s.st.Write(s.buf)
	return err
}

func (s *floorSink) Close() {
	if s.st != nil {
		s.st.Close()
	}
}

// readFloor reads a floor subscriber's group streams.
func (s *subscriber) readFloor(ctx context.Context, w *window) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := s.conn.AcceptUniStream(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			for {
				b, err := readFrame(st)
				if err != nil {
					return
				}
				s.record(w, moq.Object{ID: uint64(binary.BigEndian.Uint32(b)), Payload: b[8:]})
			}
		})
	}
}

// RunFloor measures the floor server at addr (HOST:PORT) with the shape
// of cfg (cfg.URL is not used): the plain quic-go counterpart of RunFanout.
func RunFloor(ctx context.Context, addr string, cfg FanoutConfig) (FanoutResult, error) {
	cfg.URL = "floor://" + addr
	if err := cfg.defaults(); err != nil {
		return FanoutResult{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := newWindow()

	var conns []*quic.Conn
	var readers sync.WaitGroup
	defer func() {
		cancel()
		for _, c := range conns {
			c.CloseWithError(0, "done")
		}
		readers.Wait()
	}()
	setupStart := time.Now()
	subs := make([]*subscriber, cfg.Subscribers)
	for i := range subs {
		c, err := dialFloor(ctx, addr)
		if err != nil {
			return FanoutResult{}, fmt.Errorf("bench: floor subscriber %d: %w", i, err)
		}
		conns = append(conns, c)
		st, err := c.OpenUniStreamSync(ctx)
		if err != nil {
			return FanoutResult{}, err
		}
		if _, err := st.Write([]byte{'S'}); err != nil {
			return FanoutResult{}, err
		}
		subs[i] = &subscriber{conn: c, first: make(chan struct{})}
		readers.Go(func() { subs[i].readFloor(ctx, w) })
	}
	pc, err := dialFloor(ctx, addr)
	if err != nil {
		return FanoutResult{}, fmt.Errorf("bench: floor publisher: %w", err)
	}
	conns = append(conns, pc)
	var p publisher
	pubErr := make(chan error, 1)
	go func() { pubErr <- p.publish(ctx, &cfg, w, &floorSink{conn: pc}) }()
	return measure(ctx, &cfg, setupStart, w, subs, &p, pubErr)
}

// errPublisherStopped wraps the publisher's error when it stops early.
var errPublisherStopped = errors.New("bench: publisher stopped")
