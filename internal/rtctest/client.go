package rtctest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// NewAPI returns a pion API for test peers on loopback: host candidates
// including loopback, no mDNS, the default codecs and interceptors.
func NewAPI() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(settings())), nil
}

// NewLightAPI returns a pion API for many viewers in one process: NACK
// generation as the only interceptor, and only H.264 and Opus.
func NewLightAPI() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
		webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}, PayloadType: 106},
		webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	// Like a browser, NACK what is lost; nothing else.
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(settings())), nil
}

// bigBufNet is the standard network with 4 MiB socket receive buffers:
// many viewers in one process read in bursts (a key frame to everyone).
type bigBufNet struct{ *stdnet.Net }

func (n bigBufNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		_ = c.SetReadBuffer(4 << 20)
	}
	return c, err
}

func (n bigBufNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if u, ok := c.(*net.UDPConn); err == nil && ok {
		_ = u.SetReadBuffer(4 << 20)
	}
	return c, err
}

func settings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	if n, err := stdnet.NewNet(); err == nil {
		se.SetNet(bigBufNet{n})
	}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return se
}

// negotiate POSTs pc's offer (all candidates gathered) to endpoint and
// applies the answer. It returns the resource URL.
func negotiate(ctx context.Context, pc *webrtc.PeerConnection, endpoint, token string) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	status, hdr, body, err := Do(ctx, http.MethodPost, endpoint, token, "application/sdp", pc.LocalDescription().SDP, nil)
	if err != nil {
		return "", err
	}
	if status != http.StatusCreated {
		return "", &HTTPError{Status: status, Body: body, Header: hdr}
	}
	loc := hdr.Get("Location")
	if loc == "" {
		return "", errors.New("no Location in the 201 response")
	}
	base, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	ref, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		return "", fmt.Errorf("set answer: %w", err)
	}
	return base.ResolveReference(ref).String(), nil
}

// HTTPError is a non-201 answer to an offer.
type HTTPError struct {
	Status int
	Body   string
	Header http.Header
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// Do makes one HTTP request and returns the status, headers and body.
func Do(ctx context.Context, method, u, token, contentType, body string, hdr http.Header) (int, http.Header, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, string(b), err
}

// PublishOptions configure Publish.
type PublishOptions struct {
	// Endpoint is the WHIP URL, e.g. http://127.0.0.1:4443/whip/live/test.
	Endpoint string
	Token    string
	// Video is H.264 access units (Annex B) sent at FPS; Audio is Opus
	// packets sent every 20 ms. Either may be empty.
	Video [][]byte
	FPS   int
	Audio [][]byte
	// Loop sends the media again and again until Close.
	Loop bool
	// StampSEI puts the send time in an SEI message of every video frame.
	StampSEI bool
	API      *webrtc.API
}

// Publisher is a WHIP publisher.
type Publisher struct {
	PC       *webrtc.PeerConnection
	Resource string
	token    string
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	Sent     atomic.Int64 // video frames sent
	PLIs     atomic.Int64 // key frame requests received
}

// Publish connects to a WHIP endpoint and starts sending once connected.
func Publish(ctx context.Context, o PublishOptions) (*Publisher, error) {
	api := o.API
	if api == nil {
		var err error
		if api, err = NewAPI(); err != nil {
			return nil, err
		}
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	p := &Publisher{PC: pc, token: o.Token}
	var vt, at *webrtc.TrackLocalStaticSample
	if len(o.Video) > 0 {
		vt, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "pub")
		if err == nil {
			var s *webrtc.RTPSender
			if s, err = pc.AddTrack(vt); err == nil {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					p.readRTCP(s)
				}()
			}
		}
	}
	if err == nil && len(o.Audio) > 0 {
		at, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
		if err == nil {
			_, err = pc.AddTrack(at)
		}
	}
	if err != nil {
		pc.Close()
		return nil, err
	}
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	p.Resource, err = negotiate(ctx, pc, o.Endpoint, o.Token)
	if err != nil {
		pc.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	fps := o.FPS
	if fps <= 0 {
		fps = 30
	}
	send := func(track *webrtc.TrackLocalStaticSample, frames [][]byte, d time.Duration, video bool) {
		defer p.wg.Done()
		select {
		case <-connected:
		case <-sctx.Done():
			return
		}
		t := time.NewTicker(d)
		defer t.Stop()
		for i := 0; ; i++ {
			if i == len(frames) {
				if !o.Loop {
					return
				}
				i = 0
			}
			data := frames[i]
			if video && o.StampSEI {
				data = withSEI(data, time.Now())
			}
			if err := track.WriteSample(media.Sample{Data: data, Duration: d}); err != nil {
				return
			}
			if video {
				p.Sent.Add(1)
			}
			select {
			case <-t.C:
			case <-sctx.Done():
				return
			}
		}
	}
	if vt != nil {
		p.wg.Add(1)
		go send(vt, o.Video, time.Second/time.Duration(fps), true)
	}
	if at != nil {
		p.wg.Add(1)
		go send(at, o.Audio, 20*time.Millisecond, false)
	}
	return p, nil
}

func (p *Publisher) readRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		n, _, err := s.Read(buf)
		if err != nil {
			return
		}
		// PLI: payload type 206, format 1.
		for b := buf[:n]; len(b) >= 4; {
			if b[1] == 206 && b[0]&0x1f == 1 {
				p.PLIs.Add(1)
			}
			l := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
			if l > len(b) {
				break
			}
			b = b[l:]
		}
	}
}

