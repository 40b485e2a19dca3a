package rtmp

import (
	"errors"
	"fmt"
	"io"
)

// libMaxBodySize is gortmplib's own (unexported, fixed) bound on one RTMP
// message body; MaxMessageSize is clamped to it.
const libMaxBodySize = 10 * 1024 * 1024

// maxAMFMessageSize bounds command and data (AMF) messages. AMF0 decoding in
// gortmplib is recursive, so an unbounded message could nest deeply enough
// to exhaust the stack; real commands and onMetaData are far smaller.
const maxAMFMessageSize = 64 * 1024

// RTMP message types the guard needs to know.
const (
	msgTypeSetChunkSize = 1
	msgTypeAbort        = 2
	msgTypeDataAMF3     = 15
	msgTypeSharedAMF3   = 16
	msgTypeCommandAMF3  = 17
	msgTypeDataAMF0     = 18
	msgTypeSharedAMF0   = 19
	msgTypeCommandAMF0  = 20
)

// errGuard marks protocol violations detected by the chunk guard; errLimit
// those that exceed a size limit.
var (
	errGuard = errors.New("rtmp chunk stream")
	errLimit = errors.New("limit exceeded")
)

// chunkGuard sits between the socket and gortmplib's chunk reader
// (rawmessage.Reader) and follows the same chunk stream, header by header.
// It rejects, before the library buffers anything, a message whose declared
// length exceeds maxMsg, AMF messages larger than maxAMF, and more than
// maxPartial bytes of partially received messages across all chunk
// streams: the library bounds each message to 10 MiB but keeps up to 62 of
// them in flight. It also hands the library whole chunks only (see Read),
// so that memory follows the bytes a peer actually sends: a 12-byte header
// declaring a large message cannot make the library allocate megabytes.
//
// The guard mirrors the library's reader state machine (chunk size, per
// chunk stream length / type / extended timestamp flag, abort) so that on any
// byte stream the library accepts, both agree on chunk boundaries
// (FuzzChunkGuard checks this); on a stream the library rejects the guard
// may stop earlier, with its own error. Errors are sticky.
type chunkGuard struct {
	r          io.Reader
	maxMsg     uint32
	maxAMF     uint32
	maxPartial int64

	chunkSize uint32
	streams   [64]guardStream
	partial   int64 // bytes of partially received messages (all streams)

	buf      []byte // read, not yet returned (starts at offset released)
	arr      []byte // buf's backing array, reused across reads
	released int64  // bytes returned to the reader
	parsed   int64  // bytes parsed
	boundary int64  // end of the last complete chunk
	rerr     error  // read error, returned once the complete chunks are out

	// parser state
	st      guardState
	cur     *guardStream
	fmtType byte
	hdr     [15]byte
	hdrLen  int // header bytes wanted (after the basic header byte)
	hdrHave int
	body    uint32 // body bytes left in the current chunk
	err     error
}

type guardState int

const (
	gsBasic guardState = iota
	gsHeader
	gsBody
)

type guardStream struct {
	seen    bool   // a type 0 chunk was received (timestamp available)
	msgLen  uint32 // current message length
	recv    uint32 // bytes received of the current message
	typ     uint8
	extTS   bool
	ctrl    [4]byte // first body bytes of control messages
	ctrlLen int
}

func newChunkGuard(r io.Reader, maxMsg uint32) *chunkGuard {
	return &chunkGuard{
		r:          r,
		maxMsg:     maxMsg,
		maxAMF:     maxAMFMessageSize,
		maxPartial: 2 * int64(maxMsg),
		chunkSize:  128,
	}
}

// guardReadSize is the size of the guard's reads from the connection.
const guardReadSize = 32 << 10

// Read implements io.Reader. It returns only whole chunks: the header of a
// chunk reaches the library once the chunk's body has arrived, so that the
// library, which allocates a chunk's body when it reads the header, never
// allocates more than the peer actually sent.
func (g *chunkGuard) Read(p []byte) (int, error) {
	for g.boundary == g.released {
		if g.err != nil {
			return 0, g.err
		}
		if g.rerr != nil {
			return 0, g.rerr
		}
		g.fill()
	}
	n := copy(p, g.buf[:g.boundary-g.released])
	g.buf = g.buf[n:]
	g.released += int64(n)
	return n, nil
}

// fill reads once from the connection and parses what it got.
func (g *chunkGuard) fill() {
	if cap(g.buf)-len(g.buf) < guardReadSize {
		// Slide what is unread to the front of the backing array, and
		// grow that only when it is too small: one allocation per read
		// was a quarter of all the bytes a publish allocated.
		if cap(g.arr) < len(g.buf)+guardReadSize {
			g.arr = make([]byte, 2*len(g.buf)+guardReadSize)
		}
		g.buf = g.arr[:copy(g.arr, g.buf)]
	}
	n, err := g.r.Read(g.buf[len(g.buf):cap(g.buf)])
	if n > 0 {
		g.buf = g.buf[:len(g.buf)+n]
		if ferr := g.feed(g.buf[len(g.buf)-n:]); ferr != nil {
			g.err = ferr
		}
	}
	if err != nil {
		g.rerr = err
	}
}

func (g *chunkGuard) fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errGuard, fmt.Sprintf(format, args...))
}

func (g *chunkGuard) failLimit(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", errGuard, errLimit, fmt.Sprintf(format, args...))
}

