package moq

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// healthyPair publishes live/good and subscribes to its video; expectGroup
// reads the next group and checks it has its 2 objects (group 0 is read).
func healthyPair(t *testing.T, ctx context.Context, url string) (good *Publisher, expectGroup func(), pub, viewer *Session) {
	t.Helper()
	good = NewPublisher(Namespace{"live", "good"}, TrackLimits{})
	pub = dialTest(t, ctx, url, Config{Handler: good})
	if err := pub.PublishNamespace(ctx, good.Namespace()); err != nil {
		t.Fatal(err)
	}
	writeGroup(t, good.Track("video"), 0, 2)
	viewer = dialTest(t, ctx, url, Config{})
	vsub, err := viewer.Subscribe(ctx, Namespace{"live", "good"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vr := vsub.Track.NewReader(false)
	expectGroup = func() {
		t.Helper()
		g, err := vr.NextGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			if _, err := g.Next(ctx); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("healthy group %d: %v", g.ID(), err)
			}
			n++
		}
		if n != 2 {
			t.Fatalf("healthy group %d has %d objects", g.ID(), n)
		}
	}
	expectGroup()
	return good, expectGroup, pub, viewer
}

// TestChaos: a publisher killed mid-group and a client flooding SUBSCRIBEs
// disturb nobody else: another broadcast's subscriber keeps receiving
// every group, and the flooder is closed with TOO_MANY_REQUESTS.
func TestChaos(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{GracePeriod: 300 * time.Millisecond})
	url := "moqt://" + ts.addr

	good, expectGroup, gp, viewer := healthyPair(t, ctx, url)

	// A publisher killed in the middle of a group.
	bad := NewPublisher(Namespace{"live", "bad"}, TrackLimits{})
	bp := dialTest(t, ctx, url, Config{Handler: bad})
	if err := bp.PublishNamespace(ctx, bad.Namespace()); err != nil {
		t.Fatal(err)
	}
	writeGroup(t, bad.Track("video"), 0, 2)
	bv := dialTest(t, ctx, url, Config{})
	bsub, err := bv.Subscribe(ctx, Namespace{"live", "bad"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	half := bad.Track("video").NewGroup()
	half.Append(Object{ID: 0, Payload: payload(1, 0)})
	time.Sleep(100 * time.Millisecond)
	bp.conn.CloseWithError(0x1, "killed")
	select {
	case <-bsub.Done(): // PUBLISH_DONE after the grace period
	case <-time.After(10 * time.Second):
		t.Fatal("the dead publisher's subscriber never got PUBLISH_DONE")
	}

	// A SUBSCRIBE flood past MAX_REQUEST_ID.
	qc, st := rawClient(t, ctx, ts.addr)
	var flood []byte
	for id := uint64(0); id < 2*200+2; id += 2 {
		b, err := wire.AppendMessage(nil, &wire.Subscribe{RequestID: id, Namespace: []string{"live", "good"},
			TrackName: "video", Forward: true, FilterType: wire.FilterLargestObject})
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, b...)
	}
	st.Write(flood)
	select {
	case <-qc.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the flooding client was not closed")
	}
	var ae *quic.ApplicationError
	if !errors.As(context.Cause(qc.Context()), &ae) || uint64(ae.ErrorCode) != wire.TooManyRequests {
		t.Fatalf("flooder closed with %v, want TOO_MANY_REQUESTS", context.Cause(qc.Context()))
	}

	// Through all of it the healthy viewer gets every new group.
	for g := 1; g <= 3; g++ {
		writeGroup(t, good.Track("video"), g, 2)
		expectGroup()
	}
	if viewer.Err() != nil || gp.Err() != nil {
		t.Fatalf("healthy sessions ended: %v / %v", viewer.Err(), gp.Err())
	}
}
