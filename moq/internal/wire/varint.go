package wire

import (
	"fmt"
	"io"
)

// MaxVarint is the largest value a QUIC variable-length integer (RFC 9000 §16) can carry.
const MaxVarint uint64 = 1<<62 - 1

// VarintLen returns the number of bytes the minimal encoding of v takes.
// It panics if v > MaxVarint: such a value cannot be put on the wire at all, so
// reaching here is a programming error, not an input error.
func VarintLen(v uint64) int {
	switch {
	case v <= 63:
		return 1
	case v <= 16383:
		return 2
	case v <= 1073741823:
		return 4
	case v <= MaxVarint:
		return 8
	}
	panic(fmt.Sprintf("wire: varint value %d exceeds 2^62-1", v))
}

// AppendVarint appends the minimal encoding of v (the draft says varints SHOULD
// be minimal). It panics if v > MaxVarint; see VarintLen.
func AppendVarint(b []byte, v uint64) []byte {
	switch {
	case v <= 63:
		return append(b, byte(v))
	case v <= 16383:
		return append(b, byte(v>>8)|0x40, byte(v))
	case v <= 1073741823:
		return append(b, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	case v <= MaxVarint:
		return append(b, byte(v>>56)|0xc0, byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	panic(fmt.Sprintf("wire: varint value %d exceeds 2^62-1", v))
}

// ParseVarint decodes a varint from the start of b and returns it with the
// number of bytes used. Non-minimal encodings are accepted (minimality is only
// a SHOULD). A short buffer yields an error wrapping io.ErrUnexpectedEOF.
func ParseVarint(b []byte) (v uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("wire: varint: %w", io.ErrUnexpectedEOF)
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0, fmt.Errorf("wire: varint needs %d bytes, have %d: %w", n, len(b), io.ErrUnexpectedEOF)
	}
	v = uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, n, nil
}

// ReadVarint reads one varint. It returns io.EOF (unwrapped) if the reader is
// exhausted before the first byte, so callers can tell a clean end of stream
// from a truncated one (wrapped io.ErrUnexpectedEOF).
func ReadVarint(r io.ByteReader) (uint64, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	return readVarintRest(r, first)
}

// readVarintRest finishes a varint whose first byte has already been read.
func readVarintRest(r io.ByteReader, first byte) (uint64, error) {
	n := 1 << (first >> 6)
	v := uint64(first & 0x3f)
	for i := 1; i < n; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("wire: varint truncated: %w", err)
		}
		v = v<<8 | uint64(c)
	}
	return v, nil
}
