//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || loong64 || s390x || mips64 || mips64le))

package rtc

import (
	"errors"
	"net"

	"golang.org/x/net/ipv4"
)

type rawSender struct{}

func newRawSender(*net.UDPConn) *rawSender { return nil }

func (*rawSender) send([]ipv4.Message) (int, error) { return 0, errors.ErrUnsupported }

func isAgain(error) bool { return false }

var errRawUnusable = errors.New("rtc: message not sendable with sendmmsg")
