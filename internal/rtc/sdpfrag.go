package rtc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// SDPFrag is an application/trickle-ice-sdpfrag body (RFC 8840): ICE
// credentials and candidates, each candidate with the mid of the media
// section it follows.
type SDPFrag struct {
	Ufrag, Pwd      string
	Candidates      []webrtc.ICECandidateInit
	EndOfCandidates bool
}

// maxFragLines bounds what one PATCH may carry.
const maxFragLines = 1000

// ParseSDPFrag parses a trickle-ice-sdpfrag.
func ParseSDPFrag(body string) (*SDPFrag, error) {
	f := &SDPFrag{}
	lines := strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n")
	if len(lines) > maxFragLines {
		return nil, fmt.Errorf("%d lines, at most %d", len(lines), maxFragLines)
	}
	var mid *string
	var mline uint16
	inMedia := false
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if len(l) < 2 || l[1] != '=' {
			return nil, fmt.Errorf("bad line %q", truncate(l))
		}
		switch l[0] {
		case 'm':
			if inMedia {
				mline++
			}
			inMedia = true
			mid = nil
			continue
		case 'a':
		default:
			continue // v=, o=, s=, t=, c=: allowed, unused
		}
		attr, val, _ := strings.Cut(l[2:], ":")
		switch attr {
		case "ice-ufrag":
			f.Ufrag = val
		case "ice-pwd":
			f.Pwd = val
		case "mid":
			v := val
			mid = &v
		case "candidate":
			if val == "" {
				return nil, errors.New("empty candidate")
			}
			c := webrtc.ICECandidateInit{Candidate: "candidate:" + val}
			if mid != nil {
				m := *mid
				c.SDPMid = &m
			}
			idx := mline
			c.SDPMLineIndex = &idx
			f.Candidates = append(f.Candidates, c)
		case "end-of-candidates":
			f.EndOfCandidates = true
		}
	}
	return f, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// iceCredentials returns the first ice-ufrag and ice-pwd of an SDP.
func iceCredentials(sdp string) (ufrag, pwd string) {
	for l := range strings.Lines(sdp) {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok && ufrag == "" {
			ufrag = v
		}
		if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok && pwd == "" {
			pwd = v
		}
	}
	return ufrag, pwd
}

// restartOffer is the remote offer with new ICE credentials and without
// candidates: what the client would have sent for an ICE restart.
func restartOffer(sdp, ufrag, pwd string) string {
	var b strings.Builder
	for l := range strings.Lines(sdp) {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "a=ice-ufrag:"):
			b.WriteString("a=ice-ufrag:" + ufrag + "\r\n")
		case strings.HasPrefix(t, "a=ice-pwd:"):
			b.WriteString("a=ice-pwd:" + pwd + "\r\n")
		case strings.HasPrefix(t, "a=candidate:"), t == "a=end-of-candidates":
		default:
			b.WriteString(t + "\r\n")
		}
	}
	return b.String()
}

// answerFrag is the trickle-ice-sdpfrag of an ICE restart's answer: the
// BUNDLE group, then the first media section's line, mid, new credentials
// and candidates (RFC 9725 section 4.4.2).
func answerFrag(sdp string) string {
	var b strings.Builder
	var ufrag, pwd, mline, mid string
	var cands []string
	media := 0
	for l := range strings.Lines(sdp) {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "a=group:BUNDLE"), strings.HasPrefix(t, "a=ice-options:"), t == "a=ice-lite":
			if media == 0 {
				b.WriteString(t + "\r\n")
			}
		case strings.HasPrefix(t, "m="):
			media++
			if media == 1 {
				mline = t
			}
		case media <= 1 && strings.HasPrefix(t, "a=mid:"):
			mid = t
		case strings.HasPrefix(t, "a=ice-ufrag:") && ufrag == "":
			ufrag = t
		case strings.HasPrefix(t, "a=ice-pwd:") && pwd == "":
			pwd = t
		case media <= 1 && strings.HasPrefix(t, "a=candidate:"):
			cands = append(cands, t)
		}
	}
	for _, l := range []string{mline, mid, ufrag, pwd} {
		if l != "" {
			b.WriteString(l + "\r\n")
		}
	}
	for _, c := range cands {
		b.WriteString(c + "\r\n")
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String()
}
