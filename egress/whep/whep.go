// Package whep is WHEP playback: a viewer POSTs a recvonly SDP offer to
// /whep/{broadcast} and receives the broadcast's video and audio over
// WebRTC. The broadcast is read through the relay's media model
// (moq.Relay.Local, the same consumer API a remote session gives): one
// subscription per track whatever the number of viewers, each object
// packetized into RTP once, and every viewer reading the packetized frames
// from a ring. Key frames for new viewers are asked for on the video track
// (a new-group request, which relays pass upstream).
//
// A viewer starts at the newest key frame at once (shown as a still, with
// its timestamp set to "now"), then plays from the next key frame on; one
// that falls behind skips to the next key frame, so latency never
// accumulates. AAC audio cannot go over WebRTC: the viewer subscribes to
// the broadcast's Opus rendition (media.OpusRendition), which makes the
// origin transcode it, once per broadcast, even for an edge's viewers.
//
// B-frames: WebRTC has none. A viewer of a video track whose presentation
// order differs from its decode order (or whose codec the offer lacks, e.g.
// HEVC) gets the broadcast's WebRTC rendition (media.WebRTCVideoRendition)
// instead, which the origin re-encodes once per broadcast while viewers
// watch it; where that cannot be had (transcoding off, the server's cap
// reached) the viewer is refused with 406, and a viewer arriving while the
// transcoder starts gets 503 with Retry-After. If B-frames show up later in
// a track that had none, its video stops with a warning rather than being
// sent as a stream browsers render out of order.
package whep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/webrtc/v4"

	"github.com/moqgate/moqgate/internal/rtc"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// Config configures a Server.
type Config struct {
	Engine *rtc.Engine
	// Relay is read through the media model (Relay.Local): on an edge it
	// pulls from its upstream like for any subscriber.
	Relay *moq.Relay
	// Authorize, if set, is asked before the offer is read; the session
	// ends when the authorization it returns does.
	Authorize rtc.AuthorizeFunc
	Logger    *slog.Logger
	MaxBody   int64
	// Limits bound offers and sessions awaiting ICE.
	Limits rtc.Limits
	// CatalogTimeout bounds the wait for a broadcast's catalog (default 5 s).
	CatalogTimeout time.Duration
	// HubLinger keeps a broadcast's subscriptions this long after its
	// last viewer left (default 5 s).
	HubLinger time.Duration
}

// Server serves the WHEP endpoint.
type Server struct {
	cfg            Config
	log            *slog.Logger
	ep             *rtc.Endpoint
	catalogTimeout time.Duration
	linger         time.Duration

	mu   sync.Mutex
	hubs map[string]*hub
}

// New makes a WHEP server.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, hubs: map[string]*hub{},
		catalogTimeout: cfg.CatalogTimeout, linger: cfg.HubLinger}
	if s.catalogTimeout <= 0 {
		s.catalogTimeout = 5 * time.Second
	}
	if s.linger <= 0 {
		s.linger = 5 * time.Second
	}
	// No pion interceptors: NACKs are answered from each viewer's history
	// of references to the shared packets (no copy per viewer), sender
	// reports come from the viewer's clock (the broadcast's timeline, which
	// keeps audio and video in sync in browsers), and there is no
	// congestion control (every viewer gets the one encoding).
	s.ep = &rtc.Endpoint{Kind: "WHEP", Prefix: "/whep/", Engine: cfg.Engine, MaxBody: cfg.MaxBody, Limits: cfg.Limits,
		Authorize: cfg.Authorize, Create: s.create, Logger: cfg.Logger}
	return s, nil
}

// ServeHTTP serves /whep/...
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.ep.ServeHTTP(w, r) }

// Sessions is the number of WHEP sessions.
func (s *Server) Sessions() int { return s.ep.Sessions() }

// SetSizes changes the offer bounds (body size, m-lines) for the requests
// that follow (a reload).
func (s *Server) SetSizes(sz rtc.Sizes) { s.ep.SetSizes(sz) }

// Close ends every session and hub.
func (s *Server) Close() {
	s.ep.Close()
	s.mu.Lock()
	hubs := make([]*hub, 0, len(s.hubs))
	for _, h := range s.hubs {
		hubs = append(hubs, h)
	}
	s.mu.Unlock()
	for _, h := range hubs {
		h.stop()
	}
}

