//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || loong64 || s390x || mips64 || mips64le)

package rtc

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawReceiver reads the shared socket with recvfrom(2) through
// RawSyscall, waiting in the runtime's poller when nothing is queued. A
// read through the net package enters the runtime's system call state,
// and the first such call after the process was idle wakes the runtime's
// monitor thread (sysmon), which then polls every 20 µs for a while: with
// a packet arriving every few milliseconds, those wakeups cost more CPU
// than the reads themselves. A non-blocking recvfrom is short, so it
// needs no system call state.
type rawReceiver struct {
	rc syscall.RawConn

	mu    sync.Mutex // one reader at a time: the fields below are its
	p     []byte
	n     int
	from  netip.AddrPort
	errno syscall.Errno
	sa    unix.RawSockaddrAny
	read  func(fd uintptr) bool // made once: a closure per call would allocate
	zones map[uint32]string
}

func newRawReceiver(c *net.UDPConn) *rawReceiver {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawReceiver{rc: rc}
	r.read = r.recvfrom
	return r
}

func (r *rawReceiver) recvfrom(fd uintptr) bool {
	for {
		salen := uint32(unix.SizeofSockaddrAny)
		var base unsafe.Pointer
		if len(r.p) > 0 {
			base = unsafe.Pointer(&r.p[0])
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(base), uintptr(len(r.p)), 0,
			uintptr(unsafe.Pointer(&r.sa)), uintptr(unsafe.Pointer(&salen)))
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait in the poller
		}
		r.n, r.errno = int(n), errno
		r.from = netip.AddrPort{}
		switch r.sa.Addr.Family {
		case unix.AF_INET:
			sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
			r.from = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), getPort(&sa.Port))
		case unix.AF_INET6:
			sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.sa))
			a := netip.AddrFrom16(sa.Addr)
			if sa.Scope_id != 0 {
				a = a.WithZone(r.zone(sa.Scope_id))
			}
			r.from = netip.AddrPortFrom(a, getPort(&sa.Port))
		}
		return true
	}
}

// readFrom is net.UDPConn.ReadFromUDPAddrPort (IPv6 zones aside).
func (r *rawReceiver) readFrom(p []byte) (int, netip.AddrPort, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p = p
	err := r.rc.Read(r.read)
	r.p = nil
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if r.errno != 0 {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Err: r.errno}
	}
	return r.n, r.from, nil
}

// zone names an IPv6 scope like the net package: the interface's name, or
// its index.
func (r *rawReceiver) zone(idx uint32) string {
	if z, ok := r.zones[idx]; ok {
		return z
	}
	z := strconv.FormatUint(uint64(idx), 10)
	if ifi, err := net.InterfaceByIndex(int(idx)); err == nil {
		z = ifi.Name
	}
	if r.zones == nil {
		r.zones = map[uint32]string{}
	}
	r.zones[idx] = z
	return z
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}