// Close stops sending, DELETEs the resource and closes the connection.
func (p *Publisher) Close() error {
	if p.cancel != nil {
		p.cancel()
	}
	err := deleteResource(p.Resource, p.token)
	p.PC.Close()
	p.wg.Wait()
	return err
}

// TrackStats is what a viewer received on one track.
type TrackStats struct {
	Codec     string
	Packets   int64
	Bytes     int64
	Frames    int64 // marker bits (video) or packets (audio)
	Keyframes int64 // H.264 IDR frames
	First     time.Time
	Last      time.Time
	// Latencies from the publisher's SEI timestamps (H.264, unless Light).
	Latencies []time.Duration
}

// ViewOptions configure View.
type ViewOptions struct {
	Endpoint string
	Token    string
	NoVideo  bool
	NoAudio  bool
	// Light only counts packets and bytes (for many viewers in one process).
	Light bool
	API   *webrtc.API
	// H264, if set, gets the H.264 access units received, in Annex B from
	// the first IDR frame on (for a decoder to check; not with Light).
	H264 io.Writer
}

// Viewer is a WHEP viewer.
type Viewer struct {
	PC       *webrtc.PeerConnection
	Resource string
	token    string

	mu     sync.Mutex
	tracks map[string]*TrackStats
	wg     sync.WaitGroup
	// Connected is closed when the peer connection is up.
	Connected chan struct{}
}

// View connects to a WHEP endpoint and receives until Close.
func View(ctx context.Context, o ViewOptions) (*Viewer, error) {
	api := o.API
	if api == nil {
		var err error
		if api, err = NewAPI(); err != nil {
			return nil, err
		}
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	v := &Viewer{PC: pc, token: o.Token, tracks: map[string]*TrackStats{}, Connected: make(chan struct{})}
	for _, k := range []struct {
		kind webrtc.RTPCodecType
		off  bool
	}{{webrtc.RTPCodecTypeVideo, o.NoVideo}, {webrtc.RTPCodecTypeAudio, o.NoAudio}} {
		if k.off {
			continue
		}
		if _, err := pc.AddTransceiverFromKind(k.kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(v.Connected) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		kind := tr.Kind().String()
		st := &TrackStats{Codec: tr.Codec().MimeType}
		v.mu.Lock()
		v.tracks[kind] = st
		v.mu.Unlock()
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			v.receive(tr, st, o.Light, o.H264)
		}()
	})
	v.Resource, err = negotiate(ctx, pc, o.Endpoint, o.Token)
	if err != nil {
		pc.Close()
		return nil, err
	}
	return v, nil
}

