package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

var ffprobeCodecName = map[Codec]string{
	H264: "h264", H265: "hevc", AV1: "av1", VP9: "vp9", VP8: "vp8",
	AAC: "aac", Opus: "opus", MP3: "mp3",
}

// fmp4MuxFrames re-fragments demuxed frames the way a MoQ publisher does (one
// single-sample moof+mdat per frame, per-track init segments with arbitrary
// track IDs) and feeds them, interleaved in file order, to an FMP4Muxer.
// Audio objects carry two fragments each and use an explicit
// base_data_offset; video keyframe objects start with a styp.
func fmp4MuxFrames(t *testing.T, src fmp4Demuxed) []byte {
	t.Helper()
	srcIDs := map[string]uint32{"video": 7, "audio": 3}
	var ins []FMP4MuxTrack
	for _, ti := range src.tracks {
		ins = append(ins, FMP4MuxTrack{Name: ti.Name, Init: fmp4TestInit(t, ti, srcIDs[ti.Name])})
	}
	var out bytes.Buffer
	m, err := NewFMP4Muxer(&out, ins)
	if err != nil {
		t.Fatalf("NewFMP4Muxer: %v", err)
	}
	styp := []byte{0, 0, 0, 16, 's', 't', 'y', 'p', 'm', 's', 'd', 'h', 0, 0, 0, 0}
	next := map[string]int{}
	seq := map[string]uint32{"video": 1000, "audio": 5}
	var pending []byte // audio fragments waiting for their pair
	for _, name := range src.order {
		f := src.frames[name][next[name]]
		next[name]++
		seq[name]++
		switch name {
		case "audio":
			pending = append(pending, fmp4TestFragment(t, srcIDs[name], seq[name], f, 40000+uint64(seq[name])*1000)...)
			if next[name]%2 == 0 || next[name] == len(src.frames[name]) {
				if err := m.WriteObject(name, pending); err != nil {
					t.Fatalf("WriteObject(audio): %v", err)
				}
				pending = nil
			}
		default:
			obj := fmp4TestFragment(t, srcIDs[name], seq[name], f, 0)
			if f.Keyframe {
				obj = append(bytes.Clone(styp), obj...)
			}
			if err := m.WriteObject(name, obj); err != nil {
				t.Fatalf("WriteObject(%s): %v", name, err)
			}
		}
	}
	return out.Bytes()
}

func TestFMP4MuxRoundTrip(t *testing.T) {
	for _, s := range fmp4Samples {
		t.Run(s.file, func(t *testing.T) {
			src := fmp4DemuxFile(t, filepath.Join("testdata", s.file))
			out := fmp4MuxFrames(t, src)
			checkFMP4MuxStructure(t, out, 2)

			// Our own demuxer gets back exactly what went in.
			back := fmp4DemuxAll(t, bytes.NewReader(out))
			for i, ti := range back.tracks {
				if ti.Codec != src.tracks[i].Codec || ti.Name != src.tracks[i].Name {
					t.Fatalf("track %d: %s %s, want %s %s", i, ti.Name, ti.Codec, src.tracks[i].Name, src.tracks[i].Codec)
				}
			}
			if !equalFMP4Frames(src.frames, back.frames) {
				t.Fatal("frames differ after mux and demux")
			}
			checkFMP4WithFFmpeg(t, out, src)
		})
	}
}

