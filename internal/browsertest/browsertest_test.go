package browsertest

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHarness proves the harness end to end: a static page served from Go
// is opened in headless Chromium, computes values in the browser and hands
// them back as JSON.
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	base := Serve(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	raw, err := RunPage(t, ctx, base+"/harness.html", PageOptions{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := Decode[struct {
		IsSecureContext      bool           `json:"isSecureContext"`
		WebTransport         string         `json:"webTransport"`
		WebTransportProtocol bool           `json:"webTransportProtocol"`
		VideoDecoder         string         `json:"videoDecoder"`
		Sum                  int            `json:"sum"`
		Codecs               map[string]any `json:"codecs"`
		HLSSupported         bool           `json:"hlsSupported"`
		MoqWatchDefined      bool           `json:"moqWatchDefined"`
	}](t, raw)
	if res.Sum != 42 {
		t.Errorf("sum computed in the browser = %d, want 42", res.Sum)
	}
	if !res.IsSecureContext {
		t.Error("http://127.0.0.1 page is not a secure context")
	}
	if res.WebTransport != "function" || res.VideoDecoder != "function" {
		t.Errorf("typeof WebTransport = %q, typeof VideoDecoder = %q", res.WebTransport, res.VideoDecoder)
	}
	if !res.WebTransportProtocol {
		t.Error("WebTransport.prototype.protocol missing: @moq/net would always fall back to draft-14 setup")
	}
	if res.Codecs["avc1.42e01f"] != true {
		t.Errorf("H.264 decode unsupported: %v", res.Codecs)
	}
	if !res.HLSSupported || !res.MoqWatchDefined {
		t.Errorf("bundles: hls.js supported %v, moq-watch defined %v", res.HLSSupported, res.MoqWatchDefined)
	}
}

// TestServe checks the static server without a browser: web/dist files, the
// extra files laid over them, and the content types a browser needs.
func TestServe(t *testing.T) {
	base := Serve(t, map[string]string{"/extra.html": "<p>extra</p>", "/dist-override.js": "export {}"})
	for path, want := range map[string]string{
		"/extra.html":       "text/html",
		"/dist-override.js": "text/javascript",
		"/moqwatch.js":      "text/javascript",
		"/watch.html":       "text/html",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
	resp, err := http.Get(base + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("favicon: %d", resp.StatusCode)
	}
}

func TestRunPageErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	base := Serve(t, map[string]string{
		"/fail.html":  `<!doctype html><script>window.__error = "boom";</script>`,
		"/never.html": `<!doctype html><script>window.__progress = {step: "waiting"};</script>`,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := RunPage(t, ctx, base+"/fail.html", PageOptions{Timeout: 20 * time.Second}); err == nil {
		t.Error("page setting window.__error: no error")
	}
	shot := filepath.Join(t.TempDir(), "never.png")
	_, err := RunPage(t, ctx, base+"/never.html", PageOptions{Timeout: 2 * time.Second, Screenshot: shot})
	if err == nil {
		t.Fatal("page never setting __result: no error")
	}
	t.Logf("timeout error: %v", err)
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Errorf("screenshot not written: %v", err)
	}
}

func TestRunContextCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	base := Serve(t, map[string]string{"/never.html": `<!doctype html><p>never done</p>`})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := RunPage(t, ctx, base+"/never.html", PageOptions{Timeout: time.Minute})
	if err == nil {
		t.Fatal("no error after context end")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v to stop after the context ended", d)
	}
}

func TestRequirePeerUnknownProgram(t *testing.T) {
	if err := CheckPeer("definitely-not-a-program-xyz"); err == nil {
		t.Error("CheckPeer found a missing program")
	}
	if err := CheckPeer(PeerNode); err != nil {
		t.Logf("node: %v", err)
	}
}
