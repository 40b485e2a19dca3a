package hls

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/moqgate/moqgate/ingest"
	"github.com/moqgate/moqgate/internal/mediatest"
	"github.com/moqgate/moqgate/media"
)

// generations returns how many muxer generations the broadcast's stream
// started.
func (e *env) generations(path string) int {
	e.hls.mu.Lock()
	st := e.hls.streams[path]
	e.hls.mu.Unlock()
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.genSeq
}

var mapRE = regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`)

// follow reloads a media playlist with blocking requests for d, checking
// at every reload what must never change, and returns the bodies seen;
// onBody, if set, sees each one as it comes.
func follow(t *testing.T, url string, d time.Duration, onBody func(string)) []string {
	t.Helper()
	var bodies []string
	first := mustGet(t, url)
	bodies = append(bodies, first.body)
	target := partInfRE.FindStringSubmatch(first.body)[1]
	hold := holdBackRE.FindStringSubmatch(first.body)[1]
	pl := parseMedia(t, first.body)
	lastSeq := pl.MediaSequence
	msn, part := pl.MediaSequence+len(pl.Segments), len(pl.Parts)
	for end := time.Now().Add(d); time.Now().Before(end); {
		r := mustGet(t, url+"?_HLS_msn="+strconv.Itoa(msn)+"&_HLS_part="+strconv.Itoa(part))
		bodies = append(bodies, r.body)
		if onBody != nil {
			onBody(r.body)
		}
		if got := partInfRE.FindStringSubmatch(r.body)[1]; got != target {
			t.Fatalf("PART-TARGET changed from %s to %s:\n%s", target, got, r.body)
		}
		if got := holdBackRE.FindStringSubmatch(r.body)[1]; got != hold {
			t.Fatalf("PART-HOLD-BACK changed from %s to %s", hold, got)
		}
		p := parseMedia(t, r.body)
		if p.MediaSequence < lastSeq {
			t.Fatalf("media sequence went back from %d to %d:\n%s", lastSeq, p.MediaSequence, r.body)
		}
		lastSeq = p.MediaSequence
		if open := p.MediaSequence + len(p.Segments); open < msn || open == msn && len(p.Parts) < part {
			t.Fatalf("blocking reload for %d.%d answered with a playlist without it:\n%s", msn, part, r.body)
		}
		msn, part = p.MediaSequence+len(p.Segments), len(p.Parts)
	}
	return bodies
}

// TestCodecChange: the publisher switches from H.264/AAC to H.265/Opus in
// the middle of the broadcast (a new catalog). A new muxer takes over; the
// playlist goes on with the same media sequence numbering, a
// discontinuity and the new init segment, and both sides stay fetchable.
func TestCodecChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	h264, err := mediatest.LoadClip(mediatest.TestdataPath("fmp4_h264_aac.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	h265, err := mediatest.LoadClip(mediatest.TestdataPath("fmp4_h265_opus.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := ingest.Start(ctx, ingest.LocalDialer(e.relay, "test", e.log), "live/test", e.log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	done := make(chan error, 1)
	const loops = 6
	go func() {
		err := h264.Play(ctx, b, mediatest.PublishOptions{Loops: loops})
		if err == nil {
			err = h265.Play(ctx, b, mediatest.PublishOptions{StartDTS: loops * h264.Length})
		}
		done <- err
	}()
	sawDisc := false
	check := func(b string) {
		if sawDisc || !strings.Contains(b, "#EXT-X-DISCONTINUITY\n") {
			return
		}
		sawDisc = true
		t.Logf("first playlist with a discontinuity:\n%s", b)
		maps := mapRE.FindAllStringSubmatch(b, -1)
		if len(maps) != 2 || maps[0][1] == maps[1][1] {
			t.Errorf("playlist with a discontinuity should name two init segments:\n%s", b)
		}
		if !strings.Contains(b, "#EXT-X-DISCONTINUITY-SEQUENCE:0") {
			t.Errorf("discontinuity sequence:\n%s", b)
		}
		// Both generations are served.
		for _, m := range maps {
			mustGet(t, e.url+"live/test/"+m[1])
		}
		for _, s := range parseMedia(t, b).Segments {
			if !s.Gap {
				mustGet(t, e.url+"live/test/"+s.URI)
			}
		}
	}
	bodies := follow(t, e.url+"live/test/video1_stream.m3u8", 12*time.Second, check)
	t.Logf("last playlist:\n%s", bodies[len(bodies)-1])
	if g := e.generations("live/test"); g != 2 {
		t.Errorf("%d muxer generations, want 2", g)
	}
	if !sawDisc {
		t.Errorf("no playlist with EXT-X-DISCONTINUITY")
	}
	mv := mustGet(t, e.url+"live/test/index.m3u8")
	if !strings.Contains(mv.body, "hvc1.") || !strings.Contains(mv.body, "opus") {
		t.Errorf("multivariant playlist after the change:\n%s", mv.body)
	}
	select {
	case err := <-done:
		t.Fatalf("publisher: %v", err)
	default:
	}
}

// TestPublisherReconnect: the publisher goes away and a new one continues
// the broadcast within the relay's grace period, its clock starting from 0
// again. Same codec parameters: the muxer carries on (one generation), the
// media timeline is spliced, the playlist keeps growing.
func TestPublisherReconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	clip, err := mediatest.LoadClip(mediatest.TestdataPath("fmp4_h264_aac.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			err := clip.Publish(ctx, e.relay, "live/test", mediatest.PublishOptions{Loops: 4, Logger: e.log})
			if err != nil && ctx.Err() == nil {
				e.log.Error("publish", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(700 * time.Millisecond): // the reconnect
			}
		}
	}()
	e.waitBroadcast(t, "live/test")
	bodies := follow(t, e.url+"live/test/video1_stream.m3u8", 12*time.Second, nil)
	if g := e.generations("live/test"); g != 1 {
		t.Errorf("%d muxer generations, want 1", g)
	}
	first, last := parseMedia(t, bodies[0]), parseMedia(t, bodies[len(bodies)-1])
	end := func(pl *playlist.Media) int { return pl.MediaSequence + len(pl.Segments) }
	if grew := end(last) - end(first); grew < 4 {
		t.Errorf("the playlist advanced by %d segments in 12 s over two reconnects", grew)
	}
	for _, b := range bodies {
		if strings.Contains(b, "DISCONTINUITY") {
			t.Fatalf("unexpected discontinuity:\n%s", b)
		}
	}
	t.Logf("last playlist:\n%s", bodies[len(bodies)-1])
}

// serving returns the generation number of the broadcast's serving muxer
// (0 for none).
func (e *env) serving(path string) int {
	e.hls.mu.Lock()
	st := e.hls.streams[path]
	e.hls.mu.Unlock()
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur == nil {
		return 0
	}
	return st.cur.id
}

// TestRenditionGoneAndBack: the publisher comes back without its audio
// track, then with it again. The muxer generation in between has no audio
// playlist; a player that follows the one it had must get a retryable
// answer (503 with Retry-After), never a 404, which hls.js takes as final
// (a fatal audioTrackLoadError). Once audio is back, the same playlist is
// served again. A playlist that no generation had is still a 404.
func TestRenditionGoneAndBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	full, err := mediatest.LoadClip(mediatest.TestdataPath("fmp4_h264_aac.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	videoOnly := *full
	videoOnly.Tracks, videoOnly.Frames = nil, nil
	for _, tr := range full.Tracks {
		if tr.Codec.Kind() == media.Video {
			videoOnly.Tracks = append(videoOnly.Tracks, tr)
		}
	}
	for _, f := range full.Frames {
		if f.Track == videoOnly.Tracks[0].Name {
			videoOnly.Frames = append(videoOnly.Frames, f)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := ingest.Start(ctx, ingest.LocalDialer(e.relay, "test", e.log), "live/test", e.log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// One loop of the clip at a time, the test choosing which: a catalog
	// change takes effect at a loop boundary, as with a reconnect.
	var clip atomic.Pointer[mediatest.Clip]
	clip.Store(full)
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			err := clip.Load().Play(ctx, b, mediatest.PublishOptions{Loops: 1, StartDTS: time.Duration(i) * full.Length})
			if err != nil {
				done <- err
				return
			}
		}
	}()
	audio := e.url + "live/test/audio2_stream.m3u8"
	video := e.url + "live/test/video1_stream.m3u8"
	first := parseMedia(t, mustGet(t, audio).body)
	if e.serving("live/test") != 1 {
		t.Fatalf("serving generation %d, want 1", e.serving("live/test"))
	}

	clip.Store(&videoOnly)
	waitFor(t, "a muxer generation without audio serving", 15*time.Second, func() bool { return e.serving("live/test") == 2 })
	if mv := mustGet(t, e.url+"live/test/index.m3u8"); strings.Contains(mv.body, "audio2") {
		t.Fatalf("multivariant playlist of a generation without audio:\n%s", mv.body)
	}
	mustGet(t, video)
	msn := first.MediaSequence + len(first.Segments)
	for _, u := range []string{audio, audio + "?_HLS_msn=" + strconv.Itoa(msn) + "&_HLS_part=0"} {
		r := get(t, u)
		if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("%s without audio in the muxer: %d %q (Retry-After %q), want 503 with Retry-After",
				u, r.code, r.body, r.header.Get("Retry-After"))
		}
	}
	if r := get(t, e.url+"live/test/audio9_stream.m3u8"); r.code != http.StatusNotFound {
		t.Errorf("a playlist no generation had: %d, want 404", r.code)
	}

	clip.Store(full)
	waitFor(t, "a muxer generation with audio again", 15*time.Second, func() bool { return e.serving("live/test") == 3 })
	r := mustGet(t, audio)
	t.Logf("audio playlist with audio back:\n%s", r.body)
	select {
	case err := <-done:
		t.Fatalf("publisher: %v", err)
	default:
	}
}