// TestFMP4MuxFFmpegFragments feeds ffmpeg's own GOP-long single-track
// fragments, whose tfhd has an absolute base_data_offset instead of
// default-base-is-moof (-movflags separate_moof without default_base_moof).
func TestFMP4MuxFFmpegFragments(t *testing.T) {
	path := filepath.Join("testdata", "fmp4_h264_aac_sep.mp4")
	b, _ := os.ReadFile(path)
	src := fmp4DemuxFile(t, path)
	ins := []FMP4MuxTrack{
		{Name: "audio", Init: fmp4TestInit(t, src.track("audio"), 2)},
		{Name: "video", Init: fmp4TestInit(t, src.track("video"), 1)},
	}
	var out bytes.Buffer
	m, err := NewFMP4Muxer(&out, ins)
	if err != nil {
		t.Fatal(err)
	}
	var moof []byte
	n := 0
	fmp4IterBoxes(t, b, func(typ string, box []byte) {
		switch typ {
		case "moof":
			moof = box
		case "mdat":
			id := binary.BigEndian.Uint32(moof[8+16+8+12:]) // moof hdr, mfhd, traf hdr, tfhd hdr+flags
			name := map[uint32]string{1: "video", 2: "audio"}[id]
			if err := m.WriteObject(name, append(bytes.Clone(moof), box...)); err != nil {
				t.Fatalf("WriteObject(%s): %v", name, err)
			}
			n++
		}
	})
	if n != 4 {
		t.Fatalf("%d fragments in %s, want 4", n, path)
	}
	checkFMP4MuxStructure(t, out.Bytes(), 2)
	back := fmp4DemuxAll(t, bytes.NewReader(out.Bytes()))
	if back.tracks[0].Name != "audio" || back.tracks[1].Name != "video" {
		t.Fatalf("tracks %+v", back.tracks)
	}
	if !equalFMP4Frames(src.frames, back.frames) {
		t.Fatal("frames differ after mux and demux")
	}
	checkFMP4WithFFmpeg(t, out.Bytes(), back)
}

// checkFMP4MuxStructure checks the combined file: one ftyp+moov with track
// IDs 1..n and a trex each, then moof/mdat pairs with globally increasing
// sequence numbers and only those track IDs.
func checkFMP4MuxStructure(t *testing.T, out []byte, n int) {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("mp4ff cannot decode the output: %v", err)
	}
	if f.Ftyp == nil || f.Moov == nil || len(f.Moov.Traks) != n || f.Moov.Mvex == nil || len(f.Moov.Mvex.Trexs) != n {
		t.Fatalf("bad init: ftyp %v moov %v", f.Ftyp != nil, f.Moov != nil)
	}
	if f.Moov.Mvhd.NextTrackID != uint32(n+1) || f.Moov.Mvhd.Timescale == 0 {
		t.Errorf("mvhd next_track_ID %d timescale %d", f.Moov.Mvhd.NextTrackID, f.Moov.Mvhd.Timescale)
	}
	for i, trak := range f.Moov.Traks {
		if trak.Tkhd.TrackID != uint32(i+1) || f.Moov.Mvex.Trexs[i].TrackID != uint32(i+1) {
			t.Errorf("trak %d: track ID %d, trex %d", i, trak.Tkhd.TrackID, f.Moov.Mvex.Trexs[i].TrackID)
		}
	}
	var seq uint32
	var types []string
	fmp4IterBoxes(t, out, func(typ string, _ []byte) { types = append(types, typ) })
	if types[0] != "ftyp" || types[1] != "moov" {
		t.Fatalf("file starts with %v", types[:2])
	}
	for i := 2; i < len(types); i++ {
		want := "moof"
		if i%2 == 1 {
			want = "mdat"
		}
		if types[i] != want {
			t.Fatalf("box %d is %s, want %s", i, types[i], want)
		}
	}
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			if frag.Moof.Mfhd.SequenceNumber != seq+1 {
				t.Fatalf("sequence number %d after %d", frag.Moof.Mfhd.SequenceNumber, seq)
			}
			seq++
			for _, traf := range frag.Moof.Trafs {
				if id := traf.Tfhd.TrackID; id < 1 || id > uint32(n) || !traf.Tfhd.DefaultBaseIfMoof() || traf.Tfhd.HasBaseDataOffset() {
					t.Fatalf("tfhd track %d flags %06x", id, traf.Tfhd.Flags)
				}
			}
		}
	}
	if seq == 0 {
		t.Fatal("no fragments")
	}
}

