package whip

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"
)

type emitted struct {
	seq  uint16
	lost int
}

func run(t *testing.T, r *reorder, seqs []uint16, at func(i int) time.Time) []emitted {
	t.Helper()
	var out []emitted
	for i, s := range seqs {
		r.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: s}}, at(i), func(p *rtp.Packet, lost int) {
			out = append(out, emitted{p.SequenceNumber, lost})
		})
	}
	return out
}

func TestReorderInOrderAndSwapped(t *testing.T) {
	r := &reorder{maxDelay: time.Second}
	t0 := time.Now()
	got := run(t, r, []uint16{65534, 65535, 1, 0, 2, 2, 1}, func(int) time.Time { return t0 })
	want := []emitted{{65534, 0}, {65535, 0}, {0, 0}, {1, 0}, {2, 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestReorderSkipsAGapAfterMaxDelay(t *testing.T) {
	r := &reorder{maxDelay: 100 * time.Millisecond}
	t0 := time.Now()
	// 12 never arrives; 13 waits until 14 comes 100 ms later.
	got := run(t, r, []uint16{10, 11, 13, 14}, func(i int) time.Time { return t0.Add(time.Duration(i) * 100 * time.Millisecond) })
	want := []emitted{{10, 0}, {11, 0}, {13, 1}, {14, 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	// A late 12 is dropped.
	got = run(t, r, []uint16{12, 15}, func(int) time.Time { return t0.Add(time.Second) })
	if fmt.Sprint(got) != fmt.Sprint([]emitted{{15, 0}}) {
		t.Fatalf("after late packet: %v", got)
	}
}

func TestReorderJumps(t *testing.T) {
	r := &reorder{maxDelay: time.Second}
	t0 := time.Now()
	got := run(t, r, []uint16{100, 102, 5000, 5001}, func(int) time.Time { return t0 })
	want := []emitted{{100, 0}, {102, 1}, {5000, 4897}, {5001, 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	// Restarted sequence numbers far behind.
	got = run(t, r, []uint16{7, 8}, func(int) time.Time { return t0 })
	if fmt.Sprint(got) != fmt.Sprint([]emitted{{7, 0}, {8, 0}}) {
		t.Fatalf("restart: %v", got)
	}
}
