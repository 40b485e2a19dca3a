package media

import (
	"bytes"
	"testing"
)

func TestChunkReaderRoundTrip(t *testing.T) {
	for _, ti := range []TrackInfo{pkgVideo(), pkgAudio()} {
		init, err := InitSegment(ti)
		must(t, err)
		r, err := NewChunkReader(init)
		must(t, err)
		if got := r.Info(); got.Codec != ti.Codec || got.Timescale != ti.Timescale {
			t.Fatalf("info %+v, want codec %s timescale %d", got, ti.Codec, ti.Timescale)
		}
		fw := NewFragmentWriter(ti)
		in := []Frame{
			{DTS: 1000, CTO: 3000, Keyframe: true, Duration: 1500, Data: []byte{1, 2, 3}},
			{DTS: 2500, CTO: -1500, Keyframe: false, Duration: 1500, Data: []byte{4, 5}},
		}
		for _, f := range in {
			obj, err := fw.Fragment(f)
			must(t, err)
			got, err := r.Frames(obj, nil)
			must(t, err)
			if len(got) != 1 {
				t.Fatalf("%d frames", len(got))
			}
			g := got[0]
			wantKey := f.Keyframe || ti.Codec.Kind() == Audio
			if g.DTS != f.DTS || g.CTO != f.CTO || g.Duration != f.Duration || g.Keyframe != wantKey || !bytes.Equal(g.Data, f.Data) {
				t.Errorf("%s: got %+v, want %+v", ti.Codec, g, f)
			}
		}
		// Two fragments in one object.
		a, _ := fw.Fragment(Frame{DTS: 4000, Keyframe: true, Duration: 10, Data: []byte{7}})
		b, _ := fw.Fragment(Frame{DTS: 4010, Keyframe: true, Duration: 10, Data: []byte{8, 9}})
		got, err := r.Frames(append(a, b...), nil)
		must(t, err)
		if len(got) != 2 || got[1].DTS != 4010 || !bytes.Equal(got[1].Data, []byte{8, 9}) {
			t.Errorf("two fragments: %+v", got)
		}
	}
}

func TestChunkReaderRejectsGarbage(t *testing.T) {
	init, err := InitSegment(pkgVideo())
	must(t, err)
	r, err := NewChunkReader(init)
	must(t, err)
	for _, b := range [][]byte{nil, {0, 0, 0, 8, 'm', 'd', 'a', 't'}, {0, 0, 0, 9, 'm', 'o', 'o', 'f'}, init, bytes.Repeat([]byte{0xff}, 40)} {
		if fr, err := r.Frames(b, nil); err == nil {
			t.Errorf("%x: no error, frames %+v", b, fr)
		}
	}
	if _, err := NewChunkReader([]byte("nonsense")); err == nil {
		t.Error("garbage init accepted")
	}
}

func FuzzChunkReader(f *testing.F) {
	ti := pkgVideo()
	init, _ := InitSegment(ti)
	fw := NewFragmentWriter(ti)
	obj, _ := fw.Fragment(Frame{DTS: 1, Keyframe: true, Data: []byte{1, 2, 3}})
	f.Add(obj)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewChunkReader(init)
		if err != nil {
			t.Fatal(err)
		}
		r.Frames(b, nil)
	})
}
