package whep

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/moqgate/moqgate/internal/rtc"
	"github.com/moqgate/moqgate/media"
)

// Timing of a viewer.
const (
	srInterval = time.Second
	// rejoinInterval spaces the key frame resends a viewer's PLIs cause.
	rejoinInterval = time.Second
	// pendingTrackWait: how long a viewer waits for a rendition that is
	// being made (the transcoded Opus) to appear in the catalog.
	pendingTrackWait = 15 * time.Second
	// joinBurstMax: a joining viewer gets the frames since the newest key
	// frame in one burst when they span at most this much.
	joinBurstMax = 500 * time.Millisecond
	// histSize is the packets a sender keeps for retransmission (NACK):
	// about 2 s of 2 Mbit/s video. Only references: the payloads are the
	// feed's, shared by every viewer.
	histSize = 512
	// A viewer may have rtxRate packets a second retransmitted, in bursts
	// of up to rtxBurst.
	rtxRate  = 100
	rtxBurst = 200
)

// viewer is one WHEP session.
type viewer struct {
	srv     *Server
	sess    *rtc.Session
	hub     *hub
	pc      *webrtc.PeerConnection
	log     *slog.Logger
	senders []*sender

	// The viewer's clock: media time anchorNS is sent as "now" at
	// anchorWall; every track's RTP timestamps and sender reports derive
	// from it, which keeps audio and video in sync in the browser.
	anchorOnce sync.Once
	anchorMu   sync.Mutex
	anchorNS   int64
	anchorWall time.Time
}

// sender sends one track to the viewer. Its frames come from one fan-out
// worker goroutine (deliver); its RTCP is read by its own goroutine.
type sender struct {
	v       *viewer
	name    string // MoQ track
	codec   string
	kind    media.Kind
	clock   int64
	track   *webrtc.TrackLocalStaticRTP
	rtp     *webrtc.RTPSender
	pending bool // the rendition is being made

	ssrc   uint32
	tsBase uint32

	// Owned by the fan-out worker.
	seq     uint16
	lastExt int64
	haveTS  bool
	needKey bool
	pkt     rtp.Packet
	lastSR  time.Time

	hmu       sync.Mutex
	hist      [histSize]histEntry
	rtxTokens float64 // retransmissions allowed now (token bucket)
	rtxLast   time.Time

	packets atomic.Uint32
	octets  atomic.Uint32
	started atomic.Bool
	rejoin  atomic.Bool
	lastPLI atomic.Int64
	gone    atomic.Bool
	stopErr atomic.Pointer[error]
}

// histEntry is a sent packet, for retransmission.
type histEntry struct {
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
}

func newSender(v *viewer, c *choice, track *webrtc.TrackLocalStaticRTP, rs *webrtc.RTPSender, pending bool) *sender {
	var b [6]byte
	rand.Read(b[:])
	s := &sender{v: v, name: c.track, codec: string(c.info.Codec), kind: media.Video, clock: 90000,
		track: track, rtp: rs, pending: pending,
		tsBase: binary.BigEndian.Uint32(b[:4]), seq: binary.BigEndian.Uint16(b[4:])}
	if c.kind == "audio" {
		s.kind, s.clock = media.Audio, 48000
	}
	return s
}

// run starts the senders once the peer connection is up, and waits
// until the session ends.
func (v *viewer) run() {
	select {
	case <-v.sess.Connected():
	case <-v.sess.Done():
		return
	}
	v.hub.requestKeyframe()
	var wg sync.WaitGroup
	for _, s := range v.senders {
		if enc := s.rtp.GetParameters().Encodings; len(enc) > 0 {
			s.ssrc = uint32(enc[0].SSRC)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			s.readRTCP()
		}()
		go func() {
			defer wg.Done()
			if err := s.start(); err != nil && v.sess.Context().Err() == nil {
				v.log.Info("WHEP: track not sent", "track", s.name, "reason", err)
			}
		}()
	}
	v.sess.OnClose(func() {
		for _, s := range v.senders {
			s.gone.Store(true)
		}
	})
	<-v.sess.Done()
	wg.Wait()
}

// anchor fixes the viewer's clock on the first frame sent: the newest
// frame of any of its tracks is "now".
func (v *viewer) anchor(frameNS int64) {
	v.anchorOnce.Do(func() {
		ns := frameNS
		for _, s := range v.senders {
			if f, err := v.hub.feedIfRunning(s.name); err == nil {
				if n, ok := f.newest(); ok && n > ns {
					ns = n
				}
			}
		}
		v.anchorMu.Lock()
		v.anchorNS, v.anchorWall = ns, time.Now()
		v.anchorMu.Unlock()
	})
}

func (v *viewer) clock() (int64, time.Time) {
	v.anchorMu.Lock()
	defer v.anchorMu.Unlock()
	return v.anchorNS, v.anchorWall
}

// report sends an RTCP sender report with the viewer's clock when one is
// due. The fan-out worker calls it after a frame, so the report leaves
// with the frame's packets: no timer and goroutine wakeup per viewer.
func (s *sender) report(now time.Time) {
	if s.ssrc == 0 || now.Sub(s.lastSR) < srInterval || !s.started.Load() {
		return
	}
	_, wall := s.v.clock()
	if wall.IsZero() {
		return
	}
	s.lastSR = now
	ext := mulDiv(int64(now.Sub(wall)), s.clock, int64(time.Second))
	sr := &rtcp.SenderReport{
		SSRC: s.ssrc, NTPTime: ntpTime(now), RTPTime: s.tsBase + uint32(ext),
		PacketCount: s.packets.Load(), OctetCount: s.octets.Load(),
	}
	if err := s.v.pc.WriteRTCP([]rtcp.Packet{sr}); err != nil && !isClosed(err) {
		s.v.log.Debug("WHEP: sender report", "err", err)
	}
}

