// Package media holds the codec and packaging helpers shared by the ingest
// and egress adapters: access units, codec parameter sets, CMAF packaging
// and the hang / MSF catalogs. Its two ends meet the relay through moq's
// media model, never the wire: the Packager writes a broadcast (catalogs,
// init segments, one CMAF object per frame) and the BroadcastReader
// (OpenBroadcast) reads one back, for every egress adapter and the
// recorder.
package media

// Codec names a media codec independent of any container.
type Codec string

// Codecs moqgate understands.
const (
	H264 Codec = "h264"
	H265 Codec = "h265"
	AV1  Codec = "av1"
	VP9  Codec = "vp9"
	VP8  Codec = "vp8"
	AAC  Codec = "aac"
	Opus Codec = "opus"
	MP3  Codec = "mp3"
)

// Kind is the kind of a track.
type Kind string

// Track kinds.
const (
	Video Kind = "video"
	Audio Kind = "audio"
)

// Kind reports whether c is a video or an audio codec.
func (c Codec) Kind() Kind {
	switch c {
	case AAC, Opus, MP3:
		return Audio
	default:
		return Video
	}
}

// TrackInfo describes one elementary stream: everything needed to build an
// init segment, a codec string and a WebCodecs decoder config.
type TrackInfo struct {
	// Name is the MoQ track name (e.g. "video", "audio").
	Name  string
	Codec Codec
	// Timescale is the clock rate of Frame.DTS and Frame.CTO (e.g. 90000,
	// 1000, or the audio sample rate).
	Timescale uint32

	// Video.
	Width, Height int
	// H.264: SPS and PPS; H.265: VPS, SPS and PPS (each one NAL unit without
	// start code or length prefix).
	VPS, SPS, PPS [][]byte
	// AV1: the sequence header OBU (and any other config OBUs).
	// VP9/VP8: unused (the bitstream carries what is needed).
	AV1SequenceHeader []byte
	// VP9 profile / bit depth / chroma when known (for vp09 codec strings).
	VP9Profile, VP9BitDepth, VP9Chroma int

	// Audio.
	SampleRate, Channels int
	// AAC: the AudioSpecificConfig.
	AACConfig []byte
	// Opus: pre-skip in 48 kHz samples (from OpusHead), optional.
	OpusPreSkip int

	// Bitrate in bit/s if the source says (0 = unknown).
	Bitrate int
	// Framerate in frames per second if known (0 = unknown).
	Framerate float64
}

// Frame is one access unit of a track.
type Frame struct {
	// DTS is the decode timestamp in TrackInfo.Timescale units.
	DTS int64
	// CTO is the composition time offset (PTS - DTS) in the same units; it
	// is non-zero only for video with B-frames.
	CTO int64
	// Duration in timescale units if known (0 = derive from the next frame).
	Duration int64
	// Keyframe marks a random access point (IDR, key frame, every audio frame).
	Keyframe bool
	// Data is the access unit in MP4 sample format: H.264/H.265 as
	// 4-byte-length-prefixed NAL units (AVCC), AV1 as low-overhead OBUs
	// (no temporal delimiter), VP8/VP9 as the raw frame, AAC as a raw
	// access unit (no ADTS), Opus as one raw packet, MP3 as one frame.
	Data []byte
}

// BroadcastWriter is what an ingest adapter feeds: the set of tracks of one
// broadcast and then their frames. SetTracks may be called again when codec
// parameters change (the catalogs are then re-published).
type BroadcastWriter interface {
	SetTracks(tracks []TrackInfo) error
	WriteFrame(track string, f Frame) error
	Close() error
}

// ObjectSink receives the MoQ objects a packager produces, track by track.
// Group IDs are assigned by the sink (they must keep increasing across
// publisher reconnects, which only the sink can know).
type ObjectSink interface {
	// OpenGroup starts a new group on track, ending the previous one.
	OpenGroup(track string) error
	// WriteObject appends the next object (IDs contiguous from 0) to the
	// open group of track.
	WriteObject(track string, payload []byte) error
	// CloseGroup ends the open group of track, if any.
	CloseGroup(track string) error
}

// DecodedObjectSink is an ObjectSink that also takes the frames an object
// holds (their Data pointing into payload), so readers in the same process
// can use them instead of parsing payload again. The packager uses it when
// its sink has it.
type DecodedObjectSink interface {
	ObjectSink
	WriteDecodedObject(track string, payload []byte, frames []Frame) error
}
