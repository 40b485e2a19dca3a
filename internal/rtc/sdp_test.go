package rtc

import (
	"errors"
	"strings"
	"testing"
)

const chromeLikeOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ice-ufrag:uf1\r\na=ice-pwd:pw1pw1pw1pw1pw1pw1pw1pw1\r\n" +
	"a=candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rid:h send\r\na=rid:l send\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n" +
	"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"

func TestParseOffer(t *testing.T) {
	m, err := ParseOffer(chromeLikeOffer)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m[0].Kind != "audio" || m[1].Kind != "video" || !m[0].Sends() || m[0].Receives() {
		t.Fatalf("%+v", m)
	}
	if len(m[0].Codecs) != 2 || m[0].Codecs[0].Name != "opus" || m[0].Codecs[0].Clock != 48000 || m[0].Codecs[0].Channels != 2 ||
		m[0].Codecs[1].Name != "pcmu" {
		t.Errorf("audio codecs %+v", m[0].Codecs)
	}
	v := m[1]
	if v.Mid != "1" || strings.Join(v.RIDs, ",") != "h,l" || len(v.Codecs) != 3 {
		t.Errorf("video %+v", v)
	}
	h := v.Codecs[2]
	if h.Name != "h264" || h.Param("packetization-mode") != "1" || h.Param("profile-level-id") != "42e01f" || h.Mime("video") != "video/H264" {
		t.Errorf("h264 %+v", h)
	}
	if len(v.Codecs[0].Feedback) != 2 || v.Codecs[0].Feedback[1].Parameter != "pli" {
		t.Errorf("feedback %+v", v.Codecs[0].Feedback)
	}
	if d := DescribeCodecs(m); d != "audio: opus,pcmu; video: vp8,h264" {
		t.Errorf("DescribeCodecs %q", d)
	}
	if _, err := ParseOffer("not sdp"); err == nil {
		t.Error("garbage parsed")
	}
	if err := CheckOffer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"); err == nil {
		t.Error("offer without media accepted")
	}
}

func TestSDPFrag(t *testing.T) {
	f, err := ParseSDPFrag("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n" +
		"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n" +
		"m=video 9 RTP/AVP 0\r\na=mid:1\r\na=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host\r\na=end-of-candidates\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if f.Ufrag != "EsAw" || f.Pwd != "P2uYro0UCOQ4zxjKXaWCBui1" || !f.EndOfCandidates || len(f.Candidates) != 2 {
		t.Fatalf("%+v", f)
	}
	if c := f.Candidates[1]; *c.SDPMid != "1" || *c.SDPMLineIndex != 1 || !strings.HasPrefix(c.Candidate, "candidate:3471623853 ") {
		t.Errorf("candidate %+v", c)
	}
	for _, bad := range []string{"garbage", "a=candidate:\r\n", strings.Repeat("a=x\r\n", 2000)} {
		if _, err := ParseSDPFrag(bad); err == nil {
			t.Errorf("%.20q accepted", bad)
		}
	}
}

func TestRestartOfferAndAnswerFrag(t *testing.T) {
	r := restartOffer(chromeLikeOffer, "newuf", "newpwnewpwnewpwnewpwnewpw")
	if u, p := iceCredentials(r); u != "newuf" || p != "newpwnewpwnewpwnewpwnewpw" || strings.Contains(r, "a=candidate") {
		t.Errorf("restart offer:\n%s", r)
	}
	frag := answerFrag(chromeLikeOffer)
	for _, want := range []string{"a=group:BUNDLE 0 1", "m=audio 9 UDP/TLS/RTP/SAVPF 111 0", "a=mid:0", "a=ice-ufrag:uf1", "a=candidate:1 1 udp", "a=end-of-candidates"} {
		if !strings.Contains(frag, want) {
			t.Errorf("answer fragment lacks %q:\n%s", want, frag)
		}
	}
	if _, err := ParseSDPFrag(frag); err != nil {
		t.Error(err)
	}
}

func TestCheckOfferMediaSections(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" + strings.Repeat("m=audio 9 RTP/AVP 0\r\n", 3)
	if err := checkOffer(offer, 3); err != nil {
		t.Fatalf("3 media sections, at most 3: %v", err)
	}
	err := checkOffer(offer, 2)
	var e *Error
	if !errors.As(err, &e) || e.Status != 400 || !strings.Contains(e.Msg, "3 media sections; at most 2") {
		t.Fatalf("3 media sections, at most 2: %v", err)
	}
}
