package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Seeds are built from the committed ffmpeg samples with sample payloads
// replaced by a few bytes, so the fuzzer mutates structure, not pixels.
// FMP4_WRITE_FUZZ_SEEDS=1 go test -run TestFMP4WriteFuzzSeeds ./media/
// writes them to testdata/fuzz/ (where `go test -fuzz` also leaves the
// inputs it found failing).

func fmp4SmallFrames(src fmp4Demuxed, name string, n int) []Frame {
	var out []Frame
	for i, f := range src.frames[name] {
		if i == n {
			break
		}
		f.Data = []byte{0, 0, 0, 2, byte(i), 0xaa}
		out = append(out, f)
	}
	return out
}

func fmp4FuzzSeeds(t testing.TB) (demux, mux [][]byte) {
	src := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	vinit := fmp4TestInit(t, src.track("video"), 1)
	ainit := fmp4TestInit(t, src.track("audio"), 2)
	var stream bytes.Buffer
	m, err := NewFMP4Muxer(&stream, []FMP4MuxTrack{{"video", vinit}, {"audio", ainit}})
	if err != nil {
		t.Fatal(err)
	}
	vf, af := fmp4SmallFrames(src, "video", 4), fmp4SmallFrames(src, "audio", 4)
	for i := range vf {
		v := fmp4TestFragment(t, 1, uint32(i+1), vf[i], 0)
		a := fmp4TestFragment(t, 2, uint32(i+1), af[i], uint64(1000*i+7))
		if err := m.WriteObject("video", v); err != nil {
			t.Fatal(err)
		}
		if err := m.WriteObject("audio", a); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			mux = append(mux, v)
		}
		if i == 0 {
			mux = append(mux, append(a, fmp4TestFragment(t, 2, 9, af[1], 0)...))
		}
	}
	demux = append(demux, stream.Bytes())

	// A multi-track, multi-sample moof (ffmpeg cmaf) and a trun relying on
	// tfhd/trex defaults without data_offset.
	var boxes [][]byte
	b, _ := os.ReadFile(filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	fmp4IterBoxes(t, b, func(_ string, box []byte) { boxes = append(boxes, box) })
	demux = append(demux, append(bytes.Join(boxes[:2], nil), fmp4InterleavedFragment(t, vf, af)...))
	mux = append(mux, fmp4NoOffsetFragment(t, vf[0]))
	return demux, mux
}

