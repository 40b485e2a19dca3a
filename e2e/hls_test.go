package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

// pushRTMP runs ffmpeg publishing a test pattern and a tone over RTMP as
// live/test: H.264 (GOP 1 s, bframes B-frames) and AAC.
func pushRTMP(t *testing.T, ctx context.Context, g *gate, size, bframes string) *exec.Cmd {
	t.Helper()
	return ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "120", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30", "-bf", bframes,
		"-c:a", "aac", "-f", "flv", g.RTMP+"/live/test")
}

type httpResult struct {
	code   int
	header http.Header
	body   string
	took   time.Duration
}

func httpDo(t *testing.T, method, u string, hdr map[string]string) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{code: resp.StatusCode, header: resp.Header, body: string(b), took: time.Since(start)}
}

func httpGet(t *testing.T, u string) httpResult {
	t.Helper()
	r := httpDo(t, http.MethodGet, u, nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, r.code, r.body)
	}
	return r
}

// hlsProbe is what ffprobe reads from a live HLS URL in a few seconds.
type hlsProbe struct {
	Streams []struct {
		Index     int    `json:"index"`
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		PTSTime     string `json:"pts_time"`
	} `json:"packets"`
}

// probeHLS has ffprobe read the first 4 s of an HLS playlist: its streams
// and their packets.
func probeHLS(t *testing.T, ctx context.Context, src string) hlsProbe {
	t.Helper()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-read_intervals", "%+4",
		"-show_entries", "stream=index,codec_name,codec_type,width,height:packet=stream_index,pts_time",
		"-of", "json", src).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", src, err)
	}
	var p hlsProbe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHLS: ffmpeg pushes RTMP into moqgate; ffprobe reads the LL-HLS
// playlist and finds both streams; the playlist has the low-latency tags,
// blocking reloads block until the segment exists, headers are right.
func TestHLS(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFprobe)
	for _, tc := range []struct{ name, bframes string }{
		{"h264-aac", "0"},
		{"bframes", "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			g := startGate(t, "")
			pushRTMP(t, ctx, g, "640x360", tc.bframes)
			g.waitBroadcast(t, ctx, "live/test")
			src := g.Web + "/hls/live/test/index.m3u8"

			checkFreshPlaylists(t, g)
			start := time.Now()
			p := probeHLS(t, ctx, src)
			codecs := map[string]int{}
			for _, s := range p.Streams {
				codecs[s.CodecName] = s.Index
				if s.CodecType == "video" && (s.Width != 640 || s.Height != 360) {
					t.Errorf("video %dx%d", s.Width, s.Height)
				}
			}
			if _, ok := codecs["h264"]; !ok || len(p.Streams) != 2 {
				t.Fatalf("streams %+v", p.Streams)
			}
			if _, ok := codecs["aac"]; !ok {
				t.Fatalf("streams %+v", p.Streams)
			}
			for name, idx := range codecs {
				lo, hi := math.Inf(1), math.Inf(-1)
				n := 0
				for _, pk := range p.Packets {
					if v, err := strconv.ParseFloat(pk.PTSTime, 64); err == nil && pk.StreamIndex == idx {
						lo, hi, n = math.Min(lo, v), math.Max(hi, v), n+1
					}
				}
				if d := hi - lo; n == 0 || d < 3 || d > 8 {
					t.Errorf("%s: %d packets over %.2f s, want about 4 s", name, n, d)
				} else {
					t.Logf("ffprobe: %s, %d packets over %.2f s", name, n, d)
				}
			}
			t.Logf("ffprobe read the playlist in %s", time.Since(start).Round(time.Millisecond))
			if tc.bframes == "0" {
				checkPlaylist(t, g)
			}
		})
	}
}

// checkFreshPlaylists: the first media playlists of a fresh broadcast list
// its segments and nothing else (no EXT-X-GAP padding in front of them).
func checkFreshPlaylists(t *testing.T, g *gate) {
	t.Helper()
	base := g.Web + "/hls/live/test/"
	mv := httpGet(t, base+"index.m3u8") // waits for the first segment
	for _, id := range []string{"video1", "audio2"} {
		if !strings.Contains(mv.body, id+"_stream.m3u8") {
			t.Fatalf("multivariant playlist lacks %s:\n%s", id, mv.body)
		}
		media := httpGet(t, base+id+"_stream.m3u8")
		if strings.Contains(media.body, "#EXT-X-GAP") || !strings.Contains(media.body, "#EXTINF:") {
			t.Errorf("first %s playlist of a fresh broadcast, want segments and no gaps:\n%s", id, media.body)
		}
	}
}

