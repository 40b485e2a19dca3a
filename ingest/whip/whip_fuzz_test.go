package whip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/moqgate/moqgate/media"
)

// Fuzz input of the FuzzDepacketize* targets: a sequence of RTP packets
//
//	flags (1) | sequence number delta (1, signed) | timestamp delta (1, signed, x1000) | length (2) | payload
//
// flags: bit 0 the marker bit, bits 1-2 the time since the previous packet
// (0, 5 ms, 60 ms, 400 ms: around the reorder buffer's waits), bit 3 a
// sequence number and timestamp jump (the deltas then are the high bytes).
// The packets go through the track's reorder buffer into its frame
// assembly (inTrack.onPacket, the depacketizer, inspect) and a checking
// BroadcastWriter, as readRTP hands them on.
type fuzzPacket struct {
	marker bool
	wait   byte // 0-3
	jump   bool
	dseq   int8
	dts    int8
	pl     []byte
}

func encodePackets(pkts []fuzzPacket) []byte {
	var b []byte
	for _, p := range pkts {
		fl := p.wait << 1
		if p.marker {
			fl |= 1
		}
		if p.jump {
			fl |= 8
		}
		b = append(b, fl, byte(p.dseq), byte(p.dts))
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.pl)))
		b = append(b, p.pl...)
	}
	return b
}

var fuzzWaits = [4]time.Duration{0, 5 * time.Millisecond, 60 * time.Millisecond, 400 * time.Millisecond}

// fuzzFrameLimit replaces maxFrameSize in the fuzz targets, so that the
// limit is within the fuzzer's reach.
const fuzzFrameLimit = 2 << 10

func fuzzDepacketize(f *testing.F, codec media.Codec) {
	for _, s := range depackSeeds(f, codec) {
		f.Add(encodePackets(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := runDepacketize(codec, data).err; err != nil {
			t.Fatal(err)
		}
	})
}

// runDepacketize plays fuzz input to a track of codec.
func runDepacketize(codec media.Codec, data []byte) *frameChecker {
	w := &frameChecker{codec: codec}
	p := &publisher{log: slog.New(slog.DiscardHandler), bw: w, expected: 1}
	tr := &inTrack{pub: p, name: string(codec.Kind()), kind: codec.Kind(),
		info: media.TrackInfo{Name: string(codec.Kind()), Codec: codec, Timescale: 90000}}
	tr.reorder.maxDelay = videoReorderDelay
	if codec == media.Opus {
		tr.info.Timescale, tr.info.SampleRate = 48000, 48000
		tr.reorder.maxDelay = audioReorderDelay
	} else {
		tr.waitKey.Store(true)
	}
	tr.lastPLI.Store(math.MaxInt64) // no PLI: there is no peer connection
	lim := newDepacketizer(codec).(*limitDepack)
	lim.limit = fuzzFrameLimit
	tr.depack = lim
	p.tracks = []*inTrack{tr}
	w.track = tr.name

	now := time.Unix(1_700_000_000, 0)
	seq, ts := uint16(1000), uint32(90000)
	for len(data) >= 5 && w.err == nil {
		fl := data[0]
		if fl&8 != 0 {
			seq += uint16(data[1]) << 8
			ts += uint32(data[2]) << 24
		} else {
			seq += uint16(int16(int8(data[1])))
			ts += uint32(int32(int8(data[2])) * 1000)
		}
		n := min(int(binary.BigEndian.Uint16(data[3:])), len(data)-5)
		pl := data[5 : 5+n]
		data = data[5+n:]
		now = now.Add(fuzzWaits[fl>>1&3])
		if len(pl) == 0 {
			continue // readRTP drops padding
		}
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: fl&1 != 0, PayloadType: 96,
			SequenceNumber: seq, Timestamp: ts, SSRC: 1}, Payload: pl}
		tr.reorder.push(pkt, now, tr.onPacket)
		if err := reorderInvariants(&tr.reorder); err != nil {
			w.fail("%v", err)
		}
		b := buffered(lim.d)
		if lim.over && b != 0 || !lim.over && (lim.n > lim.limit || b > 5*lim.n+64) {
			w.fail("depacketizer holds %d bytes after taking %d (over %v)", b, lim.n, lim.over)
		}
	}
	tr.reorder.flush(tr.onPacket)
	return w
}

