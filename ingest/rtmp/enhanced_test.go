package rtmp

import (
	"bytes"
	"context"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"github.com/moqgate/moqgate/media"
)

// timedWrite is one write of a publisher, in timestamp order.
type timedWrite struct {
	at    time.Duration
	write func() error
}

// publishWithClient publishes path with gortmplib's client (which sends
// Enhanced RTMP for H.265, AV1, VP9 and Opus), performing writes in
// timestamp order, then disconnects.
func publishWithClient(t *testing.T, addr, path string, tracks []*gortmplib.Track,
	writes func(w *gortmplib.Writer) []timedWrite,
) {
	t.Helper()
	u, err := url.Parse("rtmp://" + addr + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		t.Fatalf("client: %v", err)
	}
	defer c.Close()
	w := &gortmplib.Writer{Conn: c, Tracks: tracks}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	ws := writes(w)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].at < ws[j].at })
	for _, tw := range ws {
		if err := tw.write(); err != nil {
			t.Fatal(err)
		}
	}
}

func oneRecorderServer(t *testing.T) (*testServer, *recorder) {
	rec := newRecorder()
	srv := startServer(t, Config{OnPublish: func(context.Context, PublishRequest) (media.BroadcastWriter, error) {
		return rec, nil
	}})
	return srv, rec
}

// TestEnhancedHEVCOpus publishes H.265 + Opus over Enhanced RTMP.
func TestEnhancedHEVCOpus(t *testing.T) {
	t.Parallel()
	hevc := ffmpegOut(t, "v.hevc", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
		"-c:v", "libx265", "-x265-params", "keyint=30:bframes=0:log-level=error", "-f", "hevc")
	ogg := ffmpegOut(t, "a.ogg", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
		"-c:a", "libopus", "-f", "ogg")

	aus := hevcAccessUnits(t, hevc)
	var vps, sps, pps []byte
	for _, n := range aus[0] {
		switch (n[0] >> 1) & 0x3f {
		case 32:
			vps = n
		case 33:
			sps = n
		case 34:
			pps = n
		}
	}
	if vps == nil || sps == nil || pps == nil {
		t.Fatal("no parameter sets in the first access unit")
	}
	pkts := oggPackets(t, ogg)
	var head opus.IDHeader
	if err := head.Unmarshal(pkts[0]); err != nil {
		t.Fatal(err)
	}
	audio := pkts[2:] // after OpusHead and OpusTags

	srv, rec := oneRecorderServer(t)
	vt := &gortmplib.Track{Codec: &codecs.H265{VPS: vps, SPS: sps, PPS: pps}}
	at := &gortmplib.Track{Codec: &codecs.Opus{IDHeader: &head}}
	publishWithClient(t, srv.addr, "live/hevc", []*gortmplib.Track{vt, at}, func(w *gortmplib.Writer) []timedWrite {
		var ws []timedWrite
		for i, au := range aus {
			ts := time.Duration(i) * time.Second / 30
			ws = append(ws, timedWrite{ts, func() error { return w.WriteH265(vt, ts, ts, au) }})
		}
		for i, p := range audio {
			ts := time.Duration(i) * 20 * time.Millisecond
			ws = append(ws, timedWrite{ts, func() error { return w.WriteOpus(at, ts, p) }})
		}
		return ws
	})
	rec.waitClosed(t, 10*time.Second)
	sets, frames := rec.snapshot(t)

	if len(sets) != 1 {
		t.Errorf("SetTracks called %d times, want 1", len(sets))
	}
	v := lastTrack(t, sets, "video")
	if v.Codec != media.H265 || v.Width != 320 || v.Height != 240 ||
		len(v.VPS) != 1 || !bytes.Equal(v.VPS[0], vps) || len(v.SPS) != 1 || !bytes.Equal(v.SPS[0], sps) ||
		len(v.PPS) != 1 || !bytes.Equal(v.PPS[0], pps) {
		t.Errorf("video track = %+v", v)
	}
	a := lastTrack(t, sets, "audio")
	if a.Codec != media.Opus || a.SampleRate != 48000 || a.Channels != int(head.ChannelCount) ||
		a.OpusPreSkip != int(head.PreSkip) {
		t.Errorf("audio track = %+v", a)
	}

	vf := frames["video"]
	if len(vf) != len(aus) {
		t.Fatalf("%d video frames, sent %d", len(vf), len(aus))
	}
	for i, f := range vf {
		if want := avccOf(false, aus[i]); !bytes.Equal(f.Data, want) {
			t.Errorf("video frame %d differs from the access unit sent", i)
		}
		if want := i%30 == 0; f.Keyframe != want {
			t.Errorf("video frame %d: keyframe %v, want %v", i, f.Keyframe, want)
		}
		if wantDTS := int64(i * 1000 / 30); f.DTS != wantDTS || f.CTO != 0 {
			t.Errorf("video frame %d: DTS %d CTO %d, want %d 0", i, f.DTS, f.CTO, wantDTS)
		}
	}
	af := frames["audio"]
	if len(af) != len(audio) {
		t.Fatalf("%d audio frames, sent %d", len(af), len(audio))
	}
	for i, f := range af {
		if !bytes.Equal(f.Data, audio[i]) || f.DTS != int64(i*20) {
			t.Errorf("audio frame %d: DTS %d, data equal %v", i, f.DTS, bytes.Equal(f.Data, audio[i]))
		}
	}
}

