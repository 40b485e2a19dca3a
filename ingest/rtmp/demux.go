package rtmp

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/bluenviron/gortmplib/pkg/amf0"

	"github.com/moqgate/moqgate/media"
)

const (
	// analyzeWindow is how much media time (ms) the demuxer waits, at most,
	// for the sequence headers of all expected tracks before it announces
	// the tracks it has.
	analyzeWindow = 1000
	// maxPendingFrames bounds the frames held back until the tracks are
	// announced (the byte bound is demuxer.maxPendingBytes).
	maxPendingFrames = 1000
	// maxLogKeys bounds the set of "log once" messages per connection.
	maxLogKeys = 64
)

// errNoSupportedTracks refuses a publish in which no track can be ingested.
var errNoSupportedTracks = errors.New("no supported track")

// errBroadcastWriter wraps errors returned by the BroadcastWriter.
var errBroadcastWriter = errors.New("broadcast writer")

// Track slots.
const (
	kVideo = 0
	kAudio = 1
)

// demuxer turns the audio, video and metadata messages of one publish into
// BroadcastWriter calls. It does no I/O of its own and holds at most
// maxPendingFrames / maxPendingBytes of frames.
//
// Tracks are announced (SetTracks) once the sequence headers of every track
// the stream is expected to have are known — expected from onMetaData, or,
// without it, from the packets seen — or after analyzeWindow of media time,
// whichever comes first. Frames of announced-to-be tracks received before
// that are held back and written right after SetTracks. SetTracks is called
// again whenever a track is added later or its parameters change (new
// sequence header, in-band parameter sets or AV1 sequence header, VP8/VP9
// key frame with new dimensions).
type demuxer struct {
	log             *slog.Logger
	w               media.BroadcastWriter
	maxPendingBytes int

	kinds    [2]kindState
	metaSeen bool
	fps      float64
	bitrate  [2]int

	started      bool
	clockOK      bool
	clockFirst   int64
	clockLast    int64
	pending      []pendingFrame
	pendingBytes int

	logged map[string]bool
}

type kindState struct {
	name        string
	expected    codecID // from onMetaData
	expectedSet bool
	seen        bool // any audio/video packet of this kind
	unsupported codecID
	t           *track
	frames      int64 // written
	dropped     int64 // dropped waiting for a sequence header
	ts          unwrapper
}

type pendingFrame struct {
	k int
	f media.Frame
}

func newDemuxer(log *slog.Logger, w media.BroadcastWriter, maxPendingBytes int) *demuxer {
	d := &demuxer{log: log, w: w, maxPendingBytes: maxPendingBytes, logged: map[string]bool{}}
	d.kinds[kVideo].name = "video"
	d.kinds[kAudio].name = "audio"
	return d
}

// once logs msg at warning level the first time key is seen.
func (d *demuxer) once(key, msg string, args ...any) {
	if d.logged[key] || len(d.logged) >= maxLogKeys {
		return
	}
	d.logged[key] = true
	d.log.Warn(msg, args...)
}

// handleVideo handles the body of an RTMP video message with timestamp ts.
func (d *demuxer) handleVideo(ts uint32, body []byte) error {
	pkts, err := parseVideo(body)
	if err != nil {
		return fmt.Errorf("video message: %w", err)
	}
	return d.handlePackets(kVideo, ts, pkts)
}

// handleAudio handles the body of an RTMP audio message with timestamp ts.
func (d *demuxer) handleAudio(ts uint32, body []byte) error {
	pkts, err := parseAudio(body)
	if err != nil {
		return fmt.Errorf("audio message: %w", err)
	}
	return d.handlePackets(kAudio, ts, pkts)
}

