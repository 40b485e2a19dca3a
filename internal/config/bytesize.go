package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ByteSize is a size in bytes. In YAML it is an integer or a string with a
// unit: B, KB/MB/GB (powers of 1000) or KiB/MiB/GiB (powers of 1024),
// e.g. 1048576, "64KiB", "32MiB", "1.5MB".
type ByteSize int64

// Byte size units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// ParseByteSize parses an integer byte count or a number with a unit.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("invalid byte size %q", s)
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("invalid byte size %q: negative", s)
		}
		return ByteSize(n), nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		// Two-letter and binary suffixes first so "KiB" is not read as "B".
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
		{"B", 1},
	}
	for _, u := range units {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		num = strings.TrimSpace(num)
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || num == "" || strings.ContainsAny(num, "eEnNxXpP_") {
			return 0, fmt.Errorf("invalid byte size %q", s)
		}
		v := f * u.mult
		if v < 0 || v >= math.MaxInt64 || v != v {
			return 0, fmt.Errorf("invalid byte size %q: out of range", s)
		}
		return ByteSize(v), nil
	}
	return 0, fmt.Errorf("invalid byte size %q: want an integer or a number with B, KB, MB, GB, KiB, MiB or GiB", s)
}

// String formats b with the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	switch {
	case b != 0 && b%GiB == 0:
		return strconv.FormatInt(int64(b/GiB), 10) + "GiB"
	case b != 0 && b%MiB == 0:
		return strconv.FormatInt(int64(b/MiB), 10) + "MiB"
	case b != 0 && b%KiB == 0:
		return strconv.FormatInt(int64(b/KiB), 10) + "KiB"
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: byte size must be a number or a string like \"32MiB\"", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) {
	if b%KiB == 0 && b != 0 {
		return b.String(), nil
	}
	return int64(b), nil
}
