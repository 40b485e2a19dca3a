package record

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Playback endpoints, on the web listener:
//
//	GET /api/recordings                            recorded broadcasts, time ranges, sizes
//	GET /recordings/{broadcast}?start=&duration=   one fMP4 of a range (or end= instead of duration=)
//	GET /recordings/{broadcast}/index.m3u8?start=&end=  VOD (or, while recording, EVENT) HLS playlist
//	GET /recordings/{broadcast}/segments/{id}.mp4  one recorded segment (byte ranges served)

// maxPlaylistSegments bounds one playlist (a client picks the range).
const maxPlaylistSegments = 50000

// contiguity is the largest gap between two segments that still counts
// as one range.
const contiguity = time.Second

// Authorize is asked before every playback request for the broadcast at
// path; an error answers 403.
type Authorize func(r *http.Request, path string) error

// Range is a stretch of recording without a gap.
type Range struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Recording describes one recorded broadcast for the API.
type Recording struct {
	Path     string  `json:"path"`
	Start    string  `json:"start"`
	End      string  `json:"end"`
	Bytes    int64   `json:"bytes"`
	Segments int     `json:"segments"`
	Ranges   []Range `json:"ranges"`
	// Recording: a segment is being written now.
	Recording bool `json:"recording"`
}

// Listing is the body of GET /api/recordings.
type Listing struct {
	Dir string `json:"dir"`
	// Failing: the last write failed (disk full, directory unwritable);
	// recording resumes by itself when writing works again.
	Failing    bool        `json:"failing"`
	Error      string      `json:"error,omitempty"`
	Recordings []Recording `json:"recordings"`
}

// List describes every recorded broadcast that allow accepts.
func (r *Recorder) List(allow func(path string) bool) Listing {
	failing, lastErr := r.status()
	out := Listing{Dir: r.cfg.Dir, Failing: failing, Error: lastErr, Recordings: []Recording{}}
	for _, p := range r.Paths() {
		if !allow(p) {
			continue
		}
		segs := r.Segments(p)
		if len(segs) == 0 {
			continue
		}
		rec := Recording{Path: p, Segments: len(segs), Ranges: ranges(segs),
			Start: segs[0].Start.Format(time.RFC3339Nano), End: segs[len(segs)-1].End.Format(time.RFC3339Nano)}
		for _, s := range segs {
			rec.Bytes += s.Bytes
			rec.Recording = rec.Recording || s.Open
		}
		out.Recordings = append(out.Recordings, rec)
	}
	return out
}

// ranges joins segments (in order) into gapless ranges.
func ranges(segs []Segment) []Range {
	var out []Range
	for _, s := range segs {
		if n := len(out); n > 0 && s.Start.Sub(out[n-1].End) <= contiguity {
			out[n-1].End = s.End
			continue
		}
		out = append(out, Range{Start: s.Start, End: s.End})
	}
	return out
}

