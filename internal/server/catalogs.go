package server

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moqgate/moqgate/internal/auth"
	"github.com/moqgate/moqgate/internal/transcode"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// catalogWatcher follows the catalog of every broadcast through an
// in-process MoQ session, like any client would, so the API can tell
// codecs and sizes; it also measures each track's bitrate once a second.
type catalogWatcher struct {
	relay *moq.Relay
	log   *slog.Logger

	mu      sync.Mutex
	entries map[string]*catalogEntry
	rates   map[string]rate // path + "/" + track
}

type catalogEntry struct {
	tracks []media.CatalogTrack
	cancel context.CancelFunc
}

type rate struct {
	bytes uint64
	at    time.Time
	bps   float64
}

func newCatalogWatcher(r *moq.Relay, log *slog.Logger) *catalogWatcher {
	return &catalogWatcher{relay: r, log: log, entries: map[string]*catalogEntry{}, rates: map[string]rate{}}
}

func (w *catalogWatcher) run(ctx context.Context) {
	src := w.relay.Local("api")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		w.poll(ctx, src)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

func (w *catalogWatcher) poll(ctx context.Context, src moq.Source) {
	live := map[string]bool{}
	now := time.Now()
	for _, b := range w.relay.Broadcasts() {
		if b.OnDemand {
			continue // watching would keep an on-demand pull alive
		}
		live[b.Path] = true
		w.mu.Lock()
		for _, t := range b.Tracks {
			key := b.Path + "/" + t.Name
			prev, ok := w.rates[key]
			r := rate{bytes: t.Bytes, at: now, bps: prev.bps}
			if ok && t.Bytes >= prev.bytes && now.After(prev.at) {
				r.bps = float64(t.Bytes-prev.bytes) * 8 / now.Sub(prev.at).Seconds()
			}
			w.rates[key] = r
		}
		_, watched := w.entries[b.Path]
		if !watched {
			cctx, cancel := context.WithCancel(ctx)
			e := &catalogEntry{cancel: cancel}
			w.entries[b.Path] = e
			go w.follow(cctx, src, b.Path, e)
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	for p, e := range w.entries {
		if !live[p] {
			e.cancel()
			delete(w.entries, p)
		}
	}
	for k := range w.rates {
		if !live[k[:max(0, strings.LastIndexByte(k, '/'))]] {
			delete(w.rates, k)
		}
	}
	w.mu.Unlock()
}

// follow reads every catalog version of a broadcast.
func (w *catalogWatcher) follow(ctx context.Context, src moq.Source, path string, e *catalogEntry) {
	br, err := media.OpenBroadcast(ctx, src, path, media.BroadcastOptions{
		Subscribe: moq.SubscribeOptions{Priority: 255}, Logger: w.log.With("watcher", "catalog")})
	if err != nil {
		return
	}
	defer br.Close()
	for {
		v, err := br.NextCatalog(ctx)
		if err != nil {
			return
		}
		w.mu.Lock()
		e.tracks = v.Tracks
		w.mu.Unlock()
	}
}

// apiTrack is one track in the API.
type apiTrack struct {
	Name        string         `json:"name"`
	Kind        string         `json:"kind,omitempty"`
	Codec       string         `json:"codec,omitempty"`
	Width       int            `json:"width,omitempty"`
	Height      int            `json:"height,omitempty"`
	SampleRate  int            `json:"sample_rate,omitempty"`
	Channels    int            `json:"channels,omitempty"`
	Bitrate     int            `json:"bitrate,omitempty"` // from the catalog
	Measured    int            `json:"measured_bitrate,omitempty"`
	Subscribers map[string]int `json:"subscribers"`
	Objects     uint64         `json:"objects,omitempty"`
	CacheBytes  int            `json:"cache_bytes,omitempty"`
	Largest     *moq.Location  `json:"largest,omitempty"`
}

type apiBroadcast struct {
	Path      string     `json:"path"`
	Live      bool       `json:"live"`
	Publisher string     `json:"publisher,omitempty"`
	FromRelay bool       `json:"from_relay,omitempty"`
	Since     time.Time  `json:"since"`
	Tracks    []apiTrack `json:"tracks"`
	// Transcodes are the derived renditions (audio-opus, video-webrtc)
	// this server is making for the broadcast, with their CPU use.
	Transcodes []transcode.Status `json:"transcodes,omitempty"`
}

// broadcasts merges the relay's view with the catalogs and rates.
func (w *catalogWatcher) broadcasts() []apiBroadcast {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []apiBroadcast
	for _, b := range w.relay.Broadcasts() {
		ab := apiBroadcast{Path: b.Path, Live: b.Live, Publisher: b.Publisher, FromRelay: b.FromRelay, Since: b.Since, Tracks: []apiTrack{}}
		byName := map[string]*apiTrack{}
		if e := w.entries[b.Path]; e != nil {
			for _, ct := range e.tracks {
				ab.Tracks = append(ab.Tracks, apiTrack{Name: ct.Name, Subscribers: map[string]int{}})
				t := &ab.Tracks[len(ab.Tracks)-1]
				t.Kind, t.Codec, t.Width, t.Height = string(ct.Kind), ct.Codec, ct.Width, ct.Height
				t.SampleRate, t.Channels, t.Bitrate = ct.SampleRate, ct.Channels, ct.Bitrate
			}
		}
		for i := range ab.Tracks {
			byName[ab.Tracks[i].Name] = &ab.Tracks[i]
		}
		for _, rt := range b.Tracks {
			t := byName[rt.Name]
			if t == nil {
				ab.Tracks = append(ab.Tracks, apiTrack{Name: rt.Name, Subscribers: map[string]int{}})
				t = &ab.Tracks[len(ab.Tracks)-1]
				byName = map[string]*apiTrack{}
				for i := range ab.Tracks {
					byName[ab.Tracks[i].Name] = &ab.Tracks[i]
				}
			}
			for p, n := range rt.Subscribers {
				if p != "api" { // our own catalog watcher is not a viewer
					t.Subscribers[p] = n
				}
			}
			t.Objects, t.CacheBytes, t.Largest = rt.Objects, rt.CacheBytes, rt.Largest
			if r, ok := w.rates[b.Path+"/"+rt.Name]; ok {
				t.Measured = int(r.bps)
			}
		}
		sort.Slice(ab.Tracks, func(i, j int) bool { return ab.Tracks[i].Name < ab.Tracks[j].Name })
		out = append(out, ab)
	}
	return out
}

// apiBroadcastsHandler lists the broadcasts (with auth on, those the
// caller's token may subscribe to).
func (s *Server) apiBroadcastsHandler(w http.ResponseWriter, r *http.Request) {
	g, ok := s.httpGrant(w, r, "api")
	if !ok {
		return
	}
	out := []apiBroadcast{}
	for _, b := range s.apiBroadcasts() {
		if g == nil || g.Allows(auth.Subscribe, b.Path) {
			out = append(out, b)
		}
	}
	writeJSON(w, map[string]any{"broadcasts": out})
}

// apiBroadcasts are the broadcasts with the transcodes running for them.
func (s *Server) apiBroadcasts() []apiBroadcast {
	bs := s.catalogs.broadcasts()
	if s.webrtc == nil || s.webrtc.transcode == nil {
		return bs
	}
	by := map[string][]transcode.Status{}
	for _, t := range s.webrtc.transcode.Transcodes() {
		by[t.Broadcast] = append(by[t.Broadcast], t)
	}
	for i := range bs {
		bs[i].Transcodes = by[bs[i].Path]
	}
	return bs
}

// apiBroadcastHandler describes one broadcast; one the token may not
// subscribe to is answered as if it did not exist.
func (s *Server) apiBroadcastHandler(w http.ResponseWriter, r *http.Request) {
	g, ok := s.httpGrant(w, r, "api")
	if !ok {
		return
	}
	path := strings.Trim(r.PathValue("path"), "/")
	for _, b := range s.apiBroadcasts() {
		if b.Path == path && (g == nil || g.Allows(auth.Subscribe, b.Path)) {
			writeJSON(w, b)
			return
		}
	}
	http.Error(w, "no such broadcast", http.StatusNotFound)
}
