package transcode

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/media"
)

// recorder is a media.BroadcastWriter that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	sets   [][]media.TrackInfo
	frames map[string][]media.Frame
	closed bool
}

func (r *recorder) SetTracks(t []media.TrackInfo) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sets = append(r.sets, slices.Clone(t))
	return nil
}

func (r *recorder) WriteFrame(track string, f media.Frame) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frames == nil {
		r.frames = map[string][]media.Frame{}
	}
	r.frames[track] = append(r.frames[track], f)
	return nil
}

func (r *recorder) Close() error { r.mu.Lock(); r.closed = true; r.mu.Unlock(); return nil }

func (r *recorder) count(track string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames[track])
}

// aacFrames encodes a 44.1 kHz mono tone with ffmpeg and returns its AAC
// access units and AudioSpecificConfig.
func aacFrames(t *testing.T) ([][]byte, []byte) {
	t.Helper()
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	out := filepath.Join(t.TempDir(), "a.aac")
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
		"sine=frequency=440:sample_rate=44100", "-t", "3", "-ac", "1", "-c:a", "aac", "-f", "adts", out).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	var aus [][]byte
	for _, p := range pkts {
		aus = append(aus, p.AU)
	}
	asc, err := (&mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelConfig: 1}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return aus, asc
}

func TestOpusRendition(t *testing.T) {
	aus, asc := aacFrames(t)
	base := runtime.NumGoroutine()
	reg := NewRegistry("ffmpeg", nil)
	if err := reg.Available(); err != nil {
		t.Skipf("transcoding unavailable: %v", err)
	}
	rec := &recorder{}
	w := reg.Wrap("live/x", rec)
	video := media.TrackInfo{Name: "video", Codec: media.VP8, Timescale: 90000, Width: 320, Height: 180}
	aac := media.TrackInfo{Name: "audio", Codec: media.AAC, Timescale: 44100, SampleRate: 44100, Channels: 1, AACConfig: asc}
	if err := w.SetTracks([]media.TrackInfo{video, aac}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Enable("live/other"); err == nil {
		t.Error("Enable of an unknown broadcast succeeded")
	}
	name, err := reg.Enable("live/x")
	if err != nil || name != OpusTrack {
		t.Fatalf("Enable: %q, %v", name, err)
	}
	if _, err := reg.Enable("live/x"); err != nil { // idempotent
		t.Fatal(err)
	}
	if reg.Running() != 1 {
		t.Errorf("%d transcoders running", reg.Running())
	}
	rec.mu.Lock()
	last := rec.sets[len(rec.sets)-1]
	rec.mu.Unlock()
	if len(last) != 3 || last[2].Name != OpusTrack || last[2].Codec != media.Opus || last[2].Channels != 1 {
		t.Fatalf("tracks after Enable: %+v", last)
	}
	// 10 s into the broadcast; real-time pace is not needed.
	const start = 10 * 44100
	for i, au := range aus {
		if err := w.WriteFrame("audio", media.Frame{DTS: start + int64(i)*1024, Keyframe: true, Data: au}); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for rec.count(OpusTrack) < 100 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	rec.mu.Lock()
	opus := slices.Clone(rec.frames[OpusTrack])
	rec.mu.Unlock()
	if len(opus) < 100 {
		t.Fatalf("%d Opus frames", len(opus))
	}
	want := int64(10*48000 - 1024*48000/44100 - opusPreSkip)
	if d := opus[0].DTS - want; d < -960 || d > 960 {
		t.Errorf("first Opus DTS %d, want about %d", opus[0].DTS, want)
	}
	for i := 1; i < len(opus); i++ {
		if opus[i].DTS != opus[i-1].DTS+opus[i-1].Duration || opus[i].Duration != 960 {
			t.Fatalf("Opus frame %d: DTS %d after %d+%d", i, opus[i].DTS, opus[i-1].DTS, opus[i-1].Duration)
		}
	}
	// A publisher's track change keeps the rendition.
	if err := w.SetTracks([]media.TrackInfo{aac}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	last = rec.sets[len(rec.sets)-1]
	rec.mu.Unlock()
	if len(last) != 2 || last[1].Name != OpusTrack {
		t.Errorf("tracks after a change: %+v", last)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !rec.closed || reg.Running() != 0 {
		t.Error("not closed")
	}
	for i := 0; runtime.NumGoroutine() > base && i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Errorf("%d goroutines after Close, %d before", n, base)
	}
}

func TestOpusUnavailable(t *testing.T) {
	if err := NewRegistry("", nil).Available(); err == nil {
		t.Error("empty ffmpeg: available")
	}
	if err := NewRegistry("/nonexistent/ffmpeg", nil).Available(); err == nil {
		t.Error("missing ffmpeg: available")
	}
	reg := NewRegistry("", nil)
	rec := &recorder{}
	w := reg.Wrap("live/x", rec)
	if _, err := reg.Enable("live/x"); err == nil {
		t.Error("Enable without ffmpeg succeeded")
	}
	w.Close()
}
