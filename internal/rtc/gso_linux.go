package rtc

import (
	"syscall"
	"unsafe"
)

// UDP GSO (UDP_SEGMENT, linux/udp.h; Linux 4.18+).
const (
	gsoSupported = true
	solUDP       = 17
	udpSegment   = 103
)

// segmentOOB is the control message of a GSO send of size-byte segments.
func segmentOOB(size int) []byte {
	oob := make([]byte, syscall.CmsgSpace(2))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = solUDP, udpSegment
	h.SetLen(syscall.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[syscall.CmsgLen(0)])) = uint16(size)
	return oob
}
