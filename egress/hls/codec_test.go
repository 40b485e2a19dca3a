package hls

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moqgate/moqgate/internal/mediatest"
)

// TestCodecs: every codec gohlslib can carry comes out in the playlist
// (and, when ffprobe is installed, decodes from it); MP3 is left out while
// the video of the same broadcast goes on.
func TestCodecs(t *testing.T) {
	for _, tc := range []struct {
		file   string
		codecs []string // in the multivariant CODECS attribute
		absent string
		probe  []string // ffprobe codec names
	}{
		{"fmp4_h264_aac_sep.mp4", []string{"avc1.", "mp4a.40.2"}, "", []string{"h264", "aac"}},
		{"fmp4_h265_opus.mp4", []string{"hvc1.", "opus"}, "", []string{"hevc", "opus"}},
		{"fmp4_av1_opus.mp4", []string{"av01.", "opus"}, "", []string{"av1", "opus"}},
		{"fmp4_vp9_mp3.mp4", []string{"vp09."}, "mp4a.40.34", []string{"vp9"}},
		// Audio only: the audio track leads the segmenting.
		{"aac_lc_48k_stereo.mp4", []string{"mp4a.40.2"}, "", []string{"aac"}},
		{"opus.mp4", []string{"opus"}, "", []string{"opus"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{})
			e.publish(t, tc.file, "live/"+tc.file, mediatest.PublishOptions{})
			base := e.url + "live/" + tc.file + "/"
			mv := mustGet(t, base+"index.m3u8")
			for _, c := range tc.codecs {
				if !strings.Contains(mv.body, c) {
					t.Errorf("multivariant playlist lacks %s:\n%s", c, mv.body)
				}
			}
			if tc.absent != "" && (strings.Contains(mv.body, tc.absent) || strings.Contains(mv.body, "EXT-X-MEDIA")) {
				t.Errorf("multivariant playlist has a track that should be left out:\n%s", mv.body)
			}
			first := "video1_stream.m3u8"
			if !strings.Contains(mv.body, first) {
				first = "audio1_stream.m3u8"
			}
			pl := parseMedia(t, mustGet(t, base+first).body)
			mustGet(t, base+pl.Map.URI)
			if _, err := exec.LookPath("ffprobe"); err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
				"-of", "json", base+"index.m3u8").Output()
			if err != nil {
				t.Fatalf("ffprobe: %v", err)
			}
			var p struct {
				Streams []struct {
					CodecName string `json:"codec_name"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(out, &p); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range p.Streams {
				got = append(got, s.CodecName)
			}
			slices.Sort(got)
			slices.Sort(tc.probe)
			if !slices.Equal(got, tc.probe) {
				t.Errorf("ffprobe found %v, want %v", got, tc.probe)
			}
		})
	}
}
