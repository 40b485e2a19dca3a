// Package whip is WHIP ingest (RFC 9725): a publisher (OBS, a browser,
// GStreamer) POSTs an SDP offer to /whip/{broadcast}; its RTP is put back in
// order (NACKs ask for what is missing), depacketized into access units
// (H.264 in packetization modes 0 and 1, VP8, VP9, AV1, Opus) and written
// to a media.BroadcastWriter, which publishes the broadcast through the
// relay with the same packaging and catalogs as RTMP.
package whip

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/moqgate/moqgate/internal/rtc"
	"github.com/moqgate/moqgate/media"
)

// PublishRequest describes a WHIP publisher.
type PublishRequest struct {
	Path   string // the broadcast
	Token  string // `Authorization: Bearer` token ("" if none)
	Remote string // the client's address
	Log    *slog.Logger
}

// PublishFunc authorizes a publisher and starts its broadcast; closing the
// writer ends it. An *rtc.Error is passed to the client (401/403, or 409
// when the broadcast is already live).
type PublishFunc func(ctx context.Context, req PublishRequest) (media.BroadcastWriter, error)

// Config configures a Server.
type Config struct {
	Engine  *rtc.Engine
	Publish PublishFunc
	// Authorize, if set, is asked before the offer is read; the session
	// ends when the authorization it returns does.
	Authorize rtc.AuthorizeFunc
	Logger    *slog.Logger
	// MaxBody bounds the SDP offer (default 1 MiB).
	MaxBody int64
	// Limits bound offers and sessions awaiting ICE.
	Limits rtc.Limits
	// IdleTimeout ends a session that sends no RTP for this long once
	// connected (default 10 s).
	IdleTimeout time.Duration
	// KeyframeInterval asks the publisher for a key frame (PLI) when the
	// last one is older, so that MoQ groups and HLS segments stay short
	// (browsers send key frames only when asked). 0 = only when needed.
	KeyframeInterval time.Duration
}

// Reorder waits: how long a missing packet is waited for (NACK
// retransmission) before the frame is given up.
const (
	videoReorderDelay = 250 * time.Millisecond
	audioReorderDelay = 80 * time.Millisecond
	nackInterval      = 25 * time.Millisecond
	// pliMinInterval spaces key frame requests to one track.
	pliMinInterval = 300 * time.Millisecond
	// publishWait: the catalogs wait this long for every negotiated track
	// to have its parameters (the video's first key frame).
	publishWait = 3 * time.Second
)

// Server serves the WHIP endpoint.
type Server struct {
	cfg Config
	log *slog.Logger
	ep  *rtc.Endpoint
	me  *webrtc.MediaEngine
	ir  *interceptor.Registry
}

// New makes a WHIP server.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	me, ir, err := mediaEngine()
	if err != nil {
		return nil, fmt.Errorf("whip: %w", err)
	}
	s.me, s.ir = me, ir
	s.ep = &rtc.Endpoint{Kind: "WHIP", Prefix: "/whip/", Engine: cfg.Engine, MaxBody: cfg.MaxBody, Limits: cfg.Limits,
		Authorize: cfg.Authorize, Create: s.create, Logger: cfg.Logger}
	return s, nil
}

// videoFeedback is what publishers may use: NACK, PLI, FIR, transport-cc.
var videoFeedback = []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}

// mediaEngine registers what WHIP takes; pion answers with the offered
// codecs it matches, in the offer's order (the publisher's preference).
func mediaEngine() (*webrtc.MediaEngine, *interceptor.Registry, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, err
	}
	type vc struct {
		mime, fmtp string
		pt         webrtc.PayloadType
	}
	for _, c := range []vc{
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 106},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 102},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f", 127},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f", 112},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f", 108},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f", 104},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f", 39},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=64001f", 114},
		{webrtc.MimeTypeVP8, "", 96},
		{webrtc.MimeTypeVP9, "profile-id=0", 98},
		{webrtc.MimeTypeVP9, "profile-id=2", 100},
		{webrtc.MimeTypeAV1, "", 45},
	} {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 90000, SDPFmtpLine: c.fmtp,
				RTCPFeedback: videoFeedback},
			PayloadType: c.pt,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, nil, err
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNackWithOptions(me, ir, []nack.GeneratorOption{nack.GeneratorInterval(nackInterval)}); err != nil {
		return nil, nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, nil, err
	}
	// Transport-wide congestion control feedback lets browsers raise their
	// bitrate; the simulcast header extensions name the layers.
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		return nil, nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, nil, err
	}
	return me, ir, nil
}

