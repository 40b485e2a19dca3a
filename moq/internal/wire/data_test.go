package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

type testObject struct {
	oh      ObjectHeader
	payload []byte
}

// subgroupObjects returns objects exercising gaps, large deltas, zero-length
// normal objects, status objects and (if ext) extension blocks.
func subgroupObjects(firstID uint64, ext bool) []testObject {
	var e []byte
	if ext {
		e = AppendExtensions(nil, Params{UintParam(ExtPriorObjectIDGap, 3), BytesParam(0x4d, []byte("trace"))})
	}
	return []testObject{
		{ObjectHeader{ObjectID: firstID, PayloadLen: 4}, []byte("abcd")},
		{ObjectHeader{ObjectID: firstID + 1, Status: ObjectStatusNormal}, nil},
		{ObjectHeader{ObjectID: firstID + 5, Extensions: e, PayloadLen: 300}, bytes.Repeat([]byte{0xee}, 300)},
		{ObjectHeader{ObjectID: firstID + 1<<40, Extensions: e, PayloadLen: 1}, []byte("x")},
		{ObjectHeader{ObjectID: firstID + 1<<40 + 1, Status: ObjectStatusEndOfGroup}, nil},
	}
}

func TestSubgroupTypeTable(t *testing.T) {
	// §10.4.2 table: type -> (subgroup ID field/value, extensions, end of group).
	want := map[uint64]struct {
		mode     int
		ext, eog bool
	}{
		0x10: {SubgroupIDZero, false, false}, 0x11: {SubgroupIDZero, true, false},
		0x12: {SubgroupIDFirstObject, false, false}, 0x13: {SubgroupIDFirstObject, true, false},
		0x14: {SubgroupIDExplicit, false, false}, 0x15: {SubgroupIDExplicit, true, false},
		0x18: {SubgroupIDZero, false, true}, 0x19: {SubgroupIDZero, true, true},
		0x1A: {SubgroupIDFirstObject, false, true}, 0x1B: {SubgroupIDFirstObject, true, true},
		0x1C: {SubgroupIDExplicit, false, true}, 0x1D: {SubgroupIDExplicit, true, true},
	}
	for typ := uint64(0); typ < 0x40; typ++ {
		w, ok := want[typ]
		if IsSubgroupType(typ) != ok {
			t.Errorf("IsSubgroupType(0x%x) = %v", typ, !ok)
		}
		if !ok {
			continue
		}
		if got := SubgroupType(w.ext, w.eog, w.mode); got != typ {
			t.Errorf("SubgroupType(%v,%v,%d) = 0x%x, want 0x%x", w.ext, w.eog, w.mode, got, typ)
		}
		h := SubgroupHeader{Type: typ}
		if h.HasExtensions() != w.ext || h.EndOfGroup() != w.eog || h.SubgroupIDMode() != w.mode {
			t.Errorf("0x%x: flags %v %v %d", typ, h.HasExtensions(), h.EndOfGroup(), h.SubgroupIDMode())
		}
	}
}

