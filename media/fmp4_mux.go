package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sync"

	"github.com/Eyevinn/mp4ff/mp4"
)

// FMP4MuxTrack is one input track of an FMP4Muxer.
type FMP4MuxTrack struct {
	// Name is the MoQ track name that WriteObject is called with.
	Name string
	// Init is the track's CMAF init segment (ftyp+moov holding one trak, any
	// track ID), e.g. base64-decoded from a catalog.
	Init []byte
}

// FMP4Muxer writes one fragmented MP4 holding several tracks, each fed as
// single-track CMAF fragments (MoQ object payloads), e.g. for
// `moqgate sub ... | ffplay -`. Safe for concurrent use.
type FMP4Muxer struct {
	mu     sync.Mutex
	w      io.Writer
	tracks map[string]*fmp4MuxTrack
	seq    uint32 // last mfhd sequence number written
	err    error  // sticky: after a failed write the output is corrupt

	// Zero start (see StartAtZero): objects are held until the origin is
	// known, then every decode time is shifted by it.
	holding   bool
	held      []fmp4HeldObject
	heldBytes int
	origin    *big.Rat // seconds; nil = no shift
}

type fmp4MuxTrack struct {
	id        uint32       // track ID in the combined file
	trex      *mp4.TrexBox // defaults of the source init, for sample sizes
	timescale uint32       // mdhd timescale, the unit of tfdt
	shift     uint64       // subtracted from every tfdt (the origin in timescale units)
	seen      bool         // an object of this track has been held or written
	first     *big.Rat     // decode time of its first held object, seconds
}

type fmp4HeldObject struct {
	track   string
	payload []byte
}

// fmp4MaxHeld bounds what StartAtZero holds back when a track never
// delivers: past it the origin is fixed from the tracks seen so far.
const fmp4MaxHeld = 32 << 20

// fmp4MovieTimescale is the combined mvhd timescale; only edit lists and
// durations use it, and ms is the customary choice.
const fmp4MovieTimescale = 1000

// NewFMP4Muxer builds a combined ftyp+moov from the tracks' init segments
// (track IDs 1..N in the given order, a trex per track) and writes it to w.
func NewFMP4Muxer(w io.Writer, tracks []FMP4MuxTrack) (*FMP4Muxer, error) {
	if len(tracks) == 0 {
		return nil, errors.New("fmp4 mux: no tracks")
	}
	m := &FMP4Muxer{w: w, tracks: make(map[string]*fmp4MuxTrack, len(tracks))}
	moov := mp4.NewMoovBox()
	mvhd := mp4.CreateMvhd()
	mvhd.Timescale = fmp4MovieTimescale
	mvhd.NextTrackID = uint32(len(tracks)) + 1
	moov.AddChild(mvhd)
	mvex := mp4.NewMvexBox()
	for i, in := range tracks {
		if in.Name == "" {
			return nil, fmt.Errorf("fmp4 mux: track %d has no name", i)
		}
		if _, dup := m.tracks[in.Name]; dup {
			return nil, fmt.Errorf("fmp4 mux: duplicate track %q", in.Name)
		}
		id := uint32(i + 1)
		trak, trex, err := fmp4InitTrak(in.Init, id)
		if err != nil {
			return nil, fmt.Errorf("fmp4 mux: init segment of track %q: %w", in.Name, err)
		}
		moov.AddChild(trak)
		out := *trex
		out.TrackID = id
		if out.DefaultSampleDescriptionIndex == 0 {
			out.DefaultSampleDescriptionIndex = 1 // 0 is invalid, and the stsd is copied whole
		}
		mvex.AddChild(&out)
		m.tracks[in.Name] = &fmp4MuxTrack{id: id, trex: trex, timescale: trak.Mdia.Mdhd.Timescale}
	}
	moov.AddChild(mvex)

	ftyp := mp4.NewFtyp("iso6", 0, []string{"iso6", "cmfc", "isom", "mp41"})
	head, err := encodeFMP4Box(ftyp)
	if err != nil {
		return nil, fmt.Errorf("fmp4 mux: ftyp: %w", err)
	}
	mb, err := encodeFMP4Box(moov)
	if err != nil {
		return nil, fmt.Errorf("fmp4 mux: moov: %w", err)
	}
	if _, err := w.Write(append(head, mb...)); err != nil {
		return nil, fmt.Errorf("fmp4 mux: write init: %w", err)
	}
	return m, nil
}

