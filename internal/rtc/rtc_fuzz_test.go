package rtc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Seed corpora live in testdata/fuzz/Fuzz*/ (regenerate with
// MOQGATE_GEN_FUZZ_CORPUS=1 go test ./internal/rtc -run TestGenerateFuzzCorpus).

// Offers as browsers and encoders send them: Chrome-like with simulcast,
// a WHEP recvonly offer, OBS-like H.264 + Opus, a data channel.
var seedOffers = map[string]string{
	"chrome-simulcast": chromeLikeOffer,
	"whep-recvonly": "v=0\r\no=- 5 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=ice-options:trickle\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 45 102 103\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n" +
		"a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef01234567\r\na=fingerprint:sha-256 00:11\r\na=setup:actpass\r\na=rtcp-mux\r\n" +
		"a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 ccm fir\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n" +
		"a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\na=rtpmap:99 VP9/90000\r\na=fmtp:99 profile-id=2\r\n" +
		"a=rtpmap:45 AV1/90000\r\na=fmtp:45 level-idx=5;profile=0;tier=0\r\n" +
		"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n" +
		"a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n" +
		"a=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n",
	"obs-h264-opus": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=sendonly\r\na=group:BUNDLE 0 1\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\na=rtpmap:111 opus/48000/2\r\n" +
		"m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtpmap:96 H264/90000\r\na=rtcp-fb:* nack\r\na=rtcp-fb:* nack pli\r\n" +
		"a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\na=candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host\r\na=end-of-candidates\r\n",
	"datachannel": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sctp-port:5000\r\n",
}

var seedFrags = map[string]string{
	"trickle": "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n" +
		"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n" +
		"m=video 9 RTP/AVP 0\r\na=mid:1\r\na=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host\r\na=end-of-candidates\r\n",
	"restart":         "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:new1\r\na=ice-pwd:newpasswordnewpassword12\r\n",
	"end-only":        "a=end-of-candidates\n",
	"bare-candidates": "a=candidate:1 1 tcp 1518280447 192.0.2.7 9 typ host tcptype active\na=candidate:2 1 udp 1 2001:db8::1 5 typ relay raddr 0.0.0.0 rport 0\n",
}

// FuzzParseOffer: any offer either fails with a 400 *Error or yields
// media sections whose size is linear in the offer's; CheckOffer agrees;
// the ICE restart helpers, which rewrite the remote SDP, keep their
// contracts.
func FuzzParseOffer(f *testing.F) {
	for _, o := range seedOffers {
		f.Add(o)
	}
	f.Add("v=0\r\n")
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP 96 96 96\r\na=rtcp-fb:* nack\r\na=rtcp-fb:* nack\r\n")
	f.Fuzz(func(t *testing.T, offer string) {
		media, err := ParseOffer(offer)
		cerr := CheckOffer(offer)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("ParseOffer error is not a 400 *Error: %v", err)
			}
			if cerr == nil {
				t.Fatalf("CheckOffer accepts what ParseOffer refuses: %v", err)
			}
		} else {
			if cerr == nil && len(media) == 0 {
				t.Fatal("CheckOffer accepts an offer without media sections")
			}
			checkOffered(t, offer, media)
		}
		checkRestartHelpers(t, offer)
	})
}

func checkOffered(t *testing.T, offer string, media []OfferedMedia) {
	t.Helper()
	if len(media) > strings.Count(offer, "m=") {
		t.Fatalf("%d media sections from %d m= lines", len(media), strings.Count(offer, "m="))
	}
	// Everything parsed comes from the text: the result may not be larger
	// than the offer (a few words per byte), whatever wildcards it uses.
	size := 0
	for _, m := range media {
		size += 1 + len(m.RIDs)
		if m.Sends() || m.Receives() {
			if m.Rejected || m.Direction == "inactive" {
				t.Fatalf("rejected or inactive section sends or receives: %+v", m)
			}
		}
		seen := map[uint8]bool{}
		for _, c := range m.Codecs {
			if seen[c.PT] {
				t.Fatalf("payload type %d listed twice", c.PT)
			}
			seen[c.PT] = true
			if c.Name == "" || c.Name != strings.ToLower(c.Name) {
				t.Fatalf("codec name %q", c.Name)
			}
			if len(c.Feedback) > maxFeedback {
				t.Fatalf("%d feedback entries for one codec", len(c.Feedback))
			}
			size += 1 + len(c.Feedback)
			_ = c.Param("packetization-mode")
			_ = c.Param("")
			p := c.Parameters(m.Kind)
			if !strings.HasPrefix(p.MimeType, m.Kind+"/") || uint8(p.PayloadType) != c.PT {
				t.Fatalf("parameters %+v of %+v", p, c)
			}
		}
	}
	if size > len(offer) {
		t.Fatalf("%d parsed items from a %d-byte offer", size, len(offer))
	}
	_ = DescribeCodecs(media)
}

