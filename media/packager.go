package media

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"
)

// ErrUnknownTrack is returned by Packager.WriteFrame for a track name that
// the last SetTracks did not declare.
var ErrUnknownTrack = errors.New("media: unknown track")

// ErrPackagerClosed is returned after Packager.Close.
var ErrPackagerClosed = errors.New("media: packager closed")

const (
	// maxTimestampJump is the largest forward DTS step accepted on a track;
	// a bigger one is treated like a step backwards.
	maxTimestampJump = 10 * time.Second
	// resyncAfterDrops: after this many consecutive timestamp drops on a
	// track the packager accepts the new timeline (a publisher that
	// restarted its clock would otherwise be dropped forever).
	resyncAfterDrops = 60
	// audioGroupCapWithVideo bounds an audio group when the video that
	// should cut it sends no key frame.
	audioGroupCapWithVideo = 10 * time.Second
)

// PackagerOptions configures a Packager.
type PackagerOptions struct {
	// Logger receives drop and resync notices; nil means slog.Default().
	Logger *slog.Logger
	// AudioGroupDuration is the audio group length when the broadcast has
	// no video (with video, audio groups follow the video groups).
	// Zero means 1 s.
	AudioGroupDuration time.Duration
	// Now is the clock for the MSF catalog's generatedAt; nil means time.Now.
	Now func() time.Time
}

// PackagerStats are a Packager's counters since it was created.
type PackagerStats struct {
	FramesIn              uint64
	FramesDropped         uint64 // all drops, including the two below
	DroppedBeforeKeyframe uint64 // video frames waiting for a key frame
	DroppedBadTimestamp   uint64 // DTS backwards, negative, or jumping > 10 s
	ObjectsOut            uint64 // media and catalog objects written
	BytesOut              uint64
	CatalogUpdates        uint64
}

// Packager is a BroadcastWriter that turns frames into MoQ objects on an
// ObjectSink: CMAF chunks (one moof+mdat per frame, one object each) on
// the media tracks, and the hang ("catalog.json") and MSF ("catalog")
// catalogs. A video key frame opens a group; audio opens a group with each
// video group (or every AudioGroupDuration without video). It is safe for
// concurrent use; sink calls are made with the Packager's lock held, in
// order.
type Packager struct {
	sink     ObjectSink
	log      *slog.Logger
	audioDur time.Duration
	now      func() time.Time

	mu           sync.Mutex
	tracks       []TrackInfo // last published set; nil before SetTracks
	state        map[string]*packTrack
	hasVideo     bool
	primaryVideo string // the video track whose groups cut the audio groups
	closed       bool
	stats        PackagerStats
}

// packTrack is the per-track state between SetTracks calls.
type packTrack struct {
	info          TrackInfo
	fw            *FragmentWriter
	groupOpen     bool
	groupStartDTS int64
	lastDTS       int64
	haveDTS       bool
	cutPending    bool // audio: the primary video opened a group
	tsDrops       int  // consecutive timestamp drops (a burst)
	keyDrops      int  // consecutive drops waiting for a key frame
}

var _ BroadcastWriter = (*Packager)(nil)

