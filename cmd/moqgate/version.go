package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version prints the module version and, when the binary was built from a
// VCS checkout, the revision (go build stamps both into the binary).
func version(w io.Writer) error {
	fmt.Fprintln(w, versionString())
	return nil
}

func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "moqgate (no build information)"
	}
	s := "moqgate " + bi.Main.Version
	var rev, at, dirty string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			at = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		s += " (" + rev + dirty
		if at != "" {
			s += " " + at
		}
		s += ")"
	}
	return s + " " + bi.GoVersion
}
