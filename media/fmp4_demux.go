package media

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/Eyevinn/mp4ff/av1"
	"github.com/Eyevinn/mp4ff/mp4"
)

// ErrFMP4TracksChanged is returned by FMP4Demuxer.Next when a new moov box
// arrives mid-stream (e.g. concatenated files or an encoder restart). The
// demuxer has switched to the new tracks: call Tracks and re-publish the
// catalog, then keep calling Next. Timestamps may restart.
var ErrFMP4TracksChanged = errors.New("fmp4: tracks changed")

// FMP4Demuxer reads a fragmented MP4 byte stream (ftyp, moov, then
// moof+mdat pairs, as ffmpeg writes with -movflags
// cmaf+frag_keyframe+empty_moov+default_base_moof) incrementally from an
// io.Reader and yields its samples one by one. It never reads past the box
// it needs, so it works on live pipes. Not safe for concurrent use.
type FMP4Demuxer struct {
	r          io.Reader
	maxBoxSize uint64
	log        *slog.Logger

	pos    int64 // stream offset of the next unread byte
	origin int64 // offset of the latest ftyp: what base_data_offset counts from

	haveMoov bool
	tracks   []TrackInfo
	byID     map[uint32]*fmp4DemuxTrack
	trex     map[uint32]*mp4.TrexBox

	moof    *mp4.MoofBox // parsed, waiting for its mdat
	moofPos int64

	queue []fmp4QueuedSample
	qi    int

	missingCfg map[string]bool // tracks whose decoder config is in band only

	err error // sticky: once the stream is broken, it stays broken
}

type fmp4DemuxTrack struct {
	name    string
	audio   bool
	nextDTS int64 // continues the timeline when a traf lacks tfdt
}

type fmp4QueuedSample struct {
	track string
	off   int64 // stream offset of the data, for file order
	f     Frame
}

// NewFMP4Demuxer returns a demuxer reading r. Boxes larger than maxBoxSize
// bytes are rejected (<= 0 selects FMP4DefaultMaxBoxSize); an mdat holds a
// whole fragment (a GOP with frag_keyframe), so size it accordingly.
func NewFMP4Demuxer(r io.Reader, maxBoxSize int) *FMP4Demuxer {
	limit := uint64(FMP4DefaultMaxBoxSize)
	if maxBoxSize > 0 {
		limit = min(uint64(maxBoxSize), fmp4MaxBoxLimit)
	}
	return &FMP4Demuxer{r: r, maxBoxSize: limit, log: slog.Default()}
}

// SetLogger replaces the logger (slog.Default by default).
func (d *FMP4Demuxer) SetLogger(l *slog.Logger) {
	if l != nil {
		d.log = l
	}
}

// Tracks reads up to and including the first moov box, if not done yet, and
// returns the supported tracks. Track names are "video" and "audio" for the
// first track of each kind, then "video2", "audio2", ...; tracks with codecs
// moqgate does not handle are skipped (with a warning).
func (d *FMP4Demuxer) Tracks() ([]TrackInfo, error) {
	for !d.haveMoov {
		if d.err != nil {
			return nil, d.err
		}
		if _, err := d.step(); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("fmp4 demux: stream ended before moov: %w", io.ErrUnexpectedEOF)
			}
			d.err = err
			return nil, err
		}
	}
	d.readAheadConfig()
	return slices.Clone(d.tracks), nil
}