func TestSubgroupStreamsAllTypes(t *testing.T) {
	for _, ext := range []bool{false, true} {
		for _, eog := range []bool{false, true} {
			for mode := SubgroupIDZero; mode <= SubgroupIDExplicit; mode++ {
				typ := SubgroupType(ext, eog, mode)
				firstID := uint64(0)
				if mode == SubgroupIDFirstObject {
					firstID = 7
				}
				h := SubgroupHeader{Type: typ, TrackAlias: 1 << 20, GroupID: 1 << 35, PublisherPriority: 0xa0}
				switch mode {
				case SubgroupIDExplicit:
					h.SubgroupID = 12345
				case SubgroupIDFirstObject:
					h.SubgroupID = firstID
				}
				objs := subgroupObjects(firstID, ext)
				buf := AppendSubgroupHeader(nil, h)
				var prev uint64
				for i, o := range objs {
					buf = AppendSubgroupObjectHeader(buf, typ, prev, i == 0, o.oh)
					buf = append(buf, o.payload...)
					prev = o.oh.ObjectID
				}

				// Read back through a small buffer so payloads straddle refills.
				sr := NewStreamReader(bufio.NewReaderSize(bytes.NewReader(buf), 16))
				gotType, err := sr.ReadStreamType()
				if err != nil || gotType != typ {
					t.Fatalf("0x%x: ReadStreamType = 0x%x, %v", typ, gotType, err)
				}
				gh, err := sr.ReadSubgroupHeader(gotType)
				if err != nil {
					t.Fatalf("0x%x: header: %v", typ, err)
				}
				for i, o := range objs {
					oh, err := sr.ReadSubgroupObject(gh, prev, i == 0, 1<<20)
					if err != nil {
						t.Fatalf("0x%x object %d: %v", typ, i, err)
					}
					if i == 0 && gh.SubgroupIDMode() == SubgroupIDFirstObject {
						gh.SubgroupID = oh.ObjectID
					}
					if !reflect.DeepEqual(oh, o.oh) {
						t.Fatalf("0x%x object %d: got %+v want %+v", typ, i, oh, o.oh)
					}
					p := make([]byte, oh.PayloadLen)
					if _, err := sr.ReadPayload(p); err != nil || !bytes.Equal(p, o.payload) {
						t.Fatalf("0x%x object %d payload: %v", typ, i, err)
					}
					prev = oh.ObjectID
				}
				if gh != h {
					t.Fatalf("0x%x: header %+v want %+v", typ, gh, h)
				}
				if _, err := sr.ReadSubgroupObject(gh, prev, false, 0); err != io.EOF {
					t.Fatalf("0x%x: at end got %v, want io.EOF", typ, err)
				}
			}
		}
	}
}

func TestSubgroupSpecExamples(t *testing.T) {
	// §10.5, first example: type 0x14, alias 2, group 0, subgroup 0, prio 0.
	ex1 := []byte{0x14, 0x02, 0x00, 0x00, 0x00, 0x00, 0x04, 'a', 'b', 'c', 'd', 0x00, 0x04, 'e', 'f', 'g', 'h'}
	// Second example, type 0x15 with a 33-byte extension block: {4: 2186796243}
	// and {77: 21 bytes}.
	ext := append([]byte{0x04, 0xc0, 0x00, 0x00, 0x00, 0x82, 0x57, 0xdc, 0xd3, 0x40, 0x4d, 0x15}, "traceID:1234567890123"...)
	ex2 := append([]byte{0x15, 0x02, 0x00, 0x00, 0x00, 0x00, 0x21}, ext...)
	ex2 = append(ex2, 0x04, 'a', 'b', 'c', 'd', 0x00, 0x00, 0x04, 'e', 'f', 'g', 'h')

	for i, c := range []struct {
		b    []byte
		ext0 []byte
	}{{ex1, nil}, {ex2, ext}} {
		sr := NewStreamReader(bytes.NewReader(c.b))
		typ, err := sr.ReadStreamType()
		if err != nil {
			t.Fatal(err)
		}
		h, err := sr.ReadSubgroupHeader(typ)
		if err != nil || h != (SubgroupHeader{Type: typ, TrackAlias: 2}) {
			t.Fatalf("example %d header %+v %v", i, h, err)
		}
		var enc []byte
		enc = AppendSubgroupHeader(enc, h)
		for j, want := range []string{"abcd", "efgh"} {
			oh, err := sr.ReadSubgroupObject(h, 0, j == 0, 0)
			if err != nil {
				t.Fatalf("example %d object %d: %v", i, j, err)
			}
			wantExt := c.ext0
			if j == 1 {
				wantExt = nil
			}
			if oh.ObjectID != uint64(j) || oh.PayloadLen != 4 || !bytes.Equal(oh.Extensions, wantExt) {
				t.Fatalf("example %d object %d: %+v", i, j, oh)
			}
			p := make([]byte, 4)
			if _, err := io.ReadFull(sr, p); err != nil || string(p) != want {
				t.Fatalf("payload %q %v", p, err)
			}
			enc = AppendSubgroupObjectHeader(enc, h.Type, 0, j == 0, oh)
			enc = append(enc, p...)
		}
		if !bytes.Equal(enc, c.b) {
			t.Fatalf("example %d re-encoded\n % x\nwant\n % x", i, enc, c.b)
		}
		exts, err := ParseExtensions(c.ext0)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 && (len(exts) != 2 || exts[0].Value != 2186796243 || exts[1].Key != 77 || len(exts[1].Bytes) != 21) {
			t.Fatalf("extensions %+v", exts)
		}
	}
}

