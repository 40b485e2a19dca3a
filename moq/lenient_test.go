package moq

// Values deployed clients send that the drafts forbid or leave unclear are
// accepted for what the client means, and a bad value in a request refuses
// that request only (README "Leniency"). The peers are Eyevinn/moqtransport
// v0.9.0 and, where it is the client that sends the value, Shaka Player's
// exact bytes on a raw QUIC session.

import (
	"bufio"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/Eyevinn/moqtransport"
	"github.com/quic-go/quic-go"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// eyCode is the error code of a refused Eyevinn request.
func eyCode(t *testing.T, err error) uint64 {
	t.Helper()
	var pe moqtransport.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v (%T), want a refused request", err, err)
	}
	return pe.Code()
}

// syncControl returns once moqgate has handled every control message es
// sent before: a SUBSCRIBE on the same control stream is answered only
// after them.
func syncControl(t *testing.T, ctx context.Context, es *moqtransport.Session) {
	t.Helper()
	if _, err := es.Subscribe(ctx, []string{"live", "nothing-here"}, "video"); err == nil {
		t.Fatal("SUBSCRIBE to a missing broadcast succeeded")
	}
}

// moqtransport v0.9.0 sends start {0, 0} in every SUBSCRIBE_UPDATE that does
// not set a start, which draft-14 forbids once the subscription starts
// later (the start moves backwards): the start is kept and the rest
// (forward here) applies.
func TestLenientSubscribeUpdateStartBackwards(t *testing.T) {
	tr := eyTransports[0]
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	const perGroup = 3
	pub, _ := moqgatePublisher(t, ctx, tr.url(ts.addr), Namespace{"live", "upd"})
	video := pub.Track("video")
	writeGroup(t, video, 0, perGroup)
	writeGroup(t, video, 1, perGroup)
	es := &moqtransport.Session{}
	dialEyevinn(t, ctx, ts.addr, tr, es)
	rt, err := es.Subscribe(ctx, []string{"live", "upd"}, "video",
		moqtransport.WithFilterType(moqtransport.FilterTypeAbsoluteStart), moqtransport.WithStartLocation(moqtransport.Location{Group: 1}))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := eyReadObjects(ctx, rt, perGroup)
	if err == nil {
		err = checkMoqgateObjects(objs, groupLocs(1, 1, perGroup))
	}
	if err != nil {
		t.Fatal(err)
	}

	// Pause: nothing of group 2 arrives.
	if err := es.UpdateSubscription(ctx, rt.RequestID(), moqtransport.WithUpdateForward(false)); err != nil {
		t.Fatal(err)
	}
	syncControl(t, ctx, es)
	writeGroup(t, video, 2, perGroup)
	if err := eyNoMore(ctx, rt, 300*time.Millisecond); err != nil {
		t.Fatalf("paused subscription: %v", err)
	}

	// Resume: delivery goes on, never before the start (group 1), so the
	// session and the subscription survived both updates.
	if err := es.UpdateSubscription(ctx, rt.RequestID(), moqtransport.WithUpdateForward(true)); err != nil {
		t.Fatal(err)
	}
	syncControl(t, ctx, es)
	writeGroup(t, video, 3, perGroup)
	var got []loc
	for n := 0; n < perGroup; {
		o, err := eyReadObjects(ctx, rt, 1)
		if err != nil {
			t.Fatalf("after resuming (got %v): %v", got, err)
		}
		got = append(got, loc{o[0].GroupID, o[0].ObjectID})
		if o[0].GroupID == 3 {
			n++
		}
	}
	for _, l := range got {
		if l.g < 2 {
			t.Fatalf("group %d delivered again after resuming: %v", l.g, got)
		}
	}
}

