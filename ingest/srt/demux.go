package srt

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	mcodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/moqgate/moqgate/media"
)

// ErrNoTracks: the MPEG-TS stream has no track moqgate can publish.
var ErrNoTracks = errors.New("srt: no H.264, H.265, AAC or Opus track in the MPEG-TS stream")

// readyWait is how long a broadcast waits for all its tracks to be ready
// (video needs a key frame with its parameter sets) before it starts with
// those that are.
const readyWait = 3 * time.Second

// demuxer turns one MPEG-TS stream into the frames of a broadcast.
type demuxer struct {
	w      media.BroadcastWriter
	log    *slog.Logger
	tracks []*tsTrack
	times  mpegts.TimeDecoder // shared: keeps the tracks' 33-bit clocks in step
	tl     timeline

	published []media.TrackInfo // last SetTracks
	firstSeen time.Time
	now       func() time.Time

	decodeErrors int
}

// Demux reads MPEG-TS from r and writes its H.264, H.265, AAC and Opus
// tracks to w until r fails (io.EOF at the end of the stream). Malformed
// or truncated TS packets and PES payloads are dropped; the stream goes on.
// onInit is called once the program map has been read (may be nil).
func Demux(r io.Reader, w media.BroadcastWriter, log *slog.Logger, onInit func()) error {
	rd := &mpegts.Reader{R: r}
	if err := rd.Initialize(); err != nil {
		return fmt.Errorf("srt: read MPEG-TS program: %w", err)
	}
	if onInit != nil {
		onInit()
	}
	d := &demuxer{w: w, log: log, now: time.Now}
	d.tl.log = log
	for _, t := range rd.Tracks() {
		d.addTrack(rd, t)
	}
	if len(d.tracks) == 0 {
		return ErrNoTracks
	}
	rd.OnDecodeError(d.decodeError)
	defer func() {
		for _, t := range d.tracks {
			log.Debug("SRT: track ended", "track", t.info.Name, "codec", t.info.Codec, "frames", t.frames)
		}
	}()
	for {
		if err := rd.Read(); err != nil {
			return err
		}
	}
}

func (d *demuxer) decodeError(err error) {
	d.decodeErrors++
	if d.decodeErrors == 1 || d.decodeErrors%100 == 0 {
		d.log.Warn("SRT: malformed MPEG-TS data dropped", "err", err, "count", d.decodeErrors)
	}
}

// addTrack registers a supported track's callback, or logs why a track is
// left out.
func (d *demuxer) addTrack(rd *mpegts.Reader, t *mpegts.Track) {
	kind := media.Audio
	if t.Codec.IsVideo() {
		kind = media.Video
	}
	for _, have := range d.tracks {
		if have.info.Codec.Kind() == kind {
			d.log.Info("SRT: extra track ignored (one video and one audio track are published)", "pid", t.PID)
			return
		}
	}
	tt, err := newTSTrack(t.Codec)
	if err != nil {
		d.log.Warn("SRT: track refused", "pid", t.PID, "err", err)
		return
	}
	tt.pid = t.PID
	d.tracks = append(d.tracks, tt)
	switch tt.info.Codec {
	case media.H264:
		rd.OnDataH264(t, func(pts, dts int64, au [][]byte) error { return d.video(tt, pts, dts, au) })
	case media.H265:
		rd.OnDataH265(t, func(pts, dts int64, au [][]byte) error { return d.video(tt, pts, dts, au) })
	case media.AAC:
		rd.OnDataMPEG4Audio(t, func(pts int64, aus [][]byte) error { return d.audio(tt, pts, aus) })
	case media.Opus:
		rd.OnDataOpus(t, func(pts int64, pkts [][]byte) error { return d.audio(tt, pts, pkts) })
	}
}

