package srt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mcodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
	gosrt "github.com/datarhei/gosrt"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// catalogWait bounds the wait for a broadcast's first catalog.
const catalogWait = 10 * time.Second

// play sends a broadcast to a read: caller as MPEG-TS. A broadcast that
// does not exist is rejected before the handshake completes.
func (s *Server) play(ctx context.Context, req gosrt.ConnRequest, id StreamID, expires time.Time, log *slog.Logger) {
	if s.cfg.Source == nil {
		s.refuse(req, log, reject(gosrt.REJX_BAD_MODE, errors.New("playback is off")))
		return
	}
	br, err := media.OpenBroadcast(ctx, s.cfg.Source, id.Path, media.BroadcastOptions{
		Subscribe: moq.SubscribeOptions{Priority: 100, GroupOrder: 2}, Timeout: 2 * time.Second, Logger: log})
	if err != nil {
		s.refuse(req, log, reject(gosrt.REJX_NOTFOUND, err))
		return
	}
	defer br.Close()
	conn, done, err := s.accept(req, expires, log)
	if err != nil {
		log.Info("SRT handshake failed", "err", err)
		return
	}
	defer done()
	s.stats.readers.Add(1)
	defer s.stats.readers.Add(-1)
	log.Info("SRT reader started")
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		// The caller sends nothing; a read fails when it goes away.
		io.Copy(io.Discard, conn)
		stop()
	}()
	err = stream(ctx, conn, br, log)
	if err != nil && ctx.Err() == nil {
		log.Info("SRT reader ended", "err", err)
		return
	}
	log.Info("SRT reader ended")
}

// stream muxes the tracks of the broadcast's first catalog to conn; later
// catalog versions are followed (a track's new init segment applies from
// its next group) but add no tracks.
func stream(ctx context.Context, conn io.Writer, br *media.BroadcastReader, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, catalogWait)
	v, err := br.NextCatalog(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("no catalog: %w", err)
	}
	m, sel, err := newTSMuxer(conn, v.CMAF(), log)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		// Track readers wait for each catalog version to be handled.
		for {
			if _, err := br.NextCatalog(ctx); err != nil {
				return
			}
		}
	}()
	return readTracks(ctx, br, sel, m.writeChunk)
}

// tsOffset places the broadcast timeline (which starts at 0) away from 0:
// PCR runs ahead of DTS and must not go negative.
const tsOffset = 90000

// tsMuxer writes frames of a broadcast's tracks as MPEG-TS.
type tsMuxer struct {
	w      *mpegts.Writer
	out    *chunkWriter
	tracks []outTrack
	gotKey bool // video: a key frame was written
}

type outTrack struct {
	info media.TrackInfo
	ts   *mpegts.Track
}

// newTSMuxer picks the tracks MPEG-TS can carry (H.264, H.265, AAC, Opus;
// one video and one audio) and returns them in the order write expects.
func newTSMuxer(w io.Writer, tracks []media.CatalogTrack, log *slog.Logger) (*tsMuxer, []media.CatalogTrack, error) {
	m := &tsMuxer{out: &chunkWriter{w: w}}
	var sel []media.CatalogTrack
	kinds := map[media.Kind]bool{}
	for _, ct := range tracks {
		info, err := media.ParseInit(ct.Init)
		if err != nil || kinds[info.Codec.Kind()] {
			continue
		}
		c, err := tsCodec(info)
		if err != nil {
			log.Info("SRT: track not sent", "track", ct.Name, "err", err)
			continue
		}
		kinds[info.Codec.Kind()] = true
		m.tracks = append(m.tracks, outTrack{info: info, ts: &mpegts.Track{Codec: c}})
		sel = append(sel, ct)
	}
	if len(sel) == 0 {
		return nil, nil, errors.New("no track MPEG-TS can carry (H.264, H.265, AAC, Opus)")
	}
	var ts []*mpegts.Track
	for _, t := range m.tracks {
		ts = append(ts, t.ts)
	}
	m.w = &mpegts.Writer{W: m.out, Tracks: ts}
	if err := m.w.Initialize(); err != nil {
		return nil, nil, err
	}
	return m, sel, nil
}

