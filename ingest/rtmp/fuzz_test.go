package rtmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"github.com/moqgate/moqgate/media"
)

// Fuzz input of FuzzDemux: a sequence of records
//
//	kind (1 byte: 0 video, 1 audio, 2 AMF0 data) | timestamp (4) | length (3) | body
//
// i.e. the audio / video / data messages of a publish, as the session hands
// them to the demuxer.
const (
	recVideo = 0
	recAudio = 1
	recData  = 2
)

type fuzzRecord struct {
	kind byte
	ts   uint32
	body []byte
}

func encodeRecords(recs []fuzzRecord) []byte {
	var b []byte
	for _, r := range recs {
		b = append(b, r.kind)
		b = binary.BigEndian.AppendUint32(b, r.ts)
		b = append(b, byte(len(r.body)>>16), byte(len(r.body)>>8), byte(len(r.body)))
		b = append(b, r.body...)
	}
	return b
}

// FuzzDemux feeds message bodies to the demuxer (the FLV / Enhanced RTMP tag
// parsing and the conversion into TrackInfo / Frame, all moqgate's code) and
// checks it neither panics nor breaks the BroadcastWriter contract or the
// Frame format.
func FuzzDemux(f *testing.F) {
	f.Add(encodeRecords(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		w := &checkingWriter{}
		d := newDemuxer(slog.New(slog.DiscardHandler), w, 1<<20)
		for len(data) >= 8 {
			kind, ts := data[0], binary.BigEndian.Uint32(data[1:])
			n := int(data[5])<<16 | int(data[6])<<8 | int(data[7])
			data = data[8:]
			if n > len(data) {
				n = len(data)
			}
			body := data[:n]
			data = data[n:]
			var err error
			switch kind % 3 {
			case recVideo:
				err = d.handleVideo(ts, body)
			case recAudio:
				err = d.handleAudio(ts, body)
			case recData:
				if v, e := amf0.Unmarshal(body); e == nil && len(v) > 0 {
					if obj, ok := amfObject(v[len(v)-1]); ok {
						d.handleMetadata(obj)
					}
				}
			}
			if w.err != nil {
				t.Fatal(w.err)
			}
			if err != nil {
				if !errors.Is(err, errMalformed) && !errors.Is(err, errNoSupportedTracks) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
		}
		if err := d.finish(); err != nil {
			t.Fatal(err)
		}
		if w.err != nil {
			t.Fatal(w.err)
		}
	})
}

// checkingWriter checks the BroadcastWriter contract and the Frame format.
type checkingWriter struct {
	tracks map[string]media.TrackInfo
	err    error
}

func (w *checkingWriter) fail(format string, args ...any) error {
	if w.err == nil {
		w.err = fmt.Errorf(format, args...)
	}
	return w.err
}

func (w *checkingWriter) SetTracks(tracks []media.TrackInfo) error {
	if len(tracks) == 0 || len(tracks) > 2 {
		return w.fail("SetTracks with %d tracks", len(tracks))
	}
	w.tracks = map[string]media.TrackInfo{}
	for _, t := range tracks {
		if t.Name != "video" && t.Name != "audio" || t.Codec.Kind() != media.Kind(t.Name) || t.Timescale != timescale {
			return w.fail("bad track %+v", t)
		}
		switch t.Codec {
		case media.H264:
			if len(t.SPS) == 0 || len(t.PPS) == 0 {
				return w.fail("H.264 track without SPS/PPS")
			}
		case media.H265:
			if len(t.VPS) == 0 || len(t.SPS) == 0 || len(t.PPS) == 0 {
				return w.fail("H.265 track without VPS/SPS/PPS")
			}
		case media.AV1:
			if o, err := splitOBUs(t.AV1SequenceHeader); err != nil || len(o) != 1 || o[0].typ != av1.OBUTypeSequenceHeader {
				return w.fail("AV1 track with a bad sequence header %x", t.AV1SequenceHeader)
			}
		case media.AAC:
			if len(t.AACConfig) == 0 {
				return w.fail("AAC track without config")
			}
		}
		w.tracks[t.Name] = t
	}
	return nil
}

func (w *checkingWriter) WriteFrame(name string, f media.Frame) error {
	t, ok := w.tracks[name]
	if !ok {
		return w.fail("frame on unannounced track %q", name)
	}
	if len(f.Data) == 0 {
		return w.fail("empty frame")
	}
	switch t.Codec {
	case media.H264, media.H265:
		for b := f.Data; len(b) > 0; {
			if len(b) < 5 {
				return w.fail("truncated AVCC")
			}
			n := int(binary.BigEndian.Uint32(b))
			if n == 0 || n > len(b)-4 {
				return w.fail("bad NAL unit length")
			}
			if isParamSetOrAUD(t.Codec == media.H264, b[4]) {
				return w.fail("parameter set or AUD in a frame")
			}
			b = b[4+n:]
		}
	case media.AV1:
		obus, err := splitOBUs(f.Data)
		if err != nil {
			return w.fail("bad AV1 frame: %v", err)
		}
		for _, o := range obus {
			if o.typ == av1.OBUTypeTemporalDelimiter || !o.hasSize {
				return w.fail("temporal delimiter or OBU without size in an AV1 frame")
			}
		}
	default:
		if f.CTO != 0 {
			return w.fail("CTO on %s", t.Codec)
		}
	}
	if t.Codec.Kind() == media.Audio && !f.Keyframe {
		return w.fail("audio frame not a keyframe")
	}
	return nil
}

func (w *checkingWriter) Close() error { return nil }

// FuzzChunkGuard checks the chunk guard against gortmplib's chunk reader on
// arbitrary chunk streams: with limits out of the way, both must yield the
// same messages, and the guard must never reject a stream the library
// (with the session's handling of control messages) reads cleanly.
func FuzzChunkGuard(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		plain, perr := readChunkStream(bytes.NewReader(data))
		g := newChunkGuard(bytes.NewReader(data), libMaxBodySize)
		g.maxAMF = libMaxBodySize
		guarded, gerr := readChunkStream(g)
		if len(guarded) > len(plain) {
			t.Fatalf("guard yields %d messages, library %d", len(guarded), len(plain))
		}
		for i, m := range guarded {
			p := plain[i]
			if m.Type != p.Type || m.Timestamp != p.Timestamp || m.ChunkStreamID != p.ChunkStreamID ||
				m.MessageStreamID != p.MessageStreamID || !bytes.Equal(m.Body, p.Body) {
				t.Fatalf("message %d differs", i)
			}
		}
		// The library checks a message's length only after its first chunk
		// body: on a truncated stream it may report EOF where the guard
		// already refused the declared length.
		if errors.Is(gerr, errLimit) {
			return
		}
		if errors.Is(perr, io.EOF) && (!errors.Is(gerr, io.EOF) || len(guarded) != len(plain)) {
			t.Fatalf("library read %d messages cleanly, guard %d then %v", len(plain), len(guarded), gerr)
		}
		if errors.Is(gerr, errGuard) && errors.Is(perr, io.EOF) {
			t.Fatalf("false positive: %v", gerr)
		}
	})
}

