//go:build !linux

package rtc

// No UDP GSO: packets go one by one (still batched where sendmmsg exists).
const gsoSupported = false

func segmentOOB(int) []byte { return nil }
