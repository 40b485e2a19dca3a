package srt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseStreamID: never panics; what it accepts is a clean path that
// parses again to the same result in the colon form.
func FuzzParseStreamID(f *testing.F) {
	for _, s := range []string{"publish:live/test", "read:live/test:tok", "#!::r=live/test,m=publish,t=x",
		"#!::m=request,r=a/b", "publish:a//b", "#!::r=a,r=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseStreamID(s)
		if err != nil {
			if !errors.Is(err, ErrBadStreamID) && !errors.Is(err, ErrBadMode) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if id.Path == "" || strings.HasPrefix(id.Path, "/") || strings.HasSuffix(id.Path, "/") ||
			strings.Contains(id.Path, "//") || !utf8.ValidString(id.Path) {
			t.Fatalf("accepted path %q", id.Path)
		}
		if id.Mode != ModePublish && id.Mode != ModeRead {
			t.Fatalf("mode %q", id.Mode)
		}
		if strings.Contains(id.Path, ":") {
			return // a colon path cannot round-trip through the colon form
		}
		again, err := ParseStreamID(string(id.Mode) + ":" + id.Path)
		if err != nil || again.Path != id.Path {
			t.Fatalf("path %q does not parse again: %+v %v", id.Path, again, err)
		}
	})
}

// FuzzDemux: any byte stream is demuxed without a panic, and what comes
// out keeps the frame conventions (the recorder checks DTS order and that
// every track has an init segment).
func FuzzDemux(f *testing.F) {
	for _, name := range []string{"h264_aac.ts", "hevc_opus.ts"} {
		data := readTestdata(f, name)
		f.Add(data[:min(len(data), 188*60)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec := newRecorder(t)
		g := &initGuard{r: bytes.NewReader(data), max: maxInitBytes}
		Demux(g, rec, testLog(t), func() { g.done.Store(true) })
		for name, fs := range rec.frames {
			if name == "video" {
				checkAVCC(t, fs)
			}
		}
	})
}