// NewPackager returns a Packager writing to sink.
func NewPackager(sink ObjectSink, opts PackagerOptions) *Packager {
	p := &Packager{sink: sink, log: opts.Logger, audioDur: opts.AudioGroupDuration, now: opts.Now,
		state: map[string]*packTrack{}}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.audioDur <= 0 {
		p.audioDur = time.Second
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// SetTracks declares the broadcast's tracks. When the set or any parameter
// differs from the last call, it ends the open media groups, publishes
// both catalogs (each as a new group holding one object) and starts every
// track afresh: video waits for its next key frame. An identical set is a
// no-op. A set that only adds tracks after the unchanged existing ones (an
// extra rendition, e.g. transcoded audio), or only removes some, publishes
// the catalogs and keeps the remaining tracks' groups going.
func (p *Packager) SetTracks(tracks []TrackInfo) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrPackagerClosed
	}
	if p.tracks != nil && reflect.DeepEqual(p.tracks, tracks) {
		return nil
	}
	hang, err := BuildHangCatalog(tracks)
	if err != nil {
		return err
	}
	msf, err := BuildMSFCatalog(tracks, MSFOptions{GeneratedAt: p.now()})
	if err != nil {
		return err
	}
	if p.tracks != nil && len(tracks) > len(p.tracks) && reflect.DeepEqual(p.tracks, tracks[:len(p.tracks)]) {
		return p.addTracksLocked(tracks, hang, msf)
	}
	if p.tracks != nil && onlyRemoves(p.tracks, tracks) {
		return p.removeTracksLocked(tracks, hang, msf)
	}
	var firstErr error
	for name, st := range p.state {
		if st.groupOpen {
			if err := p.sink.CloseGroup(name); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("media: close group on %q: %w", name, err)
			}
		}
	}
	// Until the catalogs are out, no frame may go out against them.
	p.tracks, p.state, p.hasVideo, p.primaryVideo = nil, map[string]*packTrack{}, false, ""
	if err := p.publishCatalog(HangCatalogTrack, hang); err != nil {
		return err
	}
	if err := p.publishCatalog(MSFCatalogTrack, msf); err != nil {
		return err
	}
	p.stats.CatalogUpdates++

	p.tracks = cloneTracks(tracks)
	for _, t := range p.tracks {
		p.state[t.Name] = &packTrack{info: t, fw: NewFragmentWriter(t)}
		if t.Codec.Kind() == Video {
			p.hasVideo = true
			if p.primaryVideo == "" {
				p.primaryVideo = t.Name
			}
		}
	}
	p.log.Info("media: tracks set, catalogs published", "tracks", len(tracks),
		"hang_bytes", len(hang), "msf_bytes", len(msf))
	return firstErr
}

// addTracksLocked publishes the catalogs of tracks, whose first tracks are
// the current ones unchanged, and starts the added ones.
func (p *Packager) addTracksLocked(tracks []TrackInfo, hang, msf []byte) error {
	if err := p.publishCatalog(HangCatalogTrack, hang); err != nil {
		return err
	}
	if err := p.publishCatalog(MSFCatalogTrack, msf); err != nil {
		return err
	}
	p.stats.CatalogUpdates++
	added := cloneTracks(tracks[len(p.tracks):])
	for _, t := range added {
		p.state[t.Name] = &packTrack{info: t, fw: NewFragmentWriter(t)}
		if t.Codec.Kind() == Video {
			p.hasVideo = true
			if p.primaryVideo == "" {
				p.primaryVideo = t.Name
			}
		}
	}
	p.tracks = append(p.tracks[:len(p.tracks):len(p.tracks)], added...)
	p.log.Info("media: tracks added, catalogs published", "tracks", len(tracks), "added", len(added),
		"hang_bytes", len(hang), "msf_bytes", len(msf))
	return nil
}

// onlyRemoves reports whether tracks is old without some of its tracks,
// the others unchanged and in the same order.
func onlyRemoves(old, tracks []TrackInfo) bool {
	if len(tracks) >= len(old) {
		return false
	}
	i := 0
	for _, t := range old {
		if i < len(tracks) && reflect.DeepEqual(t, tracks[i]) {
			i++
		}
	}
	return i == len(tracks)
}

