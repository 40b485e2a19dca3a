package transcode

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// every Linux architecture Go runs on).
const clockTicks = 100

// cpuMeter follows the CPU time of a transcoder's ffmpeg processes (one
// at a time; restarts add up), from /proc. Elsewhere it reads zero.
type cpuMeter struct {
	mu       sync.Mutex
	pid      int
	past     float64 // seconds of the processes that ended
	current  float64 // seconds of the running one, at the last sample
	lastAt   time.Time
	lastSecs float64
	pct      float64
}

func (m *cpuMeter) attach(pid int) {
	m.mu.Lock()
	m.pid, m.current = pid, 0
	m.mu.Unlock()
}

// detach counts the process that ended: its final CPU time if it was
// waited for (ps), else its last sample.
func (m *cpuMeter) detach(ps *os.ProcessState) {
	m.mu.Lock()
	if ps != nil {
		m.current = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	m.past += m.current
	m.pid, m.current = 0, 0
	m.mu.Unlock()
}

// sample reads the running process's CPU time.
func (m *cpuMeter) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pid == 0 {
		return
	}
	if s, err := processCPU(m.pid); err == nil {
		m.current = s
	}
	now, total := time.Now(), m.past+m.current
	if !m.lastAt.IsZero() {
		if d := now.Sub(m.lastAt).Seconds(); d > 0 {
			m.pct = max(total-m.lastSecs, 0) / d * 100
		}
	}
	m.lastAt, m.lastSecs = now, total
}

func (m *cpuMeter) total() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.past + m.current
}

func (m *cpuMeter) percent() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pct
}

// processCPU is a process's user + system CPU time in seconds.
func processCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return float64(utime+stime) / clockTicks, nil
}
