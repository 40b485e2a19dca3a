package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/internal/rtctest"
)

// tokenExpiry reads the exp claim of a JWT (no verification).
func tokenExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Exp == 0 {
		t.Fatalf("no exp in %s: %v", b, err)
	}
	return time.Unix(c.Exp, 0)
}

// webOffer makes a real pion offer: sending H.264 and Opus (WHIP) or
// receiving them (WHEP), with its candidates.
func webOffer(t *testing.T, ctx context.Context, send bool) string {
	t.Helper()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, c := range []webrtc.RTPCodecCapability{
		{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	} {
		if send {
			tr, err := webrtc.NewTrackLocalStaticSample(c, strings.Split(c.MimeType, "/")[0], "auth")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pc.AddTrack(tr); err != nil {
				t.Fatal(err)
			}
			continue
		}
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		t.Fatal("ICE gathering did not complete")
	}
	return pc.LocalDescription().SDP
}

// badToken is a token some request must be refused with.
type badToken struct {
	name, token string
	status      int
}

// badTokens are the tokens refused for action ("pub" or "sub") on live/...:
// 401 without a usable token, 403 with a valid one that does not grant it.
func badTokens(t *testing.T, secret, other, action string) []badToken {
	wrong := "--sub"
	if action == "sub" {
		wrong = "--pub"
	}
	return []badToken{
		{"no token", "", http.StatusUnauthorized},
		{"wrong signature", mint(t, other, "--"+action, "live/"), http.StatusUnauthorized},
		{"expired", mint(t, secret, "--"+action, "live/", "--ttl", "-1m"), http.StatusUnauthorized},
		{"garbage", "not.a.jwt", http.StatusUnauthorized},
		{"wrong prefix", mint(t, secret, "--"+action, "other/"), http.StatusForbidden},
		{"lookalike prefix", mint(t, secret, "--"+action, "liv"), http.StatusForbidden},
		{strings.TrimPrefix(wrong, "--") + " only", mint(t, secret, wrong, ""), http.StatusForbidden},
	}
}

// TestAuthWeb: with JWT auth on, WHIP, WHEP and LL-HLS against a real
// moqgate process. Every bad token is refused with 401 (no usable token)
// or 403 (not granted), the same for a live broadcast and a missing one;
// valid tokens publish and play real media (pion peers, HTTP fetches);
// tokens that expire end WHIP and WHEP sessions and LL-HLS access.
func TestAuthWeb(t *testing.T) {
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	secret := writeSecret(t, "0123456789abcdef0123456789abcdef")
	other := writeSecret(t, "ffffffffffffffffffffffffffffffff")
	video, audio := pionMedia(t, rtctest.EncodeOptions{Width: 320, Height: 180, Seconds: 2})
	g := startGate(t, "", "--jwt-secret-file", secret)
	publish := func(path, token string) (*rtctest.Publisher, error) {
		return rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.Web + "/whip/" + path, Token: token,
			Video: video, Audio: audio, Loop: true})
	}
	const live, missing = "live/web", "live/missing"
	hasBroadcast := func(path string) bool {
		for _, b := range g.broadcasts(t) {
			if b["path"] == path {
				return true
			}
		}
		return false
	}

	// The source of the WHEP and LL-HLS tests: a pion WHIP publisher.
	var src *rtctest.Publisher
	defer func() {
		if src != nil {
			src.Close()
		}
	}()
	t.Run("WHIP", func(t *testing.T) {
		offer := webOffer(t, ctx, true)
		refusal := map[string]string{} // by token name: the answer for a missing broadcast
		for _, bt := range badTokens(t, secret, other, "pub") {
			for _, path := range []string{live, missing} {
				status, _, body, err := rtctest.Do(ctx, http.MethodPost, g.Web+"/whip/"+path, bt.token, "application/sdp", offer, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("WHIP %s, %s: %d %s", path, bt.name, status, strings.TrimSpace(body))
				if status != bt.status {
					t.Errorf("WHIP %s with %s: %d %q, want %d", path, bt.name, status, body, bt.status)
				}
				refusal[bt.name] = body
			}
			// The token is checked before the offer is read.
			status, _, _, err := rtctest.Do(ctx, http.MethodPost, g.Web+"/whip/"+live, bt.token, "application/sdp", "not SDP", nil)
			if err != nil || status != bt.status {
				t.Errorf("WHIP with %s and no SDP: %d %v, want %d", bt.name, status, err, bt.status)
			}
			// A real peer gets the same refusal.
			if _, err := publish(live, bt.token); !isStatus(err, bt.status) {
				t.Errorf("pion WHIP publisher with %s: %v, want HTTP %d", bt.name, err, bt.status)
			}
		}
		if len(g.broadcasts(t)) != 0 {
			t.Fatalf("refused WHIP publishers made broadcasts: %v", g.broadcasts(t))
		}
		// A valid publish token.
		var err error
		src, err = publish(live, mint(t, secret, "--pub", "live"))
		if err != nil {
			t.Fatalf("WHIP with a valid token: %v", err)
		}
		g.waitBroadcast(t, ctx, live)
		waitFor(t, ctx, "the WHIP broadcast's tracks", func() bool {
			for _, b := range g.broadcasts(t) {
				if tr, _ := b["tracks"].([]any); b["path"] == live && len(tr) >= 2 {
					return true
				}
			}
			return false
		})
		// Now that live/web exists, the refusals are still the same as for
		// a missing broadcast (a valid token would get 409).
		for _, bt := range badTokens(t, secret, other, "pub") {
			status, _, body, err := rtctest.Do(ctx, http.MethodPost, g.Web+"/whip/"+live, bt.token, "application/sdp", offer, nil)
			if err != nil || status != bt.status || body != refusal[bt.name] {
				t.Errorf("WHIP %s with %s while live: %d %q %v, want %d %q", live, bt.name, status, body, err, bt.status, refusal[bt.name])
			}
		}
		status, _, body, err := rtctest.Do(ctx, http.MethodPost, g.Web+"/whip/"+live, mint(t, secret, "--pub", "live/"), "application/sdp", offer, nil)
		if err != nil || status != http.StatusConflict {
			t.Errorf("second WHIP publisher of %s with a valid token: %d %q %v, want 409", live, status, body, err)
		}
		if src.Sent.Load() == 0 {
			t.Errorf("the WHIP publisher sent nothing")
		}
	})
	if src == nil {
		t.Fatal("no WHIP source")
	}

	t.Run("WHEP", func(t *testing.T) {
		offer := webOffer(t, ctx, false)
		for _, bt := range badTokens(t, secret, other, "sub") {
			var answers []string
			for _, path := range []string{live, missing} {
				status, _, body, err := rtctest.Do(ctx, http.MethodPost, g.Web+"/whep/"+path, bt.token, "application/sdp", offer, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("WHEP %s, %s: %d %s", path, bt.name, status, strings.TrimSpace(body))
				if status != bt.status {
					t.Errorf("WHEP %s with %s: %d %q, want %d", path, bt.name, status, body, bt.status)
				}
				answers = append(answers, body)
			}
			if answers[0] != answers[1] {
				t.Errorf("WHEP with %s: the refusal tells a live broadcast (%q) from a missing one (%q)", bt.name, answers[0], answers[1])
			}
			v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/" + live, Token: bt.token})
			if !isStatus(err, bt.status) {
				if v != nil {
					v.Close()
				}
				t.Errorf("pion WHEP viewer with %s: %v, want HTTP %d", bt.name, err, bt.status)
			}
		}
		// A valid subscribe token plays.
		tok := mint(t, secret, "--sub", "live/")
		v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/" + live, Token: tok})
		if err != nil {
			t.Fatalf("WHEP with a valid token: %v", err)
		}
		defer v.PC.Close()
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		waitFor(t, wctx, "WHEP media", func() bool {
			st := v.Stats()
			return st["video"].Keyframes >= 1 && st["video"].Frames >= 30 && st["audio"].Frames >= 50
		})
		st := v.Stats()
		t.Logf("WHEP viewer: video %s %d frames (%d key), audio %s %d packets",
			st["video"].Codec, st["video"].Frames, st["video"].Keyframes, st["audio"].Codec, st["audio"].Frames)
		// Ending the session takes its token.
		for name, tok := range map[string]string{"no token": "", "another token": mint(t, secret, "--sub", "")} {
			status, _, _, err := rtctest.Do(ctx, http.MethodDelete, v.Resource, tok, "", "", nil)
			if err != nil || status != http.StatusUnauthorized {
				t.Errorf("DELETE of a WHEP session with %s: %d %v, want 401", name, status, err)
			}
		}
		if err := v.Close(); err != nil {
			t.Errorf("WHEP DELETE: %v", err)
		}
		// A valid token for a broadcast that does not exist is told so.
		status, _, _, err := rtctest.Do(ctx, http.MethodPost, g.Web+"/whep/"+missing, tok, "application/sdp", offer, nil)
		if err != nil || status != http.StatusNotFound {
			t.Errorf("WHEP %s with a valid token: %d %v, want 404", missing, status, err)
		}
	})

	t.Run("LL-HLS", func(t *testing.T) {
		get := func(u string) httpResult { return httpDo(t, http.MethodGet, u, nil) }
		withJWT := func(u, tok string) string {
			if tok == "" {
				return u
			}
			return u + "?jwt=" + url.QueryEscape(tok)
		}
		for _, bt := range badTokens(t, secret, other, "sub") {
			var answers []httpResult
			for _, path := range []string{live, missing} {
				r := get(withJWT(g.Web+"/hls/"+path+"/index.m3u8", bt.token))
				t.Logf("LL-HLS %s, %s: %d %s", path, bt.name, r.code, strings.TrimSpace(r.body))
				answers = append(answers, r)
			}
			// 403 for every refusal: HTTP clients (players) do not answer a
			// 401 challenge, and the token is in the URL.
			for i, r := range answers {
				if r.code != http.StatusForbidden {
					t.Errorf("LL-HLS %s with %s: %d %q, want 403", []string{live, missing}[i], bt.name, r.code, r.body)
				}
			}
			if answers[0].code != answers[1].code || answers[0].body != answers[1].body {
				t.Errorf("LL-HLS with %s: the refusal tells a live broadcast (%d %q) from a missing one (%d %q)",
					bt.name, answers[0].code, answers[0].body, answers[1].code, answers[1].body)
			}
		}
		tok := mint(t, secret, "--sub", "live/web")
		base := g.Web + "/hls/" + live + "/"
		mv := get(withJWT(base+"index.m3u8", tok))
		if mv.code != http.StatusOK {
			t.Fatalf("LL-HLS index.m3u8 with a valid token: %d %s", mv.code, mv.body)
		}
		esc := "jwt=" + url.QueryEscape(tok)
		var media []string
		for _, l := range strings.Split(mv.body, "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				media = append(media, l)
			}
		}
		for _, m := range regexp.MustCompile(`URI="([^"]+)"`).FindAllStringSubmatch(mv.body, -1) {
			media = append(media, m[1])
		}
		if len(media) == 0 {
			t.Fatalf("no media playlist in\n%s", mv.body)
		}
		for _, m := range media {
			if !strings.Contains(m, esc) {
				t.Errorf("media playlist URI %q does not carry the token", m)
			}
		}
		fetched := 0
		for _, m := range media {
			r := get(base + m)
			if r.code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", m, r.code, r.body)
			}
			pl := parseMediaPlaylist(t, r.body)
			if len(pl.uris) == 0 {
				t.Fatalf("media playlist %s names nothing:\n%s", m, r.body)
			}
			named := slices.Clone(pl.uris)
			for _, h := range regexp.MustCompile(`#EXT-X-(?:PRELOAD-HINT|RENDITION-REPORT):.*URI="([^"]+)"`).FindAllStringSubmatch(r.body, -1) {
				named = append(named, h[1])
			}
			for _, u := range named {
				if !strings.Contains(u, esc) {
					t.Errorf("%s: URI %q does not carry the token", m, u)
				}
			}
			var part string
			// The init segment, the first segment and the newest part.
			for _, u := range []string{pl.uris[0], pl.uris[1], pl.uris[len(pl.uris)-1]} {
				if !strings.HasSuffix(strings.SplitN(u, "?", 2)[0], ".mp4") {
					continue
				}
				f := get(base + u)
				if f.code != http.StatusOK || len(f.body) == 0 {
					t.Errorf("GET %s: %d (%d bytes)", u, f.code, len(f.body))
				}
				fetched++
				part = u
			}
			if part == "" {
				t.Fatalf("%s: no file to fetch in %v", m, pl.uris)
			}
			// Without the token, or with another one, the same file is refused.
			bare := base + strings.SplitN(part, "?", 2)[0]
			for name, u := range map[string]string{
				"no token":     bare,
				"wrong prefix": withJWT(bare, mint(t, secret, "--sub", "other/")),
				"publish only": withJWT(bare, mint(t, secret, "--pub", "")),
			} {
				if r := get(u); r.code != http.StatusForbidden {
					t.Errorf("GET %s with %s: %d, want 403", part, name, r.code)
				}
			}
			if r := get(base + strings.SplitN(m, "?", 2)[0]); r.code != http.StatusForbidden {
				t.Errorf("GET %s without the token: %d, want 403", m, r.code)
			}
		}
		t.Logf("LL-HLS: %d media playlists, %d files fetched with the token", len(media), fetched)

		// The publisher reconnects with other tracks (video alone): the
		// playlist then lists the earlier muxer's segments, with their own
		// EXT-X-MAP, before a discontinuity; those URIs carry the token too.
		var videoPL string
		for _, m := range media {
			if strings.HasPrefix(m, "video") {
				videoPL = m
			}
		}
		if videoPL == "" {
			t.Fatalf("no video playlist in %v", media)
		}
		src.Close()
		var err error
		src, err = rtctest.Publish(ctx, rtctest.PublishOptions{Endpoint: g.Web + "/whip/" + live,
			Token: mint(t, secret, "--pub", "live/"), Video: video, Loop: true})
		if err != nil {
			t.Fatalf("WHIP reconnect: %v", err)
		}
		var r httpResult
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		waitFor(t, wctx, "a discontinuity in "+videoPL, func() bool {
			r = get(base + videoPL)
			return r.code == http.StatusOK && strings.Contains(r.body, "#EXT-X-DISCONTINUITY\n")
		})
		var uris []string
		for _, l := range strings.Split(r.body, "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				uris = append(uris, l)
			}
		}
		for _, m := range regexp.MustCompile(`URI="([^"]+)"`).FindAllStringSubmatch(r.body, -1) {
			uris = append(uris, m[1])
		}
		maps := 0
		for _, u := range uris {
			if !strings.Contains(u, esc) && u != "gap.mp4" {
				t.Errorf("after the reconnect, URI %q does not carry the token", u)
			}
			if strings.HasSuffix(strings.SplitN(u, "?", 2)[0], "_init.mp4") {
				maps++
				if f := get(base + u); f.code != http.StatusOK {
					t.Errorf("GET %s: %d", u, f.code)
				}
			}
		}
		t.Logf("LL-HLS after the reconnect: %d URIs, %d init segments", len(uris), maps)
		if maps < 2 {
			t.Errorf("after the reconnect: %d init segments named, want the earlier one and the new one:\n%s", maps, r.body)
		}
		// The earliest segment listed is the earlier muxer's.
		if pl := parseMediaPlaylist(t, r.body); len(pl.uris) > 1 {
			if f := get(base + pl.uris[1]); f.code != http.StatusOK {
				t.Errorf("GET %s: %d", pl.uris[1], f.code)
			}
		}
	})

	t.Run("expiry", func(t *testing.T) {
		// Tokens that expire in 5 to 6 s (exp is in whole seconds). The
		// three run at once (goroutines: -parallel is GOMAXPROCS, 2 here).
		pubTok := mint(t, secret, "--pub", "live/exp", "--ttl", "6s")
		whepTok := mint(t, secret, "--sub", live, "--ttl", "6s")
		hlsTok := mint(t, secret, "--sub", live, "--ttl", "6s")
		exp := tokenExpiry(t, pubTok)
		// Waits end 10 s after the expiry at the latest.
		ctx, cancel := context.WithDeadline(ctx, exp.Add(10*time.Second))
		defer cancel()
		var wg sync.WaitGroup
		run := func(name string, f func(t *testing.T)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.Run(name, f)
			}()
		}
		run("WHIP", func(t *testing.T) {
			pub, err := publish("live/exp", pubTok)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			g.waitBroadcast(t, ctx, "live/exp")
			waitUntil(t, ctx, exp.Add(-time.Second))
			if st := pub.PC.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
				t.Fatalf("the WHIP publisher is %s %s before its token expires", st, time.Until(exp))
			}
			sent := pub.Sent.Load()
			waitFor(t, ctx, "the WHIP peer connection to end", func() bool {
				return pub.PC.ConnectionState() != webrtc.PeerConnectionStateConnected
			})
			ended := time.Since(exp)
			t.Logf("WHIP publisher: %s %s after exp (%d frames sent in its last second)",
				pub.PC.ConnectionState(), ended.Round(time.Millisecond), pub.Sent.Load()-sent)
			if ended < 0 || ended > 2*time.Second {
				t.Errorf("the WHIP session ended %s after its token expired", ended)
			}
			// The session is gone, and so is the broadcast (after the
			// publisher's grace period).
			status, _, body, err := rtctest.Do(ctx, http.MethodDelete, pub.Resource, pubTok, "", "", nil)
			if err != nil || status != http.StatusNotFound {
				t.Errorf("DELETE of the expired WHIP session: %d %q %v, want 404", status, body, err)
			}
			if !g.logs.contains("WHIP token expired; closing the session") {
				t.Errorf("no log line for the WHIP session's expiry")
			}
		})
		run("WHEP", func(t *testing.T) {
			v, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/" + live, Token: whepTok})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			waitUntil(t, ctx, exp.Add(-time.Second))
			before := v.Stats()["video"]
			if before.Frames < 30 || time.Since(before.Last) > 500*time.Millisecond {
				t.Fatalf("WHEP viewer before expiry: %d frames, last %s ago", before.Frames, time.Since(before.Last))
			}
			var last time.Time
			waitFor(t, ctx, "WHEP media to stop", func() bool {
				last = v.Stats()["video"].Last
				return time.Since(last) > time.Second
			})
			t.Logf("WHEP: media stopped %s after exp", last.Sub(exp).Round(time.Millisecond))
			if d := last.Sub(exp); d > time.Second || d < -100*time.Millisecond {
				t.Errorf("WHEP media stopped %s after the token expired", d)
			}
			waitFor(t, ctx, "the WHEP peer connection to end", func() bool {
				return v.PC.ConnectionState() != webrtc.PeerConnectionStateConnected
			})
			t.Logf("WHEP viewer: %s %s after exp", v.PC.ConnectionState(), time.Since(exp).Round(time.Millisecond))
			if d := time.Since(exp); d > 2*time.Second {
				t.Errorf("the WHEP peer connection ended %s after the token expired", d)
			}
			status, _, body, err := rtctest.Do(ctx, http.MethodDelete, v.Resource, whepTok, "", "", nil)
			if err != nil || status != http.StatusNotFound {
				t.Errorf("DELETE of the expired WHEP session: %d %q %v, want 404", status, body, err)
			}
			if !g.logs.contains("WHEP token expired; closing the session") {
				t.Errorf("no log line for the WHEP session's expiry")
			}
			// A new session with the expired token is refused.
			if _, err := rtctest.View(ctx, rtctest.ViewOptions{Endpoint: g.Web + "/whep/" + live, Token: whepTok}); !isStatus(err, http.StatusUnauthorized) {
				t.Errorf("WHEP with the expired token: %v, want HTTP 401", err)
			}
		})
		run("LL-HLS", func(t *testing.T) {
			u := g.Web + "/hls/" + live + "/index.m3u8?jwt=" + url.QueryEscape(hlsTok)
			var lastOK time.Time
			for {
				r := httpDo(t, http.MethodGet, u, nil)
				now := time.Now()
				if r.code == http.StatusOK {
					lastOK = now
				} else {
					t.Logf("LL-HLS: %d %s after exp (last 200 %s after)", r.code, now.Sub(exp).Round(time.Millisecond),
						lastOK.Sub(exp).Round(time.Millisecond))
					if r.code != http.StatusForbidden {
						t.Errorf("LL-HLS with an expired token: %d %q, want 403", r.code, r.body)
					}
					if now.Before(exp) {
						t.Errorf("LL-HLS refused %s before the token expired", exp.Sub(now))
					}
					break
				}
				if now.After(exp.Add(time.Second)) {
					t.Fatalf("LL-HLS still serves %s after the token expired", now.Sub(exp))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if lastOK.IsZero() {
				t.Errorf("LL-HLS never served the expiring token")
			}
		})
		wg.Wait()
	})

	// The refusals and expiries left the source alone.
	if !hasBroadcast(live) {
		t.Errorf("the WHIP source's broadcast ended")
	}
	for _, l := range []string{"panic", "goroutine "} {
		if g.logs.contains(l) {
			t.Errorf("log mentions %q", l)
		}
	}
}

// isStatus reports whether err is an HTTP refusal with status.
func isStatus(err error, status int) bool {
	var he *rtctest.HTTPError
	return errors.As(err, &he) && he.Status == status
}

// waitFor polls cond every 50 ms until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitUntil sleeps until at.
func waitUntil(t *testing.T, ctx context.Context, at time.Time) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(time.Until(at)):
	}
}