// removeTracksLocked publishes the catalogs of tracks, the current ones
// minus some (a rendition nobody watches any more), and ends the removed
// ones' groups; the others' groups keep going.
func (p *Packager) removeTracksLocked(tracks []TrackInfo, hang, msf []byte) error {
	if err := p.publishCatalog(HangCatalogTrack, hang); err != nil {
		return err
	}
	if err := p.publishCatalog(MSFCatalogTrack, msf); err != nil {
		return err
	}
	p.stats.CatalogUpdates++
	keep := map[string]bool{}
	for _, t := range tracks {
		keep[t.Name] = true
	}
	var firstErr error
	for name, st := range p.state {
		if keep[name] {
			continue
		}
		if st.groupOpen {
			if err := p.sink.CloseGroup(name); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("media: close group on %q: %w", name, err)
			}
		}
		delete(p.state, name)
		if name == p.primaryVideo {
			p.primaryVideo = ""
		}
	}
	p.tracks, p.hasVideo = cloneTracks(tracks), false
	for _, t := range p.tracks {
		if t.Codec.Kind() == Video {
			p.hasVideo = true
			if p.primaryVideo == "" {
				p.primaryVideo = t.Name
			}
		}
	}
	p.log.Info("media: tracks removed, catalogs published", "tracks", len(tracks))
	return firstErr
}

func (p *Packager) publishCatalog(track string, payload []byte) error {
	if err := p.sink.OpenGroup(track); err != nil {
		return fmt.Errorf("media: open catalog group on %q: %w", track, err)
	}
	if err := p.sink.WriteObject(track, payload); err != nil {
		return fmt.Errorf("media: write catalog on %q: %w", track, err)
	}
	p.stats.ObjectsOut++
	p.stats.BytesOut += uint64(len(payload))
	// One object per group: later changes come as new groups, never as
	// merge patches, so the group can end now.
	if err := p.sink.CloseGroup(track); err != nil {
		return fmt.Errorf("media: close catalog group on %q: %w", track, err)
	}
	return nil
}

// WriteFrame packages one frame of track as one object. Frames that cannot
// be played (video before a key frame, timestamps that go backwards, are
// negative or jump more than 10 s) are dropped, counted and logged once
// per burst, and return nil; an unknown track returns ErrUnknownTrack.
func (p *Packager) WriteFrame(track string, f Frame) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.FramesIn++
	if p.closed {
		p.stats.FramesDropped++
		return ErrPackagerClosed
	}
	st := p.state[track]
	if st == nil {
		p.stats.FramesDropped++
		return fmt.Errorf("%w: %q", ErrUnknownTrack, track)
	}
	if len(f.Data) == 0 || len(f.Data) > maxFrameSize {
		p.stats.FramesDropped++
		return fmt.Errorf("media: track %q: frame size %d out of range", track, len(f.Data))
	}
	if !p.timestampOK(track, st, f) {
		p.stats.FramesDropped++
		p.stats.DroppedBadTimestamp++
		return nil
	}
	video := st.info.Codec.Kind() == Video
	if video {
		if !f.Keyframe && !st.groupOpen {
			if st.keyDrops == 0 {
				p.log.Info("media: dropping video until a key frame", "track", track)
			}
			st.keyDrops++
			p.stats.FramesDropped++
			p.stats.DroppedBeforeKeyframe++
			return nil
		}
		if st.keyDrops > 0 && f.Keyframe {
			p.log.Info("media: key frame received", "track", track, "dropped", st.keyDrops)
			st.keyDrops = 0
		}
	}
	if p.needNewGroup(st, f, video) {
		if err := p.sink.OpenGroup(track); err != nil {
			st.groupOpen = false
			p.stats.FramesDropped++
			return fmt.Errorf("media: open group on %q: %w", track, err)
		}
		st.groupOpen, st.groupStartDTS, st.cutPending = true, f.DTS, false
		if video && track == p.primaryVideo {
			for _, other := range p.state {
				if other.info.Codec.Kind() == Audio {
					other.cutPending = true
				}
			}
		}
	}
	payload, err := p.writeFragment(track, st, f)
	if err != nil {
		// The group may now miss an object: start over at the next
		// key frame (video) or frame (audio).
		st.groupOpen = false
		p.stats.FramesDropped++
		return fmt.Errorf("media: track %q: %w", track, err)
	}
	st.lastDTS, st.haveDTS = f.DTS, true
	p.stats.ObjectsOut++
	p.stats.BytesOut += uint64(len(payload))
	return nil
}

