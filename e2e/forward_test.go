package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/moqgate/moqgate/moq"
)

// groupLog records, per group of one track, the hash of its objects, as a
// MoQ viewer of the track received them.
type groupLog struct {
	mu     sync.Mutex
	groups map[uint64][32]byte
	counts map[uint64]int // objects per group
	first  time.Time      // when the first complete group arrived
}

// watchTrack subscribes to a track over MoQ and logs its complete groups
// until ctx is done.
func watchTrack(t *testing.T, ctx context.Context, url, path, name string, draft int) *groupLog {
	t.Helper()
	gl := &groupLog{groups: map[uint64][32]byte{}, counts: map[uint64]int{}}
	v, err := moq.DraftVersion(draft)
	if err != nil {
		t.Fatal(err)
	}
	s, err := moq.Dial(ctx, url, moq.DialOptions{Insecure: true, Version: v})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	context.AfterFunc(ctx, func() { s.Close() })
	tc, err := s.SubscribeTrack(ctx, path, name, moq.SubscribeOptions{})
	if err != nil {
		t.Fatalf("subscribe %s %s at %s: %v", path, name, url, err)
	}
	go func() {
		defer tc.Close()
		r := tc.Reader(false)
		for {
			g, err := r.NextGroup(ctx)
			if err != nil {
				return
			}
			h := sha256.New()
			n := 0
			for {
				o, err := g.Next(ctx)
				if errors.Is(err, io.EOF) {
					gl.mu.Lock()
					if len(gl.groups) == 0 {
						gl.first = time.Now()
					}
					gl.groups[g.ID()] = [32]byte(h.Sum(nil))
					gl.counts[g.ID()] = n
					gl.mu.Unlock()
					break
				}
				if err != nil {
					break
				}
				n++
				fmt.Fprintf(h, "%d:%d:", o.ID, len(o.Payload))
				h.Write(o.Payload)
			}
		}
	}()
	return gl
}

// compare asserts that every group both logs hold is the same and that
// there are at least min of them.
func (gl *groupLog) compare(t *testing.T, other *groupLog, min int) {
	t.Helper()
	gl.mu.Lock()
	defer gl.mu.Unlock()
	other.mu.Lock()
	defer other.mu.Unlock()
	common := 0
	for id, h := range other.groups {
		want, ok := gl.groups[id]
		if !ok {
			continue
		}
		if want != h {
			t.Errorf("group %d differs between the origin's viewer (%d objects) and the target's (%d)", id, gl.counts[id], other.counts[id])
		}
		common++
	}
	if common < min {
		t.Fatalf("only %d groups in common (origin %d, target %d), want %d", common, len(gl.groups), len(other.groups), min)
	}
	t.Logf("%d groups with the same IDs and bytes on both (origin viewer %d, target viewer %d)", common, len(gl.groups), len(other.groups))
}

// waitTrack waits until the gate lists the track of the broadcast.
func waitTrack(t *testing.T, ctx context.Context, g *gate, path, track string) {
	t.Helper()
	for subCount(t, g, path, track) == nil {
		select {
		case <-ctx.Done():
			t.Fatalf("track %s of %s did not appear", track, path)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func forwardStatus(t *testing.T, g *gate) []map[string]any {
	t.Helper()
	resp := g.get(t, "/api/forward")
	defer resp.Body.Close()
	var v struct {
		Targets []map[string]any `json:"targets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Targets
}

// TestForward: moqgate A forwards an RTMP broadcast to moqgate B (renamed
// live/ → customer42/live/) over each draft and mode; a MoQ viewer on B
// gets the same groups (IDs and bytes) as A's local viewer, LL-HLS on B
// plays, A's API reports the target.
func TestForward(t *testing.T) {
	for _, tc := range []struct {
		draft int
		mode  string
		url   func(*gate) string
	}{
		{14, "announce", func(g *gate) string { return g.MoQ }},
		{16, "announce", func(g *gate) string { return g.WT }},
		{14, "publish", func(g *gate) string { return g.WT }},
		{16, "publish", func(g *gate) string { return g.MoQ }},
		{17, "announce", func(g *gate) string { return g.MoQ }},
		{17, "publish", func(g *gate) string { return g.WT }},
	} {
		t.Run(fmt.Sprintf("draft%d-%s", tc.draft, tc.mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			b := startGate(t, "")
			a := startGate(t, fmt.Sprintf(`forward:
  - url: %q
    draft: %d
    insecure: true
    mode: %s
    prefixes: ["live"]
    rename: {from: live, to: customer42/live}
`, tc.url(b), tc.draft, tc.mode))
			pushRTMP(t, ctx, a, "320x240", "0")
			a.waitBroadcast(t, ctx, "live/test")
			waitTrack(t, ctx, a, "live/test", "video")
			b.waitBroadcast(t, ctx, "customer42/live/test")
			vctx, vcancel := context.WithTimeout(ctx, 8*time.Second)
			defer vcancel()
			onA := watchTrack(t, vctx, a.MoQ, "live/test", "video", 14)
			onB := watchTrack(t, vctx, b.MoQ, "customer42/live/test", "video", tc.draft)
			checkLLHLS(t, ctx, b.Web+"/hls/customer42/live/test/index.m3u8")
			<-vctx.Done()
			onA.compare(t, onB, 4)
			st := forwardStatus(t, a)
			if len(st) != 1 || st[0]["connected"] != true || st[0]["broadcasts"].(float64) != 1 || st[0]["bytes"].(float64) == 0 {
				t.Fatalf("forward status %v", st)
			}
			t.Logf("status %v", st[0])
		})
	}
}
