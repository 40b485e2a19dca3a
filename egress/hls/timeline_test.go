package hls

import (
	"testing"
	"time"
)

func TestScale(t *testing.T) {
	for _, c := range []struct{ v, from, to, want int64 }{
		{3000, 90000, 90000, 3000},
		{33, 1000, 90000, 2970},
		{512, 15360, 90000, 3000},
		{90000 << 40, 90000, 48000, 48000 << 40}, // the big.Int path
		{-90, 90000, 1000, -1},
		{1, 3, 1, 0},
		{2, 3, 1, 1},
	} {
		if got := scale(c.v, c.from, c.to); got != c.want {
			t.Errorf("scale(%d, %d, %d) = %d, want %d", c.v, c.from, c.to, got, c.want)
		}
	}
}

// TestTimelineReconnect: a publisher restarts its clock; both tracks move
// into a new epoch that starts where the old one ended, in sync.
func TestTimelineReconnect(t *testing.T) {
	var tl timeline
	video := newTrackClock(1000, 90000)
	audio := newTrackClock(48000, 48000)
	const frame = 1024
	var vOut, aOut []int64
	// 2 s of 30 fps video (ms timestamps) and AAC frames.
	for i := int64(0); i < 60; i++ {
		v, _ := tl.place(video, 5000+i*1000/30, 0, 0)
		vOut = append(vOut, v)
	}
	for i := int64(0); i < 94; i++ {
		a, _ := tl.place(audio, 240000+i*frame, frame, frame)
		aOut = append(aOut, a)
	}
	if vOut[0] != 0 || aOut[0] != 0 {
		t.Fatalf("timeline should start at 0: video %d audio %d", vOut[0], aOut[0])
	}
	for i := 1; i < len(aOut); i++ {
		if aOut[i]-aOut[i-1] != frame {
			t.Fatalf("audio frame %d starts %d after the previous one", i, aOut[i]-aOut[i-1])
		}
	}
	// The publisher comes back with clocks at 0.
	v, _ := tl.place(video, 0, 0, 0)
	a, _ := tl.place(audio, 0, frame, frame)
	vEnd := time.Duration(vOut[len(vOut)-1]) * time.Second / 90000
	aEnd := time.Duration(aOut[len(aOut)-1]+frame) * time.Second / 48000
	vT := time.Duration(v) * time.Second / 90000
	aT := time.Duration(a) * time.Second / 48000
	if vT <= vEnd || aT < aEnd {
		t.Fatalf("new epoch overlaps the old one: video %s after %s, audio %s after %s", vT, vEnd, aT, aEnd)
	}
	if d := vT - aT; d < -30*time.Millisecond || d > 30*time.Millisecond {
		t.Errorf("video and audio restart %s apart", d)
	}
	if vT-vEnd > 100*time.Millisecond {
		t.Errorf("a gap of %s after the reconnect", vT-vEnd)
	}
	// A forward jump larger than maxForwardGap is closed up too.
	v2, _ := tl.place(video, 60000, 0, 0)
	if d := time.Duration(v2-v) * time.Second / 90000; d > 100*time.Millisecond {
		t.Errorf("forward jump of 60 s became %s", d)
	}
}

func TestFixedPartTarget(t *testing.T) {
	for _, c := range []struct{ first, part, want time.Duration }{
		{200 * time.Millisecond, 200 * time.Millisecond, 235 * time.Millisecond},
		{213340 * time.Microsecond, 200 * time.Millisecond, 235 * time.Millisecond},
		{241 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond},
		{333 * time.Millisecond, 333 * time.Millisecond, 391 * time.Millisecond},
	} {
		if got := fixedPartTarget(c.first, c.part); got != c.want {
			t.Errorf("fixedPartTarget(%s, %s) = %s, want %s", c.first, c.part, got, c.want)
		}
	}
}

func TestSplitPath(t *testing.T) {
	for _, c := range []struct {
		in, broadcast, file string
		ok                  bool
	}{
		{"/hls/live/test/index.m3u8", "live/test", "index.m3u8", true},
		{"/hls/a/b/c/x_video1_part3.mp4", "a/b/c", "x_video1_part3.mp4", true},
		{"/hls/index.m3u8", "", "", false},
		{"/hls/live/", "", "", false},
		{"/hls//x/index.m3u8", "", "", false},
		{"/hls/a/../b/index.m3u8", "", "", false},
		{"/other/a/index.m3u8", "", "", false},
	} {
		b, f, ok := splitPath(c.in)
		if b != c.broadcast || f != c.file || ok != c.ok {
			t.Errorf("splitPath(%q) = %q, %q, %v", c.in, b, f, ok)
		}
	}
}
