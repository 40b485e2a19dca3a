package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/rtctest"
	"github.com/moqgate/moqgate/moq"
)

// TestChurnAcrossProtocols: 1,000 cycles of connect / subscribe (or
// publish) / disconnect against one moqgate process, mixing MoQ over raw
// QUIC and WebTransport, LL-HLS, WHEP viewers and RTMP publishers, while a
// WHIP publisher keeps the broadcast live. The server's goroutine count
// and heap in use (its own /metrics, after a forced GC) return to the
// baseline taken after a warm-up round.
func TestChurnAcrossProtocols(t *testing.T) {
	if testing.Short() {
		t.Skip("churn test in -short mode")
	}
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	video, audio := pionMedia(t, rtctest.EncodeOptions{Seconds: 2})
	// pprof gives /debug/pprof/heap?gc=1, which makes the server collect
	// garbage before its heap is read.
	g := startGate(t, "debug:\n  pprof: true\nrtmp:\n  grace_period: 1s\nhls:\n  idle_timeout: 2s\n",
		"--log-level", "info")
	pub, err := rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.Web + "/whip/live/churn", Video: video, Audio: audio, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	g.waitBroadcast(t, ctx, "live/churn")

	var sps, pps []byte
	for _, nal := range rtctest.SplitAnnexB(video[0]) {
		switch nal[0] & 0x1f {
		case 7:
			sps = nal
		case 8:
			pps = nal
		}
	}
	kinds := []string{"quic", "webtransport", "hls", "quic", "webtransport", "hls", "quic", "webtransport", "whep", "rtmp"}
	cycle := func(i int) error {
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		defer ccancel()
		switch k := kinds[i%len(kinds)]; k {
		case "quic", "webtransport":
			u := g.MoQ
			if k == "webtransport" {
				u = g.WT
			}
			s, err := moq.Dial(cctx, u, moq.DialOptions{Insecure: true})
			if err != nil {
				return err
			}
			defer s.Close()
			sub, err := s.Subscribe(cctx, moq.Namespace{"live", "churn"}, "video", moq.SubscribeOptions{})
			if err != nil {
				return err
			}
			gr, err := sub.Track.NewReader(false).NextGroup(cctx)
			if err != nil {
				return err
			}
			_, err = gr.Next(cctx)
			return err
		case "hls":
			// A fresh client each time: one TCP connection per cycle.
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			base := g.Web + "/hls/live/churn/"
			pl, err := fetchOK(cctx, c, base+"index.m3u8")
			if err != nil {
				return err
			}
			// The multivariant playlist names the video playlist last.
			lines := strings.Fields(pl)
			if pl, err = fetchOK(cctx, c, base+lines[len(lines)-1]); err != nil {
				return err
			}
			for line := range strings.SplitSeq(pl, "\n") {
				if uri, ok := strings.CutPrefix(line, "#EXT-X-MAP:URI=\""); ok {
					_, err := fetchOK(cctx, c, base+strings.TrimSuffix(uri, "\""))
					return err
				}
			}
			return fmt.Errorf("no EXT-X-MAP in the media playlist:\n%s", pl)
		case "whep":
			v, err := rtctest.View(cctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/live/churn", Light: true})
			if err != nil {
				return err
			}
			defer v.Close()
			for cctx.Err() == nil {
				if st, ok := v.Stats()["video"]; ok && st.Packets > 0 {
					return nil
				}
				time.Sleep(10 * time.Millisecond)
			}
			return fmt.Errorf("WHEP viewer got no video: %w", cctx.Err())
		case "rtmp":
			u, err := url.Parse(g.RTMP + "/live/churn-rtmp")
			if err != nil {
				return err
			}
			c := &gortmplib.Client{URL: u, Publish: true}
			if err := c.Initialize(cctx); err != nil {
				return err
			}
			defer c.Close()
			vt := &gortmplib.Track{Codec: &codecs.H264{SPS: sps, PPS: pps}}
			w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{vt}}
			if err := w.Initialize(); err != nil {
				return err
			}
			for f := range 3 {
				pts := time.Duration(f) * time.Second / 30
				if err := w.WriteH264(vt, pts, pts, rtctest.SplitAnnexB(video[f])); err != nil {
					return err
				}
			}
			return nil
		}
		return nil
	}
	settle := func() (goroutines, heap float64) {
		for range 3 {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			if _, err := fetchOK(ctx, c, g.Web+"/debug/pprof/heap?gc=1"); err != nil {
				t.Fatal(err)
			}
		}
		m := scrapeMetrics(t, ctx, g.Web)
		return m["go_goroutines"], m["go_memstats_heap_inuse_bytes"]
	}
	// Warm up (the tracks appear with the publisher's first frames; lazy
	// pools, the HLS muxer), then take the baseline.
	for i, deadline := 0, time.Now().Add(20*time.Second); i < len(kinds); {
		if err := cycle(i); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("warm-up %s: %v", kinds[i], err)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		i++
	}
	time.Sleep(3 * time.Second) // the RTMP grace period and the WHEP sessions' teardown
	baseG, baseHeap := settle()
	start := time.Now()
	for i := range 1000 {
		if err := cycle(i); err != nil {
			t.Fatalf("cycle %d (%s): %v", i, kinds[i%len(kinds)], err)
		}
	}
	took := time.Since(start)
	var gs, heap float64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Second) {
		gs, heap = settle()
		if gs <= baseG+10 && heap <= baseHeap+16<<20 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("1000 cycles in %s; server goroutines %.0f -> %.0f, heap in use %.1f MiB -> %.1f MiB",
		took.Round(time.Millisecond), baseG, gs, baseHeap/(1<<20), heap/(1<<20))
	if gs > baseG+10 {
		t.Errorf("server goroutines did not return to baseline: %.0f -> %.0f", baseG, gs)
	}
	if heap > baseHeap+16<<20 {
		t.Errorf("server heap did not return to baseline: %.1f MiB -> %.1f MiB", baseHeap/(1<<20), heap/(1<<20))
	}
	if g.logs.contains("panic") {
		t.Error("the server log mentions a panic")
	}
}

func fetchOK(ctx context.Context, c *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return string(b), nil
}

// scrapeMetrics reads the samples of GET /metrics, keyed by name and
// labels as written (`moqgate_sessions{protocol="whep"}`).
func scrapeMetrics(t *testing.T, ctx context.Context, web string) map[string]float64 {
	t.Helper()
	body, err := fetchOK(ctx, http.DefaultClient, web+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		name, val := line[:i], line[i+1:]
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			m[name] = v
		}
	}
	return m
}
