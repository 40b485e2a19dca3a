package rtc

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestBatchConn: queued packets arrive intact and in order per peer,
// whether they go out as GSO sends or one by one.
func TestBatchConn(t *testing.T) {
	for _, tc := range []struct {
		gso bool
		ip  net.IP
	}{{true, net.IPv4(127, 0, 0, 1)}, {false, net.IPv4(127, 0, 0, 1)}, {true, net.IPv6loopback}} {
		gso := tc.gso
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: tc.ip})
		if err != nil {
			t.Logf("%s: %v", tc.ip, err)
			continue
		}
		b := newBatchConn(c)
		b.gso.Store(gso)
		var peers []*net.UDPConn
		for range 3 {
			p, err := net.ListenUDP("udp", &net.UDPAddr{IP: tc.ip})
			if err != nil {
				t.Fatal(err)
			}
			p.SetReadBuffer(1 << 20)
			peers = append(peers, p)
		}
		// Interleaved bursts, held to leave together: 10 packets to each
		// peer, 1200 bytes but the last of each burst shorter.
		b.holds.Add(1)
		for i := range 10 {
			for j, p := range peers {
				n := 1200
				if i == 9 {
					n = 300 + j
				}
				pkt := bytes.Repeat([]byte{byte(i)}, n)
				if _, err := b.WriteToAddrPort(pkt, p.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if b.sent.Load() != 0 {
			t.Error("packets sent during a hold")
		}
		b.holds.Add(-1)
		b.Flush()
		for j, p := range peers {
			buf := make([]byte, 2000)
			for i := range 10 {
				p.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := p.Read(buf)
				if err != nil {
					t.Fatalf("gso=%v peer %d packet %d: %v", gso, j, i, err)
				}
				want := 1200
				if i == 9 {
					want = 300 + j
				}
				if n != want || buf[0] != byte(i) || buf[n-1] != byte(i) {
					t.Fatalf("gso=%v peer %d packet %d: %d bytes starting %d, want %d bytes of %d", gso, j, i, n, buf[0], want, i)
				}
			}
			p.Close()
		}
		if gso && !b.gso.Load() {
			t.Log("no UDP GSO on this kernel: fell back to single packets")
		}
		sent := b.sent.Load()
		b.Close()
		t.Logf("%s gso=%v: %d messages for 30 packets", tc.ip, gso, sent)
		if _, err := b.WriteToAddrPort([]byte{1}, netip.MustParseAddrPort("127.0.0.1:9")); err == nil {
			t.Error("write after Close")
		}
	}
}
