package whip

import (
	"time"

	"github.com/pion/rtp"
)

// reorderSize is the reorder window in packets (a power of two): about a
// second of 720p video at 2 Mbit/s.
const reorderSize = 512

// reorder is a small jitter buffer: it puts RTP packets back in sequence
// order and hands them on as soon as they are next in line, so in-order
// arrival adds no delay (unlike pion's samplebuilder, which holds a frame
// until the next one starts). A missing packet is waited for up to
// maxDelay (time for NACK retransmission); then the gap is skipped and
// reported to the next packet handed on.
type reorder struct {
	buf      [reorderSize]*rtp.Packet
	next     uint16
	started  bool
	count    int
	gapSince time.Time
	maxDelay time.Duration
}

// emitFunc receives packets in order; lost counts the packets given up
// just before p.
type emitFunc func(p *rtp.Packet, lost int)

func (r *reorder) push(p *rtp.Packet, now time.Time, emit emitFunc) {
	seq := p.SequenceNumber
	if !r.started {
		r.started, r.next = true, seq
	}
	d := int16(seq - r.next)
	switch {
	case d < 0:
		if d > -reorderSize {
			return // late (already skipped) or duplicate
		}
		// Far behind: the sender restarted its sequence numbers.
		r.flush(emit)
		r.next = seq
	case int(d) >= reorderSize:
		// Far ahead: everything buffered is older than the window.
		r.flush(emit)
		lost := int(uint16(seq - r.next))
		r.next = seq
		r.buf[seq%reorderSize] = p
		r.count++
		r.drain(emit, lost)
		return
	}
	slot := &r.buf[seq%reorderSize]
	if *slot != nil {
		return // duplicate
	}
	*slot = p
	r.count++
	r.drain(emit, 0)
	if r.count == 0 {
		r.gapSince = time.Time{}
		return
	}
	if r.gapSince.IsZero() {
		r.gapSince = now
	}
	if now.Sub(r.gapSince) >= r.maxDelay || r.count > reorderSize*3/4 {
		r.skipGap(emit)
		if r.count > 0 {
			r.gapSince = now
		} else {
			r.gapSince = time.Time{}
		}
	}
}

// drain hands on the packets that are next in line.
func (r *reorder) drain(emit emitFunc, lost int) {
	for {
		slot := &r.buf[r.next%reorderSize]
		p := *slot
		if p == nil || p.SequenceNumber != r.next {
			return
		}
		*slot = nil
		r.count--
		r.next++
		emit(p, lost)
		lost = 0
	}
}

// skipGap gives up the missing packets before the oldest buffered one.
func (r *reorder) skipGap(emit emitFunc) {
	for i := 1; i < reorderSize; i++ {
		s := r.next + uint16(i)
		if p := r.buf[s%reorderSize]; p != nil && p.SequenceNumber == s {
			r.next = s
			r.drain(emit, i)
			return
		}
	}
}

// flush hands on every buffered packet, reporting the gaps.
func (r *reorder) flush(emit emitFunc) {
	for r.count > 0 {
		before := r.count
		r.skipGap(emit)
		if r.count == before { // cannot happen; never loop forever
			r.buf = [reorderSize]*rtp.Packet{}
			r.count = 0
		}
	}
	r.gapSince = time.Time{}
}
