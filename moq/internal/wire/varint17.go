package wire

import (
	"fmt"
	"io"
)

// Draft-17 replaced QUIC's varints (RFC 9000 §16) with a leading-ones
// encoding (§1.4.1 of draft-17): the number of leading 1 bits of the first
// byte gives the length (1-6, 8 or 9 bytes), 11111100 is invalid. Values
// below 64 encode to the same single byte in both.

// vint is a varint encoding: QUIC's (drafts 14 and 16) or draft-17's
// leading-ones (lo). The zero value is QUIC's.
type vint struct{ lo bool }

var loVint = vint{lo: true}

func (v vint) append(b []byte, x uint64) []byte {
	if v.lo {
		return AppendVarint17(b, x)
	}
	return AppendVarint(b, x)
}

func (v vint) parse(b []byte) (uint64, int, error) {
	if v.lo {
		x, n, err := ParseVarint17(b)
		if err == nil && x > MaxVarint {
			return 0, 0, errBeyondModel(x)
		}
		return x, n, err
	}
	return ParseVarint(b)
}

func (v vint) readRest(r io.ByteReader, first byte) (uint64, error) {
	if v.lo {
		x, err := readVarint17Rest(r, first)
		if err == nil && x > MaxVarint {
			return 0, errBeyondModel(x)
		}
		return x, err
	}
	return readVarintRest(r, first)
}

// errBeyondModel refuses a draft-17 value above 2^62-1: the model (shared
// with the QUIC-varint drafts, and relayed to them) cannot carry it. No
// value we meet in practice comes near.
func errBeyondModel(x uint64) error {
	return protocolViolation("value %d exceeds 2^62-1, which moqgate does not carry", x)
}

func (v vint) read(r io.ByteReader) (uint64, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	return v.readRest(r, first)
}

// varint17Len is the encoded length of a draft-17 varint from its first
// byte, or 0 for the invalid 11111100.
func varint17Len(first byte) int {
	switch {
	case first < 0x80:
		return 1
	case first < 0xC0:
		return 2
	case first < 0xE0:
		return 3
	case first < 0xF0:
		return 4
	case first < 0xF8:
		return 5
	case first < 0xFC:
		return 6
	case first < 0xFE:
		return 0 // 1111110x: invalid in draft-17
	case first == 0xFE:
		return 8
	}
	return 9
}

// AppendVarint17 appends the minimal draft-17 encoding of x.
func AppendVarint17(b []byte, x uint64) []byte {
	var n int
	switch {
	case x < 1<<7:
		return append(b, byte(x))
	case x < 1<<14:
		n = 2
	case x < 1<<21:
		n = 3
	case x < 1<<28:
		n = 4
	case x < 1<<35:
		n = 5
	case x < 1<<42:
		n = 6
	case x < 1<<56:
		b = append(b, 0xFE)
		for i := 6; i >= 0; i-- {
			b = append(b, byte(x>>(8*i)))
		}
		return b
	default:
		b = append(b, 0xFF)
		for i := 7; i >= 0; i-- {
			b = append(b, byte(x>>(8*i)))
		}
		return b
	}
	prefix := byte(0xFF << (8 - (n - 1))) // n-1 leading ones
	b = append(b, prefix|byte(x>>(8*(n-1))))
	for i := n - 2; i >= 0; i-- {
		b = append(b, byte(x>>(8*i)))
	}
	return b
}

// ParseVarint17 decodes a draft-17 varint from the start of b. A short
// buffer wraps io.ErrUnexpectedEOF; the invalid first byte 11111100(x) is
// a PROTOCOL_VIOLATION *SessionError.
func ParseVarint17(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("wire: varint: %w", io.ErrUnexpectedEOF)
	}
	n := varint17Len(b[0])
	if n == 0 {
		return 0, 0, protocolViolation("invalid varint prefix 0x%x", b[0])
	}
	if len(b) < n {
		return 0, 0, fmt.Errorf("wire: varint needs %d bytes, have %d: %w", n, len(b), io.ErrUnexpectedEOF)
	}
	return decode17(b[0], b[1:n]), n, nil
}

// decode17 assembles a varint from its first byte and the rest.
func decode17(first byte, rest []byte) uint64 {
	var v uint64
	switch n := len(rest) + 1; n {
	case 8, 9:
		// the first byte is all prefix
	default:
		v = uint64(first & (0xFF >> n))
	}
	for _, c := range rest {
		v = v<<8 | uint64(c)
	}
	return v
}

func readVarint17Rest(r io.ByteReader, first byte) (uint64, error) {
	n := varint17Len(first)
	if n == 0 {
		return 0, protocolViolation("invalid varint prefix 0x%x", first)
	}
	var buf [8]byte
	for i := 0; i < n-1; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("wire: varint truncated: %w", err)
		}
		buf[i] = c
	}
	return decode17(first, buf[:n-1]), nil
}