// readChunkStream reads raw messages like the session does.
func readChunkStream(r io.Reader) ([]*rawmessage.Message, error) {
	br := bytecounter.NewReader(r)
	rr := rawmessage.NewReader(br, br, func(uint32) error { return nil })
	var out []*rawmessage.Message
	for len(out) < 100000 {
		m, err := rr.Read()
		if err != nil {
			return out, err
		}
		switch m.Type {
		case msgTypeSetChunkSize:
			v, err := ctrlValue(m)
			if err == nil {
				err = validChunkSize(v)
			}
			if err != nil {
				return out, err
			}
			if err := rr.SetChunkSize(v); err != nil {
				return out, err
			}
		case msgTypeAbort:
			v, err := ctrlValue(m)
			if err != nil {
				return out, err
			}
			rr.AbortChunkStream(v)
		}
		out = append(out, m)
	}
	return out, nil
}

// FuzzSession feeds raw RTMP messages (after the chunk layer) to a session:
// control messages, AMF commands (connect, publish...), metadata and media.
// Input records: type (1) | timestamp (4) | length (3) | body.
func FuzzSession(f *testing.F) {
	cmd := func(v ...any) []byte {
		b, err := amf0.Data(v).Marshal()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	meta, _ := amf0.Data{"@setDataFrame", "onMetaData", amfMeta(7, 10)}.Marshal()
	avcC := []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x28, 0xff, 0xe1, 0, byte(len(testSPS))}
	avcC = append(append(avcC, testSPS...), 1, 0, 4, 8, 6, 7, 8)
	f.Add(encodeRecords([]fuzzRecord{
		{20, 0, cmd("connect", 1.0, amf0.Object{{Key: "app", Value: "live"}, {Key: "tcUrl", Value: "rtmp://h/live"}})},
		{1, 0, []byte{0, 0, 16, 0}},
		{20, 0, cmd("createStream", 2.0, nil)},
		{20, 0, cmd("publish", 3.0, nil, "test?k=v", "live")},
		{18, 0, meta},
		{9, 0, avcC},
		{8, 0, []byte{0xaf, 0, 0x12, 0x10}},
		{9, 0, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x80}},
		{8, 23, []byte{0xaf, 1, 0x21, 0x1b}},
		{4, 0, []byte{0, 6, 0, 0, 0, 1}},
		{20, 0, cmd("deleteStream", 4.0, nil, 1.0)},
	}))
	f.Add(encodeRecords([]fuzzRecord{
		{20, 0, cmd("connect", 1.0, amf0.Object{{Key: "app", Value: "live"}})},
		{20, 0, cmd("play", 2.0, nil, "x")},
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		srv, err := NewServer(Config{
			Logger: slog.New(slog.DiscardHandler),
			OnPublish: func(context.Context, PublishRequest) (media.BroadcastWriter, error) {
				return &checkingWriter{}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		bc := bytecounter.NewReadWriter(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(nil), io.Discard})
		s := &session{srv: srv, nc: &deadlineConn{Conn: nopConn{}}, log: srv.log}
		s.w = message.NewWriter(bc.Writer, bc.Writer, false)
		s.r = rawmessage.NewReader(bc.Reader, bc.Reader, func(uint32) error { return nil })
		var err2 error
		for len(data) >= 8 && err2 == nil && !s.done {
			typ, ts := data[0], binary.BigEndian.Uint32(data[1:])
			n := min(int(data[5])<<16|int(data[6])<<8|int(data[7]), len(data)-8)
			raw := &rawmessage.Message{Type: typ, Timestamp: time.Duration(ts) * time.Millisecond, Body: data[8 : 8+n]}
			data = data[8+n:]
			err2 = s.handle(context.Background(), raw)
		}
		s.end(err2, false)
		if s.bw != nil && s.bw.(*checkingWriter).err != nil {
			t.Fatal(s.bw.(*checkingWriter).err)
		}
	})
}

// nopConn is a net.Conn that does nothing.
type nopConn struct{ net.Conn }

func (nopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }

// ---------------------------------------------------------------------------
// Seed corpus generation (committed under testdata/fuzz/): run with
//
//	MOQGATE_GEN_FUZZ_CORPUS=1 go test ./ingest/rtmp/ -run TestGenerateFuzzCorpus

func TestGenerateFuzzCorpus(t *testing.T) {
	if os.Getenv("MOQGATE_GEN_FUZZ_CORPUS") == "" {
		t.Skip("set MOQGATE_GEN_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	small := "testsrc2=size=64x64:rate=30:duration=0.4"
	tone := "sine=frequency=440:duration=0.4"
	demux := map[string][]fuzzRecord{}
	chunks := map[string][]byte{}

	for name, args := range map[string][]string{
		"flv-h264-aac-bframes": {"-f", "lavfi", "-i", small, "-f", "lavfi", "-i", tone,
			"-c:v", "libx264", "-bf", "2", "-g", "6", "-c:a", "aac", "-f", "flv"},
		"flv-h264-mp3": {"-f", "lavfi", "-i", small, "-f", "lavfi", "-i", tone,
			"-c:v", "libx264", "-bf", "0", "-g", "6", "-c:a", "libmp3lame", "-ar", "44100", "-f", "flv"},
	} {
		demux[name] = flvRecords(t, ffmpegOut(t, name+".flv", args...))
	}

	// Enhanced RTMP, written by gortmplib's Writer.
	enhanced := func(name string, tracks []*gortmplib.Track, write func(w *gortmplib.Writer)) {
		c := newCaptureConn()
		c.Write(&message.SetChunkSize{Value: 200}) // several chunks per frame
		w := &gortmplib.Writer{Conn: c, Tracks: tracks}
		if err := w.Initialize(); err != nil {
			t.Fatal(err)
		}
		write(w)
		chunks[name] = c.buf.Bytes()
		for _, m := range c.rawMessages(t) {
			switch m.Type {
			case 8, 9, 18:
				demux[name] = append(demux[name], fuzzRecord{map[uint8]byte{9: recVideo, 8: recAudio, 18: recData}[m.Type],
					uint32(m.Timestamp / time.Millisecond), m.Body})
			}
		}
	}
	hevc := hevcAccessUnits(t, ffmpegOut(t, "v.hevc", "-f", "lavfi", "-i", small,
		"-c:v", "libx265", "-x265-params", "keyint=6:bframes=0:log-level=error", "-f", "hevc"))
	pkts := oggPackets(t, ffmpegOut(t, "a.ogg", "-f", "lavfi", "-i", tone, "-c:a", "libopus", "-f", "ogg"))
	var head opus.IDHeader
	if err := head.Unmarshal(pkts[0]); err != nil {
		t.Fatal(err)
	}
	var vps, sps, pps []byte
	for _, n := range hevc[0] {
		switch (n[0] >> 1) & 0x3f {
		case 32:
			vps = n
		case 33:
			sps = n
		case 34:
			pps = n
		}
	}
	vt := &gortmplib.Track{Codec: &codecs.H265{VPS: vps, SPS: sps, PPS: pps}}
	at := &gortmplib.Track{Codec: &codecs.Opus{IDHeader: &head}}
	enhanced("ertmp-hevc-opus", []*gortmplib.Track{vt, at}, func(w *gortmplib.Writer) {
		for i, au := range hevc {
			ts := time.Duration(i) * time.Second / 30
			must(t, w.WriteH265(vt, ts, ts, au))
			if i+2 < len(pkts) {
				must(t, w.WriteOpus(at, time.Duration(i)*20*time.Millisecond, pkts[i+2]))
			}
		}
	})
	av1t := &gortmplib.Track{Codec: &codecs.AV1{}}
	tus := ivfFrames(t, ffmpegOut(t, "v.ivf", "-f", "lavfi", "-i", small,
		"-c:v", "libsvtav1", "-preset", "12", "-g", "6", "-f", "ivf"))
	enhanced("ertmp-av1", []*gortmplib.Track{av1t}, func(w *gortmplib.Writer) {
		for i, tu := range tus {
			var bs av1.Bitstream
			must(t, bs.Unmarshal(tu))
			must(t, w.WriteAV1(av1t, time.Duration(i)*time.Second/30, bs[1:]))
		}
	})
	vp9t := &gortmplib.Track{Codec: &codecs.VP9{}}
	vp9 := ivfFrames(t, ffmpegOut(t, "v9.ivf", "-f", "lavfi", "-i", small,
		"-c:v", "libvpx-vp9", "-deadline", "realtime", "-g", "6", "-f", "ivf"))
	enhanced("ertmp-vp9", []*gortmplib.Track{vp9t}, func(w *gortmplib.Writer) {
		for i, fr := range vp9 {
			must(t, w.WriteVP9(vp9t, time.Duration(i)*time.Second/30, fr))
		}
	})

	// Hand-made: multitrack, ModEx, unsupported codecs, metadata.
	meta, err := amf0.Data{"@setDataFrame", "onMetaData", amfMeta(7, 11)}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	avcC := []byte{1, 0x42, 0xc0, 0x28, 0xff, 0xe1, 0, byte(len(testSPS))}
	avcC = append(avcC, testSPS...)
	avcC = append(avcC, 1, 0, byte(len(testPPS)))
	avcC = append(avcC, testPPS...)
	mt := []byte{0x90 | exVideoMultitrack, mtOneTrack<<4 | exSequenceStart, 'a', 'v', 'c', '1', 0}
	modex := []byte{0x90 | exModEx, 3, 0, 0, 0, 0, 0x10 | exVideoMultitrack, mtManyTracks<<4 | exCodedFrames, 'a', 'v', 'c', '1',
		0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x80,
		1, 0, 0, 10, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x80}
	demux["handmade"] = []fuzzRecord{
		{recData, 0, meta},
		{recVideo, 0, append(mt, avcC...)},
		{recAudio, 0, []byte{0xb6, 1, 2, 3}},
		{recVideo, 0, modex},
		{recVideo, 40, []byte{0x27, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 2, 9, 0xf0, 0, 0, 0, 2, 0x41, 1}},
		{recAudio, 50, []byte{0x90 | exCodedFrames, 'f', 'L', 'a', 'C', 1, 2}},
		{recVideo, 2000, []byte{0x14, 1, 2, 3, 4, 5}},
	}

	for name, recs := range demux {
		writeCorpus(t, "FuzzDemux", name, encodeRecords(recs))
	}
	for name, b := range chunks {
		writeCorpus(t, "FuzzChunkGuard", name, b)
	}
	// interleaved chunk streams, extended timestamps, abort
	var il []byte
	il = append(il, chunk0(4, 0xFFFFFF, 300, 8)...)
	il = append(il, 0, 0, 0x10, 0) // extended timestamp
	il = append(il, make([]byte, 128)...)
	il = append(il, chunk0(6, 5, 10, 9)...)
	il = append(il, make([]byte, 10)...)
	il = append(il, 0xc4, 0, 0, 0x10, 0) // type 3 with extended timestamp
	il = append(il, make([]byte, 128)...)
	il = append(il, 0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 4) // abort csid 4
	il = append(il, 0x86, 0, 0, 1)                                     // type 2 on csid 6
	il = append(il, make([]byte, 10)...)
	writeCorpus(t, "FuzzChunkGuard", "interleaved", il)
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
	t.Logf("%s/%s: %d bytes", target, name, len(b))
}

// flvRecords returns the tags of an FLV file as fuzz records.
func flvRecords(t *testing.T, b []byte) []fuzzRecord {
	t.Helper()
	if len(b) < 13 || string(b[:3]) != "FLV" {
		t.Fatal("not an FLV file")
	}
	b = b[13:]
	var out []fuzzRecord
	for len(b) >= 11 {
		typ := b[0]
		n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		ts := uint32(b[7])<<24 | uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
		body := b[11 : 11+n]
		b = b[11+n+4:]
		switch typ {
		case 8:
			out = append(out, fuzzRecord{recAudio, ts, body})
		case 9:
			out = append(out, fuzzRecord{recVideo, ts, body})
		case 18:
			out = append(out, fuzzRecord{recData, ts, body})
		}
	}
	return out
}

// TestFuzzSeeds runs the committed seed corpus through the demuxer with a
// recorder, checking that the real streams in it produce tracks and frames.
func TestFuzzSeeds(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDemux", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed corpus: %v", err)
	}
	for _, f := range files {
		if filepath.Base(f) == "handmade" {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			q := strings.TrimSuffix(strings.TrimPrefix(string(b), "go test fuzz v1\n[]byte("), ")\n")
			s, err := strconv.Unquote(q)
			if err != nil {
				t.Fatal(err)
			}
			data := []byte(s)
			rec := newRecorder()
			d := newDemuxer(slog.New(slog.DiscardHandler), rec, 1<<20)
			for len(data) >= 8 {
				kind, ts := data[0], binary.BigEndian.Uint32(data[1:])
				n := int(data[5])<<16 | int(data[6])<<8 | int(data[7])
				body := data[8 : 8+n]
				data = data[8+n:]
				switch kind {
				case recVideo:
					must(t, d.handleVideo(ts, body))
				case recAudio:
					must(t, d.handleAudio(ts, body))
				case recData:
					v, err := amf0.Unmarshal(body)
					must(t, err)
					if obj, ok := amfObject(v[len(v)-1]); ok {
						d.handleMetadata(obj)
					}
				}
			}
			must(t, d.finish())
			sets, frames := rec.snapshot(t)
			if len(sets) == 0 || len(frames["video"]) < 5 {
				t.Fatalf("%d SetTracks, %d video frames", len(sets), len(frames["video"]))
			}
			want := map[string][]media.Codec{
				"flv-h264-aac-bframes": {media.H264, media.AAC},
				"flv-h264-mp3":         {media.H264, media.MP3},
				"ertmp-hevc-opus":      {media.H265, media.Opus},
				"ertmp-av1":            {media.AV1},
				"ertmp-vp9":            {media.VP9},
			}[filepath.Base(f)]
			last := sets[len(sets)-1]
			for i, c := range want {
				if i >= len(last) || last[i].Codec != c || len(frames[last[i].Name]) == 0 {
					t.Errorf("tracks %+v, want codecs %v with frames", last, want)
				}
			}
		})
	}
}