// acquire returns the running hub of a broadcast once it has a catalog.
func (s *Server) acquire(ctx context.Context, path string) (*hub, error) {
	s.mu.Lock()
	h := s.hubs[path]
	if h == nil {
		h = newHub(s, path)
		s.hubs[path] = h
		go h.run()
	}
	h.mu.Lock()
	h.refs++
	if h.linger != nil {
		h.linger.Stop()
		h.linger = nil
	}
	h.mu.Unlock()
	s.mu.Unlock()
	select {
	case <-h.ready:
	case <-ctx.Done():
		s.release(h)
		return nil, ctx.Err()
	case <-time.After(s.catalogTimeout + time.Second):
		s.release(h)
		return nil, rtc.Errorf(http.StatusServiceUnavailable, "broadcast %s has no catalog yet", path)
	}
	if h.err != nil {
		s.release(h)
		return nil, h.err
	}
	return h, nil
}

func (s *Server) release(h *hub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refs--
	if h.refs > 0 || h.stopped {
		return
	}
	h.linger = time.AfterFunc(s.linger, func() {
		h.mu.Lock()
		idle := h.refs == 0
		h.mu.Unlock()
		if idle {
			h.log.Debug("WHEP: no viewers; unsubscribing")
			h.stop()
		}
	})
}

// choice is what a viewer gets for one media kind.
type choice struct {
	track   string
	info    media.TrackInfo
	offered rtc.OfferedCodec
	kind    string // "audio" or "video"
	pending bool   // a rendition being made, which may not be in the catalog yet
}

// offeredFor returns the offered codec that carries c, if any: for H.264
// packetization mode 1 with the same profile when offered, else any mode 1.
func offeredFor(m rtc.OfferedMedia, info media.TrackInfo) (rtc.OfferedCodec, bool) {
	want := map[media.Codec]string{media.H264: "h264", media.H265: "h265", media.VP8: "vp8", media.VP9: "vp9",
		media.AV1: "av1", media.Opus: "opus"}[info.Codec]
	if want == "" {
		return rtc.OfferedCodec{}, false
	}
	var best *rtc.OfferedCodec
	score := -1
	for i, c := range m.Codecs {
		if c.Name != want {
			continue
		}
		sc := 0
		switch info.Codec {
		case media.H264:
			if c.Param("packetization-mode") != "1" {
				continue
			}
			if pli := c.Param("profile-level-id"); len(pli) == 6 && len(info.SPS) > 0 && len(info.SPS[0]) >= 4 {
				if strings.EqualFold(pli[:2], fmt.Sprintf("%02x", info.SPS[0][1])) {
					sc += 2
					if strings.EqualFold(pli[2:4], fmt.Sprintf("%02x", info.SPS[0][2])) {
						sc++
					}
				}
			}
		case media.VP9:
			p := c.Param("profile-id")
			if p == "" {
				p = "0"
			}
			if p != fmt.Sprint(info.VP9Profile) {
				continue
			}
		}
		if sc > score {
			best, score = &m.Codecs[i], sc
		}
	}
	if best == nil {
		return rtc.OfferedCodec{}, false
	}
	return *best, true
}

// mayReorder reports whether a video track's decode order may differ from
// its presentation order (B-frames): H.264 unless its profile has none or
// its SPS says frames are never reordered; H.265 always (the frames tell).
func mayReorder(info media.TrackInfo) bool {
	switch info.Codec {
	case media.H264:
		if len(info.SPS) == 0 {
			return true
		}
		var sps h264.SPS
		if sps.Unmarshal(info.SPS[0]) != nil {
			return true
		}
		if sps.ProfileIdc == 66 { // Baseline, Constrained Baseline
			return false
		}
		if sps.VUI != nil && sps.VUI.BitstreamRestriction != nil {
			return sps.VUI.BitstreamRestriction.MaxNumReorderFrames > 0
		}
		return true
	case media.H265:
		return true
	}
	return false
}

