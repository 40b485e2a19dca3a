package hls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// Subscriber priorities of the muxer's subscriptions: the catalog first,
// then audio, then video (lower is more urgent).
const (
	priorityCatalog = 0
	priorityAudio   = 64
	priorityVideo   = 128
)

// trackDesc is a media track of the current catalog that HLS can carry.
type trackDesc struct {
	name string
	info media.TrackInfo
	key  string
}

// stream is the LL-HLS muxing of one broadcast: it reads the broadcast
// from the relay's media model (media.BroadcastReader, the same API over a
// remote session) and feeds muxer generations.
type stream struct {
	srv      *Server
	path     string
	ns       moq.Namespace
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	alwaysOn bool

	started  chan struct{} // closed when start finished; startErr is then set
	startErr error
	done     chan struct{} // closed when the stream has stopped

	lastUse  atomic.Int64 // unix nanoseconds of the last request
	inflight atomic.Int32 // requests being served

	tl timeline

	br *media.BroadcastReader

	mu         sync.Mutex
	catSeen    bool          // a catalog was applied
	catChanged chan struct{} // closed and replaced when a catalog is applied
	descs      map[string]*trackDesc
	loops      map[string]context.CancelFunc
	genSeq     int
	cur        *generation // serving
	next       *generation // being built: not ready yet, gets the samples
	old        []*generation
	oldUntil   time.Time                     // when old and history may go
	history    map[string]map[int64]*histSeg // by media playlist ID, then sequence number
	playlists  map[string]bool               // media playlist IDs any generation has served
	histVer    int                           // changes with history and partTarget
	rendered   map[string][]byte             // renderMedia's cache
	changed    chan struct{}                 // closed and replaced when cur changes
	partTarget time.Duration                 // fixed with the first generation
	targetDur  int
	loggedOut  map[string]bool // tracks logged as left out
	writeLog   time.Time       // last write-error log (rate limit)
}

func newStream(srv *Server, path string, alwaysOn bool) *stream {
	ctx, cancel := context.WithCancel(srv.ctx)
	st := &stream{
		srv: srv, path: path, ns: moq.ParsePath(path), alwaysOn: alwaysOn,
		log: srv.log.With("broadcast", path), ctx: ctx, cancel: cancel,
		started: make(chan struct{}), done: make(chan struct{}),
		catChanged: make(chan struct{}), changed: make(chan struct{}),
		loops: map[string]context.CancelFunc{}, loggedOut: map[string]bool{}, rendered: map[string][]byte{},
		playlists: map[string]bool{},
	}
	st.touch()
	return st
}

func (st *stream) touch() { st.lastUse.Store(time.Now().UnixNano()) }

// idleFor is how long the stream has had no request.
func (st *stream) idleFor(now time.Time) time.Duration {
	if st.inflight.Load() > 0 {
		return 0
	}
	return now.Sub(time.Unix(0, st.lastUse.Load()))
}

// run starts the stream and muxes until the broadcast ends or the stream
// is stopped.
func (st *stream) run() {
	defer close(st.done)
	defer st.shutdown()
	err := st.start()
	st.startErr = err
	close(st.started)
	if err != nil {
		st.log.Debug("hls: cannot mux broadcast", "err", err)
		return
	}
	st.log.Info("hls: muxer started", "always_on", st.alwaysOn)
	st.catalogLoop()
}

// start subscribes to the broadcast's catalog through the relay's media
// model (in memory).
func (st *stream) start() error {
	var err error
	st.br, err = media.OpenBroadcast(st.ctx, st.srv.cfg.Relay.Local("hls"), st.path,
		media.BroadcastOptions{Subscribe: moq.SubscribeOptions{Priority: priorityCatalog}, Logger: st.log})
	var re *moq.RequestError
	if errors.As(err, &re) {
		return fmt.Errorf("%w: %s", errNoBroadcast, re.Reason)
	}
	return err
}

