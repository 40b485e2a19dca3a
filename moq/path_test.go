package moq

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	for _, ok := range []string{"live/x", "a", "live/%74est", "live/a#frag", "live/a b?c", "ünï/cödé",
		strings.Repeat("x", MaxPathLen), strings.Repeat("a/", MaxPathElements-1) + "a"} {
		if err := CheckPath(ok); err != nil {
			t.Errorf("CheckPath(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/", "live/", "/live", "live//x", "live/../x", "..", "live/.", "./x",
		"live/x\\y", "live/\x00", "live/\x7f", "live/a\nb", "live/\xff", strings.Repeat("x", MaxPathLen+1),
		strings.Repeat("a/", MaxPathElements) + "a"} {
		if err := CheckPath(bad); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("CheckPath(%q) = %v, want ErrInvalidPath", bad, err)
		}
	}
	// A tuple element may hold the whole path; its parts follow the rules.
	for _, ns := range []Namespace{{"live", "x"}, {"live/x"}} {
		if err := CheckNamespace(ns); err != nil {
			t.Errorf("CheckNamespace(%q) = %v", ns, err)
		}
	}
	for _, ns := range []Namespace{{"live/", "x"}, {"live/../x"}, {"live", ""}, {}} {
		if err := CheckNamespace(ns); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("CheckNamespace(%q) = %v, want ErrInvalidPath", ns, err)
		}
	}
}
