package limit

import (
	"errors"
	"testing"
)

func TestGate(t *testing.T) {
	g := New("things", 3, 2)
	r1, err := g.Admit("10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit("10.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit("10.0.0.1:3"); !errors.Is(err, ErrPerIP) {
		t.Fatalf("third from one IP: %v, want ErrPerIP", err)
	}
	if _, err := g.Admit("10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit("10.0.0.3:1"); !errors.Is(err, ErrTotal) {
		t.Fatalf("fourth: %v, want ErrTotal", err)
	}
	r1()
	r1() // a second release does nothing
	if g.Count() != 2 {
		t.Fatalf("count %d after one release, want 2", g.Count())
	}
	if _, err := g.Admit("10.0.0.3:1"); err != nil {
		t.Fatal(err)
	}
	g.SetLimits(0, 0)
	for i := 0; i < 10; i++ {
		if _, err := g.Admit("10.0.0.1:9"); err != nil {
			t.Fatalf("unlimited: %v", err)
		}
	}
}
