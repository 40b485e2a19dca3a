package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/moqgate/moqgate/internal/auth"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

func (s *Server) authorizer() *auth.Authorizer { return s.auth.Load() }

// unauthorized is the code every MoQ *_ERROR registry uses for UNAUTHORIZED.
const unauthorized = 0x1

// authorizeMoQ is the relay's Authorize hook: every publish and subscribe
// request of every MoQ session, checked before anything is looked up so a
// refusal does not tell whether the broadcast exists.
func (s *Server) authorizeMoQ(sess *moq.Session, action, path string, params moq.Params) error {
	if !s.authorizer().Enabled() {
		// In-process adapters use the relay's handles, not sessions: they
		// authorize at their own edge and never reach this hook.
		return nil
	}
	token := moq.RequestAuthToken(params)
	if token == "" {
		token = sess.AuthToken()
	}
	g, err := s.authorizer().Check(token, action, path)
	if err != nil {
		s.metrics.authRefusals.WithLabelValues(sess.Conn().Protocol()).Inc()
		s.log.Info("moq request refused", "action", action, "path", path,
			"remote", sess.Conn().RemoteAddr().String(), "reason", err)
		return &moq.RequestError{Code: unauthorized, Reason: "unauthorized"}
	}
	sess.ExpireAt(g.Expires)
	return nil
}

// expiringWriter refuses frames once the publisher's token expired, which
// makes the ingest adapter close the connection.
type expiringWriter struct {
	media.BroadcastWriter
	expires time.Time
	once    sync.Once
	onExp   func()
}

func (w *expiringWriter) WriteFrame(track string, f media.Frame) error {
	if !w.expires.IsZero() && time.Now().After(w.expires) {
		w.once.Do(w.onExp)
		return fmt.Errorf("%w: publishing stopped", auth.ErrExpired)
	}
	return w.BroadcastWriter.WriteFrame(track, f)
}

// errNotAllowed: a valid token that does not grant publishing on the path.
var errNotAllowed = errors.New("not allowed to publish here")

// authorizePublish checks a token presented by an ingest adapter.
func (s *Server) authorizePublish(ctx context.Context, proto, token, path, remote string) (*auth.Grant, error) {
	g, err := s.authorizer().Check(token, auth.Publish, path)
	if err != nil {
		s.metrics.authRefusals.WithLabelValues(proto).Inc()
		s.log.Info("publish refused", "protocol", proto, "path", path, "remote", remote, "reason", err)
		if errors.Is(err, auth.ErrForbidden) {
			return nil, errNotAllowed
		}
		return nil, errors.New("unauthorized")
	}
	return g, nil
}
