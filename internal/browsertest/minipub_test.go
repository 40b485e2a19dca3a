package browsertest

// A minimal MoQ draft-14 publisher over WebTransport, written only from what
// @moq/watch 0.4.6 sends and accepts (see web/NOTES.md). It is not moqgate's
// relay: it exists so that web/pages/watch.html and internal/certs are checked
// against a real browser independently of the moq package, and as a small
// byte-level reference of what @moq/watch plays.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
	"github.com/quic-go/webtransport-go"

	"github.com/moqgate/moqgate/internal/certs"
)

// cmafMedia is an fMP4 file cut into its init segment and one moof+mdat per frame.
type cmafMedia struct {
	init   []byte
	frames [][]byte
	codec  string
	fps    int
	gop    int
}

// makeMedia encodes seconds of ffmpeg's testsrc2 as H.264 CMAF, one fragment
// per frame, a keyframe every gop frames.
func makeMedia(t *testing.T, seconds int) *cmafMedia {
	t.Helper()
	RequirePeer(t, PeerFFmpeg)
	const fps, gop = 30, 30
	out := filepath.Join(t.TempDir(), "video.mp4")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x180:rate=%d", fps), "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-preset", "ultrafast",
		"-g", fmt.Sprint(gop), "-keyint_min", fmt.Sprint(gop), "-sc_threshold", "0", "-bf", "0",
		"-movflags", "cmaf+frag_every_frame+empty_moov+default_base_moof", "-f", "mp4", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	m := &cmafMedia{fps: fps, gop: gop}
	var moof []byte
	for i := 0; i+8 <= len(data); {
		size := int(binary.BigEndian.Uint32(data[i:]))
		if size < 8 || i+size > len(data) {
			t.Fatalf("bad box at %d", i)
		}
		box := data[i : i+size]
		switch string(data[i+4 : i+8]) {
		case "ftyp", "moov":
			m.init = append(m.init, box...)
		case "moof":
			moof = box
		case "mdat":
			m.frames = append(m.frames, append(append([]byte{}, moof...), box...))
		}
		i += size
	}
	for j := 0; j+8 < len(m.init); j++ {
		if string(m.init[j:j+4]) == "avcC" {
			m.codec = fmt.Sprintf("avc1.%02x%02x%02x", m.init[j+5], m.init[j+6], m.init[j+7])
			break
		}
	}
	if m.codec == "" || len(m.frames) < fps*seconds {
		t.Fatalf("unexpected ffmpeg output: codec %q, %d frames", m.codec, len(m.frames))
	}
	return m
}

// miniPublisher serves one broadcast (any name) with tracks catalog.json
// (hang) and video on UDP (WebTransport) and /certificate.sha256 on TCP, on
// the same 127.0.0.1 port. Video is sent in real time from the first frame
// at each subscription; after maxFrames frames (0 = all) it stops.
type miniPublisher struct {
	media     *cmafMedia
	maxFrames int
	log       *slog.Logger
	url       string
}

func startMiniPublisher(t *testing.T, media *cmafMedia, maxFrames int) *miniPublisher {
	t.Helper()
	log := slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cm, err := certs.New(certs.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	udp, tcp := listenPair(t)
	p := &miniPublisher{media: media, maxFrames: maxFrames, log: log,
		url: fmt.Sprintf("http://%s/", tcp.Addr())}

	mux := http.NewServeMux()
	mux.Handle("/certificate.sha256", cm.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// @moq/watch's WebSocket fallback lands here; refuse it.
		log.Debug("tcp request", "method", r.Method, "url", r.URL.String(), "upgrade", r.Header.Get("Upgrade"))
		http.NotFound(w, r)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(tcp) }()

	h3 := &http3.Server{
		TLSConfig:  http3.ConfigureTLSConfig(cm.TLSConfig()),
		QUICConfig: &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
	}
	webtransport.ConfigureHTTP3Server(h3)
	wt := &webtransport.Server{H3: h3, CheckOrigin: func(*http.Request) bool { return true }}
	h3mux := http.NewServeMux()
	h3mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		log.Debug("webtransport request", "url", r.URL.String(), "protocols", r.Header.Values("WT-Available-Protocols"))
		sess, err := wt.Upgrade(w, r)
		if err != nil {
			log.Error("upgrade", "err", err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		go func() {
			if err := p.session(sess); err != nil && sess.Context().Err() == nil {
				log.Warn("session ended", "err", err)
			}
		}()
	})
	h3.Handler = h3mux
	go func() { _ = wt.Serve(udp) }()
	t.Cleanup(func() {
		_ = wt.Close()
		_ = hs.Close()
		_ = udp.Close()
	})
	return p
}

// listenPair opens UDP and TCP listeners on the same free 127.0.0.1 port.
func listenPair(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp
		}
		_ = udp.Close()
	}
	t.Fatal("no free port for both UDP and TCP")
	return nil, nil
}