func tsCodec(info media.TrackInfo) (mpegts.Codec, error) {
	switch info.Codec {
	case media.H264:
		return &mcodecs.H264{}, nil
	case media.H265:
		return &mcodecs.H265{}, nil
	case media.AAC:
		var c mpeg4audio.AudioSpecificConfig
		if err := c.Unmarshal(info.AACConfig); err != nil {
			return nil, fmt.Errorf("AAC configuration: %w", err)
		}
		return &mcodecs.MPEG4Audio{Config: c}, nil
	case media.Opus:
		if info.Channels > 2 {
			return nil, fmt.Errorf("Opus with %d channels", info.Channels)
		}
		return &mcodecs.Opus{ChannelCount: max(info.Channels, 1)}, nil //nolint:staticcheck // Desc is derived from it
	}
	return nil, fmt.Errorf("%s cannot be sent in MPEG-TS here", info.Codec)
}

// writeChunk muxes the frames of one chunk of track i; a new init segment
// brings new parameter sets (the MPEG-TS codec itself stays).
func (m *tsMuxer) writeChunk(i int, c media.Chunk, info *media.TrackInfo) error {
	if t := &m.tracks[i]; info != nil && info.Codec == t.info.Codec {
		t.info.VPS, t.info.SPS, t.info.PPS = info.VPS, info.SPS, info.PPS
	}
	for _, f := range c.Frames {
		if err := m.write(i, f); err != nil {
			return err
		}
	}
	return nil
}

// write muxes one frame of track i.
func (m *tsMuxer) write(i int, f media.Frame) error {
	t := &m.tracks[i]
	ts := int64(t.info.Timescale)
	if ts <= 0 {
		return nil
	}
	dts := f.DTS*90000/ts + tsOffset
	pts := (f.DTS+f.CTO)*90000/ts + tsOffset
	var err error
	switch t.info.Codec {
	case media.H264, media.H265:
		if !m.gotKey && !f.Keyframe {
			return nil // start with a key frame
		}
		m.gotKey = true
		au := splitAVCC(f.Data)
		if len(au) == 0 {
			return nil
		}
		if f.Keyframe {
			// Decoders joining the stream need the parameter sets in-band.
			au = append(append(append(append([][]byte{}, t.info.VPS...), t.info.SPS...), t.info.PPS...), au...)
		}
		if t.info.Codec == media.H264 {
			err = m.w.WriteH264(t.ts, pts, dts, au)
		} else {
			err = m.w.WriteH265(t.ts, pts, dts, au)
		}
	case media.AAC:
		err = m.w.WriteMPEG4Audio(t.ts, pts, [][]byte{f.Data})
	case media.Opus:
		err = m.w.WriteOpus(t.ts, pts, [][]byte{f.Data})
	}
	if err != nil {
		return fmt.Errorf("mux %s: %w", t.info.Codec, err)
	}
	return m.out.flush()
}

// splitAVCC splits 4-byte-length-prefixed NAL units (a truncated tail is
// dropped).
func splitAVCC(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 4 {
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			break
		}
		if n > 0 {
			out = append(out, b[:n])
		}
		b = b[n:]
	}
	return out
}

// tsChunk is the SRT payload: seven TS packets, as every SRT sender uses.
const tsChunk = 7 * 188

// chunkWriter groups TS packets into SRT payloads of tsChunk bytes.
type chunkWriter struct {
	w   io.Writer
	buf []byte
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	for len(c.buf) >= tsChunk {
		if _, err := c.w.Write(c.buf[:tsChunk]); err != nil {
			return 0, err
		}
		c.buf = c.buf[tsChunk:]
	}
	if len(c.buf) == 0 {
		c.buf = c.buf[:0:0]
	}
	return len(p), nil
}

// flush sends what is left (fewer than seven packets) at the end of a frame.
func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}
