package ingest

import (
	"sync"
	"time"
)

// Continuity remembers where each broadcast's media timeline ended, so a
// publisher that reconnects within the grace period continues the same
// timeline: players see time go on rather than restart at zero.
type Continuity struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]continuityEntry
}

type continuityEntry struct {
	end     time.Duration // media time where the last publisher stopped
	expires time.Time
}

// NewContinuity remembers timelines for ttl (the relay's grace period).
func NewContinuity(ttl time.Duration) *Continuity {
	return &Continuity{ttl: ttl, m: make(map[string]continuityEntry)}
}

// Resume returns where a new publisher of path should start its timeline
// (0 for a new broadcast).
func (c *Continuity) Resume(path string) time.Duration {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[path]
	if !ok || time.Now().After(e.expires) {
		delete(c.m, path)
		return 0
	}
	return e.end
}

// Ended records where the timeline of path stopped.
func (c *Continuity) Ended(path string, end time.Duration) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for p, e := range c.m {
		if now.After(e.expires) {
			delete(c.m, p)
		}
	}
	c.m[path] = continuityEntry{end: end, expires: now.Add(c.ttl)}
}