// fmp4InitTrak extracts the single trak of an init segment, renumbered to
// id, and its trex (defaults if the init has none).
func fmp4InitTrak(init []byte, id uint32) (*mp4.TrakBox, *mp4.TrexBox, error) {
	var moov *mp4.MoovBox
	for pos := 0; pos < len(init); {
		h, size, err := fmp4SliceBox(init, pos)
		if err != nil {
			return nil, nil, err
		}
		if h.typ == "moov" {
			raw, err := fmp4Normalize(h, init[pos+h.hdrLen:pos+size])
			if err != nil {
				return nil, nil, err
			}
			box, err := decodeFMP4Box(raw)
			if err != nil {
				return nil, nil, fmt.Errorf("moov: %w", err)
			}
			var ok bool
			if moov, ok = box.(*mp4.MoovBox); !ok {
				return nil, nil, fmt.Errorf("moov decoded as %T", box)
			}
			break
		}
		pos += size
	}
	if moov == nil {
		return nil, nil, errors.New("no moov box")
	}
	if len(moov.Traks) != 1 {
		return nil, nil, fmt.Errorf("%d traks, want 1", len(moov.Traks))
	}
	trak := moov.Traks[0]
	if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Hdlr == nil ||
		trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil ||
		len(trak.Mdia.Minf.Stbl.Stsd.Children) == 0 {
		return nil, nil, errors.New("trak lacks tkhd, mdhd, hdlr or sample description")
	}
	if trak.Mdia.Mdhd.Timescale == 0 {
		return nil, nil, errors.New("timescale 0")
	}
	srcID := trak.Tkhd.TrackID

	trex := mp4.CreateTrex(srcID)
	if moov.Mvex != nil {
		if t, ok := moov.Mvex.GetTrex(srcID); ok {
			trex = t
		} else if len(moov.Mvex.Trexs) == 1 {
			trex = moov.Mvex.Trexs[0]
		}
	}

	trak.Tkhd.TrackID = id
	trak.Tkhd.Duration = 0      // live: unknown
	trak.Tkhd.Flags |= 0x000001 // track_enabled, or players may ignore it
	srcScale := uint64(fmp4MovieTimescale)
	if moov.Mvhd != nil && moov.Mvhd.Timescale != 0 {
		srcScale = uint64(moov.Mvhd.Timescale)
	}
	if trak.Edts != nil && srcScale != fmp4MovieTimescale {
		// segment_duration is in movie timescale, which we change.
		for _, elst := range trak.Edts.Elst {
			for i := range elst.Entries {
				d := elst.Entries[i].SegmentDuration
				if d > math.MaxUint64/fmp4MovieTimescale {
					d = math.MaxUint64 / fmp4MovieTimescale
				}
				elst.Entries[i].SegmentDuration = d * fmp4MovieTimescale / srcScale
				if elst.Entries[i].SegmentDuration > math.MaxUint32 {
					elst.Version = 1 // 64-bit fields
				}
			}
		}
	}
	// A tref would name track IDs of the source file, which no longer exist.
	kept := trak.Children[:0]
	for _, c := range trak.Children {
		if c.Type() != "tref" {
			kept = append(kept, c)
		}
	}
	trak.Children = kept
	return trak, trex, nil
}

// fmp4SliceBox parses the header of the box at pos in b and returns its
// header and full size (size 0 = to the end of b), checking it fits.
func fmp4SliceBox(b []byte, pos int) (fmp4BoxHeader, int, error) {
	h, err := parseFMP4Header(b[pos:])
	if err != nil {
		return h, 0, fmt.Errorf("box at offset %d: %w", pos, err)
	}
	rest := uint64(len(b) - pos)
	size := h.size
	if size == 0 {
		size = rest
	}
	if size > rest || size < uint64(h.hdrLen) {
		return h, 0, fmt.Errorf("box %q at offset %d: size %d, only %d bytes left: %w", printableType(h.typ), pos, h.size, rest, errFMP4Short)
	}
	return h, int(size), nil
}

// StartAtZero makes the file start at media time 0, so players and ffprobe
// show its real duration rather than the broadcast's age: objects are held
// back until every track has delivered one (or Release is called, or
// fmp4MaxHeld bytes are held), then the earliest decode time among them
// becomes 0 in every track, which keeps the tracks in sync. Call it before
// the first WriteObject.
func (m *FMP4Muxer) StartAtZero() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.holding = true
}

