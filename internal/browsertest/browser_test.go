package browsertest

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowser drives two pages in one Chromium: values computed in the
// page come back, Wait sees a change the page makes later, an init script
// runs before the page's own, and errors are reported.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	base := ServeHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>t</title><p id="p">start</p><script>
			window.early = window.hidden === undefined ? "init did not run" : window.hidden;
			setTimeout(() => { document.getElementById("p").textContent = "later"; }, 700);
		</script>`)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := Launch(t)

	a, err := b.Open(ctx, "a", base+"/", OpenOptions{Width: 400, Height: 300})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Open(ctx, "c", base+"/", OpenOptions{Init: `window.hidden = "seen";`})
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := a.Eval(ctx, `Promise.resolve(40 + 2)`, &sum); err != nil || sum != 42 {
		t.Errorf("Eval = %d, %v; want 42", sum, err)
	}
	var text string
	if err := a.Wait(ctx, `document.getElementById("p").textContent === "later" && "changed"`, 10*time.Second, &text); err != nil || text != "changed" {
		t.Errorf("Wait = %q, %v", text, err)
	}
	var early, width string
	if err := c.Eval(ctx, `window.early`, &early); err != nil || early != "seen" {
		t.Errorf("init script: page saw %q, %v", early, err)
	}
	if err := a.Eval(ctx, `String(innerWidth)`, &width); err != nil || width != "400" {
		t.Errorf("viewport width %q, %v; want 400", width, err)
	}
	shot := filepath.Join(t.TempDir(), "a.png")
	if err := a.Screenshot(ctx, shot); err != nil {
		t.Fatal(err)
	}
	if png, err := os.ReadFile(shot); err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf("screenshot is not a PNG: %v", err)
	}

	if err := a.Eval(ctx, `no_such_name`, nil); err == nil || !strings.Contains(err.Error(), "no_such_name") {
		t.Errorf("Eval of an undefined name: %v", err)
	}
	if err := a.Wait(ctx, `false`, 300*time.Millisecond, nil); err == nil {
		t.Error("Wait for a condition that never holds succeeded")
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Eval(ctx, `1`, nil); err == nil {
		t.Error("Eval on a closed page succeeded")
	}
	if _, err := b.Open(ctx, "c", base+"/", OpenOptions{}); err == nil {
		t.Error("a second page named c opened")
	}
}
