package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHarness proves the harness end to end: a static page served from Go
// is opened in headless Chromium, computes values in the browser and hands
// them back as JSON.
func TestHarness(t *testing.T) {
	base := Serve(t, map[string]string{
		"/extra.html": `<!doctype html><script>window.__result = {fromPage: 6 * 7, path: location.pathname};</script>`,
	})
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

	raw, err = RunPage(t, ctx, base+"/extra.html", PageOptions{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	extra := Decode[map[string]any](t, raw)
	if extra["fromPage"] != float64(42) || extra["path"] != "/extra.html" {
		t.Errorf("extra page result %v", extra)
	}
}

func TestRunPageErrors(t *testing.T) {
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
