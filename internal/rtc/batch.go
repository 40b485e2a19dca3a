package rtc

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchConn is the shared UDP socket as the ICE mux sees it. Writes are
// queued and sent with sendmmsg, the packets of one burst to one peer (a
// frame's packets) as one UDP GSO send where the kernel has it: with every
// viewer's media on one socket, the per-packet system call was most of the
// egress cost, and writers no longer contend for the socket. The writer of
// a burst holds the queue and flushes it (Engine.Hold, Engine.Release); a
// lone packet is sent by its writer at once. A write never blocks; when
// the queue is full the packet is dropped (UDP).
type batchConn struct {
	c  *net.UDPConn
	wb interface {
		WriteBatch([]ipv4.Message, int) (int, error)
	}
	raw  *rawSender   // nil where unavailable; guarded by sendMu
	rawR *rawReceiver // nil where unavailable
	pool sync.Pool

	mu     sync.Mutex
	queue  []outPacket
	closed bool

	// holds counts writers queueing a burst they will flush themselves:
	// meanwhile other writers leave their packets to them.
	holds   atomic.Int32
	gso     atomic.Bool
	dropped atomic.Uint64
	sent    atomic.Uint64 // messages (a GSO message holds several packets)
	packets atomic.Uint64
	calls   atomic.Uint64 // sendmmsg calls

	// Guarded by sendMu.
	sendMu sync.Mutex
	spare  []outPacket
	msgs   []ipv4.Message
	iov    [][]byte
	iovIdx [][2]int
	addrs  map[netip.AddrPort]*net.UDPAddr
	oobs   map[int][]byte

	groupIdx  map[netip.AddrPort]int
	groups    [][]int
	groupPool [][]int
	sorted    []outPacket
}

type outPacket struct {
	buf  *[]byte
	addr netip.AddrPort
}

const (
	// maxQueue bounds the packets waiting to be sent (a few ms of 1 Gbit/s).
	maxQueue = 16384
	// batchSize is the messages of one sendmmsg.
	batchSize = 64
	// maxSegments bounds one GSO send (the kernel allows 64).
	maxSegments = 32
)

func newBatchConn(c *net.UDPConn) *batchConn {
	b := &batchConn{c: c,
		addrs: make(map[netip.AddrPort]*net.UDPAddr), oobs: make(map[int][]byte), groupIdx: make(map[netip.AddrPort]int)}
	b.pool.New = func() any { s := make([]byte, 0, 1500); return &s }
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		b.wb = ipv4.NewPacketConn(c)
	} else {
		b.wb = ipv6.NewPacketConn(c)
	}
	b.raw = newRawSender(c)
	b.rawR = newRawReceiver(c)
	b.gso.Store(gsoSupported) // until the kernel says otherwise
	return b
}

// ReadFrom implements net.PacketConn.
func (b *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if b.rawR == nil {
		return b.c.ReadFrom(p)
	}
	n, ap, err := b.rawR.readFrom(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// ReadFromAddrPort implements ice.AddrPortReaderWriter.
func (b *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	if b.rawR == nil {
		return b.c.ReadFromUDPAddrPort(p)
	}
	return b.rawR.readFrom(p)
}

// WriteTo implements net.PacketConn.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("rtc: not a UDP address")
	}
	return b.WriteToAddrPort(p, ua.AddrPort())
}

// WriteToAddrPort implements ice.AddrPortReaderWriter: it queues p.
func (b *batchConn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	if len(p) > 1500 {
		return b.c.WriteToUDPAddrPort(p, addr)
	}
	buf := b.pool.Get().(*[]byte)
	*buf = append((*buf)[:0], p...)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.pool.Put(buf)
		return 0, net.ErrClosed
	}
	if len(b.queue) >= maxQueue {
		b.mu.Unlock()
		b.pool.Put(buf)
		b.dropped.Add(1)
		return len(p), nil
	}
	b.queue = append(b.queue, outPacket{buf, addr})
	// Loaded after the append: a holder that releases later flushes this.
	if b.holds.Load() != 0 {
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	// A lone packet (ICE, RTCP, a retransmission) goes at once from this
	// goroutine: a system call costs less than waking another goroutine
	// to batch it.
	b.Flush()
	return len(p), nil
}

// Flush sends what is queued, in the caller's goroutine: a writer that has
// just queued a burst (a frame for every viewer) sends it at once without
// waking another thread.
func (b *batchConn) Flush() {
	b.sendMu.Lock()
	b.flushLocked()
	b.sendMu.Unlock()
}

func (b *batchConn) flushLocked() {
	for {
		b.mu.Lock()
		q := b.queue
		b.queue = b.spare[:0]
		b.mu.Unlock()
		if len(q) == 0 {
			b.spare = q
			return
		}
		b.send(q)
		b.packets.Add(uint64(len(q)))
		for i := range q {
			b.pool.Put(q[i].buf)
			q[i] = outPacket{}
		}
		b.spare = q
	}
}

func (b *batchConn) udpAddr(a netip.AddrPort) *net.UDPAddr {
	ua := b.addrs[a]
	if ua == nil {
		if len(b.addrs) > 4096 {
			clear(b.addrs)
		}
		ua = net.UDPAddrFromAddrPort(a)
		b.addrs[a] = ua
	}
	return ua
}

