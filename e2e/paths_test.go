package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

// moqClient runs `moqgate sub` or `moqgate pub` (fed fMP4 by ffmpeg) for
// broadcast and returns its output once it exits.
func moqClient(t *testing.T, ctx context.Context, g *gate, verb, broadcast string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, binPath, verb, "--insecure", g.MoQ, broadcast)
	if verb == "sub" {
		cmd.Args = append(cmd.Args[:2], append([]string{"--duration", "1s"}, cmd.Args[2:]...)...)
		cmd.Stdout = io.Discard
	} else {
		browsertest.RequirePeer(t, "ffmpeg")
		enc := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
			"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-t", "10", "-c:v", "libx264", "-g", "15",
			"-f", "mp4", "-movflags", "cmaf+frag_keyframe+empty_moov+default_base_moof", "-")
		pipe, err := enc.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { enc.Process.Kill(); enc.Wait() }()
		cmd.Stdin = pipe
	}
	cmd.Stderr = &out
	if err := cmd.Run(); err == nil {
		t.Errorf("moqgate %s %q succeeded", verb, broadcast)
	}
	return out.String()
}

// TestBroadcastPathRules: the same names are refused by every protocol,
// for the same reason — "..", "." and empty elements, backslashes and
// control characters: MoQ PUBLISH_NAMESPACE and SUBSCRIBE (moqgate pub,
// moqgate sub), RTMP and SRT publish (ffmpeg), WHIP and WHEP offers and LL-HLS
// requests (400, also when percent-encoded, never redirected to another
// broadcast).
func TestBroadcastPathRules(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	g := startGate(t, "")
	bad := []string{"live/../x", "live//x", "live/./x", `live/a\b`, "live/a\x01b"}
	const reason = "invalid broadcast path"
	for _, name := range bad {
		for _, verb := range []string{"sub", "pub"} {
			if out := moqClient(t, ctx, g, verb, name); !strings.Contains(out, reason) {
				t.Errorf("moqgate %s %q: not refused as an %s:\n%s", verb, name, reason, out)
			}
		}
	}
	// RTMP: the stream key's elements (ffmpeg keeps a "//" as one "/",
	// which RTMP's app/stream split allows anyway).
	for _, key := range []string{"live/../x", "live/./x"} {
		ff := ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-t", "10",
			"-c:v", "libx264", "-g", "15", "-f", "flv", g.RTMP+"/"+key)
		if err := ff.Wait(); err == nil {
			t.Errorf("RTMP publish to %q succeeded", key)
		}
	}
	// SRT: the stream ID's path (ffmpeg as the caller).
	for _, name := range []string{"live/../x", "live//x", `live/a\b`} {
		ff := ffmpeg(t, ctx, srtPushArgs(5, h264Args, aacArgs, srtURL(g.SRT, "publish:"+name))...)
		if err := ff.Wait(); err == nil {
			t.Errorf("SRT publish to %q succeeded", name)
		}
	}
	for _, b := range g.broadcasts(t) {
		t.Errorf("a refused publisher made broadcast %v", b["path"])
	}
	if !g.logs.contains(reason) {
		t.Errorf("the server log does not tell the RTMP refusals' reason (%s)", reason)
	}
	// In URLs: the control character percent-encoded, ".." too.
	for _, name := range append(bad[:4], "live/a%01b", "live/%2e%2e/x", "live/%2E/x") {
		for _, req := range []struct{ method, url string }{
			{"POST", "/whip/" + name},
			{"POST", "/whep/" + name},
			{"DELETE", "/whep/" + name + "/abc"},
			{"GET", "/hls/" + name + "/index.m3u8"},
			{"GET", "/api/broadcasts/" + name},
			{"GET", "/watch/" + name},
		} {
			st, body := rawRequest(t, ctx, req.method, g.Web+req.url)
			if st != http.StatusBadRequest || !strings.Contains(body, reason) {
				t.Errorf("%s %s: %d %q, want 400 %s", req.method, req.url, st, body, reason)
			}
		}
	}
	// A valid name is not refused for its path.
	if st, body := rawRequest(t, ctx, "GET", g.Web+"/hls/live/ok/index.m3u8"); st != http.StatusNotFound {
		t.Errorf("LL-HLS of an unknown valid broadcast: %d %q, want 404", st, body)
	}
}

// rawRequest sends a request whose URL path is kept as written (the Go
// client does not clean "..").
func rawRequest(t *testing.T, ctx context.Context, method, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}