// A range whose end is before its start is INVALID_RANGE in both drafts'
// error registries: the request is refused, the session goes on.
func TestLenientInvalidRangeRefusesOnlyTheRequest(t *testing.T) {
	for _, tr := range []eyTransport{eyTransports[0], eyTransports16[0]} {
		t.Run(tr.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			ts := startServer(t, RelayConfig{})
			pub, _ := moqgatePublisher(t, ctx, tr.url(ts.addr), Namespace{"live", "range"})
			writeGroup(t, pub.Track("video"), 0, 3)
			es := &moqtransport.Session{}
			dialEyevinn(t, ctx, ts.addr, tr, es)
			ns := []string{"live", "range"}

			_, err := es.Subscribe(ctx, ns, "video", moqtransport.WithFilterType(moqtransport.FilterTypeAbsoluteRange),
				moqtransport.WithStartLocation(moqtransport.Location{Group: 5}), moqtransport.WithEndGroup(2))
			want := uint64(wire.SubscribeErrorInvalidRange)
			if tr.draft16 {
				want = 0x11 // REQUEST_ERROR INVALID_RANGE
			}
			if code := eyCode(t, err); code != want {
				t.Fatalf("SUBSCRIBE end group before start: code %#x, want INVALID_RANGE %#x", code, want)
			}
			if !tr.draft16 { // Eyevinn's draft-16 FETCH has draft-14's layout
				_, err = es.Fetch(ctx, ns, "video", moqtransport.WithFetchStartLocation(moqtransport.Location{Group: 3}),
					moqtransport.WithFetchEndLocation(moqtransport.Location{Group: 1, Object: 2}))
				if code := eyCode(t, err); code != wire.FetchErrorInvalidRange {
					t.Fatalf("FETCH end before start: code %#x, want INVALID_RANGE", code)
				}
			}
			rt, err := es.Subscribe(ctx, ns, "video")
			if err != nil {
				t.Fatalf("SUBSCRIBE after the refusals: %v", err)
			}
			objs, err := eyReadObjects(ctx, rt, 3)
			if err == nil {
				err = checkMoqgateObjects(objs, groupLocs(0, 0, 3))
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// @moq/net's announced() with no prefix sends SUBSCRIBE_NAMESPACE with an
// empty prefix, which draft-14 forbids and draft-16 allows: it matches
// every namespace.
func TestLenientEmptyNamespacePrefix(t *testing.T) {
	tr := eyTransports[0]
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	url := tr.url(ts.addr)
	moqgatePublisher(t, ctx, url, Namespace{"live", "a"})
	moqgatePublisher(t, ctx, url, Namespace{"other", "b"})
	h := newEyHandler()
	es := &moqtransport.Session{Handler: h}
	dialEyevinn(t, ctx, ts.addr, tr, es)
	if err := es.SubscribeAnnouncements(ctx, []string{}); err != nil {
		t.Fatalf("SUBSCRIBE_NAMESPACE with an empty prefix: %v", err)
	}
	var got []string
	for len(got) < 2 {
		select {
		case ns := <-h.announces:
			got = append(got, Namespace(ns).Path())
		case <-time.After(5 * time.Second):
			t.Fatalf("announced %v, want live/a and other/b", got)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"live/a", "other/b"}) {
		t.Fatalf("announced %v, want live/a and other/b", got)
	}
}

// Shaka Player 5.2.12's draft-16 SUBSCRIBE, byte for byte: FORWARD 1,
// SUBSCRIBER_PRIORITY 0, SUBSCRIPTION_FILTER Largest Object, GROUP_ORDER 0
// ("the publisher's preference"); then a draft-16 FETCH with GROUP_ORDER 0
// (Shaka's FETCH asks for 0 too, though in draft-14's layout). Both are
// served in the publisher's order.
func TestLenientShakaDraft16GroupOrder0(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	pub, _ := moqgatePublisher(t, ctx, "moqt://"+ts.addr, Namespace{"live", "shaka"})
	writeGroup(t, pub.Track("video"), 0, 3)
	codec := wire.Draft16{RequestType: func(uint64) uint64 { return wire.MsgFetch }}
	qc, ctrl, cr := rawClient16(t, ctx, ts.addr, codec)
	tail := []byte{0x02, 0x04, 'l', 'i', 'v', 'e', 0x05, 's', 'h', 'a', 'k', 'a', 0x05, 'v', 'i', 'd', 'e', 'o'}
	sub := append([]byte{0x00}, tail...)
	sub = append(sub, 0x04, 0x10, 0x01, 0x10, 0x00, 0x01, 0x01, 0x02, 0x01, 0x00)
	ctrl.Write(frame16(0x03, sub))
	ok := readReply16[*wire.SubscribeOK](t, codec, cr)
	if ok.RequestID != 0 || ok.GroupOrder != wire.GroupOrderAscending {
		t.Fatalf("SUBSCRIBE_OK %+v, want request 0 in ascending order", ok)
	}
	fetch := append([]byte{0x02, 0x01}, tail...)
	fetch = append(fetch, 0x00, 0x00, 0x01, 0x00, 0x01, 0x22, 0x00)
	ctrl.Write(frame16(0x16, fetch))
	fok := readReply16[*wire.FetchOK](t, codec, cr)
	if fok.RequestID != 2 || fok.GroupOrder != wire.GroupOrderAscending {
		t.Fatalf("FETCH_OK %+v, want request 2 in ascending order", fok)
	}
	if qc.Context().Err() != nil {
		t.Fatalf("session closed: %v", context.Cause(qc.Context()))
	}
}

// Shaka's MsfFilterType.NONE puts filter type 0 on the wire (draft-14
// here): served as the unfiltered subscription, from the oldest cached
// group rather than the newest.
func TestLenientFilterTypeNone(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	url := "moqt://" + ts.addr
	ns := Namespace{"live", "none"}
	pub, _ := moqgatePublisher(t, ctx, url, ns)
	video := pub.Track("video")
	keeper := dialTest(t, ctx, url, Config{}) // the relay caches what it is subscribed to
	if _, err := keeper.Subscribe(ctx, ns, "video", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	writeGroup(t, video, 0, 3)
	writeGroup(t, video, 1, 3)
	waitRelayCache(t, ctx, ts.relay, "live/none", "video", 2, 3)

	qc, ctrl := rawClient(t, ctx, ts.addr)
	// SUBSCRIBE: request 0, ("live","none")/"video", priority 0, group
	// order 0, forward 1, filter type 0, no parameters.
	ctrl.Write(frame16(0x03, []byte{0x00, 0x02, 0x04, 'l', 'i', 'v', 'e', 0x04, 'n', 'o', 'n', 'e',
		0x05, 'v', 'i', 'd', 'e', 'o', 0x00, 0x00, 0x01, 0x00, 0x00}))
	ok := readReply16[*wire.SubscribeOK](t, wire.Draft14{}, bufio.NewReader(ctrl))
	if !ok.ContentExists || ok.Largest.Group != 1 {
		t.Fatalf("SUBSCRIBE_OK %+v", ok)
	}
	// One stream per group, opened concurrently: any order.
	got := []uint64{streamGroup(t, ctx, qc), streamGroup(t, ctx, qc)}
	slices.Sort(got)
	if !slices.Equal(got, []uint64{0, 1}) {
		t.Fatalf("groups delivered %v, want 0 and 1 (unfiltered)", got)
	}
}

// frame16 frames a control message payload (both drafts frame alike).
func frame16(typ byte, payload []byte) []byte {
	return append([]byte{typ, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

// readReply16 reads the next control message, which must be a T.
func readReply16[T wire.Message](t *testing.T, codec wire.Codec, r *bufio.Reader) T {
	t.Helper()
	for {
		m, err := codec.ReadMessage(r)
		if err != nil {
			t.Fatalf("reading the reply: %v", err)
		}
		if _, grant := m.(*wire.MaxRequestID); grant {
			continue
		}
		v, ok := m.(T)
		if !ok {
			t.Fatalf("got %T %+v, want %T", m, m, v)
		}
		return v
	}
}

// streamGroup returns the group of the next subgroup stream moqgate opens.
func streamGroup(t *testing.T, ctx context.Context, qc *quic.Conn) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := qc.AcceptUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := wire.NewStreamReader(st)
	typ, err := r.ReadStreamType()
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.ReadSubgroupHeader(typ)
	if err != nil {
		t.Fatal(err)
	}
	return h.GroupID
}

// A reply that comes after moqgate stopped waiting for it (its request
// timed out) is no reason to close the session: the late SUBSCRIBE_OK is
// answered with UNSUBSCRIBE, and the publisher's session carries on.
func TestLenientLateReplyToAbandonedRequest(t *testing.T) {
	tr := eyTransports[0]
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServerWith(t, RelayConfig{}, Config{RequestTimeout: 300 * time.Millisecond})
	ns := []string{"live", "slow"}
	release := make(chan struct{})
	late := make(chan *moqtransport.SubscribeResponseWriter, 1)
	first := true
	es := &moqtransport.Session{
		SubscribeHandler: moqtransport.SubscribeHandlerFunc(func(w *moqtransport.SubscribeResponseWriter, m *moqtransport.SubscribeMessage) {
			// Eyevinn answers on its control loop: the first SUBSCRIBE
			// is answered only after the relay gave up on it.
			if first {
				first = false
				select {
				case <-release:
				case <-ctx.Done():
				}
				late <- w
			}
			if err := w.Accept(); err != nil {
				t.Errorf("eyevinn: accept SUBSCRIBE: %v", err)
			}
		}),
	}
	dialEyevinn(t, ctx, ts.addr, tr, es)
	if err := es.Announce(ctx, ns); err != nil {
		t.Fatal(err)
	}
	viewer := dialTest(t, ctx, tr.url(ts.addr), Config{})
	if _, err := viewer.Subscribe(ctx, Namespace(ns), "video", SubscribeOptions{}); err == nil {
		t.Fatal("SUBSCRIBE succeeded while the publisher did not answer")
	}
	close(release)
	w := <-late
	// The late subscription is ended with UNSUBSCRIBE...
	for {
		sg, err := w.OpenSubgroup(0, 0, 128)
		if errors.Is(err, moqtransport.ErrUnsusbcribed) {
			break
		} else if err != nil {
			t.Fatalf("open a subgroup of the late subscription: %v", err)
		}
		sg.Close()
		select {
		case <-ctx.Done():
			t.Fatal("no UNSUBSCRIBE for the late SUBSCRIBE_OK")
		case <-time.After(20 * time.Millisecond):
		}
	}
	// ...and the publisher is still there for the next subscriber.
	if _, err := viewer.Subscribe(ctx, Namespace(ns), "video", SubscribeOptions{}); err != nil {
		t.Fatalf("SUBSCRIBE after the late reply: %v", err)
	}
	if !ts.relay.HasBroadcast("live/slow") {
		t.Fatal("the publisher's session ended")
	}
}
