package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefault(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatalf("Load(\"\"): %v", err)
	}
	want := Config{
		Listen: Listen{Addr: ":4443"},
		RTMP:   RTMP{Addr: ":1935", GracePeriod: 5 * time.Second},
		WebRTC: WebRTC{UDP: ":8189", NAT1To1IPs: []string{}, STUNServers: []string{}, KeyframeInterval: 2 * time.Second, FFmpeg: "ffmpeg",
			VideoTranscode: "auto", VideoPreset: "veryfast", MaxVideoTranscodes: 2},
		SRT:       SRT{Addr: ":8890", Latency: 120 * time.Millisecond},
		TLS:       TLS{Hostnames: []string{}},
		Relay:     Relay{CacheMaxGroups: 4, CacheMaxBytes: 32 * MiB, MaxSubscriberLagGroups: 2, InFlightPerSession: 32 * MiB, InFlightTotal: 256 * MiB, UpstreamPrefixes: []string{"live"}},
		Upstreams: []string{},
		Peers:     []string{},
		Auth:      Auth{Mode: AuthNone, JWKSRefresh: 5 * time.Minute},
		HLS: HLS{
			PartDuration:       200 * time.Millisecond,
			SegmentMinDuration: time.Second,
			SegmentCount:       7,
			IdleTimeout:        60 * time.Second,
			MaxMuxers:          100,
			SegmentMaxSize:     16 * MiB,
		},
		Limits: Limits{
			SessionsTotal:           10000,
			SessionsPerIP:           100,
			SubscriptionsPerSession: 1000,
			MaxControlMessageRate:   1000,
			HTTPBodyMax:             MiB,
			HandshakeTimeout:        10 * time.Second,
			IdleTimeout:             30 * time.Second,
			WebRTCMaxMediaSections:  16,
			WebRTCPendingTotal:      64,
			WebRTCPendingPerIP:      16,
			WebRTCConnectTimeout:    10 * time.Second,
			RTMPHandshakesTotal:     128,
			RTMPHandshakesPerIP:     16,
			HTTPConnectionsTotal:    2048,
			HTTPConnectionsPerIP:    256,
			HTTPReadTimeout:         15 * time.Second,
			HTTPIdleTimeout:         30 * time.Second,
		},
		Record: Record{Pattern: "{path}/{time}", SegmentDuration: 4 * time.Second, Prefixes: []RecordPrefix{}},
		Log:    Log{Level: "info"},
	}
	got, _ := c.Marshal()
	exp, _ := want.Marshal()
	if !bytes.Equal(got, exp) {
		t.Errorf("default config:\n%s\nwant:\n%s", got, exp)
	}
	if !c.TLS.SelfSigned() {
		t.Error("default TLS should be self-signed")
	}
	if c.Log.SlogLevel().String() != "INFO" {
		t.Errorf("log level %v", c.Log.SlogLevel())
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "moqgate.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadOverlay(t *testing.T) {
	p := writeFile(t, `
listen:
  addr: "127.0.0.1:0"
rtmp:
  grace_period: 1m30s
upstreams:
  - moqt://origin.example:4443
  - https://origin.example/
auth:
  mode: jwt
  jwt_secret_file: /etc/moqgate/secret
relay:
  cache_max_bytes: 1048576
hls:
  part_duration: 100ms
tls:
  hostnames: [media.example.com, 192.0.2.1]
log:
  level: DEBUG
webrtc:
  video_transcode: off
  max_video_transcodes: 1
`)
	c, err := Load(p)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Listen.Addr != "127.0.0.1:0" {
		t.Errorf("listen.addr = %q", c.Listen.Addr)
	}
	if c.RTMP.GracePeriod != 90*time.Second || c.RTMP.Addr != ":1935" {
		t.Errorf("rtmp = %+v (addr must keep the default)", c.RTMP)
	}
	if len(c.Upstreams) != 2 || c.Upstreams[1] != "https://origin.example/" {
		t.Errorf("upstreams = %v", c.Upstreams)
	}
	if c.Auth.Mode != AuthJWT || c.Auth.JWTSecretFile != "/etc/moqgate/secret" {
		t.Errorf("auth = %+v", c.Auth)
	}
	if c.Relay.CacheMaxBytes != MiB || c.Relay.CacheMaxGroups != 4 {
		t.Errorf("relay = %+v", c.Relay)
	}
	if c.HLS.PartDuration != 100*time.Millisecond || c.HLS.SegmentCount != 7 {
		t.Errorf("hls = %+v", c.HLS)
	}
	if c.Log.SlogLevel().String() != "DEBUG" {
		t.Errorf("log level = %v", c.Log.SlogLevel())
	}
	// YAML 1.1's off is the string here (no quotes needed).
	if c.WebRTC.VideoTranscode != "off" || c.WebRTC.MaxVideoTranscodes != 1 || c.WebRTC.VideoPreset != "veryfast" {
		t.Errorf("webrtc = %+v", c.WebRTC)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	c, err := Load(writeFile(t, "# nothing\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := Default()
	a, _ := c.Marshal()
	b, _ := d.Marshal()
	if !bytes.Equal(a, b) {
		t.Errorf("empty file should give the default")
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want ErrNotExist", err)
	}
}

func TestStrictErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown top-level", "listne:\n  addr: :1\n", []string{`unknown field "listne"`, "top level", "line 1"}},
		{"unknown in section", "rtmp:\n  addr: :1935\n  grace: 5s\n", []string{`unknown field "grace"`, "section rtmp", "line 3"}},
		{"unknown in hls", "hls:\n  part_durations: 1s\n", []string{`unknown field "part_durations"`, "section hls"}},
		{"int duration", "hls:\n  idle_timeout: 60\n", []string{"line 2", "time.Duration"}},
		{"bad duration", "rtmp:\n  grace_period: 5 seconds\n", []string{"line 2", "time.Duration"}},
		{"bad bytes", "relay:\n  cache_max_bytes: lots\n", []string{"line 2", "invalid byte size"}},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", []string{"already defined"}},
		{"two documents", "log:\n  level: info\n---\nlog:\n  level: debug\n", []string{"more than one YAML document"}},
		{"wrong shape", "upstreams: moqt://x:1\n", []string{"line 1"}},
		{"not yaml", "listen: [\n", []string{"decode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestUnknownFieldWrapsTypeError(t *testing.T) {
	_, err := Parse([]byte("bogus: 1\n"))
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		t.Errorf("error %v does not wrap *yaml.TypeError", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"empty listen", func(c *Config) { c.Listen.Addr = "" }, "listen.addr: must be set"},
		{"listen no port", func(c *Config) { c.Listen.Addr = "localhost" }, "listen.addr: invalid address"},
		{"listen bad port", func(c *Config) { c.Listen.Addr = ":99999" }, "listen.addr: invalid port"},
		{"rtmp bad", func(c *Config) { c.RTMP.Addr = "1935" }, "rtmp.addr"},
		{"grace negative", func(c *Config) { c.RTMP.GracePeriod = -time.Second }, "rtmp.grace_period"},
		{"webrtc bad", func(c *Config) { c.WebRTC.UDP = "x" }, "webrtc.udp"},
		{"webrtc tcp", func(c *Config) { c.WebRTC.TCP = "8189" }, "webrtc.tcp"},
		{"webrtc nat ip", func(c *Config) { c.WebRTC.NAT1To1IPs = []string{"example.com"} }, "webrtc.nat_1to1_ips[0]"},
		{"webrtc stun", func(c *Config) { c.WebRTC.STUNServers = []string{"stun.l.google.com:19302"} }, "webrtc.stun_servers[0]"},
		{"webrtc stun port", func(c *Config) { c.WebRTC.STUNServers = []string{"stun:host:99999"} }, "webrtc.stun_servers[0]"},
		{"webrtc keyframes", func(c *Config) { c.WebRTC.KeyframeInterval = -time.Second }, "webrtc.keyframe_interval"},
		{"srt bad", func(c *Config) { c.SRT.Addr = "8890" }, "srt.addr"},
		{"srt passphrase", func(c *Config) { c.SRT.Passphrase = "short" }, "srt.passphrase"},
		{"srt latency", func(c *Config) { c.SRT.Latency = -time.Second }, "srt.latency"},
		{"srt max_bw", func(c *Config) { c.SRT.MaxBW = -1 }, "srt.max_bw"},
		{"webrtc video transcode", func(c *Config) { c.WebRTC.VideoTranscode = "on" }, "webrtc.video_transcode"},
		{"webrtc video preset", func(c *Config) { c.WebRTC.VideoPreset = "fastest" }, "webrtc.video_preset"},
		{"webrtc video cap", func(c *Config) { c.WebRTC.MaxVideoTranscodes = 0 }, "webrtc.max_video_transcodes"},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "a.pem" }, "cert_file and key_file must be set together"},
		{"bad hostname", func(c *Config) { c.TLS.Hostnames = []string{"bad host"} }, "tls.hostnames[0]"},
		{"groups", func(c *Config) { c.Relay.CacheMaxGroups = 0 }, "relay.cache_max_groups: must be at least 1"},
		{"bytes", func(c *Config) { c.Relay.CacheMaxBytes = 10 }, "relay.cache_max_bytes"},
		{"lag zero", func(c *Config) { c.Relay.MaxSubscriberLagGroups = 0 }, "relay.max_subscriber_lag_groups: must be at least 1"},
		{"lag above cache", func(c *Config) { c.Relay.MaxSubscriberLagGroups = 5 }, "must not exceed relay.cache_max_groups"},
		{"upstream scheme", func(c *Config) { c.Upstreams = []string{"ftp://x"} }, "upstreams[0]: invalid URL"},
		{"upstream host", func(c *Config) { c.Upstreams = []string{"moqt:///x"} }, "missing host"},
		{"auth mode", func(c *Config) { c.Auth.Mode = "basic" }, "auth.mode"},
		{"jwt no secret", func(c *Config) { c.Auth.Mode = AuthJWT }, "auth.jwt_secret_file: must be set"},
		{"secret without jwt", func(c *Config) { c.Auth.JWTSecretFile = "s" }, "auth.mode is \"none\""},
		{"part zero", func(c *Config) { c.HLS.PartDuration = 0 }, "hls.part_duration"},
		{"segment < part", func(c *Config) { c.HLS.SegmentMinDuration = 100 * time.Millisecond }, "hls.segment_min_duration: must be at least hls.part_duration"},
		{"segment count", func(c *Config) { c.HLS.SegmentCount = 1 }, "hls.segment_count"},
		{"hls idle", func(c *Config) { c.HLS.IdleTimeout = 0 }, "hls.idle_timeout"},
		{"sessions", func(c *Config) { c.Limits.SessionsTotal = -1 }, "limits.sessions_total"},
		{"per ip", func(c *Config) { c.Limits.SessionsPerIP = -1 }, "limits.sessions_per_ip"},
		{"subs", func(c *Config) { c.Limits.SubscriptionsPerSession = -1 }, "limits.subscriptions_per_session"},
		{"rate", func(c *Config) { c.Limits.MaxControlMessageRate = -1 }, "limits.max_control_message_rate"},
		{"body", func(c *Config) { c.Limits.HTTPBodyMax = 0 }, "limits.http_body_max"},
		{"handshake", func(c *Config) { c.Limits.HandshakeTimeout = 0 }, "limits.handshake_timeout"},
		{"idle", func(c *Config) { c.Limits.IdleTimeout = 0 }, "limits.idle_timeout"},
		{"log", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Default()
			if err != nil {
				t.Fatal(err)
			}
			tt.mod(c)
			err = c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsAll(t *testing.T) {
	c, _ := Default()
	c.Listen.Addr = ""
	c.Log.Level = "x"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "listen.addr") || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("Validate() = %v, want both problems", err)
	}
}

func TestValidateAccepts(t *testing.T) {
	c, _ := Default()
	c.RTMP.Addr = ""
	c.WebRTC.UDP = ""
	c.WebRTC.TCP = "127.0.0.1:0"
	c.WebRTC.NAT1To1IPs = []string{"203.0.113.7", "2001:db8::1"}
	c.WebRTC.STUNServers = []string{"stun:stun.l.google.com:19302", "stun:[2001:db8::1]:3478", "stun:example.com"}
	c.Listen.Addr = "[::1]:0"
	c.TLS = TLS{CertFile: "c.pem", KeyFile: "k.pem", Hostnames: []string{"*.example.com", "::1", "a-b.example"}}
	c.Upstreams = []string{"moqt://127.0.0.1:4443", "http://localhost:4443/path?q=1"}
	c.Limits.SessionsTotal = 0
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestByteSize(t *testing.T) {
	ok := map[string]ByteSize{
		"0": 0, "1048576": MiB, "64KiB": 64 * KiB, "32MiB": 32 * MiB, "1GiB": GiB,
		"1.5MB": 1500000, "2 KB": 2000, "10B": 10, " 7 ": 7, "0.5KiB": 512,
	}
	for in, want := range ok {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "-1MiB", "MiB", "1TB", "1e3KB", "NaNKB", "infKB", "0x10KB", "1 2MB", "99999999999GiB"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %v, want error", in, got)
		}
	}
	for _, b := range []ByteSize{0, 1, 1023, KiB, 1536, MiB, 3 * GiB, 32 * MiB} {
		out, err := yaml.Marshal(struct{ B ByteSize }{b})
		if err != nil {
			t.Fatal(err)
		}
		var back struct{ B ByteSize }
		if err := yaml.Unmarshal(out, &back); err != nil || back.B != b {
			t.Errorf("round trip %d via %q: %v, %v", b, out, back.B, err)
		}
	}
	if s := (32 * MiB).String(); s != "32MiB" {
		t.Errorf("String() = %q", s)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c, _ := Default()
	c.Upstreams = []string{"moqt://a:1"}
	c.Limits.MaxControlMessageRate = 12.5
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v\n%s", err, out)
	}
	out2, _ := c2.Marshal()
	if !bytes.Equal(out, out2) {
		t.Errorf("round trip differs:\n%s\n%s", out, out2)
	}
}

// FuzzLoad feeds arbitrary files to Load: it must never panic, and a file it
// accepts must be valid and survive Marshal → Parse unchanged.
func FuzzLoad(f *testing.F) {
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err != nil {
			if c != nil {
				t.Fatalf("Load returned a config with error %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted an invalid config: %v", err)
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal()) = %v\n%s", err, out)
		}
		out2, err := c2.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip differs:\n%s\n---\n%s", out, out2)
		}
	})
}

