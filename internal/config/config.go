// Package config loads and validates moqgate's YAML configuration.
//
// The default configuration is configs/moqgate.yaml, embedded in the binary.
// A configuration file is laid over that default, so it only needs the keys it
// changes. Decoding is strict: an unknown key, a duplicate key or a value of
// the wrong type is an error that names the key and its line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/moqgate/moqgate/configs"
)

// Config is moqgate's whole configuration.
type Config struct {
	Listen    Listen    `yaml:"listen"`
	RTMP      RTMP      `yaml:"rtmp"`
	WebRTC    WebRTC    `yaml:"webrtc"`
	SRT       SRT       `yaml:"srt"`
	TLS       TLS       `yaml:"tls"`
	Relay     Relay     `yaml:"relay"`
	Upstreams []string  `yaml:"upstreams"`
	Peers     []string  `yaml:"peers"`
	Forward   []Forward `yaml:"forward"`
	Auth      Auth      `yaml:"auth"`
	HLS       HLS       `yaml:"hls"`
	Record    Record    `yaml:"record"`
	Limits    Limits    `yaml:"limits"`
	Log       Log       `yaml:"log"`
	Debug     Debug     `yaml:"debug"`
}

// Debug switches diagnostics on.
type Debug struct {
	// Pprof serves net/http/pprof under /debug/pprof/ on the web listener.
	Pprof bool `yaml:"pprof"`
}

// Listen is the web and MoQ listener: one address used on TCP (HTTP/HTTPS)
// and on UDP (QUIC: raw MoQ and WebTransport).
type Listen struct {
	Addr string `yaml:"addr"`
}

// RTMP is the RTMP / Enhanced RTMP ingest listener.
type RTMP struct {
	// Addr is the TCP address; empty disables RTMP ingest.
	Addr string `yaml:"addr"`
	// GracePeriod is how long a broadcast stays live after its publisher
	// disconnects, so a reconnecting encoder resumes it.
	GracePeriod time.Duration `yaml:"grace_period"`
	// AllowTakeover lets a second publisher to a live path replace the first
	// instead of being refused.
	AllowTakeover bool `yaml:"allow_takeover"`
}

// WebRTC configures WHIP ingest and WHEP playback.
type WebRTC struct {
	// UDP is the single UDP address shared by all peer connections; empty
	// disables WHIP and WHEP.
	UDP string `yaml:"udp"`
	// TCP, if set, is the ICE-TCP address (one port for every peer
	// connection) for clients that cannot use UDP; empty disables it.
	TCP string `yaml:"tcp"`
	// NAT1To1IPs are public addresses that reach this host's WebRTC ports
	// unchanged (1:1 NAT, e.g. a cloud VM's public IP), advertised as
	// extra ICE host candidates.
	NAT1To1IPs []string `yaml:"nat_1to1_ips"`
	// STUNServers (stun:host:port) are asked for the public address of
	// the UDP port at start (advertised like NAT1To1IPs when the NAT keeps
	// the port), and offered to WHIP/WHEP clients in Link headers.
	STUNServers []string `yaml:"stun_servers"`
	// KeyframeInterval asks WHIP publishers for a key frame (PLI) when the
	// last one is older, so that MoQ groups and HLS segments stay short;
	// 0 asks only when needed (start, loss, new viewers).
	KeyframeInterval time.Duration `yaml:"keyframe_interval"`
	// FFmpeg is the ffmpeg program that transcodes AAC to Opus for WHEP
	// viewers (once per broadcast, on demand); empty disables transcoding.
	FFmpeg string `yaml:"ffmpeg"`
	// VideoTranscode is "auto" (re-encode a broadcast's video to H.264
	// without B-frames for WHEP viewers that cannot take the original, once
	// per broadcast, on demand) or "off" (such viewers are refused).
	VideoTranscode string `yaml:"video_transcode"`
	// VideoPreset is the libx264 preset of those transcodes.
	VideoPreset string `yaml:"video_preset"`
	// MaxVideoTranscodes caps the video transcodes running at once.
	MaxVideoTranscodes int `yaml:"max_video_transcodes"`
}

