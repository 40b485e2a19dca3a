package hls

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/moqgate/moqgate/internal/mediatest"
	"github.com/moqgate/moqgate/moq"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() || os.Getenv("HLS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// env is a relay with an HLS server in front of it.
type env struct {
	relay *moq.Relay
	hls   *Server
	url   string // http://127.0.0.1:port/hls/
	log   *slog.Logger
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	log := testLogger(t)
	relay := moq.NewRelay(moq.RelayConfig{Logger: log, GracePeriod: 3 * time.Second})
	cfg.Relay, cfg.Logger = relay, log
	srv := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		srv.Run(ctx)
		close(runDone)
	}()
	mux := http.NewServeMux()
	mux.Handle("/hls/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		cancel()
		<-runDone
		hs.Close()
	})
	return &env{relay: relay, hls: srv, url: hs.URL + "/hls/", log: log}
}

// publish plays a media/testdata clip as broadcast path until the test
// ends (or loops are done).
func (e *env) publish(t *testing.T, file, path string, opts mediatest.PublishOptions) <-chan error {
	t.Helper()
	clip, err := mediatest.LoadClip(mediatest.TestdataPath(file))
	if err != nil {
		t.Fatal(err)
	}
	return e.publishClip(t, clip, path, opts)
}

func (e *env) publishClip(t *testing.T, clip *mediatest.Clip, path string, optList ...mediatest.PublishOptions) <-chan error {
	t.Helper()
	var opts mediatest.PublishOptions
	if len(optList) > 0 {
		opts = optList[0]
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts.Logger = e.log
	go func() { done <- clip.Publish(ctx, e.relay, path, opts) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	e.waitBroadcast(t, path)
	return done
}

// waitBroadcast waits until the relay has the broadcast.
func (e *env) waitBroadcast(t *testing.T, path string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !e.relay.HasBroadcast(path); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("broadcast %s did not appear", path)
		}
	}
}

type response struct {
	code   int
	header http.Header
	body   string
	took   time.Duration
}

func get(t *testing.T, url string) response {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: string(b), took: time.Since(start)}
}

func mustGet(t *testing.T, url string) response {
	t.Helper()
	r := get(t, url)
	if r.code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, r.code, r.body)
	}
	return r
}

func parseMedia(t *testing.T, body string) *playlist.Media {
	t.Helper()
	var pl playlist.Media
	if err := pl.Unmarshal([]byte(body)); err != nil {
		t.Fatalf("media playlist: %v\n%s", err, body)
	}
	return &pl
}

var partInfRE = regexp.MustCompile(`#EXT-X-PART-INF:PART-TARGET=([0-9.]+)`)
var holdBackRE = regexp.MustCompile(`PART-HOLD-BACK=([0-9.]+)`)

