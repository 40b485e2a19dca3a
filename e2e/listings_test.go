package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// getWith fetches path from the gate with token as a bearer token ("" for
// none) and returns the status and body.
func getWith(t *testing.T, g *gate, path, token string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", g.Web+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(b), resp.Header
}

// listedFor returns the paths /api/broadcasts shows to token.
func listedFor(t *testing.T, g *gate, token string) []string {
	t.Helper()
	st, body, _ := getWith(t, g, "/api/broadcasts?jwt="+token, "")
	if st != http.StatusOK {
		t.Fatalf("/api/broadcasts: %d %s", st, body)
	}
	var v struct {
		Broadcasts []struct {
			Path string `json:"path"`
		} `json:"broadcasts"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range v.Broadcasts {
		out = append(out, b.Path)
	}
	return out
}

// refusals reads moqgate_auth_refusals_total{protocol=proto} from a
// /metrics body.
func refusals(body, proto string) int {
	m := regexp.MustCompile(`moqgate_auth_refusals_total\{protocol="` + proto + `"\} (\d+)`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestAuthListings: with auth on, /api/broadcasts shows only what the
// caller's token may subscribe to (401 without a valid token), one
// broadcast outside the token's grant is a 404 like a missing one, and
// /metrics and /api/forward need a token with the admin claim; every
// refusal, LL-HLS's included, is counted in auth_refusals_total.
func TestAuthListings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	secret := writeSecret(t, "0123456789abcdef0123456789abcdef")
	g := startGate(t, "", "--jwt-secret-file", secret)
	pub := mint(t, secret, "--pub", "")
	for _, p := range []string{"live/a", "other/b"} {
		ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-t", "60",
			"-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "15", "-f", "flv", g.RTMP+"/"+p+"?jwt="+pub)
		g.waitBroadcast(t, ctx, p)
	}
	live, all := mint(t, secret, "--sub", "live/"), mint(t, secret, "--sub", "")
	admin := mint(t, secret, "--admin")
	if got := listedFor(t, g, live); strings.Join(got, ",") != "live/a" {
		t.Errorf("a live/ token lists %v, want [live/a]", got)
	}
	if got := listedFor(t, g, all); len(got) != 2 {
		t.Errorf("a token for every path lists %v, want both", got)
	}
	if got := listedFor(t, g, admin); len(got) != 0 {
		t.Errorf("an admin token without subscribe grants lists %v, want none", got)
	}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/api/broadcasts", "", http.StatusUnauthorized},
		{"/api/broadcasts", live + "x", http.StatusUnauthorized},
		{"/api/broadcasts/live/a", "", http.StatusUnauthorized},
		{"/api/broadcasts/live/a", live, http.StatusOK},
		{"/api/broadcasts/other/b", live, http.StatusNotFound},
		{"/api/broadcasts/other/b", all, http.StatusOK},
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", all, http.StatusForbidden},
		{"/api/forward", "", http.StatusUnauthorized},
		{"/api/forward", all, http.StatusForbidden},
		{"/api/forward", admin, http.StatusOK},
		{"/hls/other/b/index.m3u8", live, http.StatusForbidden},
		{"/hls/live/a/index.m3u8?jwt=" + mint(t, secret, "--sub", "other/"), "", http.StatusForbidden},
		{"/healthz", "", http.StatusOK},
	} {
		st, _, h := getWith(t, g, c.path, c.token)
		if st != c.want {
			t.Errorf("GET %s (token %v): %d, want %d", c.path, c.token != "", st, c.want)
		}
		if st == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET %s: 401 without WWW-Authenticate: Bearer", c.path)
		}
	}
	st, body, _ := getWith(t, g, "/metrics", admin)
	if st != http.StatusOK {
		t.Fatalf("/metrics with an admin token: %d", st)
	}
	// The table's refusals: a hidden broadcast (404) is not one.
	for proto, want := range map[string]int{"api": 5, "metrics": 2, "hls": 2} {
		if got := refusals(body, proto); got != want {
			t.Errorf("auth_refusals_total{protocol=%q} = %d, want %d", proto, got, want)
		}
	}
}
