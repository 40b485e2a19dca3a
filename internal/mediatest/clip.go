// Package mediatest publishes real encoded media into a relay for tests and
// benchmarks: a short fragmented-MP4 clip (such as media/testdata's) played
// in a loop at real-time pace, through the same ingest path RTMP uses.
package mediatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/moqgate/moqgate/ingest"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// Frame is one frame of a clip.
type Frame struct {
	Track string
	media.Frame
	at time.Duration // media time of the DTS from the clip's start
}

// Clip is a demuxed fragmented-MP4 file.
type Clip struct {
	Tracks []media.TrackInfo
	Frames []Frame       // in DTS order across tracks
	Length time.Duration // one loop
	length map[string]int64
}

// TestdataPath returns media/testdata/name in the repository, found from
// this source file's location (tests run in their own package directory).
func TestdataPath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "media", "testdata", name)
}

// LoadClip demuxes a fragmented-MP4 file.
func LoadClip(path string) (*Clip, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d := media.NewFMP4Demuxer(bytes.NewReader(data), 0)
	d.SetLogger(slog.New(slog.DiscardHandler))
	tracks, err := d.Tracks()
	if err != nil {
		return nil, fmt.Errorf("mediatest: %s: %w", path, err)
	}
	c := &Clip{Tracks: tracks, length: map[string]int64{}}
	scale := map[string]uint32{}
	first := map[string]int64{}
	for _, t := range tracks {
		scale[t.Name] = t.Timescale
	}
	for {
		name, f, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("mediatest: %s: %w", path, err)
		}
		if _, ok := first[name]; !ok {
			first[name] = f.DTS
		}
		f.DTS -= first[name]
		ts := scale[name]
		end := f.DTS + f.Duration
		c.length[name] = max(c.length[name], end)
		at := time.Duration(float64(f.DTS) / float64(ts) * float64(time.Second))
		c.Frames = append(c.Frames, Frame{Track: name, Frame: f, at: at})
	}
	for _, t := range tracks {
		l := time.Duration(float64(c.length[t.Name]) / float64(t.Timescale) * float64(time.Second))
		c.Length = max(c.Length, l)
	}
	for _, t := range tracks {
		// Every track loops with the same period, so A/V stay in step.
		c.length[t.Name] = int64(math.Round(c.Length.Seconds() * float64(t.Timescale)))
	}
	slices.SortStableFunc(c.Frames, func(a, b Frame) int { return int(a.at - b.at) })
	return c, nil
}

// PublishOptions tune Publish.
type PublishOptions struct {
	// Loops is how many times the clip plays; 0 means until ctx ends.
	Loops int
	// StartDTS is added to every DTS (in seconds), e.g. to continue a
	// timeline or to start one somewhere else than 0.
	StartDTS time.Duration
	// OnLoop, if set, is called before each loop with the loop number.
	OnLoop func(n int)
	Logger *slog.Logger
}

// Publish publishes the clip as broadcast path on relay in real time,
// through the ingest package like an RTMP publisher, until ctx ends or the
// loops are done; then the broadcast's publisher leaves.
func (c *Clip) Publish(ctx context.Context, relay *moq.Relay, path string, opts PublishOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := ingest.Start(ctx, ingest.LocalDialer(relay, "test", log), path, log)
	if err != nil {
		return err
	}
	defer b.Close()
	return c.Play(ctx, b, opts)
}

// Play writes the clip to w in real time (see Publish).
func (c *Clip) Play(ctx context.Context, w media.BroadcastWriter, opts PublishOptions) error {
	if err := w.SetTracks(c.Tracks); err != nil {
		return err
	}
	scale := map[string]uint32{}
	for _, t := range c.Tracks {
		scale[t.Name] = t.Timescale
	}
	if len(c.Frames) == 0 {
		// Tracks and catalog only, like a publisher whose encoder never
		// sends a frame.
		<-ctx.Done()
		return ctx.Err()
	}
	start := time.Now()
	for n := 0; opts.Loops == 0 || n < opts.Loops; n++ {
		if opts.OnLoop != nil {
			opts.OnLoop(n)
		}
		for _, f := range c.Frames {
			at := time.Duration(n)*c.Length + f.at
			if d := time.Until(start.Add(at)); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
			fr := f.Frame
			ts := int64(scale[f.Track])
			fr.DTS += int64(n)*c.length[f.Track] + int64(opts.StartDTS.Seconds()*float64(ts))
			if err := w.WriteFrame(f.Track, fr); err != nil {
				return err
			}
		}
	}
	return nil
}
