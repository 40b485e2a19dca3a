package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/moq"
)

// TestBrowserRawWebTransport: a small draft-14 subscriber written in
// JavaScript runs in headless Chromium: it fetches /certificate.sha256,
// opens WebTransport to moqgate with the hash pinned (offering moq-00, then
// moqt-16: moqgate must select moq-00), completes CLIENT_SETUP/SERVER_SETUP
// and receives the objects a Go publisher sends.
func TestBrowserRawWebTransport(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerChromium)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "")
	pub := moq.NewPublisher(moq.Namespace{"live", "wt"}, moq.TrackLimits{})
	ps, err := moq.Dial(ctx, g.MoQ, moq.DialOptions{Insecure: true, Session: moq.Config{Handler: pub}})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if err := ps.PublishNamespace(ctx, pub.Namespace()); err != nil {
		t.Fatal(err)
	}
	track := pub.Track("data")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for grp := 0; ; grp++ {
			gr := track.NewGroup()
			for o := 0; o < 5; o++ {
				gr.Append(moq.Object{ID: uint64(o), Payload: []byte(fmt.Sprintf("g%d-o%d", gr.ID, o))})
				select {
				case <-stop:
					return
				case <-time.After(40 * time.Millisecond):
				}
			}
			gr.Close()
		}
	}()
	page, err := os.ReadFile("testdata/wt-raw.html")
	if err != nil {
		t.Fatal(err)
	}
	base := browsertest.Serve(t, map[string]string{"/wt-raw.html": string(page)})
	raw, err := browsertest.RunPage(t, ctx, base+"/wt-raw.html?server="+g.Web+"&ns=live/wt&track=data&objects=20",
		browsertest.PageOptions{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	type obj struct {
		Group int    `json:"group"`
		ID    int    `json:"id"`
		Text  string `json:"text"`
	}
	r := browsertest.Decode[struct {
		Protocol     *string `json:"protocol"`
		Version      string  `json:"version"`
		MaxRequestID int     `json:"maxRequestID"`
		Expires      int     `json:"expires"`
		Objects      []obj   `json:"objects"`
	}](t, raw)
	// moqgate selects the first protocol of the client's it speaks (see
	// moq.TestProtocolSelection; moqt-16 when offered first).
	if r.Protocol == nil || *r.Protocol != "moq-00" {
		t.Errorf("WebTransport protocol %v, want moq-00 (offered moq-00, moqt-16)", r.Protocol)
	}
	if r.Version != "0xff00000e" || r.MaxRequestID == 0 || r.Expires != 0 {
		t.Errorf("setup: version %s, MAX_REQUEST_ID %d, expires %d", r.Version, r.MaxRequestID, r.Expires)
	}
	if len(r.Objects) < 20 {
		t.Fatalf("got %d objects", len(r.Objects))
	}
	next := map[int]int{}
	for i, o := range r.Objects {
		if o.Text != fmt.Sprintf("g%d-o%d", o.Group, o.ID) {
			t.Fatalf("object %d: %+v has the wrong payload", i, o)
		}
		if want, ok := next[o.Group]; ok && o.ID != want {
			t.Fatalf("group %d: object %d after %d", o.Group, o.ID, want-1)
		}
		if _, ok := next[o.Group]; !ok && o.ID != 0 && i > 0 {
			t.Fatalf("group %d started at object %d", o.Group, o.ID)
		}
		next[o.Group] = o.ID + 1
	}
	if r.Objects[0].ID != 0 {
		t.Errorf("the subscription started at object %d, want the first object of the newest group", r.Objects[0].ID)
	}
}