func (v *Viewer) receive(tr *webrtc.TrackRemote, st *TrackStats, light bool, rec io.Writer) {
	buf := make([]byte, 1500)
	video := tr.Kind() == webrtc.RTPCodecTypeVideo
	h264 := strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeH264)
	var frame []byte // H.264 NAL units of the frame being received (not light)
	var fua []byte
	recording := false // into rec, from the first IDR on
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if n < 12 {
			continue
		}
		now := time.Now()
		marker := buf[1]&0x80 != 0
		hl := 12 + 4*int(buf[0]&0x0f)
		if buf[0]&0x10 != 0 && n >= hl+4 {
			hl += 4 + 4*int(binary.BigEndian.Uint16(buf[hl+2:]))
		}
		v.mu.Lock()
		if st.First.IsZero() {
			st.First = now
		}
		st.Last = now
		st.Packets++
		st.Bytes += int64(n)
		if !video || marker {
			st.Frames++
		}
		v.mu.Unlock()
		if light || !h264 || hl >= n {
			continue
		}
		pl := buf[hl:n]
		switch t := pl[0] & 0x1f; {
		case t >= 1 && t <= 23:
			frame = appendNAL(frame, pl)
		case t == 24: // STAP-A
			for b := pl[1:]; len(b) >= 2; {
				l := int(binary.BigEndian.Uint16(b))
				if l > len(b)-2 {
					break
				}
				frame = appendNAL(frame, b[2:2+l])
				b = b[2+l:]
			}
		case t == 28 && len(pl) >= 2: // FU-A
			if pl[1]&0x80 != 0 {
				fua = append(fua[:0], pl[0]&0xe0|pl[1]&0x1f)
			}
			fua = append(fua, pl[2:]...)
			if pl[1]&0x40 != 0 {
				frame = appendNAL(frame, fua)
				fua = fua[:0]
			}
		}
		if marker {
			key := false
			var sent time.Time
			var annexB []byte
			for b := frame; len(b) >= 4; {
				l := int(binary.BigEndian.Uint32(b))
				if l > len(b)-4 {
					break
				}
				nal := b[4 : 4+l]
				if len(nal) > 0 && nal[0]&0x1f == 5 {
					key = true
				}
				if t, ok := parseSEI(nal); ok {
					sent = t
				}
				annexB = append(append(annexB, 0, 0, 0, 1), nal...)
				b = b[4+l:]
			}
			if rec != nil && (key || recording) {
				recording = true
				rec.Write(annexB)
			}
			v.mu.Lock()
			if key {
				st.Keyframes++
			}
			if !sent.IsZero() {
				st.Latencies = append(st.Latencies, now.Sub(sent))
			}
			v.mu.Unlock()
			frame = frame[:0]
		}
	}
}

func appendNAL(b, nal []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(nal)))
	return append(b, nal...)
}

// Stats returns a copy of what was received, by kind ("video", "audio").
func (v *Viewer) Stats() map[string]TrackStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]TrackStats{}
	for k, s := range v.tracks {
		c := *s
		c.Latencies = append([]time.Duration(nil), s.Latencies...)
		out[k] = c
	}
	return out
}

// Close DELETEs the resource and closes the connection.
func (v *Viewer) Close() error {
	err := deleteResource(v.Resource, v.token)
	v.PC.Close()
	v.wg.Wait()
	return err
}

// deleteResource ends a WHIP/WHEP session (nothing if resource is "").
func deleteResource(resource, token string) error {
	if resource == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, _, _, err := Do(ctx, http.MethodDelete, resource, token, "", "", nil)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("DELETE: HTTP %d", status)
	}
	return err
}