// TestDepacketizeSeeds: the well-formed seeds yield key frames and
// frames; an endless frame is dropped, not the stream.
func TestDepacketizeSeeds(t *testing.T) {
	for _, codec := range []media.Codec{media.H264, media.VP8, media.VP9, media.AV1, media.Opus} {
		for name, s := range depackSeeds(t, codec) {
			w := runDepacketize(codec, encodePackets(s))
			if w.err != nil {
				t.Errorf("%s %s: %v", codec, name, w.err)
			}
			want := map[string]int{"in-order": 5, "messy": 3, "endless-frame": 2, "fua-without-end": 2, "obu-fragment-without-end": 2}[name]
			if w.frames < want || w.keys < min(want, 2) {
				t.Errorf("%s %s: %d frames, %d key frames; want %d", codec, name, w.frames, w.keys, want)
			}
		}
	}
}

// buffered is what a depacketizer holds for the frame being built (pion's
// own fragment buffers aside: what they hold comes out in the frame).
func buffered(d depacketizer) int {
	switch d := d.(type) {
	case *h264Depack:
		return len(d.buf)
	case *vp8Depack:
		return len(d.buf)
	case *vp9Depack:
		n := len(d.cur)
		for _, f := range d.frames {
			n += len(f)
		}
		return n
	case *av1Depack:
		return len(d.buf)
	case *rawDepack:
		return len(d.buf)
	}
	panic(fmt.Sprintf("unknown depacketizer %T", d))
}

// frameChecker checks the BroadcastWriter contract and the frames.
type frameChecker struct {
	codec  media.Codec
	track  string
	tracks []media.TrackInfo
	frames int
	keys   int
	err    error
}

func (w *frameChecker) fail(format string, args ...any) error {
	if w.err == nil {
		w.err = fmt.Errorf(format, args...)
	}
	return nil // the publisher must not see an error (it would close the session)
}

func (w *frameChecker) SetTracks(tracks []media.TrackInfo) error {
	if len(tracks) != 1 || tracks[0].Name != w.track || tracks[0].Codec != w.codec || !ready(tracks[0]) {
		return w.fail("SetTracks %+v", tracks)
	}
	w.tracks = tracks
	return nil
}

func (w *frameChecker) WriteFrame(name string, f media.Frame) error {
	if w.tracks == nil || name != w.track {
		return w.fail("frame on track %q before SetTracks", name)
	}
	if len(f.Data) == 0 || len(f.Data) > 5*fuzzFrameLimit+64 {
		return w.fail("frame of %d bytes", len(f.Data))
	}
	if w.frames == 0 && !f.Keyframe {
		return w.fail("first frame is not a key frame")
	}
	w.frames++
	if f.Keyframe {
		w.keys++
	}
	switch w.codec {
	case media.H264:
		idr := false
		for b := f.Data; len(b) > 0; {
			if len(b) < 5 {
				return w.fail("truncated AVCC")
			}
			n := int(binary.BigEndian.Uint32(b))
			if n == 0 || n > len(b)-4 {
				return w.fail("bad NAL unit length %d", n)
			}
			switch h264.NALUType(b[4] & 0x1f) {
			case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
				return w.fail("AUD or filler data in a frame")
			case h264.NALUTypeIDR:
				idr = true
			}
			b = b[4+n:]
		}
		if f.Keyframe && !idr {
			return w.fail("key frame without IDR")
		}
	case media.AV1:
		seq := false
		for b := f.Data; len(b) > 0; {
			hl := 1
			if b[0]&0x04 != 0 {
				hl = 2
			}
			if b[0]&0x82 != 0x02 || len(b) < hl+1 {
				return w.fail("OBU without size field")
			}
			var size av1.LEB128
			n, err := size.Unmarshal(b[hl:])
			if err != nil || uint64(size) > uint64(len(b)-hl-n) {
				return w.fail("bad OBU size")
			}
			switch av1.OBUType(b[0] >> 3 & 0x0f) {
			case av1.OBUTypeTemporalDelimiter:
				return w.fail("temporal delimiter in a frame")
			case av1.OBUTypeSequenceHeader:
				seq = true
			}
			b = b[hl+n+int(size):]
		}
		if f.Keyframe && !seq {
			return w.fail("key frame without sequence header")
		}
	case media.Opus:
		if !f.Keyframe || f.Duration != opusDuration(f.Data) {
			return w.fail("Opus frame key %v duration %d", f.Keyframe, f.Duration)
		}
	}
	return nil
}