// writeFragment encodes f as one chunk and hands it to the sink, with the
// frame as a reader would decode it when the sink takes that.
func (p *Packager) writeFragment(track string, st *packTrack, f Frame) ([]byte, error) {
	payload, df, err := st.fw.fragment(f)
	if err != nil {
		return nil, err
	}
	if ds, ok := p.sink.(DecodedObjectSink); ok {
		return payload, ds.WriteDecodedObject(track, payload, []Frame{df})
	}
	return payload, p.sink.WriteObject(track, payload)
}

// timestampOK checks f's DTS against the track's last accepted one, logs
// the start and end of a burst of drops, and after resyncAfterDrops
// consecutive drops accepts the new timeline.
func (p *Packager) timestampOK(track string, st *packTrack, f Frame) bool {
	maxJump := int64(maxTimestampJump.Seconds() * float64(st.info.Timescale))
	bad := f.DTS < 0 || (st.haveDTS && (f.DTS <= st.lastDTS || f.DTS-st.lastDTS > maxJump))
	if !bad {
		if st.tsDrops > 0 {
			p.log.Info("media: timestamps back in order", "track", track, "dropped", st.tsDrops)
			st.tsDrops = 0
		}
		return true
	}
	st.tsDrops++
	if st.tsDrops == 1 {
		p.log.Warn("media: dropping frames with bad timestamps", "track", track,
			"dts", f.DTS, "last_dts", st.lastDTS, "timescale", st.info.Timescale)
	}
	if f.DTS >= 0 && st.tsDrops >= resyncAfterDrops {
		p.log.Warn("media: following the new timeline", "track", track, "dts", f.DTS, "dropped", st.tsDrops)
		st.tsDrops, st.haveDTS = 0, false
		st.fw.forgetTimeline()
		if st.groupOpen {
			// A group must not run backwards in time: the video waits
			// for a key frame, the audio opens a new group.
			if err := p.sink.CloseGroup(track); err != nil {
				p.log.Warn("media: close group", "track", track, "err", err)
			}
			st.groupOpen = false
		}
		return true
	}
	return false
}

func (p *Packager) needNewGroup(st *packTrack, f Frame, video bool) bool {
	if video {
		return f.Keyframe
	}
	if !st.groupOpen || st.cutPending {
		return true
	}
	span := f.DTS - st.groupStartDTS
	limit := p.audioDur
	if p.hasVideo {
		limit = audioGroupCapWithVideo
	}
	return span >= int64(limit.Seconds()*float64(st.info.Timescale))
}

// Close ends every open media group. Later calls return ErrPackagerClosed
// (WriteFrame, SetTracks) or nil (Close).
func (p *Packager) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var firstErr error
	for name, st := range p.state {
		if st.groupOpen {
			st.groupOpen = false
			if err := p.sink.CloseGroup(name); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("media: close group on %q: %w", name, err)
			}
		}
	}
	return firstErr
}

// Stats returns a snapshot of the counters.
func (p *Packager) Stats() PackagerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// cloneTracks deep-copies tracks so later changes by the caller to the
// byte slices cannot alter what SetTracks compares against.
func cloneTracks(tracks []TrackInfo) []TrackInfo {
	out := make([]TrackInfo, len(tracks))
	for i, t := range tracks {
		t.VPS, t.SPS, t.PPS = CloneNALUs(t.VPS), CloneNALUs(t.SPS), CloneNALUs(t.PPS)
		t.AV1SequenceHeader = cloneBytes(t.AV1SequenceHeader)
		t.AACConfig = cloneBytes(t.AACConfig)
		out[i] = t
	}
	return out
}

// CloneNALUs deep-copies NAL units (parameter sets), so that what keeps
// them does not pin the buffer they were found in.
func CloneNALUs(in [][]byte) [][]byte {
	if in == nil {
		return nil
	}
	out := make([][]byte, len(in))
	for i, b := range in {
		out[i] = cloneBytes(b)
	}
	return out
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
