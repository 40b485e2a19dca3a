package hls

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Cache-Control of playlists: they change with every part. Parts,
// segments and init segments never change under their name (gohlslib puts
// a random per-muxer prefix in every name) and keep its
// "public, max-age=3600", so a CDN may cache them.
const playlistCacheControl = "no-cache"

// serve answers one request for file of the stream's broadcast.
func (st *stream) serve(w http.ResponseWriter, r *http.Request, file string) {
	// First wait for the stream to start: an unknown broadcast is a 404.
	wait, cancel := context.WithTimeout(r.Context(), st.srv.cfg.WaitTimeout)
	defer cancel()
	select {
	case <-st.started:
	case <-wait.Done():
		unavailable(w, "broadcast not ready")
		return
	}
	if st.startErr != nil {
		if errors.Is(st.startErr, errNoBroadcast) {
			http.Error(w, "no such broadcast", http.StatusNotFound)
		} else {
			unavailable(w, "cannot mux broadcast")
		}
		return
	}
	switch {
	case file == "index.m3u8":
		st.serveMultivariant(w, r)
	case strings.HasSuffix(file, "_stream.m3u8"):
		st.serveMedia(w, r, file)
	case strings.HasSuffix(file, ".mp4"):
		st.serveFile(w, r, file)
	default:
		http.NotFound(w, r)
	}
}

// current waits until the stream has a serving generation (one with a
// first segment). It returns nil when ctx ends, the stream stops, or the
// broadcast has nothing HLS can carry (noTracks).
func (st *stream) current(ctx context.Context) (g *generation, changed <-chan struct{}, noTracks bool) {
	for {
		st.mu.Lock()
		g, ch, catCh := st.cur, st.changed, st.catChanged
		none := st.catSeen && len(st.descs) == 0
		st.mu.Unlock()
		if g != nil {
			return g, ch, false
		}
		if none {
			return nil, nil, true
		}
		select {
		case <-ch:
		case <-catCh:
		case <-st.done:
			return nil, nil, false
		case <-ctx.Done():
			return nil, nil, false
		}
	}
}

// waitCurrent is current with the first-segment wait bound, answering the
// request itself when there is nothing to serve.
func (st *stream) waitCurrent(w http.ResponseWriter, r *http.Request) (*generation, <-chan struct{}) {
	ctx, cancel := context.WithTimeout(r.Context(), st.srv.cfg.WaitTimeout)
	defer cancel()
	g, ch, none := st.current(ctx)
	switch {
	case g != nil:
	case none:
		http.Error(w, "no track of the broadcast can be carried by HLS", http.StatusNotFound)
	case r.Context().Err() != nil:
	default:
		select {
		case <-st.done:
			http.Error(w, "broadcast ended", http.StatusNotFound)
		default:
			unavailable(w, "no segment yet")
		}
	}
	return g, ch
}

func (st *stream) serveMultivariant(w http.ResponseWriter, r *http.Request) {
	g, _ := st.waitCurrent(w, r)
	if g == nil {
		return
	}
	resp, ok := g.get(r.Context(), st.done, "index.m3u8", r.URL.RawQuery)
	if !ok {
		return
	}
	st.writePlaylist(w, resp.code(), resp.body.Bytes())
}

// blockTimeout is how long a blocking playlist reload (or a preload hint)
// waits before the playlist is answered as it is. RFC 8216bis lets a
// server hold such a request for three target durations, which is what a
// reload for a whole segment gets. One for a part gets three part targets:
// LL clients give up much earlier than the RFC's bound (hls.js after
// max(3 part targets, 0.8 target durations)) and count that as an error,
// while an unchanged playlist just makes them ask again.
func (st *stream) blockTimeout(part bool) time.Duration {
	st.mu.Lock()
	pt, td := st.partTarget, st.targetDur
	st.mu.Unlock()
	if pt == 0 {
		pt = st.srv.cfg.PartDuration
	}
	if !part {
		return 3 * time.Duration(max(td, 1)) * time.Second
	}
	return max(3*pt, 500*time.Millisecond)
}

