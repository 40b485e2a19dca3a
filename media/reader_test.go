package media

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/moqgate/moqgate/moq"
)

// producerSink writes a Packager's objects into a relay through a
// broadcast producer, leaving out the tracks in skip.
type producerSink struct {
	prod   *moq.BroadcastProducer
	skip   map[string]bool
	mu     sync.Mutex
	groups map[string]*moq.GroupProducer
	// decoded: attach the frames to the objects, as ingest does.
	decoded bool
}

func (s *producerSink) OpenGroup(track string) error {
	if s.skip[track] {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[track]; g != nil {
		g.Close()
	}
	g := s.prod.Track(track).NewGroup()
	if g == nil {
		return errors.New("track ended")
	}
	s.groups[track] = g
	return nil
}

func (s *producerSink) WriteObject(track string, payload []byte) error {
	if s.skip[track] {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[track].Write(payload)
}

func (s *producerSink) WriteDecodedObject(track string, payload []byte, frames []Frame) error {
	if !s.decoded || s.skip[track] {
		return s.WriteObject(track, payload)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[track].WriteDecoded(payload, frames)
}

func (s *producerSink) CloseGroup(track string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[track]; g != nil {
		g.Close()
		delete(s.groups, track)
	}
	return nil
}

// readerEnv is a real relay with one broadcast written by a Packager.
type readerEnv struct {
	t     *testing.T
	ctx   context.Context
	relay *moq.Relay
	prod  *moq.BroadcastProducer
	sink  *producerSink
	pkg   *Packager
}

const readerPath = "live/reader"

func newReaderEnv(t *testing.T, limits moq.TrackLimits, skip ...string) *readerEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	// Tracks the publisher does not write are refused, as a remote
	// publisher would.
	relay := moq.NewRelay(moq.RelayConfig{TrackLimits: limits,
		ProduceTrack: func(string, string) error { return errors.New("no such track") }})
	prod, err := relay.Local("test").Publish(ctx, readerPath)
	must(t, err)
	t.Cleanup(prod.Close)
	sink := &producerSink{prod: prod, skip: map[string]bool{}, groups: map[string]*moq.GroupProducer{}}
	for _, s := range skip {
		sink.skip[s] = true
	}
	for _, name := range []string{HangCatalogTrack, MSFCatalogTrack} {
		if !sink.skip[name] {
			prod.Track(name)
		}
	}
	pkg := NewPackager(sink, PackagerOptions{Logger: slog.New(slog.DiscardHandler)})
	return &readerEnv{t: t, ctx: ctx, relay: relay, prod: prod, sink: sink, pkg: pkg}
}

// setTracks makes the tracks, as ingest does, and publishes the catalogs.
func (e *readerEnv) setTracks(tracks ...TrackInfo) {
	e.t.Helper()
	for _, t := range tracks {
		e.prod.Track(t.Name)
	}
	must(e.t, e.pkg.SetTracks(tracks))
}

func (e *readerEnv) open() *BroadcastReader {
	e.t.Helper()
	br, err := OpenBroadcast(e.ctx, e.relay.Local("reader"), readerPath, BroadcastOptions{Logger: slog.New(slog.DiscardHandler)})
	must(e.t, err)
	e.t.Cleanup(br.Close)
	return br
}

// follow reads catalog versions in the background, as consumers do.
func follow(ctx context.Context, br *BroadcastReader) <-chan CatalogVersion {
	ch := make(chan CatalogVersion, 16)
	go func() {
		defer close(ch)
		for {
			v, err := br.NextCatalog(ctx)
			if err != nil {
				return
			}
			ch <- v
		}
	}()
	return ch
}

func (e *readerEnv) track(br *BroadcastReader, name string) *FrameReader {
	e.t.Helper()
	fr, err := br.Track(e.ctx, name, moq.SubscribeOptions{})
	must(e.t, err)
	e.t.Cleanup(fr.Close)
	return fr
}

func (e *readerEnv) next(fr *FrameReader) Chunk {
	e.t.Helper()
	c, err := fr.Next(e.ctx)
	if err != nil {
		e.t.Fatalf("%s: Next: %v", fr.Name(), err)
	}
	return c
}

func recv(t *testing.T, ch <-chan CatalogVersion) CatalogVersion {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatal("catalog ended")
		}
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no catalog version")
	}
	return CatalogVersion{}
}

