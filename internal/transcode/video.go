package transcode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/moqgate/moqgate/media"
)

// VideoTrack is the name of the re-encoded video rendition.
const VideoTrack = media.WebRTCVideoRendition

// Errors of EnableVideo that the viewer is told about.
var (
	// ErrBusy: webrtc.max_video_transcodes are running.
	ErrBusy = errors.New("the server runs as many video transcodes as it may (webrtc.max_video_transcodes)")
	// ErrStarting: the transcoder has not produced its first key frame yet.
	ErrStarting = errors.New("the video transcoder is starting")
	// ErrVideoOff: webrtc.video_transcode is off.
	ErrVideoOff = errors.New("video transcoding is off (webrtc.video_transcode)")
)

// VideoOptions configure the video rendition.
type VideoOptions struct {
	// Off disables it.
	Off bool
	// Preset is the libx264 preset (default veryfast).
	Preset string
	// Max caps the transcodes running at once (0: 2).
	Max int
	// Subscribers counts the subscribers of a broadcast's track (the
	// relay's TrackSubscribers): a transcode nobody watched for Linger
	// stops.
	Subscribers func(path, name string) int
	// Linger (default 5 s) and StartWait, how long EnableVideo waits for
	// the first key frame (default 6 s).
	Linger, StartWait time.Duration
}

// Video tuning.
const (
	videoFeedQueue  = 300 // frames waiting for ffmpeg (10 s at 30 fps)
	idleCheck       = time.Second
	videoResyncJump = 5 * time.Second
	// The input timeline starts this far from zero, so that the PTS of
	// the first frames (after their DTS) stays positive.
	tsOrigin = 90000
)

// ConfigureVideo sets the video rendition's options (before use).
func (r *Registry) ConfigureVideo(o VideoOptions) {
	if o.Preset == "" {
		o.Preset = "veryfast"
	}
	if o.Max <= 0 {
		o.Max = 2
	}
	if o.Linger <= 0 {
		o.Linger = 5 * time.Second
	}
	if o.StartWait <= 0 {
		o.StartWait = 6 * time.Second
	}
	r.optMu.Lock()
	r.video = o
	r.optMu.Unlock()
}

// videoOptions has its own lock: it is read under a Writer's.
func (r *Registry) videoOptions() VideoOptions {
	r.optMu.Lock()
	defer r.optMu.Unlock()
	return r.video
}

// availableVideo reports whether ffmpeg has libx264.
func (r *Registry) availableVideo() error {
	if r.videoOptions().Off {
		return ErrVideoOff
	}
	_ = r.Available() // resolves r.ffmpeg, once (its error is about Opus)
	if r.ffmpeg == "" {
		return errors.New("transcoding is off (webrtc.ffmpeg is empty)")
	}
	r.x264Once.Do(func() { _, r.x264Err = hasEncoder(r.ffmpeg, "libx264") })
	return r.x264Err
}