func (d *demuxer) handlePackets(k int, ts uint32, pkts []packet) error {
	ks := &d.kinds[k]
	dts := ks.ts.unwrap(ts)
	if len(pkts) > 0 {
		if !d.clockOK {
			d.clockOK, d.clockFirst, d.clockLast = true, dts, dts
		}
		d.clockLast = max(d.clockLast, dts)
	}
	for _, p := range pkts {
		if p.TrackID != 0 {
			d.once(fmt.Sprintf("track-%d-%d", k, p.TrackID),
				"multitrack: only track 0 is ingested, ignoring another track",
				"kind", ks.name, "track_id", p.TrackID)
			continue
		}
		if err := d.handlePacket(k, p, dts); err != nil {
			return err
		}
	}
	return d.maybeStart()
}

func (d *demuxer) handlePacket(k int, p packet, dts int64) error {
	ks := &d.kinds[k]
	switch p.Kind {
	case pktIgnored:
		return nil
	case pktEnd:
		d.log.Debug("end of sequence", "kind", ks.name)
		return nil
	}
	ks.seen = true
	if !p.Codec.supported() {
		ks.unsupported = p.Codec
		d.once("unsupported-"+ks.name+"-"+p.Codec.Name,
			"unsupported codec: track left out", "kind", ks.name, "codec", p.Codec.Name)
		return nil
	}

	if p.Kind == pktConfig {
		if p.Codec.Codec == media.AAC && len(p.Data) == 0 {
			return nil // empty AAC sequence header: nothing to configure
		}
		t, err := newTrack(p.Codec.Codec, p.Data)
		if err != nil {
			return fmt.Errorf("%s sequence header: %w", ks.name, err)
		}
		return d.setTrack(k, t)
	}

	t := ks.t
	if t == nil || t.info.Codec != p.Codec.Codec {
		t = newTrackWithoutConfig(p.Codec.Codec)
		if t == nil {
			ks.dropped++
			d.once("noconfig-"+ks.name, "frames before the sequence header: dropping them until it arrives",
				"kind", ks.name, "codec", p.Codec.Name)
			return nil
		}
		if err := d.setTrack(k, t); err != nil {
			return err
		}
	}
	old, oldReady := t.info, t.ready
	f, ok, changed, err := t.frame(p, dts)
	if err != nil {
		var mp3 errMP3Header
		if errors.As(err, &mp3) {
			ks.dropped++
			d.once("mp3-"+ks.name, "dropping MP3 frames", "error", err)
			return nil
		}
		return fmt.Errorf("%s frame: %w", ks.name, err)
	}
	if changed {
		if err := d.trackChanged(k, old, oldReady); err != nil {
			return err
		}
	}
	if !t.ready {
		ks.dropped++
		d.once("notready-"+ks.name, "frames before the codec configuration is known: dropping them",
			"kind", ks.name, "codec", p.Codec.Name)
		return nil
	}
	if !ok {
		return nil
	}
	return d.emit(k, f)
}

// setTrack installs t as the track of slot k (a new sequence header).
func (d *demuxer) setTrack(k int, t *track) error {
	ks := &d.kinds[k]
	old := ks.t
	if old != nil && old.nalLen == t.nalLen && old.ready == t.ready && reflect.DeepEqual(old.info, t.info) {
		return nil // repeated sequence header
	}
	if old != nil && old.ready && !d.started && d.hasPending(k) {
		// frames held back use the old parameters: announce those first
		if err := d.start("codec parameters changed"); err != nil {
			return err
		}
	}
	ks.t = t
	if old != nil {
		d.log.Info("new sequence header", "kind", ks.name, "codec", t.info.Codec)
	}
	if d.started && (t.ready || (old != nil && old.ready)) {
		return d.setTracks()
	}
	return nil
}

// trackChanged is called after a frame changed the parameters of slot k's
// track (old / oldReady: before the change).
func (d *demuxer) trackChanged(k int, old media.TrackInfo, oldReady bool) error {
	t := d.kinds[k].t
	if !t.ready && !oldReady {
		return nil // still incomplete (e.g. an SPS without a PPS yet)
	}
	if !d.started {
		if !oldReady || !d.hasPending(k) {
			return nil
		}
		cur, curReady := t.info, t.ready
		t.info, t.ready = old, oldReady
		err := d.start("codec parameters changed")
		t.info, t.ready = cur, curReady
		if err != nil {
			return err
		}
	}
	d.log.Info("codec parameters changed in-band", "kind", d.kinds[k].name, "codec", t.info.Codec)
	return d.setTracks()
}

