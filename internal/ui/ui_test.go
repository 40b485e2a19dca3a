package ui

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moqgate/moqgate/internal/auth"
)

func serve(t *testing.T, a *auth.Authorizer) *httptest.Server {
	t.Helper()
	h, err := New(Config{Auth: func() *auth.Authorizer { return a }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var configRE = regexp.MustCompile(`<script id="config" type="application/json">(.*?)</script>`)

// pageConfigOf returns the JSON configuration the server put in a page.
func pageConfigOf(t *testing.T, body string) pageConfig {
	t.Helper()
	m := configRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no config script in %.200q", body)
	}
	var c pageConfig
	if err := json.Unmarshal([]byte(m[1]), &c); err != nil {
		t.Fatalf("config %q: %v", m[1], err)
	}
	return c
}

func TestPages(t *testing.T) {
	srv := serve(t, nil)
	for _, tc := range []struct {
		path, page, broadcast string
	}{
		{"/", "index", ""},
		{"/watch/live/test", "watch", "live/test"},
		{"/watch/live/test/", "watch", "live/test"},
		{"/publish/a/b/c", "publish", "a/b/c"},
		// Escaped so it cannot end the config script.
		{"/watch/x%3C%2Fscript%3E%3Cb%3E", "watch", "x</script><b>"},
	} {
		resp, body := get(t, srv.URL+tc.path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"))
			continue
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		if strings.Contains(body, "</script><b>") {
			t.Errorf("GET %s: the broadcast name reached the HTML unescaped", tc.path)
		}
		c := pageConfigOf(t, body)
		if c.Page != tc.page || c.Broadcast != tc.broadcast || c.Auth {
			t.Errorf("GET %s: config %+v, want page %s broadcast %q, auth off", tc.path, c, tc.page, tc.broadcast)
		}
		if tc.page == "watch" && c.Token != TokenOff {
			t.Errorf("GET %s: token state %q, want %q", tc.path, c.Token, TokenOff)
		}
	}
	if resp, _ := get(t, srv.URL+"/watch/"); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/" {
		t.Errorf("GET /watch/: %d to %q, want a redirect to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, srv.URL+"/watch/"+strings.Repeat("a", maxPathLen+1)); resp.StatusCode != http.StatusRequestURITooLong {
		t.Errorf("oversized broadcast path: %d", resp.StatusCode)
	}
}

// TestAssets: everything the pages reference is served from the binary,
// and nothing is loaded from another origin.
func TestAssets(t *testing.T) {
	srv := serve(t, nil)
	refRE := regexp.MustCompile(`(?:src|href)="([^"]+)"|from "([^"]+)"|import\("([^"]+)"\)`)
	for _, name := range []string{"layout.html", "index.html", "watch.html", "publish.html", "common.js", "index.js", "watch.js", "publish.js"} {
		b, err := fs.ReadFile(embedded, "assets/"+name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range refRE.FindAllStringSubmatch(string(b), -1) {
			ref := m[1] + m[2] + m[3]
			if strings.Contains(ref, "://") || strings.HasPrefix(ref, "//") {
				t.Errorf("%s loads %s from outside the server", name, ref)
				continue
			}
			if !strings.HasPrefix(ref, AssetPrefix) {
				continue // page links such as "/" or "/metrics"
			}
			resp, body := get(t, srv.URL+ref)
			if resp.StatusCode != 200 || len(body) == 0 {
				t.Errorf("%s references %s: %d", name, ref, resp.StatusCode)
			}
		}
	}
	for _, ref := range []string{"vendor/moqwatch.js", "vendor/hls.js"} {
		resp, _ := get(t, srv.URL+AssetPrefix+ref)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.Contains(ct, "javascript") {
			t.Errorf("%s: %d %s", ref, resp.StatusCode, ct)
		}
	}
	for _, ref := range []string{"", "vendor/", "watch.html", "layout.html"} {
		if resp, _ := get(t, srv.URL+AssetPrefix+ref); resp.StatusCode != 404 {
			t.Errorf("%s%s: %d, want 404 (no listings, pages only at their routes)", AssetPrefix, ref, resp.StatusCode)
		}
	}
}

func TestWatchTokenState(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New("jwt", f)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key string, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	srv := serve(t, a)
	for _, tc := range []struct{ name, token, want string }{
		{"none", "", TokenMissing},
		{"good", sign(secret, jwt.MapClaims{"sub": []string{"live/"}}), TokenOK},
		{"other path", sign(secret, jwt.MapClaims{"sub": []string{"other/"}}), TokenForbidden},
		{"publish only", sign(secret, jwt.MapClaims{"pub": []string{""}}), TokenForbidden},
		{"wrong key", sign("ffffffffffffffffffffffffffffffff", jwt.MapClaims{"sub": ""}), TokenInvalid},
		{"garbage", "abc.def", TokenInvalid},
	} {
		_, body := get(t, srv.URL+"/watch/live/test?jwt="+tc.token)
		c := pageConfigOf(t, body)
		if c.Token != tc.want || !c.Auth {
			t.Errorf("%s: token state %q (auth %v), want %q", tc.name, c.Token, c.Auth, tc.want)
		}
		if tc.token != "" && strings.Contains(body, tc.token) {
			t.Errorf("%s: the page echoes the token", tc.name)
		}
	}
}