// Release fixes the origin from the tracks seen so far and writes what
// StartAtZero held back; a no-op (still holding) when nothing is held. A
// track whose first object comes later and lies before the origin has
// those decode times clamped to 0.
func (m *FMP4Muxer) Release() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.held) == 0 {
		return nil
	}
	return m.release()
}

func (m *FMP4Muxer) release() error {
	if !m.holding {
		return nil
	}
	m.holding = false
	for _, t := range m.tracks {
		if t.first != nil && (m.origin == nil || t.first.Cmp(m.origin) < 0) {
			m.origin = t.first
		}
	}
	for _, t := range m.tracks {
		t.shift = t.ticks(m.origin)
	}
	held := m.held
	m.held, m.heldBytes = nil, 0
	for _, h := range held {
		if err := m.write(h.track, m.tracks[h.track], h.payload); err != nil {
			return err
		}
	}
	return nil
}

// ticks converts seconds to the track's timescale, rounding down.
func (t *fmp4MuxTrack) ticks(sec *big.Rat) uint64 {
	if sec == nil {
		return 0
	}
	r := new(big.Rat).Mul(sec, new(big.Rat).SetInt64(int64(t.timescale)))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !q.IsUint64() {
		return 0
	}
	return q.Uint64()
}

// WriteObject rewrites the moof+mdat pairs of one MoQ object of track (one
// or more single-track CMAF fragments) to the combined file's track ID and
// sequence numbering and writes them in one Write. A malformed object is
// rejected whole, nothing of it is written.
func (m *FMP4Muxer) WriteObject(track string, payload []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	t := m.tracks[track]
	if t == nil {
		return fmt.Errorf("fmp4 mux: unknown track %q", track)
	}
	if !m.holding {
		return m.write(track, t, payload)
	}
	if !t.seen {
		tfdt, err := fmp4FirstDecodeTime(payload)
		if err != nil {
			return fmt.Errorf("fmp4 mux: track %q: %w", track, err)
		}
		t.first = new(big.Rat).SetFrac(new(big.Int).SetUint64(tfdt), big.NewInt(int64(t.timescale)))
	}
	t.seen = true
	m.held = append(m.held, fmp4HeldObject{track, append([]byte(nil), payload...)})
	m.heldBytes += len(payload)
	for _, t := range m.tracks {
		if !t.seen && m.heldBytes < fmp4MaxHeld {
			return nil
		}
	}
	return m.release()
}

func (m *FMP4Muxer) write(track string, t *fmp4MuxTrack, payload []byte) error {
	t.seen = true
	out, n, err := t.rewrite(payload, m.seq)
	if err != nil {
		return fmt.Errorf("fmp4 mux: track %q: %w", track, err)
	}
	if _, err := m.w.Write(out); err != nil {
		m.err = fmt.Errorf("fmp4 mux: write: %w", err)
		return m.err
	}
	m.seq += n
	return nil
}

// fmp4FirstDecodeTime returns the tfdt of the first fragment of an object.
func fmp4FirstDecodeTime(payload []byte) (uint64, error) {
	for pos := 0; pos < len(payload); {
		h, size, err := fmp4SliceBox(payload, pos)
		if err != nil {
			return 0, err
		}
		if h.typ == "moof" {
			raw, err := fmp4Normalize(h, payload[pos+h.hdrLen:pos+size])
			if err != nil {
				return 0, err
			}
			box, err := decodeFMP4Box(raw)
			if err != nil {
				return 0, fmt.Errorf("moof at offset %d: %w", pos, err)
			}
			moof, ok := box.(*mp4.MoofBox)
			if !ok || len(moof.Trafs) == 0 || moof.Trafs[0].Tfdt == nil {
				return 0, fmt.Errorf("moof at offset %d has no tfdt", pos)
			}
			return moof.Trafs[0].Tfdt.BaseMediaDecodeTime(), nil
		}
		pos += size
	}
	return 0, errors.New("no moof in object")
}