func TestLowLatencyPlaylist(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.publish(t, "fmp4_h264_aac.mp4", "live/test", mediatest.PublishOptions{})

	start := time.Now()
	mv := mustGet(t, e.url+"live/test/index.m3u8")
	t.Logf("first playlist after %s", time.Since(start))
	if mv.header.Get("Cache-Control") != "no-cache" {
		t.Errorf("multivariant Cache-Control %q", mv.header.Get("Cache-Control"))
	}
	if mv.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("no CORS header")
	}
	if !strings.Contains(mv.body, `avc1.`) || !strings.Contains(mv.body, `mp4a.40.2`) {
		t.Fatalf("multivariant playlist lacks the codecs:\n%s", mv.body)
	}
	if !strings.Contains(mv.body, "video1_stream.m3u8") || !strings.Contains(mv.body, "audio2_stream.m3u8") {
		t.Fatalf("multivariant playlist:\n%s", mv.body)
	}

	media := mustGet(t, e.url+"live/test/video1_stream.m3u8")
	for _, want := range []string{"#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES", "#EXT-X-PART-INF:PART-TARGET=", "#EXT-X-MAP:"} {
		if !strings.Contains(media.body, want) {
			t.Errorf("media playlist lacks %s:\n%s", want, media.body)
		}
	}
	if media.header.Get("Cache-Control") != "no-cache" {
		t.Errorf("media playlist Cache-Control %q", media.header.Get("Cache-Control"))
	}
	pl := parseMedia(t, media.body)
	t.Logf("media playlist:\n%s", media.body)

	// Init segment, a part and a segment: cacheable fMP4.
	var seg *playlist.MediaSegment
	for _, s := range pl.Segments {
		if !s.Gap {
			seg = s
		}
	}
	if seg == nil || len(pl.Parts) == 0 && len(seg.Parts) == 0 {
		t.Fatalf("no segment or part:\n%s", media.body)
	}
	for _, u := range []string{pl.Map.URI, seg.URI, seg.Parts[0].URI} {
		r := mustGet(t, e.url+"live/test/"+u)
		if r.header.Get("Content-Type") != "video/mp4" || !strings.Contains(r.header.Get("Cache-Control"), "max-age=") {
			t.Errorf("%s: Content-Type %q, Cache-Control %q", u, r.header.Get("Content-Type"), r.header.Get("Cache-Control"))
		}
		if len(r.body) < 8 {
			t.Errorf("%s: %d bytes", u, len(r.body))
		}
	}

	// A blocking reload for the next segment returns once it exists.
	next := pl.MediaSequence + len(pl.Segments)
	r := mustGet(t, e.url+"live/test/video1_stream.m3u8?_HLS_msn="+strconv.Itoa(next))
	pl2 := parseMedia(t, r.body)
	// The open segment (its parts follow the last complete one) counts:
	// without _HLS_part the request waits for its first part.
	open := pl2.MediaSequence + len(pl2.Segments)
	t.Logf("blocking reload for msn %d took %s; open segment now %d with %d parts", next, r.took, open, len(pl2.Parts))
	if open < next || open == next && len(pl2.Parts) == 0 {
		t.Errorf("blocking reload for %d returned a playlist without it:\n%s", next, r.body)
	}
	last := open - 1
	if r.took < 100*time.Millisecond {
		t.Errorf("blocking reload returned after %s: it did not block", r.took)
	}
	// A part: _HLS_part of the next part of the open segment.
	nparts := len(pl2.Parts)
	r = mustGet(t, e.url+"live/test/video1_stream.m3u8?_HLS_msn="+strconv.Itoa(open)+"&_HLS_part="+strconv.Itoa(nparts))
	t.Logf("blocking reload for part %d.%d took %s", open, nparts, r.took)
	if r.took > 2*time.Second {
		t.Errorf("blocking reload for one part took %s", r.took)
	}
	pl3 := parseMedia(t, r.body)
	if pl3.MediaSequence+len(pl3.Segments) == open && len(pl3.Parts) <= nparts {
		t.Errorf("blocking reload for part %d.%d returned a playlist without it:\n%s", open, nparts, r.body)
	}

	// PART-TARGET and PART-HOLD-BACK never change between reloads.
	target := partInfRE.FindStringSubmatch(media.body)[1]
	hold := holdBackRE.FindStringSubmatch(media.body)[1]
	msn, part := last+1, nparts+1
	deadline := time.Now().Add(4 * time.Second)
	reloads := 0
	for time.Now().Before(deadline) {
		r := mustGet(t, e.url+"live/test/video1_stream.m3u8?_HLS_msn="+strconv.Itoa(msn)+"&_HLS_part="+strconv.Itoa(part))
		reloads++
		if got := partInfRE.FindStringSubmatch(r.body)[1]; got != target {
			t.Fatalf("PART-TARGET changed from %s to %s after %d reloads", target, got, reloads)
		}
		if got := holdBackRE.FindStringSubmatch(r.body)[1]; got != hold {
			t.Fatalf("PART-HOLD-BACK changed from %s to %s", hold, got)
		}
		p := parseMedia(t, r.body)
		for _, s := range p.Segments {
			for _, pt := range s.Parts {
				if pt.Duration > p.PartInf.PartTarget {
					t.Errorf("part %s of %s exceeds PART-TARGET %s", pt.URI, pt.Duration, p.PartInf.PartTarget)
				}
			}
		}
		msn = p.MediaSequence + len(p.Segments)
		part = len(p.Parts)
	}
	t.Logf("%d blocking reloads with PART-TARGET=%s PART-HOLD-BACK=%s", reloads, target, hold)
	if reloads < 10 {
		t.Errorf("only %d part reloads in 4 s", reloads)
	}
}