// ServeHTTP serves /whip/...
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.ep.ServeHTTP(w, r) }

// Sessions is the number of WHIP sessions.
func (s *Server) Sessions() int { return s.ep.Sessions() }

// SetSizes changes the offer bounds (body size, m-lines) for the requests
// that follow (a reload).
func (s *Server) SetSizes(sz rtc.Sizes) { s.ep.SetSizes(sz) }

// Close ends every session.
func (s *Server) Close() { s.ep.Close() }

// keyframeRequests is a broadcast writer that passes viewers' requests for
// a key frame on to the publisher (ingest.Broadcast does, through the
// media model, from viewers on any relay).
type keyframeRequests interface {
	OnKeyframeRequest(fn func())
}

// codecOf maps a pion MIME type to a media codec ("" if unsupported).
func codecOf(mime string) media.Codec {
	switch strings.ToLower(mime) {
	case "video/h264":
		return media.H264
	case "video/vp8":
		return media.VP8
	case "video/vp9":
		return media.VP9
	case "video/av1":
		return media.AV1
	case "audio/opus":
		return media.Opus
	}
	return ""
}

func supported(m rtc.OfferedMedia) bool {
	for _, c := range m.Codecs {
		if codecOf(c.Mime(m.Kind)) != "" {
			return true
		}
	}
	return false
}

func (s *Server) create(ctx context.Context, sess *rtc.Session, offer string) (string, error) {
	sections, err := rtc.ParseOffer(offer)
	if err != nil {
		return "", err
	}
	expected, sending := 0, 0
	for _, m := range sections {
		if m.Kind != "audio" && m.Kind != "video" || !m.Sends() {
			continue
		}
		sending++
		if supported(m) {
			expected += max(1, len(m.RIDs))
		}
	}
	if sending == 0 {
		return "", rtc.Errorf(http.StatusBadRequest, "the offer sends no audio or video (a WHIP offer is sendonly)")
	}
	if expected == 0 {
		return "", rtc.Errorf(http.StatusNotAcceptable,
			"no supported codec in the offer (%s); moqgate ingests H.264, VP8, VP9 and AV1 video and Opus audio",
			rtc.DescribeCodecs(sections))
	}
	bw, err := s.cfg.Publish(ctx, PublishRequest{Path: sess.Path, Token: sess.Token(), Remote: sess.Remote, Log: sess.Log})
	if err != nil {
		return "", err
	}
	p := &publisher{srv: s, sess: sess, path: sess.Path, log: sess.Log, bw: bw, expected: expected}
	if kr, ok := bw.(keyframeRequests); ok {
		kr.OnKeyframeRequest(func() { p.requestKeyframes("viewer") })
	}
	sess.OnClose(p.close)
	pc, err := sess.NewPeerConnection(s.cfg.Engine.API(s.me, s.ir))
	if err != nil {
		return "", err
	}
	p.pc = pc
	pc.OnTrack(p.onTrack)
	answer, err := sess.Answer(offer)
	if err != nil {
		return "", err
	}
	go p.supervise()
	return answer, nil
}

// publisher is one WHIP session publishing a broadcast.
type publisher struct {
	srv      *Server
	sess     *rtc.Session
	pc       *webrtc.PeerConnection
	path     string
	log      *slog.Logger
	bw       media.BroadcastWriter
	expected int

	lastPacket atomic.Int64 // unix nanoseconds

	mu         sync.Mutex
	tracks     []*inTrack
	t0         time.Time // media time 0: the first frame of any track
	published  []media.TrackInfo
	firstReady time.Time
	writeErrs  int
	rtcpRead   map[*webrtc.RTPReceiver]bool
}