// rewrite returns the rewritten object and how many fragments it holds;
// seq is the last sequence number already used.
func (t *fmp4MuxTrack) rewrite(payload []byte, seq uint32) ([]byte, uint32, error) {
	out := make([]byte, 0, len(payload)+64)
	n := uint32(0)
	// styp, sidx, prft, emsg, free, ...: not needed for playback, and
	// dropping them keeps the output a plain moof/mdat sequence.
	_, err := fmp4ObjectPairs(payload, func(moof *mp4.MoofBox, moofPos int, data []byte, dataPos int) error {
		n++
		frag, err := t.rewritePair(moof, moofPos, data, dataPos, seq+n)
		if err != nil {
			return fmt.Errorf("fragment at offset %d: %w", moofPos, err)
		}
		out = append(out, frag...)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, n, nil
}

// rewritePair renumbers one moof and points its truns at data (the mdat
// payload, found at dataPos in the object) as re-laid out: moof then mdat.
// Every traf gets default-base-is-moof and every trun an explicit
// data_offset, so the result does not depend on where it lands in the file.
func (t *fmp4MuxTrack) rewritePair(moof *mp4.MoofBox, moofPos int, data []byte, dataPos int, seq uint32) ([]byte, error) {
	if moof.Mfhd == nil {
		return nil, errors.New("moof without mfhd")
	}
	if len(moof.Trafs) == 0 {
		return nil, errors.New("moof without traf")
	}
	for _, traf := range moof.Trafs {
		if traf.Tfhd == nil {
			return nil, errors.New("traf without tfhd")
		}
		if traf.Tfhd.TrackID != moof.Trafs[0].Tfhd.TrackID {
			return nil, errors.New("fragment holds several tracks, want one")
		}
	}
	runs, err := layoutFMP4Moof(moof, int64(moofPos), func(uint32) *mp4.TrexBox { return t.trex })
	if err != nil {
		return nil, err
	}
	// An explicit base_data_offset counts from an origin we cannot know (the
	// producer's file start); assume the earliest such run starts the mdat.
	minAbs := int64(math.MaxInt64)
	for _, r := range runs {
		if r.abs && len(r.samples) > 0 {
			minAbs = min(minAbs, r.start)
		}
	}
	rel := make([]int64, len(runs)) // run start relative to the mdat payload
	for i, r := range runs {
		start, end := r.start, r.end
		if r.abs {
			start, end = start-minAbs+int64(dataPos), end-minAbs+int64(dataPos)
		}
		if len(r.samples) == 0 {
			continue
		}
		if start < int64(dataPos) || end > int64(dataPos+len(data)) {
			return nil, fmt.Errorf("sample data [%d,%d) outside mdat [%d,%d)", start, end, dataPos, dataPos+len(data))
		}
		rel[i] = start - int64(dataPos)
	}

	moof.Mfhd.SequenceNumber = seq
	for _, traf := range moof.Trafs {
		traf.Tfhd.TrackID = t.id
		traf.Tfhd.Flags = traf.Tfhd.Flags&^mp4.TfhdBaseDataOffsetPresentFlag | mp4.TfhdDefaultBaseIsMoofFlag
		traf.Tfhd.BaseDataOffset = 0
		if traf.Tfdt != nil && t.shift > 0 {
			d := traf.Tfdt.BaseMediaDecodeTime()
			traf.Tfdt.SetBaseMediaDecodeTime(d - min(d, t.shift))
		}
	}
	for _, r := range runs {
		r.trun.Flags |= mp4.TrunDataOffsetPresentFlag
	}
	// Flags are final, so the size is too; offsets do not change it.
	mdatHdr := fmp4MdatHeader(uint64(len(data)))
	base := int64(moof.Size()) + int64(len(mdatHdr))
	for i, r := range runs {
		off := base + rel[i]
		if off > math.MaxInt32 {
			return nil, fmt.Errorf("data offset %d does not fit a trun", off)
		}
		r.trun.DataOffset = int32(off)
	}
	enc, err := encodeFMP4Box(moof)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(enc)+len(mdatHdr)+len(data))
	out = append(out, enc...)
	out = append(out, mdatHdr...)
	return append(out, data...), nil
}

// fmp4MdatHeader returns an mdat header for n payload bytes.
func fmp4MdatHeader(n uint64) []byte {
	if n+8 <= math.MaxUint32 {
		h := make([]byte, 8)
		binary.BigEndian.PutUint32(h, uint32(n+8))
		copy(h[4:], "mdat")
		return h
	}
	h := make([]byte, 16)
	binary.BigEndian.PutUint32(h, 1)
	copy(h[4:], "mdat")
	binary.BigEndian.PutUint64(h[8:], n+16)
	return h
}