// readAheadConfig fills in decoder configuration that the moov lacks but
// the first keyframe carries in band: ffmpeg with libaom-av1 writes an empty
// av1C into an empty_moov. It reads at most until the first fragment holding
// samples of each such track; the samples stay queued for Next.
func (d *FMP4Demuxer) readAheadConfig() {
	for len(d.missingCfg) > 0 && d.err == nil {
		n0 := len(d.queue)
		changed, err := d.step()
		if err != nil {
			if err != io.EOF {
				d.err = err // reported by Next once the queue is drained
			}
			clear(d.missingCfg)
			return
		}
		if changed {
			d.log.Warn("fmp4 demux: new moov before the first fragment, dropping queued samples", "samples", len(d.queue)-d.qi)
			d.queue, d.qi = d.queue[:0], 0
			continue
		}
		seen := map[string]bool{}
		for _, s := range d.queue[n0:] {
			if !d.missingCfg[s.track] {
				continue
			}
			seen[s.track] = true
			if !s.f.Keyframe {
				continue
			}
			if obu := fmp4AV1ConfigOBUs(s.f.Data); obu != nil {
				for i := range d.tracks {
					if d.tracks[i].Name == s.track {
						d.tracks[i].AV1SequenceHeader = obu
					}
				}
				delete(d.missingCfg, s.track)
			}
		}
		for name := range seen {
			if d.missingCfg[name] {
				d.log.Warn("fmp4 demux: no in-band decoder configuration in the first fragment", "track", name)
				delete(d.missingCfg, name)
			}
		}
	}
}

// fmp4AV1ConfigOBUs returns the sequence header OBU of an AV1 sample, in
// av1C configOBUs form (with obu_size), or nil.
func fmp4AV1ConfigOBUs(sample []byte) []byte {
	obus, err := av1.SplitOBUs(sample)
	if err != nil {
		return nil
	}
	for _, o := range obus {
		if o.Header.Type == av1.OBUSequenceHeader {
			return o.Encode()
		}
	}
	return nil
}

// Next returns the next sample in file order: its track name and the frame
// (DTS from tfdt plus the durations before it, signed CTO, duration,
// keyframe flag, data as stored: AVCC for H.264/H.265). Frame.Data is not
// reused by the demuxer. Next returns io.EOF at a clean end of stream and
// ErrFMP4TracksChanged when a new moov arrived (then call Tracks). Any other
// error is permanent.
func (d *FMP4Demuxer) Next() (string, Frame, error) {
	for {
		if d.qi < len(d.queue) {
			s := d.queue[d.qi]
			d.queue[d.qi] = fmp4QueuedSample{} // let the mdat buffer go once all is consumed
			d.qi++
			return s.track, s.f, nil
		}
		d.queue, d.qi = d.queue[:0], 0
		if d.err != nil {
			return "", Frame{}, d.err
		}
		changed, err := d.step()
		if err != nil {
			d.err = err
			return "", Frame{}, err
		}
		if changed {
			return "", Frame{}, ErrFMP4TracksChanged
		}
	}
}

