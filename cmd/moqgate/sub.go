package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
	"github.com/moqgate/moqgate/moq/wire"
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
	fs.IntVar(&c.draft, "draft", 14, "MoQ Transport draft to speak: 14 (ALPN moq-00) or 16 (moqt-16)")
}

func (c *clientFlags) dial(ctx context.Context, url string, h moq.Handler, log *slog.Logger) (*moq.Session, error) {
	var version uint64
	switch c.draft {
	case 14:
		version = wire.Version14
	case 16:
		version = wire.Version16
	default:
		return nil, fmt.Errorf("--draft %d: want 14 or 16", c.draft)
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
		fmt.Fprintln(stderr, "usage: moqgate sub [flags] URL BROADCAST\n  URL is moqt://host:port or https://host:port/; writes fragmented MP4 to stdout")
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
	ns := moq.ParsePath(fs.Arg(1))
	tracks, err := readCatalog(ctx, sess, ns)
	if err != nil {
		return err
	}
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
	var wg sync.WaitGroup
	errc := make(chan error, len(tracks))
	for _, t := range tracks {
		s, err := sess.Subscribe(ctx, ns, t.Name, moq.SubscribeOptions{})
		if err != nil {
			return fmt.Errorf("sub: subscribe %s: %w", t.Name, err)
		}
		log.Info("subscribed", "track", t.Name, "codec", t.Codec)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd := s.Track.NewReader(true)
			for {
				g, err := rd.NextGroup(ctx)
				if err != nil {
					if !errors.Is(err, moq.ErrTrackEnded) && ctx.Err() == nil {
						errc <- err
					}
					return
				}
				for {
					o, err := g.Next(ctx)
					if err != nil {
						if err != io.EOF && ctx.Err() == nil {
							log.Warn("group cut short", "track", t.Name, "group", g.ID(), "err", err)
						}
						break
					}
					if len(o.Payload) == 0 {
						continue
					}
					wmu.Lock()
					err = mux.WriteObject(t.Name, o.Payload)
					if err == nil {
						err = w.Flush()
					}
					wmu.Unlock()
					if err != nil {
						errc <- fmt.Errorf("sub: write %s: %w", t.Name, err)
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-errc:
		return err
	case <-ctx.Done():
	case <-sess.Done():
		return fmt.Errorf("sub: session ended: %w", sess.Err())
	}
	return nil
}

// readCatalog reads the broadcast's catalog (hang catalog.json, else MSF
// catalog) and returns its CMAF tracks, video first.
func readCatalog(ctx context.Context, sess *moq.Session, ns moq.Namespace) ([]media.CatalogTrack, error) {
	var lastErr error
	for _, name := range []string{"catalog.json", "catalog"} {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := sess.Subscribe(cctx, ns, name, moq.SubscribeOptions{})
		if err != nil {
			cancel()
			lastErr = fmt.Errorf("subscribe %s: %w", name, err)
			continue
		}
		g, err := s.Track.NewReader(true).NextGroup(cctx)
		var o moq.Object
		if err == nil {
			o, err = g.Next(cctx)
		}
		cancel()
		s.Unsubscribe()
		if err != nil {
			lastErr = fmt.Errorf("read %s: %w", name, err)
			continue
		}
		var tracks []media.CatalogTrack
		if name == "catalog.json" {
			c, err := media.ParseHangCatalog(o.Payload)
			if err != nil {
				lastErr = err
				continue
			}
			tracks = c.MediaTracks()
		} else {
			c, err := media.ParseMSFCatalog(o.Payload)
			if err != nil {
				lastErr = err
				continue
			}
			tracks = c.MediaTracks()
		}
		var out []media.CatalogTrack
		for _, k := range []media.Kind{media.Video, media.Audio} {
			for _, t := range tracks {
				if t.Kind == k && strings.EqualFold(t.Packaging, "cmaf") && len(t.Init) > 0 {
					out = append(out, t)
				}
			}
		}
		if len(out) == 0 {
			lastErr = fmt.Errorf("catalog %s has no CMAF track", name)
			continue
		}
		return out, nil
	}
	return nil, fmt.Errorf("sub: no usable catalog: %w", lastErr)
}
