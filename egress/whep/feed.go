package whep

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// ringSize is how many recent frames a feed keeps for its viewers (about
// 17 s of 30 fps video, 10 s of 20 ms audio): a viewer joins at the newest
// key frame in it and skips ahead when it falls further behind than lagMax.
const ringSize = 512

// lagMax: a viewer this far behind the newest frame skips ahead.
const lagMax = 1500 * time.Millisecond

// rtpFrame is one access unit, packetized once for every viewer.
type rtpFrame struct {
	idx      uint64
	mediaNS  int64 // presentation time on the broadcast timeline, in ns
	key      bool
	payloads [][]byte
	bytes    int
}

// feed follows one media track of a broadcast: it reads the track's
// objects once (one MoQ subscription however many viewers), turns each
// into RTP payloads, and keeps the newest frames in a ring that every
// viewer of the track reads.
type feed struct {
	hub   *hub
	name  string
	codec media.Codec
	kind  media.Kind
	clock uint32 // RTP clock: 90 kHz video, 48 kHz Opus
	log   *slog.Logger

	mu       sync.Mutex
	ring     [ringSize]*rtpFrame
	head     uint64 // frames appended so far
	lastKey  uint64 // index+1 of the newest key frame (0: none yet)
	notify   chan struct{}
	ended    bool
	reorders bool   // B-frames: presentation order differs from decode order
	nframes  uint64 // frames and their packets so far, for the fan-out's sizing
	npackets uint64
	reorderF atomic.Bool
	fr       *media.FrameReader // once subscribed

	wmu     sync.Mutex
	workers []*fanWorker

	// Owned by run.
	pk        packetizer
	timescale int64
	offset    int64 // added to DTS/PTS (track timescale) to keep the timeline continuous
	lastDTS   int64
	lastDur   int64
	haveDTS   bool
	lastPTS   int64
	havePTS   bool
}

func newFeed(h *hub, name string, init []byte) (*feed, error) {
	info, err := media.ParseInit(init)
	if err != nil {
		return nil, err
	}
	pk, err := newPacketizer(info)
	if err != nil {
		return nil, err
	}
	f := &feed{hub: h, name: name, codec: info.Codec, kind: info.Codec.Kind(), pk: pk,
		timescale: int64(info.Timescale), notify: make(chan struct{}), log: h.log.With("track", name)}
	f.clock = 90000
	if f.kind == media.Audio {
		f.clock = 48000
	}
	return f, nil
}

// requestNewGroup asks the track's publisher for a key frame (through the
// media model, so from any relay).
func (f *feed) requestNewGroup() {
	f.mu.Lock()
	fr := f.fr
	f.mu.Unlock()
	if fr != nil {
		fr.RequestNewGroup()
	}
}

func (f *feed) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ended {
		f.ended = true
		close(f.notify)
	}
}

// run reads the track until it ends or ctx is done.
func (f *feed) run(ctx context.Context, br *media.BroadcastReader) {
	defer f.end()
	prio := uint8(60)
	if f.kind == media.Audio {
		prio = 80
	}
	fr, err := br.Track(ctx, f.name, moq.SubscribeOptions{Priority: prio, GroupOrder: 2})
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("WHEP: cannot subscribe to the track", "err", err)
		}
		return
	}
	defer fr.Close()
	f.mu.Lock()
	f.fr = fr
	f.mu.Unlock()
	if f.kind == media.Video {
		// The viewers that made this feed start with the next key frame.
		fr.RequestNewGroup()
	}
	for {
		c, err := fr.Next(ctx)
		if err != nil {
			if !errors.Is(err, moq.ErrTrackEnded) && ctx.Err() == nil {
				f.log.Debug("WHEP feed ended", "err", err)
			}
			return
		}
		if c.InitChanged {
			info := fr.Info()
			if info.Codec != f.codec {
				f.log.Warn("WHEP: the track changed codec; viewers keep the old one and stop", "old", f.codec, "new", info.Codec)
				return
			}
			f.timescale = int64(info.Timescale)
			f.pk.setInfo(info)
		}
		for _, fm := range c.Frames {
			f.frame(fm)
		}
	}
}