func trackNames(ts []CatalogTrack) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func TestBroadcastReaderFrames(t *testing.T) {
	for _, tc := range []struct {
		name, catalog string
		skip          []string
		decoded       bool
	}{
		{"hang and MSF", HangCatalogTrack, nil, false},
		{"MSF only", MSFCatalogTrack, []string{HangCatalogTrack}, false},
		{"frames attached", HangCatalogTrack, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newReaderEnv(t, moq.TrackLimits{MaxGroups: 4, MaxBytes: 1 << 20}, tc.skip...)
			e.sink.decoded = tc.decoded
			e.setTracks(pkgVideo(), pkgAudio())
			br := e.open()
			if br.CatalogTrack() != tc.catalog {
				t.Fatalf("following %q, want %q", br.CatalogTrack(), tc.catalog)
			}
			cats := follow(e.ctx, br)
			v := recv(t, cats)
			if got := trackNames(v.CMAF()); len(got) != 2 || got[0] != "video" || got[1] != "audio" {
				t.Fatalf("catalog tracks %v", got)
			}
			video, audio := e.track(br, "video"), e.track(br, "audio")
			for i := range 3 {
				must(t, e.pkg.WriteFrame("video", vf(int64(i)*3000, i == 0)))
				must(t, e.pkg.WriteFrame("audio", af(int64(i)*960)))
			}
			for i := range 3 {
				c := e.next(video)
				if len(c.Frames) != 1 || c.Frames[0].DTS != int64(i)*3000 || c.Frames[0].Keyframe != (i == 0) ||
					c.GroupStart != (i == 0) || c.Discontinuity || c.InitChanged || c.Object != uint64(i) {
					t.Fatalf("video chunk %d: %+v", i, c)
				}
				if string(c.Frames[0].Data) != string(vf(0, false).Data) {
					t.Fatalf("video chunk %d: data %x", i, c.Frames[0].Data)
				}
				if a := e.next(audio); a.Frames[0].DTS != int64(i)*960 {
					t.Fatalf("audio chunk %d: %+v", i, a)
				}
			}
			if info := video.Info(); info.Codec != VP8 || info.Timescale != 90000 || info.Width != 320 {
				t.Errorf("video info %+v", info)
			}
			// The broadcast ends (no grace period): so do the readers.
			must(t, e.pkg.Close())
			e.prod.Close()
			if _, err := video.Next(e.ctx); !errors.Is(err, moq.ErrTrackEnded) {
				t.Errorf("video after the end: %v, want ErrTrackEnded", err)
			}
			if _, ok := <-cats; ok {
				t.Error("a catalog version after the end")
			}
		})
	}
}

// TestBroadcastReaderInitChange: the publisher changes the video's
// parameters; the reader switches init segments at the first group of the
// new catalog, never decoding it with the old one.
func TestBroadcastReaderInitChange(t *testing.T) {
	e := newReaderEnv(t, moq.TrackLimits{MaxGroups: 4, MaxBytes: 1 << 20})
	e.setTracks(pkgVideo(), pkgAudio())
	br := e.open()
	cats := follow(e.ctx, br)
	v1 := recv(t, cats)
	video := e.track(br, "video")
	must(t, e.pkg.WriteFrame("video", vf(0, true)))
	must(t, e.pkg.WriteFrame("video", vf(3000, false)))
	e.next(video)
	e.next(video)

	wide := pkgVideo()
	wide.Width, wide.Height = 640, 360
	e.setTracks(wide, pkgAudio())
	must(t, e.pkg.WriteFrame("video", vf(6000, true)))
	c := e.next(video)
	if !c.GroupStart || !c.InitChanged || c.Discontinuity || c.Frames[0].DTS != 6000 {
		t.Fatalf("first chunk after the change: %+v", c)
	}
	if w := video.Info().Width; w != 640 {
		t.Errorf("width %d after the change, want 640", w)
	}
	if v2 := recv(t, cats); v2.Group <= v1.Group || v2.CMAF()[0].Width != 640 {
		t.Errorf("catalog versions %d then %d (width %d)", v1.Group, v2.Group, v2.CMAF()[0].Width)
	}
	// Adding a rendition keeps the init of the others.
	extra := pkgAudio()
	extra.Name = "audio-opus"
	e.setTracks(wide, pkgAudio(), extra)
	recv(t, cats)
	must(t, e.pkg.WriteFrame("video", vf(9000, true)))
	if c := e.next(video); c.InitChanged || !c.GroupStart {
		t.Errorf("chunk after an added rendition: %+v", c)
	}
	// A track that left the catalog ends its reader.
	e.setTracks(pkgAudio())
	recv(t, cats)
	e.prod.Track("video").NewGroup().Write(vf(0, true).Data)
	if _, err := video.Next(e.ctx); !errors.Is(err, ErrNotInCatalog) {
		t.Errorf("removed track: %v, want ErrNotInCatalog", err)
	}
}

