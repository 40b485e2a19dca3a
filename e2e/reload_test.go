package e2e

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/rtctest"
)

var reloadedRE = regexp.MustCompile(`msg="configuration reloaded" applied=(\S*)`)

// reload rewrites the gate's config file and sends SIGHUP; it returns
// once the server logged the reload.
func (g *gate) reload(t *testing.T, yaml string) {
	t.Helper()
	if err := os.WriteFile(g.cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	before := len(g.logs.submatches(reloadedRE))
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(g.logs.submatches(reloadedRE)) == before {
		if time.Now().After(deadline) {
			t.Fatal("no reload logged within 10 s of SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadLimits: SIGHUP applies limits.http_body_max and
// limits.webrtc_max_media_sections to the next WHEP offers (a 9 KB
// offer accepted under 64 KiB is answered 413 under 6 KiB; 3 m-lines
// are 400 under a cap of 2), and the reload log names what it applied and
// what needs a restart (hls.max_muxers).
func TestReloadLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := startGate(t, "limits:\n  http_body_max: 64KiB\n")
	one := whepOffer(t, 1)
	big := one + strings.Repeat("a=x-pad:"+strings.Repeat("x", 100)+"\r\n", 70)
	post := func(offer string) (int, string) {
		st, _, body, err := rtctest.Do(ctx, "POST", g.Web+"/whep/live/none", "", "application/sdp", offer, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st, string(body)
	}
	t.Logf("offer of %d bytes", len(big))
	if st, body := post(big); st == http.StatusRequestEntityTooLarge || st == http.StatusBadRequest {
		t.Fatalf("an %d-byte offer under a 64 KiB limit: %d %s", len(big), st, body)
	}
	if st, body := post(whepOffer(t, 3)); st == http.StatusBadRequest {
		t.Fatalf("3 m-lines under the default cap: %d %s", st, body)
	}
	g.reload(t, "limits:\n  http_body_max: 6KiB\n  webrtc_max_media_sections: 2\nhls:\n  max_muxers: 7\n")
	if st, body := post(big); st != http.StatusRequestEntityTooLarge {
		t.Errorf("an %d-byte offer after reloading a 6 KiB limit: %d %s, want 413", len(big), st, body)
	}
	if st, body := post(whepOffer(t, 3)); st != http.StatusBadRequest {
		t.Errorf("3 m-lines after reloading a cap of 2: %d %s, want 400", st, body)
	}
	if st, body := post(one); st == http.StatusRequestEntityTooLarge || st == http.StatusBadRequest {
		t.Errorf("a small offer after the reload: %d %s", st, body)
	}
	if m := g.logs.submatches(reloadedRE)[0]; m[1] != "limits.http_body_max,limits.webrtc_max_media_sections" {
		t.Errorf("the reload log says it applied %q", m[1])
	}
	if !g.logs.contains(`need a restart were not applied" settings=hls.max_muxers`) {
		t.Error("the reload log does not say that hls.max_muxers needs a restart")
	}
}
