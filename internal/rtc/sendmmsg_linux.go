//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || loong64 || s390x || mips64 || mips64le)

package rtc

import (
	"errors"
	"net"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// rawSender calls sendmmsg(2) directly with RawSyscall: a Go system call
// that takes a while (a batch to many peers, with loopback delivery in the
// same call) would let the runtime hand the thread's P to another thread,
// and on a VM every such thread switch costs more than the call saves.
// MSG_DONTWAIT: when the socket buffer is full it fails with EAGAIN and
// the caller falls back to the poller-aware path.
type rawSender struct {
	fd  int
	v6  bool
	mm  []mmsghdr
	iov []unix.Iovec
	sa  []unix.RawSockaddrInet6 // large enough for either family
}

func newRawSender(c *net.UDPConn) *rawSender {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawSender{fd: -1}
	if rc.Control(func(fd uintptr) { r.fd = int(fd) }) != nil || r.fd < 0 {
		return nil
	}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		r.v6 = true
	}
	return r
}

var errRawUnusable = errors.New("rtc: message not sendable with sendmmsg")

// send sends msgs and returns how many went (like WriteBatch).
func (r *rawSender) send(msgs []ipv4.Message) (int, error) {
	niov := 0
	for _, m := range msgs {
		niov += len(m.Buffers)
	}
	// Size everything first: pointers into these slices go to the kernel.
	r.mm = growTo(r.mm, len(msgs))
	r.sa = growTo(r.sa, len(msgs))
	r.iov = growTo(r.iov, niov)
	k := 0
	for i, m := range msgs {
		ua, ok := m.Addr.(*net.UDPAddr)
		if !ok || len(m.Buffers) == 0 {
			return i, errRawUnusable
		}
		ap := ua.AddrPort()
		sa := &r.sa[i]
		var salen uint32
		if r.v6 {
			*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ap.Addr().As16()}
			putPort(&sa.Port, ap.Port())
			salen = unix.SizeofSockaddrInet6
		} else {
			if !ap.Addr().Unmap().Is4() {
				return i, errRawUnusable
			}
			sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
			*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().Unmap().As4()}
			putPort(&sa4.Port, ap.Port())
			salen = unix.SizeofSockaddrInet4
		}
		start := k
		for _, b := range m.Buffers {
			r.iov[k] = unix.Iovec{}
			if len(b) > 0 {
				r.iov[k].Base = &b[0]
			}
			r.iov[k].SetLen(len(b))
			k++
		}
		h := &r.mm[i]
		*h = mmsghdr{}
		h.hdr.Name = (*byte)(unsafe.Pointer(sa))
		h.hdr.Namelen = salen
		h.hdr.Iov = &r.iov[start]
		h.hdr.SetIovlen(k - start)
		if len(m.OOB) > 0 {
			h.hdr.Control = &m.OOB[0]
			h.hdr.SetControllen(len(m.OOB))
		}
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.mm[0])),
		uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func growTo[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/2)
	}
	return s[:n]
}

func isAgain(err error) bool { return errors.Is(err, unix.EAGAIN) }