// ServeRecording answers GET /recordings/{rest}: rest is a broadcast path,
// optionally followed by /index.m3u8 or /segments/{id}.mp4.
func (r *Recorder) ServeRecording(w http.ResponseWriter, req *http.Request, rest string, authorize Authorize) {
	path, kind, id := splitRecordingPath(rest)
	if path == "" {
		http.Error(w, "no broadcast", http.StatusNotFound)
		return
	}
	if authorize != nil {
		if err := authorize(req, path); err != nil {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	switch kind {
	case "playlist":
		r.servePlaylist(w, req, path)
	case "segment":
		r.serveSegment(w, req, path, id)
	default:
		r.serveRange(w, req, path)
	}
}

// splitRecordingPath splits a request path below /recordings/.
func splitRecordingPath(rest string) (path, kind string, id uint64) {
	rest = strings.Trim(rest, "/")
	if p, ok := strings.CutSuffix(rest, "/index.m3u8"); ok {
		return p, "playlist", 0
	}
	if i := strings.LastIndex(rest, "/segments/"); i >= 0 {
		name, ok := strings.CutSuffix(rest[i+len("/segments/"):], ".mp4")
		if n, err := strconv.ParseUint(name, 10, 64); ok && err == nil {
			return rest[:i], "segment", n
		}
	}
	return rest, "range", 0
}

// window parses start= and duration= or end= (RFC 3339; a duration as
// Go's "90s", "2m" or seconds). Missing ends are open.
func window(q url.Values) (from, to time.Time, err error) {
	if s := q.Get("start"); s != "" {
		if from, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return from, to, fmt.Errorf("start: %w", err)
		}
	}
	if s := q.Get("end"); s != "" {
		if to, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return from, to, fmt.Errorf("end: %w", err)
		}
	}
	if s := q.Get("duration"); s != "" {
		d, err := parseDuration(s)
		if err != nil || d <= 0 {
			return from, to, fmt.Errorf("duration: want a positive duration, got %q", s)
		}
		if from.IsZero() {
			return from, to, errors.New("duration needs start")
		}
		to = from.Add(d)
	}
	return from, to, nil
}

