// Package transcode makes an Opus rendition of a broadcast's AAC audio for
// WebRTC viewers, who cannot receive AAC: a supervised ffmpeg process per
// broadcast (AAC in ADTS on stdin, Opus in Ogg on stdout), started when the
// first viewer needs it and kept for the broadcast's life, however many
// viewers. The rendition is published as an extra track of the broadcast
// (OpusTrack) with its own entries in both catalogs, so MoQ clients can
// use it too. moqgate itself stays pure Go: without ffmpeg (or with an
// ffmpeg lacking libopus) transcoding is unavailable and says so.
package transcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"github.com/moqgate/moqgate/media"
)

// OpusTrack is the name of the transcoded rendition.
const OpusTrack = media.OpusRendition

// Tuning.
const (
	opusBitrate = "96k"
	// feedQueue bounds the AAC frames waiting for ffmpeg (about 5 s).
	feedQueue = 256
	// resyncAfter: input timestamps this far off the transcoder's timeline
	// (a gap, a publisher restart) restart it on the new timeline.
	resyncAfter = 250 * time.Millisecond
	// wantedFor: a broadcast whose rendition was asked for gets it again at
	// once when its publisher reconnects within this time.
	wantedFor = time.Minute
	// aacPriming and opusPreSkip are the encoder delays (in 48 kHz samples)
	// the transcoded audio is moved back by to stay in sync with the video.
	aacPriming  = 1024
	opusPreSkip = 312
)

// Registry tracks the transcodable broadcasts.
type Registry struct {
	ffmpeg string
	log    *slog.Logger

	checkOnce sync.Once
	checkErr  error

	x264Once sync.Once
	x264Err  error

	mu      sync.Mutex
	writers map[string]*Writer
	wanted  map[string]time.Time

	optMu sync.Mutex
	video VideoOptions

	slotMu  sync.Mutex
	slots   int // video transcodes running
	refused atomic.Uint64

	statMu   sync.Mutex
	startedN map[string]uint64
	cpuEnded map[string]float64
}

// NewRegistry makes a registry; ffmpeg is the program ("" disables
// transcoding).
func NewRegistry(ffmpeg string, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "transcode") // once: its writers' loggers derive from it
	r := &Registry{ffmpeg: ffmpeg, log: log, writers: map[string]*Writer{}, wanted: map[string]time.Time{},
		startedN: map[string]uint64{}, cpuEnded: map[string]float64{}}
	r.ConfigureVideo(VideoOptions{})
	return r
}

// Available reports whether transcoding works here: ffmpeg runs and has
// the libopus encoder. The answer is computed once.
func (r *Registry) Available() error {
	r.checkOnce.Do(func() {
		if r.ffmpeg == "" {
			r.checkErr = errors.New("transcoding is off (webrtc.ffmpeg is empty)")
			return
		}
		path, err := hasEncoder(r.ffmpeg, "libopus")
		if err != nil {
			r.checkErr = err
			return
		}
		r.ffmpeg = path
	})
	if r.checkErr != nil {
		r.log.Warn("AAC to Opus transcoding unavailable", "reason", r.checkErr)
	}
	return r.checkErr
}

