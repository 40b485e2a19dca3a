package hls

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

type playlistSegment = playlist.MediaSegment

// partHoldBackFactor sets PART-HOLD-BACK from PART-TARGET: RFC 8216bis
// requires at least 2 and recommends at least 3 part target durations.
const partHoldBackFactor = 3

// fixedPartTarget chooses the PART-TARGET a stream keeps for its whole
// life. gohlslib recomputes it on every part (the longest part in the
// window) and lets it change, which breaks Apple clients. Its parts are cut
// at the first sample past a minimum duration that it raises until every
// sample duration seen fits (and freezes with the first segment), so parts
// run from that minimum to a frame more; H.264/H.265 DTS, which gohlslib
// derives from the picture order count, make them vary a little more. The
// target is the longest part of the first window, rounded up to 10 ms, but
// at least part/0.85: regular parts of the configured length then still
// meet the rule that parts (but the last of a segment) last at least 85 %
// of PART-TARGET, and the target leaves room for a frame more.
func fixedPartTarget(first, part time.Duration) time.Duration {
	const step = 10 * time.Millisecond
	t := time.Duration(math.Ceil(float64(first)/float64(step))) * step
	return max(t, (part * 100 / 85).Truncate(time.Millisecond))
}

// mediaSnapshot is a media playlist of a generation at one moment.
type mediaSnapshot struct {
	pl playlist.Media
}

// snapshot reads the current media playlists of a ready generation (they
// are complete, so the reads do not block).
func (g *generation) snapshot(ctx context.Context) map[string]*mediaSnapshot {
	out := map[string]*mediaSnapshot{}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, id := range g.streamIDs {
		resp, ok := g.get(ctx, nil, id+"_stream.m3u8", "")
		if !ok || resp.code() != http.StatusOK {
			continue
		}
		s := &mediaSnapshot{}
		if s.pl.Unmarshal(resp.body.Bytes()) == nil {
			out[id] = s
		}
	}
	return out
}

// initURI is the init segment of media playlist id.
func (g *generation) initURI(id string) string {
	return g.prefix + "_" + id + "_init.mp4"
}

// renderMedia rewrites a media playlist of generation g as gohlslib wrote
// it into the stream's playlist: PART-TARGET and PART-HOLD-BACK fixed for
// the stream's life, TARGETDURATION never lower than before, media
// sequence numbers continuing across generations, and the gap segments
// gohlslib puts in front of a new muxer replaced by the previous
// generation's segments, followed by a discontinuity.
func (st *stream) renderMedia(g *generation, id string, raw []byte) ([]byte, error) {
	// Many clients wait for the same part and get the same playlist at
	// once: render each distinct one once.
	st.mu.Lock()
	key := fmt.Sprintf("%d|%d|%s|%s", g.id, st.histVer, id, raw)
	out, ok := st.rendered[key]
	st.mu.Unlock()
	if ok {
		return out, nil
	}
	out, err := st.render(g, id, raw)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	if len(st.rendered) >= renderCacheSize {
		clear(st.rendered)
	}
	st.rendered[key] = out
	st.mu.Unlock()
	return out, nil
}

// leadingGaps counts the gohlslib gap segments at the head of a playlist
// (skipped in a delta update, then listed) that no earlier generation's
// segment replaces.
func leadingGaps(g *generation, hist map[int64]*histSeg, first int64, skipped int, segs []*playlistSegment) int {
	n := 0
	for msn := first; msn < g.seqBase+lowLatencyGaps && hist[msn] == nil; msn++ {
		i := int(msn-first) - skipped
		if i >= len(segs) || (i >= 0 && !segs[i].Gap) {
			break
		}
		n++
	}
	return n
}

// renderCacheSize bounds the rendered playlists kept: a few per media
// playlist (with and without delta updates, and query strings).
const renderCacheSize = 32

