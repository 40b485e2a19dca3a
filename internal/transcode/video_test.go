package transcode

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/moqgate/moqgate/internal/browsertest"
	"github.com/moqgate/moqgate/media"
)

// bframeVideo encodes 4 s of 30 fps H.264 with B-frames and a key frame
// every 45 frames, and returns its track and frames (90 kHz, decode order).
func bframeVideo(t *testing.T) (media.TrackInfo, []media.Frame) {
	t.Helper()
	browsertest.RequirePeer(t, browsertest.PeerFFmpeg)
	out := filepath.Join(t.TempDir(), "v.ts")
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
		"testsrc2=size=320x180:rate=30", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2",
		"-g", "45", "-keyint_min", "45", "-sc_threshold", "0", "-f", "mpegts", out).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, b)
	}
	fh, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	r := &mpegts.Reader{R: fh}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	info := media.TrackInfo{Name: "video", Codec: media.H264, Timescale: 90000, Width: 320, Height: 180}
	var frames []media.Frame
	r.OnDataH264(r.Tracks()[0], func(pts, dts int64, au [][]byte) error {
		var nalus [][]byte
		for _, n := range au {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				info.SPS = [][]byte{n}
			case h264.NALUTypePPS:
				info.PPS = [][]byte{n}
			default:
				nalus = append(nalus, n)
			}
		}
		b, err := h264.AVCC(nalus).Marshal()
		if err != nil {
			return err
		}
		frames = append(frames, media.Frame{DTS: dts, CTO: pts - dts, Keyframe: h264.IsRandomAccess(au), Data: b})
		return nil
	})
	for r.Read() == nil {
	}
	if len(frames) < 100 || !slices.ContainsFunc(frames, func(f media.Frame) bool { return f.CTO != 0 }) {
		t.Fatalf("%d source frames, with B-frames: %v", len(frames), slices.ContainsFunc(frames, func(f media.Frame) bool { return f.CTO != 0 }))
	}
	return info, frames
}

func TestVideoRendition(t *testing.T) {
	info, frames := bframeVideo(t)
	var subs atomic.Int32
	subs.Store(1)
	reg := NewRegistry("ffmpeg", slog.New(slog.NewTextHandler(os.Stderr, nil)))
	reg.ConfigureVideo(VideoOptions{Max: 1, Linger: time.Second,
		Subscribers: func(path, name string) int {
			if path == "live/x" && name == VideoTrack {
				return int(subs.Load())
			}
			return 0
		}})
	if err := reg.availableVideo(); err != nil {
		t.Fatalf("video transcoding unavailable: %v", err)
	}
	rec := &recorder{}
	w := reg.Wrap("live/x", rec)
	if err := w.SetTracks([]media.TrackInfo{info}); err != nil {
		t.Fatal(err)
	}
	// The viewer's request waits for the first key frame: the publisher
	// writes meanwhile, from the transcoder's start.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	enabled := make(chan error, 1)
	go func() { enabled <- reg.EnableVideo(ctx, "live/x") }()
	for len(reg.Transcodes()) == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	go func() {
		for i, f := range frames {
			f.DTS += 10 * 90000
			w.WriteFrame("video", f)
			if i%10 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	if err := <-enabled; err != nil {
		t.Fatalf("EnableVideo: %v", err)
	}
	if l := reg.Transcodes(); len(l) != 1 || !l[0].Ready || l[0].SourceCodec != "h264" {
		t.Errorf("transcodes: %+v", l)
	}
	// The cap: a second broadcast's transcode is refused.
	w2 := reg.Wrap("live/y", &recorder{})
	w2.SetTracks([]media.TrackInfo{info})
	if err := reg.EnableVideo(ctx, "live/y"); !errors.Is(err, ErrBusy) {
		t.Errorf("second transcode over the cap: %v, want ErrBusy", err)
	}
	w2.Close()

	// All frames through: about as many out as in, key frames where the
	// source's are, no reordering.
	deadline := time.Now().Add(20 * time.Second)
	for rec.count(VideoTrack) < len(frames)-5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	rec.mu.Lock()
	out := slices.Clone(rec.frames[VideoTrack])
	sets := slices.Clone(rec.sets)
	rec.mu.Unlock()
	if len(out) < len(frames)-5 {
		t.Fatalf("%d transcoded frames of %d; first %d last %d", len(out), len(frames), out[0].DTS, out[len(out)-1].DTS)
	}
	var srcKeys, outKeys []int64
	for _, f := range frames {
		if f.Keyframe {
			srcKeys = append(srcKeys, (f.DTS+f.CTO+10*90000)/90) // ms
		}
	}
	for i, f := range out {
		if f.CTO != 0 || (i > 0 && f.DTS <= out[i-1].DTS) {
			t.Fatalf("frame %d: DTS %d CTO %d after DTS %d", i, f.DTS, f.CTO, out[max(i-1, 0)].DTS)
		}
		if f.Keyframe {
			outKeys = append(outKeys, f.DTS/90)
		}
	}
	if !slices.Equal(srcKeys, outKeys) {
		t.Errorf("key frames at %v ms, the source's at %v", outKeys, srcKeys)
	}
	last := sets[len(sets)-1]
	if len(last) != 2 || last[1].Name != VideoTrack || last[1].Codec != media.H264 || last[1].SPS[0][1] != 66 ||
		last[1].Width != 320 {
		t.Fatalf("tracks: %+v", last)
	}
	checkDecodes(t, last[1], out)

	// Nobody watches: the transcoder stops and the rendition leaves the
	// catalogs.
	subs.Store(0)
	deadline = time.Now().Add(15 * time.Second)
	for len(reg.Transcodes()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if l := reg.Transcodes(); len(l) != 0 {
		t.Fatalf("still running without viewers: %+v", l)
	}
	deadline = time.Now().Add(5 * time.Second) // its ffmpeg's CPU counts once it ended
	for reg.Stats().CPUSeconds[VideoTrack] == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if st := reg.Stats(); st.Started[VideoTrack] != 1 || st.Refused != 1 || st.Running[VideoTrack] != 0 ||
		st.CPUSeconds[VideoTrack] <= 0 {
		t.Errorf("stats %+v, want 1 started, 1 refused, none running, some CPU", st)
	}
	rec.mu.Lock()
	last = rec.sets[len(rec.sets)-1]
	rec.mu.Unlock()
	if len(last) != 1 || last[0].Name != "video" {
		t.Errorf("tracks after the stop: %+v", last)
	}
	w.Close()
}

// checkDecodes decodes frames with ffprobe: no errors, no B-frames.
func checkDecodes(t *testing.T, info media.TrackInfo, frames []media.Frame) {
	t.Helper()
	var annexB []byte
	for _, f := range frames {
		var au h264.AVCC
		if err := au.Unmarshal(f.Data); err != nil {
			t.Fatal(err)
		}
		if f.Keyframe {
			au = append([][]byte{info.SPS[0], info.PPS[0]}, au...)
		}
		b, _ := h264.AnnexB(au).Marshal()
		annexB = append(annexB, b...)
	}
	p := filepath.Join(t.TempDir(), "out.h264")
	if err := os.WriteFile(p, annexB, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v",
		"-show_entries", "stream=has_b_frames,nb_read_frames,profile", "-of", "default=nw=1", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v %s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "has_b_frames=0") || !strings.Contains(s, "profile=Constrained Baseline") ||
		strings.Contains(s, "rror") || strings.Contains(s, "nb_read_frames=0") {
		t.Errorf("ffprobe of the rendition: %s", s)
	}
}
