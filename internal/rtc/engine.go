// Package rtc holds what WHIP ingest and WHEP playback share: the WebRTC
// network setup (every peer connection's media goes through one UDP port,
// optionally one ICE-TCP port, with NAT 1:1 addresses and STUN-discovered
// public addresses added as host candidates), and the HTTP side of RFC 9725
// resources (POST creates a session, PATCH trickles candidates or restarts
// ICE, DELETE ends it, OPTIONS answers CORS preflights).
package rtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// Config configures an Engine.
type Config struct {
	// UDP is the address of the one UDP socket all peer connections share
	// (e.g. ":8189", "127.0.0.1:0").
	UDP string
	// TCP, if set, is the address of the ICE-TCP listener (passive
	// candidates, RFC 6544) for clients that cannot use UDP.
	TCP string
	// NAT1To1IPs are public addresses that reach this host's UDP (and TCP)
	// port unchanged, advertised as extra host candidates.
	NAT1To1IPs []string
	// STUNServers (stun:host:port) are asked for this host's public address
	// through the shared UDP socket at start; an address whose port is kept
	// by the NAT is advertised like NAT1To1IPs. They are also offered to
	// clients in Link headers (RFC 9725 section 4.6).
	STUNServers []string
	// Logger receives the engine's and pion's messages (pion's warnings at
	// debug level, its errors as warnings).
	Logger *slog.Logger
	// ICEFailedTimeout: a peer that stops answering ICE consent checks for
	// this long is gone and its session reaped (default 15 s).
	ICEFailedTimeout time.Duration
	// ConnectTimeout reaps a session whose peer never connects (default 30 s).
	ConnectTimeout time.Duration
}

// ICE timing: a peer that stops answering consent checks is disconnected
// after iceDisconnected and its session is reaped after iceFailed.
const (
	iceDisconnected = 5 * time.Second
	iceFailed       = 15 * time.Second
	iceKeepalive    = 2 * time.Second
	stunTimeout     = 3 * time.Second
	stunRefresh     = 5 * time.Minute
)

// Engine owns the shared WebRTC sockets and makes pion APIs that use them.
type Engine struct {
	log      *slog.Logger
	pionLogs *pionLoggerFactory

	udpConn  *net.UDPConn
	batch    *batchConn
	udpMux   ice.UDPMux
	stunMux  *ice.UniversalUDPMuxDefault // non-nil with STUN servers
	tcpLn    net.Listener
	tcpMux   ice.TCPMux
	loopback bool
	networks []webrtc.NetworkType

	configuredIPs []string
	publicIPs     atomic.Pointer[[]string] // configured + discovered
	stunURIs      []*stun.URI
	stunServers   []string

	iceFailed      time.Duration
	connectTimeout time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewEngine binds the UDP socket (and the TCP listener if configured).
func NewEngine(cfg Config) (*Engine, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{log: log, pionLogs: &pionLoggerFactory{log: log.With("component", "pion")},
		iceFailed: cfg.ICEFailedTimeout, connectTimeout: cfg.ConnectTimeout}
	if e.iceFailed <= 0 {
		e.iceFailed = iceFailed
	}
	if e.connectTimeout <= 0 {
		e.connectTimeout = 30 * time.Second
	}
	for _, ip := range cfg.NAT1To1IPs {
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("rtc: NAT 1:1 address %q is not an IP address", ip)
		}
	}
	e.configuredIPs = slices.Clone(cfg.NAT1To1IPs)
	ips := slices.Clone(e.configuredIPs)
	e.publicIPs.Store(&ips)
	for _, s := range cfg.STUNServers {
		u, err := stun.ParseURI(s)
		if err != nil || (u.Scheme != stun.SchemeTypeSTUN) {
			return nil, fmt.Errorf("rtc: STUN server %q: want stun:host[:port]", s)
		}
		e.stunURIs = append(e.stunURIs, u)
		e.stunServers = append(e.stunServers, s)
	}

	ua, err := net.ResolveUDPAddr("udp", cfg.UDP)
	if err != nil {
		return nil, fmt.Errorf("rtc: UDP address %q: %w", cfg.UDP, err)
	}
	e.udpConn, err = net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("rtc: listen UDP %s: %w", cfg.UDP, err)
	}
	// Media at tens of Mbit/s in bursts (key frames to many viewers).
	_ = e.udpConn.SetReadBuffer(4 << 20)
	_ = e.udpConn.SetWriteBuffer(4 << 20)
	local := e.udpConn.LocalAddr().(*net.UDPAddr)
	e.loopback = local.IP.IsLoopback()
	muxLog := e.pionLogs.NewLogger("udpmux")
	e.batch = newBatchConn(e.udpConn)
	if len(e.stunURIs) > 0 {
		e.stunMux = ice.NewUniversalUDPMuxDefault(ice.UniversalUDPMuxParams{Logger: muxLog, UDPConn: e.batch})
		e.udpMux = e.stunMux
	} else {
		e.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: muxLog, UDPConn: e.batch})
	}
	e.networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}

	if cfg.TCP != "" {
		e.tcpLn, err = net.Listen("tcp", cfg.TCP)
		if err != nil {
			e.udpMux.Close()
			return nil, fmt.Errorf("rtc: listen ICE-TCP %s: %w", cfg.TCP, err)
		}
		e.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener: e.tcpLn, Logger: e.pionLogs.NewLogger("tcpmux"), ReadBufferSize: 64, WriteBufferSize: 4 << 20,
			FirstStunBindTimeout: 10 * time.Second, AliveDurationForConnFromStun: 30 * time.Second,
		})
		e.networks = append(e.networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
		if a, ok := e.tcpLn.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
			e.loopback = true
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.statsLoop(ctx)
	}()
	if e.stunMux != nil {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.discoverLoop(ctx)
		}()
	}
	log.Info("WebRTC sockets ready", "udp", e.UDPAddr().String(), "tcp", addrString(e.TCPAddr()),
		"nat_1to1_ips", cfg.NAT1To1IPs, "stun_servers", cfg.STUNServers)
	return e, nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// UDPAddr is the bound UDP address.