// shutdown stops everything the stream started.
func (st *stream) shutdown() {
	st.cancel()
	st.mu.Lock()
	gens := append(slices.Clone(st.old), st.cur, st.next)
	st.cur, st.next, st.old, st.history = nil, nil, nil, nil
	close(st.changed)
	st.changed = make(chan struct{})
	st.mu.Unlock()
	for _, g := range gens {
		if g != nil {
			g.close()
		}
	}
	if st.br != nil {
		st.br.Close()
	}
	if st.startErr == nil {
		st.log.Info("hls: muxer stopped")
	}
}

// catalogLoop applies every catalog the broadcast publishes.
func (st *stream) catalogLoop() {
	for {
		v, err := st.br.NextCatalog(st.ctx)
		if err != nil {
			if errors.Is(err, moq.ErrTrackEnded) {
				st.log.Info("hls: broadcast ended")
			}
			return
		}
		st.apply(v.Tracks)
	}
}

// leaveOut logs, once per track and reason, that a track is not muxed.
func (st *stream) leaveOut(name, codec, reason string) {
	k := name + "|" + codec + "|" + reason
	if st.loggedOut[k] {
		return
	}
	st.loggedOut[k] = true
	st.log.Warn("hls: track left out", "track", name, "codec", codec, "reason", reason)
}

// apply takes a new catalog: it chooses the tracks HLS can carry, follows
// their subscriptions, and starts a new muxer generation when the decoder
// configuration of the muxed tracks changed.
func (st *stream) apply(tracks []media.CatalogTrack) {
	st.mu.Lock()
	defer st.mu.Unlock()
	descs := map[string]*trackDesc{}
	var order []*trackDesc
	haveVideo := false
	for _, kind := range []media.Kind{media.Video, media.Audio} {
		for _, t := range tracks {
			if t.Kind != kind {
				continue
			}
			if !strings.EqualFold(t.Packaging, "cmaf") || len(t.Init) == 0 {
				st.leaveOut(t.Name, t.Codec, "not CMAF with an init segment (packaging "+t.Packaging+")")
				continue
			}
			info, err := media.ParseInit(t.Init)
			if err != nil {
				st.leaveOut(t.Name, t.Codec, "init segment: "+err.Error())
				continue
			}
			if _, _, err := newCodecAdapter(info); err != nil {
				st.leaveOut(t.Name, t.Codec, err.Error())
				continue
			}
			if kind == media.Video && haveVideo {
				st.leaveOut(t.Name, t.Codec, "an HLS variant here carries one video track")
				continue
			}
			haveVideo = haveVideo || kind == media.Video
			d := &trackDesc{name: t.Name, info: info, key: codecKey(info)}
			descs[t.Name] = d
			order = append(order, d)
		}
	}
	st.descs = descs
	for name, cancel := range st.loops {
		if descs[name] == nil {
			cancel()
			delete(st.loops, name)
		}
	}
	for _, d := range order {
		if st.loops[d.name] == nil {
			ctx, cancel := context.WithCancel(st.ctx)
			st.loops[d.name] = cancel
			go st.trackLoop(ctx, d.name, d.info.Codec.Kind())
		}
	}
	st.catSeen = true
	close(st.catChanged)
	st.catChanged = make(chan struct{})
	if len(order) == 0 {
		st.log.Warn("hls: no track of the broadcast can be carried by HLS")
		return
	}
	if g := st.writeGenLocked(); g != nil && sameKeys(g.keys, descs) {
		return
	}
	st.newGenerationLocked(order, "catalog")
}

func sameKeys(keys map[string]string, descs map[string]*trackDesc) bool {
	if len(keys) != len(descs) {
		return false
	}
	for name, d := range descs {
		if keys[name] != d.key {
			return false
		}
	}
	return true
}

// writeGenLocked is the generation samples go to: the one being built, else
// the serving one.
func (st *stream) writeGenLocked() *generation {
	if st.next != nil {
		return st.next
	}
	return st.cur
}