// feed advances the shadow parser over b.
func (g *chunkGuard) feed(b []byte) error {
	for len(b) > 0 {
		switch g.st {
		case gsBasic:
			c := b[0]
			b = b[1:]
			g.parsed++
			csid := c & 0x3f
			if csid < 2 {
				return g.fail("extended chunk stream IDs are not supported")
			}
			g.cur = &g.streams[csid]
			g.fmtType = c >> 6
			switch g.fmtType {
			case 0:
				g.hdrLen = 11
			case 1:
				g.hdrLen = 7
			case 2:
				g.hdrLen = 3
			default:
				g.hdrLen = 0
				if g.cur.extTS {
					g.hdrLen = 4
				}
			}
			if err := g.checkFmt(); err != nil {
				return err
			}
			g.hdrHave = 0
			g.st = gsHeader
			if g.hdrLen == 0 {
				if err := g.headerDone(); err != nil {
					return err
				}
			}

		case gsHeader:
			n := copy(g.hdr[g.hdrHave:g.hdrLen], b)
			g.hdrHave += n
			b = b[n:]
			g.parsed += int64(n)
			if g.hdrHave < g.hdrLen {
				continue
			}
			if err := g.headerDone(); err != nil {
				return err
			}

		case gsBody:
			n := min(uint32(len(b)), g.body)
			s := g.cur
			if s.ctrlLen < len(s.ctrl) {
				s.ctrlLen += copy(s.ctrl[s.ctrlLen:], b[:n])
			}
			g.body -= n
			s.recv += n
			g.partial += int64(n)
			b = b[n:]
			g.parsed += int64(n)
			if g.body == 0 {
				if err := g.chunkDone(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkFmt mirrors the library's checks made before reading a chunk.
func (g *chunkGuard) checkFmt() error {
	s := g.cur
	switch g.fmtType {
	case 0:
		if s.recv != 0 {
			return g.fail("type 0 chunk inside a message (expected type 3)")
		}
	case 1, 2:
		if !s.seen {
			return g.fail("type %d chunk without a previous type 0 chunk", g.fmtType)
		}
		if s.recv != 0 {
			return g.fail("type %d chunk inside a message (expected type 3)", g.fmtType)
		}
	default:
		if s.recv == 0 && !s.seen {
			return g.fail("type 3 chunk without a previous type 0 chunk")
		}
	}
	return nil
}

func u24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
func u32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// headerDone is called when the (possibly empty) message header and any
// extended timestamp have been read.
func (g *chunkGuard) headerDone() error {
	s := g.cur
	var ts uint32
	switch g.fmtType {
	case 0, 1, 2:
		ts = u24(g.hdr[0:3])
		if ts == 0xFFFFFF && g.hdrLen == [...]int{11, 7, 3}[g.fmtType] {
			// the extended timestamp follows: read 4 more bytes
			g.hdrLen += 4
			return nil
		}
		if g.hdrLen > [...]int{11, 7, 3}[g.fmtType] {
			ts = u32(g.hdr[g.hdrLen-4 : g.hdrLen])
		}
		s.extTS = ts >= 0xFFFFFF
	}

	switch g.fmtType {
	case 0, 1:
		s.msgLen = u24(g.hdr[3:6])
		s.typ = g.hdr[6]
		s.seen = true
		if err := g.checkLen(s); err != nil {
			return err
		}
	}

	if s.recv == 0 {
		s.ctrlLen = 0
	}
	g.body = min(s.msgLen-s.recv, g.chunkSize)
	if g.partial+int64(g.body) > g.maxPartial {
		return g.failLimit("more than %d bytes of partially received messages", g.maxPartial)
	}
	g.st = gsBody
	if g.body == 0 {
		return g.chunkDone()
	}
	return nil
}

func (g *chunkGuard) checkLen(s *guardStream) error {
	if s.msgLen > g.maxMsg {
		return g.failLimit("message of %d bytes exceeds the limit of %d", s.msgLen, g.maxMsg)
	}
	switch s.typ {
	case msgTypeDataAMF3, msgTypeSharedAMF3, msgTypeCommandAMF3,
		msgTypeDataAMF0, msgTypeSharedAMF0, msgTypeCommandAMF0:
		if s.msgLen > g.maxAMF {
			return g.failLimit("AMF message of %d bytes exceeds the limit of %d", s.msgLen, g.maxAMF)
		}
	}
	return nil
}

// chunkDone is called after the last body byte of a chunk.
func (g *chunkGuard) chunkDone() error {
	g.st = gsBasic
	g.boundary = g.parsed
	s := g.cur
	if s.recv < s.msgLen {
		return nil
	}
	// message complete
	g.partial -= int64(s.recv)
	s.recv = 0
	if s.ctrlLen == 4 && s.msgLen == 4 {
		v := u32(s.ctrl[:])
		switch s.typ {
		case msgTypeSetChunkSize:
			if err := validChunkSize(v); err != nil {
				return g.fail("%v", err)
			}
			g.chunkSize = v
		case msgTypeAbort:
			if v >= 2 && v <= 63 {
				a := &g.streams[v]
				if a.recv != 0 {
					g.partial -= int64(a.recv)
					a.recv = 0
					a.msgLen = 0
				}
			}
		}
	} else if s.typ == msgTypeSetChunkSize || s.typ == msgTypeAbort {
		return g.fail("control message of type %d has %d bytes, want 4", s.typ, s.msgLen)
	}
	return nil
}

// validChunkSize reports whether a peer's Set Chunk Size value is acceptable
// (the session applies the same rule to the library's reader).
func validChunkSize(v uint32) error {
	if v < 1 || v > libMaxBodySize {
		return fmt.Errorf("invalid chunk size %d", v)
	}
	return nil
}
