package server

import (
	"fmt"
	"net"
	"sync"
)

// admission enforces the session limits: a newcomer over a limit is
// refused; sessions already admitted are never affected.
type admission struct {
	total, perIP int
	mu           sync.Mutex
	n            int
	byIP         map[string]int
}

func newAdmission(total, perIP int) *admission {
	return &admission{total: total, perIP: perIP, byIP: make(map[string]int)}
}

// setLimits changes the limits (SIGHUP); sessions already admitted stay.
func (a *admission) setLimits(total, perIP int) {
	a.mu.Lock()
	a.total, a.perIP = total, perIP
	a.mu.Unlock()
}

// admit reserves a session slot for remote; release frees it.
func (a *admission) admit(remote net.Addr) (func(), error) {
	ip := remote.String()
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total > 0 && a.n >= a.total {
		return nil, fmt.Errorf("session limit reached (%d)", a.total)
	}
	if a.perIP > 0 && a.byIP[ip] >= a.perIP {
		return nil, fmt.Errorf("session limit per IP reached (%d for %s)", a.perIP, ip)
	}
	a.n++
	a.byIP[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.n--
			if a.byIP[ip]--; a.byIP[ip] <= 0 {
				delete(a.byIP, ip)
			}
		})
	}, nil
}
