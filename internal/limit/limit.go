// Package limit holds the admission gates that bound what clients can make
// the server hold: a count in total and per client IP, where a newcomer
// over a limit is refused and those already admitted are never affected.
package limit

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Errors wrapped by Gate.Admit's refusals.
var (
	ErrTotal = errors.New("limit reached")
	ErrPerIP = errors.New("limit per IP reached")
)

// Gate counts admitted things (sessions, connections) in total and per IP.
// The zero limits mean unlimited. A Gate is safe for concurrent use.
type Gate struct {
	name         string
	mu           sync.Mutex
	total, perIP int
	n            int
	byIP         map[string]int
}

// New makes a gate; name ("sessions", "WebRTC sessions awaiting ICE")
// appears in refusals.
func New(name string, total, perIP int) *Gate {
	return &Gate{name: name, total: total, perIP: perIP, byIP: make(map[string]int)}
}

// SetLimits changes the limits (SIGHUP); what is admitted stays.
func (g *Gate) SetLimits(total, perIP int) {
	g.mu.Lock()
	g.total, g.perIP = total, perIP
	g.mu.Unlock()
}

// Count is the number admitted now.
func (g *Gate) Count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// HostOf is the IP of a "host:port" address (the address itself if it has
// no port).
func HostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Admit reserves a slot for the client at addr ("host:port" or an IP);
// the returned release frees it (more calls do nothing). The error wraps
// ErrTotal or ErrPerIP.
func (g *Gate) Admit(addr string) (release func(), err error) {
	ip := HostOf(addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total > 0 && g.n >= g.total {
		return nil, fmt.Errorf("%s: %w (%d)", g.name, ErrTotal, g.total)
	}
	if g.perIP > 0 && g.byIP[ip] >= g.perIP {
		return nil, fmt.Errorf("%s: %w (%d for %s)", g.name, ErrPerIP, g.perIP, ip)
	}
	g.n++
	g.byIP[ip]++
	var once sync.Once
	return func() { once.Do(func() { g.release(ip) }) }, nil
}

func (g *Gate) release(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.byIP[ip]--; g.byIP[ip] <= 0 {
		delete(g.byIP, ip)
	}
}
