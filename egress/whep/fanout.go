package whep

import (
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/moqgate/moqgate/media"
)

// fanWorker sends a feed's frames to a share of its viewers: frames are
// packetized once by the feed, and each worker writes every packet of a
// frame to each of its viewers in turn. Compared with a goroutine per
// viewer this wakes one goroutine per frame, and the packets of a frame to
// one viewer leave together (one UDP GSO send). A feed has up to GOMAXPROCS
// workers, so one broadcast can use every core.
type fanWorker struct {
	f    *feed
	wake chan struct{}

	mu      sync.Mutex
	senders []*sender
	joins   []*sender
}

// addSender hands s to the feed's least loaded worker, starting workers
// as needed.
func (f *feed) addSender(s *sender) {
	f.wmu.Lock()
	var w *fanWorker
	best := 0
	for _, c := range f.workers {
		if n := c.load(); w == nil || n < best {
			w, best = c, n
		}
	}
	if w == nil || (best >= f.sendersPerWorker() && len(f.workers) < runtime.GOMAXPROCS(0)) {
		w = &fanWorker{f: f, wake: make(chan struct{}, 1)}
		f.workers = append(f.workers, w)
		go w.run()
	}
	f.wmu.Unlock()
	w.mu.Lock()
	w.joins = append(w.joins, s)
	w.mu.Unlock()
	w.poke()
}

// flushEvery: a worker sends what it queued after this many viewers.
const flushEvery = 16

// A feed starts another worker when its workers have packetsPerWorker
// packets a frame to send (a few milliseconds of work), or at least
// minSendersPerWorker viewers: each worker is one more goroutine to wake per
// frame and one more to contend for the socket, which costs more than it
// saves while a frame to all of a worker's viewers is quick to send.
const (
	packetsPerWorker    = 1024
	minSendersPerWorker = 32
)

// sendersPerWorker is how many viewers a worker of the feed takes.
func (f *feed) sendersPerWorker() int {
	f.mu.Lock()
	frames, packets := f.nframes, f.npackets
	f.mu.Unlock()
	if frames == 0 || packets == 0 {
		return minSendersPerWorker
	}
	return max(minSendersPerWorker, int(packetsPerWorker*frames/packets))
}

func (w *fanWorker) load() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.senders) + len(w.joins)
}

func (w *fanWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run delivers frames until the feed ends.
func (w *fanWorker) run() {
	f := w.f
	var frames []*rtpFrame
	f.mu.Lock()
	next := f.head
	f.mu.Unlock()
	for {
		var skipped, ended bool
		var wait <-chan struct{}
		frames, next, skipped, wait, ended = f.read(frames[:0], next)

		w.mu.Lock()
		joins := w.joins
		w.joins = nil
		senders := w.senders
		w.mu.Unlock()
		eng := f.hub.srv.cfg.Engine
		burst := len(frames) > 0 || len(joins) > 0
		if burst {
			eng.Hold() // this goroutine flushes what it queues
		}
		for _, s := range joins {
			s.join(f, next)
		}
		if len(joins) > 0 {
			senders = append(slices.Clone(senders), joins...)
		}
		if skipped && f.kind == media.Video {
			for _, s := range senders {
				s.needKey = true
			}
			f.hub.requestKeyframe()
		}
		live := senders[:0:0]
		var now time.Time
		if len(frames) > 0 {
			now = time.Now()
		}
		for i, s := range senders {
			if s.gone.Load() {
				continue
			}
			for _, fr := range frames {
				s.deliver(f, fr)
			}
			if len(frames) > 0 {
				s.report(now)
			}
			if len(frames) > 0 && i%flushEvery == flushEvery-1 {
				eng.Flush() // keep the send queue short during a key frame to many viewers
			}
			if ended {
				s.feedEnded()
				continue
			}
			live = append(live, s)
		}
		if burst {
			eng.Release()
		}
		for i := range frames {
			frames[i] = nil
		}
		w.mu.Lock()
		if len(joins) > 0 || len(live) != len(w.senders) {
			w.senders = live
		}
		w.mu.Unlock()
		if ended {
			return
		}
		select {
		case <-wait:
		case <-w.wake:
		case <-f.hub.done:
			// the feed ends too: read once more to see it
		}
	}
}

// read appends the frames from next on to out and returns the new next.
// When the worker is more than lagMax behind, it skips to the newest
// frame (video: to the next key frame) and reports it.
func (f *feed) read(out []*rtpFrame, next uint64) ([]*rtpFrame, uint64, bool, <-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	skipped := false
	if next+ringSize <= f.head {
		next, skipped = f.head, true
	} else if next < f.head {
		newest := f.ring[(f.head-1)%ringSize].mediaNS
		if newest-f.ring[next%ringSize].mediaNS > int64(lagMax) {
			next, skipped = f.head, true
		}
	}
	for ; next < f.head; next++ {
		out = append(out, f.ring[next%ringSize])
	}
	return out, next, skipped, f.notify, f.ended
}

// frames returns the frames [from, to) still in the ring.
func (f *feed) frames(from, to uint64) []*rtpFrame {
	f.mu.Lock()
	defer f.mu.Unlock()
	if to > f.head {
		to = f.head
	}
	if from+ringSize <= f.head {
		from = f.head - ringSize + 1
	}
	var out []*rtpFrame
	for i := from; i < to; i++ {
		out = append(out, f.ring[i%ringSize])
	}
	return out
}

// join starts a viewer at next, the first frame the worker has not sent:
// video at the newest key frame before it (the frames after the key frame
// in one burst when they span at most joinBurstMax, else the key frame
// alone and then live from the next key frame), audio with the next frame.
func (s *sender) join(f *feed, next uint64) {
	if s.kind != media.Video {
		return
	}
	s.needKey = true
	k := f.newestKey()
	if k == nil || k.idx >= next {
		return // the next key frame starts it
	}
	backlog := f.frames(k.idx, next)
	if len(backlog) == 0 || backlog[0] != k {
		return
	}
	if backlog[len(backlog)-1].mediaNS-k.mediaNS > int64(joinBurstMax) {
		s.deliver(f, k)
		s.needKey = true
		return
	}
	for _, fr := range backlog {
		s.deliver(f, fr)
	}
}

// requestKeyframe asks the publisher of the video for a key frame, at most
// once a second for the broadcast (a request for a new group on the
// track: draft-16 NEW_GROUP_REQUEST where it crosses relays).
func (h *hub) requestKeyframe() {
	now := time.Now().UnixNano()
	if last := h.lastKeyReq.Load(); now-last < int64(time.Second) || !h.lastKeyReq.CompareAndSwap(last, now) {
		return
	}
	// Callers may hold a feed's or a sender's lock.
	go func() {
		h.mu.Lock()
		var video []*feed
		for _, f := range h.feeds {
			if f.kind == media.Video {
				video = append(video, f)
			}
		}
		h.mu.Unlock()
		for _, f := range video {
			f.requestNewGroup()
		}
	}()
}
