//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || loong64 || s390x || mips64 || mips64le))

package rtc

import (
	"errors"
	"net"
	"net/netip"
)

type rawReceiver struct{}

func newRawReceiver(*net.UDPConn) *rawReceiver { return nil }

func (*rawReceiver) readFrom([]byte) (int, netip.AddrPort, error) {
	return 0, netip.AddrPort{}, errors.ErrUnsupported
}
