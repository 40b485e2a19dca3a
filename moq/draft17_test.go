package moq

// Draft-17 at the byte level: the control stream pair, a request on a
// stream of its own answered there, the end of the stream as the end of
// the request, and input the relay must refuse (closing only that
// session).

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// dialRawQUIC opens a raw QUIC connection offering alpn, closed when the
// test ends.
func dialRawQUIC(t *testing.T, ctx context.Context, addr, alpn string) *quic.Conn {
	t.Helper()
	qc, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}}, QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qc.CloseWithError(0, "") })
	return qc
}

// rawClient17 opens a raw QUIC moqt-17 connection and exchanges SETUP.
func rawClient17(t *testing.T, ctx context.Context, addr string) *quic.Conn {
	t.Helper()
	qc := dialRawQUIC(t, ctx, addr, ALPN17)
	out, err := qc.OpenUniStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write16(t, out, wire.Draft17{Client: true}, &wire.ClientSetup{Params: wire.Params{{Key: wire.ParamImplementation, Bytes: []byte("raw")}}})
	in, err := qc.AcceptUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := (wire.Draft17{Client: true}).ReadMessage(bufio.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	ss, ok := m.(*wire.ServerSetup)
	if !ok {
		t.Fatalf("setup reply %+v", m)
	}
	if _, ok := ss.Params.Uint(wire.ParamMaxRequestID); ok {
		t.Error("SETUP with MAX_REQUEST_ID (draft-17 has none)")
	}
	if b, _ := ss.Params.Bytes(wire.ParamImplementation); string(b) != "moqgate" {
		t.Errorf("server implementation %q", b)
	}
	return qc
}

// request17 opens a request stream and writes m.
func request17(t *testing.T, ctx context.Context, qc *quic.Conn, m wire.Message) (*quic.Stream, *bufio.Reader) {
	t.Helper()
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write16(t, st, wire.Draft17{Client: true}, m)
	return st, bufio.NewReader(st)
}

func TestDraft17RequestStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	pub := NewPublisher(Namespace{"live", "raw"}, TrackLimits{MaxGroups: 4})
	ps := dialVersion(t, ctx, "moqt://"+ts.addr, wire.Version17, Config{Handler: pub})
	if err := ps.PublishNamespace(ctx, Namespace{"live", "raw"}); err != nil {
		t.Fatal(err)
	}
	writeCrossGroup(t, pub.Track("video"), 0, 2)
	qc := rawClient17(t, ctx, ts.addr)
	c := wire.Draft17{Client: true}

	// A refusal is REQUEST_ERROR (no request ID: the stream names the
	// request), then FIN.
	_, r := request17(t, ctx, qc, &wire.Subscribe{RequestID: 0, Namespace: []string{"live", "nope"}, TrackName: "video", FilterType: wire.FilterLargestObject, Forward: true})
	m, err := c.ReadReply(r, 0, wire.MsgSubscribe)
	if se, isErr := m.(*wire.SubscribeError); err != nil || !isErr || se.ErrorCode != wire.SubscribeErrorTrackDoesNotExist {
		t.Fatalf("reply %#v %v, want REQUEST_ERROR DOES_NOT_EXIST", m, err)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after REQUEST_ERROR: %v, want FIN", err)
	}

	// A subscription: SUBSCRIBE_OK on its stream, objects on data streams
	// (the relay starts it at the newest group's first object).
	st, r := request17(t, ctx, qc, &wire.Subscribe{RequestID: 2, Namespace: []string{"live", "raw"}, TrackName: "video", FilterType: wire.FilterNextGroupStart, Forward: true})
	m, err = c.ReadReply(r, 2, wire.MsgSubscribe)
	ok, isOK := m.(*wire.SubscribeOK)
	if err != nil || !isOK {
		t.Fatalf("reply %#v %v", m, err)
	}
	writeCrossGroup(t, pub.Track("video"), 1, 2)
	ds, err := qc.AcceptUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dr := c.NewStreamReader(ds)
	typ, err := dr.ReadStreamType()
	if err != nil {
		t.Fatal(err)
	}
	h, err := dr.ReadSubgroupHeader(typ)
	if err != nil || h.TrackAlias != ok.TrackAlias {
		t.Fatalf("subgroup header %+v %v (alias %d)", h, err, ok.TrackAlias)
	}
	for i := range 2 {
		oh, err := dr.ReadSubgroupObject(h, uint64(i)-1, i == 0, 1<<20)
		if err != nil || oh.ObjectID != uint64(i) {
			t.Fatalf("object %d: %+v %v", i, oh, err)
		}
		want := crossObject(int(h.GroupID), i)
		got := make([]byte, oh.PayloadLen)
		if _, err := io.ReadFull(dr, got); err != nil || string(got) != string(want.Payload) {
			t.Fatalf("object %d payload %q %v", i, got, err)
		}
	}

	// Resetting the request stream ends the subscription (draft-17 has no
	// UNSUBSCRIBE): the relay's session for this client drops it.
	served := func() int {
		n := 0
		for _, s := range ts.srv.SessionList() {
			if s.PeerImplementation() == "raw" {
				s.mu.Lock()
				n += len(s.subsIn)
				s.mu.Unlock()
			}
		}
		return n
	}
	if served() != 1 {
		t.Fatalf("%d subscriptions served, want 1", served())
	}
	st.CancelWrite(wire.ResetCancelled)
	st.CancelRead(wire.ResetCancelled)
	deadline := time.Now().Add(5 * time.Second)
	for served() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription outlived its stream")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Without MAX_REQUEST_ID, a request beyond MaxRequests is refused with
// REQUEST_ERROR EXCESSIVE_LOAD (and a retry interval); the session stays.
func TestDraft17RequestLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServerWith(t, RelayConfig{}, Config{MaxRequests: 2})
	pub := NewPublisher(Namespace{"live", "raw"}, TrackLimits{MaxGroups: 4})
	ps := dialVersion(t, ctx, "moqt://"+ts.addr, wire.Version17, Config{Handler: pub})
	if err := ps.PublishNamespace(ctx, Namespace{"live", "raw"}); err != nil {
		t.Fatal(err)
	}
	writeCrossGroup(t, pub.Track("video"), 0, 1)
	qc := rawClient17(t, ctx, ts.addr)
	c := wire.Draft17{Client: true}
	var readers []*bufio.Reader
	for i := uint64(0); i < 3; i++ {
		_, r := request17(t, ctx, qc, &wire.Subscribe{RequestID: 2 * i, Namespace: []string{"live", "raw"}, TrackName: "video", FilterType: wire.FilterLargestObject, Forward: true})
		readers = append(readers, r)
		if i < 2 {
			if m, err := c.ReadReply(r, 2*i, wire.MsgSubscribe); err != nil {
				t.Fatal(err)
			} else if _, ok := m.(*wire.SubscribeOK); !ok {
				t.Fatalf("subscription %d: %#v", i, m)
			}
		}
	}
	m, err := c.ReadReply(readers[2], 4, wire.MsgSubscribe)
	se, ok := m.(*wire.SubscribeError)
	if err != nil || !ok || se.ErrorCode != reqExcessiveLoad || se.RetryInterval == 0 {
		t.Fatalf("third subscription: %#v %v, want REQUEST_ERROR EXCESSIVE_LOAD", m, err)
	}
	if qc.Context().Err() != nil {
		t.Fatal("session closed")
	}
}

func TestDraft17BadInputClosesOnlyThatSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	bystander := dialVersion(t, ctx, "moqt://"+ts.addr, wire.Version17, Config{})
	sub := &wire.Subscribe{RequestID: 0, Namespace: []string{"a"}, TrackName: "b", FilterType: wire.FilterLargestObject, Forward: true}
	for _, c := range []struct {
		name string
		code uint64
		send func(t *testing.T, qc *quic.Conn)
	}{
		{"a reply opening a request stream", wire.ProtocolViolation, func(t *testing.T, qc *quic.Conn) {
			request17(t, ctx, qc, &wire.PublishNamespaceOK{})
		}},
		{"draft-16 UNSUBSCRIBE", wire.ProtocolViolation, func(t *testing.T, qc *quic.Conn) {
			st, _ := request17(t, ctx, qc, sub)
			st.Write([]byte{0x0a, 0x00, 0x01, 0x00})
		}},
		{"unknown parameter", wire.ProtocolViolation, func(t *testing.T, qc *quic.Conn) {
			st, err := qc.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st.Write([]byte{0x03, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x06, 0x01})
		}},
		{"required request ID beyond the request", wire.InvalidRequiredRequestID, func(t *testing.T, qc *quic.Conn) {
			st, err := qc.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st.Write([]byte{0x03, 0x00, 0x07, 0x02, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x00})
		}},
		{"two requests with one ID", wire.InvalidRequestID, func(t *testing.T, qc *quic.Conn) {
			request17(t, ctx, qc, sub)
			time.Sleep(50 * time.Millisecond)
			request17(t, ctx, qc, sub)
		}},
		{"request ID of the server's parity", wire.InvalidRequestID, func(t *testing.T, qc *quic.Conn) {
			s := *sub
			s.RequestID = 1
			request17(t, ctx, qc, &s)
		}},
		{"invalid varint", wire.ProtocolViolation, func(t *testing.T, qc *quic.Conn) {
			st, err := qc.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st.Write([]byte{0xfc, 0, 0, 0, 0, 0, 0})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			qc := rawClient17(t, ctx, ts.addr)
			c.send(t, qc)
			if code := closeCode(t, qc); code != c.code {
				t.Fatalf("closed with %#x, want %#x", code, c.code)
			}
		})
	}
	if bystander.Err() != nil {
		t.Fatalf("another session ended: %v", bystander.Err())
	}
}

