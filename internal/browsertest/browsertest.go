// Package browsertest runs browser and other external peers from Go tests.
//
// Tests call RequirePeer for each outside program they need: it skips the
// test when the peer is missing, except under CI (env CI=true), where a
// missing peer fails the test so that a broken install cannot pass as green.
//
// Run executes a node script from the repository's web/ directory (an npm
// project with playwright-core, @moq/watch, hls.js and shaka-player; `make
// test` runs npm ci and npm run build there) and returns the JSON it prints
// on stdout. RunPage
// opens a URL in headless Chromium through web/run-page.mjs and returns the
// page's window.__result. Serve serves web/dist (the bundles and test pages
// built by `npm run build`) on a free 127.0.0.1 port.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Peer names for RequirePeer. Any other name is looked up as a program in
// PATH.
const (
	PeerChromium    = "chromium"     // /usr/bin/chromium (or $CHROMIUM)
	PeerFFmpeg      = "ffmpeg"       // ffmpeg in PATH
	PeerFFprobe     = "ffprobe"      // ffprobe in PATH
	PeerNode        = "node"         // node in PATH
	PeerNodeModules = "node_modules" // web/node_modules with playwright-core (npm ci --prefix web)
	PeerWebDist     = "web/dist"     // web/dist built (npm run --prefix web build)
)

// modulePath identifies the repository root's go.mod.
const modulePath = "github.com/moqgate/moqgate"

// InCI reports whether the tests run under CI (env CI=true), where missing
// peers are failures rather than skips.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// RequirePeer skips t unless the named peer is available; under CI it fails
// t instead. See the Peer constants for the names.
func RequirePeer(t testing.TB, name string) {
	t.Helper()
	if err := CheckPeer(name); err != nil {
		if InCI() {
			t.Fatalf("required peer %s is missing (CI=true): %v", name, err)
		}
		t.Skipf("peer %s not available: %v", name, err)
	}
}

// CheckPeer returns nil when the named peer is available, else why not.
func CheckPeer(name string) error {
	switch name {
	case PeerChromium:
		p := ChromiumPath()
		if err := isExecutable(p); err != nil {
			return fmt.Errorf("%s: %w (apt-get install -y chromium)", p, err)
		}
		return nil
	case PeerNodeModules:
		web, err := WebDir()
		if err != nil {
			return err
		}
		for _, pkg := range []string{"playwright-core", "@moq/watch", "hls.js", "shaka-player", "esbuild"} {
			if _, err := os.Stat(filepath.Join(web, "node_modules", pkg, "package.json")); err != nil {
				return fmt.Errorf("web/node_modules/%s missing (npm ci --prefix web): %w", pkg, err)
			}
		}
		return nil
	case PeerWebDist:
		web, err := WebDir()
		if err != nil {
			return err
		}
		for _, f := range []string{"moqwatch.js", "hls.js", "shaka.js", "harness.html", "watch.html"} {
			if _, err := os.Stat(filepath.Join(web, "dist", f)); err != nil {
				return fmt.Errorf("web/dist/%s missing (npm run --prefix web build): %w", f, err)
			}
		}
		return nil
	default:
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%s not in PATH: %w", name, err)
		}
		return nil
	}
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// ChromiumPath is $CHROMIUM if set, else /usr/bin/chromium.
func ChromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory whose go.mod declares this module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("browsertest: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("browsertest: repository root (go.mod of " + modulePath + ") not found")
		}
		dir = parent
	}
}

// WebDir returns the repository's web/ directory.
func WebDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "web"), nil
}

// Run runs `node SCRIPT ARGS...` in web/ and returns what it printed on
// stdout, which must be one JSON value. The script's stderr is logged to t
// line by line. When ctx ends, node gets SIGTERM (playwright then closes the
// browser) and, 10s later, SIGKILL. Run skips (or under CI fails) t when node
// or web/node_modules is missing.
func Run(t testing.TB, ctx context.Context, script string, args ...string) (json.RawMessage, error) {
	t.Helper()
	RequirePeer(t, PeerNode)
	RequirePeer(t, PeerNodeModules)
	web, err := WebDir()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = web
	cmd.Cancel = func() error { return terminate(cmd.Process) }
	cmd.WaitDelay = 10 * time.Second
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	lw := newLineLogger(t, filepath.Base(script))
	cmd.Stderr = lw
	start := time.Now()
	err = cmd.Run()
	lw.Flush()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("node %s: %w (after %s; context: %w)", script, err, time.Since(start).Round(time.Millisecond), ctx.Err())
		}
		return nil, fmt.Errorf("node %s: %w (stderr ends: %s)", script, err, lw.Tail())
	}
	out := bytes.TrimSpace(stdout.Bytes())
	if !json.Valid(out) {
		return nil, fmt.Errorf("node %s: stdout is not one JSON value: %.500q", script, out)
	}
	return json.RawMessage(out), nil
}

