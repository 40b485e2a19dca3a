package hls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// lowLatencyGaps is how many EXT-X-GAP segments gohlslib puts in front of
// a new low-latency playlist (iOS wants a full-length playlist at once).
const lowLatencyGaps = 7

// genTrack is one MoQ track muxed by a generation.
type genTrack struct {
	name  string
	track *gohlslib.Track
	codec *codecAdapter
}

// generation is one gohlslib Muxer of a stream. A stream needs a new one
// whenever the decoder configuration of a track changes (an HLS rendition
// has one init segment); the playlists then continue across generations
// with a discontinuity (see stream.renderMedia).
type generation struct {
	id     int
	muxer  *gohlslib.Muxer
	tracks map[string]*genTrack
	keys   map[string]string // codecKey of each track, what the muxer was built for

	ready chan struct{} // closed once the muxer has its first segment

	// Set before ready is closed, constant afterwards.
	prefix     string   // gohlslib's per-muxer file name prefix
	streamIDs  []string // media playlists: "video1", "audio2", ...
	partTarget time.Duration
	targetDur  int

	// Set by the stream when the generation starts serving.
	seqBase int64 // global media sequence number = gohlslib's + seqBase
	disc    int   // discontinuity sequence number of its segments

	wmu    sync.Mutex // gohlslib's Write* methods are not safe for concurrent use
	closed bool
	full   bool // gohlslib refused a sample: segment size limit
}

// newGeneration starts a gohlslib muxer for tracks (video first).
func newGeneration(id int, tracks []*genTrack, keys map[string]string, cfg *Config, log *slog.Logger) (*generation, error) {
	g := &generation{id: id, tracks: map[string]*genTrack{}, keys: keys, ready: make(chan struct{})}
	m := &gohlslib.Muxer{
		Variant:            gohlslib.MuxerVariantLowLatency,
		SegmentCount:       cfg.SegmentCount,
		SegmentMinDuration: cfg.SegmentMinDuration,
		PartMinDuration:    cfg.PartDuration,
		SegmentMaxSize:     uint64(cfg.SegmentMaxSize),
		OnEncodeError: func(err error) {
			log.Debug("hls: muxer", "err", err)
		},
	}
	for _, t := range tracks {
		m.Tracks = append(m.Tracks, t.track)
		g.tracks[t.name] = t
	}
	if err := m.Start(); err != nil {
		return nil, fmt.Errorf("hls: start muxer: %w", err)
	}
	g.muxer = m
	return g, nil
}

// write feeds one sample of track name; samples of tracks the generation
// does not mux are ignored.
func (g *generation) write(name string, s sample) error {
	t := g.tracks[name]
	if t == nil {
		return nil
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.closed {
		return nil
	}
	err := t.codec.write(g.muxer, t.track, s)
	if err != nil {
		if strings.Contains(err.Error(), "maximum segment size") {
			// gohlslib never cuts the segment after refusing a sample: the
			// muxer is stuck and must be replaced.
			g.full = true
		}
		return err
	}
	return nil
}

// stuck reports whether the muxer can take no more samples.
func (g *generation) stuck() bool {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	return g.full
}

func (g *generation) close() {
	g.wmu.Lock()
	already := g.closed
	g.closed = true
	g.wmu.Unlock()
	if !already {
		// Releases every handler blocked in the muxer (they answer 500).
		g.muxer.Close()
	}
}

// get runs a GET for file (with query) through the muxer, waiting at most
// until ctx ends or stop is closed; ok is false when it gave up. The
// handler may go on blocking after that; it writes to its own buffer and
// ends when the muxer produces what it waits for or closes.
func (g *generation) get(ctx context.Context, stop <-chan struct{}, file, rawQuery string) (*bufferedResponse, bool) {
	u := "/" + file
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req := httptest.NewRequest(http.MethodGet, u, nil)
	resp := newBufferedResponse()
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.muxer.Handle(resp, req)
	}()
	select {
	case <-done:
		return resp, true
	case <-ctx.Done():
	case <-stop:
	}
	return nil, false
}

// probe waits until the muxer has a first segment, reads what the
// generation's playlists look like, and closes ready. It returns when the
// muxer is ready or closed.
func (g *generation) probe(ctx context.Context) error {
	resp, ok := g.get(ctx, nil, "index.m3u8", "")
	if !ok {
		return ctx.Err()
	}
	if resp.code() != http.StatusOK {
		return fmt.Errorf("hls: multivariant playlist: status %d", resp.code())
	}
	pl, err := playlist.Unmarshal(resp.body.Bytes())
	if err != nil {
		return fmt.Errorf("hls: multivariant playlist: %w", err)
	}
	mv, ok2 := pl.(*playlist.Multivariant)
	if !ok2 || len(mv.Variants) == 0 {
		return errors.New("hls: multivariant playlist without a variant")
	}
	ids := []string{strings.TrimSuffix(mv.Variants[0].URI, "_stream.m3u8")}
	for _, r := range mv.Renditions {
		if r.URI != nil {
			ids = append(ids, strings.TrimSuffix(*r.URI, "_stream.m3u8"))
		}
	}
	resp, ok = g.get(ctx, nil, ids[0]+"_stream.m3u8", "")
	if !ok {
		return ctx.Err()
	}
	if resp.code() != http.StatusOK {
		return fmt.Errorf("hls: media playlist: status %d", resp.code())
	}
	var mp playlist.Media
	if err := mp.Unmarshal(resp.body.Bytes()); err != nil {
		return fmt.Errorf("hls: media playlist: %w", err)
	}
	if mp.Map == nil || mp.PartInf == nil {
		return errors.New("hls: media playlist without EXT-X-MAP or EXT-X-PART-INF")
	}
	prefix, _, found := strings.Cut(mp.Map.URI, "_")
	if !found {
		return fmt.Errorf("hls: unexpected init segment name %q", mp.Map.URI)
	}
	g.prefix, g.streamIDs = prefix, ids
	g.partTarget, g.targetDur = mp.PartInf.PartTarget, mp.TargetDuration
	close(g.ready)
	return nil
}

// trackKinds summarises the muxed tracks for logs.
func (g *generation) trackKinds() []string {
	var out []string
	for name, t := range g.tracks {
		out = append(out, name+":"+string(t.codec.codec))
	}
	return out
}
