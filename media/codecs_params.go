package media

import (
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/av1"
	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
)

// Parameter-set parsing shared by codec strings, descriptions and init
// segments. Every call into mp4ff's bit parsers goes through guard because
// the bytes come from remote publishers.

// maxParamSetSize bounds one parameter set / config OBU; real ones are tens
// of bytes, a few KiB at most with scaling lists or SEI.
const maxParamSetSize = 64 << 10

func firstNALU(name string, nalus [][]byte) ([]byte, error) {
	if len(nalus) == 0 || len(nalus[0]) == 0 {
		return nil, fmt.Errorf("media: %s missing", name)
	}
	for _, n := range nalus {
		if len(n) > maxParamSetSize {
			return nil, fmt.Errorf("media: %s of %d bytes is too large", name, len(n))
		}
	}
	return nalus[0], nil
}

func parseAVCSPS(t TrackInfo) (*avc.SPS, error) {
	nalu, err := firstNALU("h264 SPS", t.SPS)
	if err != nil {
		return nil, err
	}
	var sps *avc.SPS
	err = guard(func() error {
		var err error
		sps, err = avc.ParseSPSNALUnit(nalu, true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("media: h264 SPS: %w", err)
	}
	return sps, nil
}

func parseHEVCSPS(t TrackInfo) (*hevc.SPS, error) {
	nalu, err := firstNALU("h265 SPS", t.SPS)
	if err != nil {
		return nil, err
	}
	var sps *hevc.SPS
	err = guard(func() error {
		var err error
		sps, err = hevc.ParseSPSNALUnit(nalu)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("media: h265 SPS: %w", err)
	}
	return sps, nil
}

// avcDecConfRec builds the AVCDecoderConfigurationRecord. mp4ff assumes
// 4:2:0 8-bit for the High-profile extension fields, so they are filled in
// from the SPS here.
func avcDecConfRec(t TrackInfo) (*avc.DecConfRec, error) {
	sps, err := parseAVCSPS(t)
	if err != nil {
		return nil, err
	}
	if _, err := firstNALU("h264 PPS", t.PPS); err != nil {
		return nil, err
	}
	var rec *avc.DecConfRec
	err = guard(func() error {
		var err error
		rec, err = avc.CreateAVCDecConfRec(t.SPS, t.PPS, true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("media: h264 avcC: %w", err)
	}
	switch sps.Profile {
	case 100, 110, 122, 144, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		rec.ChromaFormat = sps.ChromaFormatIDC
		rec.BitDepthLumaMinus1 = byte(sps.BitDepthLumaMinus8) // field holds bit_depth_luma_minus8
		rec.BitDepthChromaMinus1 = byte(sps.BitDepthChromaMinus8)
	}
	return rec, nil
}

func hevcDecConfRec(t TrackInfo) (*hevc.DecConfRec, error) {
	if _, err := firstNALU("h265 VPS", t.VPS); err != nil {
		return nil, err
	}
	sps, err := parseHEVCSPS(t)
	if err != nil {
		return nil, err
	}
	if _, err := firstNALU("h265 PPS", t.PPS); err != nil {
		return nil, err
	}
	var rec hevc.DecConfRec
	err = guard(func() error {
		var err error
		// hvc1: every parameter set is in the record (array_completeness 1).
		rec, err = hevc.CreateHEVCDecConfRec(t.VPS, t.SPS, t.PPS, true, true, true, true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("media: h265 hvcC: %w", err)
	}
	rec.NumTemporalLayers = sps.MaxSubLayersMinus1 + 1
	if sps.TemporalIDNestingFlag {
		rec.TemporalIDNested = 1
	}
	return &rec, nil
}

// av1Config parses TrackInfo.AV1SequenceHeader, which holds the sequence
// header OBU and optionally other config OBUs (with or without obu_size).
// An AV1CodecConfigurationRecord (av1C payload, first byte 0x81) is accepted
// too, since some sources hand that over instead. It returns the parsed
// header and the config OBUs re-encoded with size fields, as av1C wants.
func av1Config(t TrackInfo) (*av1.SequenceHeader, []byte, error) {
	data := t.AV1SequenceHeader
	if len(data) == 0 {
		return nil, nil, errors.New("media: av1 sequence header missing")
	}
	if len(data) > maxParamSetSize {
		return nil, nil, fmt.Errorf("media: av1 config of %d bytes is too large", len(data))
	}
	var sh *av1.SequenceHeader
	var configOBUs []byte
	err := guard(func() error {
		if data[0] == 0x81 { // av1C marker+version; an OBU header has its forbidden bit clear
			rec, err := av1.DecodeAV1CodecConfRec(data)
			if err != nil {
				return err
			}
			data = rec.ConfigOBUs
		}
		obus, err := av1.SplitOBUs(data)
		if err != nil {
			return err
		}
		for _, o := range obus {
			switch o.Header.Type {
			case av1.OBUSequenceHeader:
				if sh == nil {
					if sh, err = av1.ParseSequenceHeader(o.Payload); err != nil {
						return err
					}
				}
				configOBUs = append(configOBUs, o.Encode()...)
			case av1.OBUMetadata:
				configOBUs = append(configOBUs, o.Encode()...)
			}
		}
		if sh == nil {
			return errors.New("no sequence header OBU")
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("media: av1 sequence header: %w", err)
	}
	return sh, configOBUs, nil
}

func av1ConfRec(t TrackInfo) (*av1.CodecConfRec, error) {
	sh, obus, err := av1Config(t)
	if err != nil {
		return nil, err
	}
	rec := av1.CodecConfRecFromSequenceHeader(sh, obus)
	return &rec, nil
}

// av1CodecString builds av01.P.LLT.DD and appends .M.CCC.TTT.MMM.F only
// when the colour config differs from the defaults of the AV1 ISOBMFF
// binding. Colour primaries/transfer/matrix left unspecified (2, no colour
// description in the stream) count as default too, as ffmpeg and browsers
// treat them; mp4ff's own CodecString would print the long form for them.
func av1CodecString(sh *av1.SequenceHeader) string {
	tier := "M"
	if sh.SeqTier0 == 1 {
		tier = "H"
	}
	s := fmt.Sprintf("av01.%d.%02d%s.%02d", sh.SeqProfile, sh.SeqLevelIdx0, tier, sh.BitDepth)
	cp, tc, mc := sh.ColorPrimaries, sh.TransferCharacteristics, sh.MatrixCoefficients
	defaultCICP := (cp == 1 && tc == 1 && mc == 1) || (cp == 2 && tc == 2 && mc == 2)
	if !sh.MonoChrome && sh.SubsamplingX == 1 && sh.SubsamplingY == 1 &&
		sh.ChromaSamplePosition == 0 && defaultCICP && !sh.ColorRange {
		return s
	}
	return fmt.Sprintf("%s.%d.%d%d%d.%02d.%02d.%02d.%d", s, b2i(sh.MonoChrome),
		sh.SubsamplingX, sh.SubsamplingY, sh.ChromaSamplePosition, cp, tc, mc, b2i(sh.ColorRange))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reorderDepth is how many frames the decoder may hold back (B-frames):
// from the H.264 VUI bitstream restriction or the H.265 SPS. 0 when absent
// or for codecs without reordering in the sample stream.
func reorderDepth(t TrackInfo) int {
	n := 0
	_ = guard(func() error {
		switch t.Codec {
		case H264:
			sps, err := parseAVCSPS(t)
			if err != nil {
				return err
			}
			if sps.VUI != nil && sps.VUI.BitstreamRestrictionFlag {
				n = int(sps.VUI.MaxNumReorderFrames)
			} else if sps.Profile != 66 { // no restriction signalled: assume x264's default of 2 B-frames unless Baseline
				n = 2
			}
		case H265:
			sps, err := parseHEVCSPS(t)
			if err != nil {
				return err
			}
			if l := len(sps.SubLayeringOrderingInfos); l > 0 {
				n = int(sps.SubLayeringOrderingInfos[l-1].MaxNumReorderPics)
			}
		}
		return nil
	})
	if n > 16 {
		n = 16
	}
	return n
}
