// Package e2e runs the moqgate binary as a real process against real peers
// (ffmpeg, ffprobe, Chromium) on loopback.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "moqgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "moqgate")
	build := exec.Command("go", "build", "-o", binPath, "github.com/moqgate/moqgate/cmd/moqgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build moqgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gate is a running moqgate process.
type gate struct {
	Web     string // http://127.0.0.1:port
	MoQ     string // moqt://127.0.0.1:port
	WT      string // https://127.0.0.1:port/
	RTMP    string // rtmp://127.0.0.1:port
	SRT     string // 127.0.0.1:port (UDP)
	cmd     *exec.Cmd
	logs    *logBuf
	cfgFile string // the YAML it was started with (rewrite, then reload)
	// apiToken is sent to the API and /metrics when auth is on (startGate
	// mints an admin token for every path from --jwt-secret-file).
	apiToken string
}

type logBuf struct {
	mu      sync.Mutex
	lines   []string
	secrets []string // lines with a token in them
}

// tokenRE matches a JWT (header.payload.signature): the server must never
// log one, at any level.
var tokenRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}`)

func (l *logBuf) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	if tokenRE.MatchString(s) {
		l.secrets = append(l.secrets, s)
	}
	l.mu.Unlock()
}

func (l *logBuf) contains(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// submatches returns re's submatches in each log line it matches, in order.
func (l *logBuf) submatches(re *regexp.Regexp) [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]string
	for _, s := range l.lines {
		if m := re.FindStringSubmatch(s); m != nil {
			out = append(out, m)
		}
	}
	return out
}

var (
	servingRE = regexp.MustCompile(`web=(\S+) moq=moqt://(\S+) rtmp=(\S+)`)
	srtRE     = regexp.MustCompile(`srt=srt://(\S+)`)
)

// startGate runs `moqgate serve` on free loopback ports with the given
// extra YAML config (may be "").
func startGate(t *testing.T, yaml string, args ...string) *gate {
	t.Helper()
	return startGateWrapped(t, nil, yaml, args...)
}

// startGateWrapped is startGate with the binary run by a wrapper command
// (e.g. prlimit with its options), nil for none.
func startGateWrapped(t *testing.T, wrap []string, yaml string, args ...string) *gate {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "moqgate.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"serve", "--config", cfg, "--listen", "127.0.0.1:0", "--rtmp", "127.0.0.1:0",
		"--webrtc-udp", "127.0.0.1:0", "--srt", "127.0.0.1:0", "--log-level", "debug"}, args...)
	cmd := exec.Command(binPath, all...)
	if len(wrap) > 0 {
		cmd = exec.Command(wrap[0], append(append(wrap[1:len(wrap):len(wrap)], binPath), all...)...)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gate{cmd: cmd, logs: &logBuf{}, cfgFile: cfg}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.logs.add(line)
			if testing.Verbose() || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				t.Log("moqgate:", line)
			}
			if m := servingRE.FindStringSubmatch(line); m != nil {
				if srt := srtRE.FindStringSubmatch(line); srt != nil {
					m = append(m, srt[1])
				}
				ready <- m
			}
		}
	}()
	select {
	case m := <-ready:
		g.Web, g.MoQ, g.RTMP = m[1], "moqt://"+m[2], m[3]
		if len(m) > 4 {
			g.SRT = m[4]
		}
		g.WT = "https://" + m[2] + "/"
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("moqgate did not start")
	}
	t.Cleanup(func() { g.stop(t) })
	for i, a := range args {
		if a == "--jwt-secret-file" && i+1 < len(args) {
			g.apiToken = mint(t, args[i+1], "--sub", "", "--admin", "--ttl", "24h")
		}
	}
	return g
}

// get fetches a URL of the gate's web port with its API token.
func (g *gate) get(t *testing.T, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", g.Web+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.apiToken != "" {
		req.Header.Set("Authorization", "Bearer "+g.apiToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// stop sends SIGINT and expects a clean exit (and no token in the log).
func (g *gate) stop(t *testing.T) {
	if g.cmd.ProcessState != nil {
		return
	}
	defer func() {
		g.logs.mu.Lock()
		defer g.logs.mu.Unlock()
		for _, l := range g.logs.secrets {
			t.Errorf("moqgate logged a token: %s", l)
		}
	}()
	g.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- g.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("moqgate exited with %v after SIGINT", err)
		}
	case <-time.After(10 * time.Second):
		// SIGQUIT makes the Go runtime print every goroutine (to the log
		// above): what the shutdown waits for.
		g.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			g.cmd.Process.Kill()
		}
		t.Error("moqgate did not exit within 10s of SIGINT")
	}
}

