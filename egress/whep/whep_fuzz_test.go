package whep

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/moqgate/moqgate/internal/rtc"
	"github.com/moqgate/moqgate/media"
)

// Seed corpora live in testdata/fuzz/Fuzz*/ (regenerate with
// MOQGATE_GEN_FUZZ_CORPUS=1 go test ./egress/whep -run TestGenerateFuzzCorpus).

var fuzzCodecs = []media.Codec{media.H264, media.H265, media.VP8, media.VP9, media.AV1, media.Opus, media.AAC}

// A 640x360 constrained baseline SPS (x264) and a High profile one.
var (
	fuzzSPS     = []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x8f, 0x16, 0x2e, 0x48}
	fuzzHighSPS = []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60}
	fuzzPPS     = []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}
)

const whepOffer = "v=0\r\no=- 5 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 45 102 103 104\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 ccm fir\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n" +
	"a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\na=rtpmap:99 VP9/90000\r\na=fmtp:99 profile-id=2\r\n" +
	"a=rtpmap:45 AV1/90000\r\na=fmtp:45 level-idx=5;profile=0;tier=0\r\n" +
	"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n" +
	"a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n" +
	"a=rtpmap:104 H264/90000\r\na=fmtp:104 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032\r\na=rtcp-fb:* nack pli\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n" +
	"a=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n"

// FuzzOfferedFor: codec negotiation with an arbitrary offer and track.
// The codec chosen is one the offer lists, of the track's codec, in
// packetization mode 1 (H.264) or of the track's profile (VP9), the best
// profile match; the feedback kept is what moqgate acts on; and what
// create does with the choice (register it, make a track for it) does
// not panic.
func FuzzOfferedFor(f *testing.F) {
	for i := range fuzzCodecs {
		f.Add(whepOffer, uint8(i), fuzzSPS, uint8(0))
	}
	f.Add(whepOffer, uint8(0), fuzzHighSPS, uint8(0))
	f.Add(whepOffer, uint8(3), []byte(nil), uint8(2))
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP 96\r\na=rtpmap:96 h264/0/0\r\na=fmtp:96 packetization-mode=1;profile-level-id=6\r\n",
		uint8(0), []byte{0x67, 0x64}, uint8(0))
	f.Fuzz(func(t *testing.T, offer string, sel uint8, sps []byte, vp9Profile uint8) {
		sections, err := rtc.ParseOffer(offer)
		if err != nil {
			return
		}
		info := media.TrackInfo{Codec: fuzzCodecs[int(sel)%len(fuzzCodecs)], VP9Profile: int(vp9Profile % 4)}
		if len(sps) > 0 {
			info.SPS, info.PPS = [][]byte{sps}, [][]byte{fuzzPPS}
		}
		_ = mayReorder(info)
		for _, m := range sections {
			oc, ok := offeredFor(m, info)
			if !ok {
				continue
			}
			if !slices.ContainsFunc(m.Codecs, func(c rtc.OfferedCodec) bool { return c.PT == oc.PT && c.Name == oc.Name }) {
				t.Fatalf("chose %+v, not in the offer", oc)
			}
			switch info.Codec {
			case media.H264:
				if oc.Name != "h264" || oc.Param("packetization-mode") != "1" {
					t.Fatalf("H.264 track gets %+v", oc)
				}
			case media.VP9:
				p := oc.Param("profile-id")
				if oc.Name != "vp9" || p != fmt.Sprint(info.VP9Profile) && (p != "" || info.VP9Profile != 0) {
					t.Fatalf("VP9 profile %d track gets %+v", info.VP9Profile, oc)
				}
			case media.AAC:
				t.Fatalf("AAC track gets %+v", oc)
			}
			fb := feedbackFor(oc)
			for _, x := range fb {
				if !slices.Contains(oc.Feedback, x) || x.Type != "nack" && x.Type != "ccm" {
					t.Fatalf("feedback %+v", x)
				}
			}
			kind, typ := "video", webrtc.RTPCodecTypeVideo
			if info.Codec.Kind() == media.Audio {
				kind, typ = "audio", webrtc.RTPCodecTypeAudio
			}
			params := oc.Parameters(kind)
			params.RTCPFeedback = fb
			me := &webrtc.MediaEngine{}
			if err := me.RegisterCodec(params, typ); err != nil {
				continue
			}
			if _, err := webrtc.NewTrackLocalStaticRTP(params.RTPCodecCapability, kind, "moqgate"); err != nil {
				continue
			}
		}
	})
}

