package logx

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const tok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsaXZlLyJ9.c2lnbmF0dXJlc2lnbmF0dXJl"

func TestRedact(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Redact(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log = log.With("path", "/?jwt="+tok)
	log.Debug("moq session started path=/live?jwt=abc.def&x=1", "Authorization", "Bearer "+tok,
		"err", errors.New("publish refused: live/test?jwt="+tok), slog.Group("req", "url", "rtmp://h/live/"+tok))
	log.Warn("stream key", "key", "live/test?token=s3cret")
	out := buf.String()
	for _, secret := range []string{tok, "abc.def", "s3cret", "c2lnbmF0dXJl"} {
		if strings.Contains(out, secret) {
			t.Fatalf("%q is in the log:\n%s", secret, out)
		}
	}
	for _, kept := range []string{"jwt=REDACTED&x=1", "Authorization=REDACTED", "publish refused: live/test?jwt=REDACTED", "token=REDACTED"} {
		if !strings.Contains(out, kept) {
			t.Fatalf("%q is not in the log:\n%s", kept, out)
		}
	}
}

func TestRateLimit(t *testing.T) {
	var buf bytes.Buffer
	h := RateLimit(slog.NewTextHandler(&buf, nil), time.Hour, 3)
	log := slog.New(h).With("component", "rtmp")
	for i := 0; i < 5000; i++ {
		log.Warn("connection closed", "i", i)
		log.Info("info is not limited")
	}
	if n := strings.Count(buf.String(), "connection closed"); n != 3 {
		t.Fatalf("%d warnings written, want 3", n)
	}
	if n := strings.Count(buf.String(), "info is not limited"); n != 5000 {
		t.Fatalf("%d info lines, want 5000", n)
	}
	// The next interval's first warning says how many were left out.
	st := h.(rateHandler).st
	for _, e := range st.by {
		e.start = e.start.Add(-2 * time.Hour)
	}
	log.Warn("connection closed")
	if !strings.Contains(buf.String(), "suppressed=4997") {
		t.Fatalf("no count of the suppressed warnings:\n%s", buf.String()[max(0, buf.Len()-300):])
	}
}
