package moq

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// rawClient opens a raw QUIC connection and a control stream and sends a
// valid CLIENT_SETUP, then lets the test write whatever it wants.
func rawClient(t *testing.T, ctx context.Context, addr string) (*quic.Conn, *quic.Stream) {
	t.Helper()
	qc := dialRawQUIC(t, ctx, addr, ALPN14)
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.AppendMessage(nil, &wire.ClientSetup{Versions: []uint64{wire.Version14},
		Params: wire.Params{{Key: wire.ParamMaxRequestID, Value: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(b); err != nil {
		t.Fatal(err)
	}
	m, err := wire.ReadMessage(st)
	if err != nil {
		t.Fatal(err)
	}
	if ss, ok := m.(*wire.ServerSetup); !ok || ss.Version != wire.Version14 {
		t.Fatalf("setup reply %+v", m)
	}
	if max, _ := m.(*wire.ServerSetup).Params.Uint(wire.ParamMaxRequestID); max == 0 {
		t.Fatal("SERVER_SETUP without MAX_REQUEST_ID")
	}
	return qc, st
}

func closeCode(t *testing.T, qc *quic.Conn) uint64 {
	t.Helper()
	select {
	case <-qc.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session not closed")
	}
	var ae *quic.ApplicationError
	if !errors.As(context.Cause(qc.Context()), &ae) {
		t.Fatalf("closed with %v", context.Cause(qc.Context()))
	}
	return uint64(ae.ErrorCode)
}

func mustMsg(t *testing.T, m wire.Message) []byte {
	t.Helper()
	b, err := wire.AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadControlInputClosesOnlyThatSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	url := "moqt://" + ts.addr
	// A healthy publisher and subscriber that must carry on throughout.
	pub := NewPublisher(Namespace{"live", "ok"}, TrackLimits{})
	ps := dialTest(t, ctx, url, Config{Handler: pub})
	if err := ps.PublishNamespace(ctx, pub.Namespace()); err != nil {
		t.Fatal(err)
	}
	video := pub.Track("video")
	writeGroup(t, video, 0, 3)
	good := dialTest(t, ctx, url, Config{})
	gsub, err := good.Subscribe(ctx, Namespace{"live", "ok"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reader := gsub.Track.NewReader(false)

	long := strings.Repeat("x", 5000)
	ns33 := make([]string, 33)
	for i := range ns33 {
		ns33[i] = "a"
	}
	cases := []struct {
		name string
		data func() []byte
		fin  bool
		code uint64
	}{
		{"truncated varint", func() []byte { return []byte{0x40} }, true, wire.ProtocolViolation},
		{"unknown message type", func() []byte { return []byte{0x3f, 0x00, 0x00} }, false, wire.ProtocolViolation},
		{"length too short", func() []byte {
			b := mustMsg(t, &wire.Subscribe{RequestID: 0, Namespace: []string{"live"}, TrackName: "v", Forward: true, FilterType: wire.FilterLargestObject})
			// Claim two bytes fewer than the payload holds.
			n := int(b[1])<<8 | int(b[2])
			b[1], b[2] = byte((n-2)>>8), byte(n-2)
			return b
		}, false, wire.ProtocolViolation},
		{"length too long", func() []byte {
			b := mustMsg(t, &wire.Unsubscribe{RequestID: 4})
			n := int(b[1])<<8 | int(b[2])
			b[1], b[2] = byte((n+1)>>8), byte(n+1)
			return append(b, 0x00)
		}, false, wire.ProtocolViolation},
		{"oversize namespace", func() []byte {
			// Hand-built: 33 namespace fields, which the encoder refuses.
			p := wire.AppendVarint(nil, 0) // request ID
			p = wire.AppendVarint(p, 33)
			for range 33 {
				p = wire.AppendVarint(p, 1)
				p = append(p, 'a')
			}
			p = wire.AppendVarint(p, 1)
			p = append(p, 'v')
			p = append(p, 0, 0, 1)
			p = wire.AppendVarint(p, wire.FilterLargestObject)
			p = wire.AppendVarint(p, 0)
			b := wire.AppendVarint(nil, wire.MsgSubscribe)
			b = append(b, byte(len(p)>>8), byte(len(p)))
			return append(b, p...)
		}, false, wire.ProtocolViolation},
		{"oversize track name", func() []byte {
			p := wire.AppendVarint(nil, 0)
			p = wire.AppendVarint(p, 1)
			p = wire.AppendVarint(p, 1)
			p = append(p, 'a')
			p = wire.AppendVarint(p, uint64(len(long)))
			p = append(p, long...)
			p = append(p, 0, 0, 1)
			p = wire.AppendVarint(p, wire.FilterLargestObject)
			p = wire.AppendVarint(p, 0)
			b := wire.AppendVarint(nil, wire.MsgSubscribe)
			b = append(b, byte(len(p)>>8), byte(len(p)))
			return append(b, p...)
		}, false, wire.ProtocolViolation},
		{"request ID of the wrong parity", func() []byte {
			return mustMsg(t, &wire.Subscribe{RequestID: 1, Namespace: []string{"live", "ok"}, TrackName: "video", Forward: true, FilterType: wire.FilterLargestObject})
		}, false, wire.InvalidRequestID},
		{"request ID skipped", func() []byte {
			return mustMsg(t, &wire.Subscribe{RequestID: 6, Namespace: []string{"live", "ok"}, TrackName: "video", Forward: true, FilterType: wire.FilterLargestObject})
		}, false, wire.InvalidRequestID},
		{"second CLIENT_SETUP", func() []byte {
			return mustMsg(t, &wire.ClientSetup{Versions: []uint64{wire.Version14}})
		}, false, wire.ProtocolViolation},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			qc, st := rawClient(t, ctx, ts.addr)
			if _, err := st.Write(tc.data()); err != nil {
				t.Fatal(err)
			}
			if tc.fin {
				st.Close()
			}
			if code := closeCode(t, qc); code != tc.code {
				t.Fatalf("closed with code %#x, want %#x", code, tc.code)
			}
			// The healthy session still gets every new group.
			writeGroup(t, video, i+1, 3)
			g, err := reader.NextGroup(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := g.Next(ctx); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if good.Err() != nil || ps.Err() != nil {
		t.Fatalf("healthy sessions ended: %v / %v", good.Err(), ps.Err())
	}
}

func TestVersionNegotiationFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	qc, err := quic.DialAddr(ctx, ts.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN14}}, QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := qc.OpenStreamSync(ctx)
	st.Write(mustMsg(t, &wire.ClientSetup{Versions: []uint64{0xff000007}}))
	if code := closeCode(t, qc); code != wire.VersionNegotiationFailed {
		t.Fatalf("code %#x", code)
	}
}

func TestLateJoinerAndFetch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	url := "moqt://" + ts.addr
	pub := NewPublisher(Namespace{"live", "f"}, TrackLimits{})
	ps := dialTest(t, ctx, url, Config{Handler: pub})
	if err := ps.PublishNamespace(ctx, pub.Namespace()); err != nil {
		t.Fatal(err)
	}
	video := pub.Track("video")
	// Keep a subscriber so the relay caches the track.
	first := dialTest(t, ctx, url, Config{})
	fsub, err := first.Subscribe(ctx, Namespace{"live", "f"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rd := fsub.Track.NewReader(false)
	for g := 0; g < 3; g++ {
		writeGroup(t, video, g, 4)
		gr, err := rd.NextGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := gr.Next(ctx); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	// A late joiner with Largest Object starts at object 0 of group 2, and
	// SUBSCRIBE_OK reports the last object before it as Largest.
	late := dialTest(t, ctx, url, Config{})
	lsub, err := late.Subscribe(ctx, Namespace{"live", "f"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lsub.Largest != (Location{1, 3}) {
		t.Fatalf("largest %v", lsub.Largest)
	}
	got, err := readGroups(ctx, lsub.Track, 1, 4)
	if err != nil || got[0] != 2 {
		t.Fatalf("late joiner got %v, %v", got, err)
	}
	// Next Group Start waits for group 3.
	nsub, err := late.Subscribe(ctx, Namespace{"live", "f"}, "video", SubscribeOptions{Filter: wire.FilterNextGroupStart})
	if err != nil {
		t.Fatal(err)
	}
	writeGroup(t, video, 3, 4)
	got, err = readGroups(ctx, nsub.Track, 1, 4)
	if err != nil || got[0] != 3 {
		t.Fatalf("next-group subscriber got %v, %v", got, err)
	}
	// Standalone FETCH of groups 1..2 from the cache.
	f, err := late.Fetch(ctx, Namespace{"live", "f"}, "video", Location{1, 0}, Location{2, 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var locs []Location
	for {
		o, err := f.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(o.Payload, payload(int(o.GroupID), int(o.ID))) {
			t.Fatalf("fetched %v: wrong payload", Location{o.GroupID, o.ID})
		}
		locs = append(locs, Location{o.GroupID, o.ID})
	}
	if len(locs) != 8 || locs[0] != (Location{1, 0}) || locs[7] != (Location{2, 3}) {
		t.Fatalf("fetched %v", locs)
	}
	// A relative joining FETCH with offset 1 on a Largest Object
	// subscription that starts at group 3's first object: Largest is
	// {2, 3}, so the fetch is groups 1..2 — each object arrives exactly
	// once across the fetch and the subscription.
	jsub, err := late.Subscribe(ctx, Namespace{"live", "f"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	jf, err := late.JoiningFetch(ctx, jsub, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	locs = locs[:0]
	for {
		o, err := jf.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, Location{o.GroupID, o.ID})
	}
	if len(locs) != 8 || locs[0] != (Location{1, 0}) || locs[7] != (Location{2, 3}) {
		t.Fatalf("joining fetch got %v", locs)
	}
	got, err = readGroups(ctx, jsub.Track, 1, 4)
	if err != nil || got[0] != 3 {
		t.Fatalf("joined subscription got %v, %v", got, err)
	}
	// Out-of-range fetch.
	if _, err := late.Fetch(ctx, Namespace{"live", "f"}, "video", Location{50, 0}, Location{60, 0}, 0); err == nil {
		t.Fatal("fetch beyond the track succeeded")
	}
	// TRACK_STATUS.
	l, ok, err := late.TrackStatus(ctx, Namespace{"live", "f"}, "video")
	if err != nil || !ok || l != (Location{3, 3}) {
		t.Fatalf("track status %v %v %v", l, ok, err)
	}
}