func TestSubgroupFirstObjectIDVector(t *testing.T) {
	// Type 0x1A: subgroup ID = first object ID, end of group; objects 3, 4, 6.
	b := []byte{0x1a, 0x05, 0x09, 0x40,
		0x03, 0x01, 'a', // delta 3 -> id 3
		0x00, 0x01, 'b', // delta 0 -> id 4
		0x01, 0x00, 0x03, // delta 1 -> id 6, status End of Group
	}
	sr := NewStreamReader(bytes.NewReader(b))
	typ, _ := sr.ReadStreamType()
	h, err := sr.ReadSubgroupHeader(typ)
	if err != nil || !h.EndOfGroup() || h.HasExtensions() || h.TrackAlias != 5 || h.GroupID != 9 || h.PublisherPriority != 0x40 {
		t.Fatalf("%+v %v", h, err)
	}
	want := []ObjectHeader{{ObjectID: 3, PayloadLen: 1}, {ObjectID: 4, PayloadLen: 1}, {ObjectID: 6, Status: ObjectStatusEndOfGroup}}
	var prev uint64
	for i, w := range want {
		oh, err := sr.ReadSubgroupObject(h, prev, i == 0, 0)
		if err != nil || !reflect.DeepEqual(oh, w) {
			t.Fatalf("object %d: %+v %v", i, oh, err)
		}
		if err := sr.DiscardPayload(oh.PayloadLen); err != nil {
			t.Fatal(err)
		}
		prev = oh.ObjectID
	}
}

