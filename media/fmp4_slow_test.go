package media

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

func TestFMP4SlowHunt(t *testing.T) {
	demux, _ := fmp4FuzzSeeds(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	worst := time.Duration(0)
	for i := 0; i < 100000; i++ {
		in := fmp4Mutate(rng, demux[i%len(demux)])
		start := time.Now()
		d := NewFMP4Demuxer(bytes.NewReader(in), 1<<16)
		d.SetLogger(fmp4QuietLogger())
		if _, err := d.Tracks(); err == nil {
			for j := 0; j <= len(in); j++ {
				if _, _, err := d.Next(); err != nil && !errors.Is(err, ErrFMP4TracksChanged) {
					break
				}
			}
		}
		if el := time.Since(start); el > worst {
			worst = el
			if el > 20*time.Millisecond {
				os.WriteFile("/tmp/slow.bin", in, 0o644)
				t.Logf("slow %v", el)
			}
		}
	}
	t.Logf("worst %v", worst)
}