func (st *stream) render(g *generation, id string, raw []byte) ([]byte, error) {
	var pl playlist.Media
	if err := pl.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("hls: parse media playlist: %w", err)
	}
	st.mu.Lock()
	partTarget, targetDur, hist := st.partTarget, st.targetDur, st.history[id]
	st.mu.Unlock()
	if partTarget == 0 {
		partTarget = fixedPartTarget(g.partTarget, st.srv.cfg.PartDuration)
	}
	if pl.PartInf != nil {
		pl.PartInf.PartTarget = partTarget
	}
	if pl.ServerControl != nil {
		hb := partHoldBackFactor * partTarget
		pl.ServerControl.PartHoldBack = &hb
	}
	pl.TargetDuration = max(pl.TargetDuration, targetDur)

	skipped := 0
	if pl.Skip != nil {
		skipped = pl.Skip.SkippedSegments
	}
	// gohlslib puts the request's query (minus the _HLS_ parameters: e.g.
	// the ?jwt= token) on every URI it names; the URIs rewritten here get
	// it too, or a player could not fetch them when auth is on.
	query := ""
	if pl.Map != nil {
		if i := strings.IndexByte(pl.Map.URI, '?'); i >= 0 {
			query = pl.Map.URI[i:]
		}
	}
	first := int64(pl.MediaSequence) + g.seqBase
	type origin struct {
		disc int
		init string
		hist bool
	}
	org := make([]origin, len(pl.Segments))
	for i, seg := range pl.Segments {
		msn := first + int64(skipped+i)
		if h := hist[msn]; h != nil && seg.Gap {
			c := *h.seg // shared: never modified in place
			if query != "" && !c.Gap {
				c.URI += query
				c.Parts = make([]*playlist.MediaPart, len(h.seg.Parts))
				for j, p := range h.seg.Parts {
					cp := *p
					cp.URI += query
					c.Parts[j] = &cp
				}
			}
			pl.Segments[i] = &c
			org[i] = origin{disc: h.disc, init: h.init + query, hist: true}
			continue
		}
		org[i] = origin{disc: g.disc, init: g.initURI(id) + query}
	}
	// The gaps gohlslib puts in front of the first generation's segments
	// stand for nothing: a fresh broadcast's playlist starts at its first
	// real segment (players would otherwise count seconds of "gap" before
	// it). Only leading gaps go, so sequence numbers stay as they are.
	if lead := leadingGaps(g, hist, first, skipped, pl.Segments); lead > 0 {
		first += int64(lead)
		if skipped > 0 {
			fromSkip := min(lead, skipped)
			pl.Skip.SkippedSegments -= fromSkip
			if pl.Skip.SkippedSegments == 0 {
				pl.Skip = nil
			}
			skipped, lead = skipped-fromSkip, lead-fromSkip
		}
		pl.Segments, org = pl.Segments[lead:], org[lead:]
	}
	// A gap that no history replaces belongs with what follows it.
	for i := len(org) - 2; i >= 0; i-- {
		if !org[i].hist && pl.Segments[i].Gap {
			org[i] = org[i+1]
		}
	}
	var maps []string
	for i, seg := range pl.Segments {
		seg.Discontinuity = i > 0 && org[i].disc != org[i-1].disc
		if seg.Discontinuity {
			maps = append(maps, org[i].init)
		}
	}
	pl.MediaSequence = int(first)
	if len(org) > 0 && (org[0].disc > 0 || g.disc > 0) {
		d := org[0].disc
		if skipped > 0 {
			d = g.disc
		}
		pl.DiscontinuitySequence = &d
	}
	if pl.Map != nil && len(org) > 0 {
		pl.Map.URI = org[0].init
	}
	out, err := pl.Marshal()
	if err != nil {
		return nil, err
	}
	if len(maps) == 0 {
		return out, nil
	}
	// The playlist package keeps one EXT-X-MAP for the whole playlist;
	// each generation after a discontinuity has its own init segment.
	var b bytes.Buffer
	for line := range bytes.Lines(out) {
		b.Write(line)
		if len(maps) > 0 && bytes.Equal(bytes.TrimSpace(line), []byte("#EXT-X-DISCONTINUITY")) {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", maps[0])
			maps = maps[1:]
		}
	}
	return b.Bytes(), nil
}
