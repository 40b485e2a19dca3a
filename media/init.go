package media

import (
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// cmafTrackID is the track ID of the single track in every init segment and
// fragment this package writes (each MoQ track is its own CMAF track).
const cmafTrackID = 1

// InitSegment returns the CMAF header (ftyp + moov) for t: one track with
// track ID 1, media timescale t.Timescale, an mvex/trex for fragments, and
// the codec's sample entry: avc1+avcC, hvc1+hvcC, av01+av1C, vp09/vp08+vpcC,
// mp4a+esds (AAC, or MP3 with object type 0x6B/0x69), Opus+dOps.
func InitSegment(t TrackInfo) ([]byte, error) {
	var out []byte
	err := guard(func() error {
		var err error
		out, err = initSegment(t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("media: init segment for track %q: %w", t.Name, err)
	}
	return out, nil
}

func initSegment(t TrackInfo) ([]byte, error) {
	if t.Timescale == 0 {
		return nil, errors.New("timescale is 0")
	}
	seg := mp4.NewMP4Init()
	seg.AddChild(mp4.NewFtyp("iso6", 0, []string{"iso6", "cmfc"}))
	moov := mp4.NewMoovBox()
	seg.AddChild(moov)
	moov.AddChild(mp4.CreateMvhd())
	moov.AddChild(mp4.NewMvexBox())

	trak := seg.AddEmptyTrack(t.Timescale, string(t.Codec.Kind()), "und")
	if trak.Tkhd.TrackID != cmafTrackID {
		return nil, fmt.Errorf("unexpected track ID %d", trak.Tkhd.TrackID)
	}
	if err := setSampleEntry(trak, t); err != nil {
		return nil, err
	}
	sw := bits.NewFixedSliceWriter(int(seg.Size()))
	if err := seg.EncodeSW(sw); err != nil {
		return nil, err
	}
	return sw.Bytes(), nil
}

func setSampleEntry(trak *mp4.TrakBox, t TrackInfo) error {
	switch t.Codec {
	case H264:
		rec, err := avcDecConfRec(t)
		if err != nil {
			return err
		}
		w, h, err := VideoSize(t)
		if err != nil {
			return err
		}
		setVisual(trak, "avc1", w, h, &mp4.AvcCBox{DecConfRec: *rec})
		return nil
	case H265:
		rec, err := hevcDecConfRec(t)
		if err != nil {
			return err
		}
		w, h, err := VideoSize(t)
		if err != nil {
			return err
		}
		setVisual(trak, "hvc1", w, h, &mp4.HvcCBox{DecConfRec: *rec})
		return nil
	case AV1:
		rec, err := av1ConfRec(t)
		if err != nil {
			return err
		}
		w, h, err := VideoSize(t)
		if err != nil {
			return err
		}
		setVisual(trak, "av01", w, h, &mp4.Av1CBox{CodecConfRec: *rec})
		return nil
	case VP9, VP8:
		// The size is only in key frames; 0x0 is allowed (decoders read the
		// bitstream) but TrackInfo's size is used when known.
		w, h := t.Width, t.Height
		if w < 0 || h < 0 || w > maxVideoDimension || h > maxVideoDimension {
			return fmt.Errorf("video size %dx%d out of range", w, h)
		}
		entry := "vp08"
		vpcC := &mp4.VppCBox{Version: 1, BitDepth: 8, ChromaSubsampling: 1,
			ColourPrimaries: 2, TransferCharacteristics: 2, MatrixCoefficients: 2}
		if t.Codec == VP9 {
			entry = "vp09"
			vpcC.Profile = byte(vp9Profile(t))
			vpcC.Level = byte(vp9Level(t))
			vpcC.BitDepth = byte(vp9BitDepth(t))
			if t.VP9Chroma >= 0 && t.VP9Chroma <= 3 && (t.VP9Chroma != 0 || vpcC.Profile%2 == 1) {
				vpcC.ChromaSubsampling = byte(t.VP9Chroma)
			}
		}
		setVisual(trak, entry, w, h, vpcC)
		return nil
	case AAC:
		hdr, err := parseASC(t.AACConfig)
		if err != nil {
			return err
		}
		ch := t.Channels
		if ch <= 0 {
			ch = int(hdr.ChannelConfiguration)
		}
		rate := t.SampleRate
		if rate <= 0 {
			rate = hdr.SamplingFrequency
		}
		setAudio(trak, "mp4a", ch, rate, mp4.CreateEsdsBox(t.AACConfig))
		return nil
	case MP3:
		esds := mp4.CreateEsdsBox(nil)
		esds.DecConfigDescriptor.DecSpecificInfo = nil
		// 0x6B is MPEG-1 audio (32-48 kHz); the lower MPEG-2 rates need 0x69.
		esds.DecConfigDescriptor.ObjectType = mp4.ObjectTypeMP3
		if t.SampleRate > 0 && t.SampleRate < 32000 {
			esds.DecConfigDescriptor.ObjectType = mp4.ObjectTypeMPEG2Audio
		}
		setAudio(trak, "mp4a", t.Channels, t.SampleRate, esds)
		return nil
	case Opus:
		ch := t.Channels
		if ch <= 0 {
			ch = 2
		}
		if ch > 2 {
			// Mapping family 1 needs the stream/coupled counts and channel
			// mapping from OpusHead, which TrackInfo does not carry.
			return fmt.Errorf("opus with %d channels is not supported (no channel mapping)", ch)
		}
		if t.OpusPreSkip < 0 || t.OpusPreSkip > 0xffff {
			return fmt.Errorf("opus pre-skip %d out of range", t.OpusPreSkip)
		}
		inRate := t.SampleRate
		if inRate <= 0 {
			inRate = 48000
		}
		dops := &mp4.DopsBox{OutputChannelCount: byte(ch), PreSkip: uint16(t.OpusPreSkip), InputSampleRate: uint32(inRate)}
		// Opus in ISOBMFF: the sample entry rate is always 48000.
		setAudio(trak, "Opus", ch, 48000, dops)
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnsupportedCodec, t.Codec)
}

func setVisual(trak *mp4.TrakBox, entry string, w, h int, cfg mp4.Box) {
	trak.Tkhd.Width = mp4.Fixed32(uint32(w) << 16)
	trak.Tkhd.Height = mp4.Fixed32(uint32(h) << 16)
	trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateVisualSampleEntryBox(entry, uint16(w), uint16(h), cfg))
}

func setAudio(trak *mp4.TrakBox, entry string, channels, rate int, cfg mp4.Box) {
	if channels <= 0 || channels > 0xffff {
		channels = 2
	}
	if rate <= 0 || rate > 0xffff {
		rate = 0 // 16.16 field; rates above 65535 Hz are only in the codec config
	}
	trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateAudioSampleEntryBox(entry, uint16(channels), 16, uint16(rate), cfg))
}