// EnableVideo asks for the re-encoded video of a broadcast and waits
// (bounded) until its first key frame is published: ErrBusy over the cap,
// ErrStarting if it takes longer.
func (r *Registry) EnableVideo(ctx context.Context, path string) error {
	if err := r.availableVideo(); err != nil {
		return err
	}
	r.mu.Lock()
	w := r.writers[path]
	r.mu.Unlock()
	if w == nil {
		return fmt.Errorf("broadcast %s is not published here (only RTMP broadcasts of this server are transcoded)", path)
	}
	ready, err := w.enableVideo()
	if err != nil {
		return err
	}
	timer := time.NewTimer(r.videoOptions().StartWait)
	defer timer.Stop()
	select {
	case <-ready:
		return nil
	case <-timer.C:
		// The viewer is told to come back shortly: keep it going till then.
		w.mu.Lock()
		w.videoWanted = time.Now()
		w.mu.Unlock()
		return ErrStarting
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeSlot reserves one of the Max transcodes.
func (r *Registry) takeSlot() bool {
	r.slotMu.Lock()
	defer r.slotMu.Unlock()
	if r.slots >= r.videoOptions().Max {
		r.refused.Add(1)
		return false
	}
	r.slots++
	return true
}

func (r *Registry) freeSlot() {
	r.slotMu.Lock()
	r.slots--
	r.slotMu.Unlock()
}

func videoTrack(tracks []media.TrackInfo) *media.TrackInfo {
	for i := range tracks {
		if c := tracks[i].Codec; c == media.H264 || c == media.H265 {
			return &tracks[i]
		}
	}
	return nil
}

// enableVideo starts the video transcoder if it is not running; the
// channel is closed at its first key frame.
func (w *Writer) enableVideo() (<-chan struct{}, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errors.New("broadcast ended")
	}
	if videoTrack(w.tracks) == nil {
		return nil, errors.New("the broadcast has no H.264 or H.265 video")
	}
	w.videoWanted = time.Now()
	if w.vt == nil {
		if err := w.startVideoLocked(); err != nil {
			return nil, err
		}
	}
	return w.vt.ready, nil
}

// startVideoLocked starts the transcoder for the current video track.
func (w *Writer) startVideoLocked() error {
	src := videoTrack(w.tracks)
	if src == nil {
		return errors.New("no video")
	}
	if !w.reg.takeSlot() {
		return ErrBusy
	}
	bitrate := src.Bitrate
	if bitrate <= 0 {
		bitrate = w.vrate.bitrate(src.Timescale)
	}
	if bitrate <= 0 {
		bitrate = sizeBitrate(*src)
	}
	opts := w.reg.videoOptions()
	ctx, cancel := context.WithCancel(context.Background())
	vt := &videoTranscoder{w: w, src: *src, bitrate: bitrate, preset: opts.Preset, started: time.Now(),
		in: make(chan media.Frame, videoFeedQueue), ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	w.vt = vt
	w.reg.started(VideoTrack)
	go vt.supervise(ctx)
	go vt.watchIdle(ctx, opts)
	w.log.Info("video transcoder started", "source", src.Codec, "bitrate", bitrate, "preset", opts.Preset)
	return nil
}

// applyVideoLocked follows a change of the publisher's tracks: the
// transcoder restarts for a new video source, and starts for a broadcast
// whose viewers still watch the rendition (a reconnecting publisher).
func (w *Writer) applyVideoLocked() {
	src := videoTrack(w.tracks)
	if vt := w.vt; vt != nil && (src == nil || src.Name != vt.src.Name || src.Codec != vt.src.Codec || w.closed) {
		w.stopVideoLocked("the source video changed")
	}
	wanted := !w.videoWanted.IsZero() || w.reg.videoSubscribers(w.path) > 0
	if w.vt == nil && src != nil && wanted && !w.closed {
		if err := w.startVideoLocked(); err != nil {
			w.log.Warn("video transcoder not started", "err", err)
		}
	}
}

func (r *Registry) videoSubscribers(path string) int {
	if f := r.videoOptions().Subscribers; f != nil {
		return f(path, VideoTrack)
	}
	return 0
}

// stopVideoLocked stops the transcoder (without waiting) and withdraws
// the rendition from the catalogs (the caller publishes the tracks).
func (w *Writer) stopVideoLocked(why string) {
	vt := w.vt
	if vt == nil {
		return
	}
	w.vt, w.video = nil, nil
	vt.cancel()
	w.reg.freeSlot()
	w.log.Info("video transcoder stopped", "reason", why, "cpu_seconds", fmt.Sprintf("%.1f", vt.cpu.total()))
}

// setVideoInfo publishes the rendition's codec parameters (at its first
// key frame, and when they change).
func (w *Writer) setVideoInfo(vt *videoTranscoder, info media.TrackInfo) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.vt != vt {
		return false
	}
	if w.video != nil && sameParams(*w.video, info) {
		return true
	}
	w.video = &info
	if err := w.publishLocked(); err != nil {
		w.log.Debug("tracks not published", "err", err)
	}
	return true
}

func sameParams(a, b media.TrackInfo) bool {
	return len(a.SPS) == len(b.SPS) && len(a.PPS) == len(b.PPS) && len(a.SPS) > 0 && len(a.PPS) > 0 &&
		bytes.Equal(a.SPS[0], b.SPS[0]) && bytes.Equal(a.PPS[0], b.PPS[0])
}

// writeVideo publishes one transcoded frame.
func (w *Writer) writeVideo(vt *videoTranscoder, f media.Frame) {
	w.mu.Lock()
	current := w.vt == vt && w.video != nil
	w.mu.Unlock()
	if !current {
		return
	}
	if err := w.inner.WriteFrame(VideoTrack, f); err != nil {
		w.log.Debug("transcoded video frame not published", "err", err)
	}
}

// sizeBitrate is a bit rate for a track whose own is unknown (a viewer
// came within a second of the start): 0.1 bit per pixel, H.264's usual
// for live video, within 300 kbit/s ... 8 Mbit/s.
func sizeBitrate(t media.TrackInfo) int {
	fps := t.Framerate
	if fps <= 0 {
		fps = 30
	}
	w, h := t.Width, t.Height
	if w <= 0 || h <= 0 {
		w, h = 1280, 720
	}
	return min(max(int(float64(w*h)*fps/10), 300_000), 8_000_000)
}

// rateMeter estimates a track's bit rate from the frames written (the
// source's own figure is often missing).
type rateMeter struct {
	bytes    int64
	firstDTS int64
	lastDTS  int64
	n        int
}

func (m *rateMeter) add(f media.Frame) {
	if m.n == 0 || f.DTS < m.lastDTS || m.n > 3000 {
		*m = rateMeter{firstDTS: f.DTS}
	}
	m.n++
	m.bytes += int64(len(f.Data))
	m.lastDTS = f.DTS
}

func (m *rateMeter) bitrate(timescale uint32) int {
	span := m.lastDTS - m.firstDTS
	if m.n < 30 || span <= 0 || timescale == 0 {
		return 0
	}
	return int(m.bytes * 8 * int64(timescale) / span)
}

// videoTranscoder is one supervised ffmpeg re-encoding a broadcast's
// video: frames in as MPEG-TS on stdin, H.264 out as MPEG-TS on stdout.
type videoTranscoder struct {
	w       *Writer
	src     media.TrackInfo
	bitrate int
	preset  string
	started time.Time
	cpu     cpuMeter

	in        chan media.Frame
	ready     chan struct{} // closed at the first published key frame
	readyOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
}

func (vt *videoTranscoder) describe() Status {
	ready := false
	select {
	case <-vt.ready:
		ready = true
	default:
	}
	return Status{Broadcast: vt.w.path, Rendition: VideoTrack, Codec: string(media.H264), Source: vt.src.Name,
		SourceCodec: string(vt.src.Codec), Started: vt.started, Bitrate: vt.bitrate, Preset: vt.preset, Ready: ready,
		CPUSeconds: vt.cpu.total(), CPUPercent: vt.cpu.percent()}
}

// feed queues a frame for ffmpeg without ever blocking the ingest.
func (vt *videoTranscoder) feed(f media.Frame) {
	f.Data = bytes.Clone(f.Data)
	select {
	case vt.in <- f:
	default:
		vt.w.log.Debug("video transcoder queue full; frame dropped")
	}
}

// watchIdle stops the transcoder once nobody subscribed to the rendition
// for Linger (and nobody asked for it meanwhile), and samples its CPU.
func (vt *videoTranscoder) watchIdle(ctx context.Context, o VideoOptions) {
	t := time.NewTicker(idleCheck)
	defer t.Stop()
	var idleSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		vt.cpu.sample()
		if o.Subscribers == nil || o.Subscribers(vt.w.path, VideoTrack) > 0 {
			idleSince = time.Time{}
			continue
		}
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		w := vt.w
		w.mu.Lock()
		if w.vt == vt && time.Since(idleSince) >= o.Linger && time.Since(w.videoWanted) >= o.Linger {
			w.stopVideoLocked("no viewers")
			w.videoWanted = time.Time{}
			if err := w.publishLocked(); err != nil {
				w.log.Debug("tracks not published", "err", err)
			}
		}
		w.mu.Unlock()
	}
}