func (w *frameChecker) Close() error { return nil }

func FuzzDepacketizeH264(f *testing.F) { fuzzDepacketize(f, media.H264) }
func FuzzDepacketizeVP8(f *testing.F)  { fuzzDepacketize(f, media.VP8) }
func FuzzDepacketizeVP9(f *testing.F)  { fuzzDepacketize(f, media.VP9) }
func FuzzDepacketizeAV1(f *testing.F)  { fuzzDepacketize(f, media.AV1) }
func FuzzDepacketizeOpus(f *testing.F) { fuzzDepacketize(f, media.Opus) }

// depackSeeds: frames packetized by pion's payloaders, in order, with
// loss, reordering and duplicates; plus the cases the frame limit is for.
func depackSeeds(tb testing.TB, codec media.Codec) map[string][]fuzzPacket {
	var key, delta []byte
	var pay func(mtu uint16, frame []byte) [][]byte
	switch codec {
	case media.H264:
		idr := append([]byte{0x65, 0x88}, bytes.Repeat([]byte{0xab}, 600)...)
		key = annexB([]byte{0x09, 0xf0}, testSPS, testPPS, idr)
		delta = annexB([]byte{0x41, 0x9a, 0x22, 0x33})
		pay = (&codecs.H264Payloader{}).Payload
	case media.VP8:
		key = append([]byte{0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00}, bytes.Repeat([]byte{0x11}, 600)...)
		delta = []byte{0x31, 0x02, 0x00, 0x44, 0x55}
		pay = (&codecs.VP8Payloader{EnablePictureID: true}).Payload
	case media.VP9:
		// A key frame header of Chrome's (mediacommon's test), 1920x804,
		// then a non-key frame.
		key = append([]byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x77, 0xf0, 0x32, 0x34, 0x30, 0x38, 0x24, 0x1c, 0x19, 0x40, 0x18,
			0x03, 0x40, 0x5f, 0xb4}, bytes.Repeat([]byte{0x22}, 600)...)
		delta = []byte{0x86, 0x00, 0x40, 0x92, 0x88}
		pay = (&codecs.VP9Payloader{InitialPictureIDFn: func() uint16 { return 7 }}).Payload
	case media.AV1:
		seq := []byte{0x0a, 0x0b, 0x00, 0x00, 0x00, 0x2c, 0xcf, 0x7f, 0x0d, 0xbf, 0xff, 0x38, 0x18}
		frm := append([]byte{0x32, 0xd8, 0x04}, bytes.Repeat([]byte{0x10}, 600)...) // frame OBU, 600 bytes
		key = append(append([]byte{0x12, 0x00}, seq...), frm...)
		delta = []byte{0x12, 0x00, 0x32, 0x03, 0x30, 0x01, 0x02}
		pay = (&codecs.AV1Payloader{}).Payload
	case media.Opus:
		key = []byte{0xfc, 0xff, 0xfe, 1, 2, 3}
		delta = []byte{0x78, 0x0b, 0xe4, 0x81}
		pay = func(_ uint16, b []byte) [][]byte { return [][]byte{b} }
	default:
		tb.Fatalf("no seeds for %s", codec)
	}
	frame := func(b []byte, first bool) []fuzzPacket {
		var out []fuzzPacket
		for i, pl := range pay(300, b) { // small packets: small fuzz inputs
			p := fuzzPacket{dseq: 1, pl: pl}
			if i == 0 && !first {
				p.dts, p.wait = 3, 1
			}
			out = append(out, p)
		}
		if len(out) == 0 {
			tb.Fatalf("%s: no packets", codec)
		}
		out[len(out)-1].marker = true
		return out
	}
	var inOrder []fuzzPacket
	inOrder = append(inOrder, frame(key, true)...)
	for range 3 {
		inOrder = append(inOrder, frame(delta, false)...)
	}
	inOrder = append(inOrder, frame(key, false)...)

	// Swapped, duplicated and lost packets (not the very first: the
	// reorder buffer starts at the first packet it sees).
	k := frame(key, false)
	messy := frame(key, true)
	if len(k) >= 2 {
		// The second packet first, then the first, then the second again.
		a, b := k[0], k[1]
		b.dseq, a.dseq, a.dts, b.dts = 2, -1, 0, 3
		dup := b
		dup.dseq, dup.dts = 1, 0
		messy = append(messy, b, a, dup)
		messy = append(messy, k[2:]...)
	} else {
		messy = append(messy, k...)
		dup := k[0]
		dup.dseq = 0
		messy = append(messy, dup)
	}
	d := frame(delta, false)
	d[0].dseq = 3 // two packets lost
	messy = append(messy, d...)
	messy = append(messy, fuzzPacket{dseq: 1, wait: 3, pl: delta})
	messy = append(messy, frame(key, false)...)

	// A frame that never ends (no marker, the same timestamp): more than
	// the frame limit, which is dropped, then a key frame.
	var endless []fuzzPacket
	endless = append(endless, frame(key, true)...)
	chunk := frame(key, false)[0].pl
	for i := 0; i*len(chunk) < 2*fuzzFrameLimit; i++ {
		p := fuzzPacket{dseq: 1, pl: chunk}
		if i == 0 {
			p.dts = 3
		}
		endless = append(endless, p)
	}
	endless = append(endless, frame(key, false)...)

	seeds := map[string][]fuzzPacket{"in-order": inOrder, "messy": messy, "endless-frame": endless}
	switch codec {
	case media.H264:
		// FU-A starts that never end, each packet with the marker bit:
		// pion kept appending them to one NAL unit across frames.
		var fua []fuzzPacket
		fua = append(fua, frame(key, true)...)
		frag := append([]byte{0x7c, 0x85}, bytes.Repeat([]byte{0x55}, 200)...)
		for range 12 {
			fua = append(fua, fuzzPacket{marker: true, dseq: 1, dts: 3, pl: frag})
		}
		fua = append(fua, fuzzPacket{dseq: 1, dts: 3, pl: []byte{0x7c, 0x45, 0x66}}) // FU-A end, no marker
		fua = append(fua, frame(key, false)...)
		seeds["fua-without-end"] = fua
	case media.AV1:
		// OBU fragments (Z and Y set) that never end.
		var frg []fuzzPacket
		frg = append(frg, frame(key, true)...)
		frg = append(frg, fuzzPacket{dseq: 1, dts: 3, marker: true, pl: append([]byte{0x50, 0x32}, bytes.Repeat([]byte{1}, 200)...)})
		for range 12 {
			frg = append(frg, fuzzPacket{marker: true, dseq: 1, dts: 3, pl: append([]byte{0xd0}, bytes.Repeat([]byte{1}, 200)...)})
		}
		frg = append(frg, fuzzPacket{dseq: 1, dts: 3, pl: []byte{0x90, 1, 2}}) // last fragment, no marker
		frg = append(frg, frame(key, false)...)
		seeds["obu-fragment-without-end"] = frg
	}
	return seeds
}