func TestFetchStream(t *testing.T) {
	// Hand-written: FETCH_HEADER{request 8}, then two objects.
	vec := []byte{0x05, 0x08,
		0x01, 0x00, 0x02, 0x80, 0x00, 0x03, 'x', 'y', 'z', // g1 s0 o2 prio 0x80, no ext, "xyz"
		0x01, 0x00, 0x03, 0x80, 0x02, 0x3c, 0x01, 0x00, 0x03, // g1 s0 o3, ext {0x3c:1}, status End of Group
	}
	want := []FetchObjectHeader{
		{GroupID: 1, ObjectID: 2, PublisherPriority: 0x80, PayloadLen: 3},
		{GroupID: 1, ObjectID: 3, PublisherPriority: 0x80, Extensions: []byte{0x3c, 0x01}, Status: ObjectStatusEndOfGroup},
	}
	enc := AppendFetchHeader(nil, 8)
	for _, w := range want {
		enc = AppendFetchObjectHeader(enc, w)
		enc = append(enc, []byte("xyz")[:w.PayloadLen]...)
	}
	if !bytes.Equal(enc, vec) {
		t.Fatalf("encoded\n % x\nwant\n % x", enc, vec)
	}

	// Larger round trip with varied fields.
	objs := []FetchObjectHeader{
		{GroupID: 1 << 40, SubgroupID: 3, ObjectID: 0, PublisherPriority: 1, PayloadLen: 5000},
		{GroupID: 1 << 40, SubgroupID: 3, ObjectID: 1, Extensions: AppendExtensions(nil, Params{BytesParam(ExtImmutableExtensions, []byte{0x02, 0x05})}), PayloadLen: 2},
		{GroupID: 1<<40 + 1, SubgroupID: 0, ObjectID: 0, Status: ObjectStatusDoesNotExist},
		{GroupID: 1<<40 + 2, SubgroupID: 9, ObjectID: 9, Status: ObjectStatusEndOfTrack},
	}
	buf := AppendFetchHeader(nil, 1<<30)
	for _, o := range objs {
		buf = AppendFetchObjectHeader(buf, o)
		buf = append(buf, make([]byte, o.PayloadLen)...)
	}
	for _, b := range [][]byte{vec, buf} {
		sr := NewStreamReader(bytes.NewReader(b))
		typ, err := sr.ReadStreamType()
		if err != nil || typ != StreamTypeFetch {
			t.Fatalf("type 0x%x %v", typ, err)
		}
		fh, err := sr.ReadFetchHeader()
		if err != nil {
			t.Fatal(err)
		}
		exp := want
		if fh.RequestID != 8 {
			exp = objs
			if fh.RequestID != 1<<30 {
				t.Fatalf("request ID %d", fh.RequestID)
			}
		}
		for i, w := range exp {
			oh, err := sr.ReadFetchObject(0)
			if err != nil || !reflect.DeepEqual(oh, w) {
				t.Fatalf("object %d: %+v %v, want %+v", i, oh, err, w)
			}
			if err := sr.DiscardPayload(oh.PayloadLen); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sr.ReadFetchObject(0); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	}
}

func TestStreamReaderErrors(t *testing.T) {
	hdr := []byte{0x10, 0x02, 0x00, 0x00} // subgroup type 0x10, alias 2, group 0, prio 0
	hdrExt := []byte{0x11, 0x02, 0x00, 0x00}
	cat := func(a []byte, b ...byte) []byte { return append(append([]byte(nil), a...), b...) }

	readAll := func(b []byte, prev uint64, first bool, max uint64, maxExt uint64) error {
		sr := NewStreamReader(bytes.NewReader(b))
		sr.MaxExtensionsLen = maxExt
		typ, err := sr.ReadStreamType()
		if err != nil {
			return err
		}
		if typ == StreamTypeFetch {
			if _, err := sr.ReadFetchHeader(); err != nil {
				return err
			}
			for {
				oh, err := sr.ReadFetchObject(max)
				if err != nil {
					return err
				}
				if err := sr.DiscardPayload(oh.PayloadLen); err != nil {
					return err
				}
			}
		}
		h, err := sr.ReadSubgroupHeader(typ)
		if err != nil {
			return err
		}
		for {
			oh, err := sr.ReadSubgroupObject(h, prev, first, max)
			if err != nil {
				return err
			}
			p := make([]byte, oh.PayloadLen)
			if _, err := sr.ReadPayload(p); err != nil {
				return err
			}
			prev, first = oh.ObjectID, false
		}
	}

	type check func(t *testing.T, err error)
	pv := func(t *testing.T, err error) { t.Helper(); wantCode(t, err, ProtocolViolation) }
	trunc := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
		}
		wantCode(t, err, ProtocolViolation)
	}
	tooLarge := func(t *testing.T, err error) {
		t.Helper()
		var se *SessionError
		if !errors.Is(err, ErrTooLarge) || errors.As(err, &se) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	}
	eof := func(t *testing.T, err error) {
		t.Helper()
		if err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
	}
	cases := []struct {
		name   string
		b      []byte
		prev   uint64
		first  bool
		max    uint64
		maxExt uint64
		want   check
	}{
		{"empty stream", nil, 0, true, 0, 0, eof},
		{"clean end after objects", cat(hdr, 0x00, 0x01, 'a', 0x00, 0x00, 0x00), 0, true, 0, 0, eof},
		{"truncated stream type", []byte{0x40}, 0, true, 0, 0, trunc},
		{"unknown stream type 0x16", []byte{0x16}, 0, true, 0, 0, pv},
		{"unknown stream type 0x17", []byte{0x17}, 0, true, 0, 0, pv},
		{"unknown stream type 0x1e", []byte{0x1e}, 0, true, 0, 0, pv},
		{"unknown stream type 0x1f", []byte{0x1f}, 0, true, 0, 0, pv},
		{"unknown stream type 0x04", []byte{0x04}, 0, true, 0, 0, pv},
		{"unknown stream type 0x20", []byte{0x20}, 0, true, 0, 0, pv},
		{"header ends after type", []byte{0x14}, 0, true, 0, 0, trunc},
		{"header truncated", []byte{0x10, 0x02, 0x00}, 0, true, 0, 0, trunc},
		{"explicit subgroup ID truncated", []byte{0x14, 0x02, 0x00, 0x80, 0x00}, 0, true, 0, 0, trunc},
		{"object header truncated", cat(hdr, 0x00), 0, true, 0, 0, trunc},
		{"object delta varint truncated", cat(hdr, 0x40), 0, true, 0, 0, trunc},
		{"status missing", cat(hdr, 0x00, 0x00), 0, true, 0, 0, trunc},
		{"payload truncated", cat(hdr, 0x00, 0x05, 'a', 'b'), 0, true, 0, 0, trunc},
		{"extensions truncated", cat(hdrExt, 0x00, 0x04, 0x3c), 0, true, 0, 0, trunc},
		{"unknown status 2", cat(hdr, 0x00, 0x00, 0x02), 0, true, 0, 0, pv},
		{"unknown status 5", cat(hdr, 0x00, 0x00, 0x05), 0, true, 0, 0, pv},
		{"does-not-exist with extensions", cat(hdrExt, 0x00, 0x02, 0x3c, 0x01, 0x00, 0x01), 0, true, 0, 0, pv},
		{"extension framing runs past block", cat(hdrExt, 0x00, 0x02, 0x3d, 0x05, 0x01, 'a'), 0, true, 0, 0, pv},
		{"extension odd length over 65535", cat(hdrExt, 0x00, 0x05, 0x01, 0x80, 0x01, 0x00, 0x00, 0x01, 'a'), 0, true, 0, 0, pv},
		{"object ID overflow", cat(hdr, 0x01, 0x01, 'a'), MaxVarint - 1, false, 0, 0, pv},
		{"object ID after max", cat(hdr, 0x00, 0x01, 'a'), MaxVarint, false, 0, 0, pv},
		{"payload over limit", cat(hdr, 0x00, 0x05, 'a', 'b', 'c', 'd', 'e'), 0, true, 4, 0, tooLarge},
		{"extensions over limit", cat(hdrExt, 0x00, 0x04, 0x3c, 0x01, 0x3c, 0x02, 0x01, 'a'), 0, true, 0, 3, tooLarge},
		{"fetch header truncated", []byte{0x05}, 0, true, 0, 0, trunc},
		{"fetch object truncated", []byte{0x05, 0x01, 0x00, 0x00, 0x00, 0x80}, 0, true, 0, 0, trunc},
		{"fetch object unknown status", []byte{0x05, 0x01, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x07}, 0, true, 0, 0, pv},
		{"fetch object payload over limit", []byte{0x05, 0x01, 0x00, 0x00, 0x00, 0x80, 0x00, 0x03, 'a', 'b', 'c'}, 0, true, 2, 0, tooLarge},
		{"fetch clean end", []byte{0x05, 0x01, 0x00, 0x00, 0x00, 0x80, 0x00, 0x01, 'a'}, 0, true, 0, 0, eof},
		{"fetch payload truncated", []byte{0x05, 0x01, 0x00, 0x00, 0x00, 0x80, 0x00, 0x03, 'a'}, 0, true, 0, 0, trunc},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := readAll(c.b, c.prev, c.first, c.max, c.maxExt)
			t.Log(err)
			c.want(t, err)
		})
	}

	// Unknown types are reported together with the type value.
	typ, err := NewStreamReader(bytes.NewReader([]byte{0x1f})).ReadStreamType()
	if typ != 0x1f || err == nil {
		t.Fatalf("got 0x%x %v", typ, err)
	}
	// A too-large payload still returns the header so the caller can skip it.
	sr := NewStreamReader(bytes.NewReader(cat(hdr, 0x03, 0x05, 'a', 'b', 'c', 'd', 'e')))
	typ, _ = sr.ReadStreamType()
	h, _ := sr.ReadSubgroupHeader(typ)
	oh, err := sr.ReadSubgroupObject(h, 0, true, 4)
	if !errors.Is(err, ErrTooLarge) || oh.ObjectID != 3 || oh.PayloadLen != 5 {
		t.Fatalf("%+v %v", oh, err)
	}
	// Transport errors pass through wrapped, not as session errors.
	boom := errors.New("reset")
	sr = NewStreamReader(io.MultiReader(bytes.NewReader([]byte{0x10, 0x02}), &errReader{boom}))
	typ, _ = sr.ReadStreamType()
	_, err = sr.ReadSubgroupHeader(typ)
	var se *SessionError
	if !errors.Is(err, boom) || errors.As(err, &se) {
		t.Fatalf("got %v", err)
	}
}

func TestAppendSubgroupObjectHeaderPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"non-increasing ID": func() { AppendSubgroupObjectHeader(nil, 0x10, 5, false, ObjectHeader{ObjectID: 5, PayloadLen: 1}) },
		"extensions on 0x10": func() {
			AppendSubgroupObjectHeader(nil, 0x10, 0, true, ObjectHeader{Extensions: []byte{2, 1}, PayloadLen: 1})
		},
		"bad header type":      func() { AppendSubgroupHeader(nil, SubgroupHeader{Type: 0x16}) },
		"bad subgroup ID mode": func() { SubgroupType(false, false, 3) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	// Delta encoding: consecutive IDs encode as 0, the first as the ID itself.
	b := AppendSubgroupObjectHeader(nil, 0x10, 9, false, ObjectHeader{ObjectID: 10, PayloadLen: 1})
	b = AppendSubgroupObjectHeader(b, 0x10, 10, false, ObjectHeader{ObjectID: 13, PayloadLen: 1})
	b = AppendSubgroupObjectHeader(b, 0x10, 0, true, ObjectHeader{ObjectID: 70, PayloadLen: 1})
	if !bytes.Equal(b, []byte{0x00, 0x01, 0x02, 0x01, 0x40, 0x46, 0x01}) {
		t.Fatalf("% x", b)
	}
}