// step reads and handles one top-level box. changed reports a new moov
// replacing an earlier one.
func (d *FMP4Demuxer) step() (changed bool, err error) {
	start := d.pos
	h, err := d.readHeader()
	if err != nil {
		if err == io.EOF {
			if d.moof != nil {
				return false, fmt.Errorf("fmp4 demux: stream ended after moof at offset %d without mdat: %w", d.moofPos, io.ErrUnexpectedEOF)
			}
			return false, io.EOF
		}
		return false, fmt.Errorf("fmp4 demux: box header at offset %d: %w", start, err)
	}
	if h.size == 0 && h.typ != "mdat" {
		return false, fmt.Errorf("fmp4 demux: box %q at offset %d: size 0 (to end of stream) only supported for mdat", printableType(h.typ), start)
	}
	if h.size > d.maxBoxSize {
		return false, fmt.Errorf("fmp4 demux: box %q at offset %d: size %d exceeds limit %d", printableType(h.typ), start, h.size, d.maxBoxSize)
	}
	payloadLen := int64(h.size) - int64(h.hdrLen) // negative for size 0

	switch h.typ {
	case "ftyp":
		d.origin = start
		return false, d.skip(payloadLen)
	case "moov":
		payload, err := d.readN(payloadLen)
		if err != nil {
			return false, fmt.Errorf("fmp4 demux: moov at offset %d: %w", start, err)
		}
		if err := d.setMoov(h, payload); err != nil {
			return false, fmt.Errorf("fmp4 demux: moov at offset %d: %w", start, err)
		}
		changed = d.haveMoov
		d.haveMoov = true
		return changed, nil
	case "moof":
		if !d.haveMoov {
			return false, fmt.Errorf("fmp4 demux: moof at offset %d before moov", start)
		}
		payload, err := d.readN(payloadLen)
		if err != nil {
			return false, fmt.Errorf("fmp4 demux: moof at offset %d: %w", start, err)
		}
		raw, err := fmp4Normalize(h, payload)
		if err != nil {
			return false, err
		}
		box, err := decodeFMP4Box(raw)
		if err != nil {
			return false, fmt.Errorf("fmp4 demux: moof at offset %d: %w", start, err)
		}
		moof, ok := box.(*mp4.MoofBox)
		if !ok {
			return false, fmt.Errorf("fmp4 demux: moof at offset %d: decoded as %T", start, box)
		}
		if d.moof != nil {
			d.log.Warn("fmp4 demux: moof without mdat, dropped", "offset", d.moofPos)
		}
		d.moof, d.moofPos = moof, start
		return false, nil
	case "mdat":
		if d.moof == nil {
			d.log.Debug("fmp4 demux: mdat without moof, skipped", "offset", start)
			if payloadLen < 0 {
				_, err := io.Copy(io.Discard, d.r)
				return false, err
			}
			return false, d.skip(payloadLen)
		}
		var payload []byte
		if payloadLen < 0 {
			payload, err = d.readToEnd()
		} else {
			payload, err = d.readN(payloadLen)
		}
		if err != nil {
			return false, fmt.Errorf("fmp4 demux: mdat at offset %d: %w", start, err)
		}
		moof, moofPos := d.moof, d.moofPos
		d.moof = nil
		if err := d.queueSamples(moof, moofPos, start+int64(h.hdrLen), payload); err != nil {
			return false, fmt.Errorf("fmp4 demux: fragment at offset %d: %w", moofPos, err)
		}
		return false, nil
	default:
		// styp, sidx, prft, emsg, free, skip, mfra, udta, uuid, ...: nothing
		// a live publisher needs.
		d.log.Debug("fmp4 demux: skipping box", "type", printableType(h.typ), "offset", start, "size", h.size)
		return false, d.skip(payloadLen)
	}
}

func (d *FMP4Demuxer) readHeader() (fmp4BoxHeader, error) {
	var b [16]byte
	n, err := io.ReadFull(d.r, b[:8])
	d.pos += int64(n)
	if err != nil {
		if n == 0 && err == io.EOF {
			return fmp4BoxHeader{}, io.EOF
		}
		return fmp4BoxHeader{}, err
	}
	if bytes.Equal(b[0:4], []byte{0, 0, 0, 1}) {
		n, err = io.ReadFull(d.r, b[8:16])
		d.pos += int64(n)
		if err != nil {
			return fmp4BoxHeader{}, noEOF(err)
		}
		return parseFMP4Header(b[:16])
	}
	return parseFMP4Header(b[:8])
}

// readN reads exactly n bytes. Memory grows with the bytes actually
// received, so a forged size cannot allocate up front more than 4 MiB.
func (d *FMP4Demuxer) readN(n int64) ([]byte, error) {
	if n <= 4<<20 {
		buf := make([]byte, n)
		got, err := io.ReadFull(d.r, buf)
		d.pos += int64(got)
		return buf, noEOF(err)
	}
	var buf bytes.Buffer
	buf.Grow(4 << 20)
	got, err := io.CopyN(&buf, d.r, n)
	d.pos += got
	return buf.Bytes(), noEOF(err)
}

// readToEnd reads a size-0 ("to end of stream") mdat, bounded by the limit.
func (d *FMP4Demuxer) readToEnd() ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(d.r, int64(d.maxBoxSize)+1))
	d.pos += int64(len(b))
	if err != nil {
		return nil, err
	}
	if uint64(len(b)) > d.maxBoxSize {
		return nil, fmt.Errorf("size exceeds limit %d", d.maxBoxSize)
	}
	return b, nil
}