// TestEnhancedAV1 publishes AV1 over Enhanced RTMP. gortmplib's client
// sends a placeholder av1C; the real sequence header arrives in-band and
// must replace it.
func TestEnhancedAV1(t *testing.T) {
	t.Parallel()
	ivf := ffmpegOut(t, "v.ivf", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
		"-c:v", "libsvtav1", "-preset", "12", "-g", "30", "-f", "ivf")
	tus := ivfFrames(t, ivf)

	var seqHdr []byte
	var sent [][][]byte // OBUs of each TU without temporal delimiter
	for _, tu := range tus {
		var bs av1.Bitstream
		if err := bs.Unmarshal(tu); err != nil {
			t.Fatal(err)
		}
		var obus [][]byte
		for _, o := range bs {
			switch av1.OBUType((o[0] >> 3) & 0x0f) {
			case av1.OBUTypeTemporalDelimiter:
				continue
			case av1.OBUTypeSequenceHeader:
				if seqHdr == nil {
					seqHdr = o
				}
			}
			obus = append(obus, o)
		}
		sent = append(sent, obus)
	}

	srv, rec := oneRecorderServer(t)
	vt := &gortmplib.Track{Codec: &codecs.AV1{}}
	publishWithClient(t, srv.addr, "live/av1", []*gortmplib.Track{vt}, func(w *gortmplib.Writer) []timedWrite {
		var ws []timedWrite
		for i, obus := range sent {
			ts := time.Duration(i) * time.Second / 30
			ws = append(ws, timedWrite{ts, func() error { return w.WriteAV1(vt, ts, obus) }})
		}
		return ws
	})
	rec.waitClosed(t, 10*time.Second)
	sets, frames := rec.snapshot(t)

	v := lastTrack(t, sets, "video")
	var sh av1.SequenceHeader
	if v.Codec != media.AV1 || v.Width != 320 || v.Height != 240 || sh.Unmarshal(v.AV1SequenceHeader) != nil {
		t.Errorf("video track = %+v", v)
	}
	got, err := splitOBUs(v.AV1SequenceHeader)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].payload, seqHdr[1:]) {
		t.Errorf("sequence header not the in-band one: %x", v.AV1SequenceHeader)
	}
	vf := frames["video"]
	if len(vf) != len(sent) {
		t.Fatalf("%d video frames, sent %d", len(vf), len(sent))
	}
	keys := 0
	for i, f := range vf {
		obus, err := splitOBUs(f.Data)
		if err != nil || len(obus) != len(sent[i]) {
			t.Fatalf("frame %d: %d OBUs (%v), sent %d", i, len(obus), err, len(sent[i]))
		}
		for j, o := range obus {
			if o.typ == av1.OBUTypeTemporalDelimiter || !o.hasSize || !bytes.Equal(o.payload, sent[i][j][1:]) {
				t.Errorf("frame %d OBU %d: type %d, differs from the one sent", i, j, o.typ)
			}
		}
		if f.Keyframe {
			keys++
		}
	}
	if !vf[0].Keyframe || keys < 2 {
		t.Errorf("first frame key %v, %d key frames", vf[0].Keyframe, keys)
	}
}

// TestEnhancedVP9 publishes VP9 over Enhanced RTMP; dimensions and profile
// come from the first key frame.
func TestEnhancedVP9(t *testing.T) {
	t.Parallel()
	ivf := ffmpegOut(t, "v.ivf", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
		"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "30", "-f", "ivf")
	frames := ivfFrames(t, ivf)

	srv, rec := oneRecorderServer(t)
	vt := &gortmplib.Track{Codec: &codecs.VP9{}}
	publishWithClient(t, srv.addr, "live/vp9", []*gortmplib.Track{vt}, func(w *gortmplib.Writer) []timedWrite {
		var ws []timedWrite
		for i, f := range frames {
			ts := time.Duration(i) * time.Second / 30
			ws = append(ws, timedWrite{ts, func() error { return w.WriteVP9(vt, ts, f) }})
		}
		return ws
	})
	rec.waitClosed(t, 10*time.Second)
	sets, got := rec.snapshot(t)
	v := lastTrack(t, sets, "video")
	if v.Codec != media.VP9 || v.Width != 320 || v.Height != 240 || v.VP9Profile != 0 || v.VP9BitDepth != 8 {
		t.Errorf("video track = %+v", v)
	}
	vf := got["video"]
	if len(vf) != len(frames) {
		t.Fatalf("%d video frames, sent %d", len(vf), len(frames))
	}
	for i, f := range vf {
		if !bytes.Equal(f.Data, frames[i]) {
			t.Errorf("frame %d differs", i)
		}
		if want := i%30 == 0; f.Keyframe != want {
			t.Errorf("frame %d: keyframe %v, want %v", i, f.Keyframe, want)
		}
	}
}