// TestBroadcastReaderDiscontinuities: groups the reader skipped or lost
// and unreadable objects are reported on the next chunk.
func TestBroadcastReaderDiscontinuities(t *testing.T) {
	e := newReaderEnv(t, moq.TrackLimits{MaxGroups: 1, MaxBytes: 1 << 20})
	e.setTracks(pkgVideo())
	br := e.open()
	follow(e.ctx, br)
	video := e.track(br, "video")
	must(t, e.pkg.WriteFrame("video", vf(0, true)))
	must(t, e.pkg.WriteFrame("video", vf(3000, false)))
	if c := e.next(video); c.Group != 0 || c.Discontinuity {
		t.Fatalf("first chunk %+v", c)
	}
	// Group 0 is evicted before the reader gets to its second object,
	// and group 1 is gone before the reader gets to it.
	for g := 1; g <= 2; g++ {
		must(t, e.pkg.WriteFrame("video", vf(int64(g)*6000, true)))
		must(t, e.pkg.WriteFrame("video", vf(int64(g)*6000+3000, false)))
	}
	c := e.next(video)
	if c.Group != 2 || !c.GroupStart || !c.Discontinuity || c.Frames[0].DTS != 12000 {
		t.Fatalf("chunk after lost groups: %+v", c)
	}
	if c := e.next(video); c.Discontinuity || c.GroupStart {
		t.Fatalf("next chunk %+v", c)
	}
	// An unreadable object: the rest of its group is skipped.
	g := e.prod.Track("video").NewGroup()
	must(t, g.Write([]byte("not a fragment")))
	must(t, g.Write(e.fragment(21000)))
	g.Close()
	must(t, e.pkg.WriteFrame("video", vf(24000, true)))
	c = e.next(video)
	if c.Group != 4 || !c.Discontinuity || c.Frames[0].DTS != 24000 {
		t.Fatalf("chunk after an unreadable object: %+v", c)
	}
}

// fragment is a valid object of the test video track.
func (e *readerEnv) fragment(dts int64) []byte {
	b, err := NewFragmentWriter(pkgVideo()).Fragment(vf(dts, false))
	must(e.t, err)
	return b
}

// TestBroadcastReaderAttachedFrames: an object written with its frames
// attached is read from them, not parsed: a payload no parser accepts
// still yields the frames (a remote subscriber would get the payload).
func TestBroadcastReaderAttachedFrames(t *testing.T) {
	e := newReaderEnv(t, moq.TrackLimits{MaxGroups: 4, MaxBytes: 1 << 20})
	e.setTracks(pkgVideo())
	br := e.open()
	recv(t, follow(e.ctx, br))
	video := e.track(br, "video")
	g := e.prod.Track("video").NewGroup()
	want := vf(3000, true)
	want.Duration = 3000
	must(t, g.WriteDecoded([]byte("not a chunk"), []Frame{want}))
	c := e.next(video)
	if len(c.Frames) != 1 || c.Frames[0].DTS != want.DTS || c.Frames[0].Duration != want.Duration ||
		!c.Frames[0].Keyframe || string(c.Frames[0].Data) != string(want.Data) {
		t.Fatalf("chunk %+v, want the attached frame %+v", c, want)
	}
}