// broadcasts returns the API's view.
func (g *gate) broadcasts(t *testing.T) []map[string]any {
	t.Helper()
	resp := g.get(t, "/api/broadcasts")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/api/broadcasts: %s", resp.Status)
	}
	var v struct {
		Broadcasts []map[string]any `json:"broadcasts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Broadcasts
}

// waitBroadcast waits until the broadcast is announced (its catalog
// tracks exist from then on, so a subscriber waits for the catalog).
func (g *gate) waitBroadcast(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	for {
		for _, b := range g.broadcasts(t) {
			if b["path"] == path {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("broadcast %s did not appear", path)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ffmpeg starts ffmpeg with args; it is killed at the end of the test.
func ffmpeg(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	browsertest.RequirePeer(t, "ffmpeg")
	cmd := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)...)
	cmd.Stderr = testWriter{t, "ffmpeg"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w testWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix+":", l)
	}
	return len(p), nil
}

// sub runs `moqgate sub` and returns the file it writes and a channel
// that yields its exit status.
func sub(t *testing.T, ctx context.Context, url, broadcast string, extra ...string) (string, <-chan error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sub.mp4")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"sub", "--insecure", "--log-level", "info"}, extra...)
	args = append(args, url, broadcast)
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Stdout = f
	cmd.Stderr = testWriter{t, "sub"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		f.Close()
		done <- err
	}()
	return out, done
}

// probe is what ffprobe says of a file.
type probe struct {
	Streams []struct {
		Index     int    `json:"index"`
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		NbFrames  string `json:"nb_read_frames"`
		Profile   string `json:"profile"`
	} `json:"streams"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		PTS         *int64 `json:"pts"`
		DTS         *int64 `json:"dts"`
	} `json:"packets"`
}

func ffprobe(t *testing.T, file string) probe {
	t.Helper()
	browsertest.RequirePeer(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_packets",
		"-show_entries", "stream=index,codec_name,codec_type,width,height,nb_read_frames,profile:packet=stream_index,pts,dts",
		"-of", "json", file).Output()
	if err != nil {
		var ee *exec.ExitError
		if ok := asExit(err, &ee); ok {
			t.Fatalf("ffprobe %s: %v: %s", file, err, ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// timing is what ffprobe says of a file's timeline, in seconds: the
// container's start time and duration, and the span its packets cover.
type timing struct{ start, duration, spanStart, spanEnd float64 }

func ffprobeTiming(t *testing.T, file string) timing {
	t.Helper()
	browsertest.RequirePeer(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries",
		"format=start_time,duration:packet=stream_index,pts_time", "-of", "json", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var v struct {
		Format struct {
			Start    string `json:"start_time"`
			Duration string `json:"duration"`
		} `json:"format"`
		Packets []struct {
			Stream int    `json:"stream_index"`
			PTS    string `json:"pts_time"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	num := func(s string) float64 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("ffprobe %s: number %q: %v", file, s, err)
		}
		return f
	}
	pts := map[int][]float64{}
	for _, p := range v.Packets {
		if p.PTS != "" && p.PTS != "N/A" {
			pts[p.Stream] = append(pts[p.Stream], num(p.PTS))
		}
	}
	tm := timing{start: num(v.Format.Start), duration: num(v.Format.Duration), spanStart: math.Inf(1), spanEnd: math.Inf(-1)}
	for _, ps := range pts {
		if len(ps) < 2 {
			continue
		}
		// Packet durations are often N/A; the last frame lasts about as
		// long as the gap before it (presentation order).
		slices.Sort(ps)
		last := ps[len(ps)-1]
		tm.spanStart, tm.spanEnd = min(tm.spanStart, ps[0]), max(tm.spanEnd, last+last-ps[len(ps)-2])
	}
	if math.IsInf(tm.spanStart, 0) {
		t.Fatalf("ffprobe %s: no packets", file)
	}
	return tm
}

// checkStartsAtZero: a `moqgate sub` recording starts at time 0 and its
// container duration is where its packets end (within slack seconds), not
// the broadcast's age plus that. (With B-frames the first presentation time
// is a frame or two after 0; ffprobe counts the duration from 0.)
func checkStartsAtZero(t *testing.T, file string, slack float64) {
	t.Helper()
	tm := ffprobeTiming(t, file)
	t.Logf("start_time %.3f s, duration %.3f s, packets span %.3f-%.3f s", tm.start, tm.duration, tm.spanStart, tm.spanEnd)
	if tm.start < 0 || tm.start > 0.5 || tm.spanStart > 0.5 {
		t.Errorf("start_time %.3f s, first packet at %.3f s, want about 0", tm.start, tm.spanStart)
	}
	if math.Abs(tm.duration-tm.spanEnd) > slack {
		t.Errorf("duration %.3f s, but the packets end at %.3f s", tm.duration, tm.spanEnd)
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*ee = e
	}
	return ok
}

// decodes checks that ffmpeg decodes the whole file without errors.
func decodes(t *testing.T, file string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", file, "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("ffmpeg could not decode %s cleanly: %v\n%s", file, err, out)
	}
}

func waitExit(t *testing.T, done <-chan error, d time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("moqgate sub: %v", err)
		}
	case <-time.After(d):
		t.Fatalf("moqgate sub did not exit in %s", d)
	}
}

var _ = io.Discard
