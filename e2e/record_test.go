package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

// recSegment is a segment of the index on disk.
type recSegment struct {
	ID       uint64    `json:"id"`
	File     string    `json:"file"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Bytes    int64     `json:"bytes"`
	InitSize int64     `json:"init_size"`
	Open     bool      `json:"open"`
	Repaired bool      `json:"repaired"`
	Keys     []struct {
		Off int64 `json:"off"`
	} `json:"keys"`
}

// readIndex reads dir's index of broadcast live/test: the last record of
// each segment.
func readIndex(t *testing.T, dir string) []recSegment {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "live", "test", "index.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return parseRecIndex(t, data)
}

// parseRecIndex is readIndex on the file's bytes.
func parseRecIndex(t *testing.T, data []byte) []recSegment {
	t.Helper()
	var out []recSegment
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var s recSegment
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("index line %q: %v", line, err)
		}
		if n := len(out); n > 0 && out[n-1].ID == s.ID {
			out[n-1] = s
			continue
		}
		out = append(out, s)
	}
	return out
}

// recListing is GET /api/recordings.
type recListing struct {
	Failing    bool   `json:"failing"`
	Error      string `json:"error"`
	Recordings []struct {
		Path      string `json:"path"`
		Start     string `json:"start"`
		End       string `json:"end"`
		Bytes     int64  `json:"bytes"`
		Segments  int    `json:"segments"`
		Recording bool   `json:"recording"`
		Ranges    []struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"ranges"`
	} `json:"recordings"`
}