// SRT configures SRT ingest and playback.
type SRT struct {
	// Addr is the UDP address; empty disables SRT.
	Addr string `yaml:"addr"`
	// Passphrase, if set, is required of every caller (AES encryption;
	// SRT wants 10 to 79 characters).
	Passphrase string `yaml:"passphrase"`
	// Latency is the TSBPD latency offered to callers (the larger of both
	// sides' is used).
	Latency time.Duration `yaml:"latency"`
	// MaxBW bounds the sending rate of one playback session, in bytes per
	// second; 0 = no bound.
	MaxBW ByteSize `yaml:"max_bw"`
}

// TLS names the certificate used for QUIC and HTTPS.
type TLS struct {
	// CertFile and KeyFile are PEM files. Both empty means a self-signed
	// certificate made and renewed by moqgate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Hostnames are extra DNS names or IP addresses for the self-signed
	// certificate, besides localhost, 127.0.0.1 and ::1.
	Hostnames []string `yaml:"hostnames"`
}

// SelfSigned reports whether moqgate makes its own certificate.
func (t TLS) SelfSigned() bool { return t.CertFile == "" && t.KeyFile == "" }

// Relay sizes the per-track relay cache.
type Relay struct {
	// CacheMaxGroups is the number of newest groups kept per track.
	CacheMaxGroups int `yaml:"cache_max_groups"`
	// CacheMaxBytes bounds the bytes cached per track.
	CacheMaxBytes ByteSize `yaml:"cache_max_bytes"`
	// MaxSubscriberLagGroups is how many groups a subscriber may fall behind
	// the newest before it skips ahead to the newest group.
	MaxSubscriberLagGroups int `yaml:"max_subscriber_lag_groups"`
	// InFlightPerSession bounds the bytes of objects a MoQ session is
	// receiving (read, not yet complete); InFlightTotal bounds them over
	// every session. An object that does not fit has its stream reset.
	InFlightPerSession ByteSize `yaml:"in_flight_per_session"`
	InFlightTotal      ByteSize `yaml:"in_flight_total"`
	// UpstreamPrefixes are the broadcast path prefixes learnt from
	// upstreams and peers with SUBSCRIBE_NAMESPACE.
	UpstreamPrefixes []string `yaml:"upstream_prefixes"`
	// MaxDraft is the newest MoQ Transport draft served to clients (14, 16
	// or 17); 0 serves the newest moqgate speaks.
	MaxDraft int `yaml:"max_draft"`
}

// Forward is a MoQ relay that local broadcasts are pushed to.
type Forward struct {
	// URL is moqt://host:port[/path] or https://host:port/path.
	URL string `yaml:"url"`
	// Draft is 14, 16 or 17 (default: the URL's draft=, else 14).
	Draft int `yaml:"draft"`
	// Token is sent as the session's AUTHORIZATION TOKEN; with
	// TokenInURL also as ?jwt=.
	Token      string `yaml:"token"`
	TokenInURL bool   `yaml:"token_in_url"`
	// Fingerprint pins the target's certificate; Insecure skips checks.
	Fingerprint string `yaml:"fingerprint"`
	Insecure    bool   `yaml:"insecure"`
	// Prefixes are the local broadcast path prefixes sent (none: all).
	Prefixes []string `yaml:"prefixes"`
	// Rename rewrites a leading path prefix (live/ → customer42/live/).
	Rename struct {
		From string `yaml:"from"`
		To   string `yaml:"to"`
	} `yaml:"rename"`
	// Mode is announce, publish or auto (default).
	Mode string `yaml:"mode"`
	// Failover: a standby for the target before it, used only while that
	// one is down.
	Failover bool `yaml:"failover"`
	// Relayed forwards broadcasts learnt from upstreams and peers too.
	Relayed bool `yaml:"relayed"`
}

// Auth modes.
const (
	AuthNone = "none"
	AuthJWT  = "jwt"
)