// supervise runs ffmpeg until stopped; the output keeps the source's
// timeline from the first key frame fed.
func (vt *videoTranscoder) supervise(ctx context.Context) {
	defer close(vt.done)
	defer vt.w.reg.ended(VideoTrack, &vt.cpu) // once its last ffmpeg ended
	p := &process{log: vt.w.log, what: "video", ffmpeg: vt.w.reg.ffmpeg, args: vt.args, feed: vt.feedLoop,
		read: vt.readLoop, cpu: &vt.cpu}
	p.supervise(ctx)
}

func (vt *videoTranscoder) args() []string {
	b := vt.bitrate
	return []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		// No -fflags nobuffer: with it ffmpeg drops the packets it probed (the
		// whole first group).
		"-probesize", "32", "-analyzeduration", "0",
		"-threads", "1", // frame threads would delay each frame
		"-f", "mpegts", "-i", "pipe:0",
		"-map", "0:v:0", "-an", "-sn", "-dn", "-fps_mode", "passthrough",
		"-c:v", "libx264", "-preset", vt.preset, "-tune", "zerolatency", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
		// Key frames exactly where the source has them, so that groups
		// (and the viewers' joins) stay aligned with the original.
		"-force_key_frames", "source", "-forced-idr", "1", "-x264-params", "keyint=infinite:scenecut=0",
		"-b:v", fmt.Sprint(b), "-maxrate", fmt.Sprint(b * 5 / 4), "-bufsize", fmt.Sprint(b),
		"-f", "mpegts", "-omit_video_pes_length", "0", "-muxdelay", "0", "-muxpreload", "0",
		"-flush_packets", "1", "pipe:1"}
}