func (e *Engine) UDPAddr() net.Addr { return e.udpConn.LocalAddr() }

// TCPAddr is the bound ICE-TCP address, or nil.
func (e *Engine) TCPAddr() net.Addr {
	if e.tcpLn == nil {
		return nil
	}
	return e.tcpLn.Addr()
}

// Flush sends the packets queued on the shared UDP socket now, in the
// caller's goroutine (or leaves them to the goroutine sending already).
// A writer of many packets at once (a frame to every viewer) holds the
// queue, flushes now and then, and releases it when done.
func (e *Engine) Flush() { e.batch.Flush() }

// Hold tells the engine that the caller is queueing a burst and will
// Release it: until then packets wait in the queue, those of other
// writers too, to leave in as few system calls as possible. Without a
// hold each write is sent at once.
func (e *Engine) Hold() { e.batch.holds.Add(1) }

// Release ends a Hold and flushes what is queued, the packets other
// goroutines queued meanwhile included.
func (e *Engine) Release() {
	e.batch.holds.Add(-1)
	e.batch.Flush()
}

// UDPStats are the shared UDP socket's send counters.
type UDPStats struct {
	Packets  uint64 // packets sent
	Messages uint64 // UDP sends (a GSO send carries several packets)
	Calls    uint64 // sendmmsg system calls
	Dropped  uint64 // packets dropped because the send queue was full
	GSO      bool   // whether the kernel does UDP GSO
}

// UDPStats returns the shared UDP socket's send counters.
func (e *Engine) UDPStats() UDPStats {
	b := e.batch
	return UDPStats{Packets: b.packets.Load(), Messages: b.sent.Load(), Calls: b.calls.Load(),
		Dropped: b.dropped.Load(), GSO: b.gso.Load()}
}

// ConnectTimeout is how long a new session may take to connect.
func (e *Engine) ConnectTimeout() time.Duration { return e.connectTimeout }

// STUNServers are the configured STUN server URLs (for Link headers).
func (e *Engine) STUNServers() []string { return e.stunServers }

// PublicIPs are the extra host candidate addresses in use: configured
// NAT 1:1 addresses and those discovered through STUN.
func (e *Engine) PublicIPs() []string { return slices.Clone(*e.publicIPs.Load()) }