func TestStreamReaderReset(t *testing.T) {
	a := AppendSubgroupHeader(nil, SubgroupHeader{Type: 0x10, TrackAlias: 1})
	a = append(AppendSubgroupObjectHeader(a, 0x10, 0, true, ObjectHeader{PayloadLen: 1}), 'a')
	b := AppendFetchHeader(nil, 4)
	sr := NewStreamReader(bytes.NewReader(a))
	if typ, err := sr.ReadStreamType(); err != nil || typ != 0x10 {
		t.Fatal(typ, err)
	}
	if sr.Buffered() == 0 {
		t.Fatal("nothing buffered")
	}
	// Reset discards what was buffered from the previous stream.
	sr.Reset(bytes.NewReader(b))
	if typ, err := sr.ReadStreamType(); err != nil || typ != StreamTypeFetch {
		t.Fatal(typ, err)
	}
	if fh, err := sr.ReadFetchHeader(); err != nil || fh.RequestID != 4 {
		t.Fatal(fh, err)
	}
	// A caller's *bufio.Reader is used directly, not wrapped.
	br := bufio.NewReader(bytes.NewReader(a))
	sr.Reset(br)
	if _, err := sr.ReadStreamType(); err != nil || br.Buffered() != len(a)-1 {
		t.Fatal(err, br.Buffered())
	}
}
