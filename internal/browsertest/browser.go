package browsertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Browser is one headless Chromium driven through web/drive.mjs, in which
// a test opens pages, evaluates expressions in them and takes screenshots.
// Its methods may be called from several goroutines.
type Browser struct {
	t     testing.TB
	stdin io.WriteCloser
	done  chan struct{} // closed when drive.mjs exited

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan reply
	err     error // why the driver stopped
}

type reply struct {
	ID    int             `json:"id"`
	Value json.RawMessage `json:"value"`
	Error string          `json:"error"`
}

// Launch starts Chromium with the extra flags; it closes when the test
// ends. It skips (or under CI fails) t when Chromium, node or
// web/node_modules is missing.
func Launch(t testing.TB, chromiumArgs ...string) *Browser {
	t.Helper()
	RequirePeer(t, PeerChromium)
	RequirePeer(t, PeerNode)
	RequirePeer(t, PeerNodeModules)
	web, err := WebDir()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"drive.mjs"}
	for _, a := range chromiumArgs {
		args = append(args, "--arg="+a)
	}
	cmd := exec.Command("node", args...)
	cmd.Dir = web
	cmd.WaitDelay = 10 * time.Second
	lw := newLineLogger(t, "chromium")
	cmd.Stderr = lw
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &Browser{t: t, stdin: stdin, done: make(chan struct{}), waiting: map[int]chan reply{}}
	go b.read(stdout, cmd, lw)
	t.Cleanup(func() {
		stdin.Close() // drive.mjs closes the browser and exits
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			terminate(cmd.Process)
			<-b.done
		}
	})
	return b
}

func (b *Browser) read(stdout io.Reader, cmd *exec.Cmd, lw *lineLogger) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var r reply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue
		}
		b.mu.Lock()
		ch := b.waiting[r.ID]
		delete(b.waiting, r.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	err := cmd.Wait()
	lw.Flush()
	b.mu.Lock()
	b.err = fmt.Errorf("drive.mjs exited: %v (stderr ends: %s)", err, lw.Tail())
	for id, ch := range b.waiting {
		close(ch)
		delete(b.waiting, id)
	}
	b.mu.Unlock()
	close(b.done)
}

// call sends one request and waits for its answer.
func (b *Browser) call(ctx context.Context, req map[string]any, out any) error {
	ch := make(chan reply, 1)
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return b.err
	}
	b.nextID++
	id := b.nextID
	b.waiting[id] = ch
	req["id"] = id
	line, err := json.Marshal(req)
	if err == nil {
		_, err = b.stdin.Write(append(line, '\n'))
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("browser: send %s: %w", req["op"], err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.err
		}
		if r.Error != "" {
			return fmt.Errorf("browser %s: %w", req["op"], errors.New(r.Error))
		}
		if out != nil {
			return json.Unmarshal(r.Value, out)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("browser %s: %w", req["op"], ctx.Err())
	}
}

// Page is one page (in its own browser context) of a Browser.
type Page struct {
	b    *Browser
	name string
}

// OpenOptions tunes Browser.Open.
type OpenOptions struct {
	Width, Height int    // viewport; 0 means 1280×800
	Init          string // JavaScript run in the page before its own scripts
}

// Open opens url in a new page named name (unique among the open ones).
func (b *Browser) Open(ctx context.Context, name, url string, o OpenOptions) (*Page, error) {
	err := b.call(ctx, map[string]any{"op": "open", "page": name, "url": url, "width": o.Width, "height": o.Height, "init": o.Init}, nil)
	if err != nil {
		return nil, err
	}
	return &Page{b: b, name: name}, nil
}

// Eval evaluates a JavaScript expression (a promise is awaited) and
// unmarshals its JSON value into out (nil: ignore it).
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	return p.b.call(ctx, map[string]any{"op": "eval", "page": p.name, "expr": expr}, out)
}

// Wait polls a JavaScript expression every 100 ms until it is truthy and
// unmarshals that value into out (nil: ignore it).
func (p *Page) Wait(ctx context.Context, expr string, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	return p.b.call(ctx, map[string]any{"op": "wait", "page": p.name, "expr": expr, "timeout": timeout.Milliseconds()}, out)
}

// Screenshot writes a PNG of the viewport to path.
func (p *Page) Screenshot(ctx context.Context, path string) error {
	return p.b.call(ctx, map[string]any{"op": "screenshot", "page": p.name, "path": path}, nil)
}

// Close closes the page.
func (p *Page) Close(ctx context.Context) error {
	return p.b.call(ctx, map[string]any{"op": "close", "page": p.name}, nil)
}