// checkFMP4WithFFmpeg writes out to a file and checks that ffprobe sees the
// expected streams and frame counts and that ffmpeg decodes it cleanly.
func checkFMP4WithFFmpeg(t *testing.T, out []byte, want fmp4Demuxed) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.mp4")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	streams := ffprobeStreams(t, path)
	if len(streams) != len(want.tracks) {
		t.Fatalf("ffprobe sees %d streams, want %d", len(streams), len(want.tracks))
	}
	for i, ti := range want.tracks {
		s := streams[i]
		n := len(want.frames[ti.Name])
		if s.CodecName != ffprobeCodecName[ti.Codec] || s.NbReadFrames != strconv.Itoa(n) || s.NbReadPackets != strconv.Itoa(n) {
			t.Errorf("stream %d: %s, %s frames %s packets; want %s, %d", i, s.CodecName, s.NbReadFrames, s.NbReadPackets, ffprobeCodecName[ti.Codec], n)
		}
		if ti.Codec.Kind() == Video && (s.Width != ti.Width || s.Height != ti.Height) {
			t.Errorf("stream %d: %dx%d, want %dx%d", i, s.Width, s.Height, ti.Width, ti.Height)
		}
		if ti.Codec.Kind() == Audio && s.SampleRate != strconv.Itoa(ti.SampleRate) {
			t.Errorf("stream %d: %s Hz, want %d", i, s.SampleRate, ti.SampleRate)
		}
	}
	if msg := ffmpegDecodeErrors(t, path); msg != "" {
		t.Errorf("ffmpeg decode: %s", msg)
	}
	counts, msg := ffmpegPipeFrameCounts(t, out)
	if msg != "" {
		t.Errorf("ffmpeg decode from a pipe: %s", msg)
	}
	for _, ti := range want.tracks {
		kind := string(ti.Codec.Kind())
		if n := len(want.frames[ti.Name]); counts[kind] != n {
			t.Errorf("%s: %d frames decoded from a pipe, want %d", kind, counts[kind], n)
		}
	}
}

