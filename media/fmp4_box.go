package media

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// FMP4DefaultMaxBoxSize bounds a single box when the caller passes no limit.
// A GOP-long fragment of 1080p video at 20 Mbit/s and 2 s is ~5 MB, so 64 MiB
// leaves ample room while keeping a hostile stream from exhausting memory.
const FMP4DefaultMaxBoxSize = 64 << 20

// fmp4MaxBoxLimit caps any configured limit so that box sizes always fit the
// 32-bit size field used when re-assembling headers for mp4ff.
const fmp4MaxBoxLimit = 1<<32 - 64

// Sample flag bit sample_is_non_sync_sample (ISO/IEC 14496-12 8.8.3.1).
const fmp4SampleIsNonSync = 0x00010000

// errFMP4Short reports a box header or field that runs past its container.
var errFMP4Short = errors.New("fmp4: truncated box")

// fmp4BoxHeader is a parsed ISO BMFF box header.
type fmp4BoxHeader struct {
	typ    string
	size   uint64 // whole box including header; 0 = up to end of stream
	hdrLen int
}

// parseFMP4Header parses a box header at the start of b (b may hold more).
func parseFMP4Header(b []byte) (fmp4BoxHeader, error) {
	if len(b) < 8 {
		return fmp4BoxHeader{}, errFMP4Short
	}
	h := fmp4BoxHeader{
		size:   uint64(binary.BigEndian.Uint32(b)),
		typ:    string(b[4:8]),
		hdrLen: 8,
	}
	switch h.size {
	case 0:
		// "extends to the end of the file"; the caller decides if that is OK.
	case 1:
		if len(b) < 16 {
			return fmp4BoxHeader{}, errFMP4Short
		}
		h.size = binary.BigEndian.Uint64(b[8:16])
		h.hdrLen = 16
		if h.size < 16 {
			return fmp4BoxHeader{}, fmt.Errorf("fmp4: box %q: size %d smaller than its header", printableType(h.typ), h.size)
		}
	default:
		if h.size < 8 {
			return fmp4BoxHeader{}, fmt.Errorf("fmp4: box %q: size %d smaller than its header", printableType(h.typ), h.size)
		}
	}
	return h, nil
}

// printableType makes a box type safe for logs and error messages (garbage
// input yields arbitrary bytes).
func printableType(t string) string {
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7e {
			return fmt.Sprintf("%x", t)
		}
	}
	return t
}

// decodeFMP4Box decodes one complete box (header+payload in b) with mp4ff.
// Why the recover: mp4ff is a large third-party parser and the input is
// untrusted network data; a panic deep inside it must become an error, not
// take the server down. Our own code is not covered by this.
func decodeFMP4Box(b []byte) (box mp4.Box, err error) {
	defer func() {
		if r := recover(); r != nil {
			box, err = nil, fmt.Errorf("fmp4: decoder panic: %v", r)
		}
	}()
	sr := bits.NewFixedSliceReader(b)
	box, err = mp4.DecodeBoxSR(0, sr)
	if err != nil {
		return nil, err
	}
	if box == nil {
		return nil, errors.New("fmp4: empty box")
	}
	return box, nil
}

// encodeFMP4Box encodes box with mp4ff, turning panics into errors (see
// decodeFMP4Box).
func encodeFMP4Box(box mp4.Box) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("fmp4: encoder panic: %v", r)
		}
	}()
	size := box.Size()
	if size > fmp4MaxBoxLimit {
		return nil, fmt.Errorf("fmp4: box %s too large to encode (%d bytes)", box.Type(), size)
	}
	sw := bits.NewFixedSliceWriter(int(size))
	if err := box.EncodeSW(sw); err != nil {
		return nil, err
	}
	return sw.Bytes(), nil
}

// fmp4Normalize returns box bytes with a plain 32-bit header: mp4ff only
// accepts large-size headers on mdat.
func fmp4Normalize(h fmp4BoxHeader, payload []byte) ([]byte, error) {
	total := uint64(len(payload)) + 8
	if total > fmp4MaxBoxLimit {
		return nil, fmt.Errorf("fmp4: box %q too large (%d bytes)", printableType(h.typ), total)
	}
	b := make([]byte, 8, total)
	binary.BigEndian.PutUint32(b, uint32(total))
	copy(b[4:8], h.typ)
	return append(b, payload...), nil
}

// fmp4Pick picks a sample field: per-sample value if present, else the
// tfhd default if present, else the trex default.
func fmp4Pick(present bool, v uint32, tfhdHas bool, tfhdV uint32, trexV uint32) uint32 {
	if present {
		return v
	}
	if tfhdHas {
		return tfhdV
	}
	return trexV
}

// fmp4ResolvedSample is one trun sample with all defaults applied.
type fmp4ResolvedSample struct {
	size, dur, flags uint32
	cto              int64
}

// fmp4Run is where the data of one trun lies.
type fmp4Run struct {
	traf    int // index into moof.Trafs
	trun    *mp4.TrunBox
	start   int64 // position of the first sample's data
	end     int64 // position after the last sample's data
	abs     bool  // start/end are in base_data_offset coordinates, not moofPos ones
	samples []fmp4ResolvedSample
}