func checkRestartHelpers(t *testing.T, sdp string) {
	t.Helper()
	lines := map[string]bool{}
	var hasUfrag, hasPwd bool // such lines, even with empty values
	for l := range strings.Lines(sdp) {
		l = strings.TrimSpace(l)
		lines[l] = true
		hasUfrag = hasUfrag || strings.HasPrefix(l, "a=ice-ufrag:")
		hasPwd = hasPwd || strings.HasPrefix(l, "a=ice-pwd:")
	}
	u0, p0 := iceCredentials(sdp)
	if u0 != "" && !lines["a=ice-ufrag:"+u0] || p0 != "" && !lines["a=ice-pwd:"+p0] {
		t.Fatalf("credentials %q/%q not from a line", u0, p0)
	}
	r := restartOffer(sdp, "fuzzufrag", "fuzzpasswordfuzzpassword")
	u1, p1 := iceCredentials(r)
	if hasUfrag != (u1 == "fuzzufrag") || hasPwd != (p1 == "fuzzpasswordfuzzpassword") {
		t.Fatalf("restart offer credentials %q/%q (were %q/%q)", u1, p1, u0, p0)
	}
	for l := range strings.Lines(r) {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "a=candidate:") || l == "a=end-of-candidates" {
			t.Fatalf("restart offer keeps %q", l)
		}
		if !lines[l] && !strings.HasPrefix(l, "a=ice-ufrag:") && !strings.HasPrefix(l, "a=ice-pwd:") {
			t.Fatalf("restart offer line %q not in the offer", l)
		}
	}
	frag := answerFrag(sdp)
	if !strings.HasSuffix(frag, "a=end-of-candidates\r\n") {
		t.Fatalf("answer fragment does not end with end-of-candidates: %q", frag)
	}
	for l := range strings.Lines(strings.TrimSuffix(frag, "a=end-of-candidates\r\n")) {
		if l = strings.TrimSpace(l); !lines[l] {
			t.Fatalf("answer fragment line %q not in the answer", l)
		}
	}
	if len(frag) > len(sdp)+len("a=end-of-candidates\r\n")+2*strings.Count(sdp, "\n")+2 {
		t.Fatalf("answer fragment of %d bytes from %d", len(frag), len(sdp))
	}
	_, _ = ParseSDPFrag(frag)
}

// FuzzSDPFrag: a trickle-ice-sdpfrag either fails or yields at most
// maxFragLines candidates, each well formed and placed in a media section
// of the body.
func FuzzSDPFrag(f *testing.F) {
	for _, s := range seedFrags {
		f.Add(s)
	}
	f.Add("")
	f.Add("a=candidate:\r\n")
	f.Add("m=\nm=\na=mid:x\na=candidate:1\nm=\na=candidate:2\n")
	f.Fuzz(func(t *testing.T, body string) {
		frag, err := ParseSDPFrag(body)
		if err != nil {
			if frag != nil {
				t.Fatal("fragment and error")
			}
			return
		}
		if len(frag.Candidates) > maxFragLines {
			t.Fatalf("%d candidates", len(frag.Candidates))
		}
		if strings.ContainsAny(frag.Ufrag+frag.Pwd, "\n") || !strings.Contains(body, frag.Ufrag) || !strings.Contains(body, frag.Pwd) {
			t.Fatalf("credentials %q/%q", frag.Ufrag, frag.Pwd)
		}
		if frag.EndOfCandidates && !strings.Contains(body, "a=end-of-candidates") {
			t.Fatal("end-of-candidates from nowhere")
		}
		mlines := strings.Count(body, "m=")
		for i, c := range frag.Candidates {
			v, ok := strings.CutPrefix(c.Candidate, "candidate:")
			if !ok || v == "" || strings.Contains(v, "\n") || !strings.Contains(body, v) {
				t.Fatalf("candidate %q", c.Candidate)
			}
			if c.SDPMLineIndex == nil || int(*c.SDPMLineIndex) > max(0, mlines-1) {
				t.Fatalf("candidate %d: m-line index %v of %d", i, c.SDPMLineIndex, mlines)
			}
			if c.SDPMid != nil && !strings.Contains(body, "a=mid") || c.SDPMid != nil && !strings.Contains(body, *c.SDPMid) {
				t.Fatalf("candidate %d: mid %q", i, *c.SDPMid)
			}
			if i > 0 && *c.SDPMLineIndex < *frag.Candidates[i-1].SDPMLineIndex {
				t.Fatal("m-line indexes go back")
			}
			if i > 0 && (c.SDPMid != nil && c.SDPMid == frag.Candidates[i-1].SDPMid || c.SDPMLineIndex == frag.Candidates[i-1].SDPMLineIndex) {
				t.Fatal("candidates share a pointer")
			}
		}
	})
}

