package rtc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLoggerFactory routes pion's logs to slog. pion is chatty: its trace
// and debug output is dropped, its info and warnings (mostly benign: a
// packet from an unknown peer, a closed stream) become debug, its errors
// warnings.
type pionLoggerFactory struct{ log *slog.Logger }

func (f *pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("scope", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(string)          {}
func (l pionLogger) Debugf(string, ...any) {}
func (l pionLogger) Info(msg string)       { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, args ...any) {
	l.emit(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (l pionLogger) Warn(msg string) { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	l.emit(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (l pionLogger) Error(msg string) { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Errorf(format string, args ...any) {
	l.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}