func (d *FMP4Demuxer) skip(n int64) error {
	got, err := io.CopyN(io.Discard, d.r, n)
	d.pos += got
	return noEOF(err)
}

// noEOF turns io.EOF inside a box into io.ErrUnexpectedEOF: only a box
// boundary is a clean end.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (d *FMP4Demuxer) setMoov(h fmp4BoxHeader, payload []byte) error {
	fmp4PatchEmptyAV1C(payload)
	raw, err := fmp4Normalize(h, payload)
	if err != nil {
		return err
	}
	box, err := decodeFMP4Box(raw)
	if err != nil {
		return err
	}
	moov, ok := box.(*mp4.MoovBox)
	if !ok {
		return fmt.Errorf("decoded as %T", box)
	}
	var infos []TrackInfo
	var ids []uint32
	for _, trak := range moov.Traks {
		ti, id, err := fmp4TrakInfo(trak)
		if err != nil {
			d.log.Warn("fmp4 demux: skipping track", "track_id", id, "err", err)
			continue
		}
		if slices.Contains(ids, id) {
			return fmt.Errorf("duplicate track ID %d", id)
		}
		infos = append(infos, ti)
		ids = append(ids, id)
	}
	if len(infos) == 0 {
		return errors.New("no supported track")
	}
	fmp4NameTracks(infos)

	d.tracks = infos
	d.byID = make(map[uint32]*fmp4DemuxTrack, len(infos))
	for i, ti := range infos {
		d.byID[ids[i]] = &fmp4DemuxTrack{name: ti.Name, audio: ti.Codec.Kind() == Audio}
	}
	d.trex = map[uint32]*mp4.TrexBox{}
	if moov.Mvex != nil {
		for _, t := range moov.Mvex.Trexs {
			d.trex[t.TrackID] = t
		}
	}
	d.moof = nil // a fragment of the previous file cannot refer to this one
	d.missingCfg = map[string]bool{}
	for _, ti := range infos {
		if ti.Codec == AV1 && len(ti.AV1SequenceHeader) == 0 {
			d.missingCfg[ti.Name] = true
		}
	}
	for i, ti := range infos {
		d.log.Debug("fmp4 demux: track", "name", ti.Name, "track_id", ids[i], "codec", ti.Codec, "timescale", ti.Timescale)
	}
	return nil
}

// queueSamples resolves the samples of moof against the mdat payload that
// starts at stream offset dataPos and queues them in file order.
func (d *FMP4Demuxer) queueSamples(moof *mp4.MoofBox, moofPos, dataPos int64, payload []byte) error {
	runs, err := layoutFMP4Moof(moof, moofPos, func(id uint32) *mp4.TrexBox { return d.trex[id] })
	if err != nil {
		return err
	}
	n0 := len(d.queue)
	lastTraf := -1
	var dts int64
	for _, run := range runs {
		traf := moof.Trafs[run.traf]
		tr := d.byID[traf.Tfhd.TrackID]
		if tr == nil {
			continue // a track we skipped in the moov
		}
		if run.traf != lastTraf {
			lastTraf = run.traf
			if dts, err = fmp4TrafDTS(traf, tr.nextDTS); err != nil {
				return fmt.Errorf("track %s: %w", tr.name, err)
			}
		}
		start := run.start
		if run.abs {
			start += d.origin // ffmpeg's base_data_offset counts from the start of its file
		}
		if dts, err = fmp4RunFrames(run, start, dataPos, payload, dts, tr.audio, func(off int64, f Frame) {
			d.queue = append(d.queue, fmp4QueuedSample{track: tr.name, off: off, f: f})
		}); err != nil {
			return fmt.Errorf("track %s: %w", tr.name, err)
		}
		tr.nextDTS = dts
	}
	// File order: trafs may interleave their runs in the mdat.
	slices.SortStableFunc(d.queue[n0:], func(x, y fmp4QueuedSample) int { return cmp.Compare(x.off, y.off) })
	return nil
}