// testWriter logs to t until the test's cleanup starts, so goroutines that
// outlive the test do not log into a finished test.
type testWriter struct {
	t      *testing.T
	mu     sync.Mutex
	closed bool
}

func newTestWriter(t *testing.T) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.closed = true
	})
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Draft-14 control messages: type (varint), length (16 bits), payload.
const (
	msgSubscribe               = 0x03
	msgSubscribeOK             = 0x04
	msgPublishNamespace        = 0x06
	msgSubscribeNamespace      = 0x11
	msgSubscribeNamespaceOK    = 0x12
	msgClientSetup             = 0x20
	msgServerSetup             = 0x21
	versionDraft14             = 0xff00000e
	setupParamMaxRequestID     = 0x02
	subgroupHeaderNoExtensions = 0x10 // subgroup ID 0, publisher priority present
)

type controlStream struct {
	r  *bufio.Reader
	mu sync.Mutex
	w  io.Writer
}

func (c *controlStream) read() (uint64, []byte, error) {
	typ, err := quicvarint.Read(c.r)
	if err != nil {
		return 0, nil, err
	}
	var n [2]byte
	if _, err := io.ReadFull(c.r, n[:]); err != nil {
		return 0, nil, err
	}
	p := make([]byte, binary.BigEndian.Uint16(n[:]))
	_, err = io.ReadFull(c.r, p)
	return typ, p, err
}

