package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// firstDTS subscribes to a track through the relay and returns the DTS of
// its first frame.
func firstDTS(t *testing.T, ctx context.Context, r *moq.Relay, path string, info media.TrackInfo) int64 {
	t.Helper()
	tc, err := r.Local("test").SubscribeTrack(ctx, path, info.Name, moq.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	g, err := tc.Reader(false).NextGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o, err := g.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	init, err := media.InitSegment(info)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := media.NewChunkReader(init)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := cr.Frames(o.Payload, nil)
	if err != nil || len(fr) == 0 {
		t.Fatalf("frames %v, %v", fr, err)
	}
	return fr[0].DTS
}

// TestTracksKeepTheirOffsets: the tracks of a broadcast keep their offsets
// from the first frame written, including a track that starts later.
func TestTracksKeepTheirOffsets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := moq.NewRelay(moq.RelayConfig{})
	b, err := Start(ctx, LocalDialer(r, "test", nil), "live/offsets", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	audio := media.TrackInfo{Name: "audio", Codec: media.Opus, Timescale: 48000, SampleRate: 48000, Channels: 2}
	video := media.TrackInfo{Name: "video", Codec: media.VP8, Timescale: 90000, Width: 320, Height: 180}
	extra := media.TrackInfo{Name: "audio-2", Codec: media.Opus, Timescale: 48000, SampleRate: 48000, Channels: 2}
	if err := b.SetTracks([]media.TrackInfo{video, audio}); err != nil {
		t.Fatal(err)
	}
	// Audio first at 10 s, video 0.3 s later, an extra track 5 s later.
	if err := b.WriteFrame("audio", media.Frame{DTS: 480000, Keyframe: true, Data: []byte{0xfc}}); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFrame("video", media.Frame{DTS: 927000, Keyframe: true, Data: []byte{0x10, 2, 0}}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTracks([]media.TrackInfo{video, audio, extra}); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFrame("audio-2", media.Frame{DTS: 720000, Keyframe: true, Data: []byte{0xfc}}); err != nil {
		t.Fatal(err)
	}
	if got := firstDTS(t, ctx, r, "live/offsets", audio); got != 0 {
		t.Errorf("audio starts at %d, want 0", got)
	}
	if got := firstDTS(t, ctx, r, "live/offsets", video); got != 27000 {
		t.Errorf("video starts at %d, want 27000 (0.3 s after the audio)", got)
	}
	if got := firstDTS(t, ctx, r, "live/offsets", extra); got != 240000 {
		t.Errorf("the extra track starts at %d, want 240000 (5 s)", got)
	}
}

// TestContinuityAfterBFrames: a publisher cut mid-GOP leaves its timeline
// at the latest presentation time, not the last DTS, so that the next
// publisher's frames are shown after all of its frames.
func TestContinuityAfterBFrames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := moq.NewRelay(moq.RelayConfig{GracePeriod: time.Minute})
	c := NewContinuity(time.Minute)
	b, err := StartWith(ctx, LocalDialer(r, "test", nil), "live/cut", nil, Options{Continuity: c})
	if err != nil {
		t.Fatal(err)
	}
	video := media.TrackInfo{Name: "video", Codec: media.VP8, Timescale: 90000, Width: 320, Height: 180}
	if err := b.SetTracks([]media.TrackInfo{video}); err != nil {
		t.Fatal(err)
	}
	// Decode order I P B at 30 fps (3000 ticks): the P frame is shown
	// third (at 9000), the B frame second; the cut comes after the B frame.
	for _, f := range []media.Frame{
		{DTS: 0, CTO: 3000, Keyframe: true},
		{DTS: 3000, CTO: 6000},
		{DTS: 6000, CTO: 0},
	} {
		f.Data = []byte{0x10, 2, 0}
		if err := b.WriteFrame("video", f); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	// The P frame is shown at 9000 for 3000 ticks: the timeline ends at
	// 12000 (133 ms), not at the B frame's 9000.
	if got, want := c.Resume("live/cut"), 12000*time.Second/90000; got != want {
		t.Fatalf("next publisher starts at %s, want %s", got, want)
	}
}
