package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/moqgate/moqgate/ingest"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

func pub(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) error {
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: moqgate pub [flags] URL BROADCAST\n  reads fragmented MP4 from stdin, e.g.\n  ffmpeg ... -f mp4 -movflags cmaf+frag_keyframe+empty_moov+default_base_moof - | moqgate pub --insecure moqt://127.0.0.1:4443 live/test")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("pub: need URL and BROADCAST")
	}
	log, err := cf.logger(stderr)
	if err != nil {
		return err
	}
	dm := media.NewFMP4Demuxer(bufio.NewReaderSize(stdin, 256<<10), 64<<20)
	dm.SetLogger(log)
	tracks, err := dm.Tracks()
	if err != nil {
		return fmt.Errorf("pub: read input: %w", err)
	}
	dial := func(ctx context.Context, h moq.Handler) (*moq.Session, error) {
		return cf.dial(ctx, fs.Arg(0), h, log)
	}
	b, err := ingest.Start(ctx, ingest.SessionDialer(dial), fs.Arg(1), log)
	if err != nil {
		return err
	}
	defer func() {
		// Let the last groups leave before the connection closes.
		time.Sleep(500 * time.Millisecond)
		b.Close()
	}()
	if err := b.SetTracks(tracks); err != nil {
		return fmt.Errorf("pub: %w", err)
	}
	for ctx.Err() == nil {
		name, f, err := dm.Next()
		switch {
		case err == io.EOF:
			return nil
		case errors.Is(err, media.ErrFMP4TracksChanged):
			if tracks, err = dm.Tracks(); err != nil {
				return fmt.Errorf("pub: read input: %w", err)
			}
			if err := b.SetTracks(tracks); err != nil {
				return fmt.Errorf("pub: %w", err)
			}
			continue
		case err != nil:
			return fmt.Errorf("pub: read input: %w", err)
		}
		if err := b.WriteFrame(name, f); err != nil {
			return fmt.Errorf("pub: %w", err)
		}
	}
	return nil
}
