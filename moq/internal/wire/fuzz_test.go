package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// checkErrKind asserts the error conventions: a decode error is io.EOF, a
// *SessionError, or ErrTooLarge (nothing else can come from an in-memory reader).
func checkErrKind(t *testing.T, err error) {
	t.Helper()
	var se *SessionError
	if err == io.EOF || errors.As(err, &se) || errors.Is(err, ErrTooLarge) {
		return
	}
	t.Fatalf("unexpected error kind %T: %v", err, err)
}

func FuzzReadMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		plain := struct{ io.Reader }{bytes.NewReader(data)} // exercises the non-ByteReader path
		for i := 0; i < 16; i++ {
			m, err := ReadMessage(br)
			m2, err2 := ReadMessage(plain)
			if (err == nil) != (err2 == nil) || !reflect.DeepEqual(m, m2) {
				t.Fatalf("ByteReader and plain reader disagree: %v / %v", err, err2)
			}
			if err != nil {
				checkErrKind(t, err)
				return
			}
			// Anything we accept we must be able to send, and it must come back equal.
			b, err := AppendMessage(nil, m)
			if err != nil {
				t.Fatalf("re-encoding decoded %#v: %v", m, err)
			}
			back, err := ReadMessage(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("re-parsing % x: %v", b, err)
			}
			if !reflect.DeepEqual(back, m) {
				t.Fatalf("round trip mismatch:\n got %#v\nwant %#v", back, m)
			}
			if b2, _ := AppendMessage(nil, back); !bytes.Equal(b, b2) {
				t.Fatalf("encoding not canonical")
			}
		}
	})
}

type fuzzObj struct {
	sub     ObjectHeader
	fetch   FetchObjectHeader
	payload []byte
}

// readDataStream parses a whole data stream, returning what was parsed before
// the first error (and the error; io.EOF for a clean end).
func readDataStream(data []byte) (typ uint64, sh SubgroupHeader, fh FetchHeader, objs []fuzzObj, err error) {
	sr := NewStreamReader(bytes.NewReader(data))
	sr.MaxExtensionsLen = 4096
	if typ, err = sr.ReadStreamType(); err != nil {
		return
	}
	if typ == StreamTypeFetch {
		if fh, err = sr.ReadFetchHeader(); err != nil {
			return
		}
	} else if sh, err = sr.ReadSubgroupHeader(typ); err != nil {
		return
	}
	var prev uint64
	for len(objs) < 1000 {
		var o fuzzObj
		var n uint64
		if typ == StreamTypeFetch {
			if o.fetch, err = sr.ReadFetchObject(1 << 16); err != nil {
				return
			}
			n = o.fetch.PayloadLen
		} else {
			if o.sub, err = sr.ReadSubgroupObject(sh, prev, len(objs) == 0, 1<<16); err != nil {
				return
			}
			n = o.sub.PayloadLen
		}
		if n > 0 {
			o.payload = make([]byte, n)
			if _, err = sr.ReadPayload(o.payload); err != nil {
				return
			}
		}
		if typ != StreamTypeFetch {
			// Only complete objects count: the subgroup ID of a
			// first-object-ID header comes from the first complete object.
			if len(objs) == 0 && sh.SubgroupIDMode() == SubgroupIDFirstObject {
				sh.SubgroupID = o.sub.ObjectID
			}
			prev = o.sub.ObjectID
		}
		objs = append(objs, o)
	}
	return
}

func encodeDataStream(typ uint64, sh SubgroupHeader, fh FetchHeader, objs []fuzzObj) []byte {
	var b []byte
	if typ == StreamTypeFetch {
		b = AppendFetchHeader(b, fh.RequestID)
	} else {
		b = AppendSubgroupHeader(b, sh)
	}
	var prev uint64
	for i, o := range objs {
		if typ == StreamTypeFetch {
			b = AppendFetchObjectHeader(b, o.fetch)
		} else {
			b = AppendSubgroupObjectHeader(b, typ, prev, i == 0, o.sub)
			prev = o.sub.ObjectID
		}
		b = append(b, o.payload...)
	}
	return b
}

func FuzzStreamReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, sh, fh, objs, err := readDataStream(data)
		checkErrKind(t, err)
		var se *SessionError
		if errors.As(err, &se) && se.Reason == "" {
			t.Fatal("session error without reason")
		}
		if typ != StreamTypeFetch && !IsSubgroupType(typ) {
			return
		}
		if sh.Type == 0 && typ != StreamTypeFetch {
			return // header itself failed
		}
		// Whatever parsed must re-encode and re-parse identically.
		enc := encodeDataStream(typ, sh, fh, objs)
		typ2, sh2, fh2, objs2, err2 := readDataStream(enc)
		if err2 != io.EOF {
			t.Fatalf("re-parse of re-encoded stream: %v", err2)
		}
		if typ2 != typ || sh2 != sh || fh2 != fh || !reflect.DeepEqual(objs, objs2) {
			t.Fatalf("round trip mismatch:\n%v %+v %+v %+v\n%v %+v %+v %+v", typ, sh, fh, objs, typ2, sh2, fh2, objs2)
		}
		if !bytes.Equal(encodeDataStream(typ2, sh2, fh2, objs2), enc) {
			t.Fatal("encoding not canonical")
		}
	})
}

func FuzzParseDatagram(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDatagram(data)
		if err != nil {
			checkErrKind(t, err)
			return
		}
		if d.EndOfGroup && (d.Type > 0x07 || d.Type&0x02 == 0) {
			t.Fatalf("EndOfGroup inconsistent with type 0x%x", d.Type)
		}
		b := AppendDatagram(nil, d)
		d2, err := ParseDatagram(b)
		if err != nil {
			t.Fatalf("re-parse % x: %v", b, err)
		}
		// The encoder may shorten an explicit Object ID 0 (0x00-0x03 ->
		// 0x04-0x07); every other field must survive.
		if d2.Type != d.Type && !(d.Type <= 0x03 && d.ObjectID == 0 && d2.Type == d.Type|0x04) {
			t.Fatalf("type 0x%x became 0x%x", d.Type, d2.Type)
		}
		d2.Type = d.Type
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip mismatch:\n got %v\nwant %v", d2, d)
		}
		if !bytes.Equal(AppendDatagram(nil, d2), b) {
			t.Fatal("encoding not canonical")
		}
	})
}

// --- seed corpus -----------------------------------------------------------

func controlSeeds() map[string][]byte {
	seeds := map[string][]byte{}
	var all []byte
	for i, m := range sampleMessages() {
		b, err := AppendMessage(nil, m)
		if err != nil {
			panic(err)
		}
		seeds[fmt.Sprintf("sample-%02d-%s", i, MessageName(m.Type()))] = b
		all = append(all, b...)
	}
	seeds["all-samples"] = all
	for i, v := range controlVectors {
		seeds[fmt.Sprintf("vector-%02d", i)] = v.bytes
	}
	// A few near-misses so the fuzzer starts next to the error paths.
	seeds["bad-forward"] = frame(0x03, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x01, 0x02, 0x02, 0x00)
	seeds["dup-param"] = frame(0x03, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x01, 0x01, 0x02, 0x02, 0x02, 0x01, 0x02, 0x02)
	seeds["length-mismatch"] = []byte{0x05, 0x00, 0x08, 0x02, 0x04, 0x04, 'n', 'o', 'p', 'e', 0xff}
	return seeds
}