// groupByAddr reorders q so that the packets to one address are together,
// keeping their order (the order between addresses does not matter).
func (b *batchConn) groupByAddr(q []outPacket) []outPacket {
	if len(q) < 3 {
		return q
	}
	clear(b.groupIdx)
	b.groups = b.groups[:0]
	for i, p := range q {
		g, ok := b.groupIdx[p.addr]
		if !ok {
			g = len(b.groups)
			b.groupIdx[p.addr] = g
			var idx []int
			if g < len(b.groupPool) {
				idx = b.groupPool[g][:0]
			}
			b.groups = append(b.groups, idx)
		}
		b.groups[g] = append(b.groups[g], i)
	}
	defer func() {
		for g, idx := range b.groups {
			if g < len(b.groupPool) {
				b.groupPool[g] = idx
			} else {
				b.groupPool = append(b.groupPool, idx)
			}
		}
	}()
	if len(b.groups) == 1 || len(b.groups) == len(q) {
		return q
	}
	b.sorted = b.sorted[:0]
	for _, idx := range b.groups {
		for _, i := range idx {
			b.sorted = append(b.sorted, q[i])
		}
	}
	copy(q, b.sorted)
	return q
}

// send writes queued packets: runs of packets to one address whose sizes
// allow it go as one GSO message, the messages in sendmmsg batches.
func (b *batchConn) send(q []outPacket) {
	gso := b.gso.Load()
	if gso {
		q = b.groupByAddr(q)
	}
	b.msgs = b.msgs[:0]
	b.iov = b.iov[:0]
	for i := 0; i < len(q); {
		j := i + 1
		size := len(*q[i].buf)
		if gso {
			total := size
			for j < len(q) && j-i < maxSegments && q[j].addr == q[i].addr && len(*q[j].buf) <= size &&
				len(*q[j-1].buf) == size && total+len(*q[j].buf) <= 65000 {
				total += len(*q[j].buf)
				j++
			}
		}
		// The packets are the message's iovecs: no copy for GSO.
		start := len(b.iov)
		for k := i; k < j; k++ {
			b.iov = append(b.iov, *q[k].buf)
		}
		m := ipv4.Message{Addr: b.udpAddr(q[i].addr)}
		if j-i > 1 {
			if b.oobs[size] == nil {
				b.oobs[size] = segmentOOB(size)
			}
			m.OOB = b.oobs[size]
		}
		b.msgs = append(b.msgs, m)
		b.iovIdx = append(b.iovIdx[:len(b.msgs)-1], [2]int{start, len(b.iov)})
		i = j
	}
	// b.iov may have moved while growing: point the messages at it now.
	for k := range b.msgs {
		r := b.iovIdx[k]
		b.msgs[k].Buffers = b.iov[r[0]:r[1]:r[1]]
	}
	// A local view: b.msgs keeps its capacity for the next send.
	msgs := b.msgs
	for len(msgs) > 0 {
		n := min(len(msgs), batchSize)
		sent, err := b.writeBatch(msgs[:n])
		if err != nil {
			if len(msgs[sent].OOB) > 0 && b.gso.CompareAndSwap(true, false) {
				// No UDP GSO here (old kernel, or a device without
				// checksum offload): send the rest one packet at a time.
				msgs = unbatch(msgs[sent:])
				continue
			}
			sent++ // skip the message the kernel refused (e.g. unreachable)
		}
		b.sent.Add(uint64(sent))
		b.calls.Add(1)
		msgs = msgs[min(sent, len(msgs)):]
	}
}

// writeBatch sends with sendmmsg: directly when it can, through the
// runtime's poller when the socket buffer is full (or raw sends are not
// available).
func (b *batchConn) writeBatch(msgs []ipv4.Message) (int, error) {
	if b.raw != nil {
		n, err := b.raw.send(msgs)
		if err == nil || !(isAgain(err) || errors.Is(err, errRawUnusable)) {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
	return b.wb.WriteBatch(msgs, 0)
}

// unbatch splits GSO messages into single packets.
func unbatch(msgs []ipv4.Message) []ipv4.Message {
	var out []ipv4.Message
	for _, m := range msgs {
		for _, p := range m.Buffers {
			out = append(out, ipv4.Message{Addr: m.Addr, Buffers: [][]byte{p}})
		}
	}
	return out
}

// Close implements net.PacketConn: queued packets are sent first.
func (b *batchConn) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.sendMu.Lock()
	b.flushLocked()
	b.raw = nil // its file descriptor is about to go
	b.sendMu.Unlock()
	return b.c.Close()
}

// LocalAddr implements net.PacketConn.
func (b *batchConn) LocalAddr() net.Addr { return b.c.LocalAddr() }

// SetDeadline implements net.PacketConn.
func (b *batchConn) SetDeadline(t time.Time) error { return b.c.SetDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (b *batchConn) SetReadDeadline(t time.Time) error { return b.c.SetReadDeadline(t) }

// SetWriteDeadline implements net.PacketConn (writes never block).
func (b *batchConn) SetWriteDeadline(time.Time) error { return nil }
