package moq

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// DefaultMaxBytesInFlight is a session's default budget for the objects it
// is receiving: twice the largest object.
const DefaultMaxBytesInFlight = 32 << 20

// uniStreamShare is the budget each incoming uni stream is credited: a
// session may open MaxBytesInFlight/uniStreamShare of them (at most
// maxUniStreams), each able to have one read chunk in flight.
const (
	uniStreamShare = 64 << 10
	minUniStreams  = 64
	maxUniStreams  = 1024
)

// ErrBudget is why an object was refused: the bytes of the objects being
// received would exceed the session's or the server's budget.
var ErrBudget = errors.New("moq: objects in flight over budget")

// ByteBudget bounds the memory of objects being received (read from
// their streams, not yet complete), shared by the sessions that hold it.
// Complete objects go to the track caches, which have their own limits.
type ByteBudget struct {
	max  int64
	used atomic.Int64
}

// NewByteBudget makes a budget of max bytes (0 or less: unlimited).
func NewByteBudget(max int64) *ByteBudget { return &ByteBudget{max: max} }

// InUse is the number of bytes taken now.
func (b *ByteBudget) InUse() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// take reserves n bytes if they fit (a nil budget always has room).
func (b *ByteBudget) take(n int64) bool {
	if b == nil {
		return true
	}
	if b.used.Add(n) > b.max && b.max > 0 {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *ByteBudget) give(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}

// inflight charges one object's buffer to its session's budget and the
// shared one; done gives everything back.
type inflight struct {
	session, shared *ByteBudget
	n               int64
}

func (f *inflight) take(n int) error {
	if !f.session.take(int64(n)) {
		return fmt.Errorf("%w: session budget %d bytes", ErrBudget, f.session.max)
	}
	if !f.shared.take(int64(n)) {
		f.session.give(int64(n))
		return fmt.Errorf("%w: server budget %d bytes", ErrBudget, f.shared.max)
	}
	f.n += int64(n)
	return nil
}

// give returns n bytes before the object is done (a buffer replaced).
func (f *inflight) give(n int) {
	f.session.give(int64(n))
	f.shared.give(int64(n))
	f.n -= int64(n)
}

func (f *inflight) done() {
	f.session.give(f.n)
	f.shared.give(f.n)
	f.n = 0
}

// uniStreamCredit is the uni streams a peer may open at once, sized from
// its budget.
func uniStreamCredit(budget int64) int64 {
	if budget <= 0 {
		return maxUniStreams
	}
	return min(max(budget/uniStreamShare, minUniStreams), maxUniStreams)
}
