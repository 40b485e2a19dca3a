package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moqgate/moqgate/media"
)

// DefaultPattern names segment files: {path} is the broadcast's directory,
// {date} and {time} the segment's start day and time (UTC).
const DefaultPattern = "{path}/{time}"

const timeLayout = "2006-01-02_15-04-05.000"

// segmentFile returns a new file name below root for a segment of path
// starting at start, following pattern.
func segmentFile(root, pattern, path string, start time.Time) (string, error) {
	if pattern == "" {
		pattern = DefaultPattern
	}
	name := strings.NewReplacer("{path}", dirOf(path), "{date}", start.UTC().Format(time.DateOnly),
		"{time}", start.UTC().Format(timeLayout)).Replace(pattern)
	name = filepath.Clean(name)
	if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("record: pattern %q names a file outside the directory", pattern)
	}
	for i := 0; ; i++ {
		cand := name + ".mp4"
		if i > 0 {
			cand = fmt.Sprintf("%s-%d.mp4", name, i)
		}
		_, err := os.Lstat(filepath.Join(root, cand))
		if errors.Is(err, os.ErrNotExist) {
			return cand, nil
		}
		if err != nil {
			return "", fmt.Errorf("record: %w", err)
		}
		if i > 1000 {
			return "", fmt.Errorf("record: no free file name for %s", name)
		}
	}
}

// segWriter writes one segment file. Every fragment goes to the file in
// one write as it completes, so a crash loses at most the one being
// written.
type segWriter struct {
	f   *os.File
	cw  *countWriter
	mux *media.FMP4Muxer
	seg Segment
	// good is the file length after the last complete write: what a
	// failed write is cut back to.
	good int64
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// createSegment creates the file of seg (seg.File, relative to root) and
// writes the init segment of tracks.
func createSegment(root string, seg Segment, tracks []media.FMP4MuxTrack) (*segWriter, error) {
	full := filepath.Join(root, seg.File)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	var head bytes.Buffer
	cw := &countWriter{w: io.MultiWriter(f, &head)}
	mux, err := media.NewFMP4Muxer(cw, tracks)
	if err != nil {
		f.Close()
		os.Remove(full)
		return nil, err
	}
	cw.w = f // the init is in head; fragments go to the file only
	sum := sha256.Sum256(head.Bytes())
	seg.InitSize, seg.InitHash = cw.n, hex.EncodeToString(sum[:8])
	for _, t := range tracks {
		seg.Tracks = append(seg.Tracks, t.Name)
	}
	return &segWriter{f: f, cw: cw, mux: mux, seg: seg, good: cw.n}, nil
}

// write appends one MoQ object of track.
func (w *segWriter) write(track string, payload []byte) error {
	if err := w.mux.WriteObject(track, payload); err != nil {
		return err
	}
	w.good = w.cw.n
	return nil
}

// close syncs and closes the file, cut after its last complete fragment,
// and returns the finished record.
func (w *segWriter) close(end time.Time) (Segment, error) {
	var err error
	if w.cw.n != w.good {
		err = w.f.Truncate(w.good)
	}
	if serr := w.f.Sync(); err == nil {
		err = serr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.seg.End, w.seg.Bytes = end, w.good
	return w.seg, err
}

// discard closes and deletes a file that could not be written.
func (w *segWriter) discard() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// repair closes a segment a crash left open: the file is cut after its
// last complete moof+mdat, and its end is computed from the first track's
// samples.
func repair(root string, seg Segment) (Segment, error) {
	full := filepath.Join(root, seg.File)
	data, err := os.ReadFile(full)
	if err != nil {
		return seg, err
	}
	keep, err := completeFragments(data)
	if err != nil {
		return seg, err
	}
	if keep < int64(len(data)) {
		if err := os.Truncate(full, keep); err != nil {
			return seg, err
		}
		data = data[:keep]
	}
	first, end, ok, err := mediaSpan(data)
	if err != nil {
		return seg, err
	}
	if !ok {
		return seg, errors.New("no complete fragment of the first track")
	}
	if seg.InitSize == 0 {
		seg.InitSize = initSize(data)
	}
	seg.End = seg.Start.Add(time.Duration((end - first) * float64(time.Second)))
	seg.Bytes, seg.Repaired, seg.Open = keep, true, false
	seg.Keys = slices.DeleteFunc(seg.Keys, func(k KeyPoint) bool { return k.Off >= keep || k.Off < seg.InitSize })
	return seg, nil
}

// completeFragments returns the length of data up to the end of the last
// complete mdat that follows a moof (or of the moov when there is none).
func completeFragments(data []byte) (int64, error) {
	var pos, keep int64
	sawMoov, sawMoof := false, false
	for pos+8 <= int64(len(data)) {
		size := int64(binary.BigEndian.Uint32(data[pos:]))
		typ := string(data[pos+4 : pos+8])
		if size == 1 && pos+16 <= int64(len(data)) {
			size = int64(binary.BigEndian.Uint64(data[pos+8:]))
		}
		if size < 8 || pos+size > int64(len(data)) {
			break // cut short
		}
		pos += size
		switch typ {
		case "moov":
			sawMoov, keep = true, pos
		case "moof":
			sawMoof = true
		case "mdat":
			if sawMoof {
				keep = pos
			}
			sawMoof = false
		}
	}
	if !sawMoov {
		return 0, errors.New("no complete moov")
	}
	return keep, nil
}

// initSize is the length of the boxes before the first moof.
func initSize(data []byte) int64 {
	if i := bytes.Index(data, []byte("moof")); i >= 4 {
		return int64(i - 4)
	}
	return int64(len(data))
}

// mediaSpan returns the first DTS and the end (last DTS + duration) of the
// file's first track, in seconds.
func mediaSpan(data []byte) (first, end float64, ok bool, err error) {
	d := media.NewFMP4Demuxer(bytes.NewReader(data), 0)
	tracks, err := d.Tracks()
	if err != nil {
		return 0, 0, false, err
	}
	if len(tracks) == 0 {
		return 0, 0, false, errors.New("no tracks")
	}
	name, ts := tracks[0].Name, float64(tracks[0].Timescale)
	for {
		tn, f, err := d.Next()
		if errors.Is(err, io.EOF) {
			return first, end, ok, nil
		}
		if err != nil {
			return 0, 0, false, err
		}
		if tn != name {
			continue
		}
		if !ok {
			first, ok = float64(f.DTS)/ts, true
		}
		end = float64(f.DTS+f.Duration) / ts
	}
}