var hlsPartTargetRE = regexp.MustCompile(`PART-TARGET=([0-9.]+)`)

// mediaPlaylist is the little a test needs of a media playlist.
type mediaPlaylist struct {
	seq, segments, trailingParts int
	partTarget                   string
	uris                         []string // init, segments and parts named
}

func parseMediaPlaylist(t *testing.T, body string) mediaPlaylist {
	t.Helper()
	var m mediaPlaylist
	uriRE := regexp.MustCompile(`URI="([^"]+)"`)
	afterSeg := false
	for _, line := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			m.seq, _ = strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(line, "#EXTINF:"):
			m.segments++
			m.trailingParts = 0
			afterSeg = true
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			if afterSeg {
				m.trailingParts = 0
				afterSeg = false
			}
			m.trailingParts++
			m.uris = append(m.uris, uriRE.FindStringSubmatch(line)[1])
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			m.uris = append(m.uris, uriRE.FindStringSubmatch(line)[1])
		case strings.HasPrefix(line, "#EXT-X-PRELOAD-HINT"):
		case line != "" && !strings.HasPrefix(line, "#") && line != "gap.mp4":
			m.uris = append(m.uris, line)
		}
	}
	// Parts listed after the last EXTINF belong to the open segment.
	lastInf := strings.LastIndex(body, "#EXTINF:")
	m.trailingParts = strings.Count(body[lastInf:], "#EXT-X-PART:")
	if s := hlsPartTargetRE.FindStringSubmatch(body); s != nil {
		m.partTarget = s[1]
	}
	return m
}

func checkPlaylist(t *testing.T, g *gate) {
	base := g.Web + "/hls/live/test/"
	mv := httpGet(t, base+"index.m3u8")
	if !strings.Contains(mv.body, "avc1.") || !strings.Contains(mv.body, "mp4a.40.2") {
		t.Errorf("multivariant playlist:\n%s", mv.body)
	}
	media := httpGet(t, base+"video1_stream.m3u8")
	for _, want := range []string{"#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
		"PART-HOLD-BACK=", "#EXT-X-PART-INF:PART-TARGET="} {
		if !strings.Contains(media.body, want) {
			t.Errorf("media playlist lacks %s:\n%s", want, media.body)
		}
	}
	for _, r := range []httpResult{mv, media} {
		if r.header.Get("Cache-Control") != "no-cache" || r.header.Get("Access-Control-Allow-Origin") != "*" ||
			r.header.Get("Content-Type") != "application/vnd.apple.mpegurl" {
			t.Errorf("playlist headers %v", r.header)
		}
	}
	pl := parseMediaPlaylist(t, media.body)
	for _, u := range pl.uris[:min(3, len(pl.uris))] {
		r := httpGet(t, base+u)
		if !strings.Contains(r.header.Get("Cache-Control"), "max-age=") || r.header.Get("Access-Control-Allow-Origin") != "*" ||
			r.header.Get("Content-Type") != "video/mp4" {
			t.Errorf("%s headers %v", u, r.header)
		}
	}

	// Blocking reload for the next media sequence number: it returns when
	// segment N (open now) is complete and N+1 has its first part.
	open := pl.seq + pl.segments
	r := httpGet(t, base+"video1_stream.m3u8?_HLS_msn="+strconv.Itoa(open+1))
	got := parseMediaPlaylist(t, r.body)
	t.Logf("blocking reload for msn %d (open segment %d had %d parts) took %s", open+1, open, pl.trailingParts, r.took)
	if got.seq+got.segments < open+1 || got.seq+got.segments == open+1 && got.trailingParts == 0 {
		t.Errorf("blocking reload for %d returned without it:\n%s", open+1, r.body)
	}
	if r.took < 100*time.Millisecond || r.took > 3*time.Second {
		t.Errorf("blocking reload took %s", r.took)
	}
	if got.partTarget != pl.partTarget {
		t.Errorf("PART-TARGET changed from %s to %s", pl.partTarget, got.partTarget)
	}
	// And for the next part.
	next := got.seq + got.segments
	r = httpGet(t, base+"video1_stream.m3u8?_HLS_msn="+strconv.Itoa(next)+"&_HLS_part="+strconv.Itoa(got.trailingParts))
	t.Logf("blocking reload for part %d.%d took %s", next, got.trailingParts, r.took)
	if r.took > time.Second {
		t.Errorf("blocking reload for one part took %s", r.took)
	}

	if r := httpDo(t, http.MethodGet, g.Web+"/hls/no/such/index.m3u8", nil); r.code != http.StatusNotFound {
		t.Errorf("unknown broadcast: %d", r.code)
	}
	if r := httpDo(t, http.MethodGet, base+"nope.mp4", nil); r.code != http.StatusNotFound {
		t.Errorf("unknown file: %d", r.code)
	}
	pre := httpDo(t, http.MethodOptions, base+"index.m3u8", map[string]string{
		"Origin": "https://player.example", "Access-Control-Request-Method": "GET"})
	if pre.code != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("CORS preflight: %d %v", pre.code, pre.header)
	}
}

