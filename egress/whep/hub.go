package whep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqgate/moqgate/internal/rtc"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// hub is the WHEP side of one broadcast: one in-process MoQ session to the
// relay, a subscription to the catalog, and a feed per media track that
// viewers watch. It lives while it has viewers (and hubLinger after).
type hub struct {
	srv  *Server
	path string
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	ready  chan struct{} // closed at the first catalog or on failure
	done   chan struct{} // closed when the hub has stopped
	err    error         // why it failed, set before ready closes

	mu      sync.Mutex
	br      *media.BroadcastReader
	tracks  []media.CatalogTrack
	changed chan struct{}
	feeds   map[string]*feed
	refs    int
	linger  *time.Timer
	stopped bool

	lastKeyReq atomic.Int64
}

func newHub(s *Server, path string) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{srv: s, path: path, log: s.log.With("broadcast", path),
		ctx: ctx, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{}),
		changed: make(chan struct{}), feeds: map[string]*feed{}}
}

// run connects to the relay and follows the catalog until the broadcast
// ends or the hub is stopped.
func (h *hub) run() {
	defer h.stop()
	var once sync.Once
	fail := func(err error) {
		once.Do(func() {
			h.err = err
			close(h.ready)
		})
	}
	defer fail(rtc.Errorf(http.StatusNotFound, "broadcast %s ended", h.path))
	br, err := media.OpenBroadcast(h.ctx, h.srv.cfg.Relay.Local("whep"), h.path, media.BroadcastOptions{
		Subscribe: moq.SubscribeOptions{Priority: 100, GroupOrder: 2}, Timeout: h.srv.catalogTimeout, Logger: h.log})
	if errors.Is(err, moq.ErrNotFound) {
		fail(rtc.Errorf(http.StatusNotFound, "no broadcast %s", h.path))
		return
	}
	if err != nil {
		fail(rtc.Errorf(http.StatusServiceUnavailable, "broadcast %s has no catalog: %v", h.path, err))
		return
	}
	defer br.Close()
	h.mu.Lock()
	h.br = br
	h.mu.Unlock()
	for {
		v, err := br.NextCatalog(h.ctx)
		if err != nil {
			if h.ctx.Err() == nil {
				h.log.Info("WHEP: broadcast ended", "err", err)
			}
			return
		}
		h.setCatalog(v.CMAF())
		once.Do(func() { close(h.ready) })
	}
}

// setCatalog takes a new catalog version (the feeds switch init segments
// themselves, at their next group).
func (h *hub) setCatalog(tracks []media.CatalogTrack) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tracks = tracks
	close(h.changed)
	h.changed = make(chan struct{})
	h.log.Debug("WHEP: catalog", "tracks", len(tracks))
}

// catalog returns the media tracks and a channel closed at the next change.
func (h *hub) catalog() ([]media.CatalogTrack, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tracks, h.changed
}

// feed returns the running feed of a track, starting it.
func (h *hub) feed(name string) (*feed, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return nil, errors.New("broadcast ended")
	}
	if f := h.feeds[name]; f != nil {
		f.mu.Lock()
		ended := f.ended
		f.mu.Unlock()
		if !ended {
			return f, nil
		}
	}
	for _, t := range h.tracks {
		if t.Name != name {
			continue
		}
		f, err := newFeed(h, name, t.Init)
		if err != nil {
			return nil, err
		}
		h.feeds[name] = f
		go f.run(h.ctx, h.br)
		return f, nil
	}
	return nil, fmt.Errorf("no track %s in the catalog", name)
}

// feedIfRunning returns a track's feed if it has been started.
func (h *hub) feedIfRunning(name string) (*feed, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.feeds[name]; f != nil {
		return f, nil
	}
	return nil, fmt.Errorf("no feed %s", name)
}

// stop ends the hub: feeds end (and with them their viewers' tracks).
func (h *hub) stop() {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return
	}
	h.stopped = true
	feeds := h.feeds
	h.mu.Unlock()
	h.cancel()
	for _, f := range feeds {
		f.end()
	}
	h.srv.mu.Lock()
	if h.srv.hubs[h.path] == h {
		delete(h.srv.hubs, h.path)
	}
	h.srv.mu.Unlock()
	close(h.done)
}
