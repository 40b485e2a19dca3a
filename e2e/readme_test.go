package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/rtctest"
)

// TestREADMEExamples runs the README's shell examples as written, so the
// README cannot drift from what moqgate does.
//
// Which blocks run: a ```sh block runs when the line just before its fence
// is an HTML comment `<!-- test ... -->` (invisible on GitHub). A marker
// beats a list of block indices here: it travels with the block when the
// README is edited, and an unmarked new block is simply documentation (for
// what cannot run here: ffplay, OBS, an SDP offer). The marker's attributes:
//
//	mode=install         run in the repository root with GOBIN set to the
//	                     test's own directory (the README's `go install`
//	                     builds the binary the later blocks find on PATH)
//	mode=serve           one command: the server; it runs (with free loopback
//	                     ports appended as flags) until the next serve block
//	mode=background      a long-running command (an encoder), killed at the end
//	wait=BROADCAST       with background: wait until the broadcast is live
//	check=whep           then play it over WHEP (a pion viewer): what the
//	                     README publishes must play everywhere
//	check=pages          then GET every URL of the "Watch in a browser"
//	                     table: each must be one of moqgate's pages
//	                     (check=whep,pages does both)
//	expect="REGEXP"      the block's combined output must match
//
// Every other block runs in a shared working directory, must exit 0
// within blockTimeout, and leaves its shell variables to the next ones
// (PUB=$(moqgate token ...) then ... $PUB). 127.0.0.1:4443,
// 127.0.0.1:1935 and 127.0.0.1:8890 (SRT) in a block are rewritten to the
// test server's ports.
func TestREADMEExamples(t *testing.T) {
	for _, p := range []string{"bash", "go", "curl", browsertest.PeerFFmpeg, browsertest.PeerFFprobe} {
		browsertest.RequirePeer(t, p)
	}
	root, readme := readREADME(t)
	blocks, err := readmeBlocks(readme)
	if err != nil {
		t.Fatal(err)
	}
	checkCoverage(t, blocks)
	r := newReadmeRun(t, root)
	for _, b := range blocks {
		if t.Failed() {
			return
		}
		r.run(b)
	}
}

// readREADME returns the repository root and its README.md.
func readREADME(t *testing.T) (string, string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return root, string(b)
}

// readmeBlock is one marked ```sh block.
type readmeBlock struct {
	line   int // of the fence, 1-based
	mode   string
	wait   string
	whep   bool
	pages  bool
	expect *regexp.Regexp
	script string
}

var (
	readmeMarkerRE = regexp.MustCompile(`^<!--\s*test\b(.*?)-->\s*$`)
	readmeAttrRE   = regexp.MustCompile(`(\w+)=("[^"]*"|\S+)`)
)

// readmeBlocks returns the marked blocks in order. A marker that is not
// right before a ```sh fence, or with an unknown attribute, is an error:
// a typo must not silently turn a test off.
func readmeBlocks(readme string) ([]readmeBlock, error) {
	lines := strings.Split(readme, "\n")
	var out []readmeBlock
	for i := 0; i < len(lines); i++ {
		m := readmeMarkerRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "```sh" {
			return nil, fmt.Errorf("README.md:%d: test marker not followed by a ```sh block", i+1)
		}
		b := readmeBlock{line: i + 2, mode: "run"}
		if err := b.parseAttrs(m[1]); err != nil {
			return nil, fmt.Errorf("README.md:%d: %w", i+1, err)
		}
		var body []string
		for i += 2; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		b.script = strings.Join(body, "\n")
		out = append(out, b)
	}
	return out, nil
}

func (b *readmeBlock) parseAttrs(s string) error {
	for _, kv := range readmeAttrRE.FindAllStringSubmatch(s, -1) {
		v := strings.Trim(kv[2], `"`)
		switch kv[1] {
		case "mode":
			if v != "install" && v != "serve" && v != "background" {
				return fmt.Errorf("unknown mode %q", v)
			}
			b.mode = v
		case "wait":
			b.wait = v
		case "check":
			for _, c := range strings.Split(v, ",") {
				switch c {
				case "whep":
					b.whep = true
				case "pages":
					b.pages = true
				default:
					return fmt.Errorf("unknown check %q", c)
				}
			}
		case "expect":
			re, err := regexp.Compile(v)
			if err != nil {
				return err
			}
			b.expect = re
		default:
			return fmt.Errorf("unknown attribute %q", kv[1])
		}
	}
	if leftover := strings.TrimSpace(readmeAttrRE.ReplaceAllString(s, "")); leftover != "" {
		return fmt.Errorf("cannot parse %q", leftover)
	}
	return nil
}