func (f *feed) frame(fr media.Frame) {
	ts := f.timescale
	if ts <= 0 {
		return
	}
	// Keep the timeline continuous across publisher restarts: a DTS that
	// goes back or jumps ahead by more than 10 s continues from the last.
	if f.haveDTS {
		d := fr.DTS + f.offset - f.lastDTS
		if d <= 0 || d > 10*ts {
			step := f.lastDur
			if step <= 0 {
				step = ts / 50
			}
			f.offset = f.lastDTS + step - fr.DTS
			f.log.Info("WHEP: timestamp discontinuity smoothed over", "jump", d)
		}
	}
	dts := fr.DTS + f.offset
	if f.haveDTS && dts > f.lastDTS {
		f.lastDur = dts - f.lastDTS
	}
	f.lastDTS, f.haveDTS = dts, true
	pts := dts + fr.CTO
	if f.kind == media.Video && f.havePTS && pts < f.lastPTS {
		f.markReorders()
	}
	f.lastPTS, f.havePTS = pts, true
	payloads, err := f.pk.packetize(fr.Data, fr.Keyframe)
	if err != nil {
		f.log.Debug("WHEP: frame not packetized", "err", err)
		return
	}
	n := 0
	for _, p := range payloads {
		n += len(p)
	}
	rf := &rtpFrame{mediaNS: mulDiv(pts, int64(time.Second), ts), key: fr.Keyframe, payloads: payloads, bytes: n}
	f.mu.Lock()
	if f.ended {
		f.mu.Unlock()
		return
	}
	rf.idx = f.head
	f.ring[f.head%ringSize] = rf
	f.head++
	f.nframes++
	f.npackets += uint64(len(payloads))
	if rf.key {
		f.lastKey = rf.idx + 1
	}
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
}

func (f *feed) markReorders() {
	f.mu.Lock()
	first := !f.reorders
	f.reorders = true
	f.reorderF.Store(true)
	f.mu.Unlock()
	if first {
		f.log.Warn("WHEP: the video has B-frames (presentation order differs from decode order)")
	}
}

// checkReorders waits until the feed shows whether its video has B-frames:
// n frames read, B-frames seen, or timeout. It reports whether it has.
func (f *feed) checkReorders(done <-chan struct{}, n uint64, timeout time.Duration) bool {
	deadline := time.After(timeout)
	f.mu.Lock()
	start := f.head
	f.mu.Unlock()
	for {
		f.mu.Lock()
		head, wait, ended, reorders := f.head, f.notify, f.ended, f.reorders
		f.mu.Unlock()
		if reorders || ended || head >= start+n {
			return reorders
		}
		select {
		case <-wait:
		case <-deadline:
			return false
		case <-done:
			return false
		}
	}
}

// reordersFast is hasReorders without the lock, for the fan-out.
func (f *feed) reordersFast() bool { return f.reorderF.Load() }

// hasReorders reports whether B-frames were seen.
func (f *feed) hasReorders() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reorders
}

// mulDiv returns a*b/c without overflowing for media timestamps.
func mulDiv(a, b, c int64) int64 {
	q, r := a/c, a%c
	return q*b + r*b/c
}

// settle waits until the feed has frames and the burst of the objects
// already cached by the relay (the current group) has been read, so that
// a viewer starts at the newest frames rather than the oldest cached.
func (f *feed) settle(done <-chan struct{}) {
	for i := 0; ; i++ {
		f.mu.Lock()
		head, wait, ended := f.head, f.notify, f.ended
		f.mu.Unlock()
		if ended || (head > 0 && i > 0) {
			return
		}
		if head > 0 {
			// Frames came; let the rest of the cached group arrive.
			select {
			case <-time.After(20 * time.Millisecond):
			case <-done:
				return
			}
			continue
		}
		select {
		case <-wait:
		case <-done:
			return
		}
	}
}

// newest returns the media time of the newest frame (ok false if none).
func (f *feed) newest() (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.head == 0 {
		return 0, false
	}
	return f.ring[(f.head-1)%ringSize].mediaNS, true
}

// newestKey returns the newest key frame, for a viewer that needs one.
func (f *feed) newestKey() *rtpFrame {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lastKey == 0 || f.head-(f.lastKey-1) >= ringSize {
		return nil
	}
	return f.ring[(f.lastKey-1)%ringSize]
}