func (g *gate) recordings(t *testing.T) recListing {
	t.Helper()
	var l recListing
	if err := json.Unmarshal([]byte(httpGet(t, g.Web+"/api/recordings").body), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitRecording polls the API until cond holds for live/test.
func (g *gate) waitRecording(t *testing.T, d time.Duration, what string, cond func(l recListing) bool) recListing {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		l := g.recordings(t)
		if cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording: %s not within %s: %+v", what, d, l)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// videoDTS returns the video packets' decode times, in seconds, and the
// codecs of the file's streams, as ffprobe reads them.
func videoDTS(t *testing.T, src string) (dts []float64, codecs []string) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries",
		"stream=codec_name:packet=stream_index,dts_time,codec_type", "-of", "json", src).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", src, err)
	}
	var v struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
		} `json:"streams"`
		Packets []struct {
			Stream int    `json:"stream_index"`
			DTS    string `json:"dts_time"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	for _, s := range v.Streams {
		codecs = append(codecs, s.CodecName)
	}
	for _, p := range v.Packets {
		if p.Stream != 0 {
			continue
		}
		f, err := strconv.ParseFloat(p.DTS, 64)
		if err != nil {
			t.Fatalf("%s: dts %q", src, p.DTS)
		}
		dts = append(dts, f)
	}
	return dts, codecs
}

// checkSteady: decode times increase by one frame interval (30 fps), no
// gap, no step back.
func checkSteady(t *testing.T, what string, dts []float64) {
	t.Helper()
	if len(dts) < 2 {
		t.Fatalf("%s: %d video packets", what, len(dts))
	}
	for i := 1; i < len(dts); i++ {
		if d := dts[i] - dts[i-1]; d <= 0 || d > 1.5/30 {
			t.Fatalf("%s: video DTS %.3f after %.3f (packet %d)", what, dts[i], dts[i-1], i)
		}
	}
}

// TestRecordRTMP: an RTMP broadcast is recorded in 2 s segments; ffprobe
// reads every segment (H.264 + AAC, steady timestamps, each continuing the
// one before), a range download decodes and covers the range asked for, and
// ffmpeg reads the VOD playlist from start to end.
func TestRecordRTMP(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	browsertest.RequirePeer(t, browsertest.PeerFFprobe)
	dir := t.TempDir()
	g := startGate(t, fmt.Sprintf("record:\n  dir: %s\n  segment_duration: 2s\n", dir))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l := recordAll(t, ctx, g, "20")
	rec := l.Recordings[0]
	if l.Failing || rec.Path != "live/test" || len(rec.Ranges) != 1 {
		t.Fatalf("listing %+v", l)
	}
	span := rec.Ranges[0].End.Sub(rec.Ranges[0].Start)
	t.Logf("recorded %s in %d segments, %d bytes", span, rec.Segments, rec.Bytes)
	if span < 17*time.Second || span > 21*time.Second {
		t.Errorf("recorded %s of a 20 s broadcast", span)
	}

	segs := readIndex(t, dir)
	if len(segs) != rec.Segments || len(segs) < 8 {
		t.Fatalf("%d segments in the index, API says %d", len(segs), rec.Segments)
	}
	var prevEnd float64
	for i, s := range segs {
		file := filepath.Join(dir, s.File)
		dts, codecs := videoDTS(t, file)
		if !slices.Equal(codecs, []string{"h264", "aac"}) {
			t.Fatalf("segment %d: codecs %v", i, codecs)
		}
		checkSteady(t, s.File, dts)
		if d := s.End.Sub(s.Start).Seconds(); math.Abs(d-2) > 0.05 && i < len(segs)-1 {
			t.Errorf("segment %d lasts %.3f s, want 2 s (GOP 1 s)", i, d)
		}
		if i > 0 && math.Abs(dts[0]-prevEnd) > 0.001 {
			t.Errorf("segment %d starts at %.3f s, the one before ends at %.3f s", i, dts[0], prevEnd)
		}
		prevEnd = dts[len(dts)-1] + 1.0/30
		decodes(t, file)
	}

	// A range from 5.5 s in, 6 s long: it starts at the key frame before
	// (GOP 1 s: 5 s) and ends at the one after (12 s).
	from := segs[0].Start.Add(5500 * time.Millisecond)
	u := fmt.Sprintf("%s/recordings/live/test?start=%s&duration=6s", g.Web, url.QueryEscape(from.Format(time.RFC3339Nano)))
	r := httpGet(t, u)
	if r.header.Get("Content-Type") != "video/mp4" || r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
		t.Fatalf("range headers %v, %d bytes", r.header, len(r.body))
	}
	file := filepath.Join(t.TempDir(), "range.mp4")
	os.WriteFile(file, []byte(r.body), 0o644)
	decodes(t, file)
	dts, codecs := videoDTS(t, file)
	if !slices.Equal(codecs, []string{"h264", "aac"}) {
		t.Fatalf("range: codecs %v", codecs)
	}
	checkSteady(t, "range", dts)
	first, _ := videoDTS(t, filepath.Join(dir, segs[0].File))
	gotFrom, gotTo := dts[0]-first[0], dts[len(dts)-1]+1.0/30-first[0]
	t.Logf("asked for 5.5-11.5 s, got %.3f-%.3f s", gotFrom, gotTo)
	if math.Abs(gotFrom-5) > 0.001 || math.Abs(gotTo-12) > 0.001 {
		t.Errorf("range 5.5-11.5 s gave %.3f-%.3f s, want 5-12 s (the key frames around it)", gotFrom, gotTo)
	}
	hdrStart, err1 := time.Parse(time.RFC3339Nano, r.header.Get("X-Recording-Start"))
	hdrEnd, err2 := time.Parse(time.RFC3339Nano, r.header.Get("X-Recording-End"))
	if err1 != nil || err2 != nil || math.Abs(hdrStart.Sub(segs[0].Start).Seconds()-gotFrom) > 1.0/30 ||
		math.Abs(hdrEnd.Sub(hdrStart).Seconds()-(gotTo-gotFrom)) > 1.0/30 {
		t.Errorf("X-Recording-Start/End %q %q, the file holds %.3f-%.3f s", r.header.Get("X-Recording-Start"),
			r.header.Get("X-Recording-End"), gotFrom, gotTo)
	}

	// The VOD playlist of everything: ffmpeg reads all of it, each frame
	// once, in order.
	pl := httpGet(t, g.Web+"/recordings/live/test/index.m3u8")
	if !strings.Contains(pl.body, "#EXT-X-PLAYLIST-TYPE:VOD") || !strings.HasSuffix(pl.body, "#EXT-X-ENDLIST\n") ||
		strings.Count(pl.body, "#EXTINF:") != len(segs) {
		t.Fatalf("playlist:\n%s", pl.body)
	}
	hls, codecs := videoDTS(t, g.Web+"/recordings/live/test/index.m3u8")
	if !slices.Equal(codecs, []string{"h264", "aac"}) {
		t.Fatalf("playlist: codecs %v", codecs)
	}
	checkSteady(t, "playlist", hls)
	if got, want := hls[len(hls)-1]+1.0/30-hls[0], prevEnd-first[0]; math.Abs(got-want) > 0.001 {
		t.Errorf("playlist plays %.3f s, the segments hold %.3f s", got, want)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", g.Web+"/recordings/live/test/index.m3u8", "-f", "null", "-").CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("ffmpeg decoding the playlist: %v\n%s", err, out)
	}
	// A part of it by time.
	mid := segs[3].Start.Add(100 * time.Millisecond)
	part := httpGet(t, fmt.Sprintf("%s/recordings/live/test/index.m3u8?start=%s&end=%s", g.Web,
		url.QueryEscape(mid.Format(time.RFC3339Nano)), url.QueryEscape(mid.Add(3*time.Second).Format(time.RFC3339Nano))))
	if n := strings.Count(part.body, "#EXTINF:"); n != 2 {
		t.Errorf("3 s from inside segment 3: %d segments\n%s", n, part.body)
	}
	if r := httpDo(t, "GET", g.Web+"/recordings/live/test?start=2000-01-01T00:00:00Z&duration=10s", nil); r.code != 404 {
		t.Errorf("range with nothing recorded: %d", r.code)
	}
	if r := httpDo(t, "GET", g.Web+"/recordings/live/test?start=yesterday", nil); r.code != 400 {
		t.Errorf("bad start: %d", r.code)
	}
}

// publishRec starts ffmpeg publishing live/test (320x240 30 fps H.264,
// GOP 1 s, AAC) for secs seconds.
func publishRec(t *testing.T, ctx context.Context, g *gate, secs string) *exec.Cmd {
	t.Helper()
	return ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", secs,
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30", "-bf", "0",
		"-c:a", "aac", "-f", "flv", g.RTMP+"/live/test")
}

// recordAll publishes live/test for secs seconds and waits until the
// broadcast ended (after the grace period) and its last segment closed.
func recordAll(t *testing.T, ctx context.Context, g *gate, secs string) recListing {
	t.Helper()
	if err := publishRec(t, ctx, g, secs).Wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	return g.waitRecording(t, 20*time.Second, "closed", func(l recListing) bool {
		return len(l.Recordings) == 1 && !l.Recordings[0].Recording
	})
}

// TestRecordKill9: moqgate is killed (SIGKILL) while recording; every
// segment on disk is playable, and the next start closes the open one in
// the index, up to the last fragment written before the kill.
func TestRecordKill9(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	browsertest.RequirePeer(t, browsertest.PeerFFprobe)
	dir := t.TempDir()
	cfg := fmt.Sprintf("record:\n  dir: %s\n  segment_duration: 4s\n", dir)
	g := startGate(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	publishRec(t, ctx, g, "60")
	// Two segments closed and the third half written.
	var before recListing
	g.waitRecording(t, 30*time.Second, "two segments and a half", func(l recListing) bool {
		if len(l.Recordings) != 1 || !l.Recordings[0].Recording || l.Recordings[0].Segments < 3 {
			return false
		}
		// The open (last) segment holds its second GOP's key frame and
		// more: its start is in the index (segments are not exactly 4 s,
		// a start can be clamped to the previous end).
		end, _ := time.Parse(time.RFC3339Nano, l.Recordings[0].End)
		data, _ := os.ReadFile(filepath.Join(dir, "live", "test", "index.jsonl"))
		if !bytes.HasSuffix(data, []byte("\n")) {
			return false // a line being appended
		}
		segs := parseRecIndex(t, data)
		before = l
		return len(segs) == l.Recordings[0].Segments && segs[len(segs)-1].Open &&
			end.Sub(segs[len(segs)-1].Start) > time.Second+200*time.Millisecond
	})
	// One fragment more may be written between the listing and the kill.
	g.cmd.Process.Kill()
	g.cmd.Wait()
	segs := readIndex(t, dir)
	n := len(segs)
	if n < 3 || !segs[n-1].Open {
		t.Fatalf("index after the kill: %+v", segs)
	}
	for _, s := range segs {
		decodes(t, filepath.Join(dir, s.File))
	}
	open := segs[n-1]
	st, err := os.Stat(filepath.Join(dir, open.File))
	if err != nil {
		t.Fatal(err)
	}
	sizeAtKill := st.Size()

	g2 := startGate(t, cfg) // no publisher: the repair only
	after := g2.recordings(t)
	if len(after.Recordings) != 1 || after.Recordings[0].Segments != n || after.Recordings[0].Recording {
		t.Fatalf("after restart: %+v", after)
	}
	if !g2.logs.contains("closed a segment left open") {
		t.Error("no log line for the repaired segment")
	}
	segs = readIndex(t, dir)
	rep := segs[n-1]
	// A kill can cut a write short: the repair cuts off what is left of
	// that fragment (one object, well under 64 KiB here).
	if rep.Open || !rep.Repaired || rep.Bytes > sizeAtKill || rep.Bytes < sizeAtKill-64<<10 || rep.InitSize == 0 {
		t.Fatalf("repaired segment %+v (file was %d bytes)", rep, sizeAtKill)
	}
	// More than a second of 1 s GOPs: the index learnt the key frames.
	if len(rep.Keys) < 2 || rep.Keys[len(rep.Keys)-1].Off >= rep.Bytes {
		t.Errorf("repaired segment's key frames %+v", rep.Keys)
	}
	wantEnd, _ := time.Parse(time.RFC3339Nano, before.Recordings[0].End)
	gotEnd, _ := time.Parse(time.RFC3339Nano, after.Recordings[0].End)
	t.Logf("recorded up to %s before the kill, %s after the repair", wantEnd.Format(time.StampMilli), gotEnd.Format(time.StampMilli))
	if gotEnd.Before(wantEnd.Add(-50 * time.Millisecond)) {
		t.Errorf("after repair the recording ends at %s, before the kill it was at %s", gotEnd, wantEnd)
	}
	file := filepath.Join(dir, rep.File)
	decodes(t, file)
	dts, _ := videoDTS(t, file)
	checkSteady(t, "repaired", dts)
	if d := dts[len(dts)-1] + 1.0/30 - dts[0]; math.Abs(d-rep.End.Sub(rep.Start).Seconds()) > 0.001 {
		t.Errorf("repaired segment holds %.3f s, index says %s", d, rep.End.Sub(rep.Start))
	}
	// The whole recording downloads as one file.
	r := httpGet(t, g2.Web+"/recordings/live/test")
	all := filepath.Join(t.TempDir(), "all.mp4")
	os.WriteFile(all, []byte(r.body), 0o644)
	decodes(t, all)
	dts, _ = videoDTS(t, all)
	checkSteady(t, "all", dts)
}

// TestRecordCannotWrite: a recording directory that cannot be created, or
// a disk that fills up (a file size limit), stops recording with one log
// line, the API flag and the metric, while live HLS keeps serving.
func TestRecordCannotWrite(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	browsertest.RequirePeer(t, browsertest.PeerFFprobe)
	browsertest.RequirePeer(t, "prlimit")
	for _, tc := range []struct {
		name string
		wrap func(dir string) []string
		dir  func(t *testing.T) string
	}{
		{"unwritable", nil, func(t *testing.T) string {
			// Below a regular file: not even root can create it.
			f := filepath.Join(t.TempDir(), "file")
			os.WriteFile(f, nil, 0o644)
			return filepath.Join(f, "rec")
		}},
		{"disk-full", func(string) []string { return []string{"prlimit", "--fsize=100000", "--"} },
			func(t *testing.T) string { return t.TempDir() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			var wrap []string
			if tc.wrap != nil {
				wrap = tc.wrap(dir)
			}
			g := startGateWrapped(t, wrap, fmt.Sprintf("record:\n  dir: %s\n  segment_duration: 2s\n", dir))
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			publishRec(t, ctx, g, "60")
			g.waitBroadcast(t, ctx, "live/test")
			l := g.waitRecording(t, 30*time.Second, "failing", func(l recListing) bool { return l.Failing })
			if l.Error == "" {
				t.Errorf("no error in %+v", l)
			}
			// Live delivery goes on: HLS plays, for longer than the
			// recorder's retry interval.
			time.Sleep(11 * time.Second)
			p := probeHLS(t, ctx, g.Web+"/hls/live/test/index.m3u8")
			if len(p.Streams) != 2 || len(p.Packets) < 60 {
				t.Errorf("live HLS while recording fails: %d streams, %d packets", len(p.Streams), len(p.Packets))
			}
			m := httpGet(t, g.Web+"/metrics").body
			if !strings.Contains(m, "moqgate_record_failing 1") || strings.Contains(m, "moqgate_record_errors_total 0\n") {
				t.Errorf("metrics:\n%s", grepLines(m, "moqgate_record_"))
			}
			if n := len(g.logs.submatches(regexp.MustCompile(`cannot write the recording`))); n != 1 {
				t.Errorf("%d log lines about the failure, want 1", n)
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// webDist returns web/dist (built, with Chromium there to run its pages).
func webDist(t *testing.T) string {
	t.Helper()
	browsertest.RequirePeer(t, browsertest.PeerChromium)
	browsertest.RequirePeer(t, browsertest.PeerWebDist)
	web, err := browsertest.WebDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(web, "dist")
}

// TestRecordHLSJS: hls.js in headless Chromium plays the VOD playlist of a
// recording, from another origin, from start to end.
func TestRecordHLSJS(t *testing.T) {
	dist := webDist(t)
	dir := t.TempDir()
	g := startGate(t, fmt.Sprintf("rtmp:\n  grace_period: 1s\nrecord:\n  dir: %s\n  segment_duration: 2s\n", dir))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	l := recordAll(t, ctx, g, "12")
	rg := l.Recordings[0].Ranges[0]
	total := rg.End.Sub(rg.Start).Seconds()
	base := browsertest.ServeHandler(t, http.FileServer(http.Dir(dist)))
	page := base + "/hls.html?src=" + url.QueryEscape(g.Web+"/recordings/live/test/index.m3u8") +
		fmt.Sprintf("&advance=%.3f&timeout=60000", total-0.5)
	raw, err := browsertest.RunPage(t, ctx, page, browsertest.PageOptions{Timeout: 70 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := browsertest.Decode[hlsResult](t, raw)
	t.Logf("hls.js played %.2f s of a %.2f s recording; non-fatal errors %v", res.Advanced, total, res.Errors)
	if !res.OK || len(res.Fatal) > 0 || res.Advanced < total-0.5 {
		t.Fatalf("hls.js: %s (%s)", res.Reason, raw)
	}
	if len(res.Widths) != 1 || res.Widths[0] != 320 {
		t.Errorf("widths %v", res.Widths)
	}
}

// TestRecordTimeShift: while a broadcast is recorded, its recording's
// playlist is an EVENT playlist that grows; hls.js starts near its live
// edge, seeks 30 s back and plays on from there.
func TestRecordTimeShift(t *testing.T) {
	dist := webDist(t)
	dir := t.TempDir()
	g := startGate(t, fmt.Sprintf("record:\n  dir: %s\n  segment_duration: 2s\n", dir))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	publishRec(t, ctx, g, "60")
	g.waitRecording(t, 60*time.Second, "40 s recorded", func(l recListing) bool {
		if len(l.Recordings) != 1 || len(l.Recordings[0].Ranges) != 1 {
			return false
		}
		r := l.Recordings[0].Ranges[0]
		return r.End.Sub(r.Start) > 40*time.Second
	})
	src := g.Web + "/recordings/live/test/index.m3u8"
	pl := httpGet(t, src)
	if !strings.Contains(pl.body, "#EXT-X-PLAYLIST-TYPE:EVENT") || strings.Contains(pl.body, "ENDLIST") {
		t.Fatalf("playlist while recording:\n%s", pl.body)
	}
	files := http.FileServer(http.Dir(dist))
	base := browsertest.ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/record_dvr.html" {
			http.ServeFile(w, r, filepath.Join("testdata", "record_dvr.html"))
			return
		}
		files.ServeHTTP(w, r)
	}))
	raw, err := browsertest.RunPage(t, ctx, base+"/record_dvr.html?back=30&src="+url.QueryEscape(src),
		browsertest.PageOptions{Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		OK                            bool
		Reason                        string
		LiveTime, SeekTo, CurrentTime float64
		Fatal, Errors                 []string
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("hls.js joined at %.2f s, sought back to %.2f s: %s (non-fatal errors %v)", res.LiveTime, res.SeekTo, res.Reason, res.Errors)
	if !res.OK {
		t.Fatalf("%s", raw)
	}
	// It joined near the live edge (the 40 s recorded less its hold-back),
	// so 30 s back is in the recording's past.
	if res.LiveTime < 30 {
		t.Errorf("hls.js joined at %.2f s, want near the live edge (> 30 s)", res.LiveTime)
	}
}

// TestRecordAuth: with JWT auth on, recordings are listed and served only
// with a sub grant for their path, and the playlist passes the token on to
// its segments. A prefix turned off is not recorded.
func TestRecordAuth(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	secret := writeSecret(t, "0123456789abcdef0123456789abcdef")
	dir := t.TempDir()
	g := startGate(t, fmt.Sprintf("record:\n  dir: %s\n  segment_duration: 1s\n  prefixes:\n    - prefix: live/\n    - prefix: live/private\n      off: true\n", dir),
		"--jwt-secret-file", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, p := range []string{"live/test", "live/private/x", "other/y"} {
		ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "30",
			"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-f", "flv", g.RTMP+"/"+p+"?jwt="+mint(t, secret, "--pub", ""))
	}
	good, other := mint(t, secret, "--sub", "live/"), mint(t, secret, "--sub", "other/")
	list := func(tok string) recListing {
		var l recListing
		json.Unmarshal([]byte(httpGet(t, g.Web+"/api/recordings?jwt="+tok).body), &l)
		return l
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(list(good).Recordings) == 0 || list(good).Recordings[0].Segments < 3 {
		if time.Now().After(deadline) {
			t.Fatal("nothing recorded")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(list("").Recordings) + len(list(other).Recordings); n != 0 {
		t.Errorf("listed %d recordings without a grant for them", n)
	}
	// Every broadcast is live, only live/test recorded.
	if l := list(mint(t, secret, "--sub", "")); len(l.Recordings) != 1 || l.Recordings[0].Path != "live/test" || len(g.broadcasts(t)) != 3 {
		t.Errorf("recorded %+v of %d broadcasts", l.Recordings, len(g.broadcasts(t)))
	}
	for _, p := range []string{"live/private", "other"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s is on disk (%v)", p, err)
		}
	}
	for name, tok := range map[string]string{"no token": "", "other prefix": other, "bad token": "x.y.z"} {
		for _, p := range []string{"/recordings/live/test", "/recordings/live/test/index.m3u8", "/recordings/live/test/segments/0.mp4"} {
			if r := httpDo(t, "GET", g.Web+p+"?jwt="+tok, nil); r.code != http.StatusForbidden {
				t.Errorf("%s with %s: %d", p, name, r.code)
			}
		}
	}
	httpGet(t, g.Web+"/recordings/live/test?jwt="+good)
	pl := httpGet(t, g.Web+"/recordings/live/test/index.m3u8?jwt="+good).body
	m := regexp.MustCompile(`(?m)^(segments/\d+\.mp4\?jwt=\S+)$`).FindStringSubmatch(pl)
	if m == nil {
		t.Fatalf("playlist without tokened segment URIs:\n%s", pl)
	}
	if r := httpGet(t, g.Web+"/recordings/live/test/"+m[1]); len(r.body) == 0 {
		t.Error("empty segment")
	}
}
