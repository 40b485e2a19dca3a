package media

import (
	"encoding/json"
	"testing"
)

// Seed corpora live in testdata/fuzz/Fuzz*/ (catalogs built from the
// testdata streams, foreign and older-draft shapes, and near misses).

// FuzzParseHangCatalog: any input either fails with an error or yields a
// catalog that survives MediaTracks and a marshal/parse round trip.
func FuzzParseHangCatalog(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"video":{"renditions":{"v":{"codec":"avc1.42e01e","container":{"kind":"cmaf","init":"AAAA"}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cat, err := ParseHangCatalog(data)
		if err != nil {
			return
		}
		_ = cat.MediaTracks()
		out, err := json.Marshal(cat)
		if err != nil {
			t.Fatalf("marshal parsed catalog: %v", err)
		}
		if _, err := ParseHangCatalog(out); err != nil {
			t.Fatalf("re-parse %s: %v", out, err)
		}
	})
}

// FuzzParseMSFCatalog: as FuzzParseHangCatalog, for the MSF catalog.
func FuzzParseMSFCatalog(f *testing.F) {
	f.Add([]byte(`{"version":"draft-01","tracks":[]}`))
	f.Add([]byte(`{"version":1,"tracks":[{"name":"v","packaging":"cmaf","initData":"AAAA","role":"video"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cat, err := ParseMSFCatalog(data)
		if err != nil {
			return
		}
		_ = cat.MediaTracks()
		out, err := json.Marshal(cat)
		if err != nil {
			t.Fatalf("marshal parsed catalog: %v", err)
		}
		if _, err := ParseMSFCatalog(out); err != nil {
			t.Fatalf("re-parse %s: %v", out, err)
		}
	})
}
