package rtmp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/moqgate/moqgate/media"
)

// A valid H.264 SPS (1920x1080, baseline) and PPS for synthetic streams.
var (
	testSPS = []byte{
		0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02,
		0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04,
		0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20,
	}
	testPPS = []byte{0x08, 0x06, 0x07, 0x08}
)

// syntheticAU returns a fake H.264 access unit (the server does not decode
// slices): an IDR every 30 frames.
func syntheticAU(i int) [][]byte {
	if i%30 == 0 {
		return [][]byte{{0x65, 0x88, 0x84, byte(i), 0x21}}
	}
	return [][]byte{{0x41, 0x9a, byte(i), 0x02}}
}

// publisher is a gortmplib client publishing synthetic H.264 at ~100 fps
// until stopped.
type publisher struct {
	c    *gortmplib.Client
	w    *gortmplib.Writer
	vt   *gortmplib.Track
	stop chan struct{}
	done chan error
}

func dialPublisher(addr, path string) (*publisher, error) {
	return dialPublisherURL("rtmp://"+addr+"/"+path, nil)
}

func dialPublisherURL(rawURL string, tlsCfg *tls.Config) (*publisher, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &gortmplib.Client{URL: u, Publish: true, TLSConfig: tlsCfg}
	if err := c.Initialize(ctx); err != nil {
		return nil, err
	}
	vt := &gortmplib.Track{Codec: &codecs.H264{SPS: testSPS, PPS: testPPS}}
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{vt}}
	if err := w.Initialize(); err != nil {
		c.Close()
		return nil, err
	}
	return &publisher{c: c, w: w, vt: vt}, nil
}

func (p *publisher) writeFrame(i int) error {
	ts := time.Duration(i) * time.Second / 30
	return p.w.WriteH264(p.vt, ts, ts, syntheticAU(i))
}

// run publishes in the background until stopPublishing.
func (p *publisher) run() {
	p.stop, p.done = make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				p.c.Close()
				p.done <- nil
				return
			case <-time.After(10 * time.Millisecond):
			}
			if err := p.writeFrame(i); err != nil {
				p.c.Close()
				p.done <- err
				return
			}
		}
	}()
}

func (p *publisher) stopPublishing(t *testing.T) {
	t.Helper()
	close(p.stop)
	if err := <-p.done; err != nil {
		t.Errorf("publisher: %v", err)
	}
}

