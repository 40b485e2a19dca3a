package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// clientFlags are the flags sub and pub share.
type clientFlags struct {
	insecure    bool
	fingerprint string
	token       string
	logLevel    string
	draft       int
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.insecure, "insecure", false, "do not verify the server certificate")
	fs.StringVar(&c.fingerprint, "fingerprint", "", "pin the server certificate by its hex SHA-256")
	fs.StringVar(&c.token, "token", "", "authorization token (JWT) to present")
	fs.StringVar(&c.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.IntVar(&c.draft, "draft", 14, "MoQ Transport draft to speak: 14 (ALPN moq-00), 16 (moqt-16) or 17 (moqt-17)")
}

func (c *clientFlags) dial(ctx context.Context, url string, h moq.Handler, log *slog.Logger) (*moq.Session, error) {
	version, err := moq.DraftVersion(c.draft)
	if err != nil {
		return nil, fmt.Errorf("--draft: %w", err)
	}
	return moq.Dial(ctx, url, moq.DialOptions{
		Insecure: c.insecure, Fingerprint: c.fingerprint, Version: version,
		Session: moq.Config{Handler: h, Logger: log, AuthToken: c.token},
	})
}

func (c *clientFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("bad --log-level: %w", err)
	}
	return newLogger(stderr, lvl), nil
}

func sub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	duration := fs.Duration("duration", 0, "stop after this long (0 = until the broadcast ends or Ctrl-C)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: moqgate sub [flags] URL BROADCAST\n  URL is moqt://host:port or https://host:port/; writes fragmented MP4 to stdout")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("sub: need URL and BROADCAST")
	}
	log, err := cf.logger(stderr)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	sess, err := cf.dial(ctx, fs.Arg(0), nil, log)
	if err != nil {
		return err
	}
	defer sess.Close()
	// A remote session is a moq.Source like the relay in memory: the
	// recorder is one more broadcast reader.
	br, err := media.OpenBroadcast(ctx, sess, fs.Arg(1), media.BroadcastOptions{Logger: log})
	if err != nil {
		return fmt.Errorf("sub: no usable catalog: %w", err)
	}
	defer br.Close()
	v, err := br.NextCatalog(ctx)
	if err != nil {
		return fmt.Errorf("sub: read %s: %w", br.CatalogTrack(), err)
	}
	tracks := v.CMAF()
	if len(tracks) == 0 {
		return fmt.Errorf("sub: catalog %s has no CMAF track", br.CatalogTrack())
	}
	slices.SortStableFunc(tracks, func(a, b media.CatalogTrack) int { // video first
		return strings.Compare(string(b.Kind), string(a.Kind))
	})
	go func() { // later versions are handled (the recording keeps the first)
		for _, err := br.NextCatalog(ctx); err == nil; _, err = br.NextCatalog(ctx) {
		}
	}()
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	var muxTracks []media.FMP4MuxTrack
	for _, t := range tracks {
		muxTracks = append(muxTracks, media.FMP4MuxTrack{Name: t.Name, Init: t.Init})
	}
	mux, err := media.NewFMP4Muxer(w, muxTracks)
	if err != nil {
		return fmt.Errorf("sub: %w", err)
	}
	var wmu sync.Mutex // the muxer is safe; the flushes must not interleave writes
	// The file starts at media time 0 (not at the broadcast's age), so
	// players show its real duration. The muxer waits for every track's
	// first object to pick the origin, but not longer than startWait for a
	// track that is silent.
	mux.StartAtZero()
	release := func() error {
		wmu.Lock()
		defer wmu.Unlock()
		if err := mux.Release(); err != nil {
			return fmt.Errorf("sub: %w", err)
		}
		return w.Flush()
	}
	errc := make(chan error, len(tracks)+1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	firstObject := make(chan struct{})
	var firstOnce sync.Once
	go func() {
		select {
		case <-firstObject:
		case <-ctx.Done():
			return
		}
		select {
		case <-time.After(startWait):
		case <-ctx.Done():
			return
		}
		if err := release(); err != nil {
			errc <- err
		}
	}()
	var wg sync.WaitGroup
	for _, t := range tracks {
		fr, err := br.Track(ctx, t.Name, moq.SubscribeOptions{})
		if err != nil {
			return fmt.Errorf("sub: %w", err)
		}
		defer fr.Close()
		log.Info("subscribed", "track", t.Name, "codec", t.Codec)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := fr.Next(ctx)
				if err != nil {
					if !errors.Is(err, moq.ErrTrackEnded) && ctx.Err() == nil {
						errc <- err
					}
					return
				}
				wmu.Lock()
				err = mux.WriteObject(t.Name, c.Payload)
				if err == nil {
					err = w.Flush()
				}
				wmu.Unlock()
				if err != nil {
					errc <- fmt.Errorf("sub: write %s: %w", t.Name, err)
					return
				}
				firstOnce.Do(func() { close(firstObject) })
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// Whatever ends the recording, a track that never delivered must not
	// keep the others' held objects out of the file.
	select {
	case <-done:
		return release()
	case err := <-errc:
		return err
	case <-ctx.Done():
		return release()
	case <-sess.Done():
		return errors.Join(release(), fmt.Errorf("sub: session ended: %w", sess.Err()))
	}
}

// startWait is how long sub waits, after the first object, for the other
// tracks' first objects before it picks the file's time origin without them.
const startWait = 3 * time.Second
