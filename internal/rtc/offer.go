package rtc

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// OfferedCodec is one payload type of an offer's media section.
type OfferedCodec struct {
	PT       uint8
	Name     string // lower case encoding name: "h264", "vp8", "opus", "rtx", ...
	Clock    uint32
	Channels uint16
	Fmtp     string
	Feedback []webrtc.RTCPFeedback
}

// Param returns an fmtp parameter ("" if absent).
func (c OfferedCodec) Param(key string) string {
	for p := range strings.SplitSeq(c.Fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Mime is the codec's MIME type as pion spells it ("video/H264").
func (c OfferedCodec) Mime(kind string) string {
	name := strings.ToUpper(c.Name)
	switch name {
	case "OPUS":
		name = "opus"
	}
	return kind + "/" + name
}

// Parameters returns the codec as pion codec parameters.
func (c OfferedCodec) Parameters(kind string) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: c.Mime(kind), ClockRate: c.Clock, Channels: c.Channels, SDPFmtpLine: c.Fmtp, RTCPFeedback: c.Feedback,
		},
		PayloadType: webrtc.PayloadType(c.PT),
	}
}

// OfferedMedia is one media section of an offer.
type OfferedMedia struct {
	Kind      string // "audio", "video", "application"
	Mid       string
	Direction string // sendrecv, sendonly, recvonly, inactive
	Rejected  bool   // port 0
	Codecs    []OfferedCodec
	RIDs      []string // simulcast layers the offerer sends
}

// Sends reports whether the offerer sends media in this section.
func (m OfferedMedia) Sends() bool {
	return !m.Rejected && (m.Direction == "sendrecv" || m.Direction == "sendonly")
}

// Receives reports whether the offerer receives media in this section.
func (m OfferedMedia) Receives() bool {
	return !m.Rejected && (m.Direction == "sendrecv" || m.Direction == "recvonly")
}

// ParseOffer lists the media sections of an SDP offer.
func ParseOffer(offer string) ([]OfferedMedia, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return nil, Errorf(http.StatusBadRequest, "malformed SDP offer: %v", err)
	}
	sessDir := "sendrecv"
	for _, a := range sd.Attributes {
		if isDirection(a.Key) {
			sessDir = a.Key
		}
	}
	var out []OfferedMedia
	for _, md := range sd.MediaDescriptions {
		m := OfferedMedia{Kind: md.MediaName.Media, Direction: sessDir, Rejected: md.MediaName.Port.Value == 0}
		byPT := map[uint8]*OfferedCodec{}
		var order []uint8
		var wildcard []webrtc.RTCPFeedback // a=rtcp-fb:* entries so far
		for _, f := range md.MediaName.Formats {
			pt, err := strconv.ParseUint(f, 10, 8)
			if err != nil {
				continue // "webrtc-datachannel" and the like
			}
			if byPT[uint8(pt)] != nil {
				continue // listed twice
			}
			byPT[uint8(pt)] = &OfferedCodec{PT: uint8(pt)}
			order = append(order, uint8(pt))
		}
		for _, a := range md.Attributes {
			switch {
			case isDirection(a.Key):
				m.Direction = a.Key
			case a.Key == "mid":
				m.Mid = a.Value
			case a.Key == "rid":
				id, dir, _ := strings.Cut(a.Value, " ")
				if strings.HasPrefix(strings.TrimSpace(dir), "send") {
					m.RIDs = append(m.RIDs, id)
				}
			case a.Key == "rtpmap", a.Key == "fmtp", a.Key == "rtcp-fb":
				ptStr, rest, _ := strings.Cut(a.Value, " ")
				if ptStr == "*" && a.Key == "rtcp-fb" {
					fb := feedback(rest)
					if len(wildcard) >= maxFeedback || slices.Contains(wildcard, fb) {
						continue
					}
					wildcard = append(wildcard, fb)
					for _, c := range byPT {
						c.addFeedback(fb)
					}
					continue
				}
				pt, err := strconv.ParseUint(ptStr, 10, 8)
				if err != nil {
					continue
				}
				c := byPT[uint8(pt)]
				if c == nil {
					continue
				}
				switch a.Key {
				case "rtpmap":
					parts := strings.Split(rest, "/")
					c.Name = strings.ToLower(strings.TrimSpace(parts[0]))
					if len(parts) > 1 {
						n, _ := strconv.ParseUint(parts[1], 10, 32)
						c.Clock = uint32(n)
					}
					if len(parts) > 2 {
						n, _ := strconv.ParseUint(parts[2], 10, 16)
						c.Channels = uint16(n)
					}
				case "fmtp":
					c.Fmtp = strings.TrimSpace(rest)
				case "rtcp-fb":
					c.addFeedback(feedback(rest))
				}
			}
		}
		for _, pt := range order {
			c := byPT[pt]
			if c.Name == "" {
				// Static payload types need no rtpmap (RFC 3551).
				switch pt {
				case 0:
					c.Name, c.Clock = "pcmu", 8000
				case 8:
					c.Name, c.Clock = "pcma", 8000
				case 9:
					c.Name, c.Clock = "g722", 8000
				default:
					continue
				}
			}
			m.Codecs = append(m.Codecs, *c)
		}
		out = append(out, m)
	}
	return out, nil
}

// maxFeedback bounds the RTCP feedback kept per codec: offers carry a
// handful, and without a bound every "a=rtcp-fb:*" line of an offer would
// add an entry to each of its (up to 256) payload types, turning a 1 MiB
// offer into gigabytes.
const maxFeedback = 16

// addFeedback adds fb unless the codec has it or has maxFeedback entries.
func (c *OfferedCodec) addFeedback(fb webrtc.RTCPFeedback) {
	if len(c.Feedback) < maxFeedback && !slices.Contains(c.Feedback, fb) {
		c.Feedback = append(c.Feedback, fb)
	}
}

func feedback(s string) webrtc.RTCPFeedback {
	typ, param, _ := strings.Cut(strings.TrimSpace(s), " ")
	return webrtc.RTCPFeedback{Type: typ, Parameter: strings.TrimSpace(param)}
}

func isDirection(k string) bool {
	switch k {
	case "sendrecv", "sendonly", "recvonly", "inactive":
		return true
	}
	return false
}

// DescribeCodecs lists the codecs of the media sections, for error messages.
func DescribeCodecs(media []OfferedMedia) string {
	var parts []string
	for _, m := range media {
		seen := map[string]bool{}
		var names []string
		for _, c := range m.Codecs {
			if c.Name == "rtx" || c.Name == "red" || c.Name == "ulpfec" || c.Name == "flexfec-03" || seen[c.Name] {
				continue
			}
			seen[c.Name] = true
			names = append(names, c.Name)
		}
		parts = append(parts, fmt.Sprintf("%s: %s", m.Kind, strings.Join(names, ",")))
	}
	return strings.Join(parts, "; ")
}