func (p *publisher) close() {
	if err := p.bw.Close(); err != nil {
		p.log.Debug("close broadcast", "err", err)
	}
}

func (p *publisher) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	codec := codecOf(remote.Codec().MimeType)
	p.mu.Lock()
	if rid := remote.RID(); rid != "" {
		// Simulcast: one RTCP stream per layer (Read would panic in pion).
		go readSimulcastRTCP(recv, rid)
	} else if !p.rtcpReadLocked(recv) {
		go readRTCP(recv)
	}
	if codec == "" {
		p.mu.Unlock()
		p.log.Warn("WHIP track with an unsupported codec ignored", "codec", remote.Codec().MimeType)
		go drain(remote)
		return
	}
	kind := codec.Kind()
	name := string(kind)
	if rid := remote.RID(); rid != "" {
		name += "-" + rid
	}
	for n := 2; slices.ContainsFunc(p.tracks, func(t *inTrack) bool { return t.name == name }); n++ {
		name = fmt.Sprintf("%s%d", kind, n)
	}
	t := &inTrack{pub: p, name: name, kind: kind, remote: remote, info: media.TrackInfo{Name: name, Codec: codec}}
	t.info.Timescale = remote.Codec().ClockRate
	if codec == media.Opus {
		t.info.SampleRate = 48000
		t.reorder.maxDelay = audioReorderDelay
	} else {
		t.reorder.maxDelay = videoReorderDelay
		t.waitKey.Store(true)
	}
	if t.info.Timescale == 0 {
		t.info.Timescale = 90000
	}
	t.depack = newDepacketizer(codec)
	p.tracks = append(p.tracks, t)
	p.mu.Unlock()
	p.log.Info("WHIP track", "track", name, "codec", remote.Codec().MimeType, "rid", remote.RID(), "ssrc", uint32(remote.SSRC()))
	if kind == media.Video {
		t.requestKeyframe("start")
	}
	go t.readRTP()
}

func (p *publisher) rtcpReadLocked(recv *webrtc.RTPReceiver) bool {
	if p.rtcpRead == nil {
		p.rtcpRead = map[*webrtc.RTPReceiver]bool{}
	}
	seen := p.rtcpRead[recv]
	p.rtcpRead[recv] = true
	return seen
}

// readRTCP drains a receiver's RTCP so that the interceptors see it.
func readRTCP(recv *webrtc.RTPReceiver) {
	for {
		if _, _, err := recv.ReadRTCP(); err != nil {
			return
		}
	}
}

func readSimulcastRTCP(recv *webrtc.RTPReceiver, rid string) {
	for {
		if _, _, err := recv.ReadSimulcastRTCP(rid); err != nil {
			return
		}
	}
}

func drain(remote *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := remote.Read(buf); err != nil {
			return
		}
	}
}

// supervise reaps a silent session and keeps asking for key frames while
// a video track waits for one (and every KeyframeInterval if set).
func (p *publisher) supervise() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	select {
	case <-p.sess.Connected():
	case <-p.sess.Done():
		return
	}
	p.lastPacket.CompareAndSwap(0, time.Now().UnixNano())
	for {
		select {
		case <-p.sess.Done():
			return
		case now := <-t.C:
			if idle := now.Sub(time.Unix(0, p.lastPacket.Load())); idle > p.srv.cfg.IdleTimeout {
				p.log.Info("WHIP publisher sent no media; session reaped", "idle", idle.Round(time.Millisecond))
				p.sess.Close()
				return
			}
			p.mu.Lock()
			tracks := slices.Clone(p.tracks)
			p.mu.Unlock()
			for _, tr := range tracks {
				if !tr.video() {
					continue
				}
				switch {
				case tr.waitKey.Load():
					tr.requestKeyframe("waiting for a key frame")
				case p.srv.cfg.KeyframeInterval > 0 &&
					now.Sub(time.Unix(0, tr.lastKey.Load())) >= p.srv.cfg.KeyframeInterval:
					tr.requestKeyframe("interval")
				}
			}
		}
	}
}

