package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// listed reports whether the gate lists the broadcast as live.
func listed(t *testing.T, g *gate, path string) bool {
	for _, b := range g.broadcasts(t) {
		if b["path"] == path {
			live, ok := b["live"].(bool)
			return !ok || live
		}
	}
	return false
}

// waitListed waits until the gate lists the broadcast (want) or not, and
// returns how long that took.
func waitListed(t *testing.T, ctx context.Context, g *gate, path string, want bool) time.Duration {
	t.Helper()
	start := time.Now()
	for listed(t, g, path) != want {
		select {
		case <-ctx.Done():
			t.Fatalf("broadcast %s listed=%v never happened", path, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return time.Since(start)
}

// arrives asserts that live/test is listed on g within max.
func arrives(t *testing.T, ctx context.Context, g *gate, what string, max time.Duration) {
	t.Helper()
	took := waitListed(t, ctx, g, "live/test", true)
	t.Logf("%s: broadcast there after %s", what, took)
	if took > max {
		t.Fatalf("%s: the broadcast took %s to arrive, want at most %s", what, took, max)
	}
}

// noGap asserts that a viewer's groups are consecutive: it saw no gap.
func (gl *groupLog) noGap(t *testing.T) {
	t.Helper()
	gl.mu.Lock()
	defer gl.mu.Unlock()
	var lo, hi uint64
	first := true
	for id := range gl.groups {
		if first || id < lo {
			lo = id
		}
		if first || id > hi {
			hi = id
		}
		first = false
	}
	if n := uint64(len(gl.groups)); first || hi-lo+1 != n {
		t.Fatalf("origin viewer: %d groups from %d to %d: a gap", n, lo, hi)
	}
	t.Logf("origin viewer: groups %d..%d, no gap", lo, hi)
}

// TestForwardTargetDownAndBack: the target is down when moqgate A starts
// forwarding; it comes up 5 s later and gets the broadcast within about a
// group (GOP 1 s); killed mid-stream and restarted, it gets it again; A's
// local viewer sees no gap throughout.
func TestForwardTargetDownAndBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	a := startGate(t, "", "--forward", "moqt://"+listen+"?insecure=1&draft=16")
	pushRTMP(t, ctx, a, "320x240", "0")
	a.waitBroadcast(t, ctx, "live/test")
	waitTrack(t, ctx, a, "live/test", "video")
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	onA := watchTrack(t, vctx, a.MoQ, "live/test", "video", 14)

	time.Sleep(5 * time.Second)
	b := startGate(t, "", "--listen", listen)
	// About a group (GOP 1 s) plus the retry.
	arrives(t, ctx, b, "target up", 2500*time.Millisecond)
	onB := watchTrack(t, vctx, b.MoQ, "live/test", "video", 16)
	time.Sleep(3 * time.Second)

	b.cmd.Process.Kill()
	b.cmd.Wait()
	time.Sleep(time.Second)
	b = startGate(t, "", "--listen", listen)
	arrives(t, ctx, b, "target restarted", 2500*time.Millisecond)
	onB2 := watchTrack(t, vctx, b.MoQ, "live/test", "video", 16)
	time.Sleep(3 * time.Second)
	vcancel()
	onA.noGap(t)
	onA.compare(t, onB, 2)
	onA.compare(t, onB2, 2)
	st := forwardStatus(t, a)
	if len(st) != 1 || st[0]["reconnects"].(float64) < 1 || st[0]["connected"] != true {
		t.Fatalf("status %v: want connected after reconnects", st)
	}
	t.Logf("status %v", st[0])
}

// TestForwardFailover: a failover pair; the primary is killed, the
// standby has the broadcast within 2 s; the primary comes back, the
// broadcast goes back to it and the standby is let go.
func TestForwardFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	primary := startGate(t, "", "--listen", listen)
	standby := startGate(t, "")
	a := startGate(t, fmt.Sprintf(`forward:
  - url: "moqt://%s"
    insecure: true
  - url: %q
    insecure: true
    failover: true
`, listen, standby.MoQ))
	pushRTMP(t, ctx, a, "320x240", "0")
	a.waitBroadcast(t, ctx, "live/test")
	waitListed(t, ctx, primary, "live/test", true)
	time.Sleep(2 * time.Second)
	if st := forwardStatus(t, a); st[1]["connected"] != false {
		t.Fatalf("standby connected while the primary is up: %v", st)
	}

	primary.cmd.Process.Kill()
	primary.cmd.Wait()
	arrives(t, ctx, standby, "primary killed: standby", 2*time.Second)
	onStandby := watchTrack(t, ctx, standby.MoQ, "live/test", "video", 14)
	time.Sleep(2 * time.Second)

	primary = startGate(t, "", "--listen", listen)
	arrives(t, ctx, primary, "primary back", 2500*time.Millisecond)
	deadline := time.Now().Add(2 * time.Second)
	for forwardStatus(t, a)[1]["connected"] != false {
		if time.Now().After(deadline) {
			t.Fatalf("standby still connected 2 s after the primary came back: %v", forwardStatus(t, a))
		}
		time.Sleep(50 * time.Millisecond)
	}
	onStandby.mu.Lock()
	n := len(onStandby.groups)
	onStandby.mu.Unlock()
	if n < 1 {
		t.Fatal("the standby's viewer got no group")
	}
	t.Logf("status %v", forwardStatus(t, a))
}

// TestForwardAuth: target B has JWT auth; A forwards to it twice (fan-out,
// renamed apart), once without a token (refused, the error in the status)
// and once with a token granting its prefix (accepted).
func TestForwardAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	secret := writeSecret(t, "0123456789abcdef0123456789abcdef")
	b := startGate(t, "", "--jwt-secret-file", secret)
	tok := mint(t, secret, "--pub", "tok")
	a := startGate(t, fmt.Sprintf(`forward:
  - url: %q
    insecure: true
    mode: announce
    rename: {from: live, to: notok/live}
  - url: %q
    insecure: true
    mode: announce
    token: %q
    rename: {from: live, to: tok/live}
`, b.MoQ, b.MoQ, tok))
	pushRTMP(t, ctx, a, "320x240", "0")
	a.waitBroadcast(t, ctx, "live/test")
	waitListed(t, ctx, b, "tok/live/test", true)
	time.Sleep(time.Second)
	if listed(t, b, "notok/live/test") {
		t.Fatal("B accepted the broadcast without a token")
	}
	st := forwardStatus(t, a)
	if st[0]["last_error"] == nil || st[0]["broadcasts"].(float64) != 0 || st[1]["broadcasts"].(float64) != 1 {
		t.Fatalf("status %v", st)
	}
	for _, s := range st {
		for _, v := range s {
			if str, ok := v.(string); ok && len(tok) > 20 && strings.Contains(str, tok) {
				t.Fatal("the token shows in the status")
			}
		}
	}
	if a.logs.contains(tok) {
		t.Fatal("the token shows in the log")
	}
	t.Logf("without a token: %v", st[0]["last_error"])
}