func fmp4TestMuxer(t *testing.T) (*FMP4Muxer, *bytes.Buffer, fmp4Demuxed) {
	t.Helper()
	src := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	var out bytes.Buffer
	m, err := NewFMP4Muxer(&out, []FMP4MuxTrack{
		{Name: "video", Init: fmp4TestInit(t, src.track("video"), 1)},
		{Name: "audio", Init: fmp4TestInit(t, src.track("audio"), 2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, &out, src
}

func TestFMP4MuxErrors(t *testing.T) {
	m, out, src := fmp4TestMuxer(t)
	good := fmp4TestFragment(t, 1, 1, src.frames["video"][0], 0)
	cmaf, _ := os.ReadFile(filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	var boxes [][]byte
	fmp4IterBoxes(t, cmaf, func(_ string, box []byte) { boxes = append(boxes, box) })
	shortMdat := bytes.Clone(good[:len(good)-10])
	moofLen := binary.BigEndian.Uint32(good)
	binary.BigEndian.PutUint32(shortMdat[moofLen:], uint32(len(shortMdat))-moofLen)

	cases := []struct {
		name, track string
		obj         []byte
		want        string
	}{
		{"unknown track", "subtitles", good, "unknown track"},
		{"empty", "video", nil, "no moof+mdat"},
		{"truncated", "video", good[:len(good)-1], "truncated"},
		{"mdat only", "video", good[binary.BigEndian.Uint32(good):], "without moof"},
		{"moof only", "video", good[:binary.BigEndian.Uint32(good)], "has no mdat"},
		{"two moofs", "video", append(good[:moofLen:moofLen], good...), "has no mdat"},
		{"init segment", "video", append(bytes.Clone(boxes[0]), good...), "unexpected ftyp"},
		{"garbage", "video", []byte("\x00\x00\x00\x10moofgarbagegarb\x00\x00\x00\x08mdat"), "moof"},
		{"tiny size", "video", []byte("\x00\x00\x00\x04moof"), "smaller than its header"},
		{"sample outside mdat", "video", shortMdat, "outside mdat"},
		{"multi-track fragment", "video", bytes.Join(boxes[2:4], nil), "several tracks"},
	}
	for _, c := range cases {
		before := out.Len()
		err := m.WriteObject(c.track, c.obj)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
		if out.Len() != before {
			t.Errorf("%s: %d bytes written despite the error", c.name, out.Len()-before)
		}
	}
	// The muxer still works after rejected objects.
	if err := m.WriteObject("video", good); err != nil {
		t.Fatal(err)
	}
}

func TestFMP4MuxBadInits(t *testing.T) {
	src := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	vinit := fmp4TestInit(t, src.track("video"), 1)
	twoTraks, _ := os.ReadFile(filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	cases := []struct {
		name   string
		tracks []FMP4MuxTrack
		want   string
	}{
		{"none", nil, "no tracks"},
		{"no name", []FMP4MuxTrack{{Init: vinit}}, "no name"},
		{"duplicate", []FMP4MuxTrack{{"video", vinit}, {"video", vinit}}, "duplicate"},
		{"empty init", []FMP4MuxTrack{{"video", nil}}, "no moov"},
		{"garbage", []FMP4MuxTrack{{"video", []byte("\x00\x00\x00\x0cmoovjunk")}}, "moov"},
		{"truncated", []FMP4MuxTrack{{"video", vinit[:len(vinit)-3]}}, "truncated"},
		{"two traks", []FMP4MuxTrack{{"video", twoTraks}}, "2 traks"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		_, err := NewFMP4Muxer(&out, c.tracks)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%s: wrote %d bytes", c.name, out.Len())
		}
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("broken pipe")
	}
	w.n--
	return len(p), nil
}

func TestFMP4MuxWriteErrorSticky(t *testing.T) {
	src := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	w := &failWriter{n: 2} // init, one object
	m, err := NewFMP4Muxer(w, []FMP4MuxTrack{{"video", fmp4TestInit(t, src.track("video"), 1)}})
	if err != nil {
		t.Fatal(err)
	}
	frag := fmp4TestFragment(t, 1, 1, src.frames["video"][0], 0)
	if err := m.WriteObject("video", frag); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteObject("video", frag); err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("err = %v", err)
	}
	w.n = 100
	if err := m.WriteObject("video", frag); err == nil {
		t.Fatal("write error not sticky")
	}
}

// TestFMP4MuxConcurrent: tracks written from their own goroutines, as MoQ
// subscriptions deliver them, still give a clean file.
func TestFMP4MuxConcurrent(t *testing.T) {
	m, out, src := fmp4TestMuxer(t)
	objs := map[string][][]byte{}
	for i, name := range []string{"video", "audio"} {
		for j, f := range src.frames[name] {
			objs[name] = append(objs[name], fmp4TestFragment(t, uint32(i+1), uint32(j+1), f, 0))
		}
	}
	var wg sync.WaitGroup
	for _, name := range []string{"video", "audio"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, obj := range objs[name] {
				if err := m.WriteObject(name, obj); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	checkFMP4MuxStructure(t, out.Bytes(), 2)
	back := fmp4DemuxAll(t, bytes.NewReader(out.Bytes()))
	if !equalFMP4Frames(src.frames, back.frames) {
		t.Fatal("frames differ")
	}
}

// TestFMP4MuxKeepsCMAFBytes: a CMAF fragment (default-base-is-moof, explicit
// data offsets) comes out with the same size and bytes except for the
// sequence number and track ID.
func TestFMP4MuxKeepsCMAFBytes(t *testing.T) {
	m, out, src := fmp4TestMuxer(t)
	head := out.Len()
	in := fmp4TestFragment(t, 42, 7777, src.frames["audio"][3], 0)
	if err := m.WriteObject("audio", in); err != nil {
		t.Fatal(err)
	}
	got := out.Bytes()[head:]
	if len(got) != len(in) {
		t.Fatalf("size changed: %d -> %d", len(in), len(got))
	}
	want := bytes.Clone(in)
	binary.BigEndian.PutUint32(want[8+12:], 1)      // mfhd sequence_number
	binary.BigEndian.PutUint32(want[8+16+8+12:], 2) // tfhd track_ID
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ beyond sequence number and track ID")
	}
}

// TestFMP4MuxInitRewrite: track IDs are renumbered, a trex is synthesized
// when the init has none, edit list durations follow the new movie
// timescale and tref (naming source track IDs) is dropped.
func TestFMP4MuxInitRewrite(t *testing.T) {
	src := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	f, err := mp4.DecodeFile(bytes.NewReader(fmp4TestInit(t, src.track("video"), 9)))
	if err != nil {
		t.Fatal(err)
	}
	moov := f.Init.Moov
	moov.Mvhd.Timescale = 90000
	edts := &mp4.EdtsBox{}
	edts.AddChild(&mp4.ElstBox{Entries: []mp4.ElstEntry{{SegmentDuration: 180000, MediaTime: 1024, MediaRateInteger: 1}}})
	moov.Trak.AddChild(edts)
	moov.Trak.AddChild(&mp4.TrefBox{})
	// Drop the mvex: the muxer must synthesize a trex.
	var kept []mp4.Box
	for _, c := range moov.Children {
		if c.Type() != "mvex" {
			kept = append(kept, c)
		}
	}
	moov.Children, moov.Mvex = kept, nil
	var init bytes.Buffer
	if err := f.Init.Encode(&init); err != nil {
		t.Fatal(err)
	}
	ainit := fmp4TestInit(t, src.track("audio"), 9) // same source ID as the video: fine
	var out bytes.Buffer
	if _, err := NewFMP4Muxer(&out, []FMP4MuxTrack{{"audio", ainit}, {"video", init.Bytes()}}); err != nil {
		t.Fatal(err)
	}
	g, err := mp4.DecodeFile(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	traks := g.Init.Moov.Traks
	if len(traks) != 2 || traks[0].Tkhd.TrackID != 1 || traks[1].Tkhd.TrackID != 2 {
		t.Fatalf("traks %d", len(traks))
	}
	if trex, ok := g.Init.Moov.Mvex.GetTrex(2); !ok || trex.DefaultSampleDescriptionIndex != 1 {
		t.Fatalf("trex for track 2: %+v %v", trex, ok)
	}
	v := traks[1]
	if v.Edts == nil || v.Edts.Elst[0].Entries[0].SegmentDuration != 2000 || v.Edts.Elst[0].Entries[0].MediaTime != 1024 {
		t.Fatalf("edit list not rescaled: %+v", v.Edts)
	}
	for _, c := range v.Children {
		if c.Type() == "tref" {
			t.Fatal("tref kept")
		}
	}
}

// TestFMP4MuxSizeChange: a traf without any base flag whose second trun has
// no data_offset (its data follows the first run's) gets default-base-is-moof
// and explicit offsets; the moof grows and the offsets must follow.
func TestFMP4MuxSizeChange(t *testing.T) {
	m, out, src := fmp4TestMuxer(t)
	f0, f1 := src.frames["video"][0], src.frames["video"][1]
	frag, err := mp4.CreateFragment(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	traf := frag.Moof.Traf
	traf.Tfhd.Flags = 0 // base = moof start (first traf), no flags
	traf.Tfdt.SetBaseMediaDecodeTime(uint64(f0.DTS))
	sample := func(f Frame, flags uint32) mp4.Sample {
		return mp4.Sample{Flags: flags, Dur: uint32(f.Duration), Size: uint32(len(f.Data)), CompositionTimeOffset: int32(f.CTO)}
	}
	traf.Trun.AddSample(sample(f0, mp4.SyncSampleFlags))
	trun2 := mp4.CreateTrun(0)
	trun2.Flags &^= mp4.TrunDataOffsetPresentFlag
	trun2.AddSample(sample(f1, mp4.NonSyncSampleFlags))
	if err := traf.AddChild(trun2); err != nil {
		t.Fatal(err)
	}
	frag.Mdat.AddSampleData(f0.Data)
	frag.Mdat.AddSampleData(f1.Data)
	traf.Trun.DataOffset = int32(frag.Moof.Size() + 8)
	var obj bytes.Buffer
	for _, b := range []mp4.Box{frag.Moof, frag.Mdat} {
		if err := b.Encode(&obj); err != nil {
			t.Fatal(err)
		}
	}
	head := out.Len()
	if err := m.WriteObject("video", obj.Bytes()); err != nil {
		t.Fatal(err)
	}
	if grown := out.Len() - head - obj.Len(); grown != 4 {
		t.Errorf("output grew by %d bytes, want 4 (one data_offset)", grown)
	}
	back := fmp4DemuxAll(t, bytes.NewReader(out.Bytes()))
	if !equalFMP4Frames(map[string][]Frame{"video": {f0, f1}}, back.frames) {
		t.Fatalf("frames differ: %+v", back.frames)
	}
}

// TestFMP4MuxStartAtZero: objects of a broadcast that began long ago (video
// at 10 s, audio at 10.1 s, audio arriving first) come out with the
// earliest decode time at 0 and the tracks' offset to each other kept.
func TestFMP4MuxStartAtZero(t *testing.T) {
	src := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	v, a := src.track("video"), src.track("audio")
	shift := map[string]int64{"video": 10 * int64(v.Timescale), "audio": 10*int64(a.Timescale) + int64(a.Timescale)/10}
	var ins []FMP4MuxTrack
	for i, ti := range []TrackInfo{v, a} {
		ins = append(ins, FMP4MuxTrack{Name: ti.Name, Init: fmp4TestInit(t, ti, uint32(i+1))})
	}
	var out bytes.Buffer
	m, err := NewFMP4Muxer(&out, ins)
	if err != nil {
		t.Fatal(err)
	}
	m.StartAtZero()
	initLen := out.Len()
	write := func(name string, i int) {
		f := src.frames[name][i]
		f.DTS += shift[name] - src.frames[name][0].DTS
		if err := m.WriteObject(name, fmp4TestFragment(t, uint32(len(name)), uint32(i+1), f, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		write("audio", i)
	}
	if out.Len() != initLen {
		t.Fatal("wrote media before every track had an object")
	}
	for i := range src.frames["video"] {
		write("video", i)
	}
	for i := 3; i < len(src.frames["audio"]); i++ {
		write("audio", i)
	}
	back := fmp4DemuxAll(t, bytes.NewReader(out.Bytes()))
	if got := back.frames["video"][0].DTS; got != 0 {
		t.Errorf("first video DTS %d, want 0", got)
	}
	if got, want := back.frames["audio"][0].DTS, int64(a.Timescale)/10; got != want {
		t.Errorf("first audio DTS %d, want %d (100 ms after the video)", got, want)
	}
	if len(back.frames["video"]) != len(src.frames["video"]) || len(back.frames["audio"]) != len(src.frames["audio"]) {
		t.Fatalf("frames %d/%d, want %d/%d", len(back.frames["video"]), len(back.frames["audio"]),
			len(src.frames["video"]), len(src.frames["audio"]))
	}
}

// TestFMP4MuxReleaseWithoutAllTracks: Release writes what is held when a
// track never delivers, rebased to the tracks that did (first DTS 0).
func TestFMP4MuxReleaseWithoutAllTracks(t *testing.T) {
	src := fmp4DemuxFile(t, filepath.Join("testdata", "fmp4_h264_aac.mp4"))
	v, a := src.track("video"), src.track("audio")
	var out bytes.Buffer
	m, err := NewFMP4Muxer(&out, []FMP4MuxTrack{{Name: "video", Init: fmp4TestInit(t, v, 1)}, {Name: "audio", Init: fmp4TestInit(t, a, 2)}})
	if err != nil {
		t.Fatal(err)
	}
	m.StartAtZero()
	for i, f := range src.frames["video"] {
		f.DTS += 5 * int64(v.Timescale)
		if err := m.WriteObject("video", fmp4TestFragment(t, 1, uint32(i+1), f, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Release(); err != nil {
		t.Fatal(err)
	}
	back := fmp4DemuxAll(t, bytes.NewReader(out.Bytes()))
	if n := len(back.frames["video"]); n != len(src.frames["video"]) || back.frames["video"][0].DTS != 0 {
		t.Fatalf("video: %d frames, first DTS %d", n, back.frames["video"][0].DTS)
	}
}
