package srt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// This file reads a broadcast back from the relay as frames: the catalog
// names the tracks and their init segments, each track's objects are CMAF
// fragments. (Kept apart so that a shared broadcast reader can replace it.)

// catalogReader is a subscription to a broadcast's hang catalog.
type catalogReader struct {
	sub *moq.TrackConsumer
	rd  *moq.TrackReader
}

// openCatalog subscribes to the catalog; ErrNotFound when the broadcast
// does not exist.
func openCatalog(ctx context.Context, src moq.Source, path string) (*catalogReader, error) {
	sub, err := src.SubscribeTrack(ctx, path, media.HangCatalogTrack, moq.SubscribeOptions{Priority: 100, GroupOrder: 2})
	if err != nil {
		var re *moq.RequestError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, re.Reason)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return &catalogReader{sub: sub, rd: sub.Reader(true)}, nil
}

func (c *catalogReader) Close() { c.sub.Close() }

// next waits for the next catalog and returns its CMAF media tracks.
func (c *catalogReader) next(ctx context.Context) ([]media.CatalogTrack, error) {
	for {
		g, err := c.rd.NextGroup(ctx)
		if err != nil {
			return nil, err
		}
		o, err := g.Next(ctx)
		if err != nil {
			continue
		}
		cat, err := media.ParseHangCatalog(o.Payload)
		if err != nil {
			continue
		}
		var out []media.CatalogTrack
		for _, t := range cat.MediaTracks() {
			if strings.EqualFold(t.Packaging, "cmaf") && len(t.Init) > 0 {
				out = append(out, t)
			}
		}
		return out, nil
	}
}

// frameFunc receives one frame of track (the index in the tracks given to
// readTracks); calls are serialized.
type frameFunc func(track int, f media.Frame) error

// readTracks reads the given tracks of a broadcast until one of them ends,
// fn fails or ctx is done.
func readTracks(ctx context.Context, src moq.Source, path string, tracks []media.CatalogTrack, fn frameFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	errc := make(chan error, len(tracks))
	for i, t := range tracks {
		go func() {
			errc <- readTrack(ctx, src, path, t, func(f media.Frame) error {
				mu.Lock()
				defer mu.Unlock()
				return fn(i, f)
			})
		}()
	}
	err := <-errc
	cancel()
	for range len(tracks) - 1 {
		<-errc
	}
	return err
}

func readTrack(ctx context.Context, src moq.Source, path string, t media.CatalogTrack, fn func(media.Frame) error) error {
	cr, err := media.NewChunkReader(t.Init)
	if err != nil {
		return err
	}
	sub, err := src.SubscribeTrack(ctx, path, t.Name, moq.SubscribeOptions{Priority: 60, GroupOrder: 2})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", t.Name, err)
	}
	defer sub.Close()
	rd := sub.Reader(true)
	var frames []media.Frame
	for {
		g, err := rd.NextGroup(ctx)
		if err != nil {
			return err
		}
		for {
			o, err := g.Next(ctx)
			if errors.Is(err, io.EOF) || errors.Is(err, moq.ErrGroupDropped) {
				break
			}
			if err != nil {
				return err
			}
			frames, err = cr.Frames(o.Payload, frames[:0])
			if err != nil {
				continue // one unreadable object: skip it
			}
			for _, f := range frames {
				if err := fn(f); err != nil {
					return err
				}
			}
		}
	}
}
