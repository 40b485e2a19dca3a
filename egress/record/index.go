package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// indexName is the file, in each broadcast's directory, that lists its
// segments: one JSON object a line, appended to.
const indexName = "index.jsonl"

// Segment is one recorded file: ftyp+moov for every track, then the
// tracks' moof+mdat fragments as they arrived, starting at a key frame of
// the broadcast's first video track.
type Segment struct {
	ID   uint64 `json:"id"`
	Path string `json:"path"` // broadcast
	// File is relative to the recording directory.
	File string `json:"file"`
	// Start and End are wall-clock times derived from the media timeline:
	// the segment after an unbroken one starts where it ended.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// MediaStart is the first DTS of the first track, in seconds.
	MediaStart float64 `json:"media_start"`
	Bytes      int64   `json:"bytes"`
	// InitSize is the length of the ftyp+moov at the start of the file.
	InitSize int64 `json:"init_size"`
	// InitHash identifies the init segment (equal hashes: a player needs
	// no new one).
	InitHash string   `json:"init_hash"`
	Tracks   []string `json:"tracks"`
	// Keys are where the GOPs of the cut track start: a range is served
	// from the key frame before its start to the one after its end.
	Keys []KeyPoint `json:"keys,omitempty"`
	// Open marks the record written when the segment was opened; the
	// closing record (same ID) follows it.
	Open bool `json:"open,omitempty"`
	// Repaired marks a segment closed at start-up after a crash.
	Repaired bool `json:"repaired,omitempty"`
}

// KeyPoint is a key frame of a segment's first track: the byte offset of
// its fragment and its decode time (seconds, as MediaStart).
type KeyPoint struct {
	Off int64   `json:"off"`
	T   float64 `json:"t"`
}

// Duration is End - Start.
func (s Segment) Duration() time.Duration { return s.End.Sub(s.Start) }

// store holds the index of every recorded broadcast under one directory.
type store struct {
	dir string
	log *slog.Logger

	mu         sync.Mutex
	broadcasts map[string]*bcIndex
}

type bcIndex struct {
	closed []Segment // by ID
	open   *Segment
	nextID uint64
	// stale counts the lines of the index file a rewrite would drop
	// (open and progress records of closed segments).
	stale int
}

// compactAfter is how many stale lines make finish rewrite an index.
const compactAfter = 1000

// dirOf maps a broadcast path to a directory below the recording root:
// each component path-escaped, so that no publisher-chosen name can climb
// out of it.
func dirOf(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		p = url.PathEscape(p)
		if p == "." || p == ".." || p == "" {
			p = strings.Repeat("%2E", len(p)) + "%00"
		}
		parts[i] = p
	}
	return filepath.Join(parts...)
}

// openStore loads every index under dir and closes the segments a crash
// left open.
func openStore(dir string, log *slog.Logger) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	s := &store{dir: dir, log: log, broadcasts: map[string]*bcIndex{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != indexName {
			return err
		}
		return s.load(p)
	})
	if err != nil {
		return nil, fmt.Errorf("record: load index: %w", err)
	}
	return s, nil
}

// load reads one index file and repairs its open segment, if any.
func (s *store) load(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	path, ix := parseIndex(data)
	if path == "" {
		return nil
	}
	if ix.open != nil {
		seg, err := repair(s.dir, *ix.open)
		if err != nil {
			s.log.Warn("record: cannot repair segment; deleting it", "file", ix.open.File, "err", err)
			os.Remove(filepath.Join(s.dir, ix.open.File))
		} else {
			s.log.Info("record: closed a segment left open", "file", seg.File, "end", seg.End, "bytes", seg.Bytes)
			ix.closed = append(ix.closed, seg)
		}
		ix.open = nil
	}
	s.broadcasts[path] = ix
	// Rewrite the index: it is now closed records only.
	return s.rewriteLocked(path, ix)
}

// parseIndex reads the records of an index file: the broadcast path, its
// closed segments in order and the open one, if the last opened was not
// closed. Unreadable lines (a crash cuts the last one short) and records
// of other broadcasts or naming files outside the root are skipped.
func parseIndex(data []byte) (string, *bcIndex) {
	ix := &bcIndex{}
	var path string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var seg Segment
		if err := json.Unmarshal(sc.Bytes(), &seg); err != nil {
			continue
		}
		if seg.Path == "" || path != "" && seg.Path != path || !filepath.IsLocal(seg.File) ||
			seg.Bytes < 0 || seg.InitSize < 0 || seg.InitSize > seg.Bytes && !seg.Open || seg.ID == math.MaxUint64 {
			continue // not ours to serve: only files below the root are
		}
		path = seg.Path
		ix.nextID = max(ix.nextID, seg.ID+1)
		if seg.Open {
			ix.open = &seg
			continue
		}
		if ix.open != nil && ix.open.ID == seg.ID {
			ix.open = nil
		}
		if i := slices.IndexFunc(ix.closed, func(c Segment) bool { return c.ID == seg.ID }); i >= 0 {
			ix.closed[i] = seg // a later record wins
			continue
		}
		ix.closed = append(ix.closed, seg)
	}
	slices.SortFunc(ix.closed, func(a, b Segment) int { return a.Start.Compare(b.Start) })
	return path, ix
}

