package media

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestZZDump(t *testing.T) {
	dir := "/tmp/hangcheck/out2"
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	var tracks []TrackInfo
	var ss []testSample
	for _, f := range []string{"hevc_main.mp4", "av1.ivf", "vp9.mp4", "vp8.ivf", "opus.mp4", "mp3.mp4", "aac_lc_44k_mono.mp4"} {
		s := loadSample(t, f)
		s.info.Name = f[:len(f)-4]
		tracks = append(tracks, s.info)
		ss = append(ss, s)
	}
	hang, err := BuildHangCatalog(tracks)
	must(t, err)
	msf, err := BuildMSFCatalog(tracks, MSFOptions{GeneratedAt: time.Now()})
	must(t, err)
	os.WriteFile(dir+"/hang.json", hang, 0o644)
	os.WriteFile(dir+"/msf.json", msf, 0o644)
	for _, s := range ss {
		fw := NewFragmentWriter(s.info)
		for i, f := range s.frames {
			f.Duration = 0
			b, err := fw.Fragment(f)
			must(t, err)
			os.WriteFile(fmt.Sprintf("%s/%s-%04d", dir, s.info.Name, i), b, 0o644)
		}
	}
}
