package moq

import (
	"context"
	"testing"
	"time"
)

// A request for a new group (a key frame) reaches the in-process producer
// of the track: from a local consumer, and from a consumer on an edge
// relay that pulls over draft-16, where it crosses as NEW_GROUP_REQUEST.
// Over draft-14 (no such request) the edge's track does not take them.
func TestNewGroupRequestThroughRelays(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	origin := startServer(t, RelayConfig{})
	prod, err := origin.relay.Local("test").Publish(ctx, "live/key")
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	asked := make(chan struct{}, 8)
	video := prod.Track("video")
	video.OnNewGroupRequest(func() { asked <- struct{}{} })
	g := video.NewGroup()
	if err := g.Write([]byte("key")); err != nil {
		t.Fatal(err)
	}
	expect := func(what string, want bool) {
		t.Helper()
		select {
		case <-asked:
			if !want {
				t.Fatalf("%s: the producer was asked", what)
			}
		case <-time.After(map[bool]time.Duration{true: 5 * time.Second, false: 300 * time.Millisecond}[want]):
			if want {
				t.Fatalf("%s: the producer was never asked for a new group", what)
			}
		}
	}
	local, err := origin.relay.Local("test").SubscribeTrack(ctx, "live/key", "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if !local.RequestNewGroup() {
		t.Fatal("local consumer: the track takes no new-group requests")
	}
	expect("local consumer", true)
	// One request is outstanding until the largest group grows.
	local.RequestNewGroup()
	expect("second request before a new group", false)
	g.Close()

	for _, v := range []struct {
		draft string
		takes bool
	}{{"16", true}, {"14", false}} {
		edge := NewRelay(RelayConfig{Logger: testLogger(t)})
		u, opts, err := ParseUpstreamURL("moqt://" + origin.addr + "/?insecure=1&draft=" + v.draft)
		if err != nil {
			t.Fatal(err)
		}
		ectx, ecancel := context.WithCancel(ctx)
		go edge.RunUpstream(ectx, UpstreamConfig{URL: u, Dial: opts, Session: Config{Logger: testLogger(t)}})
		for !edge.HasBroadcast("live/key") && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		c, err := edge.Local("test").SubscribeTrack(ctx, "live/key", "video", SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		g = video.NewGroup() // the largest group grows: a new request may go
		if got := c.RequestNewGroup(); got != v.takes {
			t.Fatalf("draft-%s edge: RequestNewGroup = %v, want %v", v.draft, got, v.takes)
		}
		expect("draft-"+v.draft+" edge consumer", v.takes)
		g.Close()
		c.Close()
		ecancel()
	}
}