// Fuzz input of FuzzReorder: records of 3 bytes,
//
//	control (1) | b1 | b2
//
// control bit 7: b1 b2 is the sequence number (big endian), else b1 is a
// signed delta from the previous one; control bits 0-6: the time since the
// previous packet in 2 ms units. The first byte picks the maximum delay.
func FuzzReorder(f *testing.F) {
	rec := func(delay byte, recs ...[3]byte) []byte {
		b := []byte{delay}
		for _, r := range recs {
			b = append(b, r[:]...)
		}
		return b
	}
	f.Add(rec(0, [3]byte{0x80, 0xff, 0xfe}, [3]byte{0, 1, 0}, [3]byte{0, 2, 0}, [3]byte{0, 0xff, 0}, [3]byte{0, 2, 0}))
	f.Add(rec(1, [3]byte{0x80, 0, 10}, [3]byte{0, 1, 0}, [3]byte{0, 2, 0}, [3]byte{50, 1, 0}, [3]byte{100, 0xfd, 0}))
	f.Add(rec(0, [3]byte{0x80, 0, 100}, [3]byte{0x80, 0, 102}, [3]byte{0x80, 0x13, 0x88}, [3]byte{0x80, 0x13, 0x89}, [3]byte{0x80, 0, 7}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		r := &reorder{maxDelay: audioReorderDelay}
		if data[0]&1 != 0 {
			r.maxDelay = videoReorderDelay
		}
		data = data[1:]
		now := time.Unix(1_700_000_000, 0)
		emitted := map[*rtp.Packet]bool{}
		var prev uint16
		var any bool
		var failure error
		emit := func(p *rtp.Packet, lost int) {
			switch {
			case failure != nil:
			case emitted[p]:
				failure = fmt.Errorf("packet %d emitted twice", p.SequenceNumber)
			case lost < 0 || lost >= 1<<16:
				failure = fmt.Errorf("lost %d", lost)
			case any && lost > 0 && p.SequenceNumber != prev+1+uint16(lost):
				failure = fmt.Errorf("%d after %d with %d lost", p.SequenceNumber, prev, lost)
			case any && lost == 0 && p.SequenceNumber != prev+1 && int16(p.SequenceNumber-prev-1) >= 0 && int16(p.SequenceNumber-prev-1) < reorderSize:
				failure = fmt.Errorf("%d after %d: a gap without loss", p.SequenceNumber, prev)
			}
			emitted[p] = true
			prev, any = p.SequenceNumber, true
		}
		var seq uint16
		pushed := 0
		for ; len(data) >= 3; data = data[3:] {
			if data[0]&0x80 != 0 {
				seq = binary.BigEndian.Uint16(data[1:])
			} else {
				seq += uint16(int16(int8(data[1])))
			}
			now = now.Add(time.Duration(data[0]&0x7f) * 2 * time.Millisecond)
			r.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq}}, now, emit)
			pushed++
			if failure != nil {
				t.Fatal(failure)
			}
			if err := reorderInvariants(r); err != nil {
				t.Fatal(err)
			}
			if any && r.next != prev+1 {
				t.Fatalf("next %d after %d", r.next, prev)
			}
		}
		r.flush(emit)
		if failure != nil {
			t.Fatal(failure)
		}
		if r.count != 0 || len(emitted) > pushed {
			t.Fatalf("after flush: %d buffered, %d emitted of %d", r.count, len(emitted), pushed)
		}
	})
}