// FuzzEndpoint sends arbitrary requests (method, path, query, headers,
// body) to an Endpoint whose sessions never get a peer connection (no
// sockets: Create parses the offer and answers without pion), after an
// optional valid POST whose resource the fuzzed request may target. Every
// response must carry CORS headers and a status the handler is meant to
// give; a PATCH that reaches the fragment parser gets 400 exactly when
// ParseSDPFrag refuses the body.
func FuzzEndpoint(f *testing.F) {
	offer := seedOffers["obs-h264-opus"]
	f.Add(uint8(0), "POST", "/whip/live", "", ContentTypeSDP, "Bearer tok", "", []byte(offer))
	f.Add(uint8(1), "PATCH", "", "", ContentTypeSDPFrag, "Bearer tok", "*", []byte(seedFrags["trickle"]))
	f.Add(uint8(1), "PATCH", "", "", ContentTypeSDPFrag, "bearer tok", "", []byte("a=candidate:\r\n"))
	f.Add(uint8(1), "PATCH", "", "jwt=tok", ContentTypeSDPFrag+"; charset=utf-8", "", "\"x\"", []byte("a=end-of-candidates\r\n"))
	f.Add(uint8(1), "DELETE", "", "", "", "Bearer tok", "", []byte{})
	f.Add(uint8(1), "DELETE", "", "", "", "Bearer nope", "", []byte{})
	f.Add(uint8(0), "OPTIONS", "/whip/x", "", "", "", "", []byte{})
	f.Add(uint8(0), "GET", "/elsewhere", "", "", "", "", []byte{})
	f.Add(uint8(0), "POST", "/whip/", "", ContentTypeSDP, "", "", []byte(offer))
	f.Add(uint8(0), "POST", "/whip/deny", "", "application/sdp; x=\"", "Bearer deny", "", []byte("v=0\r\n"))
	f.Add(uint8(0), "POST", "/whip/big", "", ContentTypeSDP, "", "", bytes.Repeat([]byte("a"), 5000))
	f.Fuzz(func(t *testing.T, mode uint8, method, path, query, ctype, auth, ifMatch string, body []byte) {
		ep := &Endpoint{Kind: "WHIP", Prefix: "/whip/", MaxBody: 4096,
			Authorize: func(r *http.Request, path, token string) (time.Time, error) {
				if token == "deny" {
					return time.Time{}, Errorf(http.StatusForbidden, "denied")
				}
				return time.Time{}, nil
			},
			Create: func(ctx context.Context, s *Session, offer string) (string, error) {
				media, err := ParseOffer(offer)
				if err != nil {
					return "", err
				}
				if !strings.Contains(offer, "a=mid:") {
					return "", Errorf(http.StatusNotAcceptable, "no codec (%s)", DescribeCodecs(media))
				}
				return "v=0\r\n", nil
			},
		}
		defer func() {
			ep.Close()
			if n := ep.Sessions(); n != 0 {
				t.Fatalf("%d sessions after Close", n)
			}
		}()
		var resource string
		if mode&1 != 0 {
			w := serve(ep, "POST", "/whip/live", "", ContentTypeSDP, "Bearer tok", "", []byte(offer))
			if w.Code != http.StatusCreated {
				t.Fatalf("seed POST: %d %s", w.Code, w.Body)
			}
			resource = w.Header().Get("Location")
			if path == "" {
				path = resource
			}
		}
		before := ep.Sessions()
		w := serve(ep, method, path, query, ctype, auth, ifMatch, body)
		if w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Fatal("no CORS header")
		}
		allowed := map[int]bool{200: true, 201: true, 204: true, 400: true, 401: true, 403: true, 404: true, 405: true,
			406: true, 409: true, 412: true, 413: true, 415: true}
		if !allowed[w.Code] {
			t.Fatalf("%s %q: status %d %s", method, path, w.Code, w.Body)
		}
		switch after := ep.Sessions(); {
		case w.Code == http.StatusCreated:
			if after != before+1 || !strings.HasPrefix(w.Header().Get("Location"), "/whip/") {
				t.Fatalf("201 with %d -> %d sessions, Location %q", before, after, w.Header().Get("Location"))
			}
		case method == http.MethodDelete && w.Code == http.StatusOK:
			if after != before-1 || path != resource {
				t.Fatalf("DELETE %q: %d -> %d sessions", path, before, after)
			}
		case after != before:
			t.Fatalf("%s %d: %d -> %d sessions", method, w.Code, before, after)
		}
		// A PATCH on the session with its token, the right type and a
		// matching If-Match reaches ParseSDPFrag; without a peer
		// connection a valid fragment gets 409.
		if method == http.MethodPatch && resource != "" && path == resource && len(body) <= 4096 &&
			w.Code != http.StatusUnauthorized && w.Code != http.StatusUnsupportedMediaType && w.Code != http.StatusPreconditionFailed {
			_, err := ParseSDPFrag(string(body))
			if (err != nil) != (w.Code == http.StatusBadRequest) || err == nil && w.Code != http.StatusConflict {
				t.Fatalf("PATCH: ParseSDPFrag %v, status %d %s", err, w.Code, w.Body)
			}
		}
	})
}