func TestNotFoundAndCORS(t *testing.T) {
	e := newEnv(t, Config{})
	r := get(t, e.url+"no/such/index.m3u8")
	if r.code != http.StatusNotFound {
		t.Errorf("unknown broadcast: %d %s", r.code, r.body)
	}
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("404 without CORS header")
	}
	for _, p := range []string{"", "index.m3u8", "live//index.m3u8", "live/../x/index.m3u8", "live/test/"} {
		if r := get(t, e.url+p); r.code != http.StatusNotFound {
			t.Errorf("%q: %d", p, r.code)
		}
	}
	req, _ := http.NewRequest(http.MethodOptions, e.url+"live/test/index.m3u8", nil)
	req.Header.Set("Origin", "https://player.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "range")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") ||
		resp.Header.Get("Access-Control-Allow-Headers") != "range" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodPost, e.url+"live/test/index.m3u8", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}

	// A broadcast that exists: unknown file names are 404 too.
	e.publish(t, "fmp4_h264_aac.mp4", "live/test", mediatest.PublishOptions{})
	mustGet(t, e.url+"live/test/index.m3u8")
	for _, f := range []string{"nope.mp4", "0123_video1_part9999.mp4", "nope.m3u8", "video9_stream.m3u8"} {
		if r := get(t, e.url+"live/test/"+f); r.code != http.StatusNotFound {
			t.Errorf("%s: %d", f, r.code)
		}
	}
}

// TestWaitsForFirstSegment: a request that comes before the broadcast has
// a segment waits for it instead of failing.
func TestWaitsForFirstSegment(t *testing.T) {
	e := newEnv(t, Config{})
	ready := make(chan struct{})
	var once sync.Once
	e.publish(t, "fmp4_h264_aac.mp4", "live/test", mediatest.PublishOptions{OnLoop: func(int) { once.Do(func() { close(ready) }) }})
	<-ready
	r := get(t, e.url+"live/test/index.m3u8")
	if r.code != http.StatusOK {
		t.Fatalf("%d %s", r.code, r.body)
	}
	t.Logf("first request answered after %s", r.took)
}

// TestFreshPlaylistNoGaps: from the first request on, the media playlists
// of a new broadcast list only real segments, in full playlists and in
// delta updates (whose skipped count then names only real segments: the
// delta and the full playlist end at the same sequence number).
func TestFreshPlaylistNoGaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.publish(t, "fmp4_h264_aac.mp4", "live/test", mediatest.PublishOptions{Loops: 10})
	mustGet(t, e.url+"live/test/index.m3u8")
	deltas, compared := 0, 0
	deadline := time.Now().Add(9 * time.Second)
	for time.Now().Before(deadline) {
		full := mustGet(t, e.url+"live/test/video1_stream.m3u8")
		delta := mustGet(t, e.url+"live/test/video1_stream.m3u8?_HLS_skip=YES")
		for _, b := range []string{full.body, delta.body} {
			if strings.Contains(b, "#EXT-X-GAP") {
				t.Fatalf("playlist with a gap:\n%s", b)
			}
		}
		f, d := parseMedia(t, full.body), parseMedia(t, delta.body)
		if d.Skip != nil {
			deltas++
			if f.MediaSequence != d.MediaSequence {
				// The segments may have moved on between the two requests.
				continue
			}
			if len(d.Segments)+d.Skip.SkippedSegments != len(f.Segments) {
				t.Fatalf("delta update skips %d and lists %d segments; the full playlist has %d:\n%s\n%s",
					d.Skip.SkippedSegments, len(d.Segments), len(f.Segments), delta.body, full.body)
			}
			compared++
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d delta updates, %d compared with the full playlist", deltas, compared)
	if compared == 0 {
		t.Fatal("no delta update to compare (gohlslib skips once the playlist is long enough)")
	}
}
