package moq

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentRequestsInOrder: requests made at once from many
// goroutines on one session reach the peer in the order of their request
// IDs, and the MAX_REQUEST_ID grants that requests ending at once make
// reach it in increasing order. The peer closes the session otherwise
// (INVALID_REQUEST_ID, PROTOCOL_VIOLATION): a relay re-subscribing at once
// to the tracks of a publisher that reconnected could lose that publisher.
func TestConcurrentRequestsInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := NewRelay(RelayConfig{Logger: testLogger(t)})
	pub, _ := publishLocal(t, ctx, r, "live/test")
	const tracks = 32
	for i := range tracks {
		writeGroup(t, pub.Track(fmt.Sprintf("t%d", i)), 0, 1)
	}
	sub, err := r.ConnectLocal(ctx, Config{Logger: testLogger(t)}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		errs := make(chan error, tracks)
		for i := range tracks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := sub.Subscribe(ctx, Namespace{"live", "test"}, fmt.Sprintf("t%d", i), SubscribeOptions{})
				if err != nil {
					errs <- err
					return
				}
				s.Unsubscribe()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v (session: %v)", round, err, sub.Err())
		}
	}
}
