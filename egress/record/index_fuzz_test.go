package record

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// FuzzIndex: any index file (cut short, corrupt, hostile) loads without a
// panic, and what it yields stays below the root and in order.
func FuzzIndex(f *testing.F) {
	f.Add([]byte(`{"id":0,"path":"live/a","file":"live/a/x.mp4","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:04Z","bytes":10,"init_size":5}` + "\n"))
	f.Add([]byte(`{"id":1,"path":"live/a","file":"live/a/y.mp4","start":"2026-01-01T00:00:04Z","open":true}` + "\n" + `{"id":1,"pa`))
	f.Add([]byte(`{"id":2,"path":"x","file":"../../etc/passwd","bytes":1}` + "\n" + `{"id":18446744073709551615,"path":"x","file":"a"}`))
	f.Add([]byte("\n\n{}\n[1,2]\nnull\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path, ix := parseIndex(data)
		if path == "" && (len(ix.closed) > 0 || ix.open != nil) {
			t.Fatal("segments without a path")
		}
		for i, s := range ix.closed {
			if !filepath.IsLocal(s.File) || s.Path != path || s.ID >= ix.nextID || s.Bytes < s.InitSize {
				t.Fatalf("bad segment %+v", s)
			}
			if i > 0 && s.Start.Before(ix.closed[i-1].Start) {
				t.Fatal("not in order")
			}
		}
		// The whole load, repair included, on a directory holding it.
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, indexName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := openStore(dir, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			t.Logf("load: %v", err)
		}
	})
}