func TestForwardConfig(t *testing.T) {
	c, err := Parse([]byte(`forward:
  - url: https://relay.example.com/moq
    draft: 14
    token: T
    prefixes: [live]
    rename: {from: live, to: customer42/live}
    mode: announce
  - url: moqt://relay-b.example.com:4443/moq
    failover: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Forward) != 2 || c.Forward[0].Rename.To != "customer42/live" || !c.Forward[1].Failover || c.Forward[0].Token != "T" {
		t.Fatalf("forward = %+v", c.Forward)
	}
	for _, bad := range []string{
		"forward:\n  - url: rtmp://x\n",
		"forward:\n  - url: moqt://x\n    mode: push\n",
		"forward:\n  - url: moqt://x\n    draft: 15\n",
		"forward:\n  - url: moqt://x\n    failover: true\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestRecordConfig(t *testing.T) {
	c, err := Parse([]byte(`record:
  dir: /var/lib/moqgate
  pattern: "{date}/{path}/{time}"
  segment_duration: 2s
  max_age: 48h
  max_bytes: 10GiB
  prefixes:
    - prefix: live/
    - prefix: live/private/
      off: true
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Record
	if r.Dir != "/var/lib/moqgate" || r.SegmentDuration != 2*time.Second || r.MaxAge != 48*time.Hour ||
		r.MaxBytes != 10*GiB || len(r.Prefixes) != 2 || !r.Prefixes[1].Off || r.Prefixes[0].Off {
		t.Fatalf("record = %+v", r)
	}
	def, err := Parse(nil)
	if err != nil || def.Record.Dir != "" || def.Record.SegmentDuration <= 0 {
		t.Fatalf("default record = %+v (%v)", def.Record, err)
	}
	for _, bad := range []string{
		"record:\n  segment_duration: 0s\n",
		"record:\n  max_age: -1s\n",
		"record:\n  pattern: \"{path}\"\n",
		"record:\n  pattern: \"../{time}\"\n",
		"record:\n  prefixes:\n    - prefix: a\n      on: true\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestDiff names changed settings as the YAML does, lists as one.
func TestDiff(t *testing.T) {
	a, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Default()
	if d := Diff(a, b); len(d) != 0 {
		t.Fatalf("Diff of equal configs: %v", d)
	}
	b.Limits.HTTPBodyMax = 2048
	b.HLS.MaxMuxers++
	b.Auth.Mode = "jwt"
	b.Upstreams = []string{"moqt://x"}
	got := strings.Join(Diff(a, b), " ")
	if got != "upstreams auth.mode hls.max_muxers limits.http_body_max" {
		t.Fatalf("Diff: %q", got)
	}
}