// feedLoop writes the queued frames to ffmpeg as MPEG-TS, from a key
// frame on, with the parameter sets before every key frame.
func (vt *videoTranscoder) feedLoop(ctx context.Context, out io.Writer, startc chan<- int64) error {
	bw := bufio.NewWriterSize(out, 64<<10)
	track := &mpegts.Track{Codec: &mpegts.CodecH264{}}
	if vt.src.Codec == media.H265 {
		track.Codec = &mpegts.CodecH265{}
	}
	mw := &mpegts.Writer{W: bw, Tracks: []*mpegts.Track{track}}
	if err := mw.Initialize(); err != nil {
		return err
	}
	ts := int64(max(vt.src.Timescale, 1))
	var base, last int64
	first := true
	for {
		var f media.Frame
		select {
		case <-ctx.Done():
			return ctx.Err()
		case f = <-vt.in:
		}
		if first && !f.Keyframe {
			continue
		}
		if first {
			base, last, first = f.DTS, f.DTS, false
			startc <- f.DTS + f.CTO
		}
		if f.DTS < last || f.DTS-last > int64(videoResyncJump.Seconds())*ts {
			return errResync
		}
		last = f.DTS
		var au h264.AVCC
		if err := au.Unmarshal(f.Data); err != nil || len(au) == 0 {
			continue
		}
		if f.Keyframe {
			ps := append(append(append([][]byte{}, vt.src.VPS...), vt.src.SPS...), vt.src.PPS...)
			au = append(ps, au...)
		}
		dts := tsOrigin + (f.DTS-base)*90000/ts
		pts := dts + f.CTO*90000/ts
		var err error
		if vt.src.Codec == media.H265 {
			err = mw.WriteH265(track, pts, dts, au)
		} else {
			err = mw.WriteH264(track, pts, dts, au)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return fmt.Errorf("write to ffmpeg: %w", err)
		}
	}
}

// readLoop publishes ffmpeg's H.264 frames on the source's timeline: the
// first output frame is the first key frame fed.
func (vt *videoTranscoder) readLoop(ctx context.Context, r io.Reader, startc <-chan int64) error {
	mr := &mpegts.Reader{R: r}
	if err := mr.Initialize(); err != nil {
		return fmt.Errorf("ffmpeg output: %w", err)
	}
	var track *mpegts.Track
	for _, t := range mr.Tracks() {
		if _, ok := t.Codec.(*mpegts.CodecH264); ok {
			track = t
		}
	}
	if track == nil {
		return errors.New("ffmpeg output has no H.264")
	}
	ts := int64(max(vt.src.Timescale, 1))
	var start, prev, pos int64 // source PTS of the first frame; output PTS unwrapped
	var info media.TrackInfo
	got := false
	mr.OnDataH264(track, func(pts, _ int64, au [][]byte) error {
		if !got {
			select {
			case start = <-startc:
			case <-ctx.Done():
				return ctx.Err()
			}
			got, prev = true, pts
		}
		pos += (pts - prev + 1<<32) % (1 << 33) // 33-bit wrap
		pos -= 1 << 32
		prev = pts
		t := start + pos*ts/90000
		f, key, ok := vt.frame(au, &info)
		if !ok {
			return nil
		}
		if key && !vt.w.setVideoInfo(vt, info) {
			return errors.New("transcoder replaced")
		}
		vt.w.writeVideo(vt, media.Frame{DTS: t, Keyframe: key, Data: f})
		if key {
			vt.readyOnce.Do(func() { close(vt.ready) })
		}
		return nil
	})
	for {
		if err := mr.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("ffmpeg closed its output")
			}
			return err
		}
	}
}

// frame turns an output access unit into AVCC without parameter sets,
// which it records in info (they go in the init segment).
func (vt *videoTranscoder) frame(au [][]byte, info *media.TrackInfo) ([]byte, bool, bool) {
	var nalus [][]byte
	key := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			info.SPS = [][]byte{bytes.Clone(n)}
		case h264.NALUTypePPS:
			info.PPS = [][]byte{bytes.Clone(n)}
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeSEI:
		case h264.NALUTypeIDR:
			key = true
			nalus = append(nalus, n)
		default:
			nalus = append(nalus, n)
		}
	}
	if len(nalus) == 0 || len(info.SPS) == 0 || len(info.PPS) == 0 {
		return nil, false, false // nothing, or before the first parameter sets
	}
	info.Name, info.Codec, info.Timescale, info.Framerate = VideoTrack, media.H264, vt.src.Timescale, vt.src.Framerate
	info.Bitrate = vt.bitrate
	if w, h, err := media.VideoSize(*info); err == nil {
		info.Width, info.Height = w, h
	}
	b, err := h264.AVCC(nalus).Marshal()
	if err != nil {
		return nil, false, false
	}
	return b, key, true
}