func (p *publisher) requestKeyframes(reason string) {
	p.mu.Lock()
	tracks := slices.Clone(p.tracks)
	p.mu.Unlock()
	for _, t := range tracks {
		if t.video() {
			t.requestKeyframe(reason)
		}
	}
}

// mediaTime returns the time since media time 0 in clock units, starting
// media time 0 on the first call.
func (p *publisher) mediaTimeLocked(clock uint32) int64 {
	now := time.Now()
	if p.t0.IsZero() {
		p.t0 = now
	}
	return int64(now.Sub(p.t0)) * int64(clock) / int64(time.Second)
}

// writeFrame publishes the catalogs when a track becomes ready or changes,
// then the frame.
func (p *publisher) writeFrame(t *inTrack, f media.Frame, info media.TrackInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t.published = info
	if !ready(info) {
		return
	}
	all := true
	var infos []media.TrackInfo
	for _, k := range []media.Kind{media.Video, media.Audio} {
		for _, tr := range p.tracks {
			if tr.kind != k {
				continue
			}
			if ready(tr.published) {
				infos = append(infos, tr.published)
			} else {
				all = false
			}
		}
	}
	if all && len(p.tracks) < p.expected {
		all = false
	}
	if p.firstReady.IsZero() {
		p.firstReady = time.Now()
	}
	if !all && time.Since(p.firstReady) < publishWait && p.published == nil {
		return // wait a little for the other tracks
	}
	if !equalInfos(infos, p.published) {
		if err := p.bw.SetTracks(infos); err != nil {
			p.log.Warn("WHIP: publishing the tracks failed", "err", err)
			return
		}
		p.published = infos
		p.log.Info("WHIP tracks published", "tracks", describe(infos))
	}
	if !slices.ContainsFunc(p.published, func(i media.TrackInfo) bool { return i.Name == t.name }) {
		return
	}
	if err := p.bw.WriteFrame(t.name, f); err != nil {
		p.writeErrs++
		if p.writeErrs == 1 || p.writeErrs%100 == 0 {
			p.log.Warn("WHIP: frame not published", "track", t.name, "err", err, "errors", p.writeErrs)
		}
		if p.writeErrs > 50 { // e.g. an expired token, or the relay went away
			go p.sess.Close()
		}
		return
	}
	p.writeErrs = 0
}