// checkCoverage fails when the marked blocks no longer cover what the
// README must show working: removing a marker is not a way to pass.
func checkCoverage(t *testing.T, blocks []readmeBlock) {
	t.Helper()
	var all strings.Builder
	serves, whep, pages := 0, false, false
	for _, b := range blocks {
		all.WriteString(b.script + "\n")
		if b.mode == "serve" {
			serves++
		}
		whep, pages = whep || b.whep, pages || b.pages
	}
	if !whep || !pages {
		t.Errorf("no README block checks WHEP playback (%v) or the web pages (%v)", whep, pages)
	}
	for _, want := range []string{"go install", "moqgate version", "rtmp://", "moqgate sub", "moqgate pub",
		"moqgate token", "--jwt-secret-file", "--token", "ffprobe", "/hls/live/test/index.m3u8"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no README block marked <!-- test --> runs %q", want)
		}
	}
	if serves < 2 {
		t.Errorf("%d serve blocks marked, want the plain one and the one with auth", serves)
	}
}

// blockTimeout bounds a foreground block; waitTimeout a background one's
// broadcast.
const (
	blockTimeout = 60 * time.Second
	waitTimeout  = 20 * time.Second
)

// readmeRun is the state the blocks share: directories, the server, the
// background processes and the shell variables.
type readmeRun struct {
	t               *testing.T
	root, bin, work string
	env             []string
	envFile         string
	server          *exec.Cmd
	serverLog       *io.PipeWriter // feeds the goroutine that found its ports
	serverOut       *tailBuf
	web, rtmp, srt  string // host:port of the running server
	mu              sync.Mutex
	background      []*exec.Cmd
}

func newReadmeRun(t *testing.T, root string) *readmeRun {
	r := &readmeRun{t: t, root: root, bin: t.TempDir(), work: t.TempDir()}
	r.envFile = filepath.Join(r.work, ".readme-env")
	r.env = append(os.Environ(), "PATH="+r.bin+string(os.PathListSeparator)+os.Getenv("PATH"), "GOBIN="+r.bin)
	t.Cleanup(r.stopAll)
	return r
}

func (r *readmeRun) run(b readmeBlock) {
	t := r.t
	script, err := r.rewrite(b)
	if err != nil {
		t.Fatalf("README.md:%d: %v", b.line, err)
	}
	t.Logf("README.md:%d (%s):\n%s", b.line, b.mode, script)
	switch b.mode {
	case "serve":
		r.startServer(b, script)
	case "background":
		r.startBackground(b, script)
	default:
		r.runForeground(b, script)
	}
}

var readmePortRE = regexp.MustCompile(`:(4443|1935|8189|8890)\b`)

// rewrite points the block at the test's server.
func (r *readmeRun) rewrite(b readmeBlock) (string, error) {
	s := b.script
	switch b.mode {
	case "serve":
		return s, nil // its listen flags are overridden
	case "install":
	default:
		if r.web == "" {
			return "", fmt.Errorf("a block before any serve block")
		}
		s = strings.ReplaceAll(s, "127.0.0.1:4443", r.web)
		s = strings.ReplaceAll(s, "127.0.0.1:1935", r.rtmp)
		s = strings.ReplaceAll(s, "127.0.0.1:8890", r.srt)
	}
	if m := readmePortRE.FindString(s); m != "" {
		return "", fmt.Errorf("the block names port %s, which the test cannot point at its own server", m)
	}
	return s, nil
}

// shell returns a bash running script with the shared variables loaded;
// with save, it stores them again when the script succeeds.
func (r *readmeRun) shell(ctx context.Context, dir, script string, save bool) *exec.Cmd {
	full := "set -a -e -o pipefail\n[ -f " + r.envFile + " ] && . " + r.envFile + "\n" + script + "\n"
	if save {
		// Read-only variables cannot be declared again.
		full += "export -p | grep -v '^declare -[a-zA-Z]*r' > " + r.envFile + ".new && mv " + r.envFile + ".new " + r.envFile + "\n"
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", full)
	cmd.Dir, cmd.Env = dir, r.env
	// Its own process group, so a pipeline is stopped whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (r *readmeRun) runForeground(b readmeBlock, script string) {
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), blockTimeout)
	defer cancel()
	dir := r.work
	if b.mode == "install" {
		dir = r.root
	}
	cmd := r.shell(ctx, dir, script, true)
	out, err := cmd.CombinedOutput()
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatalf("README.md:%d: %v (output above)", b.line, err)
	}
	if b.expect != nil && !b.expect.Match(out) {
		t.Fatalf("README.md:%d: output does not match %q (output above)", b.line, b.expect)
	}
}