func streamSeeds() map[string][]byte {
	seeds := map[string][]byte{}
	for _, ext := range []bool{false, true} {
		for _, eog := range []bool{false, true} {
			for mode := SubgroupIDZero; mode <= SubgroupIDExplicit; mode++ {
				typ := SubgroupType(ext, eog, mode)
				h := SubgroupHeader{Type: typ, TrackAlias: 3, GroupID: 70000, SubgroupID: 2, PublisherPriority: 9}
				var objs []fuzzObj
				for _, o := range subgroupObjects(uint64(mode), ext) {
					o.oh.PayloadLen = uint64(len(o.payload[:min(len(o.payload), 8)]))
					objs = append(objs, fuzzObj{sub: o.oh, payload: o.payload[:o.oh.PayloadLen]})
				}
				for i := range objs {
					if objs[i].sub.PayloadLen == 0 {
						objs[i].payload = nil
					}
				}
				seeds[fmt.Sprintf("subgroup-0x%x", typ)] = encodeDataStream(typ, h, FetchHeader{}, objs)
			}
		}
	}
	fetch := []fuzzObj{
		{fetch: FetchObjectHeader{GroupID: 1, ObjectID: 2, PublisherPriority: 0x80, PayloadLen: 3}, payload: []byte("xyz")},
		{fetch: FetchObjectHeader{GroupID: 1, SubgroupID: 1, ObjectID: 3, Extensions: []byte{0x3c, 0x01}, Status: ObjectStatusEndOfGroup}},
		{fetch: FetchObjectHeader{GroupID: 2, ObjectID: 0, Status: ObjectStatusEndOfTrack}},
	}
	seeds["fetch"] = encodeDataStream(StreamTypeFetch, SubgroupHeader{}, FetchHeader{RequestID: 8}, fetch)
	seeds["fetch-header-only"] = AppendFetchHeader(nil, 1<<20)
	seeds["spec-example-1"] = []byte{0x14, 0x02, 0x00, 0x00, 0x00, 0x00, 0x04, 'a', 'b', 'c', 'd', 0x00, 0x04, 'e', 'f', 'g', 'h'}
	return seeds
}

func datagramSeeds() map[string][]byte {
	ext := []byte{0x3c, 0x01}
	seeds := map[string][]byte{}
	for _, d := range []Datagram{
		{TrackAlias: 2, GroupID: 5, ObjectID: 7, PublisherPriority: 0x80, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, ObjectID: 7, Extensions: ext, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, ObjectID: 7, EndOfGroup: true, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, ObjectID: 7, EndOfGroup: true, Extensions: ext, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, Extensions: ext, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, EndOfGroup: true},
		{TrackAlias: 2, GroupID: 5, EndOfGroup: true, Extensions: ext, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, ObjectID: 7, Status: ObjectStatusEndOfGroup},
		{TrackAlias: 2, GroupID: 5, ObjectID: 7, Extensions: ext, Status: ObjectStatusEndOfTrack},
		{Type: 0x20, TrackAlias: 1 << 40, GroupID: 1 << 20, ObjectID: 1 << 10},
	} {
		b := AppendDatagram(nil, d)
		seeds[fmt.Sprintf("datagram-0x%02x-%d", b[0], len(seeds))] = b
	}
	seeds["explicit-object-0"] = []byte{0x00, 0x02, 0x05, 0x00, 0x80, 'h', 'i'}
	return seeds
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/<Name>/seed-* from the
// encoders. Run with MOQWIRE_WRITE_CORPUS=1; otherwise it only checks that
// every seed exists.
func TestWriteFuzzCorpus(t *testing.T) {
	write := os.Getenv("MOQWIRE_WRITE_CORPUS") == "1"
	for name, seeds := range map[string]map[string][]byte{
		"FuzzReadMessage":         controlSeeds(),
		"FuzzStreamReader":        streamSeeds(),
		"FuzzParseDatagram":       datagramSeeds(),
		"FuzzDraft16ReadMessage":  controlSeeds16(),
		"FuzzDraft16StreamReader": streamSeeds16(),
		"FuzzDraft16Datagram":     datagramSeeds16(),
		"FuzzDraft17ReadMessage":  controlSeeds17(),
		"FuzzDraft17StreamReader": streamSeeds17(),
		"FuzzDraft17Datagram":     datagramSeeds17(),
	} {
		dir := filepath.Join("testdata", "fuzz", name)
		for seed, b := range seeds {
			path := filepath.Join(dir, "seed-"+seed)
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if write {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != content {
				t.Errorf("seed %s missing or stale (regenerate with MOQWIRE_WRITE_CORPUS=1): %v", path, err)
			}
		}
	}
}
