package moq

// Interop tests against an independent MoQ Transport draft-14 and draft-16
// peer: github.com/Eyevinn/moqtransport (see ../shared/INTEROP.md). Both
// ends are the real implementations over real loopback QUIC, raw (ALPN
// moq-00 or moqt-16) and WebTransport (with and without the moq-00
// subprotocol, and with moqt-16). Set
// MOQ_TEST_LOG=1 for moqgate's logs and MOQ_LOG_LEVEL=debug for Eyevinn's.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/Eyevinn/moqtransport"
	"github.com/Eyevinn/moqtransport/quicmoq"
	"github.com/Eyevinn/moqtransport/webtransportmoq"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// eyTransport is one way of reaching moqgate from the Eyevinn client.
type eyTransport struct {
	name    string
	scheme  string   // of the moqgate peers' URL: moqt (raw QUIC) or https (WebTransport)
	protos  []string // WebTransport subprotocols the Eyevinn client offers
	draft16 bool     // the Eyevinn client speaks draft-16 (moqt-16)
}

var eyTransports = []eyTransport{
	{name: "quic", scheme: "moqt"},
	{name: "webtransport", scheme: "https", protos: []string{ALPN14}},
	// No subprotocol offered: moqgate selects none and both sides negotiate
	// draft-14 in CLIENT_SETUP/SERVER_SETUP.
	{name: "webtransport-noproto", scheme: "https"},
}

// eyTransports16 have the Eyevinn client speak draft-16 (Eyevinn picks the
// version from the negotiated ALPN / WebTransport protocol). The moqgate
// peers on the other side of the relay stay draft-14, so these are
// cross-draft tests too. Eyevinn v0.9.0's draft-16 covers setup,
// PUBLISH_NAMESPACE, SUBSCRIBE/SUBSCRIBE_OK/REQUEST_ERROR, PUBLISH_DONE and
// the data streams; it still sends SUBSCRIBE_NAMESPACE on the control
// stream and FETCH in draft-14's layout, which a draft-16 peer must refuse,
// so the namespace and fetch tests run over eyTransports only.
var eyTransports16 = []eyTransport{
	{name: "quic-draft16", scheme: "moqt", draft16: true},
	{name: "webtransport-draft16", scheme: "https", protos: []string{ALPN16}, draft16: true},
}

func (tr eyTransport) url(addr string) string { return tr.scheme + "://" + addr + "/" }

// eyHandler is the Eyevinn session's generic handler: it accepts
// ANNOUNCE (PUBLISH_NAMESPACE), records UNANNOUNCE (PUBLISH_NAMESPACE_DONE)
// and GOAWAY, and refuses everything else. It runs on the Eyevinn control
// loop, so it never blocks.
type eyHandler struct {
	announces   chan []string
	unannounces chan []string
	goaways     chan string
}

func newEyHandler() *eyHandler {
	return &eyHandler{
		announces:   make(chan []string, 16),
		unannounces: make(chan []string, 16),
		goaways:     make(chan string, 4),
	}
}

func (h *eyHandler) Handle(w moqtransport.ResponseWriter, m *moqtransport.Message) {
	switch m.Method {
	case moqtransport.MessageAnnounce:
		select {
		case h.announces <- slices.Clone(m.Namespace):
		default:
		}
		if w != nil {
			_ = w.Accept()
		}
	case moqtransport.MessageUnannounce:
		select {
		case h.unannounces <- slices.Clone(m.Namespace):
		default:
		}
	case moqtransport.MessageGoAway:
		select {
		case h.goaways <- m.NewSessionURI:
		default:
		}
	default:
		if w != nil {
			_ = w.Reject(0, "not supported by the test peer")
		}
	}
}

