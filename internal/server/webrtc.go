package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/moqgate/moqgate/egress/whep"
	"github.com/moqgate/moqgate/ingest"
	"github.com/moqgate/moqgate/ingest/whip"
	"github.com/moqgate/moqgate/internal/auth"
	"github.com/moqgate/moqgate/internal/limit"
	"github.com/moqgate/moqgate/internal/rtc"
	"github.com/moqgate/moqgate/internal/transcode"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// webRTC is WHIP ingest and WHEP playback on the shared WebRTC sockets,
// and the AAC to Opus transcoding WHEP viewers of RTMP broadcasts need.
type webRTC struct {
	engine    *rtc.Engine
	whip      *whip.Server
	whep      *whep.Server
	transcode *transcode.Registry
	pending   *limit.Gate // sessions awaiting ICE; limits reloaded on SIGHUP
}

// setupWebRTC binds the WebRTC sockets (unless webrtc.udp is empty).
func (s *Server) setupWebRTC() error {
	s.webrtc = &webRTC{transcode: transcode.NewRegistry(s.cfg.WebRTC.FFmpeg, s.log)}
	s.webrtc.transcode.ConfigureVideo(transcode.VideoOptions{Off: s.cfg.WebRTC.VideoTranscode == "off",
		Preset: s.cfg.WebRTC.VideoPreset, Max: s.cfg.WebRTC.MaxVideoTranscodes, Subscribers: s.relay.TrackSubscribers})
	if s.cfg.WebRTC.UDP == "" {
		return nil
	}
	log := s.log.With("component", "webrtc")
	e, err := rtc.NewEngine(rtc.Config{UDP: s.cfg.WebRTC.UDP, TCP: s.cfg.WebRTC.TCP,
		NAT1To1IPs: s.cfg.WebRTC.NAT1To1IPs, STUNServers: s.cfg.WebRTC.STUNServers, Logger: log,
		ConnectTimeout: s.cfg.Limits.WebRTCConnectTimeout})
	if err != nil {
		return err
	}
	s.webrtc.engine = e
	// One gate for WHIP and WHEP: a session awaiting ICE costs the same.
	lim := rtc.Limits{MaxMediaSections: s.cfg.Limits.WebRTCMaxMediaSections,
		Pending:  limit.New("WebRTC sessions awaiting ICE", s.cfg.Limits.WebRTCPendingTotal, s.cfg.Limits.WebRTCPendingPerIP),
		OnRefuse: func(reason string) { s.metrics.limitRefusals.WithLabelValues(reason).Inc() }}
	s.webrtc.pending = lim.Pending
	s.webrtc.whip, err = whip.New(whip.Config{Engine: e, Publish: s.onWHIPPublish, Authorize: s.authorizeWHIP,
		Logger: s.log.With("component", "whip"), Limits: lim,
		MaxBody: int64(s.cfg.Limits.HTTPBodyMax), KeyframeInterval: s.cfg.WebRTC.KeyframeInterval})
	if err != nil {
		e.Close()
		return err
	}
	s.webrtc.whep, err = whep.New(whep.Config{Engine: e, Relay: s.relay, Logger: s.log.With("component", "whep"),
		MaxBody: int64(s.cfg.Limits.HTTPBodyMax), Authorize: s.authorizeWHEP, Limits: lim})
	if err != nil {
		e.Close()
		return err
	}
	return nil
}

// webrtcRoutes adds /whip/ and /whep/ (unless WebRTC is off).
func (s *Server) webrtcRoutes() {
	if s.webrtc == nil || s.webrtc.engine == nil {
		return
	}
	s.mux.Handle("/whip/", s.webrtc.whip)
	s.mux.Handle("/whep/", s.webrtc.whep)
}

// closeWebRTC ends every WebRTC session and releases the sockets.
func (s *Server) closeWebRTC() {
	if s.webrtc == nil || s.webrtc.engine == nil {
		return
	}
	s.webrtc.whip.Close()
	s.webrtc.whep.Close()
	if err := s.webrtc.engine.Close(); err != nil {
		s.log.Debug("close WebRTC sockets", "err", err)
	}
}

