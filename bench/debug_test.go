package bench

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/moqgate/moqgate/moq"
)

func TestDebugLatency(t *testing.T) {
	if os.Getenv("DEBUGLAT") == "" {
		t.Skip()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exe, _ := os.Executable()
	relay, err := StartRelayProcess(ctx, exe, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	url := "moqt://" + relay.Addr + "/"
	cfg := FanoutConfig{URL: url, Subscribers: 1}
	cfg.defaults()
	ns := moq.ParsePath(cfg.Broadcast)
	pub := moq.NewPublisher(ns, moq.TrackLimits{})
	track := pub.Track(cfg.Track)
	ps, err := moq.Dial(ctx, url, moq.DialOptions{Insecure: true, Session: moq.Config{Handler: pub}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.PublishNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	w := newWindow()
	var p publisher
	go p.publish(ctx, &cfg, w, track)
	s, err := moq.Dial(ctx, url, moq.DialOptions{Insecure: true, Session: moq.Config{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscribe(ctx, ns, cfg.Track, moq.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rd := sub.Track.NewReader(false)
	end := time.Now().Add(4 * time.Second)
	for time.Now().Before(end) {
		gr, err := rd.NextGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				o, err := gr.Next(ctx)
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				sent := int64(binary.BigEndian.Uint64(o.Payload))
				t.Logf("g=%d o=%d size=%d lat=%.2fms", gr.ID(), o.ID, len(o.Payload), float64(now-sent)/1e6)
			}
		}()
	}
}