// hasEncoder finds the ffmpeg program and checks that it has an encoder.
func hasEncoder(ffmpeg, encoder string) (string, error) {
	path, err := exec.LookPath(ffmpeg)
	if err != nil {
		return "", fmt.Errorf("ffmpeg not found (%s): %w", ffmpeg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-hide_banner", "-encoders").Output()
	if err != nil {
		return "", fmt.Errorf("ffmpeg -encoders: %w", err)
	}
	if !bytes.Contains(out, []byte(encoder)) {
		return "", fmt.Errorf("this ffmpeg has no %s encoder", encoder)
	}
	return path, nil
}

// Wrap registers a broadcast's writer: the writer it returns passes
// everything on to w and adds the Opus rendition once Enable asks for it.
func (r *Registry) Wrap(path string, w media.BroadcastWriter) *Writer {
	tw := &Writer{inner: w, reg: r, path: path, log: r.log.With("broadcast", path)}
	r.mu.Lock()
	r.writers[path] = tw
	if t, ok := r.wanted[path]; ok && time.Since(t) < wantedFor {
		tw.enabled = true // a reconnecting publisher: the viewers still want it
	}
	r.mu.Unlock()
	return tw
}

// Enable asks for the Opus rendition of a broadcast's AAC audio and
// returns its track name; it appears in the catalogs shortly.
func (r *Registry) Enable(path string) (string, error) {
	if err := r.Available(); err != nil {
		return "", err
	}
	r.mu.Lock()
	w := r.writers[path]
	r.wanted[path] = time.Now()
	for p, t := range r.wanted {
		if time.Since(t) > wantedFor && r.writers[p] == nil {
			delete(r.wanted, p)
		}
	}
	r.mu.Unlock()
	if w == nil {
		return "", fmt.Errorf("broadcast %s is not published here (only RTMP broadcasts of this server are transcoded)", path)
	}
	return OpusTrack, w.enable()
}

// Running is the number of ffmpeg transcoders running.
func (r *Registry) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, w := range r.writers {
		w.mu.Lock()
		if w.tc != nil {
			n++
		}
		w.mu.Unlock()
	}
	return n
}

// Writer is a media.BroadcastWriter that adds the Opus rendition.
type Writer struct {
	inner media.BroadcastWriter
	reg   *Registry
	path  string
	log   *slog.Logger

	mu      sync.Mutex
	tracks  []media.TrackInfo // the publisher's
	opus    *media.TrackInfo  // published rendition, nil if none
	enabled bool
	tc      *transcoder
	closed  bool

	// The video rendition: its transcoder, its published parameters
	// (from its first key frame), when a viewer last asked for it, and
	// the source's measured bit rate.
	vt          *videoTranscoder
	video       *media.TrackInfo
	videoWanted time.Time
	vrate       rateMeter
	// order is the order the renditions were published in: the packager
	// keeps the groups going when renditions are only added or removed.
	order []string
}

var _ media.BroadcastWriter = (*Writer)(nil)

// Unwrap returns the wrapped writer.
func (w *Writer) Unwrap() media.BroadcastWriter { return w.inner }

func aacTrack(tracks []media.TrackInfo) *media.TrackInfo {
	for i := range tracks {
		if tracks[i].Codec == media.AAC {
			return &tracks[i]
		}
	}
	return nil
}

// SetTracks implements media.BroadcastWriter.
func (w *Writer) SetTracks(tracks []media.TrackInfo) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tracks = slices.Clone(tracks)
	w.applyVideoLocked()
	return w.applyLocked()
}

// applyLocked (re)starts or stops the transcoder for the current tracks
// and publishes them, with the rendition when there is one.
func (w *Writer) applyLocked() error {
	src := aacTrack(w.tracks)
	want := w.enabled && src != nil && !w.closed
	if w.tc != nil && (!want || !w.tc.sameSource(*src)) {
		w.tc.stop()
		w.tc = nil
		w.opus = nil
	}
	if want && w.tc == nil {
		tc, info, err := startTranscoder(w, *src)
		if err != nil {
			w.log.Warn("AAC to Opus transcoder not started", "err", err)
		} else {
			w.tc, w.opus = tc, &info
		}
	}
	return w.publishLocked()
}

// publishLocked publishes the publisher's tracks and the renditions there
// are, in the order they appeared.
func (w *Writer) publishLocked() error {
	have := map[string]*media.TrackInfo{OpusTrack: w.opus, VideoTrack: w.video}
	order := w.order[:0]
	for _, n := range w.order {
		if have[n] != nil {
			order = append(order, n)
		}
	}
	for _, n := range []string{OpusTrack, VideoTrack} {
		if have[n] != nil && !slices.Contains(order, n) {
			order = append(order, n)
		}
	}
	w.order = order
	tracks := slices.Clone(w.tracks)
	for _, n := range order {
		tracks = append(tracks, *have[n])
	}
	return w.inner.SetTracks(tracks)
}

func (w *Writer) enable() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("broadcast ended")
	}
	if aacTrack(w.tracks) == nil {
		return errors.New("the broadcast has no AAC audio")
	}
	if w.enabled && w.tc != nil {
		return nil
	}
	w.enabled = true
	return w.applyLocked()
}