// GOAWAY (draft-17: on the control stream, with a Timeout) reaches the
// client in every draft: it then makes no new requests.
func TestGoAwayEveryDraft(t *testing.T) {
	for _, v := range []uint64{wire.Version14, wire.Version16, wire.Version17} {
		t.Run(fmt.Sprintf("%#x", v), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			ts := startServer(t, RelayConfig{})
			cs := dialVersion(t, ctx, "moqt://"+ts.addr, v, Config{Implementation: "goaway-test"})
			var ss *Session
			for ss == nil && ctx.Err() == nil {
				for _, s := range ts.srv.SessionList() {
					if s.PeerImplementation() == "goaway-test" {
						ss = s
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			if ss == nil {
				t.Fatal("no server session")
			}
			if err := ss.GoAway("moqt://elsewhere.example/"); err != nil {
				t.Fatal(err)
			}
			for {
				_, err := cs.Subscribe(ctx, Namespace{"live", "x"}, "video", SubscribeOptions{})
				if err != nil && strings.Contains(err.Error(), "GOAWAY") {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("requests still made after GOAWAY: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if cs.Err() != nil {
				t.Fatalf("session ended: %v", cs.Err())
			}
		})
	}
}

// Each draft-17 FETCH has a stream of its own, closed by both ends once the
// objects are in: more fetches than the transport allows streams at once
// all succeed.
func TestDraft17ManyFetches(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	ns := Namespace{"live", "fetch"}
	pub := NewPublisher(ns, TrackLimits{MaxGroups: 4})
	ps := dialVersion(t, ctx, "moqt://"+ts.addr, wire.Version17, Config{Handler: pub})
	if err := ps.PublishNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ss := dialVersion(t, ctx, "moqt://"+ts.addr, wire.Version17, Config{})
	// A subscription fills the relay's cache, which the fetches read.
	writeCrossGroup(t, pub.Track("video"), 0, 3)
	sub, err := ss.Subscribe(ctx, ns, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeCrossGroup(t, pub.Track("video"), 1, 3)
	// The subscription starts at group 0 or 1 (whichever is newest when it
	// reaches the relay): wait for group 1 whole.
	rd := sub.Track.NewReader(false)
	for {
		gr, err := rd.NextGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if gr.ID() == 1 {
			if err := readWholeGroup(ctx, gr); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	n := int(QUICConfig().MaxIncomingStreams) + 20
	for i := range n {
		f, err := ss.Fetch(ctx, ns, "video", Location{1, 0}, Location{1, 3}, 0)
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		got := 0
		for {
			o, err := f.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("fetch %d: %v", i, err)
			}
			if err := checkCrossObject(1, o); err != nil {
				t.Fatalf("fetch %d: %v", i, err)
			}
			got++
		}
		if got != 3 {
			t.Fatalf("fetch %d: %d objects, want 3", i, got)
		}
	}
}

// readWholeGroup reads a group to its end.
func readWholeGroup(ctx context.Context, gr *GroupReader) error {
	for {
		if _, err := gr.Next(ctx); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}
