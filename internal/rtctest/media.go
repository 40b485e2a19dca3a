// Package rtctest has WebRTC peers for tests and the WHEP load tool: a
// pion-based WHIP publisher that sends H.264 (Annex B) and Opus (Ogg)
// files as OBS would, and a pion-based WHEP viewer that counts what it
// receives and, for H.264, measures latency from timestamps the publisher
// puts in SEI messages.
package rtctest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
)

// EncodeOptions describes the test media EncodeMedia makes.
type EncodeOptions struct {
	Width, Height, FPS int
	Seconds            int
	// VideoBitrate in kbit/s (0: x264's default CRF).
	VideoBitrate int
	// GOP in frames (default FPS: one key frame a second).
	GOP int
	// Noise (0-100) adds temporal noise, so that the encoder needs the
	// whole VideoBitrate (a bare test pattern needs much less).
	Noise int
}

// EncodeMedia makes, with ffmpeg, an H.264 Annex B file (constrained
// baseline, no B-frames, like browsers and OBS's WebRTC output) and an
// Ogg Opus file (20 ms packets, one per page) of a test pattern and a
// 440 Hz tone, in dir.
func EncodeMedia(dir string, o EncodeOptions) (h264, ogg string, err error) {
	if o.Width == 0 {
		o.Width, o.Height = 640, 360
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	if o.Seconds == 0 {
		o.Seconds = 5
	}
	if o.GOP == 0 {
		o.GOP = o.FPS
	}
	h264 = filepath.Join(dir, "video.h264")
	ogg = filepath.Join(dir, "audio.ogg")
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", o.Width, o.Height, o.FPS),
		"-t", strconv.Itoa(o.Seconds), "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
		"-bf", "0", "-g", strconv.Itoa(o.GOP), "-keyint_min", strconv.Itoa(o.GOP), "-sc_threshold", "0",
		"-preset", "veryfast", "-tune", "zerolatency"}
	if o.Noise > 0 {
		args = append(args, "-vf", fmt.Sprintf("noise=alls=%d:allf=t", o.Noise))
	}
	if o.VideoBitrate > 0 {
		br := strconv.Itoa(o.VideoBitrate) + "k"
		args = append(args, "-b:v", br, "-maxrate", br, "-bufsize", strconv.Itoa(o.VideoBitrate/2)+"k")
	}
	args = append(args, "-f", "h264", h264)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("ffmpeg (h264): %w: %s", err, out)
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(o.Seconds),
		"-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg", ogg).CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("ffmpeg (opus): %w: %s", err, out)
	}
	return h264, ogg, nil
}

// LoadH264 reads an Annex B file into access units (Annex B, 4-byte start
// codes), one per picture.
func LoadH264(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := h264reader.NewReaderWithOptions(bufio.NewReader(f), h264reader.WithIncludeSEI(true))
	if err != nil {
		return nil, err
	}
	var aus [][]byte
	var cur []byte
	hasSlice := false
	for {
		nal, err := r.NextNAL()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(nal.Data) == 0 {
			continue
		}
		// A new picture starts with an SPS, PPS, SEI or AUD, or with a
		// slice whose first_mb_in_slice is 0 (ue(v) 0 is a single 1 bit).
		slice := nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr
		starts := !slice || (len(nal.Data) > 1 && nal.Data[1]&0x80 != 0)
		if starts && hasSlice {
			aus = append(aus, cur)
			cur, hasSlice = nil, false
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal.Data...)
		hasSlice = hasSlice || slice
	}
	if hasSlice {
		aus = append(aus, cur)
	}
	if len(aus) == 0 {
		return nil, errors.New("no access unit")
	}
	return aus, nil
}

// LoadOgg reads the packets of an Ogg Opus file, without the OpusHead and
// OpusTags headers.
func LoadOgg(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pkts [][]byte
	var cur []byte
	for len(b) >= 27 {
		if string(b[:4]) != "OggS" {
			return nil, errors.New("ogg: bad page")
		}
		n := int(b[26])
		if len(b) < 27+n {
			return nil, errors.New("ogg: truncated page")
		}
		segs := b[27 : 27+n]
		body := b[27+n:]
		for _, l := range segs {
			if int(l) > len(body) {
				return nil, errors.New("ogg: truncated segment")
			}
			cur = append(cur, body[:l]...)
			body = body[l:]
			if l < 255 {
				pkts = append(pkts, cur)
				cur = nil
			}
		}
		b = body
	}
	if len(pkts) < 3 {
		return nil, errors.New("ogg: no audio packets")
	}
	return pkts[2:], nil
}

// SEI timestamps: a user_data_unregistered SEI (payload type 5) with this
// UUID and the send time as 16 hex digits (no zero bytes: no emulation
// prevention needed).
var seiUUID = []byte("moqgate-latency!")

// stampSEI returns an SEI NAL unit (without start code) carrying t.
func stampSEI(t time.Time) []byte {
	payload := append(bytes.Clone(seiUUID), fmt.Sprintf("%016x", uint64(t.UnixNano()))...)
	nal := []byte{0x06, 0x05, byte(len(payload))}
	nal = append(nal, payload...)
	return append(nal, 0x80)
}

// parseSEI returns the time in an SEI NAL unit made by stampSEI.
func parseSEI(nal []byte) (time.Time, bool) {
	if len(nal) < 3+16+16 || nal[0]&0x1f != 6 || nal[1] != 5 || !bytes.Equal(nal[3:19], seiUUID) {
		return time.Time{}, false
	}
	v, err := strconv.ParseUint(string(nal[19:35]), 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(v)), true
}

// WithSEI returns an Annex B access unit with an SEI carrying t (the
// send time a viewer measures latency from) before its first slice.
func WithSEI(au []byte, t time.Time) []byte { return withSEI(au, t) }

// withSEI appends an SEI to an Annex B AU. It goes last rather than
// before the first slice as H.264 wants, so that it travels in the frame's
// last packet (a small packet first would split the frame's UDP GSO send
// on the server); the viewers here and moqgate do not mind.
func withSEI(au []byte, t time.Time) []byte {
	sei := stampSEI(t)
	out := make([]byte, 0, len(au)+len(sei)+4)
	out = append(out, au...)
	out = append(out, 0, 0, 0, 1)
	return append(out, sei...)
}

// SplitAnnexB splits an Annex B buffer into NAL units.
func SplitAnnexB(b []byte) [][]byte { return splitAnnexB(b) }

func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				out = append(out, b[start:end])
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start <= len(b) {
		out = append(out, b[start:])
	}
	return out
}

// EncodeAAC makes, with ffmpeg, seconds of a 440 Hz tone as 48 kHz stereo
// AAC-LC and returns its access units and AudioSpecificConfig.
func EncodeAAC(dir string, seconds int) ([][]byte, []byte, error) {
	out := filepath.Join(dir, "audio.aac")
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
		"sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(seconds), "-ac", "2", "-c:a", "aac", "-f", "adts", out).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("ffmpeg (aac): %w: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, nil, err
	}
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(b); err != nil {
		return nil, nil, err
	}
	var aus [][]byte
	for _, p := range pkts {
		aus = append(aus, p.AU)
	}
	asc, err := (&mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2}).Marshal()
	return aus, asc, err
}

// MustASC parses an AudioSpecificConfig (nil if it does not parse).
func MustASC(b []byte) *mpeg4audio.AudioSpecificConfig {
	var c mpeg4audio.AudioSpecificConfig
	if c.Unmarshal(b) != nil {
		return nil
	}
	return &c
}