// WriteFrame implements media.BroadcastWriter.
func (w *Writer) WriteFrame(track string, f media.Frame) error {
	err := w.inner.WriteFrame(track, f)
	w.mu.Lock()
	tc, vt := w.tc, w.vt
	if v := videoTrack(w.tracks); v != nil && v.Name == track {
		w.vrate.add(f)
	}
	w.mu.Unlock()
	if tc != nil && track == tc.src.Name {
		tc.feed(f)
	}
	if vt != nil && track == vt.src.Name {
		vt.feed(f)
	}
	return err
}

// Close implements media.BroadcastWriter: the transcoder stops with the
// publisher.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closed = true
	tc := w.tc
	w.tc = nil
	w.stopVideoLocked("the publisher left")
	w.mu.Unlock()
	if tc != nil {
		tc.stop()
	}
	w.reg.mu.Lock()
	if w.reg.writers[w.path] == w {
		delete(w.reg.writers, w.path)
	}
	w.reg.mu.Unlock()
	return w.inner.Close()
}

// writeOpus publishes one transcoded packet.
func (w *Writer) writeOpus(tc *transcoder, f media.Frame) {
	w.mu.Lock()
	current := w.tc == tc
	w.mu.Unlock()
	if !current {
		return
	}
	if err := w.inner.WriteFrame(OpusTrack, f); err != nil {
		w.log.Debug("Opus frame not published", "err", err)
	}
	tc.ready.Store(true)
}

// transcoder is one ffmpeg process and its feeding and reading goroutines,
// restarted (on a new timeline) when it dies or the input jumps.
type transcoder struct {
	w        *Writer
	src      media.TrackInfo
	adts     mpeg4audio.ADTSPacket
	channels int

	in      chan media.Frame
	cancel  context.CancelFunc
	done    chan struct{}
	started time.Time
	cpu     cpuMeter
	ready   atomic.Bool // a packet was published
}

func (t *transcoder) describe() Status {
	t.cpu.sample()
	return Status{Broadcast: t.w.path, Rendition: OpusTrack, Codec: string(media.Opus), Source: t.src.Name,
		SourceCodec: string(t.src.Codec), Started: t.started, Bitrate: 96000, Ready: t.ready.Load(),
		CPUSeconds: t.cpu.total(), CPUPercent: t.cpu.percent()}
}

func (t *transcoder) sameSource(src media.TrackInfo) bool {
	return src.Name == t.src.Name && bytes.Equal(src.AACConfig, t.src.AACConfig) && src.Timescale == t.src.Timescale
}

func startTranscoder(w *Writer, src media.TrackInfo) (*transcoder, media.TrackInfo, error) {
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(src.AACConfig); err != nil {
		return nil, media.TrackInfo{}, fmt.Errorf("AAC config: %w", err)
	}
	typ := asc.Type
	if typ == mpeg4audio.ObjectTypeSBR || typ == mpeg4audio.ObjectTypePS {
		typ = mpeg4audio.ObjectTypeAACLC // HE-AAC: ADTS carries the core, the decoder finds SBR
	}
	if typ < 1 || typ > 4 {
		return nil, media.TrackInfo{}, fmt.Errorf("AAC object type %d cannot go in ADTS", asc.Type)
	}
	if src.Timescale == 0 {
		return nil, media.TrackInfo{}, errors.New("AAC track without timescale")
	}
	ch := src.Channels
	if ch <= 0 {
		ch = int(asc.ChannelConfig)
	}
	ch = min(max(ch, 1), 2)
	ctx, cancel := context.WithCancel(context.Background())
	t := &transcoder{
		w: w, src: src, channels: ch,
		adts: mpeg4audio.ADTSPacket{Type: typ, SampleRate: asc.SampleRate, ChannelConfig: asc.ChannelConfig},
		in:   make(chan media.Frame, feedQueue), cancel: cancel, done: make(chan struct{}), started: time.Now(),
	}
	w.reg.started(OpusTrack)
	info := media.TrackInfo{Name: OpusTrack, Codec: media.Opus, Timescale: 48000, SampleRate: 48000,
		Channels: ch, OpusPreSkip: opusPreSkip}
	go t.supervise(ctx)
	w.log.Info("AAC to Opus transcoder started", "source", src.Name, "channels", ch)
	return t, info, nil
}

