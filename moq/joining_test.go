package moq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/Eyevinn/moqtransport"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// Joining: players that never FETCH get the newest group from its first
// object, and a client that sends a joining FETCH after a Largest Object
// SUBSCRIBE gets every object exactly once across the two, with the
// Largest Location in SUBSCRIBE_OK where the subscription really starts
// (draft-14 §5.1.2 and §9.16.2.1; the same in draft-16).

// joinFixture is a broadcast on a relay: a catalog track with three
// versions (groups 0..2), a one-version catalog, and a video track with
// groups 0..2 complete and group 3 in progress (2 of 5 objects).
type joinFixture struct {
	ts    *testServer
	url   string
	ns    Namespace
	video *Track
	cat   *Track
	open  *Group // video group 3
}

const joinPerGroup = 5

func newJoinFixture(t *testing.T, ctx context.Context, scheme string) *joinFixture {
	t.Helper()
	ts := startServer(t, RelayConfig{TrackLimits: TrackLimits{MaxGroups: 16}})
	f := &joinFixture{ts: ts, url: scheme + "://" + ts.addr + "/", ns: Namespace{"live", "join"}}
	pub, _ := moqgatePublisher(t, ctx, f.url, f.ns)
	f.video, f.cat = pub.Track("video"), pub.Track("catalog")
	single := pub.Track("catalog.json")
	// A viewer keeps the relay subscribed, so the relay caches.
	keeper := dialTest(t, ctx, f.url, Config{})
	for _, name := range []string{"video", "catalog", "catalog.json"} {
		if _, err := keeper.Subscribe(ctx, f.ns, name, SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for g := range 3 {
		writeGroup(t, f.cat, g, 1)
		writeGroup(t, f.video, g, joinPerGroup)
	}
	writeGroup(t, single, 0, 1)
	f.open = f.video.NewGroup()
	for o := range 2 {
		if err := f.open.Append(Object{ID: uint64(o), Payload: payload(3, o)}); err != nil {
			t.Fatal(err)
		}
	}
	waitRelayCache(t, ctx, ts.relay, "live/join", "video", 3, joinPerGroup)
	waitRelayCache(t, ctx, ts.relay, "live/join", "catalog", 3, 1)
	waitRelayCache(t, ctx, ts.relay, "live/join", "catalog.json", 1, 1)
	waitRelayObjects(t, ctx, ts.relay, "live/join", "video", 3, 2)
	return f
}

// finishOpenGroup writes the rest of video group 3 and then group 4.
func (f *joinFixture) finishOpenGroup(t *testing.T) {
	t.Helper()
	for o := 2; o < joinPerGroup; o++ {
		if err := f.open.Append(Object{ID: uint64(o), Payload: payload(3, o)}); err != nil {
			t.Fatal(err)
		}
	}
	f.open.Close()
	writeGroup(t, f.video, 4, joinPerGroup)
}

// waitRelayObjects waits until the relay caches n objects of the group.
func waitRelayObjects(t *testing.T, ctx context.Context, r *Relay, path, name string, group uint64, n int) {
	t.Helper()
	for ctx.Err() == nil {
		for _, b := range r.Broadcasts() {
			for _, ti := range b.Tracks {
				if b.Path != path || ti.Name != name {
					continue
				}
				if g := ti.track.group(group); g != nil && g.Len() >= n {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("relay cache of %s/%s: group %d never had %d objects", path, name, group, n)
}

func TestEyevinnJoiningFetch(t *testing.T) {
	for _, tr := range eyTransports {
		t.Run(tr.name, func(t *testing.T) { testEyevinnJoiningFetch(t, tr) })
	}
}

// eyJoin subscribes with Largest Object and sends a joining FETCH at once,
// as moqlivemock's subscribers do, and returns the subscription, its
// Largest Location and the fetched objects (want of them).
func eyJoin(t *testing.T, ctx context.Context, es *moqtransport.Session, ns Namespace, name string,
	fetchOpt func(reqID uint64) moqtransport.FetchOption, want int) (*moqtransport.RemoteTrack, moqtransport.Location, []*moqtransport.Object) {
	t.Helper()
	sub, err := es.Subscribe(ctx, ns, name, moqtransport.WithFilterType(moqtransport.FilterTypeLatestObject))
	if err != nil {
		t.Fatalf("%s: SUBSCRIBE: %v", name, err)
	}
	largest, ok := sub.LargestLocation()
	if !ok {
		t.Fatalf("%s: SUBSCRIBE_OK without content", name)
	}
	ft, err := es.Fetch(ctx, nil, "", fetchOpt(sub.RequestID()))
	if err != nil {
		t.Fatalf("%s: joining FETCH: %v", name, err)
	}
	objs, err := eyReadObjects(ctx, ft, want)
	if err == nil {
		err = eyNoMore(ctx, ft, 200*time.Millisecond)
	}
	if err != nil {
		t.Fatalf("%s: joining FETCH: %v", name, err)
	}
	return sub, largest, objs
}

// checkAfterLargest checks that the subscription delivers exactly want,
// every object after the Largest Location it reported.
func checkAfterLargest(ctx context.Context, sub *moqtransport.RemoteTrack, largest moqtransport.Location, want []loc) error {
	objs, err := eyReadObjects(ctx, sub, len(want))
	if err != nil {
		return err
	}
	for _, o := range objs {
		if l := (Location{o.GroupID, o.ObjectID}); !(Location{largest.Group, largest.Object}).Less(l) {
			return fmt.Errorf("subscription delivered %v, at or before its Largest %v", l, largest)
		}
	}
	// Each group has its own stream: groups may interleave.
	slices.SortStableFunc(objs, func(a, b *moqtransport.Object) int { return cmp.Compare(a.GroupID, b.GroupID) })
	return checkMoqgateObjects(objs, want)
}

func testEyevinnJoiningFetch(t *testing.T, tr eyTransport) {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	f := newJoinFixture(t, ctx, tr.scheme)
	es := &moqtransport.Session{}
	dialEyevinn(t, ctx, f.ts.addr, tr, es)
	relative := func(n uint64) func(uint64) moqtransport.FetchOption {
		return func(id uint64) moqtransport.FetchOption { return moqtransport.WithJoiningFetchRelative(id, n) }
	}

	// Catalog, offset 0: the subscription brings the current version
	// (group 2), the FETCH the one before (group 1).
	csub, cl, objs := eyJoin(t, ctx, es, f.ns, "catalog", relative(0), 1)
	if cl != (moqtransport.Location{Group: 1, Object: 0}) {
		t.Fatalf("catalog: SUBSCRIBE_OK largest %v, want {1 0}", cl)
	}
	if err := checkMoqgateObjects(objs, groupLocs(1, 1, 1)); err != nil {
		t.Fatalf("catalog FETCH: %v", err)
	}
	if err := checkAfterLargest(ctx, csub, cl, groupLocs(2, 2, 1)); err != nil {
		t.Fatalf("catalog subscription: %v", err)
	}
	writeGroup(t, f.cat, 3, 1)
	if err := checkAfterLargest(ctx, csub, cl, groupLocs(3, 3, 1)); err != nil {
		t.Fatalf("catalog subscription, update: %v", err)
	}

	// Video, offset 1: the subscription starts at the first object of
	// group 3 (in progress), the FETCH brings groups 1..2.
	vsub, vl, objs := eyJoin(t, ctx, es, f.ns, "video", relative(1), 2*joinPerGroup)
	if vl != (moqtransport.Location{Group: 2, Object: joinPerGroup - 1}) {
		t.Fatalf("video: SUBSCRIBE_OK largest %v, want {2 %d}", vl, joinPerGroup-1)
	}
	if err := checkMoqgateObjects(objs, groupLocs(1, 2, joinPerGroup)); err != nil {
		t.Fatalf("video FETCH: %v", err)
	}

	// Absolute joining FETCH from group 0 on a second subscription.
	asub, al, objs := eyJoin(t, ctx, es, f.ns, "video", func(id uint64) moqtransport.FetchOption {
		return moqtransport.WithJoiningFetchAbsolute(id, 0)
	}, 3*joinPerGroup)
	if al != vl {
		t.Fatalf("second video subscription: largest %v, want %v", al, vl)
	}
	if err := checkMoqgateObjects(objs, groupLocs(0, 2, joinPerGroup)); err != nil {
		t.Fatalf("absolute joining FETCH: %v", err)
	}
	f.finishOpenGroup(t)
	for _, s := range []*moqtransport.RemoteTrack{vsub, asub} {
		if err := checkAfterLargest(ctx, s, vl, groupLocs(3, 4, joinPerGroup)); err == nil {
			err = eyNoMore(ctx, s, 200*time.Millisecond)
		} else {
			t.Fatalf("video subscription: %v", err)
		}
	}

	// A track with a single group: nothing before where the subscription
	// starts, so no Largest (content exists 0) and a joining FETCH gets
	// INVALID_RANGE; the subscription brings the group.
	ssub, err := es.Subscribe(ctx, f.ns, "catalog.json", moqtransport.WithFilterType(moqtransport.FilterTypeLatestObject))
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := ssub.LargestLocation(); ok {
		t.Fatalf("one-group track: SUBSCRIBE_OK largest %v, want no content", l)
	}
	_, err = es.Fetch(ctx, nil, "", moqtransport.WithJoiningFetchRelative(ssub.RequestID(), 0))
	var pe moqtransport.ProtocolError
	if !errors.As(err, &pe) || pe.Code() != wire.FetchErrorInvalidRange {
		t.Fatalf("joining FETCH with no content: %v, want INVALID_RANGE", err)
	}
	objs, err = eyReadObjects(ctx, ssub, 1)
	if err == nil {
		err = checkMoqgateObjects(objs, groupLocs(0, 0, 1))
	}
	if err != nil {
		t.Fatalf("one-group track subscription: %v", err)
	}
}

// The same over draft-16, with moqgate's own client (moqtransport v0.9.0
// writes draft-16 FETCH in draft-14's layout, see INTEROP.md).
func TestJoiningFetchDraft16(t *testing.T) {
	for _, scheme := range []string{"moqt", "https"} {
		t.Run(scheme, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			f := newJoinFixture(t, ctx, scheme)
			s := dialVersion(t, ctx, f.url, wire.Version16, Config{TrackLimits: TrackLimits{MaxGroups: 16}})
			join := func(name string, fm *wire.Fetch, want []Location) *Subscription {
				t.Helper()
				sub, err := s.Subscribe(ctx, f.ns, name, SubscribeOptions{})
				if err != nil {
					t.Fatal(err)
				}
				fm.JoiningRequestID = sub.RequestID
				got, err := fetchLocs(ctx, s, fm)
				if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s joining FETCH: %v %v, want %v (largest %v)", name, got, err, want, sub.Largest)
				}
				return sub
			}
			csub := join("catalog", &wire.Fetch{FetchType: wire.FetchRelativeJoining}, []Location{{1, 0}})
			vsub := join("video", &wire.Fetch{FetchType: wire.FetchRelativeJoining, JoiningStart: 1}, locRange(1, 2))
			asub := join("video", &wire.Fetch{FetchType: wire.FetchAbsoluteJoining}, locRange(0, 2))
			if csub.Largest != (Location{1, 0}) || vsub.Largest != (Location{2, joinPerGroup - 1}) || asub.Largest != vsub.Largest {
				t.Fatalf("largest: catalog %v, video %v and %v", csub.Largest, vsub.Largest, asub.Largest)
			}
			if err := waitTrackGroups(ctx, csub.Track, 1, 2); err != nil {
				t.Fatalf("catalog subscription: %v", err)
			}
			f.finishOpenGroup(t)
			for _, sub := range []*Subscription{vsub, asub} {
				if err := waitTrackGroups(ctx, sub.Track, joinPerGroup, 3, 4); err != nil {
					t.Fatalf("video subscription: %v", err)
				}
			}
		})
	}
}

// fetchLocs runs a FETCH and lists the locations it returns.
func fetchLocs(ctx context.Context, s *Session, m *wire.Fetch) ([]Location, error) {
	fr, err := s.fetch(ctx, m)
	if err != nil {
		return nil, err
	}
	var out []Location
	for {
		o, err := fr.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, Location{o.GroupID, o.ID})
	}
}

// locRange lists whole video groups [from, to].
func locRange(from, to uint64) []Location {
	var out []Location
	for _, l := range groupLocs(from, to, joinPerGroup) {
		out = append(out, Location{l.g, l.o})
	}
	return out
}

// waitTrackGroups waits until a subscriber's track holds exactly the
// groups ids, complete with n objects each, and nothing else.
func waitTrackGroups(ctx context.Context, tr *Track, n int, ids ...uint64) error {
	for {
		var got []uint64
		complete := 0
		for _, g := range tr.cachedGroups() {
			got = append(got, g.ID)
			if objs, _ := g.Objects(); len(objs) == n {
				complete++
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(ids) && complete == len(ids) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("track has groups %v (%d complete), want %v", got, complete, ids)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