func serve(ep *Endpoint, method, path, query, ctype, auth, ifMatch string, body []byte) *httptest.ResponseRecorder {
	r := &http.Request{
		Method:     method,
		URL:        &url.URL{Path: path, RawQuery: query},
		Header:     http.Header{},
		Body:       io.NopCloser(bytes.NewReader(body)),
		RemoteAddr: "192.0.2.1:40000",
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
	for k, v := range map[string]string{"Content-Type": ctype, "Authorization": auth, "If-Match": ifMatch} {
		if v != "" {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	ep.ServeHTTP(w, r)
	return w
}

// ---------------------------------------------------------------------------
// Seed corpus generation (committed under testdata/fuzz/): run with
//
//	MOQGATE_GEN_FUZZ_CORPUS=1 go test ./internal/rtc -run TestGenerateFuzzCorpus

func TestGenerateFuzzCorpus(t *testing.T) {
	if os.Getenv("MOQGATE_GEN_FUZZ_CORPUS") == "" {
		t.Skip("set MOQGATE_GEN_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	for name, o := range seedOffers {
		writeCorpus(t, "FuzzParseOffer", name, "string(%q)", o)
	}
	// Found while writing FuzzParseOffer: every "a=rtcp-fb:*" line added
	// an entry to each payload type (a 1 MiB offer allocated over 1 GiB).
	var amp strings.Builder
	amp.WriteString("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP")
	for pt := 96; pt < 128; pt++ {
		fmt.Fprintf(&amp, " %d", pt)
	}
	amp.WriteString("\r\n")
	for pt := 96; pt < 128; pt++ {
		fmt.Fprintf(&amp, "a=rtpmap:%d H264/90000\r\n", pt)
	}
	for i := range 64 {
		fmt.Fprintf(&amp, "a=rtcp-fb:* x%d\r\n", i)
	}
	writeCorpus(t, "FuzzParseOffer", "rtcp-fb-wildcard-amplification", "string(%q)", amp.String())
	for name, s := range seedFrags {
		writeCorpus(t, "FuzzSDPFrag", name, "string(%q)", s)
	}
	type req struct {
		mode                                      uint8
		method, path, query, ctype, auth, ifMatch string
		body                                      string
	}
	for name, r := range map[string]req{
		"post":         {0, "POST", "/whip/live/cam", "", ContentTypeSDP, "Bearer tok", "", seedOffers["chrome-simulcast"]},
		"patch-frag":   {1, "PATCH", "", "", ContentTypeSDPFrag, "Bearer tok", "*", seedFrags["trickle"]},
		"patch-jwt":    {1, "PATCH", "", "jwt=tok", ContentTypeSDPFrag, "", "", seedFrags["restart"]},
		"delete":       {1, "DELETE", "", "", "", "Bearer tok", "", ""},
		"options":      {0, "OPTIONS", "/whip/live", "", "", "", "", ""},
		"post-badtype": {0, "POST", "/whip/live", "", "text/plain", "", "", seedOffers["datachannel"]},
	} {
		writeCorpus(t, "FuzzEndpoint", name, "uint8(%d)\nstring(%q)\nstring(%q)\nstring(%q)\nstring(%q)\nstring(%q)\nstring(%q)\n[]byte(%q)",
			r.mode, r.method, r.path, r.query, r.ctype, r.auth, r.ifMatch, r.body)
	}
}

func writeCorpus(t *testing.T, target, name, format string, args ...any) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := "go test fuzz v1\n" + fmt.Sprintf(format, args...) + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
