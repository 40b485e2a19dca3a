package moq

import (
	"bytes"
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// stalledConn never hands incoming data streams to the session, like a
// subscriber whose application stopped reading: QUIC flow control then
// stops the relay's writes to it.
type stalledConn struct{ Conn }

func (c stalledConn) AcceptUniStream(ctx context.Context) (ReceiveStream, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestStalledSubscriberDoesNotDelayOthers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	limits := TrackLimits{MaxGroups: 4, MaxBytes: 4 << 20}
	ts := startServer(t, RelayConfig{TrackLimits: limits})
	url := "moqt://" + ts.addr
	pub := NewPublisher(Namespace{"live", "slow"}, TrackLimits{})
	ps := dialTest(t, ctx, url, Config{Handler: pub})
	if err := ps.PublishNamespace(ctx, pub.Namespace()); err != nil {
		t.Fatal(err)
	}
	video := pub.Track("video")
	big := bytes.Repeat([]byte{'v'}, 50<<10)
	write := func(g int) {
		grp := video.NewGroup()
		for o := 0; o < 10; o++ {
			if err := grp.Append(Object{ID: uint64(o), Payload: big}); err != nil {
				t.Fatal(err)
			}
		}
		grp.Close()
	}
	write(0)

	// The stalled subscriber: a real QUIC session that never reads data.
	qc, err := quic.DialAddr(ctx, ts.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN14}}, QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	stalled, err := Connect(ctx, stalledConn{NewQUICConn(qc)}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := stalled.Subscribe(ctx, Namespace{"live", "slow"}, "video", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	healthy := dialTest(t, ctx, url, Config{})
	hsub, err := healthy.Subscribe(ctx, Namespace{"live", "slow"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rd := hsub.Track.NewReader(false)
	const groups = 30 // 15 MB, far beyond what flow control lets the stalled one take
	for g := 1; g <= groups; g++ {
		write(g)
		gr, err := rd.NextGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			if _, err := gr.Next(ctx); err != nil {
				break
			}
			n++
		}
		if n != 10 && gr.ID() != 0 {
			t.Fatalf("healthy subscriber: group %d had %d objects", gr.ID(), n)
		}
	}
	// The relay dropped whole groups for the stalled subscriber, and its
	// cache stayed within bounds.
	var dropped uint64
	for _, s := range ts.srv.SessionList() {
		oo, bo, oi, bi, d := s.Stats()
		t.Logf("session %s: out %d objects %d bytes, in %d/%d, dropped %d", s.conn.RemoteAddr(), oo, bo, oi, bi, d)
		dropped += d
	}
	if dropped == 0 {
		t.Fatal("no group was dropped for the stalled subscriber")
	}
	for _, b := range ts.relay.Broadcasts() {
		for _, tr := range b.Tracks {
			if tr.CacheBytes > limits.MaxBytes {
				t.Fatalf("cache %d bytes over the %d limit", tr.CacheBytes, limits.MaxBytes)
			}
		}
	}
	t.Logf("groups dropped for the stalled subscriber: %d of %d", dropped, groups)
}
