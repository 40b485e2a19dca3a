package media

import (
	"errors"
	"fmt"
	"math"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// maxFrameSize bounds one access unit (a 4K intra frame is a few MiB).
const maxFrameSize = 64 << 20

// Sample flags: a sync sample depends on nothing; a non-sync one depends on
// others (sample_depends_on=1) and has sample_is_non_sync_sample set.
const (
	syncSampleFlags    = mp4.SyncSampleFlags
	nonSyncSampleFlags = 0x01000000 | mp4.NonSyncSampleFlags
)

// FragmentWriter turns the frames of one track into CMAF chunks, one
// moof+mdat per frame, for a player that already has the track's
// InitSegment. Objects go out as soon as a frame arrives, so a frame's
// duration cannot wait for the next frame: it is Frame.Duration when set,
// else the last DTS delta, else a default from the frame or sample rate.
// A FragmentWriter is not safe for concurrent use.
type FragmentWriter struct {
	kind        Kind
	timescale   uint32
	defaultDur  int64
	seq         uint32
	lastDTS     int64
	lastDur     int64
	haveLastDTS bool
}

// NewFragmentWriter returns a FragmentWriter for track t, whose
// sequence numbers start at 1.
func NewFragmentWriter(t TrackInfo) *FragmentWriter {
	return &FragmentWriter{
		kind:       t.Codec.Kind(),
		timescale:  t.Timescale,
		defaultDur: defaultFrameDuration(t),
	}
}

// Fragment returns one moof+mdat holding f as its single sample: tfdt is
// f.DTS, the trun (version 1) carries the duration, size, sync flags and
// the signed composition offset f.CTO, and mfhd numbers increase by one.
func (w *FragmentWriter) Fragment(f Frame) ([]byte, error) {
	b, _, err := w.fragment(f)
	return b, err
}

// fragment is Fragment that also returns the frame as a reader of the
// chunk would see it: Data pointing into the chunk's mdat, the duration
// written, Keyframe as the sample flags say.
func (w *FragmentWriter) fragment(f Frame) ([]byte, Frame, error) {
	if w.timescale == 0 {
		return nil, Frame{}, errors.New("media: fragment: track timescale is 0")
	}
	if f.DTS < 0 {
		return nil, Frame{}, fmt.Errorf("media: fragment: negative DTS %d cannot go in tfdt", f.DTS)
	}
	if len(f.Data) == 0 || len(f.Data) > maxFrameSize {
		return nil, Frame{}, fmt.Errorf("media: fragment: frame size %d out of range", len(f.Data))
	}
	if f.CTO < math.MinInt32 || f.CTO > math.MaxInt32 {
		return nil, Frame{}, fmt.Errorf("media: fragment: composition offset %d out of range", f.CTO)
	}
	dur := w.duration(f)
	if dur > math.MaxUint32 {
		return nil, Frame{}, fmt.Errorf("media: fragment: duration %d out of range", dur)
	}
	flags := uint32(syncSampleFlags)
	if w.kind == Video && !f.Keyframe {
		flags = nonSyncSampleFlags
	}

	w.seq++
	frag, err := mp4.CreateFragment(w.seq, cmafTrackID)
	if err != nil {
		return nil, Frame{}, fmt.Errorf("media: fragment: %w", err)
	}
	frag.AddSample(mp4.NewSample(flags, uint32(dur), uint32(len(f.Data)), int32(f.CTO)), uint64(f.DTS))
	// The mdat refers to the frame instead of copying it: the one copy is
	// the encode into the object below.
	frag.Mdat.SetData(f.Data)
	sw := bits.NewFixedSliceWriter(int(frag.Size()))
	if err := frag.EncodeSW(sw); err != nil {
		return nil, Frame{}, fmt.Errorf("media: fragment: %w", err)
	}
	w.lastDTS, w.haveLastDTS, w.lastDur = f.DTS, true, dur
	b := sw.Bytes()
	f.Data = b[len(b)-len(f.Data):] // the mdat is last and holds only f
	f.Duration = dur
	f.Keyframe = flags == syncSampleFlags
	return b, f, nil
}

func (w *FragmentWriter) duration(f Frame) int64 {
	switch {
	case f.Duration > 0:
		return f.Duration
	case w.haveLastDTS && f.DTS > w.lastDTS && f.DTS-w.lastDTS <= 10*int64(w.timescale):
		// A larger step is a gap, not a frame interval.
		return f.DTS - w.lastDTS
	case w.lastDur > 0:
		return w.lastDur
	}
	return w.defaultDur
}

// defaultFrameDuration is the duration of one frame in t's timescale when
// nothing better is known: 1/framerate (30 fps if unknown) for video, the
// codec's frame size for audio (AAC 1024, MP3 1152 or 576 samples, Opus
// 20 ms).
func defaultFrameDuration(t TrackInfo) int64 {
	secs := 1.0 / 30
	switch t.Codec {
	case AAC:
		rate := t.SampleRate
		if hdr, err := parseASC(t.AACConfig); err == nil && hdr.SamplingFrequency > 0 {
			rate = hdr.SamplingFrequency // the core rate; HE-AAC doubles samples and rate alike
		}
		if rate <= 0 {
			rate = 48000
		}
		secs = 1024 / float64(rate)
	case MP3:
		rate := t.SampleRate
		if rate <= 0 {
			rate = 44100
		}
		n := 1152.0
		if rate < 32000 {
			n = 576
		}
		secs = n / float64(rate)
	case Opus:
		secs = 0.020
	default:
		if t.Framerate > 0 && t.Framerate < 1000 {
			secs = 1 / t.Framerate
		}
	}
	d := int64(math.Round(secs * float64(t.Timescale)))
	if d < 1 {
		d = 1
	}
	return d
}

// forgetTimeline drops the DTS history used to guess durations, for a
// track whose timestamps restarted; sequence numbers keep increasing.
func (w *FragmentWriter) forgetTimeline() {
	w.haveLastDTS, w.lastDur = false, 0
}