// feedbackFor keeps the RTCP feedback moqgate acts on.
func feedbackFor(c rtc.OfferedCodec) []webrtc.RTCPFeedback {
	var out []webrtc.RTCPFeedback
	for _, fb := range c.Feedback {
		switch {
		case fb.Type == "nack" && (fb.Parameter == "" || fb.Parameter == "pli"), fb.Type == "ccm" && fb.Parameter == "fir":
			out = append(out, fb)
		}
	}
	return out
}

// askRendition asks for a derived rendition of the broadcast through the
// media model: a subscription to it makes the origin start the transcode
// (on this server or upstream of an edge); the feed subscribes again for
// real.
func (s *Server) askRendition(ctx context.Context, path, name string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c, err := s.cfg.Relay.Local("whep").SubscribeTrack(ctx, path, name, moq.SubscribeOptions{Priority: 80})
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// webrtcVideo is the broadcast's video re-encoded for WebRTC (H.264
// constrained baseline, no B-frames), for a viewer that cannot take the
// original; nil (no error) when the offer takes no H.264. A transcoder
// still starting is a 503 with Retry-After; one the origin cannot run
// (off, over its cap, no libx264) is the error it gave.
func (s *Server) webrtcVideo(ctx context.Context, sess *rtc.Session, m rtc.OfferedMedia, why string) (*choice, error) {
	info := media.TrackInfo{Codec: media.H264, SPS: [][]byte{{0x67, 0x42, 0xc0, 0x1f}}} // constrained baseline 3.1
	oc, ok := offeredFor(m, info)
	if !ok {
		return nil, nil
	}
	err := s.askRendition(ctx, sess.Path, media.WebRTCVideoRendition, 10*time.Second)
	switch {
	case err == nil:
		sess.Log.Info("WHEP: the viewer gets the video re-encoded for WebRTC", "why", why)
		return &choice{track: media.WebRTCVideoRendition, info: info, offered: oc, kind: "video", pending: true}, nil
	case errors.Is(err, moq.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return nil, &rtc.Error{Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second,
			Msg: "the broadcast's video (" + why + ") is being re-encoded for WebRTC and is not ready yet: retry shortly"}
	}
	var re *moq.RequestError
	if errors.As(err, &re) {
		err = errors.New(re.Reason)
	}
	return nil, err
}

func (s *Server) create(ctx context.Context, sess *rtc.Session, offer string) (string, error) {
	sections, err := rtc.ParseOffer(offer)
	if err != nil {
		return "", err
	}
	var audioM, videoM *rtc.OfferedMedia
	for i := range sections {
		m := &sections[i]
		if !m.Receives() {
			continue
		}
		switch {
		case m.Kind == "audio" && audioM == nil:
			audioM = m
		case m.Kind == "video" && videoM == nil:
			videoM = m
		}
	}
	if audioM == nil && videoM == nil {
		return "", rtc.Errorf(http.StatusBadRequest, "the offer receives no audio or video (a WHEP offer is recvonly)")
	}
	h, err := s.acquire(ctx, sess.Path)
	if err != nil {
		return "", err
	}
	sess.OnClose(func() { s.release(h) })

	tracks, _ := h.catalog()
	var have []string
	var video, audio *choice
	var bframes, transcodable bool
	// Video: the largest rendition a codec of the offer carries.
	for _, t := range tracks {
		if t.Kind != media.Video || t.Name == media.WebRTCVideoRendition {
			continue // the rendition is for those that need it (below)
		}
		info, err := media.ParseInit(t.Init)
		if err != nil {
			continue
		}
		have = append(have, t.Codec)
		transcodable = transcodable || info.Codec == media.H264 || info.Codec == media.H265
		if videoM == nil {
			continue
		}
		oc, ok := offeredFor(*videoM, info)
		if !ok {
			continue
		}
		if video != nil && info.Width*info.Height <= video.info.Width*video.info.Height {
			continue
		}
		if mayReorder(info) {
			// The SPS allows B-frames: look at the first frames.
			if f, err := h.feed(t.Name); err == nil && f.checkReorders(ctx.Done(), 8, 2*time.Second) {
				bframes = true
				continue
			}
		}
		video = &choice{track: t.Name, info: info, offered: oc, kind: "video"}
	}
	// Audio: Opus, or an Opus rendition made from AAC.
	hasAAC := false
	for _, t := range tracks {
		if t.Kind != media.Audio {
			continue
		}
		info, err := media.ParseInit(t.Init)
		if err != nil {
			continue
		}
		have = append(have, t.Codec)
		if info.Codec == media.AAC {
			hasAAC = true
		}
		if audioM == nil || audio != nil {
			continue
		}
		if oc, ok := offeredFor(*audioM, info); ok {
			audio = &choice{track: t.Name, info: info, offered: oc, kind: "audio"}
			h.feed(t.Name) // starts reading while the connection is set up
		}
	}
	if audio == nil && hasAAC && audioM != nil {
		opus := media.TrackInfo{Codec: media.Opus, SampleRate: 48000, Channels: 2}
		oc, ok := offeredFor(*audioM, opus)
		if ok {
			if err := s.askRendition(ctx, sess.Path, media.OpusRendition, 5*time.Second); err != nil {
				sess.Log.Warn("WHEP: the broadcast's audio is AAC, which WebRTC cannot carry, and it cannot be transcoded; the viewer gets no audio",
					"err", err)
			} else {
				audio = &choice{track: media.OpusRendition, info: opus, offered: oc, kind: "audio", pending: true}
			}
		}
	}
	if video == nil && videoM != nil && transcodable {
		why := "its codec is not in the offer"
		if bframes {
			why = "it has B-frames"
		}
		video, err = s.webrtcVideo(ctx, sess, *videoM, why)
		var re *rtc.Error
		switch {
		case errors.As(err, &re):
			return "", err
		case err != nil && bframes:
			// Rather than audio without a word about the video: a clear
			// refusal (an audio-only offer still plays the audio).
			return "", rtc.Errorf(http.StatusNotAcceptable,
				"the broadcast's video has B-frames, which WebRTC cannot carry, and it cannot be re-encoded now (%v): re-encode without B-frames (x264: -bf 0 or -tune zerolatency; OBS: B-frames 0), or offer audio only", err)
		case err != nil:
			sess.Log.Warn("WHEP: the broadcast's video codec is not in the offer, and it cannot be re-encoded; the viewer gets no video", "err", err)
		}
	}
	if video == nil && bframes {
		return "", rtc.Errorf(http.StatusNotAcceptable,
			"the broadcast's video has B-frames, which WebRTC cannot carry: re-encode without B-frames (x264: -bf 0 or -tune zerolatency; OBS: B-frames 0), or offer audio only")
	}
	if video == nil && audio == nil {
		return "", rtc.Errorf(http.StatusNotAcceptable, "nothing in broadcast %s can be sent to this viewer: it has %s; the offer takes %s",
			sess.Path, strings.Join(have, ", "), rtc.DescribeCodecs(sections))
	}

	me := &webrtc.MediaEngine{}
	var choices []*choice
	for _, c := range []*choice{video, audio} {
		if c == nil {
			continue
		}
		typ := webrtc.RTPCodecTypeVideo
		if c.kind == "audio" {
			typ = webrtc.RTPCodecTypeAudio
		}
		params := c.offered.Parameters(c.kind)
		params.RTCPFeedback = feedbackFor(c.offered)
		if err := me.RegisterCodec(params, typ); err != nil {
			return "", fmt.Errorf("register codec: %w", err)
		}
		choices = append(choices, c)
	}
	pc, err := sess.NewPeerConnection(s.cfg.Engine.API(me, nil))
	if err != nil {
		return "", err
	}
	v := &viewer{srv: s, sess: sess, hub: h, pc: pc, log: sess.Log}
	for _, c := range choices {
		params := c.offered.Parameters(c.kind)
		track, err := webrtc.NewTrackLocalStaticRTP(params.RTPCodecCapability, c.kind, "moqgate")
		if err != nil {
			return "", err
		}
		sender, err := pc.AddTrack(track)
		if err != nil {
			return "", fmt.Errorf("add %s track: %w", c.kind, err)
		}
		v.senders = append(v.senders, newSender(v, c, track, sender, c.pending))
	}
	answer, err := sess.Answer(offer)
	if err != nil {
		return "", err
	}
	var names []string
	for _, snd := range v.senders {
		names = append(names, snd.name+"="+snd.codec)
	}
	sess.Log.Info("WHEP viewer", "tracks", strings.Join(names, ", "))
	go v.run()
	return answer, nil
}

var errEnded = errors.New("broadcast ended")