// newGenerationLocked starts a muxer for the tracks in order (video first)
// that replaces the current one once it has a first segment.
func (st *stream) newGenerationLocked(order []*trackDesc, why string) {
	var tracks []*genTrack
	keys := map[string]string{}
	for _, d := range order {
		t, a, err := newCodecAdapter(d.info)
		if err != nil {
			continue // checked in apply
		}
		if !a.isVideo() {
			t.Name = d.name // the NAME of the audio rendition
		}
		tracks = append(tracks, &genTrack{name: d.name, track: t, codec: a})
		keys[d.name] = d.key
	}
	st.genSeq++
	log := st.log.With("generation", st.genSeq)
	g, err := newGeneration(st.genSeq, tracks, keys, &st.srv.cfg, log)
	if err != nil {
		st.log.Error("hls: cannot start muxer", "err", err)
		return
	}
	if st.next != nil {
		st.next.close() // superseded before it ever served
	}
	st.next = g
	log.Info("hls: new muxer generation", "reason", why, "tracks", g.trackKinds())
	go func() {
		if err := g.probe(st.ctx); err != nil {
			if st.ctx.Err() == nil {
				log.Debug("hls: muxer generation never became ready", "err", err)
			}
			return
		}
		st.promote(g)
	}()
}

// histSeg is a segment of an earlier generation still in the playlist
// window of a later one.
type histSeg struct {
	seg  *playlistSegment
	disc int
	init string
}