// Auth configures authorization.
type Auth struct {
	// Mode is AuthNone or AuthJWT.
	Mode string `yaml:"mode"`
	// JWTSecretFile holds the HS256 secret. With AuthJWT at least one of
	// it, JWKSFile and JWKSURL is required.
	JWTSecretFile string `yaml:"jwt_secret_file"`
	// JWKSFile is a JWK Set of public keys (ES256, RS256 >= 2048 bits,
	// EdDSA), read again when it changes or a token names an unknown kid.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURL is a JWK Set served over HTTP(S) (an identity provider's
	// jwks_uri), fetched every JWKSRefresh and for an unknown kid (at most
	// every 10 s). Not with JWKSFile.
	JWKSURL     string        `yaml:"jwks_url"`
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`
}

// HLS configures LL-HLS egress.
type HLS struct {
	PartDuration       time.Duration `yaml:"part_duration"`
	SegmentMinDuration time.Duration `yaml:"segment_min_duration"`
	// SegmentCount is the number of segments listed in a playlist.
	SegmentCount int `yaml:"segment_count"`
	// IdleTimeout stops a muxer that had no client for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// AlwaysOn muxes every broadcast from its start rather than on demand.
	AlwaysOn bool `yaml:"always_on"`
	// MaxMuxers bounds the broadcasts muxed at once.
	MaxMuxers int `yaml:"max_muxers"`
	// SegmentMaxSize bounds one segment of one rendition; with
	// SegmentCount and MaxMuxers it bounds the memory LL-HLS holds.
	SegmentMaxSize ByteSize `yaml:"segment_max_size"`
}

// Record configures recording to disk; an empty Dir turns it off.
type Record struct {
	Dir string `yaml:"dir"`
	// Pattern names segment files below Dir: {path}, {date}, {time}.
	Pattern         string        `yaml:"pattern"`
	SegmentDuration time.Duration `yaml:"segment_duration"`
	// MaxAge and MaxBytes are the retention (0: keep).
	MaxAge   time.Duration `yaml:"max_age"`
	MaxBytes ByteSize      `yaml:"max_bytes"`
	// Prefixes select what is recorded (none: everything); the longest
	// matching prefix decides.
	Prefixes []RecordPrefix `yaml:"prefixes"`
}

// RecordPrefix turns recording on, or with Off off, under Prefix.
type RecordPrefix struct {
	Prefix string `yaml:"prefix"`
	Off    bool   `yaml:"off"`
}

// Limits bounds resource use. For the counts and the rate, 0 means unlimited.
type Limits struct {
	SessionsTotal           int `yaml:"sessions_total"`
	SessionsPerIP           int `yaml:"sessions_per_ip"`
	SubscriptionsPerSession int `yaml:"subscriptions_per_session"`
	// MaxControlMessageRate is control messages per second per session.
	MaxControlMessageRate float64 `yaml:"max_control_message_rate"`
	// HTTPBodyMax is the largest HTTP request body accepted.
	HTTPBodyMax ByteSize `yaml:"http_body_max"`
	// HandshakeTimeout bounds the QUIC/WebTransport and MoQ setup.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// IdleTimeout closes a session with no traffic for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// WebRTCMaxMediaSections bounds a WHIP/WHEP offer's m-lines.
	WebRTCMaxMediaSections int `yaml:"webrtc_max_media_sections"`
	// WebRTCPendingTotal and WebRTCPendingPerIP bound the WHIP/WHEP
	// sessions awaiting ICE (answered, not yet connected).
	WebRTCPendingTotal int `yaml:"webrtc_pending_total"`
	WebRTCPendingPerIP int `yaml:"webrtc_pending_per_ip"`
	// WebRTCConnectTimeout reaps a WHIP/WHEP session whose peer has not
	// connected (ICE and DTLS) this long after the answer.
	WebRTCConnectTimeout time.Duration `yaml:"webrtc_connect_timeout"`
	// RTMPHandshakesTotal and RTMPHandshakesPerIP bound the RTMP
	// connections not yet publishing (accepted, publish not yet accepted).
	RTMPHandshakesTotal int `yaml:"rtmp_handshakes_total"`
	RTMPHandshakesPerIP int `yaml:"rtmp_handshakes_per_ip"`
	// HTTPConnectionsTotal and HTTPConnectionsPerIP bound the open
	// connections of the web port (TCP).
	HTTPConnectionsTotal int `yaml:"http_connections_total"`
	HTTPConnectionsPerIP int `yaml:"http_connections_per_ip"`
	// HTTPReadTimeout bounds reading a whole request, body included;
	// HTTPIdleTimeout closes a keep-alive connection idle this long.
	HTTPReadTimeout time.Duration `yaml:"http_read_timeout"`
	HTTPIdleTimeout time.Duration `yaml:"http_idle_timeout"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
}

