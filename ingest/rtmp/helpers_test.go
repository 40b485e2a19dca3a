package rtmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/moqgate/moqgate/media"
)

// ---------------------------------------------------------------------------
// A recording BroadcastWriter.

type recorder struct {
	mu        sync.Mutex
	setTracks [][]media.TrackInfo
	frames    map[string][]media.Frame
	err       error // first contract violation
	closed    chan struct{}
	closeOnce sync.Once
}

func newRecorder() *recorder {
	return &recorder{frames: map[string][]media.Frame{}, closed: make(chan struct{})}
}

func (r *recorder) fail(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if r.err == nil {
		r.err = err
	}
	return err
}

func (r *recorder) SetTracks(tracks []media.TrackInfo) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.closed:
		return r.fail("SetTracks after Close")
	default:
	}
	if len(tracks) == 0 {
		return r.fail("SetTracks with no track")
	}
	r.setTracks = append(r.setTracks, tracks)
	return nil
}

func (r *recorder) WriteFrame(track string, f media.Frame) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.setTracks) == 0 {
		return r.fail("WriteFrame before SetTracks")
	}
	found := false
	for _, t := range r.setTracks[len(r.setTracks)-1] {
		found = found || t.Name == track
	}
	if !found {
		return r.fail("WriteFrame on unannounced track %q", track)
	}
	if len(f.Data) == 0 {
		return r.fail("empty frame on %q", track)
	}
	r.frames[track] = append(r.frames[track], f)
	return nil
}

func (r *recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.closed:
		return r.fail("Close called twice")
	default:
	}
	close(r.closed)
	return nil
}

func (r *recorder) waitClosed(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-r.closed:
	case <-time.After(d):
		t.Fatalf("BroadcastWriter not closed within %v", d)
	}
}

// snapshot returns the recorded calls; it fails t on a contract violation.
func (r *recorder) snapshot(t *testing.T) ([][]media.TrackInfo, map[string][]media.Frame) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		t.Fatalf("BroadcastWriter contract: %v", r.err)
	}
	frames := map[string][]media.Frame{}
	for k, v := range r.frames {
		frames[k] = append([]media.Frame(nil), v...)
	}
	return append([][]media.TrackInfo(nil), r.setTracks...), frames
}

func (r *recorder) count(track string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames[track])
}

func lastTrack(t *testing.T, sets [][]media.TrackInfo, name string) media.TrackInfo {
	t.Helper()
	if len(sets) == 0 {
		t.Fatal("SetTracks never called")
	}
	for _, ti := range sets[len(sets)-1] {
		if ti.Name == name {
			return ti
		}
	}
	t.Fatalf("no track %q in %+v", name, sets[len(sets)-1])
	return media.TrackInfo{}
}

// ---------------------------------------------------------------------------
// Logs.