// webrtcAddr is the WebRTC UDP address for the startup log.
func (s *Server) webrtcAddr() string {
	if s.webrtc == nil || s.webrtc.engine == nil {
		return "off"
	}
	return "udp://" + s.webrtc.engine.UDPAddr().String()
}

// produceTrack makes the derived renditions subscribers ask for (the
// relay's ProduceTrack): the Opus rendition of a local broadcast's AAC
// audio, and its video re-encoded for WebRTC, whoever asks — a WHEP
// viewer here, or an edge relay's. The video waits for the transcoder's
// first key frame (bounded: then "not yet", a Timeout the WHEP side turns
// into 503 Retry-After).
func (s *Server) produceTrack(path, name string) error {
	if s.webrtc == nil {
		return errors.New("no such rendition")
	}
	switch name {
	case transcode.OpusTrack:
		_, err := s.webrtc.transcode.Enable(path)
		return err
	case transcode.VideoTrack:
		err := s.webrtc.transcode.EnableVideo(context.Background(), path)
		switch {
		case errors.Is(err, transcode.ErrStarting):
			return moq.Refusal(moq.ErrTimeout, err.Error())
		case err != nil:
			return moq.Refusal(moq.ErrNotSupported, err.Error())
		}
		return nil
	}
	return errors.New("no such rendition")
}

// withOpus lets WHEP viewers of a broadcast get its AAC audio as Opus, and
// its video re-encoded when they cannot take it (B-frames).
func (s *Server) withOpus(path string, w media.BroadcastWriter) media.BroadcastWriter {
	if s.webrtc == nil || s.webrtc.engine == nil {
		return w
	}
	return s.webrtc.transcode.Wrap(path, w)
}

// onWHIPPublish starts a WHIP publisher's broadcast through an in-process
// session (authorizeWHIP let it in, and the session ends when its token
// expires).
func (s *Server) onWHIPPublish(ctx context.Context, req whip.PublishRequest) (media.BroadcastWriter, error) {
	b, err := ingest.StartWith(ctx, ingest.LocalDialer(s.relay, "whip", req.Log), req.Path, req.Log,
		ingest.Options{Continuity: s.continuity})
	if err != nil {
		var re *moq.RequestError
		if errors.As(err, &re) {
			return nil, rtc.Errorf(http.StatusConflict, "%s", re.Reason)
		}
		return nil, err
	}
	req.Log.Info("WHIP publisher started")
	return b, nil
}

// authorizeWHIP checks a WHIP publisher's bearer token, before its offer
// is read or anything is looked up; the session ends when the token
// expires.
func (s *Server) authorizeWHIP(r *http.Request, path, token string) (time.Time, error) {
	if !s.authorizer().Enabled() {
		return time.Time{}, nil
	}
	g, err := s.authorizePublish(r.Context(), "whip", token, path, r.RemoteAddr)
	if err != nil {
		if strings.Contains(err.Error(), "not allowed") {
			return time.Time{}, rtc.Errorf(http.StatusForbidden, "%v", err)
		}
		return time.Time{}, rtc.Errorf(http.StatusUnauthorized, "%v", err)
	}
	return g.Expires, nil
}

// authorizeWHEP checks a WHEP viewer's bearer token when auth is on; the
// session ends when the token expires.
func (s *Server) authorizeWHEP(r *http.Request, path, token string) (time.Time, error) {
	if !s.authorizer().Enabled() {
		return time.Time{}, nil
	}
	g, err := s.authorizer().Check(token, auth.Subscribe, path)
	if err != nil {
		s.metrics.authRefusals.WithLabelValues("whep").Inc()
		s.log.Info("WHEP viewer refused", "path", path, "remote", r.RemoteAddr, "reason", err)
		if errors.Is(err, auth.ErrForbidden) {
			return time.Time{}, rtc.Errorf(http.StatusForbidden, "not allowed to play this broadcast")
		}
		return time.Time{}, rtc.Errorf(http.StatusUnauthorized, "unauthorized")
	}
	return g.Expires, nil
}