// startServer stops the previous server (and what published to it), then
// starts this one on free loopback ports and learns them from its log.
func (r *readmeRun) startServer(b readmeBlock, script string) {
	t := r.t
	r.stopAll()
	line := strings.TrimSpace(script)
	if strings.Contains(line, "\n") {
		t.Fatalf("README.md:%d: a serve block must be one command", b.line)
	}
	if i := strings.Index(line, " #"); i >= 0 {
		line = line[:i]
	}
	line += " --listen 127.0.0.1:0 --rtmp 127.0.0.1:0 --webrtc-udp 127.0.0.1:0 --srt 127.0.0.1:0"
	cmd := r.shell(context.Background(), r.work, "exec "+line, false)
	r.serverOut = newTailBuf()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = r.serverOut, io.MultiWriter(r.serverOut, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.server, r.serverLog = cmd, pw
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				srt := srtRE.FindStringSubmatch(sc.Text())
				if srt == nil {
					srt = []string{"", "off"}
				}
				ready <- append(m, srt[1])
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case m := <-ready:
		r.web, r.rtmp, r.srt = strings.TrimPrefix(m[1], "http://"), strings.TrimPrefix(m[3], "rtmp://"), m[4]
	case <-time.After(15 * time.Second):
		t.Fatalf("README.md:%d: moqgate did not start:\n%s", b.line, r.serverOut)
	}
}

