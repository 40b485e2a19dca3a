package srt

import (
	"context"
	"sync"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// chunkFunc receives one chunk of track i (the index in the tracks given
// to readTracks) and, when its init segment changed, the new track info;
// calls are serialized.
type chunkFunc func(i int, c media.Chunk, info *media.TrackInfo) error

// readTracks reads the given tracks of a broadcast until one of them ends,
// fn fails or ctx is done.
func readTracks(ctx context.Context, br *media.BroadcastReader, tracks []media.CatalogTrack, fn chunkFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	errc := make(chan error, len(tracks))
	for i, t := range tracks {
		go func() {
			errc <- readTrack(ctx, br, t.Name, func(c media.Chunk, info *media.TrackInfo) error {
				mu.Lock()
				defer mu.Unlock()
				return fn(i, c, info)
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

func readTrack(ctx context.Context, br *media.BroadcastReader, name string, fn func(media.Chunk, *media.TrackInfo) error) error {
	fr, err := br.Track(ctx, name, moq.SubscribeOptions{Priority: 60, GroupOrder: 2})
	if err != nil {
		return err
	}
	defer fr.Close()
	for {
		c, err := fr.Next(ctx)
		if err != nil {
			return err
		}
		var info *media.TrackInfo
		if c.InitChanged {
			i := fr.Info()
			info = &i
		}
		if err := fn(c, info); err != nil {
			return err
		}
	}
}