// waitFrames waits until rec has more than n video frames.
func waitFrames(t *testing.T, rec *recorder, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for rec.count("video") <= n {
		if time.Now().After(deadline) {
			t.Fatalf("stuck at %d video frames, waiting for more than %d", rec.count("video"), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSecondPublisherRefused: OnPublish refuses a second publisher of a live
// path; only that connection is closed, the first goes on.
func TestSecondPublisherRefused(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	live := map[string]bool{}
	rec := newRecorder()
	srv := startServer(t, Config{OnPublish: func(_ context.Context, req PublishRequest) (media.BroadcastWriter, error) {
		mu.Lock()
		defer mu.Unlock()
		if live[req.Path] {
			return nil, fmt.Errorf("broadcast %q is already live", req.Path)
		}
		live[req.Path] = true
		return rec, nil
	}})

	first, err := dialPublisher(srv.addr, "live/dup")
	if err != nil {
		t.Fatal(err)
	}
	first.run()
	waitFrames(t, rec, 10)

	_, err = dialPublisher(srv.addr, "live/dup")
	if err == nil {
		t.Fatal("second publisher accepted")
	}
	srv.logs.waitLog(t, `already live`, 5*time.Second)
	if !strings.Contains(srv.logs.String(), "publish refused") {
		t.Errorf("no clear log line for the refusal:\n%s", srv.logs)
	}

	waitFrames(t, rec, rec.count("video")+10) // the first one goes on
	first.stopPublishing(t)
	rec.waitClosed(t, 5*time.Second)
	_, frames := rec.snapshot(t)
	for i, f := range frames["video"] {
		if want := i%30 == 0; f.Keyframe != want {
			t.Fatalf("frame %d: keyframe %v", i, f.Keyframe)
		}
	}
}

// TestPlayRefused: play requests get an error status and a closed connection.
func TestPlayRefused(t *testing.T) {
	t.Parallel()
	var called atomic.Bool
	srv := startServer(t, Config{OnPublish: func(context.Context, PublishRequest) (media.BroadcastWriter, error) {
		called.Store(true)
		return newRecorder(), nil
	}})
	u, _ := url.Parse("rtmp://" + srv.addr + "/live/test")
	c := &gortmplib.Client{URL: u, Publish: false}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err == nil {
		c.Close()
		t.Fatal("play accepted")
	}
	srv.logs.waitLog(t, "refusing play request: ingest only", 5*time.Second)
	srv.logs.waitLog(t, "play refused", 5*time.Second)
	if called.Load() {
		t.Error("OnPublish called for a play request")
	}
}

// rawClient connects and optionally performs the RTMP handshake.
func rawClient(t *testing.T, addr string, doHandshake bool) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if doHandshake {
		if _, _, err := handshake.DoClient(c, false, false); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// waitClosedByServer waits until the server closes c (reading and
// discarding whatever it sent).
func waitClosedByServer(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", within)
	}
}

// chunk0 builds a type 0 chunk header.
func chunk0(csid byte, ts uint32, length int, typ byte) []byte {
	return []byte{csid, byte(ts >> 16), byte(ts >> 8), byte(ts),
		byte(length >> 16), byte(length >> 8), byte(length), typ, 0, 0, 0, 0}
}

// TestBadPeers: garbage, truncated or stalled handshakes, malformed chunk
// streams and malformed FLV tags close that connection only; a publisher
// running meanwhile is unaffected and new publishers are still served.
func TestBadPeers(t *testing.T) {
	t.Parallel()
	recs := make(chan *recorder, 100)
	srv := startServer(t, Config{
		HandshakeTimeout: 500 * time.Millisecond,
		MaxMessageSize:   1 << 20,
		OnPublish: func(context.Context, PublishRequest) (media.BroadcastWriter, error) {
			rec := newRecorder()
			recs <- rec
			return rec, nil
		},
	})

	good, err := dialPublisher(srv.addr, "live/good")
	if err != nil {
		t.Fatal(err)
	}
	goodRec := <-recs
	good.run()
	waitFrames(t, goodRec, 5)

	cases := []struct {
		name string
		run  func(t *testing.T)
		log  string
	}{
		{"http request", func(t *testing.T) {
			c := rawClient(t, srv.addr, false)
			fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			waitClosedByServer(t, c, 3*time.Second)
		}, "not an RTMP client"},
		{"rtmpe", func(t *testing.T) {
			c := rawClient(t, srv.addr, false)
			c.Write(append([]byte{6}, make([]byte, 1536)...))
			waitClosedByServer(t, c, 3*time.Second)
		}, "RTMPE"},
		{"truncated handshake", func(t *testing.T) {
			c := rawClient(t, srv.addr, false)
			c.Write(append([]byte{3}, make([]byte, 700)...))
			c.(*net.TCPConn).CloseWrite()
			waitClosedByServer(t, c, 3*time.Second)
		}, "handshake: unexpected EOF"},
		{"stalled handshake", func(t *testing.T) {
			c := rawClient(t, srv.addr, false)
			c.Write(append([]byte{3}, make([]byte, 700)...))
			start := time.Now()
			waitClosedByServer(t, c, 3*time.Second)
			if d := time.Since(start); d < 300*time.Millisecond {
				t.Errorf("closed after %v, before the handshake timeout", d)
			}
		}, "i/o timeout"},
		{"type 1 chunk first", func(t *testing.T) {
			c := rawClient(t, srv.addr, true)
			c.Write([]byte{0x45, 0, 0, 0, 0, 0, 4, 20, 1, 2, 3, 4})
			waitClosedByServer(t, c, 3*time.Second)
		}, "without a previous type 0 chunk"},
		{"oversized message", func(t *testing.T) {
			c := rawClient(t, srv.addr, true)
			c.Write(chunk0(3, 0, 0xFFFFFF, 9))
			waitClosedByServer(t, c, 3*time.Second) // at once: no need to send the body
		}, "exceeds the limit"},
		{"oversized AMF command", func(t *testing.T) {
			c := rawClient(t, srv.addr, true)
			c.Write(chunk0(3, 0, 100000, 20))
			waitClosedByServer(t, c, 3*time.Second)
		}, "AMF message of 100000 bytes"},
		{"deep AMF nesting", func(t *testing.T) {
			c := rawClient(t, srv.addr, true)
			c.Write([]byte{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 1, 0, 0}) // chunk size 65536
			body := []byte{0x02, 0, 7, 'c', 'o', 'n', 'n', 'e', 'c', 't', 0, 0, 0, 0, 0, 0, 0, 0, 0}
			for len(body) < 60000 {
				body = append(body, 0x0a, 0, 0, 0, 1) // strict array of 1 element, nested
			}
			c.Write(append(chunk0(3, 0, len(body), 20), body...))
			waitClosedByServer(t, c, 3*time.Second)
		}, "malformed command"},
		{"bad set chunk size", func(t *testing.T) {
			c := rawClient(t, srv.addr, true)
			c.Write([]byte{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0})
			waitClosedByServer(t, c, 3*time.Second)
		}, "invalid chunk size 0"},
		{"random bytes after handshake", func(t *testing.T) {
			rng := mrand.New(mrand.NewPCG(1, 2))
			for range 20 {
				c := rawClient(t, srv.addr, true)
				b := make([]byte, 4096)
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				c.Write(b)
				c.(*net.TCPConn).CloseWrite()
				waitClosedByServer(t, c, 3*time.Second)
			}
		}, ""},
		{"malformed FLV tag", func(t *testing.T) {
			p, err := dialPublisher(srv.addr, "live/bad")
			if err != nil {
				t.Fatal(err)
			}
			rec := <-recs
			if err := p.writeFrame(0); err != nil {
				t.Fatal(err)
			}
			// a NAL unit length running past the end of the frame
			p.c.Write(&message.Video{
				ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000,
				Codec: message.CodecH264, Type: message.VideoTypeAU, DTS: 40 * time.Millisecond,
				AU: []byte{0, 0, 0, 99, 0x41, 1, 2},
			})
			waitClosedByServer(t, p.c.NetConn(), 3*time.Second)
			rec.waitClosed(t, 3*time.Second)
		}, "malformed FLV tag: NAL unit of 99 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := goodRec.count("video")
			tc.run(t)
			if tc.log != "" {
				srv.logs.waitLog(t, tc.log, 3*time.Second)
			}
			waitFrames(t, goodRec, before+3)
		})
	}

	// still serving new publishers
	p, err := dialPublisher(srv.addr, "live/after")
	if err != nil {
		t.Fatal(err)
	}
	rec := <-recs
	for i := range 5 {
		if err := p.writeFrame(i); err != nil {
			t.Fatal(err)
		}
	}
	p.c.Close()
	rec.waitClosed(t, 5*time.Second)
	if _, frames := rec.snapshot(t); len(frames["video"]) != 5 {
		t.Errorf("%d frames after the bad peers, want 5", len(frames["video"]))
	}
	good.stopPublishing(t)
	goodRec.waitClosed(t, 5*time.Second)
	goodRec.snapshot(t)
	if strings.Contains(srv.logs.String(), "panic") {
		t.Errorf("panic in logs:\n%s", srv.logs)
	}
}

// TestShutdown: cancelling Serve's context closes live connections and their
// BroadcastWriters before Serve returns.
func TestShutdown(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	srv, err := NewServer(Config{OnPublish: func(context.Context, PublishRequest) (media.BroadcastWriter, error) {
		return rec, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	p, err := dialPublisher(ln.Addr().String(), "live/x")
	if err != nil {
		t.Fatal(err)
	}
	defer p.c.Close()
	for i := range 3 {
		if err := p.writeFrame(i); err != nil {
			t.Fatal(err)
		}
	}
	waitFrames(t, rec, 0)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	select {
	case <-rec.closed:
	default:
		t.Fatal("BroadcastWriter not closed when Serve returned")
	}
}

// TestRTMPS publishes over TLS (Serve with a TLS listener, as
// ListenAndServe does when Config.TLSConfig is set).
func TestRTMPS(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}

	rec := newRecorder()
	srv, err := NewServer(Config{OnPublish: func(context.Context, PublishRequest) (media.BroadcastWriter, error) {
		return rec, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(ctx, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	}()
	defer func() {
		cancel()
		<-done
	}()

	p, err := dialPublisherURL("rtmps://"+ln.Addr().String()+"/live/tls", &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		must(t, p.writeFrame(i))
	}
	p.c.Close()
	rec.waitClosed(t, 5*time.Second)
	if _, frames := rec.snapshot(t); len(frames["video"]) != 3 {
		t.Errorf("%d frames over RTMPS, want 3", len(frames["video"]))
	}
}

func TestNewServerConfig(t *testing.T) {
	ok := func(context.Context, PublishRequest) (media.BroadcastWriter, error) { return nil, nil }
	if _, err := NewServer(Config{}); err == nil {
		t.Error("no OnPublish accepted")
	}
	if _, err := NewServer(Config{OnPublish: ok, MaxMessageSize: MaxMessageSizeLimit + 1}); err == nil {
		t.Error("MaxMessageSize above the library limit accepted")
	}
	s, err := NewServer(Config{OnPublish: ok})
	if err != nil || s.cfg.MaxMessageSize != DefaultMaxMessageSize || s.cfg.Addr != ":1935" {
		t.Errorf("defaults: %+v, %v", s, err)
	}
}

func TestPublishTarget(t *testing.T) {
	for _, tc := range []struct {
		app, name, path, query string
		ok                     bool
	}{
		{"live", "test", "live/test", "", true},
		{"live", "test?key=abc&x=1", "live/test", "key=abc&x=1", true},
		{"live?token=t", "test", "live/test", "token=t", true},
		{"live/sub", "", "live/sub", "", true},
		{"/live/", "/a/b/", "live/a/b", "", true},
		{"", "", "", "", false},
		{"live", "../etc", "", "", false},
		{"live", "a//b", "", "", false},
		{"live", "a\x00b", "", "", false},
	} {
		path, q, err := publishTarget(tc.app, tc.name)
		if (err == nil) != tc.ok || path != tc.path || (tc.ok && q.Encode() != tc.query) {
			t.Errorf("publishTarget(%q, %q) = %q, %q, %v", tc.app, tc.name, path, q.Encode(), err)
		}
	}
}

func TestUnwrapper(t *testing.T) {
	var u unwrapper
	in := []uint32{0, 1000, 500, 0xFFFFFF00, 0xFFFFFFF0, 16, 0xFFFFFFF8, 32, 100}
	want := []int64{0, 1000, 500, 0xFFFFFF00, 0xFFFFFFF0, 1<<32 + 16, 0xFFFFFFF8, 1<<32 + 32, 1<<32 + 100}
	for i, ts := range in {
		if got := u.unwrap(ts); got != want[i] {
			t.Errorf("unwrap #%d (%d) = %d, want %d", i, ts, got, want[i])
		}
	}
}

// TestDemuxer covers what real peers do not easily send: frames before the
// sequence header, unsupported codecs, mid-stream parameter changes,
// multitrack and ModEx packets, a publish with nothing supported.
func TestDemuxer(t *testing.T) {
	avcSeq := func(sps []byte) []byte {
		b := []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x28, 0xff, 0xe1, 0, byte(len(sps))}
		b = append(b, sps...)
		return append(b, 1, 0, byte(len(testPPS)), testPPS[0], testPPS[1], testPPS[2], testPPS[3])
	}
	avcFrame := func(key bool, cto int32, nalus ...[]byte) []byte {
		b := []byte{0x27, 1, byte(cto >> 16), byte(cto >> 8), byte(cto)}
		if key {
			b[0] = 0x17
		}
		for _, n := range nalus {
			b = append(b, 0, 0, 0, byte(len(n)))
			b = append(b, n...)
		}
		return b
	}
	idr := []byte{0x65, 0x88, 0x80}
	aacSeq := []byte{0xaf, 0, 0x12, 0x10} // AAC LC 44.1 kHz stereo
	aacFrame := []byte{0xaf, 1, 0x21, 0x1b, 0x80}
	speex := []byte{0xb6, 1, 2, 3}
	vp6 := []byte{0x14, 1, 2, 3, 4, 5}

	newD := func() (*demuxer, *recorder, *logBuf) {
		logs := &logBuf{t: t}
		rec := newRecorder()
		return newDemuxer(slogTo(logs), rec, 1<<20), rec, logs
	}

	t.Run("frames before sequence header are dropped", func(t *testing.T) {
		d, rec, logs := newD()
		must(t, d.handleVideo(0, avcFrame(true, 0, idr)))
		must(t, d.handleVideo(33, avcFrame(false, 0, []byte{0x41, 1})))
		must(t, d.handleVideo(40, avcSeq(testSPS)))
		must(t, d.handleAudio(40, aacSeq))
		must(t, d.handleVideo(66, avcFrame(true, 0, idr)))
		must(t, d.handleAudio(70, aacFrame))
		must(t, d.finish())
		sets, frames := rec.snapshot(t)
		if len(sets) != 1 || len(frames["video"]) != 1 || len(frames["audio"]) != 1 || d.kinds[kVideo].dropped != 2 {
			t.Errorf("sets %d, frames %d/%d, dropped %d", len(sets), len(frames["video"]), len(frames["audio"]), d.kinds[kVideo].dropped)
		}
		if n := strings.Count(logs.String(), "before the sequence header"); n != 1 {
			t.Errorf("logged %d times", n)
		}
	})

	t.Run("unsupported audio is left out", func(t *testing.T) {
		d, rec, logs := newD()
		d.handleMetadata(amfMeta(7, 11))
		must(t, d.handleVideo(0, avcSeq(testSPS)))
		must(t, d.handleAudio(0, speex))
		must(t, d.handleVideo(0, avcFrame(true, 0, idr)))
		sets, _ := rec.snapshot(t)
		if len(sets) != 1 || len(sets[0]) != 1 || sets[0][0].Name != "video" {
			t.Errorf("tracks %+v", sets)
		}
		if !strings.Contains(logs.String(), "codec=Speex") {
			t.Errorf("no log line for Speex:\n%s", logs)
		}
	})

	t.Run("nothing supported refuses", func(t *testing.T) {
		d, _, _ := newD()
		d.handleMetadata(amfMeta(4, 11))
		err := d.handleVideo(0, vp6)
		if !errors.Is(err, errNoSupportedTracks) || !strings.Contains(err.Error(), "On2 VP6") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("parameter change mid-stream", func(t *testing.T) {
		d, rec, _ := newD()
		d.handleMetadata(amfMeta(7, 0))
		must(t, d.handleVideo(0, avcSeq(testSPS)))
		must(t, d.handleVideo(0, avcFrame(true, 0, idr)))
		must(t, d.handleVideo(33, avcSeq(testSPS))) // repeated: no SetTracks
		sps2 := append(bytes.Clone(testSPS[:len(testSPS)-1]), 0x21)
		must(t, d.handleVideo(66, avcFrame(true, 0, []byte{9, 0xf0}, sps2, testPPS, idr))) // in-band
		must(t, d.handleVideo(99, avcFrame(false, -33, []byte{0x41, 1})))
		sets, frames := rec.snapshot(t)
		if len(sets) != 2 || !bytes.Equal(sets[1][0].SPS[0], sps2) {
			t.Fatalf("SetTracks %d times: %+v", len(sets), sets)
		}
		vf := frames["video"]
		if len(vf) != 3 || !bytes.Equal(vf[1].Data, append([]byte{0, 0, 0, 3}, idr...)) || vf[2].CTO != -33 {
			t.Errorf("frames %+v", vf)
		}
	})

	t.Run("enhanced multitrack and ModEx", func(t *testing.T) {
		d, rec, logs := newD()
		hvcc := []byte{0x90 | exVideoMultitrack, mtOneTrack<<4 | exSequenceStart, 'a', 'v', 'c', '1', 0}
		hvcc = append(hvcc, avcSeq(testSPS)[5:]...)
		must(t, d.handleVideo(0, hvcc))
		// ModEx (timestamp offset) wrapping coded frames of track 0, and track 1
		f := []byte{0x90 | exModEx, 3, 0, 0, 0, 0, 0x10 | exVideoMultitrack, mtManyTracks<<4 | exCodedFrames, 'a', 'v', 'c', '1'}
		payload := []byte{0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x80} // CTO 0, one IDR
		f = append(f, 0, 0, 0, byte(len(payload)))
		f = append(f, payload...)
		f = append(f, 1, 0, 0, byte(len(payload)))
		f = append(f, payload...)
		must(t, d.handleVideo(0, f))
		must(t, d.finish())
		sets, frames := rec.snapshot(t)
		if len(sets) != 1 || len(frames["video"]) != 1 || !frames["video"][0].Keyframe {
			t.Errorf("sets %+v frames %+v", sets, frames)
		}
		if !strings.Contains(logs.String(), "only track 0") {
			t.Errorf("no log for track 1:\n%s", logs)
		}
	})

	t.Run("short stream without metadata is flushed", func(t *testing.T) {
		d, rec, _ := newD()
		must(t, d.handleVideo(0, avcSeq(testSPS)))
		must(t, d.handleVideo(0, avcFrame(true, 0, idr)))
		if _, frames := rec.snapshot(t); len(frames["video"]) != 0 {
			t.Fatal("tracks announced before the analyze window without metadata")
		}
		must(t, d.finish())
		if _, frames := rec.snapshot(t); len(frames["video"]) != 1 {
			t.Fatal("held back frame lost")
		}
	})

	t.Run("analyze window", func(t *testing.T) {
		d, rec, _ := newD()
		must(t, d.handleVideo(0, avcSeq(testSPS)))
		for i := range 40 {
			must(t, d.handleVideo(uint32(i*33), avcFrame(i == 0, 0, idr)))
		}
		sets, frames := rec.snapshot(t)
		if len(sets) != 1 || len(frames["video"]) != 40 {
			t.Errorf("sets %d frames %d", len(sets), len(frames["video"]))
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestGuardHoldsIncompleteChunk: a chunk header reaches the library only
// with its body, so a header declaring a large message costs nothing.
func TestGuardHoldsIncompleteChunk(t *testing.T) {
	setChunkSize := append(chunk0(2, 0, 4, 1), 0, 0x10, 0, 0) // 1 MiB chunks
	stream := append(bytes.Clone(setChunkSize), chunk0(6, 0, 1<<20, 9)...)
	stream = append(stream, make([]byte, 1000)...) // 1000 of 1 MiB
	g := newChunkGuard(bytes.NewReader(stream), 1<<21)
	got, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(got, setChunkSize) {
		t.Fatalf("guard released %d bytes (%v), want only the %d of the complete chunk", len(got), err, len(setChunkSize))
	}
	// the same with the body complete: everything goes through
	stream = append(stream, make([]byte, 1<<20-1000)...)
	g = newChunkGuard(bytes.NewReader(stream), 1<<21)
	if got, err := io.ReadAll(g); err != nil || len(got) != len(stream) {
		t.Fatalf("guard released %d of %d bytes: %v", len(got), len(stream), err)
	}
}