// FuzzPacketize: any access unit of any codec, with any parameter sets,
// is packetized into non-empty payloads within the MTU, or refused; for
// H.264 without parameter sets, Annex B-safe NAL units come back whole
// from pion's depacketizer, and VP8 frames too.
func FuzzPacketize(f *testing.F) {
	au := func(nalus ...[]byte) []byte {
		var b []byte
		for _, n := range nalus {
			b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
			b = append(b, n...)
		}
		return b
	}
	idr := append([]byte{0x65, 0x88}, bytes.Repeat([]byte{0x84, 0x21}, 1500)...)
	for _, s := range packetizeSeeds(au, idr) {
		f.Add(s.sel, s.key, s.data, s.ps)
	}
	f.Fuzz(func(t *testing.T, sel uint8, key bool, data, ps []byte) {
		info := media.TrackInfo{Codec: fuzzCodecs[int(sel)%len(fuzzCodecs)]}
		psLen := 0
		if len(ps) > 0 {
			// Parameter sets: split in two (SPS and PPS, VPS and SPS).
			a, b := ps[:len(ps)/2], ps[len(ps)/2:]
			info.VPS, info.SPS, info.PPS = [][]byte{a}, [][]byte{a}, [][]byte{b}
			info.AV1SequenceHeader = ps
			psLen = 4*3 + 2*len(ps)
		}
		p, err := newPacketizer(info)
		if err != nil {
			if info.Codec != media.AAC {
				t.Fatalf("%s: %v", info.Codec, err)
			}
			return
		}
		payloads, err := p.packetize(data, key)
		if err != nil {
			return
		}
		total := 0
		for _, pl := range payloads {
			if len(pl) == 0 || len(pl) > rtpMTU {
				t.Fatalf("payload of %d bytes", len(pl))
			}
			total += len(pl)
		}
		if len(payloads) > len(data)+psLen+1 || total > 2*(len(data)+psLen)+64 {
			t.Fatalf("%d payloads, %d bytes from %d (+%d)", len(payloads), total, len(data), psLen)
		}
		switch info.Codec {
		case media.H264:
			if key || !cleanAVCC(data) {
				return
			}
			var got []byte
			var d codecs.H264Packet
			d.IsAVC = true
			for _, pl := range payloads {
				b, err := d.Unmarshal(pl)
				if err != nil {
					t.Fatalf("payload %x: %v", pl, err)
				}
				got = append(got, b...)
			}
			if want := stripEmpty(data); !bytes.Equal(got, want) {
				t.Fatalf("round trip: %x, want %x", got, want)
			}
		case media.VP8:
			var got []byte
			var d codecs.VP8Packet
			for _, pl := range payloads {
				b, err := d.Unmarshal(pl)
				if err != nil {
					t.Fatalf("payload %x: %v", pl, err)
				}
				got = append(got, b...)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("VP8 round trip: %d bytes, want %d", len(got), len(data))
			}
		case media.AV1:
			_ = av1HasSequenceHeader(data)
		}
	})
}

// cleanAVCC reports whether data is AVCC whose NAL units survive Annex B
// and pion's payloader unchanged: slices (types 1-5 and 19-23 but no
// parameter sets, AUDs or filler), no zero pair (start code emulation,
// which real encoders prevent), not ending in a zero byte.
func cleanAVCC(data []byte) bool {
	for rest := data; len(rest) > 0; {
		if len(rest) < 4 {
			return false
		}
		n := int(binary.BigEndian.Uint32(rest))
		if n > len(rest)-4 {
			return false
		}
		if n > 0 {
			nalu := rest[4 : 4+n]
			t := nalu[0] & 0x1f
			if t == 0 || t > 23 || t == 7 || t == 8 || t == 9 || t == 12 || bytes.Contains(nalu, []byte{0, 0}) || nalu[n-1] == 0 {
				return false
			}
		}
		rest = rest[4+n:]
	}
	return true
}

