package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

// TestWebUILinks: broadcasts whose names hold URL syntax (live/%74est,
// live/a#frag) are listed on / with links that reach them: the watch
// page opened from the card's link is for that very broadcast, and the
// card's LL-HLS URL answers its playlist.
func TestWebUILinks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	g := startGate(t, "")
	names := []string{"live/%74est", "live/a#frag", "live/a b?c"}
	for _, name := range names {
		pubPipeline(t, ctx, g.MoQ, name, "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-t", "90",
			"-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "15",
			"-f", "mp4", "-movflags", "cmaf+frag_keyframe+empty_moov+default_base_moof", "-")
		g.waitBroadcast(t, ctx, name)
	}
	b := browsertest.Launch(t)
	list, err := b.Open(ctx, "list", g.Web+"/", browsertest.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer list.Close(ctx)
	if err := list.Wait(ctx, listPaths+`.length === 3`, 10*time.Second, nil); err != nil {
		t.Fatalf("the list page does not show the three broadcasts: %v", err)
	}
	for _, name := range names {
		var links struct {
			Watch string `json:"watch"`
			HLS   string `json:"hls"`
		}
		card := `[...document.querySelectorAll("#list .card")].find((c) => c.dataset.path === ` + jsString(name) + `)`
		if err := list.Eval(ctx, `(() => { const c = `+card+`; const codes = [...c.querySelectorAll("code")].map((e) => e.textContent);
			return { watch: c.querySelector("a.name").href, hls: codes.find((u) => u.includes("/hls/")) }; })()`, &links); err != nil {
			t.Fatal(err)
		}
		p, err := b.Open(ctx, "watch", links.Watch, browsertest.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = p.Eval(ctx, `JSON.parse(document.getElementById("config").textContent).broadcast`, &got)
		p.Close(ctx)
		if err != nil || got != name {
			t.Errorf("%q: its link %s opens the watch page of %q (%v)", name, links.Watch, got, err)
		}
		resp, err := http.Get(links.HLS)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%q: its LL-HLS URL %s answers %s", name, links.HLS, resp.Status)
		}
	}
}