// ntpTime is t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

func isClosed(err error) bool {
	return errors.Is(err, io.ErrClosedPipe) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "closed")
}

// readRTCP handles the viewer's feedback: NACKs are answered from the
// sender's history, PLI/FIR resend the newest key frame.
func (s *sender) readRTCP() {
	buf := make([]byte, 1500)
	for {
		n, _, err := s.rtp.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		eng := s.v.srv.cfg.Engine
		eng.Hold() // the retransmissions of a NACK leave together
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				for _, pair := range p.Nacks {
					pair.Range(func(seq uint16) bool {
						s.retransmit(seq)
						return true
					})
				}
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if s.kind != media.Video {
					continue
				}
				now := time.Now().UnixNano()
				if last := s.lastPLI.Load(); now-last < int64(rejoinInterval) {
					continue
				}
				s.lastPLI.Store(now)
				s.rejoin.Store(true)
				s.v.hub.requestKeyframe()
			}
		}
		eng.Release()
	}
}

// retransmit resends a packet the viewer lost, if still in the history
// and within the viewer's retransmission budget (a viewer that loses
// everything must not make the server send everything twice).
func (s *sender) retransmit(seq uint16) {
	s.hmu.Lock()
	e := s.hist[seq%histSize]
	now := time.Now()
	if s.rtxTokens < rtxBurst {
		s.rtxTokens = min(rtxBurst, s.rtxTokens+now.Sub(s.rtxLast).Seconds()*rtxRate)
	}
	s.rtxLast = now
	ok := e.payload != nil && e.seq == seq && s.rtxTokens >= 1
	if ok {
		s.rtxTokens--
	}
	s.hmu.Unlock()
	if !ok {
		return
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, Marker: e.marker, SequenceNumber: seq, Timestamp: e.ts}, Payload: e.payload}
	s.track.WriteRTP(&pkt)
}

// feed waits for the sender's feed (a pending rendition may take a while
// to appear in the catalog).
func (s *sender) feed() (*feed, error) {
	deadline := time.Now().Add(pendingTrackWait)
	for {
		f, err := s.v.hub.feed(s.name)
		if err == nil {
			return f, nil
		}
		if !s.pending || time.Now().After(deadline) {
			return nil, err
		}
		_, changed := s.v.hub.catalog()
		select {
		case <-changed:
		case <-s.v.hub.done:
			return nil, errEnded
		case <-s.v.sess.Done():
			return nil, nil
		case <-time.After(time.Until(deadline)):
		}
	}
}

// start hands the sender to its feed's fan-out once the feed has read
// what the relay had cached.
func (s *sender) start() error {
	f, err := s.feed()
	if f == nil {
		return err
	}
	f.settle(s.v.sess.Done())
	if s.v.sess.Context().Err() != nil {
		return nil
	}
	if s.kind == media.Video && f.hasReorders() {
		return errBFrames
	}
	f.addSender(s)
	return nil
}

var errBFrames = errors.New("the video has B-frames, which WebRTC cannot carry")

// feedEnded is called by the fan-out when the broadcast's track ended.
func (s *sender) feedEnded() {
	s.gone.Store(true)
	s.v.log.Info("WHEP: the broadcast's track ended", "track", s.name)
	go s.v.sess.Close()
}

// deliver sends one frame (from the sender's fan-out worker).
func (s *sender) deliver(f *feed, fr *rtpFrame) {
	if s.gone.Load() {
		return
	}
	if s.kind == media.Video && f.reordersFast() {
		s.gone.Store(true)
		s.v.log.Warn("WHEP: video stopped: " + errBFrames.Error())
		return
	}
	if s.rejoin.Swap(false) {
		// The viewer lost what it cannot recover: the newest key frame
		// now, live again from the next one.
		if k := f.newestKey(); k != nil && k != fr {
			s.send(k)
		}
		s.needKey = true
	}
	s.send(fr)
}

// send writes one frame's packets.
func (s *sender) send(fr *rtpFrame) {
	if s.needKey && !fr.key {
		return
	}
	s.needKey = false
	s.v.anchor(fr.mediaNS)
	anchorNS, _ := s.v.clock()
	ext := mulDiv(fr.mediaNS-anchorNS, s.clock, int64(time.Second))
	switch {
	case s.haveTS && ext <= s.lastExt:
		// Monotonic; this is also how the frames after the key frame a
		// viewer starts with are squeezed together to catch up.
		ext = s.lastExt + 1
	case !s.haveTS && s.kind == media.Video && ext < 0:
		// The key frame a viewer starts with is older than the viewer's
		// "now": it is shown now.
		ext = -1
	}
	s.lastExt, s.haveTS = ext, true
	ts := s.tsBase + uint32(ext)
	last := len(fr.payloads) - 1
	for i, pl := range fr.payloads {
		marker := s.kind == media.Video && i == last
		if s.kind == media.Video { // browsers NACK video only
			s.hmu.Lock()
			s.hist[s.seq%histSize] = histEntry{seq: s.seq, ts: ts, marker: marker, payload: pl}
			s.hmu.Unlock()
		}
		s.pkt = rtp.Packet{Header: rtp.Header{Version: 2, Marker: marker, SequenceNumber: s.seq, Timestamp: ts}, Payload: pl}
		s.seq++
		if err := s.track.WriteRTP(&s.pkt); err != nil && isClosed(err) {
			s.gone.Store(true)
			break
		}
	}
	s.packets.Add(uint32(len(fr.payloads)))
	s.octets.Add(uint32(fr.bytes))
	s.started.Store(true)
}