func equalInfos(a, b []media.TrackInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameInfo(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sameInfo(a, b media.TrackInfo) bool {
	return a.Name == b.Name && a.Codec == b.Codec && a.Timescale == b.Timescale && a.Width == b.Width &&
		a.Height == b.Height && equalNALUs(a.SPS, b.SPS) && equalNALUs(a.PPS, b.PPS) &&
		string(a.AV1SequenceHeader) == string(b.AV1SequenceHeader) && a.VP9Profile == b.VP9Profile &&
		a.VP9BitDepth == b.VP9BitDepth && a.VP9Chroma == b.VP9Chroma && a.Channels == b.Channels &&
		a.SampleRate == b.SampleRate && a.Framerate == b.Framerate
}

func describe(infos []media.TrackInfo) string {
	var parts []string
	for _, i := range infos {
		s := fmt.Sprintf("%s=%s", i.Name, i.Codec)
		if i.Width > 0 {
			s += fmt.Sprintf(" %dx%d", i.Width, i.Height)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// inTrack is one incoming RTP stream.
type inTrack struct {
	pub    *publisher
	name   string
	kind   media.Kind
	remote *webrtc.TrackRemote

	// Owned by the readRTP goroutine.
	info      media.TrackInfo
	published media.TrackInfo // guarded by pub.mu
	reorder   reorder
	depack    depacketizer
	curTS     uint32
	curLen    int
	broken    bool // the frame being built lost a packet
	skipToEnd bool // after a loss: drop until a packet with the marker bit
	haveTS    bool
	lastTS    uint32
	ext       int64
	base      int64
	frames    uint64

	waitKey atomic.Bool
	lastPLI atomic.Int64
	lastKey atomic.Int64
}

func (t *inTrack) video() bool { return t.kind == media.Video }

func (t *inTrack) readRTP() {
	for {
		pkt, _, err := t.remote.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		t.pub.lastPacket.Store(now.UnixNano())
		if len(pkt.Payload) == 0 {
			continue // padding (bandwidth probing)
		}
		t.reorder.push(pkt, now, t.onPacket)
	}
}

// onPacket assembles frames from in-order packets.
func (t *inTrack) onPacket(pkt *rtp.Packet, lost int) {
	if lost > 0 {
		t.depack.reset()
		t.curLen, t.broken = 0, false
		if t.video() {
			t.skipToEnd = true
			if !t.waitKey.Swap(true) {
				t.pub.log.Debug("WHIP packet loss; waiting for a key frame", "track", t.name, "lost", lost)
			}
			t.requestKeyframe("loss")
		}
	}
	if t.skipToEnd {
		if pkt.Marker {
			t.skipToEnd = false
		}
		return
	}
	if t.curLen > 0 && pkt.Timestamp != t.curTS {
		t.finish() // the sender set no marker bit
	}
	if t.curLen == 0 {
		t.curTS = pkt.Timestamp
	}
	t.curLen++
	if err := t.depack.add(pkt); err != nil {
		t.broken = true
	}
	if !t.video() || pkt.Marker {
		t.finish()
	}
}

func (t *inTrack) finish() {
	data := t.depack.frame()
	broken := t.broken
	t.curLen, t.broken = 0, false
	if broken || len(data) == 0 {
		if t.video() && broken {
			t.waitKey.Store(true)
			t.requestKeyframe("undecodable frame")
		}
		return
	}
	out, key, _, err := inspect(&t.info, data) // changes reach the catalogs through writeFrame
	if err != nil {
		t.pub.log.Debug("WHIP frame dropped", "track", t.name, "err", err)
		if t.video() {
			t.waitKey.Store(true)
		}
		return
	}
	if len(out) == 0 {
		// Only AUDs, filler data or temporal delimiters: nothing to
		// publish (an empty frame is an error for the writer, and 50 in
		// a row would end the session).
		return
	}
	if t.video() {
		if key && !ready(t.info) {
			// A key frame without its parameters (an IDR without SPS/PPS
			// so far) cannot start the track: keep waiting, and asking,
			// for one that can, rather than publish the delta frames
			// that follow it.
			key = false
		}
		if !key && t.waitKey.Load() {
			return
		}
		if key {
			t.waitKey.Store(false)
			t.lastKey.Store(time.Now().UnixNano())
		}
	}
	f := media.Frame{DTS: t.dts(t.curTS), Keyframe: key || !t.video(), Data: out}
	if t.info.Codec == media.Opus {
		f.Duration = opusDuration(out)
	}
	t.frames++
	t.pub.writeFrame(t, f, t.info)
}

// dts maps an RTP timestamp to the broadcast's media time: the first
// frame is placed by its arrival, the rest follow the RTP clock.
func (t *inTrack) dts(ts uint32) int64 {
	if !t.haveTS {
		t.haveTS, t.lastTS = true, ts
		t.pub.mu.Lock()
		t.base = t.pub.mediaTimeLocked(t.info.Timescale)
		t.pub.mu.Unlock()
		return t.base
	}
	t.ext += int64(int32(ts - t.lastTS))
	t.lastTS = ts
	return t.base + t.ext
}

func (t *inTrack) requestKeyframe(reason string) {
	now := time.Now().UnixNano()
	last := t.lastPLI.Load()
	if now-last < int64(pliMinInterval) || !t.lastPLI.CompareAndSwap(last, now) {
		return
	}
	err := t.pub.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.remote.SSRC())}})
	if err != nil {
		t.pub.log.Debug("PLI not sent", "track", t.name, "err", err)
		return
	}
	t.pub.log.Debug("PLI sent", "track", t.name, "reason", reason)
}