func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f != f || f > math.MaxInt64/float64(time.Second) {
			return 0, errors.New("out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

// pick returns the segments overlapping [from, to) (zero = open).
func pick(segs []Segment, from, to time.Time) []Segment {
	var out []Segment
	for _, s := range segs {
		if (from.IsZero() || s.End.After(from)) && (to.IsZero() || s.Start.Before(to)) {
			out = append(out, s)
		}
	}
	return out
}

// continues reports whether b can follow a in one fMP4 file: the same
// init segment and a media timeline that goes on rather than restarting.
func continues(a, b Segment) bool {
	return a.InitHash == b.InitHash && b.MediaStart >= a.MediaStart+a.Duration().Seconds()-0.5
}

// piece is the bytes [off, end) of a segment file.
type piece struct {
	seg      Segment
	off, end int64
}

// cutRange returns what one fMP4 of [from, to) is made of: the init of the
// first segment, then fragments from the key frame at or before from to
// the key frame at or after to (GOP precision; whole segments where the
// index has no key frames, as after a repair), across the segments that
// continue each other's timeline. It returns the wall-clock span served.
func cutRange(segs []Segment, from, to time.Time) (pieces []piece, start, end time.Time) {
	n := 1
	for n < len(segs) && continues(segs[n-1], segs[n]) {
		n++
	}
	segs = segs[:n]
	for _, s := range segs {
		pieces = append(pieces, piece{seg: s, off: s.InitSize, end: s.Bytes})
	}
	first, last := &pieces[0], &pieces[n-1]
	start, end = first.seg.Start, last.seg.End
	for _, k := range first.seg.Keys {
		if t := keyTime(first.seg, k); k.Off < first.end && !from.IsZero() && !t.After(from) {
			first.off, start = k.Off, t
		}
	}
	if !to.IsZero() {
		for _, k := range last.seg.Keys {
			if t := keyTime(last.seg, k); k.Off > last.off && k.Off < last.end && !t.Before(to) {
				last.end, end = k.Off, t
				break
			}
		}
	}
	return pieces, start, end
}

// keyTime is the wall-clock time of a key frame of s.
func keyTime(s Segment, k KeyPoint) time.Time {
	return s.Start.Add(time.Duration((k.T - s.MediaStart) * float64(time.Second)))
}

// serveRange writes one fMP4 of the recorded range (see cutRange); the
// headers X-Recording-Start and -End say what it holds.
func (r *Recorder) serveRange(w http.ResponseWriter, req *http.Request, path string) {
	from, to, err := window(req.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	segs := pick(r.Segments(path), from, to)
	if len(segs) == 0 {
		http.Error(w, "nothing recorded in that range", http.StatusNotFound)
		return
	}
	pieces, start, end := cutRange(segs, from, to)
	size := pieces[0].seg.InitSize
	for _, p := range pieces {
		size += p.end - p.off
	}
	h := w.Header()
	h.Set("Content-Type", "video/mp4")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("X-Recording-Start", start.Format(time.RFC3339Nano))
	h.Set("X-Recording-End", end.Format(time.RFC3339Nano))
	h.Set("Content-Disposition", fmt.Sprintf("inline; filename=%q", strings.ReplaceAll(path, "/", "_")+".mp4"))
	if req.Method == http.MethodHead {
		return
	}
	if err := r.copyPiece(w, piece{seg: pieces[0].seg, end: pieces[0].seg.InitSize}); err != nil {
		return
	}
	for _, p := range pieces {
		if err := r.copyPiece(w, p); err != nil {
			r.log.Debug("record: range download cut short", "broadcast", path, "err", err)
			return // the length tells the client it is short
		}
	}
}

// copyPiece writes a piece of a segment file.
func (r *Recorder) copyPiece(w io.Writer, p piece) error {
	f, err := os.Open(filepath.Join(r.cfg.Dir, p.seg.File))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, io.NewSectionReader(f, p.off, p.end-p.off))
	return err
}

// serveSegment serves one closed segment file.
func (r *Recorder) serveSegment(w http.ResponseWriter, req *http.Request, path string, id uint64) {
	for _, s := range r.store.segments(path) {
		if s.ID != id {
			continue
		}
		f, err := os.Open(filepath.Join(r.cfg.Dir, s.File))
		if err != nil {
			http.Error(w, "segment is gone", http.StatusNotFound)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Cache-Control", "max-age=31536000, immutable")
		http.ServeContent(w, req, "", s.End, io.NewSectionReader(f, 0, s.Bytes))
		return
	}
	http.Error(w, "no such segment", http.StatusNotFound)
}

// servePlaylist writes an HLS playlist of the closed segments in the
// range, each a byte range of its file after the init (EXT-X-MAP). While
// the broadcast is recorded and no end was asked for, the playlist is an
// EVENT one that grows; otherwise VOD.
func (r *Recorder) servePlaylist(w http.ResponseWriter, req *http.Request, path string) {
	q := req.URL.Query()
	from, to, err := window(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	segs := pick(r.store.segments(path), from, to)
	_, recording := r.openSegment(path)
	if len(segs) == 0 && !recording {
		http.Error(w, "nothing recorded in that range", http.StatusNotFound)
		return
	}
	if len(segs) > maxPlaylistSegments {
		segs = segs[:maxPlaylistSegments]
	}
	suffix := ""
	if jwt := q.Get("jwt"); jwt != "" {
		suffix = "?jwt=" + url.QueryEscape(jwt) // the segments need the grant too
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-cache")
	io.WriteString(w, playlist(segs, suffix, recording && to.IsZero()))
}

// playlist renders the HLS playlist of segs.
func playlist(segs []Segment, suffix string, event bool) string {
	target := 1
	for _, s := range segs {
		target = max(target, int(math.Ceil(s.Duration().Seconds())))
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", target)
	if event {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:EVENT\n")
	} else {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	}
	b.WriteString("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	for i, s := range segs {
		uri := fmt.Sprintf("segments/%d.mp4%s", s.ID, suffix)
		if i == 0 || !continues(segs[i-1], s) {
			if i > 0 {
				b.WriteString("#EXT-X-DISCONTINUITY\n")
			}
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q,BYTERANGE=\"%d@0\"\n", uri, s.InitSize)
		}
		if i == 0 || s.Start.Sub(segs[i-1].End) > contiguity || !continues(segs[i-1], s) {
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", s.Start.UTC().Format("2006-01-02T15:04:05.000Z"))
		}
		fmt.Fprintf(&b, "#EXTINF:%.3f,\n#EXT-X-BYTERANGE:%d@%d\n%s\n", s.Duration().Seconds(), s.Bytes-s.InitSize, s.InitSize, uri)
	}
	if !event {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.String()
}