// discoverLoop asks the STUN servers for the shared socket's public
// address at start and every stunRefresh.
func (e *Engine) discoverLoop(ctx context.Context) {
	local := e.udpConn.LocalAddr().(*net.UDPAddr)
	for {
		var found []string
		for _, u := range e.stunURIs {
			addr, err := net.ResolveUDPAddr("udp4", fmt.Sprintf("%s:%d", u.Host, u.Port))
			if err != nil {
				e.log.Warn("STUN server unresolvable", "server", u.String(), "err", err)
				continue
			}
			xor, err := e.stunMux.GetXORMappedAddr(addr, stunTimeout)
			if err != nil {
				e.log.Warn("STUN request failed", "server", u.String(), "err", err)
				continue
			}
			if xor.Port != local.Port {
				e.log.Warn("the NAT changes the WebRTC UDP port; its public address is not advertised (forward the port and set webrtc.nat_1to1_ips)",
					"server", u.String(), "public", fmt.Sprintf("%s:%d", xor.IP, xor.Port), "local_port", local.Port)
				continue
			}
			if ip := xor.IP.String(); !slices.Contains(found, ip) && !slices.Contains(e.configuredIPs, ip) {
				found = append(found, ip)
			}
		}
		all := append(slices.Clone(e.configuredIPs), found...)
		if old := *e.publicIPs.Load(); !slices.Equal(old, all) {
			e.log.Info("WebRTC public addresses", "addresses", all)
		}
		e.publicIPs.Store(&all)
		select {
		case <-ctx.Done():
			return
		case <-time.After(stunRefresh):
		}
	}
}

// statsLoop logs the UDP send counters every minute at debug level.
func (e *Engine) statsLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	var last UDPStats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st := e.UDPStats()
			if st.Packets != last.Packets {
				e.log.Debug("WebRTC UDP sends", "packets", st.Packets-last.Packets, "udp_sends", st.Messages-last.Messages,
					"syscalls", st.Calls-last.Calls, "dropped", st.Dropped-last.Dropped, "gso", st.GSO)
			}
			last = st
		}
	}
}

// SRTP protection profiles, AES-GCM first: with AES-NI it is the cheapest
// per packet, and the egress cost per viewer is mostly SRTP.
var srtpProfiles = []dtls.SRTPProtectionProfile{
	dtls.SRTP_AEAD_AES_128_GCM,
	dtls.SRTP_AES128_CM_HMAC_SHA1_80,
	dtls.SRTP_AEAD_AES_256_GCM,
}

// API returns a pion API on the shared sockets with the given media engine
// and interceptors (nil: none); each peer connection may negotiate its own
// codecs.
func (e *Engine) API(me *webrtc.MediaEngine, ir *interceptor.Registry) *webrtc.API {
	var se webrtc.SettingEngine
	se.LoggerFactory = e.pionLogs
	se.SetICEUDPMux(e.udpMux)
	if e.tcpMux != nil {
		se.SetICETCPMux(e.tcpMux)
	}
	se.SetNetworkTypes(e.networks)
	// No multicast DNS: it would need its own socket on port 5353. Peers
	// that hide their addresses behind .local names are still reached as
	// peer-reflexive candidates when their checks arrive.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(e.loopback)
	if ips := *e.publicIPs.Load(); len(ips) > 0 {
		_ = se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: ips, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteAppend,
		})
	}
	se.SetICETimeouts(min(iceDisconnected, e.iceFailed/2), e.iceFailed, iceKeepalive)
	se.SetSRTPProtectionProfiles(srtpProfiles...)
	if ir == nil {
		ir = &interceptor.Registry{} // none (pion would add its defaults)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir))
}

// Close releases the sockets. Peer connections must be closed first.
func (e *Engine) Close() error {
	var err error
	e.once.Do(func() {
		e.cancel()
		e.wg.Wait()
		if e.tcpMux != nil {
			err = errors.Join(err, e.tcpMux.Close())
		}
		err = errors.Join(err, e.udpMux.Close())
		// UDPMuxDefault.Close closes the socket; make sure in any case.
		if cerr := e.batch.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && !strings.Contains(cerr.Error(), "closed") {
			err = errors.Join(err, cerr)
		}
	})
	return err
}
