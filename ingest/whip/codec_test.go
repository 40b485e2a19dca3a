package whip

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/moqgate/moqgate/media"
)

// A real 640x360 constrained baseline SPS and its PPS (x264).
var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x8f, 0x16, 0x2e, 0x48}
	testPPS = []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}
)

func avcc(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

func annexB(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

func packets(payloads [][]byte) []*rtp.Packet {
	var out []*rtp.Packet
	for i, p := range payloads {
		out = append(out, &rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: 3000, Marker: i == len(payloads)-1}, Payload: p})
	}
	return out
}

// TestH264Depacketize: an access unit packetized in mode 1 (STAP-A for
// the parameter sets, FU-A for the big slice) and in mode 0 (one NAL unit
// per packet) comes back as the same AVCC.
func TestH264Depacketize(t *testing.T) {
	idr := append([]byte{0x65}, bytes.Repeat([]byte{0xab}, 5000)...)
	aud := []byte{0x09, 0xf0}
	au := annexB(aud, testSPS, testPPS, idr)
	want := avcc(testSPS, testPPS, idr) // AUD dropped by inspect
	mode1 := (&codecs.H264Payloader{}).Payload(1200, au)
	var mode0 [][]byte
	for _, n := range [][]byte{aud, testSPS, testPPS, idr[:1000]} {
		mode0 = append(mode0, n)
	}
	for name, pl := range map[string][][]byte{"mode 1": mode1, "mode 0": mode0} {
		d := newDepacketizer(media.H264)
		for _, p := range packets(pl) {
			if err := d.add(p); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		info := media.TrackInfo{Codec: media.H264}
		out, key, changed, err := inspect(&info, d.frame())
		if err != nil || !key || !changed {
			t.Fatalf("%s: key %v changed %v err %v", name, key, changed, err)
		}
		w := want
		if name == "mode 0" {
			w = avcc(testSPS, testPPS, idr[:1000])
		}
		if !bytes.Equal(out, w) {
			t.Errorf("%s: AVCC differs (%d vs %d bytes)", name, len(out), len(w))
		}
		if !bytes.Equal(info.SPS[0], testSPS) || !bytes.Equal(info.PPS[0], testPPS) || info.Width != 640 || info.Height != 360 {
			t.Errorf("%s: info %+v", name, info)
		}
		if !ready(info) {
			t.Error("not ready")
		}
		// The same parameter sets again: no change.
		if _, _, changed, _ := inspect(&info, avcc(testSPS, testPPS, idr)); changed {
			t.Error("unchanged parameter sets reported as a change")
		}
	}
	// A truncated access unit is an error, not a panic.
	info := media.TrackInfo{Codec: media.H264}
	if _, _, _, err := inspect(&info, []byte{0, 0, 0, 9, 0x65}); err == nil {
		t.Error("truncated AU accepted")
	}
}

func TestVP8Depacketize(t *testing.T) {
	// A key frame header: frame tag (key, show), start code, 320x180.
	frame := []byte{0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00}
	frame = append(frame, bytes.Repeat([]byte{0x11}, 3000)...)
	pl := (&codecs.VP8Payloader{EnablePictureID: true}).Payload(1200, frame)
	d := newDepacketizer(media.VP8)
	for _, p := range packets(pl) {
		if err := d.add(p); err != nil {
			t.Fatal(err)
		}
	}
	info := media.TrackInfo{Codec: media.VP8}
	out, key, changed, err := inspect(&info, d.frame())
	if err != nil || !key || !changed || !bytes.Equal(out, frame) || info.Width != 320 || info.Height != 180 {
		t.Fatalf("key %v changed %v err %v size %dx%d equal %v", key, changed, err, info.Width, info.Height, bytes.Equal(out, frame))
	}
	// A frame whose first packet was lost is refused.
	d = newDepacketizer(media.VP8)
	if err := d.add(packets(pl)[1]); err == nil {
		t.Error("VP8 frame without its first packet accepted")
	}
}

func TestAV1Inspect(t *testing.T) {
	td := []byte{0x12, 0x00}                                                                    // temporal delimiter with size 0
	seq := []byte{0x0a, 0x0b, 0x00, 0x00, 0x00, 0x2c, 0xcf, 0x7f, 0x0d, 0xbf, 0xff, 0x38, 0x18} // sequence header
	frm := []byte{0x32, 0x03, 0x10, 0x00, 0x00}                                                 // frame OBU
	info := media.TrackInfo{Codec: media.AV1}
	out, key, changed, err := inspect(&info, append(append(append([]byte{}, td...), seq...), frm...))
	if err != nil || !key || !changed || !bytes.Equal(info.AV1SequenceHeader, seq) {
		t.Fatalf("key %v changed %v err %v seq %x", key, changed, err, info.AV1SequenceHeader)
	}
	if !bytes.Equal(out, append(append([]byte{}, seq...), frm...)) {
		t.Errorf("temporal delimiter kept: %x", out)
	}
	if _, key, _, _ := inspect(&info, frm); key {
		t.Error("a frame without sequence header is a key frame")
	}
}

func TestVP9Superframe(t *testing.T) {
	sf := vp9Superframe([][]byte{bytes.Repeat([]byte{1}, 300), bytes.Repeat([]byte{2}, 10)})
	// marker: 0b110 mm fff with mag 1 (2-byte sizes), 2 frames
	m := sf[len(sf)-1]
	if m&0xe0 != 0xc0 || int(m&7)+1 != 2 || (m>>3)&3 != 1 || sf[len(sf)-1-2*2-1] != m {
		t.Fatalf("bad superframe index %x", sf[len(sf)-6:])
	}
	if len(sf) != 310+1+4+1 {
		t.Errorf("superframe of %d bytes", len(sf))
	}
}

func TestOpusInspect(t *testing.T) {
	info := media.TrackInfo{Codec: media.Opus}
	// TOC: config 31 (CELT FB 20 ms), stereo, one frame.
	_, key, changed, err := inspect(&info, []byte{0xfc, 1, 2, 3})
	if err != nil || !key || !changed || info.Channels != 2 || !ready(info) {
		t.Fatalf("%+v %v %v %v", info, key, changed, err)
	}
	if d := opusDuration([]byte{0xfc}); d != 960 {
		t.Errorf("duration %d", d)
	}
}