// logBuf collects log output (and mirrors it to t.Log when -v).
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t   *testing.T
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if testing.Verbose() {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func slogTo(l *logBuf) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// amfMeta is an onMetaData object announcing codec ids (0: no such track).
func amfMeta(video, audio float64) amf0.Object {
	return amf0.Object{{Key: "videocodecid", Value: video}, {Key: "audiocodecid", Value: audio}}
}

// waitLog waits until the log contains s.
func (l *logBuf) waitLog(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log does not contain %q:\n%s", s, l.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Server.

type testServer struct {
	addr string
	logs *logBuf
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	logs := &logBuf{t: t}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := NewServer(cfg)
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
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return &testServer{addr: ln.Addr().String(), logs: logs}
}

// ---------------------------------------------------------------------------
// External tools.

// requireTool returns the path of an external program, skipping the test
// when it is missing (failing it when CI=true).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (apt-get install -y ffmpeg): %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// ffmpegOut runs ffmpeg with args writing to a file named out in a temp dir
// and returns the file's content.
func ffmpegOut(t *testing.T, out string, args ...string) []byte {
	t.Helper()
	ff := requireTool(t, "ffmpeg")
	p := filepath.Join(t.TempDir(), out)
	args = append([]string{"-hide_banner", "-loglevel", "error", "-y"}, append(args, p)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, ff, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---------------------------------------------------------------------------
// Elementary stream framing.

// hevcAccessUnits splits an H.265 Annex-B stream into access units.
func hevcAccessUnits(t *testing.T, b []byte) [][][]byte {
	t.Helper()
	nalus := splitAnnexB(b)
	if len(nalus) == 0 {
		t.Fatal("no NAL unit")
	}
	var aus [][][]byte
	var cur [][]byte
	hasVCL := false
	for _, n := range nalus {
		typ := (n[0] >> 1) & 0x3f
		newAU := false
		switch {
		case typ < 32: // VCL
			firstSlice := len(n) > 2 && n[2]&0x80 != 0
			newAU = hasVCL && firstSlice
		case typ >= 32 && typ <= 35 || typ == 39: // VPS SPS PPS AUD prefix-SEI
			newAU = hasVCL
		}
		if newAU {
			aus = append(aus, cur)
			cur, hasVCL = nil, false
		}
		cur = append(cur, n)
		hasVCL = hasVCL || typ < 32
	}
	if len(cur) > 0 {
		aus = append(aus, cur)
	}
	return aus
}

// splitAnnexB splits a byte stream at its start codes.
func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				out = append(out, bytes.TrimRight(b[start:i], "\x00"))
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

// oggPackets returns the packets of the (single) logical stream of an Ogg file.
func oggPackets(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var pkts [][]byte
	var cur []byte
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			t.Fatal("bad Ogg page")
		}
		nseg := int(b[26])
		segs := b[27 : 27+nseg]
		data := b[27+nseg:]
		for _, s := range segs {
			cur = append(cur, data[:s]...)
			data = data[s:]
			if s < 255 {
				pkts = append(pkts, cur)
				cur = nil
			}
		}
		b = data
	}
	return pkts
}

// ivfFrames returns the frames of an IVF file.
func ivfFrames(t *testing.T, b []byte) [][]byte {
	t.Helper()
	if len(b) < 32 || string(b[:4]) != "DKIF" {
		t.Fatal("bad IVF header")
	}
	hl := int(binary.LittleEndian.Uint16(b[6:]))
	b = b[hl:]
	var out [][]byte
	for len(b) >= 12 {
		n := int(binary.LittleEndian.Uint32(b))
		out = append(out, b[12:12+n])
		b = b[12+n:]
	}
	return out
}

// ---------------------------------------------------------------------------
// RTMP messages without a network: gortmplib's Writer writes typed messages
// to a capturing Conn; they are then encoded with message.Writer and
// decoded back into raw messages, which is what the session feeds the
// demuxer.

type captureConn struct {
	buf bytes.Buffer
	w   *message.Writer
}

func newCaptureConn() *captureConn {
	c := &captureConn{}
	bw := bytecounter.NewWriter(&c.buf)
	c.w = message.NewWriter(bw, bw, false)
	return c
}

func (c *captureConn) BytesReceived() uint64           { return 0 }
func (c *captureConn) BytesSent() uint64               { return 0 }
func (c *captureConn) Read() (message.Message, error)  { return nil, errors.New("write only") }
func (c *captureConn) Write(msg message.Message) error { return c.w.Write(msg) }

// rawMessages decodes what was written so far.
func (c *captureConn) rawMessages(t *testing.T) []*rawmessage.Message {
	t.Helper()
	br := bytecounter.NewReader(bytes.NewReader(c.buf.Bytes()))
	r := rawmessage.NewReader(br, br, func(uint32) error { return nil })
	var out []*rawmessage.Message
	for {
		m, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == msgTypeSetChunkSize {
			if err := r.SetChunkSize(u32(m.Body)); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, m)
	}
}

// avccOf encodes NAL units with 4-byte lengths, leaving out parameter sets
// and AUDs: what the server must produce for H.264/H.265.
func avccOf(isH264 bool, nalus [][]byte) []byte {
	var out []byte
	for _, n := range nalus {
		if isParamSetOrAUD(isH264, n[0]) {
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(n)))
		out = append(out, n...)
	}
	return out
}
