package bench

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mcodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
	gosrt "github.com/datarhei/gosrt"
)

// BenchmarkSRTToMoQLatency is BenchmarkRTMPToMoQLatency with the same
// synthetic stream published as MPEG-TS over SRT (gosrt caller, 1316-byte
// payloads, the server's 120 ms latency) instead of RTMP:
//
//	go test ./bench/ -run '^$' -bench SRTToMoQLatency -benchtime 1x
//
// The latency is the write of an access unit into the SRT connection to
// the MoQ object, so it includes SRT's TSBPD latency (the receiver holds
// each packet until its send time plus the latency, 120 ms by default):
// what a caller sees, not moqgate's processing alone. The byte counts are
// the MPEG-TS written (SRT headers not included).
func BenchmarkSRTToMoQLatency(b *testing.B) { rtmpLatBench(b, true) }

// srtLatConn is an SRT publish: MPEG-TS with one H.264 and (with audio)
// one AAC track.
type srtLatConn struct {
	conn   gosrt.Conn
	w      *mpegts.Writer
	vt, at *mpegts.Track
	buf    []byte
	sent   atomic.Uint64
}

func srtLatDial(u string, audio bool) (*srtLatConn, error) {
	cfg := gosrt.DefaultConfig()
	addr, err := cfg.UnmarshalURL(u)
	if err != nil {
		return nil, fmt.Errorf("srt URL: %w", err)
	}
	cfg.PayloadSize = 7 * 188
	conn, err := gosrt.Dial("srt", addr, cfg)
	if err != nil {
		return nil, fmt.Errorf("srt dial: %w", err)
	}
	c := &srtLatConn{conn: conn, vt: &mpegts.Track{Codec: &mcodecs.H264{}}}
	tracks := []*mpegts.Track{c.vt}
	if audio {
		c.at = &mpegts.Track{Codec: &mcodecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
			Type: mpeg4audio.ObjectTypeAACLC, SampleRate: rtmpLatAudioRate, ChannelCount: 2}}}
		tracks = append(tracks, c.at)
	}
	c.w = &mpegts.Writer{W: c, Tracks: tracks}
	if err := c.w.Initialize(); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// Write collects the TS packets of an access unit; flush sends them.
func (c *srtLatConn) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *srtLatConn) flush() error {
	n, err := c.conn.Write(c.buf)
	c.sent.Add(uint64(n))
	c.buf = c.buf[:0]
	return err
}

func srtLat90k(d time.Duration) int64 { return int64(d * 90000 / time.Second) }

func (c *srtLatConn) h264(pts time.Duration, au [][]byte) error {
	if au[len(au)-1][0]&0x1f == 5 { // IDR: the parameter sets go in-band
		au = append([][]byte{rtmpLatSPS, rtmpLatPPS}, au...)
	}
	if err := c.w.WriteH264(c.vt, srtLat90k(pts), srtLat90k(pts), au); err != nil {
		return err
	}
	return c.flush()
}

func (c *srtLatConn) aac(pts time.Duration, frame []byte) error {
	if err := c.w.WriteMPEG4Audio(c.at, srtLat90k(pts), [][]byte{frame}); err != nil {
		return err
	}
	return c.flush()
}

func (c *srtLatConn) BytesSent() uint64 { return c.sent.Load() }

// end closes like an encoder that stops: SRT's shutdown.
func (c *srtLatConn) end()   { c.conn.Close() }
func (c *srtLatConn) Close() { c.conn.Close() }