func stripEmpty(data []byte) []byte {
	var out []byte
	for rest := data; len(rest) > 0; {
		n := int(binary.BigEndian.Uint32(rest))
		if n > 0 {
			out = append(out, rest[:4+n]...)
		}
		rest = rest[4+n:]
	}
	return out
}

type packetizeSeed struct {
	sel      uint8
	key      bool
	data, ps []byte
}

func packetizeSeeds(au func(...[]byte) []byte, idr []byte) map[string]packetizeSeed {
	sel := func(c media.Codec) uint8 { return uint8(slices.Index(fuzzCodecs, c)) }
	seqHdr := []byte{0x0a, 0x0b, 0x00, 0x00, 0x00, 0x2c, 0xcf, 0x7f, 0x0d, 0xbf, 0xff, 0x38, 0x18}
	return map[string]packetizeSeed{
		"h264-key":        {sel(media.H264), true, au(idr), append(append([]byte{}, fuzzSPS...), fuzzPPS...)},
		"h264-key-inband": {sel(media.H264), true, au(fuzzSPS, fuzzPPS, idr), nil},
		"h264-delta":      {sel(media.H264), false, au([]byte{0x41, 0x9a, 0x22}, nil, []byte{0x41, 0x9b, 0x33, 0x44}), nil},
		"h264-truncated":  {sel(media.H264), false, []byte{0, 0, 0, 9, 0x41}, nil},
		"h265-key": {sel(media.H265), true, au(append([]byte{0x26, 0x01}, bytes.Repeat([]byte{0xaf}, 2000)...)),
			[]byte{0x40, 0x01, 0x0c, 0x01, 0x42, 0x01, 0x01, 0x01}},
		"vp8-key":   {sel(media.VP8), true, append([]byte{0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00}, bytes.Repeat([]byte{0x11}, 2500)...), nil},
		"vp9-key":   {sel(media.VP9), true, append([]byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x77, 0xf0, 0x32}, bytes.Repeat([]byte{0x22}, 2500)...), nil},
		"av1-key":   {sel(media.AV1), true, append([]byte{0x32, 0x83, 0x14}, bytes.Repeat([]byte{0x10}, 2563)...), seqHdr},
		"av1-inseq": {sel(media.AV1), true, append(append([]byte{}, seqHdr...), 0x32, 0x03, 0x10, 0x00, 0x00), seqHdr},
		"opus":      {sel(media.Opus), true, []byte{0xfc, 0xff, 0xfe}, nil},
	}
}

// ---------------------------------------------------------------------------
// Seed corpus generation (committed under testdata/fuzz/): run with
//
//	MOQGATE_GEN_FUZZ_CORPUS=1 go test ./egress/whep -run TestGenerateFuzzCorpus

func TestGenerateFuzzCorpus(t *testing.T) {
	if os.Getenv("MOQGATE_GEN_FUZZ_CORPUS") == "" {
		t.Skip("set MOQGATE_GEN_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	for i, c := range fuzzCodecs {
		writeCorpus(t, "FuzzOfferedFor", "whep-"+string(c), "string(%q)\nuint8(%d)\n[]byte(%q)\nuint8(%d)", whepOffer, i, fuzzHighSPS, 2)
	}
	au := func(nalus ...[]byte) []byte {
		var b []byte
		for _, n := range nalus {
			b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
			b = append(b, n...)
		}
		return b
	}
	idr := append([]byte{0x65, 0x88}, bytes.Repeat([]byte{0x84, 0x21}, 1500)...)
	for name, s := range packetizeSeeds(au, idr) {
		writeCorpus(t, "FuzzPacketize", name, "uint8(%d)\nbool(%v)\n[]byte(%q)\n[]byte(%q)", s.sel, s.key, s.data, s.ps)
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
