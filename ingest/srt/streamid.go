package srt

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moqgate/moqgate/moq"
)

// Mode is what an SRT caller asks for.
type Mode string

// Modes.
const (
	ModePublish Mode = "publish"
	ModeRead    Mode = "read"
)

// StreamID is a parsed SRT stream ID.
type StreamID struct {
	Mode  Mode
	Path  string // broadcast path, without leading or trailing "/"
	Token string // JWT, "" when none
}

// maxStreamID bounds the stream ID (SRT itself allows 512 bytes).
const maxStreamID = 512

// ErrBadStreamID is wrapped by every ParseStreamID error.
var ErrBadStreamID = errors.New("srt: bad stream ID")

// ErrBadMode: the stream ID asks for a mode moqgate does not offer.
var ErrBadMode = errors.New("srt: unsupported mode")

// ParseStreamID accepts the two conventions callers bring:
//
//	publish:live/test[:TOKEN]   read:live/test[:TOKEN]     (as MediaMTX)
//	#!::r=live/test,m=publish[,t=TOKEN]                    (SRT Access Control)
//
// In the Access Control form m defaults to "request" (read), as the SRT
// specification says; t=stream (the specification's "type") is not a token.
func ParseStreamID(s string) (StreamID, error) {
	if len(s) > maxStreamID {
		return StreamID{}, fmt.Errorf("%w: longer than %d bytes", ErrBadStreamID, maxStreamID)
	}
	var id StreamID
	var err error
	if rest, ok := strings.CutPrefix(s, "#!::"); ok {
		id, err = parseAccessControl(rest)
	} else {
		id, err = parseColon(s)
	}
	if err != nil {
		return StreamID{}, err
	}
	if id.Path, err = cleanPath(id.Path); err != nil {
		return StreamID{}, err
	}
	return id, nil
}

func parseColon(s string) (StreamID, error) {
	mode, rest, ok := strings.Cut(s, ":")
	if !ok {
		return StreamID{}, fmt.Errorf("%w: want publish:PATH, read:PATH or #!::r=PATH,m=publish", ErrBadStreamID)
	}
	var id StreamID
	switch strings.ToLower(mode) {
	case "publish":
		id.Mode = ModePublish
	case "read":
		id.Mode = ModeRead
	default:
		return StreamID{}, fmt.Errorf("%w %q (want publish or read)", ErrBadMode, mode)
	}
	id.Path, id.Token, _ = strings.Cut(rest, ":")
	return id, nil
}

func parseAccessControl(s string) (StreamID, error) {
	id := StreamID{Mode: ModeRead}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return StreamID{}, fmt.Errorf("%w: %q is not key=value", ErrBadStreamID, kv)
		}
		if seen[k] {
			return StreamID{}, fmt.Errorf("%w: key %q twice", ErrBadStreamID, k)
		}
		seen[k] = true
		switch k {
		case "r":
			id.Path = v
		case "m":
			switch v {
			case "publish":
				id.Mode = ModePublish
			case "request":
				id.Mode = ModeRead
			default:
				return StreamID{}, fmt.Errorf("%w m=%q (want publish or request)", ErrBadMode, v)
			}
		case "t":
			if v != "stream" {
				id.Token = v
			}
		}
		// Other keys (u, s, h) are accepted and ignored.
	}
	return id, nil
}

// cleanPath checks a broadcast path by the rule every protocol applies
// (moq.CheckPath), leading and trailing slashes aside.
func cleanPath(p string) (string, error) {
	p = strings.Trim(p, "/")
	if err := moq.CheckPath(p); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadStreamID, err)
	}
	return p, nil
}
