package media

import (
	"reflect"
	"testing"
)

// decodedSink keeps, per object, the payload and the frames the packager
// attached to it.
type decodedSink struct {
	*recordingSink
	payloads [][]byte
	frames   [][]Frame
}

func (s *decodedSink) WriteDecodedObject(track string, payload []byte, frames []Frame) error {
	s.payloads = append(s.payloads, payload)
	s.frames = append(s.frames, frames)
	return s.WriteObject(track, payload)
}

// TestDecodedFramesMatchParse: the frames the packager hands an in-process
// reader (instead of the chunk to parse) are exactly what parsing the chunk
// gives: DTS, CTO (B-frames), duration, key frame flag and the bytes, with
// Data inside the payload.
func TestDecodedFramesMatchParse(t *testing.T) {
	for _, file := range []string{"h264_high.mp4", "hevc_main.mp4", "aac_lc_48k_stereo.mp4", "opus.mp4"} {
		t.Run(file, func(t *testing.T) {
			s := loadSample(t, file)
			sink := &decodedSink{recordingSink: newRecordingSink()}
			p := NewPackager(sink, PackagerOptions{})
			must(t, p.SetTracks([]TrackInfo{s.info}))
			for i, f := range s.frames {
				if i%2 == 1 {
					f.Duration = 0 // the writer derives it: the attached frame must say what it wrote
				}
				must(t, p.WriteFrame(s.info.Name, f))
			}
			init, err := InitSegment(s.info)
			must(t, err)
			cr, err := NewChunkReader(init)
			must(t, err)
			if len(sink.payloads) != len(s.frames) {
				t.Fatalf("%d objects for %d frames", len(sink.payloads), len(s.frames))
			}
			for i, payload := range sink.payloads {
				parsed, err := cr.Frames(payload, nil)
				must(t, err)
				if !reflect.DeepEqual(parsed, sink.frames[i]) {
					t.Fatalf("object %d: attached %+v, parsed %+v", i, sink.frames[i], parsed)
				}
				d := sink.frames[i][0].Data
				if &d[len(d)-1] != &payload[len(payload)-1] {
					t.Fatalf("object %d: attached frame's data is not the payload's mdat", i)
				}
			}
		})
	}
}