// begin records that a segment was opened and returns its ID.
func (s *store) begin(seg Segment) (Segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.broadcasts[seg.Path]
	if ix == nil {
		ix = &bcIndex{}
		s.broadcasts[seg.Path] = ix
	}
	seg.ID, seg.Open = ix.nextID, true
	ix.nextID++
	if err := s.appendLocked(seg); err != nil {
		return seg, err
	}
	ix.open = &seg
	return seg, nil
}

// progress records how far an open segment got (its key frames so far).
func (s *store) progress(seg Segment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg.Open = true
	seg.Keys = slices.Clone(seg.Keys) // the writer appends to its own
	if ix := s.broadcasts[seg.Path]; ix != nil && ix.open != nil && ix.open.ID == seg.ID {
		ix.open = &seg
		ix.stale++
	}
	return s.appendLocked(seg)
}

// finish records a closed segment.
func (s *store) finish(seg Segment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg.Open = false
	ix := s.broadcasts[seg.Path]
	if ix.open != nil && ix.open.ID == seg.ID {
		ix.open = nil
	}
	if err := s.appendLocked(seg); err != nil {
		return err
	}
	ix.closed = append(ix.closed, seg)
	if ix.stale++; ix.stale >= compactAfter {
		return s.rewriteLocked(seg.Path, ix)
	}
	return nil
}

// abandon forgets an open segment whose file was not written (or held
// nothing but the init), in the index file too.
func (s *store) abandon(seg Segment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ix := s.broadcasts[seg.Path]; ix != nil && ix.open != nil && ix.open.ID == seg.ID {
		ix.open = nil
		if err := s.rewriteLocked(seg.Path, ix); err != nil {
			s.log.Debug("record: index rewrite", "err", err)
		}
	}
}

func (s *store) indexFile(path string) string {
	return filepath.Join(s.dir, dirOf(path), indexName)
}

func (s *store) appendLocked(seg Segment) error {
	line, err := json.Marshal(seg)
	if err != nil {
		return err
	}
	file := s.indexFile(seg.Path)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// rewriteLocked replaces the index of path by what ix holds, atomically.
func (s *store) rewriteLocked(path string, ix *bcIndex) error {
	var buf bytes.Buffer
	for _, seg := range ix.closed {
		line, err := json.Marshal(seg)
		if err != nil {
			return err
		}
		buf.Write(append(line, '\n'))
	}
	if ix.open != nil {
		line, err := json.Marshal(*ix.open)
		if err != nil {
			return err
		}
		buf.Write(append(line, '\n'))
	}
	file := s.indexFile(path)
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	ix.stale = 0
	return nil
}

// segments returns the closed segments of a broadcast, oldest first.
func (s *store) segments(path string) []Segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ix := s.broadcasts[path]; ix != nil {
		return slices.Clone(ix.closed)
	}
	return nil
}

// paths lists the recorded broadcasts.
func (s *store) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p, ix := range s.broadcasts {
		if len(ix.closed) > 0 {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// prune deletes closed segments that ended before cutoff (when maxAge is
// set), then the oldest closed ones while all closed segments together
// exceed maxBytes (when set). It returns the deleted segments.
func (s *store) prune(now time.Time, maxAge time.Duration, maxBytes int64) ([]Segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	del := map[string][]uint64{}
	var out []Segment
	var all []Segment
	for p, ix := range s.broadcasts {
		for _, seg := range ix.closed {
			if maxAge > 0 && seg.End.Before(now.Add(-maxAge)) {
				del[p] = append(del[p], seg.ID)
				out = append(out, seg)
				continue
			}
			all = append(all, seg)
		}
	}
	if maxBytes > 0 {
		var total int64
		for _, seg := range all {
			total += seg.Bytes
		}
		slices.SortFunc(all, func(a, b Segment) int { return a.Start.Compare(b.Start) })
		for i := 0; total > maxBytes && i < len(all); i++ {
			del[all[i].Path] = append(del[all[i].Path], all[i].ID)
			out = append(out, all[i])
			total -= all[i].Bytes
		}
	}
	var errs []error
	failed := map[string]bool{}
	for p, ids := range del {
		ix := s.broadcasts[p]
		ix.closed = slices.DeleteFunc(ix.closed, func(seg Segment) bool { return slices.Contains(ids, seg.ID) })
		// The index goes first: a segment it no longer lists is garbage,
		// one it lists but is missing would be served as a hole.
		if err := s.rewriteLocked(p, ix); err != nil {
			errs = append(errs, err)
			failed[p] = true
		}
	}
	for _, seg := range out {
		if failed[seg.Path] {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, seg.File)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}