// feed queues an AAC frame for ffmpeg without ever blocking the ingest.
func (t *transcoder) feed(f media.Frame) {
	f.Data = bytes.Clone(f.Data)
	select {
	case t.in <- f:
	default:
		t.w.log.Debug("transcoder queue full; AAC frame dropped")
	}
}

func (t *transcoder) stop() {
	t.cancel()
	<-t.done
	t.w.reg.ended(OpusTrack, &t.cpu)
	t.w.log.Info("AAC to Opus transcoder stopped")
}

// supervise runs ffmpeg until stopped. The Opus timeline starts at the
// first AAC frame's time and follows the samples produced.
func (t *transcoder) supervise(ctx context.Context) {
	defer close(t.done)
	p := &process{log: t.w.log, what: "AAC to Opus", ffmpeg: t.w.reg.ffmpeg, feed: t.feedLoop, read: t.readLoop, cpu: &t.cpu,
		args: func() []string {
			return []string{"-hide_banner", "-loglevel", "error", "-nostdin",
				"-fflags", "nobuffer", "-probesize", "32", "-analyzeduration", "0",
				"-f", "aac", "-i", "pipe:0",
				"-vn", "-c:a", "libopus", "-b:a", opusBitrate, "-ar", "48000", "-ac", fmt.Sprint(t.channels),
				"-application", "audio", "-frame_duration", "20",
				"-f", "ogg", "-page_duration", "20000", "-flush_packets", "1", "pipe:1"}
		}}
	p.supervise(ctx)
}

// feedLoop writes the queued AAC frames to ffmpeg as ADTS.
func (t *transcoder) feedLoop(ctx context.Context, w io.Writer, startc chan<- int64) error {
	var next int64 // expected DTS of the next frame, in 48 kHz samples
	first := true
	for {
		var f media.Frame
		select {
		case <-ctx.Done():
			return ctx.Err()
		case f = <-t.in:
		}
		dts48 := f.DTS * 48000 / int64(t.src.Timescale)
		if first {
			first = false
			startc <- dts48
			next = dts48
		} else if d := dts48 - next; d > resyncAfter.Milliseconds()*48 || d < -resyncAfter.Milliseconds()*48 {
			return errResync
		}
		next = dts48 + 1024*48000/int64(max(t.adts.SampleRate, 1))
		pkt := t.adts
		pkt.AU = f.Data
		b, err := mpeg4audio.ADTSPackets{&pkt}.Marshal()
		if err != nil {
			continue
		}
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("write to ffmpeg: %w", err)
		}
	}
}

// readLoop publishes ffmpeg's Opus packets.
func (t *transcoder) readLoop(ctx context.Context, r io.Reader, startc <-chan int64) error {
	or := newOggReader(r)
	var start int64
	got := false
	var pos int64 // samples produced
	for n := 0; ; n++ {
		p, err := or.next()
		if err != nil {
			if err == io.EOF {
				return errors.New("ffmpeg closed its output")
			}
			return err
		}
		if n < 2 || bytes.HasPrefix(p, []byte("OpusHead")) || bytes.HasPrefix(p, []byte("OpusTags")) {
			continue // headers
		}
		if !got {
			select {
			case start = <-startc:
			case <-ctx.Done():
				return ctx.Err()
			}
			got = true
		}
		dur := opus.PacketDuration2(p)
		if dur <= 0 {
			continue
		}
		dts := max(start+pos-aacPriming*48000/int64(max(t.adts.SampleRate, 1))-opusPreSkip, 0)
		pos += dur
		t.w.writeOpus(t, media.Frame{DTS: dts, Duration: dur, Keyframe: true, Data: p})
	}
}

// tail keeps the last lines ffmpeg wrote to stderr.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2048 {
		t.buf = t.buf[len(t.buf)-2048:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
