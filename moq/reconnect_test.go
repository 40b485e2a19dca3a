package moq

import (
	"context"
	"io"
	"testing"
	"time"
)

// A publisher that reconnects within the grace period continues the
// broadcast: the subscriber keeps its subscription and group IDs keep
// increasing although the new publisher starts again at 0. After the
// grace period without a publisher, the subscriber gets PUBLISH_DONE.
func TestPublisherReconnectWithinGrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := NewRelay(RelayConfig{Logger: testLogger(t), GracePeriod: 500 * time.Millisecond})
	pub1, s1 := publishLocal(t, ctx, r, "live/re")
	writeGroup(t, pub1.Track("video"), 0, 2)
	sub, err := r.ConnectLocal(ctx, Config{Logger: testLogger(t)}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sub.Subscribe(ctx, Namespace{"live", "re"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rd := s.Track.NewReader(false)
	next := func() uint64 {
		t.Helper()
		g, err := rd.NextGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := g.Next(ctx); err == io.EOF {
				return g.ID()
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	if id := next(); id != 0 {
		t.Fatalf("first group %d", id)
	}
	writeGroup(t, pub1.Track("video"), 1, 2)
	if id := next(); id != 1 {
		t.Fatalf("group %d", id)
	}
	s1.Close()
	time.Sleep(100 * time.Millisecond)
	pub2, s2 := publishLocal(t, ctx, r, "live/re")
	writeGroup(t, pub2.Track("video"), 0, 2) // the new publisher starts at group 0 again
	if id := next(); id != 2 {
		t.Fatalf("after reconnect: group %d, want 2", id)
	}
	writeGroup(t, pub2.Track("video"), 1, 2)
	if id := next(); id != 3 {
		t.Fatalf("after reconnect: group %d, want 3", id)
	}
	select {
	case <-s.Done():
		t.Fatal("subscription ended across the reconnect")
	default:
	}
	s2.Close()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("no PUBLISH_DONE after the grace period")
	}
	if _, err := rd.NextGroup(ctx); err != ErrTrackEnded {
		t.Fatalf("after the end: %v", err)
	}
}