func (d *demuxer) hasPending(k int) bool {
	for _, pf := range d.pending {
		if pf.k == k {
			return true
		}
	}
	return false
}

func (d *demuxer) emit(k int, f media.Frame) error {
	if d.started {
		return d.write(k, f)
	}
	d.pending = append(d.pending, pendingFrame{k, f})
	d.pendingBytes += len(f.Data)
	return nil
}

func (d *demuxer) write(k int, f media.Frame) error {
	ks := &d.kinds[k]
	ks.frames++
	if err := d.w.WriteFrame(ks.name, f); err != nil {
		return fmt.Errorf("%w: write frame: %w", errBroadcastWriter, err)
	}
	return nil
}

// maybeStart announces the tracks when they are known (see demuxer), or
// refuses the publish when no track can be ingested.
func (d *demuxer) maybeStart() error {
	if d.started {
		return nil
	}
	windowOver := d.clockOK && d.clockLast-d.clockFirst >= analyzeWindow
	full := len(d.pending) >= maxPendingFrames || d.pendingBytes >= d.maxPendingBytes
	present, unsupported := 0, 0
	anyReady, waiting := false, false
	var why []string
	for k := range d.kinds {
		ks := &d.kinds[k]
		if !ks.seen && (!ks.expectedSet || windowOver) {
			continue
		}
		present++
		switch {
		case ks.t != nil && ks.t.ready:
			anyReady = true
		case ks.seen && ks.t == nil && ks.unsupported.Name != "":
			unsupported++
			why = append(why, ks.name+": "+ks.unsupported.Name)
		case !ks.seen && !ks.expected.supported():
			unsupported++
			why = append(why, ks.name+": "+ks.expected.Name)
		default:
			waiting = true
		}
	}
	if !anyReady {
		if present > 0 && unsupported == present {
			return fmt.Errorf("%w (%s)", errNoSupportedTracks, strings.Join(why, ", "))
		}
		return nil
	}
	switch {
	case !waiting && (d.metaSeen || present == len(d.kinds)):
		return d.start("all tracks configured")
	case windowOver:
		return d.start("analyze window elapsed")
	case full:
		return d.start("pending frame buffer full")
	}
	return nil
}

// start announces the tracks and writes the frames held back.
func (d *demuxer) start(reason string) error {
	d.started = true
	for k := range d.kinds {
		ks := &d.kinds[k]
		switch {
		case ks.t != nil && ks.t.ready:
		case ks.unsupported.Name != "":
			d.log.Warn("track left out: unsupported codec", "kind", ks.name, "codec", ks.unsupported.Name)
		case !ks.seen && ks.expectedSet && !ks.expected.supported():
			d.log.Warn("track left out: unsupported codec (from onMetaData)", "kind", ks.name, "codec", ks.expected.Name)
		case ks.seen || ks.expectedSet:
			d.log.Warn("track left out for now: no sequence header yet", "kind", ks.name)
		}
	}
	d.log.Debug("announcing tracks", "reason", reason, "held_back_frames", len(d.pending))
	if err := d.setTracks(); err != nil {
		return err
	}
	pending := d.pending
	d.pending, d.pendingBytes = nil, 0
	for _, pf := range pending {
		if err := d.write(pf.k, pf.f); err != nil {
			return err
		}
	}
	return nil
}

