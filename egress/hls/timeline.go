package hls

import (
	"math/big"
	"sync"
	"time"
)

// maxForwardGap is the largest forward step between two samples of a track
// that is still taken as media time; a larger one (a publisher that paused
// or reconnected with a clock that kept running) is closed up, like a step
// backwards.
const maxForwardGap = 2 * time.Second

// timeline maps the timestamps of a broadcast's tracks onto one continuous
// output timeline. A publisher that reconnects (RTMP within the grace
// period) starts its clock again; the MoQ tracks carry on, and so must the
// HLS media timeline: gohlslib and the players need timestamps that never
// go backwards within a muxer. Each such restart starts an epoch whose
// offset places it right after everything written so far; every track
// joins the new epoch when its own timestamps jump, so audio and video stay
// in sync within an epoch. The timeline outlives muxer generations, so a
// new muxer after a codec change continues the old one's clock.
type timeline struct {
	mu     sync.Mutex
	epoch  int           // 0 = no sample yet
	offset time.Duration // added to source time in the current epoch
	maxEnd time.Duration // furthest output end time of any track
	// wall is the wall clock of output time 0 (EXT-X-PROGRAM-DATE-TIME):
	// the earliest arrival time of any sample minus its output time. A
	// sample cannot arrive before it was made, and the first ones come in
	// a burst from the relay's cache (the current GOP, up to its length
	// late), so the minimum is the best estimate of when media was made.
	wall time.Time
}

// trackClock is one track's position on the timeline.
type trackClock struct {
	timescale int64 // of the source timestamps
	clock     int64 // of the output timestamps (what gohlslib wants)

	epoch     int
	offTicks  int64 // this track's offset in the current epoch, output clock units
	have      bool
	lastSrc   int64         // last source DTS
	lastEnd   time.Duration // output time after the last sample
	nextAudio int64         // audio: where the next frame would start, output units
}

func newTrackClock(timescale uint32, clock int) *trackClock {
	return &trackClock{timescale: int64(timescale), clock: int64(clock)}
}

// scale converts v from rate from to rate to, rounding to nearest, without
// overflowing for any int64 input.
func scale(v, from, to int64) int64 {
	if from == to {
		return v
	}
	// Fast path: the product fits in 63 bits.
	if v >= 0 && v < (1<<62)/to {
		return (v*to + from/2) / from
	}
	r := new(big.Int).Mul(big.NewInt(v), big.NewInt(to))
	half := big.NewInt(from / 2)
	if v < 0 {
		half.Neg(half)
	}
	r.Add(r, half)
	r.Quo(r, big.NewInt(from))
	return r.Int64()
}

// toDur converts ticks at rate to a duration.
func toDur(ticks, rate int64) time.Duration {
	return time.Duration(scale(ticks, rate, int64(time.Second)))
}

// place maps a sample (source DTS and duration in the track's timescale,
// duration 0 = unknown) to output DTS in clock units, and returns the wall
// clock time of that DTS. frameDur (clock units, audio only) is the exact
// duration of an audio frame when the codec fixes it: audio timestamps then
// advance by exactly that much (RTMP rounds them to milliseconds, which
// would make AAC frames 1008 or 1056 samples long), unless they drift by
// more than a frame from the source.
func (tl *timeline) place(tc *trackClock, srcDTS, srcDur int64, frameDur int64) (int64, time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.epoch == 0 {
		// Output time starts at 0 at the first sample of the broadcast.
		tl.epoch = 1
		tl.offset = -toDur(srcDTS, tc.timescale)
	}
	if tc.epoch == 0 {
		tc.join(tl)
	}
	out := scale(srcDTS, tc.timescale, tc.clock) + tc.offTicks
	outT := toDur(out, tc.clock)
	if tc.have {
		backwards := srcDTS <= tc.lastSrc
		gap := outT - tc.lastEnd
		if backwards || gap > maxForwardGap {
			if tl.epoch > tc.epoch {
				// Another track saw the restart first: join its epoch.
				tc.join(tl)
			} else {
				// A new epoch, starting where the furthest track ended.
				tl.epoch++
				tl.offset = tl.maxEnd - toDur(srcDTS, tc.timescale)
				tc.join(tl)
			}
			out = scale(srcDTS, tc.timescale, tc.clock) + tc.offTicks
			outT = toDur(out, tc.clock)
			if outT < tc.lastEnd {
				// The epoch started with a later sample of another track;
				// shift this track by the overlap rather than overlap it
				// (a few ms of A/V offset at worst).
				d := scale(int64(tc.lastEnd-outT), int64(time.Second), tc.clock)
				tc.offTicks += d
				out += d
				outT = toDur(out, tc.clock)
			}
			tc.nextAudio = 0
		}
	}
	if frameDur > 0 {
		// Audio: advance by whole frames while the source agrees within a
		// frame; resynchronise otherwise.
		if tc.nextAudio != 0 && abs64(out-tc.nextAudio) <= frameDur {
			out = tc.nextAudio
		}
		tc.nextAudio = out + frameDur
	}
	dur := frameDur
	switch {
	case dur > 0:
	case srcDur > 0:
		dur = scale(srcDur, tc.timescale, tc.clock)
	case tc.have && srcDTS > tc.lastSrc:
		dur = scale(srcDTS-tc.lastSrc, tc.timescale, tc.clock) // the last frame interval
	}
	end := toDur(out+dur, tc.clock)
	tc.have, tc.lastSrc = true, srcDTS
	tc.lastEnd = max(end, toDur(out, tc.clock))
	if tc.lastEnd > tl.maxEnd {
		tl.maxEnd = tc.lastEnd
	}
	outT = toDur(out, tc.clock)
	if made := time.Now().Add(-outT); tl.wall.IsZero() || made.Before(tl.wall) {
		tl.wall = made
	}
	return out, tl.wall.Add(outT)
}

// join moves tc into tl's current epoch.
func (tc *trackClock) join(tl *timeline) {
	tc.epoch = tl.epoch
	tc.offTicks = scale(int64(tl.offset), int64(time.Second), tc.clock)
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// rebase changes the track's source timescale and output clock (a new init
// segment with other rates), keeping its place on the timeline.
func (tc *trackClock) rebase(timescale uint32, clock int) {
	if tc.timescale == int64(timescale) && tc.clock == int64(clock) {
		return
	}
	tc.lastSrc = scale(tc.lastSrc, tc.timescale, int64(timescale))
	tc.offTicks = scale(tc.offTicks, tc.clock, int64(clock))
	tc.timescale, tc.clock = int64(timescale), int64(clock)
	tc.nextAudio = 0
}
