package forward

// Forwarding into an independent MoQ implementation: Eyevinn moqtransport
// v0.9.0 acts as the receiving relay (the server side of the session):
// it accepts moqgate's PUBLISH_NAMESPACE and SUBSCRIBEs to the video
// track, and must get exactly the objects (group and object IDs, bytes)
// the local publisher wrote.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/moqtransport"
	"github.com/Eyevinn/moqtransport/quicmoq"
	"github.com/quic-go/quic-go"

	"github.com/moqgate/moqgate/internal/certs"
	"github.com/moqgate/moqgate/moq"
)

// eyRelay is the Eyevinn side: it accepts announcements.
type eyRelay struct{ announces chan []string }

func (h *eyRelay) Handle(w moqtransport.ResponseWriter, m *moqtransport.Message) {
	switch m.Method {
	case moqtransport.MessageAnnounce:
		select {
		case h.announces <- slices.Clone(m.Namespace):
		default:
		}
		_ = w.Accept()
	default:
		if w != nil {
			_ = w.Reject(0, "not supported by the test relay")
		}
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("MOQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func TestForwardToEyevinn(t *testing.T) {
	for _, tc := range []struct {
		alpn  string
		draft int
	}{{moq.ALPN14, 14}, {moq.ALPN16, 16}} {
		t.Run(fmt.Sprintf("draft%d", tc.draft), func(t *testing.T) { testForwardToEyevinn(t, tc.alpn, tc.draft) })
	}
}

func testForwardToEyevinn(t *testing.T, alpn string, draft int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cm, err := certs.New(certs.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := cm.TLSConfig()
	tlsConf.NextProtos = []string{alpn}
	ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, &quic.Config{EnableDatagrams: true, MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := &eyRelay{announces: make(chan []string, 4)}
	sessc := make(chan *moqtransport.Session, 1)
	go func() {
		qc, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		es := &moqtransport.Session{Handler: h, InitialMaxRequestID: 100}
		if err := es.Run(quicmoq.NewServer(qc)); err != nil {
			t.Errorf("eyevinn: setup: %v", err)
			return
		}
		sessc <- es
	}()

	// The local broadcast: groups of 3 objects, every 50 ms.
	relay := moq.NewRelay(moq.RelayConfig{Logger: testLogger()})
	prod, err := relay.Local("test").Publish(ctx, "live/ey")
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	video := prod.Track("video")
	var mu sync.Mutex
	written := map[[2]uint64]string{}
	go func() {
		for ctx.Err() == nil {
			g := video.NewGroup()
			if g == nil {
				return
			}
			for o := range 3 {
				p := fmt.Sprintf("group %d object %d", g.ID(), o)
				mu.Lock()
				written[[2]uint64{g.ID(), uint64(o)}] = p
				mu.Unlock()
				g.Write([]byte(p))
			}
			g.Close()
			time.Sleep(50 * time.Millisecond)
		}
	}()

	m, err := New(relay.Local("forward"), []Target{{
		URL: "moqt://" + ln.Addr().String() + "/relay", Draft: draft, Fingerprint: cm.Fingerprint(), Mode: ModeAnnounce,
		Prefixes: []string{"live"}, RenameFrom: "live", RenameTo: "cdn/live",
	}}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	go m.Run(ctx)

	var es *moqtransport.Session
	select {
	case es = <-sessc:
	case <-ctx.Done():
		t.Fatal("moqgate did not connect to the Eyevinn relay")
	}
	defer es.Close()
	select {
	case ns := <-h.announces:
		if !slices.Equal(ns, []string{"cdn", "live", "ey"}) {
			t.Fatalf("announced %q, want cdn/live/ey", ns)
		}
	case <-ctx.Done():
		t.Fatal("no PUBLISH_NAMESPACE reached the Eyevinn relay")
	}
	rt, err := es.Subscribe(ctx, []string{"cdn", "live", "ey"}, "video",
		moqtransport.WithFilterType(moqtransport.FilterTypeLatestObject))
	if err != nil {
		t.Fatalf("eyevinn SUBSCRIBE: %v", err)
	}
	defer rt.Close()
	var groups []uint64
	for n := 0; n < 15; n++ {
		o, err := rt.ReadObject(ctx)
		if err != nil {
			t.Fatalf("eyevinn read: %v", err)
		}
		mu.Lock()
		want, ok := written[[2]uint64{o.GroupID, o.ObjectID}]
		mu.Unlock()
		if !ok || want != string(o.Payload) {
			t.Fatalf("object %d/%d: %q, want %q", o.GroupID, o.ObjectID, o.Payload, want)
		}
		if len(groups) == 0 || groups[len(groups)-1] != o.GroupID {
			groups = append(groups, o.GroupID)
		}
	}
	t.Logf("Eyevinn accepted PUBLISH_NAMESPACE cdn/live/ey and read 15 objects of groups %v, IDs and bytes as written", groups)
	if st := m.Status(); !st[0].Connected || st[0].Broadcasts != 1 || st[0].Bytes == 0 {
		t.Fatalf("status %+v", st[0])
	}
}
