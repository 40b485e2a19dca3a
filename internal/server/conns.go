package server

import (
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/moqgate/moqgate/internal/limit"
)

// limitListener caps a listener's open connections in total and per IP: a
// newcomer over a limit gets refuse (e.g. an HTTP 503) and is closed;
// admitted connections are never affected.
type limitListener struct {
	net.Listener
	gate     *limit.Gate
	refuse   func(net.Conn)
	onRefuse func()
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, err := l.gate.Admit(c.RemoteAddr().String())
		if err == nil {
			return &countedConn{Conn: c, release: release}, nil
		}
		l.onRefuse()
		go l.refuse(c)
	}
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// refuseHTTP answers 503 with Retry-After on a plain-HTTP connection over
// the limit, and closes it (on TLS it is closed only: no handshake is
// spent on it).
func refuseHTTP(tls bool) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		if tls {
			return
		}
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\n" +
			"Content-Length: 28\r\nConnection: close\r\n\r\ntoo many connections; retry\n"))
	}
}

// fdWarnRatio is the share of RLIMIT_NOFILE in use that is warned about.
const fdWarnRatio = 0.8

// openFDs counts the process's open file descriptors (Linux: /proc).
func openFDs() (int, error) {
	es, err := os.ReadDir("/proc/self/fd")
	return len(es), err
}

// watchFDs warns when the open file descriptors pass 80 % of
// RLIMIT_NOFILE (once per crossing), until done is closed. The counts are
// in /metrics as process_open_fds and process_max_fds.
func watchFDs(done <-chan struct{}, log *slog.Logger) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return
	}
	high := false
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		n, err := openFDs()
		if err != nil {
			return
		}
		over := float64(n) >= fdWarnRatio*float64(rl.Cur)
		if over && !high {
			log.Warn("file descriptors nearly exhausted: new connections will fail", "open", n, "limit", rl.Cur)
		}
		high = over
	}
}