// promote makes g, which now has a first segment, the serving generation.
// The earlier one stops getting samples when g is created; its segments
// stay listed (and served) until they slide out of the window, followed by
// a discontinuity and g's segments, so that players keep going.
func (st *stream) promote(g *generation) {
	st.mu.Lock()
	old := st.cur
	st.mu.Unlock()
	var frozen map[string]*mediaSnapshot
	if old != nil {
		frozen = old.snapshot(st.ctx)
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	if st.next != g || st.cur != old {
		return // superseded meanwhile
	}
	if st.partTarget == 0 {
		st.partTarget = fixedPartTarget(g.partTarget, st.srv.cfg.PartDuration)
	} else if g.partTarget > st.partTarget {
		// Rare (a frame rate far below the old one); players we know cope,
		// changing PART-TARGET would not.
		st.log.Warn("hls: parts of the new muxer are longer than PART-TARGET, which stays unchanged",
			"part_target", st.partTarget, "parts", g.partTarget)
	}
	st.targetDur = max(st.targetDur, g.targetDur)
	st.histVer++
	if old != nil {
		st.freezeLocked(old, g, frozen)
	}
	st.cur, st.next = g, nil
	for _, id := range g.streamIDs {
		st.playlists[id] = true
	}
	close(st.changed)
	st.changed = make(chan struct{})
	st.log.Info("hls: muxer generation serving", "generation", g.id, "media_sequence_base", g.seqBase,
		"discontinuity", g.disc, "part_target", st.partTarget)
}

// freezeLocked records old's segments as history for g's playlists and
// numbers g after them: g's first segment follows old's unfinished one,
// which is listed as a gap.
func (st *stream) freezeLocked(old, g *generation, frozen map[string]*mediaSnapshot) {
	var next int64 = -1 // old's unfinished segment, global number
	hist := map[string]map[int64]*histSeg{}
	for id, snap := range frozen {
		h := map[int64]*histSeg{}
		for msn, e := range st.history[id] {
			h[msn] = e
		}
		first := int64(snap.pl.MediaSequence) + old.seqBase
		for i, seg := range snap.pl.Segments {
			msn := first + int64(i)
			if seg.Gap && (h[msn] != nil || msn < old.seqBase+lowLatencyGaps) {
				// Already history of an earlier generation, or one of the
				// gaps gohlslib starts with, which playlists leave out.
				continue
			}
			h[msn] = &histSeg{seg: seg, disc: old.disc, init: old.initURI(id)}
		}
		unfinished := first + int64(len(snap.pl.Segments))
		var d time.Duration
		for _, p := range snap.pl.Parts {
			d += p.Duration
		}
		h[unfinished] = &histSeg{seg: &playlistSegment{Gap: true, Duration: max(d, time.Millisecond), URI: "gap.mp4"},
			disc: old.disc, init: old.initURI(id)}
		next = max(next, unfinished)
		hist[id] = h
	}
	if next < 0 {
		next = old.seqBase + lowLatencyGaps
	}
	g.seqBase = next + 1 - lowLatencyGaps
	g.disc = old.disc + 1
	for id, h := range hist {
		for msn := range h {
			if msn < g.seqBase {
				delete(h, msn) // before g's window
			}
		}
		hist[id] = h
	}
	st.history = hist
	st.old = append(st.old, old)
	// g's gaps leave the window after SegmentCount of its segments.
	st.oldUntil = time.Now().Add(time.Duration(st.srv.cfg.SegmentCount+2)*time.Duration(max(st.targetDur, 1))*time.Second +
		5*time.Second)
}

// expireOld closes the generations whose segments left every window.
func (st *stream) expireOld(now time.Time) {
	st.mu.Lock()
	if len(st.old) == 0 || now.Before(st.oldUntil) {
		st.mu.Unlock()
		return
	}
	old := st.old
	st.old, st.history = nil, nil
	st.histVer++
	st.mu.Unlock()
	for _, g := range old {
		g.close()
	}
}

// stuckCheck replaces a generation that gohlslib stopped taking samples into.
func (st *stream) stuckCheck(g *generation) {
	if !g.stuck() {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.writeGenLocked() != g {
		return
	}
	var order []*trackDesc
	for _, kind := range []media.Kind{media.Video, media.Audio} {
		for _, d := range st.descs {
			if d.info.Codec.Kind() == kind {
				order = append(order, d)
			}
		}
	}
	st.newGenerationLocked(order, "segment size limit reached")
}

// desc returns the current description of a track, nil if it left the
// catalog.
func (st *stream) desc(name string) *trackDesc {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.descs[name]
}

// trackLoop subscribes to one media track and feeds its frames to the
// muxer until the track leaves the catalog or the stream stops. A refused
// or ended subscription is made again: the track is in the catalog, so it
// comes back (a publisher reconnecting, an upstream relay reconnecting).
func (st *stream) trackLoop(ctx context.Context, name string, kind media.Kind) {
	prio := uint8(priorityVideo)
	if kind == media.Audio {
		prio = priorityAudio
	}
	var tc *trackClock // the track's place on the timeline, across subscriptions
	for ctx.Err() == nil && st.desc(name) != nil {
		fr, err := st.br.Track(ctx, name, moq.SubscribeOptions{Priority: prio})
		if err == nil {
			tc = st.readTrack(ctx, fr, tc)
			fr.Close()
		} else if ctx.Err() == nil {
			st.log.Debug("hls: subscribe", "track", name, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readTrack feeds the frames of a track to the muxer until its reader
// ends (the broadcast ended, the track left the catalog).
func (st *stream) readTrack(ctx context.Context, fr *media.FrameReader, tc *trackClock) *trackClock {
	for {
		c, err := fr.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, moq.ErrTrackEnded) && !errors.Is(err, media.ErrNotInCatalog) {
				st.log.Warn("hls: track", "track", fr.Name(), "err", err)
			}
			return tc
		}
		ts := fr.Info().Timescale
		for _, f := range c.Frames {
			tc = st.writeFrame(fr.Name(), ts, tc, f)
		}
	}
}

// writeFrame places f on the output timeline and hands it to the muxer
// generation that takes samples. It returns the track's clock.
func (st *stream) writeFrame(name string, timescale uint32, tc *trackClock, f media.Frame) *trackClock {
	st.mu.Lock()
	g := st.writeGenLocked()
	st.mu.Unlock()
	if g == nil {
		return tc
	}
	t := g.tracks[name]
	if t == nil {
		return tc
	}
	if tc == nil {
		tc = newTrackClock(timescale, t.codec.clock)
	} else {
		tc.rebase(timescale, t.codec.clock)
	}
	dts, ntp := st.tl.place(tc, f.DTS, f.Duration, t.codec.duration(f.Data))
	pts := dts + scale(f.CTO, int64(timescale), int64(t.codec.clock))
	if err := g.write(name, sample{pts: pts, ntp: ntp, keyframe: f.Keyframe, data: f.Data}); err != nil {
		st.mu.Lock()
		now := time.Now()
		logIt := now.Sub(st.writeLog) > 10*time.Second
		if logIt {
			st.writeLog = now
		}
		st.mu.Unlock()
		if logIt {
			st.log.Warn("hls: muxer refused a sample", "track", name, "err", err)
		}
		st.stuckCheck(g)
	}
	return tc
}