// hlsProgress is what web/pages/hls.html reports while it plays.
type hlsProgress struct {
	CurrentTime    float64  `json:"currentTime"`
	Advanced       float64  `json:"advanced"`
	Width          int      `json:"width"`
	Latency        *float64 `json:"latency"`
	TargetLatency  *float64 `json:"targetLatency"`
	PlaybackRate   float64  `json:"playbackRate"`
	PlayingDateLag *float64 `json:"playingDateLag"`
	Discontinuity  int      `json:"discontinuities"`
	Fatal          []string `json:"fatal"`
}

type hlsStats struct {
	N   int     `json:"n"`
	Avg float64 `json:"avg"`
}

type hlsResult struct {
	OK             bool     `json:"ok"`
	Reason         string   `json:"reason"`
	Advanced       float64  `json:"advanced"`
	Widths         []int    `json:"widths"`
	Discontinuity  int      `json:"discontinuities"`
	Fatal          []string `json:"fatal"`
	Errors         []string `json:"errors"`
	Latency        hlsStats `json:"latency"`
	PlayingDateLag hlsStats `json:"playingDateLag"`
}

// TestHLSJSPlays: hls.js in headless Chromium (lowLatencyMode) plays the
// LL-HLS of an RTMP broadcast from another origin; the publisher then
// reconnects twice within the grace period, first with the same encoder
// settings (the timeline is spliced), then with another resolution (a new
// init segment: a discontinuity). Playback goes on through both, without a
// fatal hls.js error. hls.js's live latency is logged (HLSJS_DEBUG=1 adds
// hls.js's own debug log).
func TestHLSJSPlays(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerChromium)
	browsertest.RequirePeer(t, browsertest.PeerWebDist)
	web, err := browsertest.WebDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(web, "dist", "hls.html")); err != nil {
		t.Fatalf("web/dist/hls.html missing (npm run --prefix web build): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	// The reconnects must come within the grace period, or the relay ends
	// the broadcast and the HLS muxer with it (its playlists then answer
	// 404, which is right, and fatal to hls.js). Under CPU load (the full
	// suite on two cores) a new ffmpeg takes seconds before it publishes,
	// well past the default 5 s; this test is about the muxer going on
	// through a reconnect, not about how fast ffmpeg starts.
	g := startGate(t, "rtmp:\n  grace_period: 30s\n")
	ff := pushRTMP(t, ctx, g, "640x360", "0")
	g.waitBroadcast(t, ctx, "live/test")
	// ended explains a failure that comes from the broadcast having ended.
	ended := func() string {
		if g.logs.contains(`msg="broadcast ended" path=live/test`) {
			return " (the relay ended the broadcast: the publisher did not come back within the grace period)"
		}
		return ""
	}
	// The viewer joins a running muxer, as all but the first viewer do
	// (the first request starts it; a player joining a playlist of one
	// segment starts further from the live edge).
	httpGet(t, g.Web+"/hls/live/test/index.m3u8")
	time.Sleep(3 * time.Second)

	// The page reports its progress; this goroutine drives the phases.
	var mu sync.Mutex
	var last hlsProgress
	var steady []float64 // hls.latency before the first reconnect
	var steadyLag []float64
	done := false
	progress := make(chan hlsProgress, 16)
	dist := http.FileServer(http.Dir(filepath.Join(web, "dist")))
	base := browsertest.ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/report" {
			w.Header().Set("Cache-Control", "no-store")
			dist.ServeHTTP(w, r)
			return
		}
		var p hlsProgress
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		last = p
		d := done
		mu.Unlock()
		select {
		case progress <- p:
		default:
		}
		fmt.Fprintf(w, `{"done":%v}`, d)
	}))
	waitAdvanced := func(what string, adv float64, also func(hlsProgress) bool) hlsProgress {
		t.Helper()
		for {
			select {
			case p := <-progress:
				if len(p.Fatal) > 0 {
					t.Fatalf("%s: hls.js fatal error %v%s", what, p.Fatal, ended())
				}
				if p.Advanced >= adv && (also == nil || also(p)) {
					return p
				}
			case <-ctx.Done():
				mu.Lock()
				p := last
				mu.Unlock()
				t.Fatalf("%s: playback did not advance to %.1f s: last progress %+v%s", what, adv, p, ended())
			}
		}
	}
	reconnect := func(size string) {
		t.Helper()
		ff.Process.Kill()
		ff.Wait()
		time.Sleep(time.Second) // the publisher is away, within the grace period
		ff = pushRTMP(t, ctx, g, size, "0")
	}

	type pageOut struct {
		raw json.RawMessage
		err error
	}
	pageDone := make(chan pageOut, 1)
	page := base + "/hls.html?src=" + url.QueryEscape(g.Web+"/hls/live/test/index.m3u8") +
		"&report=" + url.QueryEscape(base+"/report") + "&timeout=80000"
	if os.Getenv("HLSJS_DEBUG") != "" {
		page += "&debug"
	}
	go func() {
		raw, err := browsertest.RunPage(t, ctx, page, browsertest.PageOptions{Timeout: 85 * time.Second})
		pageDone <- pageOut{raw, err}
	}()

	p := waitAdvanced("start", 0.1, nil)
	start := time.Now()
	// Latency is sampled once hls.js had time to reach its target latency
	// (it plays up to 1.5x faster to catch up).
	for p.Advanced < 7 {
		p = waitAdvanced("first 7 s", 0, nil)
		if testing.Verbose() && p.Latency != nil {
			t.Logf("progress: played %.2f s, latency %.3f s, rate %.2f, width %d", p.Advanced, *p.Latency, p.PlaybackRate, p.Width)
		}
		if p.Advanced < 4 {
			continue
		}
		if p.TargetLatency != nil && len(steady) == 0 {
			t.Logf("hls.js target latency %.3f s, playback rate %.2f", *p.TargetLatency, p.PlaybackRate)
		}
		if p.Latency != nil {
			steady = append(steady, *p.Latency)
		}
		if p.PlayingDateLag != nil {
			steadyLag = append(steadyLag, *p.PlayingDateLag)
		}
	}
	t.Logf("hls.js played 7 s (currentTime %.2f) in %s", p.CurrentTime, time.Since(start).Round(time.Millisecond))

	reconnect("640x360")
	t.Logf("publisher reconnected (same settings) at %.2f s played", p.Advanced)
	p = waitAdvanced("after the reconnect", p.Advanced+4, nil)
	t.Logf("played on to %.2f s", p.Advanced)

	reconnect("480x270")
	t.Logf("publisher reconnected with 480x270 at %.2f s played", p.Advanced)
	p = waitAdvanced("after the resolution change", p.Advanced+4, func(p hlsProgress) bool { return p.Width == 480 })
	pl := httpGet(t, g.Web+"/hls/live/test/video1_stream.m3u8")
	t.Logf("played on to %.2f s at width %d; playlist now:\n%s", p.Advanced, p.Width, pl.body)

	mu.Lock()
	done = true
	mu.Unlock()
	var out pageOut
	select {
	case out = <-pageDone:
	case <-ctx.Done():
		t.Fatal("page did not finish")
	}
	if out.err != nil {
		t.Fatal(out.err)
	}
	res := browsertest.Decode[hlsResult](t, out.raw)
	if !res.OK || len(res.Fatal) > 0 {
		t.Fatalf("hls.js: %s (%s)%s", res.Reason, out.raw, ended())
	}
	if res.Discontinuity < 1 {
		t.Errorf("hls.js saw %d discontinuities, want at least 1 (the resolution change)", res.Discontinuity)
	}
	t.Logf("hls.js: advanced %.2f s, widths %v, %d discontinuities, non-fatal errors %v", res.Advanced, res.Widths, res.Discontinuity, res.Errors)
	t.Logf("hls.js live latency (hls.latency), steady state before the reconnects: %s", describe(steady))
	t.Logf("hls.js playing-date lag (wall clock - EXT-X-PROGRAM-DATE-TIME of the frame on screen, i.e. gate arrival to screen), steady state: %s", describe(steadyLag))
	t.Logf("hls.js live latency over the whole run: avg %.3f s over %d samples", res.Latency.Avg, res.Latency.N)
}

func describe(v []float64) string {
	if len(v) == 0 {
		return "no samples"
	}
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, x := range v {
		lo, hi, sum = math.Min(lo, x), math.Max(hi, x), sum+x
	}
	return fmt.Sprintf("avg %.3f s, min %.3f s, max %.3f s over %d samples", sum/float64(len(v)), lo, hi, len(v))
}