// reorderInvariants checks the reorder buffer: a bounded count that
// matches its slots, every buffered packet in its slot and ahead of next
// within the window, a gap timer exactly when packets wait.
func reorderInvariants(r *reorder) error {
	n := 0
	for i, p := range r.buf {
		if p == nil {
			continue
		}
		n++
		d := int16(p.SequenceNumber - r.next)
		if int(p.SequenceNumber%reorderSize) != i || d < 1 || d >= reorderSize {
			return fmt.Errorf("packet %d in slot %d with next %d", p.SequenceNumber, i, r.next)
		}
	}
	if n != r.count || r.count > reorderSize*3/4 {
		return fmt.Errorf("count %d, %d packets buffered", r.count, n)
	}
	if (r.count == 0) != r.gapSince.IsZero() {
		return fmt.Errorf("count %d, gap since %v", r.count, r.gapSince)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Seed corpus generation (committed under testdata/fuzz/): run with
//
//	MOQGATE_GEN_FUZZ_CORPUS=1 go test ./ingest/whip -run TestGenerateFuzzCorpus

func TestGenerateFuzzCorpus(t *testing.T) {
	if os.Getenv("MOQGATE_GEN_FUZZ_CORPUS") == "" {
		t.Skip("set MOQGATE_GEN_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	for target, codec := range map[string]media.Codec{"FuzzDepacketizeH264": media.H264, "FuzzDepacketizeVP8": media.VP8,
		"FuzzDepacketizeVP9": media.VP9, "FuzzDepacketizeAV1": media.AV1, "FuzzDepacketizeOpus": media.Opus} {
		for name, s := range depackSeeds(t, codec) {
			writeCorpus(t, target, name, encodePackets(s))
		}
	}
	// Reorder: a wrap, a burst of reordering, a restart, a long gap.
	var burst []byte
	for _, s := range []int{0, 3, 1, 2, 6, 5, 4, 9, 7, 8} {
		burst = append(burst, 0x81, 0xff, byte(0xf8+s))
	}
	writeCorpus(t, "FuzzReorder", "burst-wrap", append([]byte{1}, burst...))
	var fill []byte
	for i := range 450 { // more than 3/4 of the window waiting behind a gap
		fill = append(fill, 0x80, byte((i+2)>>8), byte(i+2))
	}
	writeCorpus(t, "FuzzReorder", "window-fill", append([]byte{0, 0x80, 0, 0}, fill...))
}

func writeCorpus(t *testing.T, target, name string, b []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
