package srt

import (
	"sync"
	"sync/atomic"
	"time"

	gosrt "github.com/datarhei/gosrt"
)

// Stats counts what every SRT session moved, for metrics and the API.
type Stats struct {
	publishers, readers                        atomic.Int64
	refused                                    atomic.Uint64
	bytesIn, bytesOut, retrans, drops, lossPkt atomic.Uint64
}

// StatsSnapshot is a copy of the counters.
type StatsSnapshot struct {
	Publishers, Readers int64  // live sessions
	Refused             uint64 // rejected callers
	// Bytes received and sent (SRT payload and headers), packets
	// retransmitted (received as retransmissions by publishers' sessions,
	// sent again to readers), packets dropped (too late to deliver) and
	// packets detected lost (before retransmission).
	BytesIn, BytesOut, Retransmitted, Dropped, Lost uint64
}

func (s *Stats) snapshot() StatsSnapshot {
	return StatsSnapshot{Publishers: s.publishers.Load(), Readers: s.readers.Load(), Refused: s.refused.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), Retransmitted: s.retrans.Load(),
		Dropped: s.drops.Load(), Lost: s.lossPkt.Load()}
}

// statsInterval is how often a session's counters are added to Stats.
const statsInterval = time.Second

// follow adds conn's counters to s every statsInterval until stop, which
// adds them a last time.
func (s *Stats) follow(conn gosrt.Conn) (stop func()) {
	var last gosrt.StatisticsAccumulated
	add := func() {
		var st gosrt.Statistics
		conn.Stats(&st)
		a := st.Accumulated
		s.bytesIn.Add(a.ByteRecv - last.ByteRecv)
		s.bytesOut.Add(a.ByteSent - last.ByteSent)
		s.retrans.Add(a.PktRecvRetrans + a.PktRetrans - last.PktRecvRetrans - last.PktRetrans)
		s.drops.Add(a.PktRecvDrop + a.PktSendDrop - last.PktRecvDrop - last.PktSendDrop)
		s.lossPkt.Add(a.PktRecvLoss - last.PktRecvLoss)
		last = a
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(statsInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				add()
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			wg.Wait()
			add()
		})
	}
}