// dialEyevinn connects an Eyevinn session to the moqgate server at addr and
// runs the draft-14 setup. The session is closed when the test ends (before
// the server shuts down).
func dialEyevinn(t *testing.T, ctx context.Context, addr string, tr eyTransport, sess *moqtransport.Session) {
	t.Helper()
	tlsConf := &tls.Config{InsecureSkipVerify: true}
	var conn moqtransport.Connection
	switch tr.scheme {
	case "moqt":
		tlsConf.NextProtos = []string{ALPN14}
		if tr.draft16 {
			tlsConf.NextProtos = []string{ALPN16}
		}
		qc, err := quic.DialAddr(ctx, addr, tlsConf, &quic.Config{EnableDatagrams: true, MaxIdleTimeout: 30 * time.Second})
		if err != nil {
			t.Fatalf("eyevinn: quic dial: %v", err)
		}
		conn = quicmoq.NewClient(qc)
	case "https":
		d := &webtransport.Transport{TLSClientConfig: tlsConf, ApplicationProtocols: tr.protos}
		rsp, ws, err := d.Dial(ctx, tr.url(addr), nil)
		if err != nil {
			t.Fatalf("eyevinn: webtransport dial: %v", err)
		}
		if rsp.StatusCode != 200 {
			ws.CloseWithError(0, "")
			t.Fatalf("webtransport CONNECT status %d", rsp.StatusCode)
		}
		conn = webtransportmoq.NewClient(ws)
	default:
		t.Fatalf("bad scheme %q", tr.scheme)
	}
	if sess.Handler == nil {
		// Required: Eyevinn calls it for GOAWAY (which moqgate's Server
		// sends on shutdown) without checking for nil.
		sess.Handler = newEyHandler()
	}
	if sess.InitialMaxRequestID == 0 {
		// moqgate's relay sends requests (SUBSCRIBE upstream,
		// PUBLISH_NAMESPACE) to the client: it needs request IDs.
		sess.InitialMaxRequestID = 100
	}
	sess.Protocols = tr.protos
	setupCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sess.RunContext(setupCtx, conn); err != nil {
		conn.CloseWithError(0, "setup failed")
		t.Fatalf("eyevinn: setup with moqgate over %s: %v", tr.name, err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	// moqgate echoes moq-00 when it is offered, and selects nothing when not.
	want := ""
	if tr.scheme == "moqt" || len(tr.protos) > 0 {
		want = ALPN14
	}
	if tr.draft16 {
		want = ALPN16
	}
	if got := conn.NegotiatedALPN(); got != want {
		t.Fatalf("negotiated protocol %q, want %q", got, want)
	}
}

// ---- payloads ----

// eyObjectID spaces object IDs out (1, 4, 7, ...) so that the draft-14 object
// ID delta encoding on subgroup streams is exercised, not just +1 steps.
func eyObjectID(o int) uint64 { return uint64(1 + 3*o) }

// eyPayload is the payload of object index o of group g; sizes vary up to a
// few kB so objects span several QUIC packets.
func eyPayload(g uint64, o int) []byte {
	p := fmt.Appendf(nil, "eyevinn group %d object %d|", g, o)
	return append(p, bytes.Repeat([]byte{byte('a' + o%26)}, o*731)...)
}

// ---- Eyevinn subscriber helpers ----

// eyReadObjects reads n objects from an Eyevinn remote track.
func eyReadObjects(ctx context.Context, rt *moqtransport.RemoteTrack, n int) ([]*moqtransport.Object, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []*moqtransport.Object
	for len(out) < n {
		o, err := rt.ReadObject(ctx)
		if err != nil {
			return out, fmt.Errorf("after %d of %d objects: %w", len(out), n, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// eyNoMore checks that nothing else arrives on the track for a while.
func eyNoMore(ctx context.Context, rt *moqtransport.RemoteTrack, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	o, err := rt.ReadObject(ctx)
	if err == nil {
		return fmt.Errorf("unexpected extra object: group %d object %d (%d bytes)", o.GroupID, o.ObjectID, len(o.Payload))
	}
	return nil
}

type loc struct{ g, o uint64 }

// checkMoqgateObjects checks objects published with writeGroup (object IDs
// 0..n-1, payload(g, o)) against the expected locations, in order.
func checkMoqgateObjects(got []*moqtransport.Object, want []loc) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d objects, want %d", len(got), len(want))
	}
	for i, o := range got {
		if o.GroupID != want[i].g || o.ObjectID != want[i].o {
			return fmt.Errorf("object %d is (%d,%d), want (%d,%d); all: %v", i, o.GroupID, o.ObjectID, want[i].g, want[i].o, locsOf(got))
		}
		if !bytes.Equal(o.Payload, payload(int(o.GroupID), int(o.ObjectID))) {
			return fmt.Errorf("object (%d,%d): wrong payload %q", o.GroupID, o.ObjectID, o.Payload[:min(len(o.Payload), 30)])
		}
	}
	return nil
}

func locsOf(objs []*moqtransport.Object) []loc {
	out := make([]loc, len(objs))
	for i, o := range objs {
		out[i] = loc{o.GroupID, o.ObjectID}
	}
	return out
}

// groupLocs lists the locations of whole groups [from, to] of n objects
// (IDs 0..n-1).
func groupLocs(from, to uint64, n int) []loc {
	var out []loc
	for g := from; g <= to; g++ {
		for o := 0; o < n; o++ {
			out = append(out, loc{g, uint64(o)})
		}
	}
	return out
}

// waitRelayCache waits until the relay caches the complete groups
// [0, groups) of n objects each for the track.
func waitRelayCache(t *testing.T, ctx context.Context, r *Relay, path, name string, groups, n int) {
	t.Helper()
	for {
		complete := 0
		for _, b := range r.Broadcasts() {
			if b.Path != path {
				continue
			}
			for _, ti := range b.Tracks {
				if ti.Name != name {
					continue
				}
				for _, g := range ti.track.cachedGroups() {
					if objs, done := g.Objects(); done && len(objs) == n && g.ID < uint64(groups) {
						complete++
					}
				}
			}
		}
		if complete == groups {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("relay cache of %s/%s: %d of %d groups complete", path, name, complete, groups)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// moqgatePublisher dials the server as a moqgate publisher of ns.
func moqgatePublisher(t *testing.T, ctx context.Context, url string, ns Namespace) (*Publisher, *Session) {
	t.Helper()
	pub := NewPublisher(ns, TrackLimits{MaxGroups: 16})
	// MaxLagGroups: groups written in a burst all reach the relay.
	s := dialTest(t, ctx, url, Config{Handler: pub, MaxLagGroups: 16})
	if err := s.PublishNamespace(ctx, pub.Namespace()); err != nil {
		t.Fatal(err)
	}
	return pub, s
}

// ---- 1. Eyevinn publisher -> relay -> moqgate subscribers ----

type eySubscribe struct {
	w *moqtransport.SubscribeResponseWriter
	m *moqtransport.SubscribeMessage
}

func TestEyevinnPublisherToMoqgateSubscribers(t *testing.T) {
	for _, tr := range append(eyTransports, eyTransports16...) {
		t.Run(tr.name, func(t *testing.T) { testEyevinnPublisher(t, tr) })
	}
}

func testEyevinnPublisher(t *testing.T, tr eyTransport) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{TrackLimits: TrackLimits{MaxGroups: 16}})
	ns := []string{"live", "eyevinn"}

	subs := make(chan eySubscribe, 8)
	es := &moqtransport.Session{
		SubscribeHandler: moqtransport.SubscribeHandlerFunc(func(w *moqtransport.SubscribeResponseWriter, m *moqtransport.SubscribeMessage) {
			if !slices.Equal(m.Namespace, ns) || m.Track != "video" {
				_ = w.Reject(moqtransport.ErrorCodeSubscribeTrackDoesNotExist, "unknown track")
				return
			}
			// Report before SUBSCRIBE_OK goes out, so that a second upstream
			// subscription would be seen by the time its subscriber is served.
			subs <- eySubscribe{w, m}
			if err := w.Accept(); err != nil {
				t.Errorf("eyevinn: accept SUBSCRIBE: %v", err)
			}
		}),
	}
	dialEyevinn(t, ctx, ts.addr, tr, es)
	if err := es.Announce(ctx, ns); err != nil {
		t.Fatalf("eyevinn ANNOUNCE: %v", err)
	}
	if !ts.relay.HasBroadcast("live/eyevinn") {
		t.Fatal("relay has no broadcast live/eyevinn after PUBLISH_NAMESPACE_OK")
	}

	cfg := Config{TrackLimits: TrackLimits{MaxGroups: 16}}
	var mgSubs []*Subscription
	for i := range 2 {
		s := dialTest(t, ctx, tr.url(ts.addr), cfg)
		sub, err := s.Subscribe(ctx, Namespace(ns), "video", SubscribeOptions{})
		if err != nil {
			t.Fatalf("moqgate subscriber %d: %v", i, err)
		}
		if sub.ContentExists {
			t.Fatalf("subscriber %d: SUBSCRIBE_OK says content exists (largest %v) before any object", i, sub.Largest)
		}
		mgSubs = append(mgSubs, sub)
	}
	// One upstream subscription serves both subscribers.
	var up eySubscribe
	select {
	case up = <-subs:
	default:
		t.Fatal("eyevinn publisher got no SUBSCRIBE")
	}
	select {
	case extra := <-subs:
		t.Fatalf("second upstream SUBSCRIBE (request %d): the relay should share one", extra.m.RequestID)
	default:
	}
	if up.m.FilterType != moqtransport.FilterTypeLatestObject || up.m.Forward != 1 {
		t.Fatalf("upstream SUBSCRIBE filter %v forward %d", up.m.FilterType, up.m.Forward)
	}

	// Each subscriber reads the groups in lockstep with the publisher: a
	// group is written once both have the previous one.
	const groups, perGroup = 6, 8
	const firstGroup = 10 // group IDs are carried through, not renumbered
	progress := make(chan uint64, 2*groups)
	errs := make(chan error, 2)
	for i, sub := range mgSubs {
		go func() {
			rd := sub.Track.NewReader(false)
			for g := uint64(firstGroup); g < firstGroup+groups; g++ {
				gr, err := rd.NextGroup(ctx)
				if err != nil {
					errs <- fmt.Errorf("subscriber %d: waiting for group %d: %w", i, g, err)
					return
				}
				if gr.ID() != g {
					errs <- fmt.Errorf("subscriber %d: group %d, want %d", i, gr.ID(), g)
					return
				}
				for o := 0; ; o++ {
					obj, err := gr.Next(ctx)
					if err == io.EOF {
						if o != perGroup {
							errs <- fmt.Errorf("subscriber %d: group %d has %d objects, want %d", i, g, o, perGroup)
							return
						}
						break
					}
					if err != nil {
						errs <- fmt.Errorf("subscriber %d: group %d object %d: %w", i, g, o, err)
						return
					}
					if o >= perGroup {
						errs <- fmt.Errorf("subscriber %d: group %d: extra object %d", i, g, obj.ID)
						return
					}
					if obj.ID != eyObjectID(o) || !bytes.Equal(obj.Payload, eyPayload(g, o)) {
						errs <- fmt.Errorf("subscriber %d: group %d: object #%d has ID %d (want %d), payload %q",
							i, g, o, obj.ID, eyObjectID(o), obj.Payload[:min(len(obj.Payload), 30)])
						return
					}
				}
				progress <- g
			}
		}()
	}
	writeEyGroup := func(w *moqtransport.SubscribeResponseWriter, g uint64) {
		t.Helper()
		sg, err := w.OpenSubgroup(g, 0, 128)
		if err != nil {
			t.Fatalf("eyevinn: open subgroup %d: %v", g, err)
		}
		for o := range perGroup {
			if _, err := sg.WriteObject(eyObjectID(o), eyPayload(g, o)); err != nil {
				t.Fatalf("eyevinn: write group %d object %d: %v", g, o, err)
			}
		}
		if err := sg.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for g := uint64(firstGroup); g < firstGroup+groups; g++ {
		writeEyGroup(up.w, g)
		for range mgSubs {
			select {
			case got := <-progress:
				if got != g {
					t.Fatalf("progress %d, want %d", got, g)
				}
			case err := <-errs:
				t.Fatal(err)
			case <-ctx.Done():
				t.Fatalf("group %d not received by both subscribers: %v", g, ctx.Err())
			}
		}
	}

	// The publisher ends the track: PUBLISH_DONE reaches both subscribers
	// through the relay with its status.
	if err := up.w.CloseWithError(uint64(moqtransport.ErrorCodeSubscribeDoneTrackEnded), "eyevinn done"); err != nil {
		t.Fatal(err)
	}
	for i, sub := range mgSubs {
		select {
		case <-sub.Done():
		case <-ctx.Done():
			t.Fatalf("subscriber %d: no PUBLISH_DONE after the publisher's", i)
		}
		if st, reason := sub.Status(); st != wire.PublishDoneTrackEnded {
			t.Fatalf("subscriber %d: PUBLISH_DONE status %#x (%q), want TRACK_ENDED", i, st, reason)
		}
	}

	// The Eyevinn session is still healthy: a new subscriber makes a new
	// upstream subscription. Group IDs may jump (here by 1000, more than
	// the 64 groups a relay subscription remembers having delivered).
	s3 := dialTest(t, ctx, tr.url(ts.addr), cfg)
	sub3, err := s3.Subscribe(ctx, Namespace(ns), "video", SubscribeOptions{})
	if err != nil {
		t.Fatalf("subscribe after the track ended: %v", err)
	}
	select {
	case up = <-subs:
	case <-ctx.Done():
		t.Fatal("no new upstream SUBSCRIBE after the track ended")
	}
	rd := sub3.Track.NewReader(false)
	jump := uint64(firstGroup + groups + 1000)
	for _, g := range []uint64{firstGroup + groups, jump} {
		writeEyGroup(up.w, g)
		gr, err := rd.NextGroup(ctx)
		if err != nil {
			t.Fatalf("third subscriber: waiting for group %d: %v", g, err)
		}
		if gr.ID() != g {
			t.Fatalf("third subscriber: group %d, want %d", gr.ID(), g)
		}
		for o := range perGroup {
			obj, err := gr.Next(ctx)
			if err != nil {
				t.Fatalf("third subscriber: group %d object %d: %v", g, o, err)
			}
			if obj.ID != eyObjectID(o) || !bytes.Equal(obj.Payload, eyPayload(g, o)) {
				t.Fatalf("third subscriber: group %d object #%d has ID %d", g, o, obj.ID)
			}
		}
	}

	// The last viewer leaving makes the relay UNSUBSCRIBE upstream; the
	// Eyevinn publisher's writer then reports ErrUnsusbcribed. (The probe
	// is a datagram repeating object 0 of the last, complete, group: the
	// relay ignores it if it still forwards the track.)
	sub3.Unsubscribe()
	for {
		err := up.w.SendDatagram(moqtransport.Object{GroupID: jump, Payload: []byte("probe")})
		if errors.Is(err, moqtransport.ErrUnsusbcribed) {
			break
		}
		if err != nil {
			t.Fatalf("probe datagram: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("no UNSUBSCRIBE reached the Eyevinn publisher after the last subscriber left")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ---- 2. moqgate publisher -> relay -> Eyevinn subscriber ----

func TestEyevinnSubscriberFromMoqgatePublisher(t *testing.T) {
	for _, tr := range append(eyTransports, eyTransports16...) {
		t.Run(tr.name, func(t *testing.T) { testEyevinnSubscriber(t, tr) })
	}
}

func testEyevinnSubscriber(t *testing.T, tr eyTransport) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	const perGroup = 5
	pub, _ := moqgatePublisher(t, ctx, tr.url(ts.addr), Namespace{"live", "moqgate"})
	video := pub.Track("video")
	writeGroup(t, video, 0, perGroup)
	writeGroup(t, video, 1, perGroup)

	es := &moqtransport.Session{}
	dialEyevinn(t, ctx, ts.addr, tr, es)
	rt, err := es.Subscribe(ctx, []string{"live", "moqgate"}, "video",
		moqtransport.WithFilterType(moqtransport.FilterTypeLatestObject))
	if err != nil {
		t.Fatalf("eyevinn SUBSCRIBE: %v", err)
	}
	if rt.Expires() != 0 {
		t.Fatalf("SUBSCRIBE_OK expires %v, want 0", rt.Expires())
	}
	// Draft-16's SUBSCRIBE_OK has no group order (a Track Extension says
	// the publisher's, when not the default, ascending).
	if want := moqtransport.GroupOrderAscending; tr.draft16 {
		if rt.GroupOrder() != moqtransport.GroupOrderNone {
			t.Fatalf("draft-16 SUBSCRIBE_OK group order %v, want none", rt.GroupOrder())
		}
	} else if rt.GroupOrder() != want {
		t.Fatalf("SUBSCRIBE_OK group order %v, want ascending", rt.GroupOrder())
	}
	// Largest is the last object before the group delivery starts with.
	if l, ok := rt.LargestLocation(); !ok || l != (moqtransport.Location{Group: 0, Object: perGroup - 1}) {
		t.Fatalf("SUBSCRIBE_OK largest %v (content exists %v), want {0 %d}", l, ok, perGroup-1)
	}

	// Largest Object starts at the first object of the newest group.
	objs, err := eyReadObjects(ctx, rt, perGroup)
	if err == nil {
		err = checkMoqgateObjects(objs, groupLocs(1, 1, perGroup))
	}
	if err != nil {
		t.Fatalf("cached group: %v", err)
	}
	for g := 2; g <= 4; g++ {
		writeGroup(t, video, g, perGroup)
		objs, err := eyReadObjects(ctx, rt, perGroup)
		if err == nil {
			err = checkMoqgateObjects(objs, groupLocs(uint64(g), uint64(g), perGroup))
		}
		if err != nil {
			t.Fatalf("live group %d: %v", g, err)
		}
	}
	if err := eyNoMore(ctx, rt, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}

	// The end of the track reaches the Eyevinn subscriber as PUBLISH_DONE.
	pub.End()
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	_, err = rt.ReadObject(dctx)
	var done *moqtransport.ErrSubscribeDone
	if !errors.As(err, &done) {
		t.Fatalf("after the publisher ended: %v, want PUBLISH_DONE", err)
	}
	if done.Status != wire.PublishDoneTrackEnded {
		t.Fatalf("PUBLISH_DONE status %#x (%q), want TRACK_ENDED", done.Status, done.Reason)
	}
}

// ---- 3. Eyevinn SUBSCRIBE_NAMESPACE ----

func TestEyevinnSubscribeNamespace(t *testing.T) {
	for _, tr := range eyTransports {
		t.Run(tr.name, func(t *testing.T) { testEyevinnSubscribeNamespace(t, tr) })
	}
}

func testEyevinnSubscribeNamespace(t *testing.T, tr eyTransport) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{})
	url := tr.url(ts.addr)
	// One broadcast exists before the namespace subscription, one outside
	// the prefix.
	_, before := moqgatePublisher(t, ctx, url, Namespace{"live", "eyevinn-x"})
	moqgatePublisher(t, ctx, url, Namespace{"other", "z"})

	h := newEyHandler()
	es := &moqtransport.Session{Handler: h}
	dialEyevinn(t, ctx, ts.addr, tr, es)
	if err := es.SubscribeAnnouncements(ctx, []string{"live"}); err != nil {
		t.Fatalf("eyevinn SUBSCRIBE_NAMESPACE: %v", err)
	}
	expect := func(ch chan []string, what string, want []string) {
		t.Helper()
		select {
		case got := <-ch:
			if !slices.Equal(got, want) {
				t.Fatalf("%s %q, want %q", what, got, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("no %s %q", what, want)
		}
	}
	expect(h.announces, "PUBLISH_NAMESPACE", []string{"live", "eyevinn-x"})

	// A broadcast that appears afterwards is announced too; the announced
	// namespace is subscribable.
	pubY, _ := moqgatePublisher(t, ctx, url, Namespace{"live", "eyevinn-y"})
	writeGroup(t, pubY.Track("video"), 0, 3)
	expect(h.announces, "PUBLISH_NAMESPACE", []string{"live", "eyevinn-y"})
	rt, err := es.Subscribe(ctx, []string{"live", "eyevinn-y"}, "video")
	if err != nil {
		t.Fatalf("subscribe to the announced namespace: %v", err)
	}
	objs, err := eyReadObjects(ctx, rt, 3)
	if err == nil {
		err = checkMoqgateObjects(objs, groupLocs(0, 0, 3))
	}
	if err != nil {
		t.Fatal(err)
	}

	// The publisher leaving withdraws its namespace.
	before.Close()
	expect(h.unannounces, "PUBLISH_NAMESPACE_DONE", []string{"live", "eyevinn-x"})

	select {
	case ns := <-h.announces:
		t.Fatalf("unexpected PUBLISH_NAMESPACE %q (outside the prefix or duplicate)", ns)
	case <-time.After(100 * time.Millisecond):
	}
}

// ---- 4. Eyevinn FETCH from the relay's cache ----

func TestEyevinnFetch(t *testing.T) {
	for _, tr := range eyTransports {
		t.Run(tr.name, func(t *testing.T) { testEyevinnFetch(t, tr) })
	}
}

func testEyevinnFetch(t *testing.T, tr eyTransport) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ts := startServer(t, RelayConfig{TrackLimits: TrackLimits{MaxGroups: 16}})
	url := tr.url(ts.addr)
	const perGroup = 5
	ns := Namespace{"live", "fetch"}
	pub, _ := moqgatePublisher(t, ctx, url, ns)
	video := pub.Track("video")
	// A moqgate viewer keeps the relay subscribed, so the relay caches.
	keeper := dialTest(t, ctx, url, Config{})
	if _, err := keeper.Subscribe(ctx, ns, "video", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	for g := range 4 {
		writeGroup(t, video, g, perGroup)
	}
	waitRelayCache(t, ctx, ts.relay, "live/fetch", "video", 4, perGroup)

	es := &moqtransport.Session{}
	dialEyevinn(t, ctx, ts.addr, tr, es)

	fetch := func(name string, want []loc, opts ...moqtransport.FetchOption) {
		t.Helper()
		var fns []string
		var track string
		if name == "standalone" {
			fns, track = ns, "video"
		}
		rt, err := es.Fetch(ctx, fns, track, opts...)
		if err != nil {
			t.Fatalf("%s FETCH: %v", name, err)
		}
		objs, err := eyReadObjects(ctx, rt, len(want))
		if err == nil {
			err = checkMoqgateObjects(objs, want)
		}
		if err == nil {
			err = eyNoMore(ctx, rt, 200*time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s FETCH: %v", name, err)
		}
	}

	// Standalone: End Object 0 means the whole end group.
	fetch("standalone", groupLocs(0, 3, perGroup),
		moqtransport.WithFetchStartLocation(moqtransport.Location{Group: 0, Object: 0}),
		moqtransport.WithFetchEndLocation(moqtransport.Location{Group: 3, Object: 0}))
	// Standalone range within groups: End Object is the last object plus 1.
	fetch("standalone", []loc{{1, 2}, {1, 3}, {1, 4}, {2, 0}, {2, 1}, {2, 2}},
		moqtransport.WithFetchStartLocation(moqtransport.Location{Group: 1, Object: 2}),
		moqtransport.WithFetchEndLocation(moqtransport.Location{Group: 2, Object: 3}))

	// Relative joining fetch: the subscription delivers the newest group
	// (3) from its first object and reports {2, 4} as Largest; offset 2
	// fetches groups 0..2. Every object arrives exactly once across both.
	sub, err := es.Subscribe(ctx, ns, "video")
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := sub.LargestLocation(); !ok || l != (moqtransport.Location{Group: 2, Object: perGroup - 1}) {
		t.Fatalf("SUBSCRIBE_OK largest %v (content exists %v)", l, ok)
	}
	fetch("relative joining", groupLocs(0, 2, perGroup), moqtransport.WithJoiningFetchRelative(sub.RequestID(), 2))
	objs, err := eyReadObjects(ctx, sub, perGroup)
	if err == nil {
		err = checkMoqgateObjects(objs, groupLocs(3, 3, perGroup))
	}
	if err != nil {
		t.Fatalf("joined subscription: %v", err)
	}
	writeGroup(t, video, 4, perGroup)
	objs, err = eyReadObjects(ctx, sub, perGroup)
	if err == nil {
		err = checkMoqgateObjects(objs, groupLocs(4, 4, perGroup))
	}
	if err == nil {
		err = eyNoMore(ctx, sub, 200*time.Millisecond)
	}
	if err != nil {
		t.Fatalf("joined subscription, live group: %v", err)
	}

	// Absolute joining fetch from group 0 with a new subscription (newest
	// group now 4).
	waitRelayCache(t, ctx, ts.relay, "live/fetch", "video", 5, perGroup)
	sub2, err := es.Subscribe(ctx, ns, "video")
	if err != nil {
		t.Fatal(err)
	}
	fetch("absolute joining", groupLocs(0, 3, perGroup), moqtransport.WithJoiningFetchAbsolute(sub2.RequestID(), 0))
	objs, err = eyReadObjects(ctx, sub2, perGroup)
	if err == nil {
		err = checkMoqgateObjects(objs, groupLocs(4, 4, perGroup))
	}
	if err == nil {
		err = eyNoMore(ctx, sub2, 200*time.Millisecond)
	}
	if err != nil {
		t.Fatalf("second joined subscription: %v", err)
	}
}