func (c *controlStream) write(typ uint64, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := quicvarint.Append(nil, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	_, err := c.w.Write(append(b, payload...))
	return err
}

// fields parses varints and length-prefixed strings from a payload.
type fields struct {
	b   []byte
	err error
}

func (f *fields) varint() uint64 {
	if f.err != nil {
		return 0
	}
	v, n, err := quicvarint.Parse(f.b)
	if err != nil {
		f.err = err
		return 0
	}
	f.b = f.b[n:]
	return v
}

func (f *fields) bytes() []byte {
	n := f.varint()
	if f.err != nil {
		return nil
	}
	if uint64(len(f.b)) < n {
		f.err = io.ErrUnexpectedEOF
		return nil
	}
	v := f.b[:n]
	f.b = f.b[n:]
	return v
}

func (f *fields) tuple() [][]byte {
	n := f.varint()
	var parts [][]byte
	for i := uint64(0); i < n && f.err == nil; i++ {
		parts = append(parts, f.bytes())
	}
	return parts
}

func appendTuple(b []byte, parts [][]byte) []byte {
	b = quicvarint.Append(b, uint64(len(parts)))
	for _, p := range parts {
		b = quicvarint.Append(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

func (p *miniPublisher) session(sess *webtransport.Session) error {
	ctx := sess.Context()
	st, err := sess.AcceptStream(ctx)
	if err != nil {
		return err
	}
	c := &controlStream{r: bufio.NewReader(st), w: st}
	typ, _, err := c.read()
	if err != nil {
		return err
	}
	if typ != msgClientSetup {
		return fmt.Errorf("first control message 0x%x, want CLIENT_SETUP", typ)
	}
	setup := quicvarint.Append(nil, versionDraft14)
	setup = quicvarint.Append(setup, 1) // one parameter
	setup = quicvarint.Append(setup, setupParamMaxRequestID)
	setup = quicvarint.Append(setup, 100)
	if err := c.write(msgServerSetup, setup); err != nil {
		return err
	}
	var alias uint64
	for {
		typ, payload, err := c.read()
		if err != nil {
			return err
		}
		f := &fields{b: payload}
		switch typ {
		case msgSubscribeNamespace:
			req := f.varint()
			prefix := f.tuple()
			if f.err != nil {
				return f.err
			}
			p.log.Debug("SUBSCRIBE_NAMESPACE", "request", req, "prefix", fmt.Sprintf("%q", prefix))
			if err := c.write(msgSubscribeNamespaceOK, quicvarint.Append(nil, req)); err != nil {
				return err
			}
			// Announce the broadcast: the namespace equal to the prefix.
			ann := quicvarint.Append(nil, 1) // server request IDs are odd
			ann = appendTuple(ann, prefix)
			ann = quicvarint.Append(ann, 0)
			if err := c.write(msgPublishNamespace, ann); err != nil {
				return err
			}
		case msgSubscribe:
			req := f.varint()
			ns := f.tuple()
			track := string(f.bytes())
			if f.err != nil {
				return f.err
			}
			alias++
			p.log.Debug("SUBSCRIBE", "request", req, "namespace", fmt.Sprintf("%q", ns), "track", track, "alias", alias)
			ok := quicvarint.Append(nil, req)
			ok = quicvarint.Append(ok, alias)
			ok = quicvarint.Append(ok, 0) // expires
			ok = append(ok, 2, 0)         // group order descending, content exists false
			ok = quicvarint.Append(ok, 0) // no parameters
			if err := c.write(msgSubscribeOK, ok); err != nil {
				return err
			}
			switch track {
			case "catalog.json":
				go p.sendCatalog(ctx, sess, alias)
			case "video":
				go p.sendVideo(ctx, sess, alias)
			}
		default:
			p.log.Debug("control message ignored", "type", fmt.Sprintf("0x%x", typ), "len", len(payload))
		}
	}
}

func openSubgroup(ctx context.Context, sess *webtransport.Session, alias, group uint64, priority byte) (*webtransport.SendStream, error) {
	st, err := sess.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	h := quicvarint.Append(nil, subgroupHeaderNoExtensions)
	h = quicvarint.Append(h, alias)
	h = quicvarint.Append(h, group)
	h = append(h, priority)
	if _, err := st.Write(h); err != nil {
		return nil, err
	}
	return st, nil
}

func writeObject(st *webtransport.SendStream, payload []byte) error {
	b := quicvarint.Append(nil, 0) // object ID delta
	b = quicvarint.Append(b, uint64(len(payload)))
	_, err := st.Write(append(b, payload...))
	return err
}

func (p *miniPublisher) sendCatalog(ctx context.Context, sess *webtransport.Session, alias uint64) {
	cat, _ := json.Marshal(map[string]any{
		"video": map[string]any{"renditions": map[string]any{"video": map[string]any{
			"codec":       p.media.codec,
			"container":   map[string]any{"kind": "cmaf", "init": base64.StdEncoding.EncodeToString(p.media.init)},
			"codedWidth":  320,
			"codedHeight": 180,
			"framerate":   p.media.fps,
		}}},
	})
	st, err := openSubgroup(ctx, sess, alias, 0, 100)
	if err == nil {
		err = writeObject(st, cat)
		_ = st.Close()
	}
	if err != nil && ctx.Err() == nil {
		p.log.Warn("catalog", "err", err)
	}
}

func (p *miniPublisher) sendVideo(ctx context.Context, sess *webtransport.Session, alias uint64) {
	frames := p.media.frames
	if p.maxFrames > 0 {
		frames = frames[:p.maxFrames]
	}
	start := time.Now()
	var st *webtransport.SendStream
	defer func() {
		if st != nil {
			_ = st.Close()
		}
	}()
	for i, frame := range frames {
		timer := time.NewTimer(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(p.media.fps))))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if i%p.media.gop == 0 {
			if st != nil {
				_ = st.Close() // FIN ends the group
			}
			var err error
			if st, err = openSubgroup(ctx, sess, alias, uint64(i/p.media.gop), 60); err != nil {
				p.log.Warn("video", "err", err)
				return
			}
		}
		if err := writeObject(st, frame); err != nil {
			p.log.Debug("video stopped", "err", err) // the subscriber went away
			return
		}
	}
}
