package moq

// Draft-16 beside draft-14: which version a connection gets, sessions of
// either draft meeting through the relay (raw QUIC and WebTransport), and
// draft-16 input the relay must refuse.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// dialVersion dials the server speaking version (wire.Version14/16).
func dialVersion(t testing.TB, ctx context.Context, url string, version uint64, cfg Config) *Session {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := Dial(ctx, url, DialOptions{Insecure: true, Session: cfg, Version: version})
	if err != nil {
		t.Fatalf("dial %s as %#x: %v", url, version, err)
	}
	t.Cleanup(func() { s.Close() })
	if s.Version() != version {
		t.Fatalf("session speaks %#x, want %#x", s.Version(), version)
	}
	return s
}

func TestProtocolSelection(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	versionOf := map[string]uint64{"": wire.Version14, ALPN14: wire.Version14, ALPN16: wire.Version16, ALPN17: wire.Version17}

	// WebTransport: the first protocol of the client's that we speak.
	for _, c := range []struct {
		offer []string
		want  string
	}{
		{[]string{ALPN16, ALPN14}, ALPN16}, // Shaka's "auto"
		{[]string{ALPN14, ALPN16}, ALPN14},
		{[]string{"moq-lite-05", "moqt-19", "moqt-18", "moqt-17", "moqt-16", "moqt-15"}, ALPN17}, // @moq/watch
		{[]string{ALPN16, ALPN17}, ALPN16}, // the client's order
		{[]string{ALPN14}, ALPN14},
		{[]string{"moqt-15"}, ""}, // nothing we speak: draft-14 in setup
		{nil, ""},
	} {
		d := &webtransport.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, QUICConfig: QUICConfig(), ApplicationProtocols: c.offer}
		_, ws, err := d.Dial(ctx, "https://"+ts.addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := ws.SessionState().ApplicationProtocol; got != c.want {
			t.Errorf("WebTransport offer %q: selected %q, want %q", c.offer, got, c.want)
		}
		s, err := Connect(ctx, NewWebTransportConn(ws), Config{Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("WebTransport offer %q: setup: %v", c.offer, err)
		}
		if s.Version() != versionOf[c.want] {
			t.Errorf("WebTransport offer %q: version %#x", c.offer, s.Version())
		}
		s.Close()
	}

	// Raw QUIC: the newest draft the client offers.
	for _, c := range []struct {
		offer []string
		want  string
	}{
		{[]string{ALPN14, ALPN16}, ALPN16},
		{[]string{ALPN14, ALPN16, ALPN17}, ALPN17},
		{[]string{ALPN17, ALPN14}, ALPN17},
		{[]string{ALPN16}, ALPN16},
		{[]string{ALPN14}, ALPN14},
	} {
		qc, err := quic.DialAddr(ctx, ts.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: c.offer}, QUICConfig())
		if err != nil {
			t.Fatal(err)
		}
		if got := qc.ConnectionState().TLS.NegotiatedProtocol; got != c.want {
			t.Errorf("QUIC offer %q: ALPN %q, want %q", c.offer, got, c.want)
		}
		s, err := Connect(ctx, NewQUICConn(qc), Config{Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("QUIC offer %q: setup: %v", c.offer, err)
		}
		if s.Version() != versionOf[c.want] {
			t.Errorf("QUIC offer %q: version %#x", c.offer, s.Version())
		}
		s.Close()
	}
	if _, err := Dial(ctx, "moqt://"+ts.addr, DialOptions{Insecure: true, Version: 0xff000012}); err == nil {
		t.Error("dialing draft-18 succeeded")
	}
}

// crossObject is object o of group g: a payload that names it, and on
// every second object (the first among them: a group stream carries
// extensions when its first object has some) two extension headers,
// written out of type order.
func crossObject(g, o int) Object {
	obj := Object{ID: uint64(o), Payload: payload(g, o)}
	if o%2 == 0 {
		obj.Extensions = wire.AppendExtensions(nil, wire.Params{
			wire.BytesParam(0x4d, fmt.Appendf(nil, "trace-%d-%d", g, o)),
			wire.UintParam(wire.ExtPriorObjectIDGap, 0),
		})
	}
	return obj
}

func writeCrossGroup(t testing.TB, tr *Track, g, n int) {
	t.Helper()
	grp := tr.NewGroup()
	if grp == nil || grp.ID != uint64(g) {
		t.Fatalf("NewGroup: %v", grp)
	}
	for o := range n {
		if err := grp.Append(crossObject(g, o)); err != nil {
			t.Fatal(err)
		}
	}
	grp.Close()
}

// sameExtensions compares extension blocks as sets of headers: draft-16
// sorts them by type.
func sameExtensions(a, b []byte) bool {
	pa, err1 := wire.ParseExtensions(a)
	pb, err2 := wire.ParseExtensions(b)
	if err1 != nil || err2 != nil || len(pa) != len(pb) {
		return false
	}
	key := func(p wire.Param) string { return fmt.Sprintf("%d/%d/%x", p.Key, p.Value, p.Bytes) }
	ka, kb := make([]string, len(pa)), make([]string, len(pb))
	for i := range pa {
		ka[i], kb[i] = key(pa[i]), key(pb[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

func checkCrossObject(g uint64, o Object) error {
	want := crossObject(int(g), int(o.ID))
	if !bytes.Equal(o.Payload, want.Payload) {
		return fmt.Errorf("group %d object %d: payload %q", g, o.ID, o.Payload[:min(len(o.Payload), 24)])
	}
	if !sameExtensions(o.Extensions, want.Extensions) {
		return fmt.Errorf("group %d object %d: extensions % x, want % x", g, o.ID, o.Extensions, want.Extensions)
	}
	return nil
}

// readCrossGroups reads groups from..to (n objects each) from a track.
func readCrossGroups(ctx context.Context, rd *TrackReader, from, to uint64, n int) error {
	for g := from; g <= to; g++ {
		gr, err := rd.NextGroup(ctx)
		if err != nil {
			return fmt.Errorf("waiting for group %d: %w", g, err)
		}
		if gr.ID() != g {
			return fmt.Errorf("group %d, want %d", gr.ID(), g)
		}
		for o := 0; ; o++ {
			obj, err := gr.Next(ctx)
			if err == io.EOF {
				if o != n {
					return fmt.Errorf("group %d: %d objects, want %d", g, o, n)
				}
				break
			}
			if err != nil {
				return fmt.Errorf("group %d object %d: %w", g, o, err)
			}
			if obj.ID != uint64(o) {
				return fmt.Errorf("group %d: object %d, want %d", g, obj.ID, o)
			}
			if err := checkCrossObject(g, obj); err != nil {
				return err
			}
		}
	}
	return nil
}

func expectNamespace(t *testing.T, ctx context.Context, ns *NamespaceSubscription, want Namespace, active bool) {
	t.Helper()
	select {
	case ev, ok := <-ns.Events():
		if !ok {
			t.Fatalf("namespace subscription ended, waiting for %v active=%v", want, active)
		}
		if !slices.Equal(ev.Namespace, want) || ev.Active != active {
			t.Fatalf("namespace event %v active=%v, want %v active=%v", ev.Namespace, ev.Active, want, active)
		}
	case <-ctx.Done():
		t.Fatalf("no namespace event %v active=%v", want, active)
	}
}

// TestCrossDraftRelay: a publisher of one draft and a subscriber of the
// other see each other through the relay: namespace discovery, live
// objects (with extension headers), refusals, FETCH, TRACK_STATUS, updates
// and the end of the track and of the broadcast.
func TestCrossDraftRelay(t *testing.T) {
	for _, scheme := range []string{"moqt", "https"} {
		for _, c := range []struct {
			name     string
			pub, sub uint64
		}{
			{"draft14-to-draft16", wire.Version14, wire.Version16},
			{"draft16-to-draft14", wire.Version16, wire.Version14},
			{"draft16-to-draft16", wire.Version16, wire.Version16},
			{"draft17-to-draft17", wire.Version17, wire.Version17},
			{"draft14-to-draft17", wire.Version14, wire.Version17},
			{"draft17-to-draft16", wire.Version17, wire.Version16},
		} {
			t.Run(scheme+"/"+c.name, func(t *testing.T) { testCrossDraft(t, scheme, c.pub, c.sub) })
		}
	}
}

func testCrossDraft(t *testing.T, scheme string, pubV, subV uint64) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{TrackLimits: TrackLimits{MaxGroups: 16}})
	url := scheme + "://" + ts.addr + "/"
	ns := Namespace{"live", "cross"}
	const perGroup = 4

	ss := dialVersion(t, ctx, url, subV, Config{TrackLimits: TrackLimits{MaxGroups: 16}})
	nsub, err := ss.SubscribeNamespace(ctx, Namespace{"live"})
	if err != nil {
		t.Fatalf("SUBSCRIBE_NAMESPACE: %v", err)
	}

	pub := NewPublisher(ns, TrackLimits{MaxGroups: 16})
	ps := dialVersion(t, ctx, url, pubV, Config{Handler: pub, MaxLagGroups: 16})
	if err := ps.PublishNamespace(ctx, ns); err != nil {
		t.Fatalf("PUBLISH_NAMESPACE: %v", err)
	}
	expectNamespace(t, ctx, nsub, ns, true)

	video := pub.Track("video")
	writeCrossGroup(t, video, 0, perGroup)
	writeCrossGroup(t, video, 1, perGroup)

	sub, err := ss.Subscribe(ctx, ns, "video", SubscribeOptions{Priority: 60, GroupOrder: wire.GroupOrderDescending})
	if err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	if !sub.ContentExists || sub.Largest != (Location{0, perGroup - 1}) {
		t.Fatalf("SUBSCRIBE_OK content %v largest %v", sub.ContentExists, sub.Largest)
	}
	rd := sub.Track.NewReader(false)
	if err := readCrossGroups(ctx, rd, 1, 1, perGroup); err != nil {
		t.Fatalf("newest group: %v", err)
	}
	for g := 2; g <= 3; g++ {
		writeCrossGroup(t, video, g, perGroup)
		if err := readCrossGroups(ctx, rd, uint64(g), uint64(g), perGroup); err != nil {
			t.Fatalf("live group: %v", err)
		}
	}

	// A refusal crosses as the model's code (draft-16: REQUEST_ERROR 0x10).
	_, err = ss.Subscribe(ctx, Namespace{"live", "nope"}, "video", SubscribeOptions{})
	var re *RequestError
	if !errors.As(err, &re) || re.Code != wire.SubscribeErrorTrackDoesNotExist {
		t.Fatalf("unknown broadcast: %v", err)
	}

	// TRACK_STATUS (draft-16: answered with REQUEST_OK + LARGEST_OBJECT).
	largest, has, err := ss.TrackStatus(ctx, ns, "video")
	if err != nil || !has || largest != (Location{3, perGroup - 1}) {
		t.Fatalf("TRACK_STATUS: %v %v %v", largest, has, err)
	}

	// FETCH from the relay's cache (groups 1-3 passed through it).
	fetchAll := func(f *FetchResult, err error) ([]Object, error) {
		if err != nil {
			return nil, err
		}
		var out []Object
		for {
			o, err := f.Next(ctx)
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, o)
		}
	}
	checkFetched := func(what string, objs []Object, from, to uint64) {
		t.Helper()
		if len(objs) != int(to-from+1)*perGroup {
			t.Fatalf("%s: %d objects, want %d", what, len(objs), int(to-from+1)*perGroup)
		}
		for i, o := range objs {
			g := from + uint64(i/perGroup)
			if o.GroupID != g || o.ID != uint64(i%perGroup) {
				t.Fatalf("%s: object %d is (%d,%d)", what, i, o.GroupID, o.ID)
			}
			if err := checkCrossObject(g, o); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	objs, err := fetchAll(ss.Fetch(ctx, ns, "video", Location{1, 0}, Location{3, 0}, 0))
	if err != nil {
		t.Fatalf("standalone FETCH: %v", err)
	}
	checkFetched("standalone FETCH", objs, 1, 3)
	// A second subscription starts at group 3 and reports {2, last} as
	// Largest: a joining FETCH with offset 1 brings groups 1..2 from the
	// relay's cache.
	jsub, err := ss.Subscribe(ctx, ns, "video", SubscribeOptions{})
	if err != nil {
		t.Fatalf("second SUBSCRIBE: %v", err)
	}
	objs, err = fetchAll(ss.JoiningFetch(ctx, jsub, 1, 0))
	if err != nil {
		t.Fatalf("joining FETCH: %v", err)
	}
	checkFetched("joining FETCH", objs, 1, 2)
	// Nothing in range: draft-16 answers with an empty stream, draft-14
	// with NO_OBJECTS.
	objs, err = fetchAll(ss.Fetch(ctx, ns, "video", Location{9, 0}, Location{9, 0}, 0))
	if subV != wire.Version14 && (err != nil || len(objs) != 0) {
		t.Fatalf("empty FETCH: %d objects, %v", len(objs), err)
	}
	if subV == wire.Version14 && (!errors.As(err, &re) || re.Code != wire.FetchErrorNoObjects) {
		t.Fatalf("empty FETCH: %v", err)
	}

	// An update (draft-16: REQUEST_UPDATE, answered) leaves the session
	// and the subscription working.
	if err := sub.Update(ctx, Location{}, 0, 10, true); err != nil {
		t.Fatalf("update: %v", err)
	}
	writeCrossGroup(t, video, 4, perGroup)
	if err := readCrossGroups(ctx, rd, 4, 4, perGroup); err != nil {
		t.Fatalf("after the update: %v", err)
	}

	// The end of the track reaches the subscriber as PUBLISH_DONE.
	pub.End()
	select {
	case <-sub.Done():
	case <-ctx.Done():
		t.Fatal("no PUBLISH_DONE")
	}
	if st, reason := sub.Status(); st != wire.PublishDoneTrackEnded {
		t.Fatalf("PUBLISH_DONE status %#x (%q)", st, reason)
	}

	// The publisher leaving withdraws the namespace.
	ps.Close()
	expectNamespace(t, ctx, nsub, ns, false)
	if ss.Err() != nil {
		t.Fatalf("subscriber session ended: %v", ss.Err())
	}
}

// ---- draft-16 input the relay refuses ----

// rawClient16 opens a raw QUIC moqt-16 connection and completes setup.
func rawClient16(t *testing.T, ctx context.Context, addr string, codec wire.Codec) (*quic.Conn, *quic.Stream, *bufio.Reader) {
	t.Helper()
	qc := dialRawQUIC(t, ctx, addr, ALPN16)
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write16(t, st, codec, &wire.ClientSetup{Params: wire.Params{{Key: wire.ParamMaxRequestID, Value: 100}}})
	r := bufio.NewReader(st)
	m, err := codec.ReadMessage(r)
	if err != nil {
		t.Fatal(err)
	}
	ss, ok := m.(*wire.ServerSetup)
	if !ok {
		t.Fatalf("setup reply %+v", m)
	}
	if max, _ := ss.Params.Uint(wire.ParamMaxRequestID); max == 0 {
		t.Fatal("SERVER_SETUP without MAX_REQUEST_ID")
	}
	return qc, st, r
}

func write16(t *testing.T, st io.Writer, codec wire.Codec, m wire.Message) {
	t.Helper()
	b, err := codec.AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestDraft16BadInputClosesOnlyThatSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	codec := wire.Draft16{}
	bystander := dialVersion(t, ctx, "moqt://"+ts.addr, wire.Version16, Config{})
	for _, c := range []struct {
		name string
		send func(t *testing.T, qc *quic.Conn, ctrl *quic.Stream)
	}{
		{"SUBSCRIBE_NAMESPACE on the control stream", func(t *testing.T, _ *quic.Conn, ctrl *quic.Stream) {
			write16(t, ctrl, codec, &wire.SubscribeNamespace{RequestID: 0, Prefix: []string{"live"}})
		}},
		{"unknown parameter", func(t *testing.T, _ *quic.Conn, ctrl *quic.Stream) {
			// SUBSCRIBE with parameter 0x06, which draft-16 does not define.
			ctrl.Write([]byte{0x03, 0x00, 0x09, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x06, 0x01})
		}},
		{"draft-14 message type", func(t *testing.T, _ *quic.Conn, ctrl *quic.Stream) {
			ctrl.Write(mustMsg(t, &wire.UnsubscribeNamespace{Prefix: []string{"live"}}))
		}},
		{"bidirectional stream that is not SUBSCRIBE_NAMESPACE", func(t *testing.T, qc *quic.Conn, _ *quic.Stream) {
			st, err := qc.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			write16(t, st, codec, &wire.Subscribe{RequestID: 0, Namespace: []string{"a"}, TrackName: "b", FilterType: wire.FilterLargestObject})
		}},
		{"NAMESPACE_DONE on the control stream", func(t *testing.T, _ *quic.Conn, ctrl *quic.Stream) {
			write16(t, ctrl, codec, &wire.NamespaceDone{Suffix: []string{"x"}})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			qc, ctrl, _ := rawClient16(t, ctx, ts.addr, codec)
			c.send(t, qc, ctrl)
			if code := closeCode(t, qc); code != wire.ProtocolViolation {
				t.Fatalf("closed with %#x, want PROTOCOL_VIOLATION", code)
			}
		})
	}
	if bystander.Err() != nil {
		t.Fatalf("another session ended: %v", bystander.Err())
	}
}

// TestDraft16RequestsOnTwoStreams: a SUBSCRIBE_NAMESPACE (its own stream)
// may arrive after a later request on the control stream; both are served.
func TestDraft16RequestsOnTwoStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	pub := NewPublisher(Namespace{"live", "two"}, TrackLimits{})
	ps := dialVersion(t, ctx, "moqt://"+ts.addr, wire.Version16, Config{Handler: pub})
	if err := ps.PublishNamespace(ctx, pub.Namespace()); err != nil {
		t.Fatal(err)
	}
	types := map[uint64]uint64{0: wire.MsgSubscribeNamespace, 2: wire.MsgSubscribe}
	codec := wire.Draft16{RequestType: func(id uint64) uint64 { return types[id] }}
	qc, ctrl, cr := rawClient16(t, ctx, ts.addr, codec)
	// Request 2 first, on the control stream...
	write16(t, ctrl, codec, &wire.Subscribe{RequestID: 2, Namespace: []string{"live", "nope"}, TrackName: "v",
		Forward: true, FilterType: wire.FilterLargestObject})
	m, err := codec.ReadMessage(cr)
	if se, ok := m.(*wire.SubscribeError); err != nil || !ok || se.ErrorCode != wire.SubscribeErrorTrackDoesNotExist {
		t.Fatalf("reply to SUBSCRIBE: %#v, %v", m, err)
	}
	// ...then request 0 on a stream of its own.
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write16(t, st, codec, &wire.SubscribeNamespace{RequestID: 0, Prefix: []string{"live"}})
	r := bufio.NewReader(st)
	if m, err := codec.ReadMessage(r); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*wire.SubscribeNamespaceOK); !ok {
		t.Fatalf("reply to SUBSCRIBE_NAMESPACE: %#v", m)
	}
	if m, err := codec.ReadMessage(r); err != nil {
		t.Fatal(err)
	} else if n, ok := m.(*wire.Namespace); !ok || !slices.Equal(n.Suffix, []string{"two"}) {
		t.Fatalf("announcement: %#v", m)
	}
	// A request ID already used stays an error.
	write16(t, ctrl, codec, &wire.Subscribe{RequestID: 2, Namespace: []string{"a"}, TrackName: "v",
		Forward: true, FilterType: wire.FilterLargestObject})
	if code := closeCode(t, qc); code != wire.InvalidRequestID {
		t.Fatalf("closed with %#x, want INVALID_REQUEST_ID", code)
	}
}

// TestUpstreamDraft16: an edge relay pulls from its origin over draft-16
// (upstream URL option draft=16): it learns the broadcast from NAMESPACE on
// its SUBSCRIBE_NAMESPACE stream and subscribes upstream for a local viewer
// of a track published at the origin in draft-14.
func TestUpstreamDraft16(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	origin := startServer(t, RelayConfig{})
	u, opts, err := ParseUpstreamURL("moqt://" + origin.addr + "/?insecure=1&draft=16")
	if err != nil || opts.Version != wire.Version16 || !opts.Insecure {
		t.Fatalf("ParseUpstreamURL: %s %+v %v", u, opts, err)
	}
	if _, _, err := ParseUpstreamURL("moqt://x/?draft=18"); err == nil {
		t.Fatal("draft=18 accepted")
	}
	edge := NewRelay(RelayConfig{Logger: testLogger(t)})
	go edge.RunUpstream(ctx, UpstreamConfig{URL: u, Dial: opts, Session: Config{Logger: testLogger(t)}})

	pub, _ := moqgatePublisher(t, ctx, "moqt://"+origin.addr, Namespace{"live", "chain"})
	video := pub.Track("video")
	for !edge.HasBroadcast("live/chain") {
		select {
		case <-ctx.Done():
			t.Fatal("the edge never learnt live/chain")
		case <-time.After(10 * time.Millisecond):
		}
	}
	versions := map[uint64]int{}
	for _, s := range origin.srv.SessionList() {
		versions[s.Version()]++
	}
	if versions[wire.Version16] != 1 || versions[wire.Version14] != 1 {
		t.Fatalf("origin sessions by version: %v, want the edge on draft-16 and the publisher on draft-14", versions)
	}
	viewer, err := edge.ConnectLocal(ctx, Config{Logger: testLogger(t)}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := viewer.Subscribe(ctx, Namespace{"live", "chain"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatalf("subscribe at the edge: %v", err)
	}
	rd := sub.Track.NewReader(false)
	for g := 0; g < 3; g++ {
		writeCrossGroup(t, video, g, 4)
		if err := readCrossGroups(ctx, rd, uint64(g), uint64(g), 4); err != nil {
			t.Fatalf("at the edge: %v", err)
		}
	}
}