func (r *readmeRun) startBackground(b readmeBlock, script string) {
	t := r.t
	cmd := r.shell(context.Background(), r.work, script, false)
	out := newTailBuf()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	r.mu.Lock()
	r.background = append(r.background, cmd)
	r.mu.Unlock()
	if b.wait == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for !r.live(b.wait) {
		select {
		case err := <-exited:
			t.Fatalf("README.md:%d: exited (%v) before %s went live:\n%s", b.line, err, b.wait, out)
		case <-ctx.Done():
			t.Fatalf("README.md:%d: %s not live after %s:\n%s\nserver:\n%s", b.line, b.wait, waitTimeout, out, r.serverOut)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if b.whep {
		r.checkWHEP(b)
	}
	if b.pages {
		r.checkPages(b)
	}
}

// readmePageRE finds the URLs in the first column of the "Watch in a
// browser" table.
var readmePageRE = regexp.MustCompile("(?m)^\\| `(http://127\\.0\\.0\\.1:4443/[^`]*)` \\|")

// checkPages GETs every page the README's "Watch in a browser" table names,
// on the test's server: a renamed route or a page that no longer answers
// for a live broadcast fails here. That the pages play is the ui e2e
// tests' job (Chromium); this keeps the README's URLs true.
func (r *readmeRun) checkPages(b readmeBlock) {
	t := r.t
	_, readme := readREADME(t)
	_, section, ok := strings.Cut(readme, "\n## Watch in a browser\n")
	if !ok {
		t.Fatal("README.md has no \"Watch in a browser\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	urls := readmePageRE.FindAllStringSubmatch(section, -1)
	if len(urls) < 3 {
		t.Fatalf("README.md:%d: the \"Watch in a browser\" table names %d pages, want the list, watch and publish", b.line, len(urls))
	}
	for _, m := range urls {
		u := strings.Replace(m[1], "127.0.0.1:4443", r.web, 1)
		resp, err := httpClient.Get(u)
		if err != nil {
			t.Fatalf("README.md: %s: %v", m[1], err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		ct := resp.Header.Get("Content-Type")
		t.Logf("GET %s: %s, %s, %d bytes", m[1], resp.Status, ct, len(body))
		// Each page carries its config as JSON ({"page":"watch",
		// "broadcast":"live/test",...}).
		want := `"page":"`
		for _, page := range []string{"/watch/", "/publish/"} {
			if _, path, ok := strings.Cut(m[1], page); ok {
				want = `"broadcast":"` + path + `"`
			}
		}
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/html") || !bytes.Contains(body, []byte(want)) {
			t.Errorf("README.md: %s is not a moqgate page: %s, %s:\n%.300s", m[1], resp.Status, ct, body)
		}
	}
}

// checkWHEP plays the broadcast over WHEP for a few seconds and wants
// video (an example with B-frames plays too, re-encoded, if this machine
// can: the README says what that costs).
func (r *readmeRun) checkWHEP(b readmeBlock) {
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: "http://" + r.web + "/whep/" + b.wait, NoAudio: true})
	if err != nil {
		t.Fatalf("README.md:%d: WHEP viewer of %s: %v", b.line, b.wait, err)
	}
	time.Sleep(3 * time.Second)
	st := v.Stats()["video"]
	if err := v.Close(); err != nil {
		t.Error(err)
	}
	t.Logf("WHEP viewer of %s: %s, %d frames (%d key) in 3 s", b.wait, st.Codec, st.Frames, st.Keyframes)
	if st.Frames < 30 || st.Keyframes < 1 {
		t.Fatalf("README.md:%d: a WHEP viewer of %s got %d frames (%d key) in 3 s", b.line, b.wait, st.Frames, st.Keyframes)
	}
}

// live reports whether the server's API lists the broadcast. With auth
// on (the README's jwt.secret exists) it asks with a token for every path.
func (r *readmeRun) live(path string) bool {
	u := "http://" + r.web + "/api/broadcasts"
	if secret := filepath.Join(r.work, "jwt.secret"); fileExists(secret) {
		out, err := exec.Command(binPath, "token", "--jwt-secret-file", secret, "--sub", "", "--ttl", "1m").Output()
		if err != nil {
			return false
		}
		u += "?jwt=" + strings.TrimSpace(string(out))
	}
	body, err := fetchOK(context.Background(), httpClient, u)
	var v struct {
		Broadcasts []struct {
			Path string `json:"path"`
		} `json:"broadcasts"`
	}
	if err != nil || json.Unmarshal([]byte(body), &v) != nil {
		return false
	}
	for _, b := range v.Broadcasts {
		if b.Path == path {
			return true
		}
	}
	return false
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// stopAll kills the background commands and stops the server, which must
// exit cleanly on SIGINT.
func (r *readmeRun) stopAll() {
	r.mu.Lock()
	bg := r.background
	r.background = nil
	r.mu.Unlock()
	for _, c := range bg {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	if r.server == nil {
		return
	}
	srv := r.server
	r.server, r.web, r.rtmp, r.srt = nil, "", "", ""
	syscall.Kill(-srv.Process.Pid, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			r.t.Errorf("moqgate exited with %v after SIGINT:\n%s", err, r.serverOut)
		}
	case <-time.After(10 * time.Second):
		syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
		r.t.Errorf("moqgate did not exit within 10 s of SIGINT")
	}
	r.serverLog.Close()
}

// tailBuf keeps the last 16 KiB written to it (ffmpeg's progress output is
// endless), safe for concurrent use.
type tailBuf struct {
	mu sync.Mutex
	b  []byte
}

func newTailBuf() *tailBuf { return &tailBuf{} }

func (w *tailBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - 16<<10; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(bytes.ToValidUTF8(w.b, []byte("?")))
}

// TestREADMETroubleshootingLogLines: every server log message the README's
// Troubleshooting section quotes (msg="...") is one moqgate's code logs, so
// a reworded message cannot leave the README describing a line nobody sees.
// A message may begin with a word the code prepends (ep.Kind + " offer
// refused").
func TestREADMETroubleshootingLogLines(t *testing.T) {
	root, readme := readREADME(t)
	_, section, ok := strings.Cut(readme, "\n## Troubleshooting\n")
	if !ok {
		t.Fatal("README.md has no Troubleshooting section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	msgs := regexp.MustCompile(`msg="([^"]+)"`).FindAllStringSubmatch(section, -1)
	if len(msgs) < 8 {
		t.Fatalf("Troubleshooting quotes %d log messages, want the ten items' lines", len(msgs))
	}
	src := goSources(t, root)
	for _, m := range msgs {
		msg := m[1]
		_, rest, _ := strings.Cut(msg, " ")
		if !strings.Contains(src, msg) && !strings.Contains(src, `" `+rest+`"`) {
			t.Errorf("README Troubleshooting quotes msg=%q, which no Go source logs", msg)
		}
	}
}

// goSources concatenates the non-test Go files of the repository.
func goSources(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "web" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(p)
		b.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}