// newTSTrack maps a mediacommon codec onto a track, refusing the codecs
// moqgate does not carry.
func newTSTrack(c mpegts.Codec) (*tsTrack, error) {
	switch c := c.(type) {
	case *mcodecs.H264:
		return &tsTrack{info: media.TrackInfo{Name: "video", Codec: media.H264, Timescale: 90000}}, nil
	case *mcodecs.H265:
		return &tsTrack{info: media.TrackInfo{Name: "video", Codec: media.H265, Timescale: 90000}}, nil
	case *mcodecs.MPEG4Audio:
		return newAACTrack(c)
	case *mcodecs.Opus:
		ch := 2
		if c.Desc != nil {
			ch = c.Desc.ChannelCount()
		}
		if ch < 1 || ch > 2 {
			return nil, fmt.Errorf("Opus with %d channels is not supported (mono or stereo)", ch)
		}
		return &tsTrack{ready: true, info: media.TrackInfo{Name: "audio", Codec: media.Opus, Timescale: 48000,
			SampleRate: 48000, Channels: ch}}, nil
	case *mcodecs.MPEG1Audio:
		return nil, errors.New("MPEG-1/2 audio (MP2/MP3) is not supported; send AAC or Opus")
	case *mcodecs.AC3, *mcodecs.EAC3:
		return nil, errors.New("AC-3 / E-AC-3 audio is not supported; send AAC or Opus")
	case *mcodecs.MPEG1Video, *mcodecs.MPEG4Video:
		return nil, errors.New("MPEG-1/2/4 Part 2 video is not supported; send H.264 or H.265")
	case *mcodecs.MPEG4AudioLATM:
		return nil, errors.New("AAC in LATM is not supported; send AAC in ADTS")
	}
	return nil, fmt.Errorf("codec %T is not supported", c)
}

// video handles one H.264 / H.265 access unit.
func (d *demuxer) video(t *tsTrack, pts, dts int64, au [][]byte) error {
	data, key, changed := t.videoFrame(au)
	if changed {
		d.log.Info("SRT: video parameters", "codec", t.info.Codec, "width", t.info.Width, "height", t.info.Height)
	}
	if !t.ready || len(data) == 0 {
		return nil
	}
	if !t.sawKey && !key {
		return nil // a decoder cannot start here
	}
	t.sawKey = true
	dts90 := d.times.Decode(dts)
	cto := d.times.Decode(pts) - dts90
	if cto < 0 || cto > 10*90000 {
		cto = 0
	}
	adj, ok := d.tl.adjust(t, dts90)
	if !ok {
		return nil
	}
	return d.write(t, media.Frame{DTS: adj, CTO: cto, Keyframe: key, Data: data})
}

// audio handles the access units / packets of one audio PES packet (they
// share its PTS and follow each other).
func (d *demuxer) audio(t *tsTrack, pts int64, units [][]byte) error {
	pts90 := d.times.Decode(pts)
	adj, ok := d.tl.adjust(t, pts90)
	if !ok {
		return nil
	}
	at := t.audioClock(adj)
	for _, u := range units {
		if len(u) == 0 {
			continue
		}
		dur := t.audioDuration(u)
		if err := d.write(t, media.Frame{DTS: at, Duration: dur, Keyframe: true, Data: u}); err != nil {
			return err
		}
		at += dur
	}
	t.nextAudio, t.haveNext = at, true
	return nil
}

// write publishes the current track set when it changed, then the frame.
func (d *demuxer) write(t *tsTrack, f media.Frame) error {
	if err := d.publishTracks(); err != nil {
		return err
	}
	if !t.published {
		return nil
	}
	if t.haveDTS && f.DTS <= t.lastDTS {
		return nil // not after the previous frame: cannot be packaged
	}
	t.lastDTS, t.haveDTS = f.DTS, true
	t.frames++
	return d.w.WriteFrame(t.info.Name, f)
}

// publishTracks calls SetTracks when the set of ready tracks or their
// parameters changed. Until every track is ready (or readyWait passed)
// nothing is published, so that players see the whole broadcast at once.
func (d *demuxer) publishTracks() error {
	if d.firstSeen.IsZero() {
		d.firstSeen = d.now()
	}
	var infos []media.TrackInfo
	all := true
	for _, t := range d.tracks {
		if t.ready {
			infos = append(infos, t.info)
		} else {
			all = false
		}
	}
	if !all && d.published == nil && d.now().Sub(d.firstSeen) < readyWait {
		return nil
	}
	if sameTracks(infos, d.published) {
		return nil
	}
	if err := d.w.SetTracks(infos); err != nil {
		return fmt.Errorf("srt: set tracks: %w", err)
	}
	d.published = infos
	for _, t := range d.tracks {
		t.published = t.ready
	}
	return nil
}

func sameTracks(a, b []media.TrackInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameParams(a[i], b[i]) {
			return false
		}
	}
	return true
}
