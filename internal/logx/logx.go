// Package logx holds the log handlers every moqgate log goes through:
// Redact keeps tokens and secrets out of the log at every level, and
// RateLimit keeps a flood of one warning from flooding the log.
package logx

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
)

// redacted replaces a secret.
const redacted = "REDACTED"

// secretRE matches what carries a token: a jwt= or token= parameter, a
// bearer credential, and anything shaped like a JWT (header.payload.sig).
var secretRE = regexp.MustCompile(`(?i)((?:jwt|token|access_token|secret)=|bearer\s+)[^&\s"',;]+|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)

// secretKeys are attribute keys whose values are always secret.
var secretKeys = map[string]bool{"authorization": true, "token": true, "jwt": true, "secret": true, "password": true}

// RedactString removes tokens from s.
func RedactString(s string) string {
	if !strings.ContainsAny(s, "=eE ") {
		return s
	}
	return secretRE.ReplaceAllStringFunc(s, func(m string) string {
		if sub := secretRE.FindStringSubmatch(m); sub[1] != "" {
			return sub[1] + redacted
		}
		return redacted
	})
}

// Redact wraps h so that no record it writes carries a token: the message
// and every attribute (errors and Stringers formatted first) are redacted.
func Redact(h slog.Handler) slog.Handler { return redactHandler{h} }

type redactHandler struct{ h slog.Handler }

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, RedactString(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redactHandler{r.h.WithAttrs(red)}
}

func (r redactHandler) WithGroup(name string) slog.Handler { return redactHandler{r.h.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if secretKeys[strings.ToLower(a.Key)] && v.Kind() != slog.KindGroup {
		return slog.String(a.Key, redacted)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, RedactString(v.String()))
	case slog.KindAny:
		return slog.String(a.Key, RedactString(fmt.Sprint(v.Any())))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, ga := range g {
			red[i] = redactAttr(ga)
		}
		return slog.Group(a.Key, red...)
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// RateLimit wraps h so that a warning or error with the same message is
// written at most burst times per interval; the next one written says how
// many were left out ("suppressed"). Lower levels pass unchanged.
func RateLimit(h slog.Handler, interval time.Duration, burst int) slog.Handler {
	return rateHandler{h: h, st: &rateState{interval: interval, burst: burst, by: map[string]*rateEntry{}}}
}

type rateHandler struct {
	h  slog.Handler
	st *rateState
}

type rateState struct {
	interval time.Duration
	burst    int
	mu       sync.Mutex
	by       map[string]*rateEntry
}

type rateEntry struct {
	start      time.Time
	n          int
	suppressed int
}

// maxRateKeys bounds the messages tracked (messages are constants in the
// code, so this is never reached in practice).
const maxRateKeys = 4096

// admit reports whether the record is written, and how many like it were
// left out before it.
func (s *rateState) admit(msg string, now time.Time) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.by[msg]
	if e == nil {
		if len(s.by) >= maxRateKeys {
			clear(s.by)
		}
		e = &rateEntry{start: now}
		s.by[msg] = e
	}
	if now.Sub(e.start) >= s.interval {
		e.start, e.n = now, 0
	}
	if e.n >= s.burst {
		e.suppressed++
		return false, 0
	}
	e.n++
	n := e.suppressed
	e.suppressed = 0
	return true, n
}

func (r rateHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r rateHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level < slog.LevelWarn {
		return r.h.Handle(ctx, rec)
	}
	ok, n := r.st.admit(rec.Message, rec.Time)
	if !ok {
		return nil
	}
	if n > 0 {
		rec = rec.Clone()
		rec.AddAttrs(slog.Int("suppressed", n))
	}
	return r.h.Handle(ctx, rec)
}

func (r rateHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return rateHandler{h: r.h.WithAttrs(as), st: r.st}
}

func (r rateHandler) WithGroup(name string) slog.Handler {
	return rateHandler{h: r.h.WithGroup(name), st: r.st}
}
