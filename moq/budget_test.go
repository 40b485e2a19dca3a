package moq

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

func TestByteBudget(t *testing.T) {
	s, shared := NewByteBudget(100), NewByteBudget(150)
	a := &inflight{session: s, shared: shared}
	if err := a.take(60); err != nil {
		t.Fatal(err)
	}
	if err := a.take(60); !errors.Is(err, ErrBudget) {
		t.Fatalf("120 of a session's 100: %v", err)
	}
	b := &inflight{session: NewByteBudget(100), shared: shared}
	if err := b.take(100); !errors.Is(err, ErrBudget) || b.session.InUse() != 0 {
		t.Fatalf("160 of the shared 150: %v (session holds %d)", err, b.session.InUse())
	}
	a.give(20)
	a.done()
	if s.InUse() != 0 || shared.InUse() != 0 {
		t.Fatalf("after done: %d, %d", s.InUse(), shared.InUse())
	}
	if uniStreamCredit(32<<20) != 512 || uniStreamCredit(1<<20) != minUniStreams || uniStreamCredit(-1) != maxUniStreams {
		t.Fatal("uni-stream credit")
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestObjectsInFlightBudget: a publisher opens 40 group streams, each
// declaring a 15 MiB object and sending all but its last byte. The
// objects being received are charged to the session's budget (32 MiB):
// the streams that do not fit are refused (STOP_SENDING), the heap stays
// within the budget, and another broadcast's viewer gets every group.
func TestObjectsInFlightBudget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const budget = 32 << 20
	ts := startServerWith(t, RelayConfig{}, Config{MaxBytesInFlight: budget, SharedBytesInFlight: NewByteBudget(4 * budget)})
	url := "moqt://" + ts.addr

	good, expectGroup, gp, viewer := healthyPair(t, ctx, url)

	// The attacker publishes live/bad; a viewer makes the relay subscribe.
	bad := NewPublisher(Namespace{"live", "bad"}, TrackLimits{})
	bp := dialTest(t, ctx, url, Config{Handler: bad})
	if err := bp.PublishNamespace(ctx, bad.Namespace()); err != nil {
		t.Fatal(err)
	}
	writeGroup(t, bad.Track("video"), 0, 1)
	bv := dialTest(t, ctx, url, Config{})
	if _, err := bv.Subscribe(ctx, Namespace{"live", "bad"}, "video", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	var alias uint64
	bp.mu.Lock()
	for _, ss := range bp.subsIn {
		alias = ss.alias
	}
	bp.mu.Unlock()

	const streams, size = 40, 15 << 20
	big := make([]byte, size-1)
	base := heapInUse()
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused, sent := 0, 0
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := bp.conn.OpenUniStreamSync(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			hdr := wire.SubgroupHeader{Type: wire.SubgroupType(false, false, 0), TrackAlias: alias, GroupID: uint64(10 + i)}
			b := bp.codec.AppendSubgroupHeader(nil, hdr)
			b, _ = bp.codec.AppendSubgroupObject(b, hdr.Type, 0, true, wire.ObjectHeader{PayloadLen: size})
			if _, err = st.Write(b); err == nil {
				_, err = st.Write(big)
			}
			var se *quic.StreamError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				sent++
			case errors.As(err, &se) && se.Remote && uint64(se.ErrorCode) == wire.ResetCancelled:
				refused++
			default:
				t.Errorf("stream %d: %v, want STOP_SENDING", i, err)
			}
		}()
	}
	wg.Wait()
	heap := heapInUse()
	runtime.KeepAlive(big) // in base too
	t.Logf("%d streams of a 15 MiB object sent but the last byte, %d refused; heap in use %d -> %d MiB",
		sent, refused, base>>20, heap>>20)
	if refused < streams-budget/size-1 {
		t.Fatalf("only %d of %d streams refused with a %d MiB budget", refused, streams, budget>>20)
	}
	if heap > base+2*budget {
		t.Fatalf("heap in use %d -> %d MiB with streams held open, want at most %d MiB more", base>>20, heap>>20, 2*budget>>20)
	}
	for g := 1; g <= 3; g++ {
		writeGroup(t, good.Track("video"), g, 2)
		expectGroup()
	}
	if viewer.Err() != nil || gp.Err() != nil {
		t.Fatalf("healthy sessions ended: %v / %v", viewer.Err(), gp.Err())
	}
}