// fmp4MaxPos keeps offset arithmetic far away from int64 overflow.
const fmp4MaxPos = 1 << 60

// layoutFMP4Moof applies the ISO/IEC 14496-12 8.8.7 data-offset rules to
// every trun of moof. moofPos is the position of the moof's first byte in
// the caller's coordinates. Runs whose base comes from an explicit
// base_data_offset are flagged abs: their coordinates are whatever origin
// the writer used (the file start for ffmpeg), which only the caller knows.
// trex returns the trex defaults of a track ID (nil = none).
func layoutFMP4Moof(moof *mp4.MoofBox, moofPos int64, trex func(uint32) *mp4.TrexBox) ([]fmp4Run, error) {
	var runs []fmp4Run
	var prevEnd int64
	prevAbs := false
	for ti, traf := range moof.Trafs {
		tfhd := traf.Tfhd
		if tfhd == nil {
			return nil, fmt.Errorf("fmp4: traf %d without tfhd", ti)
		}
		var base int64
		abs := false
		switch {
		case tfhd.HasBaseDataOffset():
			if tfhd.BaseDataOffset > fmp4MaxPos {
				return nil, fmt.Errorf("fmp4: track %d: base_data_offset %d out of range", tfhd.TrackID, tfhd.BaseDataOffset)
			}
			base, abs = int64(tfhd.BaseDataOffset), true
		case tfhd.DefaultBaseIfMoof() || ti == 0:
			base = moofPos
		default:
			// Neither flag: the data continues where the previous traf's ended.
			base, abs = prevEnd, prevAbs
		}
		var tx mp4.TrexBox
		if t := trex(tfhd.TrackID); t != nil {
			tx = *t
		}
		pos := base
		for ri, trun := range traf.Truns {
			if trun.HasDataOffset() {
				pos = base + int64(trun.DataOffset)
			} else if ri == 0 {
				pos = base
			}
			if pos < 0 {
				return nil, fmt.Errorf("fmp4: track %d: negative data offset", tfhd.TrackID)
			}
			run := fmp4Run{traf: ti, trun: trun, start: pos, abs: abs, samples: make([]fmp4ResolvedSample, len(trun.Samples))}
			firstFlags, hasFirst := trun.FirstSampleFlags()
			for i, s := range trun.Samples {
				rs := fmp4ResolvedSample{
					size: fmp4Pick(trun.HasSampleSize(), s.Size, tfhd.HasDefaultSampleSize(), tfhd.DefaultSampleSize, tx.DefaultSampleSize),
					dur:  fmp4Pick(trun.HasSampleDuration(), s.Dur, tfhd.HasDefaultSampleDuration(), tfhd.DefaultSampleDuration, tx.DefaultSampleDuration),
				}
				switch {
				case trun.HasSampleFlags():
					rs.flags = s.Flags
				case i == 0 && hasFirst:
					rs.flags = firstFlags
				case tfhd.HasDefaultSampleFlags():
					rs.flags = tfhd.DefaultSampleFlags
				default:
					rs.flags = tx.DefaultSampleFlags
				}
				if trun.HasSampleCompositionTimeOffset() {
					if trun.Version == 0 {
						// Version 0 offsets are unsigned.
						rs.cto = int64(uint32(s.CompositionTimeOffset))
					} else {
						rs.cto = int64(s.CompositionTimeOffset)
					}
				}
				run.samples[i] = rs
				pos += int64(rs.size)
			}
			if pos > fmp4MaxPos {
				return nil, fmt.Errorf("fmp4: track %d: sample data offsets out of range", tfhd.TrackID)
			}
			run.end = pos
			runs = append(runs, run)
		}
		prevEnd, prevAbs = pos, abs
	}
	return runs, nil
}

// fmp4TrafDTS is the decode time a traf starts at: its tfdt, else next
// (continuing the track's previous fragment).
func fmp4TrafDTS(traf *mp4.TrafBox, next int64) (int64, error) {
	if traf.Tfdt == nil {
		return next, nil
	}
	t := traf.Tfdt.BaseMediaDecodeTime()
	if t > fmp4MaxPos {
		return 0, fmt.Errorf("tfdt %d out of range", t)
	}
	return int64(t), nil
}

// fmp4RunFrames emits the samples of run, whose data starts at start in
// the caller's coordinates, from data (an mdat payload found at dataPos),
// as frames from dts with Data pointing into data; it returns the DTS
// after them. emit gets each sample's offset too.
func fmp4RunFrames(run fmp4Run, start, dataPos int64, data []byte, dts int64, audio bool, emit func(off int64, f Frame)) (int64, error) {
	end := start + (run.end - run.start)
	if len(run.samples) > 0 && (start < dataPos || end > dataPos+int64(len(data))) {
		return dts, fmt.Errorf("sample data [%d,%d) outside mdat [%d,%d)", start, end, dataPos, dataPos+int64(len(data)))
	}
	off := start - dataPos
	for _, s := range run.samples {
		b := off + int64(s.size)
		emit(dataPos+off, Frame{DTS: dts, CTO: s.cto, Duration: int64(s.dur),
			Keyframe: audio || s.flags&fmp4SampleIsNonSync == 0, Data: data[off:b:b]})
		off = b
		dts += int64(s.dur)
	}
	return dts, nil
}
