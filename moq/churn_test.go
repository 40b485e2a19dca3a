package moq

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestChurn: 1,000 cycles of connect / subscribe / receive / disconnect
// over raw QUIC, WebTransport and in-process sessions; afterwards the
// goroutine count and the heap return to their baseline.
func TestChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn test in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	pub := NewPublisher(Namespace{"live", "churn"}, TrackLimits{})
	ps := dialTest(t, ctx, "moqt://"+ts.addr, Config{Handler: pub})
	if err := ps.PublishNamespace(ctx, pub.Namespace()); err != nil {
		t.Fatal(err)
	}
	video := pub.Track("video")
	writeGroup(t, video, 0, 3)

	cycle := func(kind string) error {
		var s *Session
		var err error
		switch kind {
		case "local":
			s, err = ts.relay.ConnectLocal(ctx, Config{Logger: testLogger(t)}, Config{})
		case "quic":
			s, err = Dial(ctx, "moqt://"+ts.addr, DialOptions{Insecure: true, Session: Config{Logger: testLogger(t)}})
		case "webtransport":
			s, err = Dial(ctx, "https://"+ts.addr+"/", DialOptions{Insecure: true, Session: Config{Logger: testLogger(t)}})
		}
		if err != nil {
			return err
		}
		defer s.Close()
		sub, err := s.Subscribe(ctx, Namespace{"live", "churn"}, "video", SubscribeOptions{})
		if err != nil {
			return err
		}
		g, err := sub.Track.NewReader(false).NextGroup(ctx)
		if err != nil {
			return err
		}
		if _, err := g.Next(ctx); err != nil {
			return fmt.Errorf("first object: %w", err)
		}
		return nil
	}
	settle := func() (int, uint64) {
		var m runtime.MemStats
		var n int
		for i := 0; i < 50; i++ {
			runtime.GC()
			n = runtime.NumGoroutine()
			time.Sleep(100 * time.Millisecond)
			if runtime.NumGoroutine() == n {
				break
			}
		}
		runtime.ReadMemStats(&m)
		return n, m.HeapInuse
	}
	// Warm up (lazy pools, timers), then take the baseline.
	for _, k := range []string{"local", "quic", "webtransport"} {
		if err := cycle(k); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	baseG, baseHeap := settle()
	kinds := []string{"local", "quic", "webtransport"}
	for i := 0; i < 1000; i++ {
		if err := cycle(kinds[i%3]); err != nil {
			t.Fatalf("cycle %d (%s): %v", i, kinds[i%3], err)
		}
		if i%100 == 0 {
			writeGroup(t, video, i/100+1, 3) // the track goes on meanwhile
		}
	}
	// Sessions close asynchronously on the server side; give them a moment.
	var g int
	var heap uint64
	for i := 0; i < 30; i++ {
		time.Sleep(500 * time.Millisecond)
		if g, heap = settle(); g <= baseG+5 {
			break
		}
	}
	t.Logf("goroutines %d -> %d, heap in use %d KiB -> %d KiB", baseG, g, baseHeap>>10, heap>>10)
	if g > baseG+5 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines did not return to baseline: %d -> %d\n%s", baseG, g, buf[:n])
	}
	if heap > baseHeap+8<<20 {
		t.Fatalf("heap did not return to baseline: %d KiB -> %d KiB", baseHeap>>10, heap>>10)
	}
	if n := len(ts.srv.SessionList()); n != 1 {
		t.Fatalf("%d sessions left on the server, want 1 (the publisher)", n)
	}
}
