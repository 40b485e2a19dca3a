package media

import (
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

// ChunkReader turns the MoQ objects of one CMAF track back into frames:
// each object is one or more moof+mdat pairs for the single track of the
// track's init segment (moqgate's packager writes one sample per pair).
// It is what an egress adapter that needs samples rather than fragments
// (WHEP) uses. Not safe for concurrent use.
type ChunkReader struct {
	info    TrackInfo
	trex    *mp4.TrexBox
	nextDTS int64
}

// NewChunkReader parses a CMAF init segment (ftyp+moov with one trak, as
// the catalogs carry it) and returns a reader for the track's objects.
// Info returns what the init segment says of the track (Name is empty).
func NewChunkReader(init []byte) (*ChunkReader, error) {
	var r *ChunkReader
	err := guard(func() error {
		trak, trex, err := fmp4InitTrak(init, cmafTrackID)
		if err != nil {
			return err
		}
		info, _, err := fmp4TrakInfo(trak)
		if err != nil {
			return err
		}
		r = &ChunkReader{info: info, trex: trex}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("media: chunk reader: init segment: %w", err)
	}
	return r, nil
}

// Info describes the track as its init segment does.
func (r *ChunkReader) Info() TrackInfo { return r.info }

// Frames appends the samples of one object to out and returns it: DTS from
// tfdt (or continuing the previous object's timeline when a traf has none),
// signed CTO, duration, keyframe from the sample flags (every audio sample
// is one), and Data pointing into payload (not copied).
func (r *ChunkReader) Frames(payload []byte, out []Frame) ([]Frame, error) {
	n0 := len(out)
	err := guard(func() error {
		var err error
		out, err = r.frames(payload, out)
		return err
	})
	if err != nil {
		return out[:n0], fmt.Errorf("media: chunk reader: %w", err)
	}
	return out, nil
}

// follow continues the timeline after frames read without parsing, so a
// later object without tfdt still gets the right DTS.
func (r *ChunkReader) follow(frames []Frame) {
	last := frames[len(frames)-1]
	r.nextDTS = last.DTS + last.Duration
}

func (r *ChunkReader) frames(payload []byte, out []Frame) ([]Frame, error) {
	audio := r.info.Codec.Kind() == Audio
	_, err := fmp4ObjectPairs(payload, func(moof *mp4.MoofBox, moofPos int, data []byte, dataPos int) error {
		runs, err := layoutFMP4Moof(moof, int64(moofPos), func(uint32) *mp4.TrexBox { return r.trex })
		if err != nil {
			return err
		}
		lastTraf := -1
		dts := r.nextDTS
		for _, run := range runs {
			if run.abs {
				return errors.New("explicit base_data_offset in a media object")
			}
			if run.traf != lastTraf {
				lastTraf = run.traf
				if dts, err = fmp4TrafDTS(moof.Trafs[run.traf], r.nextDTS); err != nil {
					return err
				}
			}
			if dts, err = fmp4RunFrames(run, run.start, int64(dataPos), data, dts, audio, func(_ int64, f Frame) {
				out = append(out, f)
			}); err != nil {
				return err
			}
			r.nextDTS = dts
		}
		return nil
	})
	return out, err
}

// fmp4ObjectPairs calls fn for each moof+mdat pair of a media object (one
// or more single-track CMAF fragments; other boxes are skipped) and
// returns how many there were.
func fmp4ObjectPairs(payload []byte, fn func(moof *mp4.MoofBox, moofPos int, data []byte, dataPos int) error) (int, error) {
	var moof *mp4.MoofBox
	moofPos, pairs := 0, 0
	for pos := 0; pos < len(payload); {
		h, size, err := fmp4SliceBox(payload, pos)
		if err != nil {
			return pairs, err
		}
		switch h.typ {
		case "moof":
			if moof != nil {
				return pairs, fmt.Errorf("moof at offset %d has no mdat", moofPos)
			}
			raw, err := fmp4Normalize(h, payload[pos+h.hdrLen:pos+size])
			if err != nil {
				return pairs, err
			}
			box, err := decodeFMP4Box(raw)
			if err != nil {
				return pairs, fmt.Errorf("moof at offset %d: %w", pos, err)
			}
			var ok bool
			if moof, ok = box.(*mp4.MoofBox); !ok {
				return pairs, fmt.Errorf("moof at offset %d decoded as %T", pos, box)
			}
			moofPos = pos
		case "mdat":
			if moof == nil {
				return pairs, fmt.Errorf("mdat at offset %d without moof", pos)
			}
			pairs++
			if err := fn(moof, moofPos, payload[pos+h.hdrLen:pos+size], pos+h.hdrLen); err != nil {
				return pairs, err
			}
			moof = nil
		case "ftyp", "moov":
			return pairs, fmt.Errorf("unexpected %s box in a media object", h.typ)
		}
		pos += size
	}
	if moof != nil {
		return pairs, fmt.Errorf("moof at offset %d has no mdat", moofPos)
	}
	if pairs == 0 {
		return 0, errors.New("no moof+mdat in object")
	}
	return pairs, nil
}

// ParseInit describes the single track of a CMAF init segment.
func ParseInit(init []byte) (TrackInfo, error) {
	r, err := NewChunkReader(init)
	if err != nil {
		return TrackInfo{}, err
	}
	return r.Info(), nil
}
