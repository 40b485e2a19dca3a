package srt

import (
	"errors"
	"strings"
	"testing"
)

func TestParseStreamID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want StreamID
	}{
		{"publish:live/test", StreamID{ModePublish, "live/test", ""}},
		{"read:live/test", StreamID{ModeRead, "live/test", ""}},
		{"publish:/live/test/", StreamID{ModePublish, "live/test", ""}},
		{"publish:live/test:eyJhbGciOi.x.y", StreamID{ModePublish, "live/test", "eyJhbGciOi.x.y"}},
		{"read:live/test:tok", StreamID{ModeRead, "live/test", "tok"}},
		{"#!::r=live/test,m=publish", StreamID{ModePublish, "live/test", ""}},
		{"#!::m=publish,r=live/test,t=tok", StreamID{ModePublish, "live/test", "tok"}},
		{"#!::r=live/test", StreamID{ModeRead, "live/test", ""}},
		{"#!::r=live/test,m=request,t=stream,u=bob", StreamID{ModeRead, "live/test", ""}},
		{"#!::r=cam1", StreamID{ModeRead, "cam1", ""}},
		// The names every protocol accepts (moq.CheckPath).
		{"publish:live/a b", StreamID{ModePublish, "live/a b", ""}},
		{"read:live/%74est", StreamID{ModeRead, "live/%74est", ""}},
	} {
		got, err := ParseStreamID(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseStreamID(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseStreamIDErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		mode bool // ErrBadMode rather than ErrBadStreamID
	}{
		{"", false},
		{"live/test", false},
		{"publish:", false},
		{"publish:/", false},
		{"publish:a//b", false},
		{"publish:a/../b", false},
		{"publish:a/./b", false},
		{`publish:a\b`, false},
		{"publish:a\x00b", false},
		{"play:live/test", true},
		{"#!::m=publish", false},
		{"#!::r=live/test,m=bidirectional", true},
		{"#!::r=a,r=b", false},
		{"#!::r", false},
		{"#!::", false},
		{"publish:" + strings.Repeat("a", 600), false},
	} {
		_, err := ParseStreamID(tc.in)
		want := ErrBadStreamID
		if tc.mode {
			want = ErrBadMode
		}
		if !errors.Is(err, want) {
			t.Errorf("ParseStreamID(%q) = %v, want %v", tc.in, err, want)
		}
	}
}