func (st *stream) serveMedia(w http.ResponseWriter, r *http.Request, file string) {
	id := strings.TrimSuffix(file, "_stream.m3u8")
	q := r.URL.Query()
	msnStr, partStr := q.Get("_HLS_msn"), q.Get("_HLS_part")
	var msn int64 = -1
	if msnStr != "" {
		v, err := strconv.ParseInt(msnStr, 10, 64)
		if err != nil || v < 0 {
			http.Error(w, "bad _HLS_msn", http.StatusBadRequest)
			return
		}
		msn = v
	} else if partStr != "" {
		http.Error(w, "_HLS_part without _HLS_msn", http.StatusBadRequest)
		return
	}
	var deadline time.Time
	for {
		g, changed := st.waitCurrent(w, r)
		if g == nil {
			return
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(st.blockTimeout(partStr != ""))
		}
		st.mu.Lock()
		hasHist := len(st.history[id]) > 0
		st.mu.Unlock()

		lq := url.Values{}
		for k, v := range q {
			lq[k] = v
		}
		blocking := false
		if msn >= 0 {
			if local := msn - g.seqBase; msn >= g.seqBase+lowLatencyGaps {
				// In this generation: gohlslib blocks until it exists.
				lq.Set("_HLS_msn", strconv.FormatInt(local, 10))
				blocking = true
			} else {
				// A segment of an earlier generation: complete already.
				lq.Del("_HLS_msn")
				lq.Del("_HLS_part")
			}
		}
		if hasHist {
			// Delta updates would skip the earlier generation's segments
			// whose EXT-X-MAP the client may not have; send it all.
			lq.Del("_HLS_skip")
		}
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		resp, ok := g.get(ctx, changed, file, lq.Encode())
		cancel()
		if !ok {
			if r.Context().Err() != nil {
				return
			}
			select {
			case <-changed:
				continue // a new generation: ask again
			default:
			}
			if !blocking {
				unavailable(w, "playlist not available")
				return
			}
			// Nothing new within the bound (the publisher stalled): answer
			// with the playlist as it is, the client asks again.
			msn, deadline = -1, time.Now().Add(2*time.Second)
			q.Del("_HLS_msn")
			q.Del("_HLS_part")
			continue
		}
		if resp.code() == http.StatusInternalServerError {
			select {
			case <-changed:
				continue // the generation was replaced while blocking
			default:
			}
		}
		if resp.code() == http.StatusNotFound && st.hadPlaylist(id) {
			// The serving muxer lacks a rendition an earlier one had: the
			// publisher came back without that track, or not yet with it.
			// A player cannot recover from a 404 (hls.js gives up on the
			// first one); wait, within the bound, for a generation that
			// has it, then let the client retry. A plain request waits no
			// longer than a reload for a part.
			until := deadline
			if t := time.Now().Add(st.blockTimeout(true)); msn < 0 && t.Before(until) {
				until = t
			}
			if waitChanged(r.Context(), changed, until) {
				continue
			}
			if r.Context().Err() == nil {
				unavailable(w, "rendition not available at the moment")
			}
			return
		}
		if resp.code() != http.StatusOK {
			w.Header().Set("Cache-Control", playlistCacheControl)
			http.Error(w, http.StatusText(resp.code()), resp.code())
			return
		}
		out, err := st.renderMedia(g, id, resp.body.Bytes())
		if err != nil {
			st.log.Warn("hls: media playlist", "err", err)
			unavailable(w, "playlist not available")
			return
		}
		st.writePlaylist(w, http.StatusOK, out)
		return
	}
}

// hadPlaylist reports whether a generation of the stream has served media
// playlist id.
func (st *stream) hadPlaylist(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.playlists[id]
}

// waitChanged waits until changed is closed (true), deadline passes or ctx
// ends.
func waitChanged(ctx context.Context, changed <-chan struct{}, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-changed:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (st *stream) writePlaylist(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Cache-Control", playlistCacheControl)
	h.Set("Content-Type", "application/vnd.apple.mpegurl")
	if code != http.StatusOK {
		http.Error(w, http.StatusText(code), code)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// genByPrefix finds the generation whose files are named prefix_*.
func (st *stream) genByPrefix(prefix string) *generation {
	st.mu.Lock()
	defer st.mu.Unlock()
	if g := st.cur; g != nil && g.prefix == prefix {
		return g
	}
	for _, g := range st.old {
		if g.prefix == prefix {
			return g
		}
	}
	return nil
}

// serveFile serves an init segment, segment or part. A part named by a
// preload hint does not exist yet: gohlslib holds the request until it
// does.
func (st *stream) serveFile(w http.ResponseWriter, r *http.Request, file string) {
	prefix, _, _ := strings.Cut(file, "_")
	g := st.genByPrefix(prefix)
	if g == nil {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), st.blockTimeout(true))
	defer cancel()
	resp, ok := g.get(ctx, st.done, file, "")
	if !ok {
		if r.Context().Err() == nil {
			http.NotFound(w, r)
		}
		return
	}
	if resp.code() != http.StatusOK {
		http.Error(w, http.StatusText(resp.code()), resp.code())
		return
	}
	h := w.Header()
	for _, k := range []string{"Content-Type", "Cache-Control"} {
		if v := resp.header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	// ServeContent answers Range and HEAD requests too.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(resp.body.Bytes()))
}