// SlogLevel returns Level as a slog.Level (info when Level is invalid;
// Validate rejects invalid levels).
func (l Log) SlogLevel() slog.Level {
	lvl, err := ParseLogLevel(l.Level)
	if err != nil {
		return slog.LevelInfo
	}
	return lvl
}

// ParseLogLevel parses debug, info, warn or error (case-insensitive).
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}

// Default returns the embedded default configuration.
func Default() (*Config, error) {
	c := &Config{}
	if err := decodeInto(c, configs.Default); err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	return c, nil
}

// Load reads the configuration file at path, laid over the embedded default,
// and validates it. An empty path returns the embedded default.
func Load(path string) (*Config, error) {
	if path == "" {
		c, err := Default()
		if err != nil {
			return nil, err
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("embedded default config: %w", err)
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML data laid over the embedded default and validates the
// result. Empty data (or only comments) gives the default.
func Parse(data []byte) (*Config, error) {
	c, err := Default()
	if err != nil {
		return nil, err
	}
	if err := decodeInto(c, data); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Marshal encodes the configuration as YAML that Parse reads back.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeInto strictly decodes one YAML document over c.
func decodeInto(c *Config, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if errors.Is(err, io.EOF) {
		return nil // empty document: keep what c has
	}
	if err != nil {
		return fmt.Errorf("decode: %w", friendlyYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("decode: %w", friendlyYAMLError(err))
		}
		return errors.New("decode: more than one YAML document")
	}
	return nil
}

// sectionNames maps Go type names of config sections to their YAML keys,
// so that yaml.v3's "field x not found in type config.Listen" reads
// "unknown field x in section listen".
func sectionNames() map[string]string {
	m := map[string]string{"config.Config": "top level"}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct {
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			m[f.Type.String()] = "section " + key
		}
	}
	return m
}

// friendlyYAMLError rewrites yaml.v3 type errors to use YAML names. The
// returned error wraps yaml's *yaml.TypeError when there is one.
func friendlyYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	names := sectionNames()
	msgs := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		msgs[i] = e
		// yaml.v3 says: "line N: field NAME not found in type config.Listen".
		prefix, rest, ok := strings.Cut(e, "field ")
		if !ok {
			continue
		}
		field, typ, ok := strings.Cut(rest, " not found in type ")
		if !ok {
			continue
		}
		where, ok := names[typ]
		if !ok {
			where = "type " + typ
		}
		msgs[i] = fmt.Sprintf("%sunknown field %q in %s", prefix, field, where)
	}
	return &typeError{msg: strings.Join(msgs, "; "), err: te}
}

type typeError struct {
	msg string
	err *yaml.TypeError
}

func (e *typeError) Error() string { return e.msg }
func (e *typeError) Unwrap() error { return e.err }

// Validate checks every field and returns all problems found, joined, each
// naming its key (e.g. "hls.segment_count: must be at least 2, got 1").
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(key, addr string, emptyOK bool) {
		if addr == "" {
			if !emptyOK {
				bad(key, "must be set (host:port, e.g. \":4443\")")
			}
			return
		}
		if err := validateAddr(addr); err != nil {
			bad(key, "%v", err)
		}
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration, got %s", d)
		}
	}
	nonNegative := func(key string, n int) {
		if n < 0 {
			bad(key, "must not be negative (0 = unlimited), got %d", n)
		}
	}

	checkAddr("listen.addr", c.Listen.Addr, false)

	checkAddr("rtmp.addr", c.RTMP.Addr, true)
	if c.RTMP.GracePeriod < 0 {
		bad("rtmp.grace_period", "must not be negative, got %s", c.RTMP.GracePeriod)
	}

	checkAddr("webrtc.udp", c.WebRTC.UDP, true)
	checkAddr("webrtc.tcp", c.WebRTC.TCP, true)
	for i, ip := range c.WebRTC.NAT1To1IPs {
		if net.ParseIP(ip) == nil {
			bad(fmt.Sprintf("webrtc.nat_1to1_ips[%d]", i), "%q is not an IP address", ip)
		}
	}
	for i, u := range c.WebRTC.STUNServers {
		if err := validateSTUN(u); err != nil {
			bad(fmt.Sprintf("webrtc.stun_servers[%d]", i), "%v", err)
		}
	}
	if v := c.WebRTC.VideoTranscode; v != "auto" && v != "off" {
		bad("webrtc.video_transcode", "must be auto or off, got %q", v)
	}
	if !validPreset(c.WebRTC.VideoPreset) {
		bad("webrtc.video_preset", "must be a libx264 preset (ultrafast ... veryslow), got %q", c.WebRTC.VideoPreset)
	}
	if c.WebRTC.MaxVideoTranscodes < 1 {
		bad("webrtc.max_video_transcodes", "must be at least 1 (video_transcode: off turns them off), got %d", c.WebRTC.MaxVideoTranscodes)
	}
	if c.WebRTC.KeyframeInterval < 0 {
		bad("webrtc.keyframe_interval", "must not be negative (0 = only when needed), got %s", c.WebRTC.KeyframeInterval)
	}

	checkAddr("srt.addr", c.SRT.Addr, true)
	if n := len(c.SRT.Passphrase); n != 0 && (n < 10 || n > 79) {
		bad("srt.passphrase", "must be 10 to 79 characters (SRT's rule), got %d", n)
	}
	if c.SRT.Latency < 0 || c.SRT.Latency > 65*time.Second {
		bad("srt.latency", "must be between 0 and 65s (SRT carries milliseconds in 16 bits), got %s", c.SRT.Latency)
	}
	if c.SRT.MaxBW < 0 {
		bad("srt.max_bw", "must not be negative (0 = no bound), got %s", c.SRT.MaxBW)
	}

	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file must be set together (both empty = self-signed)")
	}
	for i, h := range c.TLS.Hostnames {
		if err := validateHostname(h); err != nil {
			bad(fmt.Sprintf("tls.hostnames[%d]", i), "%v", err)
		}
	}

	if c.Relay.CacheMaxGroups < 1 {
		bad("relay.cache_max_groups", "must be at least 1, got %d", c.Relay.CacheMaxGroups)
	}
	if c.Relay.InFlightPerSession < 16*MiB {
		bad("relay.in_flight_per_session", "must be at least 16MiB (the largest object), got %s", c.Relay.InFlightPerSession)
	}
	if c.Relay.InFlightTotal < c.Relay.InFlightPerSession {
		bad("relay.in_flight_total", "must be at least relay.in_flight_per_session, got %s", c.Relay.InFlightTotal)
	}
	if c.Relay.CacheMaxBytes < 64*KiB {
		bad("relay.cache_max_bytes", "must be at least 64KiB, got %s", c.Relay.CacheMaxBytes)
	}
	switch c.Relay.MaxDraft {
	case 0, 14, 16, 17:
	default:
		bad("relay.max_draft", "must be 14, 16 or 17, got %d", c.Relay.MaxDraft)
	}
	if c.Relay.MaxSubscriberLagGroups < 1 {
		bad("relay.max_subscriber_lag_groups", "must be at least 1, got %d", c.Relay.MaxSubscriberLagGroups)
	} else if c.Relay.CacheMaxGroups >= 1 && c.Relay.MaxSubscriberLagGroups > c.Relay.CacheMaxGroups {
		bad("relay.max_subscriber_lag_groups", "must not exceed relay.cache_max_groups (%d), got %d",
			c.Relay.CacheMaxGroups, c.Relay.MaxSubscriberLagGroups)
	}

	for i, u := range c.Upstreams {
		if err := validateUpstream(u); err != nil {
			bad(fmt.Sprintf("upstreams[%d]", i), "%v", err)
		}
	}
	for i, u := range c.Peers {
		if err := validateUpstream(u); err != nil {
			bad(fmt.Sprintf("peers[%d]", i), "%v", err)
		}
	}
	for i, f := range c.Forward {
		if err := validateUpstream(f.URL); err != nil {
			bad(fmt.Sprintf("forward[%d].url", i), "%v", err)
		}
		switch f.Mode {
		case "", "announce", "publish", "auto":
		default:
			bad(fmt.Sprintf("forward[%d].mode", i), "must be announce, publish or auto, got %q", f.Mode)
		}
		if f.Draft != 0 && f.Draft != 14 && f.Draft != 16 && f.Draft != 17 {
			bad(fmt.Sprintf("forward[%d].draft", i), "must be 14, 16 or 17, got %d", f.Draft)
		}
		if f.Failover && i == 0 {
			bad("forward[0].failover", "a failover target needs a target before it")
		}
	}
	for i, p := range c.Relay.UpstreamPrefixes {
		if strings.Trim(p, "/") == "" {
			bad(fmt.Sprintf("relay.upstream_prefixes[%d]", i), "must not be empty (SUBSCRIBE_NAMESPACE needs a prefix)")
		}
	}

	switch c.Auth.Mode {
	case AuthNone:
		for key, v := range map[string]string{"auth.jwt_secret_file": c.Auth.JWTSecretFile,
			"auth.jwks_file": c.Auth.JWKSFile, "auth.jwks_url": c.Auth.JWKSURL} {
			if v != "" {
				bad(key, "is set but auth.mode is %q; set auth.mode to %q", AuthNone, AuthJWT)
			}
		}
	case AuthJWT:
		if c.Auth.JWTSecretFile == "" && c.Auth.JWKSFile == "" && c.Auth.JWKSURL == "" {
			bad("auth.jwt_secret_file", "must be set when auth.mode is %q (or auth.jwks_file or auth.jwks_url)", AuthJWT)
		}
		if c.Auth.JWKSFile != "" && c.Auth.JWKSURL != "" {
			bad("auth.jwks_url", "must not be set with auth.jwks_file")
		}
	default:
		bad("auth.mode", "must be %q or %q, got %q", AuthNone, AuthJWT, c.Auth.Mode)
	}

	positive("auth.jwks_refresh", c.Auth.JWKSRefresh)
	positive("hls.part_duration", c.HLS.PartDuration)
	positive("hls.segment_min_duration", c.HLS.SegmentMinDuration)
	if c.HLS.PartDuration > 0 && c.HLS.SegmentMinDuration > 0 && c.HLS.SegmentMinDuration < c.HLS.PartDuration {
		bad("hls.segment_min_duration", "must be at least hls.part_duration (%s), got %s",
			c.HLS.PartDuration, c.HLS.SegmentMinDuration)
	}
	if c.HLS.SegmentCount < 2 {
		bad("hls.segment_count", "must be at least 2, got %d", c.HLS.SegmentCount)
	}
	positive("hls.idle_timeout", c.HLS.IdleTimeout)
	if c.HLS.MaxMuxers < 1 {
		bad("hls.max_muxers", "must be at least 1, got %d", c.HLS.MaxMuxers)
	}
	if c.HLS.SegmentMaxSize < 64*KiB {
		bad("hls.segment_max_size", "must be at least 64KiB, got %s", c.HLS.SegmentMaxSize)
	}

	positive("record.segment_duration", c.Record.SegmentDuration)
	if c.Record.MaxAge < 0 {
		bad("record.max_age", "must not be negative (0 = keep), got %s", c.Record.MaxAge)
	}
	if p := c.Record.Pattern; p != "" && (!strings.Contains(p, "{time}") || strings.HasPrefix(p, "/") || strings.Contains(p, "..")) {
		bad("record.pattern", "must contain {time} and stay below record.dir, got %q", p)
	}

	nonNegative("limits.sessions_total", c.Limits.SessionsTotal)
	nonNegative("limits.sessions_per_ip", c.Limits.SessionsPerIP)
	nonNegative("limits.subscriptions_per_session", c.Limits.SubscriptionsPerSession)
	if r := c.Limits.MaxControlMessageRate; r < 0 || r != r { // r != r: NaN
		bad("limits.max_control_message_rate", "must not be negative (0 = unlimited), got %v", r)
	}
	if c.Limits.HTTPBodyMax < 1*KiB {
		bad("limits.http_body_max", "must be at least 1KiB, got %s", c.Limits.HTTPBodyMax)
	}
	positive("limits.handshake_timeout", c.Limits.HandshakeTimeout)
	positive("limits.idle_timeout", c.Limits.IdleTimeout)
	if c.Limits.WebRTCMaxMediaSections < 1 {
		bad("limits.webrtc_max_media_sections", "must be at least 1, got %d", c.Limits.WebRTCMaxMediaSections)
	}
	nonNegative("limits.webrtc_pending_total", c.Limits.WebRTCPendingTotal)
	nonNegative("limits.webrtc_pending_per_ip", c.Limits.WebRTCPendingPerIP)
	positive("limits.webrtc_connect_timeout", c.Limits.WebRTCConnectTimeout)
	nonNegative("limits.rtmp_handshakes_total", c.Limits.RTMPHandshakesTotal)
	nonNegative("limits.rtmp_handshakes_per_ip", c.Limits.RTMPHandshakesPerIP)
	nonNegative("limits.http_connections_total", c.Limits.HTTPConnectionsTotal)
	nonNegative("limits.http_connections_per_ip", c.Limits.HTTPConnectionsPerIP)
	positive("limits.http_read_timeout", c.Limits.HTTPReadTimeout)
	positive("limits.http_idle_timeout", c.Limits.HTTPIdleTimeout)

	if _, err := ParseLogLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	return errors.Join(errs...)
}