// fmp4InterleavedFragment makes one moof for tracks 1 and 2 with a trun
// per sample, alternating between the tracks in the mdat.
func fmp4InterleavedFragment(t testing.TB, vf, af []Frame) []byte {
	frag, err := mp4.CreateMultiTrackFragment(1, []uint32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range vf {
		for _, p := range []struct {
			id uint32
			f  Frame
		}{{1, vf[i]}, {2, af[i]}} {
			id, f := p.id, p.f
			s := mp4.FullSample{Sample: mp4.Sample{Flags: mp4.NonSyncSampleFlags, Dur: uint32(f.Duration),
				Size: uint32(len(f.Data)), CompositionTimeOffset: int32(f.CTO)}, DecodeTime: uint64(f.DTS), Data: f.Data}
			if err := frag.AddFullSampleToTrack(s, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	var buf bytes.Buffer
	if err := frag.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fmp4NoOffsetFragment makes a fragment whose tfhd has no base flags and
// whose trun has no data_offset: its data then starts at the moof's first
// byte, which can only be right if the moof is empty - a malformed corner
// the parsers must reject without panicking.
func fmp4NoOffsetFragment(t testing.TB, f Frame) []byte {
	frag, err := mp4.CreateFragment(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	frag.AddFullSample(mp4.FullSample{Sample: mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: 512, Size: uint32(len(f.Data))}, Data: f.Data})
	frag.Moof.Traf.Tfhd.Flags = 0
	frag.Moof.Traf.Trun.Flags &^= mp4.TrunDataOffsetPresentFlag
	var buf bytes.Buffer
	if err := frag.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFMP4WriteFuzzSeeds(t *testing.T) {
	if os.Getenv("FMP4_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set FMP4_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz seeds")
	}
	demux, mux := fmp4FuzzSeeds(t)
	for dir, seeds := range map[string][][]byte{"FuzzFMP4Demuxer": demux, "FuzzFMP4MuxerWriteObject": mux} {
		dir = filepath.Join("testdata", "fuzz", dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func fmp4QuietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func FuzzFMP4Demuxer(f *testing.F) {
	demux, _ := fmp4FuzzSeeds(f)
	for _, s := range demux {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewFMP4Demuxer(bytes.NewReader(data), 1<<16)
		d.SetLogger(fmp4QuietLogger())
		tracks, err := d.Tracks()
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, ti := range tracks {
			names[ti.Name] = true
		}
		// Each call consumes a sample or a box of at least 8 bytes.
		for i := 0; i <= len(data); i++ {
			name, fr, err := d.Next()
			if errors.Is(err, ErrFMP4TracksChanged) {
				if tracks, err = d.Tracks(); err != nil {
					return
				}
				clear(names)
				for _, ti := range tracks {
					names[ti.Name] = true
				}
				continue
			}
			if err != nil {
				return
			}
			if !names[name] || fr.Duration < 0 || len(fr.Data) > len(data) {
				t.Fatalf("bad frame: track %q duration %d size %d", name, fr.Duration, len(fr.Data))
			}
		}
		t.Fatal("Next did not terminate")
	})
}

func FuzzFMP4MuxerWriteObject(f *testing.F) {
	_, mux := fmp4FuzzSeeds(f)
	for _, s := range mux {
		f.Add(s)
	}
	src := fmp4DemuxFile(f, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	ins := []FMP4MuxTrack{
		{"video", fmp4TestInit(f, src.track("video"), 1)},
		{"audio", fmp4TestInit(f, src.track("audio"), 2)},
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		var out bytes.Buffer
		m, err := NewFMP4Muxer(&out, ins)
		if err != nil {
			t.Fatal(err)
		}
		head := out.Len()
		if err := m.WriteObject("video", obj); err != nil {
			if out.Len() != head {
				t.Fatalf("rejected object was partly written: %v", err)
			}
			return
		}
		// Whatever the muxer accepts must read back as a valid stream.
		d := NewFMP4Demuxer(bytes.NewReader(out.Bytes()), 0)
		d.SetLogger(fmp4QuietLogger())
		if _, err := d.Tracks(); err != nil {
			t.Fatalf("Tracks: %v", err)
		}
		for {
			_, _, err := d.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("muxer output does not demux: %v", err)
			}
		}
	})
}

// TestFMP4Mutations is a deterministic complement to the fuzz targets for
// plain `go test`: thousands of mutated streams and objects (bit flips,
// overwritten size fields, truncation, duplication) must give errors, not
// panics or hangs.
func TestFMP4Mutations(t *testing.T) {
	demux, mux := fmp4FuzzSeeds(t)
	src := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	ins := []FMP4MuxTrack{
		{"video", fmp4TestInit(t, src.track("video"), 1)},
		{"audio", fmp4TestInit(t, src.track("audio"), 2)},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		in := fmp4Mutate(rng, demux[i%len(demux)])
		d := NewFMP4Demuxer(bytes.NewReader(in), 1<<16)
		d.SetLogger(fmp4QuietLogger())
		if _, err := d.Tracks(); err == nil {
			for j := 0; j <= len(in); j++ {
				if _, _, err := d.Next(); err != nil && !errors.Is(err, ErrFMP4TracksChanged) {
					break
				}
			}
		}
		var out bytes.Buffer
		m, err := NewFMP4Muxer(&out, ins)
		if err != nil {
			t.Fatal(err)
		}
		_ = m.WriteObject("video", fmp4Mutate(rng, mux[i%len(mux)]))
	}
}

func fmp4Mutate(rng *rand.Rand, seed []byte) []byte {
	b := bytes.Clone(seed)
	for k := rng.IntN(4) + 1; k > 0 && len(b) > 0; k-- {
		p := rng.IntN(len(b))
		switch rng.IntN(6) {
		case 0: // flip a bit
			b[p] ^= 1 << rng.IntN(8)
		case 1: // interesting 32-bit value, often hitting a size or count
			v := []uint32{0, 1, 7, 8, 0x7fffffff, 0x80000000, 0xffffffff, uint32(len(b)), uint32(rng.IntN(1 << 16))}[rng.IntN(9)]
			if p+4 <= len(b) {
				binary.BigEndian.PutUint32(b[p:], v)
			}
		case 2: // truncate
			b = b[:p]
		case 3: // duplicate a range
			q := p + rng.IntN(len(b)-p)
			b = append(b[:q:q], append(bytes.Clone(b[p:q]), b[q:]...)...)
		case 4: // delete a range
			q := p + rng.IntN(len(b)-p)
			b = append(b[:p:p], b[q:]...)
		case 5: // random byte
			b[p] = byte(rng.IntN(256))
		}
	}
	return b
}
