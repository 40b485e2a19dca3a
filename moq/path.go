package moq

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The broadcast path rules every protocol applies (MoQ namespaces, RTMP
// stream keys, WHIP/WHEP and LL-HLS URLs), so that a name one accepts
// every other can serve, and none can step outside its prefix.
const (
	// MaxPathLen bounds a broadcast path in bytes.
	MaxPathLen = 1024
	// MaxPathElements is MoQ's bound on namespace tuple fields.
	MaxPathElements = 32
)

// ErrInvalidPath is wrapped by CheckPath's and CheckNamespace's errors.
var ErrInvalidPath = errors.New("invalid broadcast path")

// CheckPath reports whether path is a broadcast path: 1 to MaxPathLen
// bytes of UTF-8, at most MaxPathElements elements between slashes, none
// empty, "." or "..", and no control characters or backslashes.
func CheckPath(path string) error {
	switch elems := strings.Split(path, "/"); {
	case path == "":
		return fmt.Errorf("%w: empty", ErrInvalidPath)
	case len(path) > MaxPathLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidPath, MaxPathLen)
	case len(elems) > MaxPathElements:
		return fmt.Errorf("%w: more than %d elements", ErrInvalidPath, MaxPathElements)
	default:
		for _, e := range elems {
			if err := checkElement(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckNamespace is CheckPath of the namespace's path: a tuple element
// may hold slashes (("live/x") is the broadcast ("live","x") is), and the
// elements between them follow the same rules.
func CheckNamespace(ns Namespace) error { return CheckPath(ns.Path()) }

func checkElement(e string) error {
	switch e {
	case "":
		return fmt.Errorf("%w: empty element", ErrInvalidPath)
	case ".", "..":
		return fmt.Errorf("%w: %q element", ErrInvalidPath, e)
	}
	if !utf8.ValidString(e) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidPath)
	}
	for _, r := range e {
		if unicode.IsControl(r) || r == '\\' || r == utf8.RuneError {
			return fmt.Errorf("%w: character %q", ErrInvalidPath, r)
		}
	}
	return nil
}

// invalidPath is the refusal of a request for an invalid namespace: 0x4
// is "uninterested" for PUBLISH_NAMESPACE and PUBLISH, "does not exist"
// for SUBSCRIBE and "prefix unknown" for SUBSCRIBE_NAMESPACE.
func invalidPath(err error) *RequestError {
	return &RequestError{Code: 0x4, Reason: err.Error()}
}