func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: want host:port (e.g. \":4443\" or \"127.0.0.1:4443\")", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid port %q in %q: want a number 0-65535", port, addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("invalid host %q in %q", host, addr)
	}
	return nil
}

// validateSTUN checks a stun:host[:port] URL.
func validateSTUN(s string) error {
	rest, ok := strings.CutPrefix(s, "stun:")
	if !ok || rest == "" || strings.ContainsAny(rest, " /?") {
		return fmt.Errorf("invalid STUN server %q: want stun:host[:port]", s)
	}
	if strings.Contains(rest, ":") && !strings.HasSuffix(rest, "]") {
		if _, port, err := net.SplitHostPort(rest); err != nil || port == "" {
			return fmt.Errorf("invalid STUN server %q: want stun:host[:port]", s)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("invalid STUN server %q: bad port", s)
		}
	}
	return nil
}

func validateHostname(h string) error {
	if h == "" {
		return errors.New("empty hostname")
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("hostname %q is too long", h)
	}
	for _, label := range strings.Split(strings.TrimPrefix(h, "*."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("invalid hostname %q", h)
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return fmt.Errorf("invalid hostname %q: character %q", h, r)
			}
		}
	}
	return nil
}

func validateUpstream(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", s, err)
	}
	switch u.Scheme {
	case "moqt", "https", "http":
	default:
		return fmt.Errorf("invalid URL %q: scheme must be moqt, https or http", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("invalid URL %q: missing host", s)
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("invalid URL %q: bad port", s)
		}
	}
	return nil
}

// validPreset reports whether p is a libx264 preset.
func validPreset(p string) bool {
	switch p {
	case "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow":
		return true
	}
	return false
}