// tracks returns the TrackInfo of every ready track, video first.
func (d *demuxer) tracks() []media.TrackInfo {
	var out []media.TrackInfo
	for k := range d.kinds {
		ks := &d.kinds[k]
		if ks.t == nil || !ks.t.ready {
			continue
		}
		info := ks.t.info
		info.Name = ks.name
		if info.Bitrate == 0 {
			info.Bitrate = d.bitrate[k]
		}
		if k == kVideo && info.Framerate == 0 {
			info.Framerate = d.fps
		}
		out = append(out, info)
	}
	return out
}

func (d *demuxer) setTracks() error {
	tracks := d.tracks()
	if len(tracks) == 0 {
		return nil
	}
	attrs := make([]any, 0, 2*len(tracks))
	for _, t := range tracks {
		desc := string(t.Codec)
		if t.Width > 0 {
			desc += fmt.Sprintf(" %dx%d", t.Width, t.Height)
		}
		if t.SampleRate > 0 {
			desc += fmt.Sprintf(" %d Hz %d ch", t.SampleRate, t.Channels)
		}
		attrs = append(attrs, t.Name, desc)
	}
	d.log.Info("tracks", attrs...)
	if err := d.w.SetTracks(tracks); err != nil {
		return fmt.Errorf("%w: set tracks: %w", errBroadcastWriter, err)
	}
	return nil
}

// finish is called when the publisher goes away: frames still held back
// are written (a stream shorter than the analyze window is not lost).
func (d *demuxer) finish() error {
	if !d.started && len(d.tracks()) > 0 {
		if err := d.start("publisher done"); err != nil {
			return err
		}
	}
	return nil
}

// handleMetadata takes what it can use from onMetaData: which tracks to
// expect (videocodecid / audiocodecid), frame rate and bit rates.
func (d *demuxer) handleMetadata(m amf0.Object) {
	d.metaSeen = true
	for _, e := range m {
		switch e.Key {
		case "videocodecid":
			if c, ok := metaCodec(e.Value, legacyVideoCodec, videoFourCC); ok && !d.started {
				d.kinds[kVideo].expected, d.kinds[kVideo].expectedSet = c, true
			}
		case "audiocodecid":
			if c, ok := metaCodec(e.Value, legacyAudioCodec, audioFourCC); ok && !d.started {
				d.kinds[kAudio].expected, d.kinds[kAudio].expectedSet = c, true
			}
		case "framerate", "fps":
			if v, ok := e.Value.(float64); ok {
				d.fps = saneFPS(v)
			}
		case "videodatarate", "audiodatarate":
			k := kVideo
			if e.Key == "audiodatarate" {
				k = kAudio
			}
			if v, ok := e.Value.(float64); ok && v > 0 && v < 1e7 {
				d.bitrate[k] = int(v * 1000) // kbit/s
			}
		}
	}
}

// metaCodec interprets an onMetaData codec id: a legacy FLV id, a FourCC as
// a number (Enhanced RTMP) or as a string. 0 / absent means no such track.
func metaCodec(v any, legacy func(byte) codecID, fourCC func(uint32) codecID) (codecID, bool) {
	switch v := v.(type) {
	case float64:
		switch {
		case v >= 1 && v < 16:
			return legacy(byte(v)), true
		case v >= 1<<24 && v < 1<<32:
			return fourCC(uint32(v)), true
		}
	case string:
		if len(v) == 4 {
			return fourCC(uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])), true
		}
	}
	return codecID{}, false
}

// unwrapper extends 32-bit RTMP millisecond timestamps to 64 bits across
// wrap-arounds (every ~49.7 days). Other jumps, backwards included, pass
// through unchanged.
type unwrapper struct {
	ok   bool
	last int64
}

func (u *unwrapper) unwrap(ts uint32) int64 {
	if !u.ok {
		u.ok, u.last = true, int64(ts)
		return u.last
	}
	const wrap = int64(1) << 32
	c := u.last&^(wrap-1) + int64(ts)
	switch {
	case c-u.last > wrap/2 && c >= wrap:
		c -= wrap
	case u.last-c > wrap/2:
		c += wrap
	}
	u.last = c
	return c
}