// PageOptions tunes RunPage.
type PageOptions struct {
	// Timeout for the page to set window.__result; 0 means 30s.
	Timeout time.Duration
	// ChromiumArgs are extra Chromium flags, e.g.
	// "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream".
	ChromiumArgs []string
	// Screenshot, when set, is a PNG file written when the page finishes.
	Screenshot string
	// Width and Height of the viewport; 0 means 1280x720.
	Width, Height int
}

// RunPage opens pageURL in headless Chromium (web/run-page.mjs) and returns
// the page's window.__result as JSON. A page that sets window.__error, or
// none of the two within the timeout, is an error that includes the page's
// last window.__progress. Console output is logged to t. It skips (or under
// CI fails) t when Chromium, node or web/node_modules is missing.
func RunPage(t testing.TB, ctx context.Context, pageURL string, opts PageOptions) (json.RawMessage, error) {
	t.Helper()
	RequirePeer(t, PeerChromium)
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	args := []string{pageURL, fmt.Sprintf("--timeout=%d", timeout.Milliseconds())}
	for _, a := range opts.ChromiumArgs {
		args = append(args, "--arg="+a)
	}
	if opts.Screenshot != "" {
		args = append(args, "--screenshot="+opts.Screenshot)
	}
	if opts.Width > 0 && opts.Height > 0 {
		args = append(args, fmt.Sprintf("--viewport=%dx%d", opts.Width, opts.Height))
	}
	// Leave the browser time to start and close around the page timeout.
	ctx, cancel := context.WithTimeout(ctx, timeout+90*time.Second)
	defer cancel()
	return Run(t, ctx, "run-page.mjs", args...)
}

// Serve serves web/dist at / on a free 127.0.0.1 port until the test ends,
// with extra files laid over it (path such as "/my-test.html" → content),
// and returns the base URL without a trailing slash, e.g.
// "http://127.0.0.1:40123". It skips (or under CI fails) t when web/dist is
// not built.
func Serve(t testing.TB, extra map[string]string) string {
	t.Helper()
	RequirePeer(t, PeerWebDist)
	web, err := WebDir()
	if err != nil {
		t.Fatal(err)
	}
	dist := http.FileServer(http.FS(os.DirFS(filepath.Join(web, "dist"))))
	return ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path == "/favicon.ico" {
			w.WriteHeader(http.StatusNoContent) // keeps 404s out of the console log
			return
		}
		if body, ok := extra[r.URL.Path]; ok {
			if ct := contentType(r.URL.Path); ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			_, _ = io.WriteString(w, body)
			return
		}
		dist.ServeHTTP(w, r)
	}))
}

// ServeHandler serves h on a free 127.0.0.1 port until the test ends and
// returns the base URL without a trailing slash.
func ServeHandler(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func contentType(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".json":
		return "application/json"
	case ".css":
		return "text/css; charset=utf-8"
	}
	return ""
}

// lineLogger logs each complete line written to it to t, and keeps the last
// lines for error messages.
type lineLogger struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
	tail   []string
}

func newLineLogger(t testing.TB, prefix string) *lineLogger {
	return &lineLogger{t: t, prefix: prefix}
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) line(s string) {
	s = strings.TrimRight(s, "\r")
	l.t.Logf("%s: %s", l.prefix, s)
	l.tail = append(l.tail, s)
	if len(l.tail) > 20 {
		l.tail = l.tail[len(l.tail)-20:]
	}
}

// Flush logs a last unterminated line.
func (l *lineLogger) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}

// Tail returns the last lines logged, joined.
func (l *lineLogger) Tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.tail, " | ")
}

// Decode unmarshals raw into a new T, failing t on error.
func Decode[T any](t testing.TB, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %.300s: %v", raw, err)
	}
	return v
}
