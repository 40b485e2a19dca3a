package moq

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// Each object is written from one image, header and payload, shared by
// the subscribers whose header is the same (Group.wire). Subscribers of
// both drafts, one joining in the middle of the group, with and without
// extensions, at sizes around a packet and beyond: each must get its own
// header and every payload byte for byte, whoever built the image.
func TestWireImagesSharedAndPrivate(t *testing.T) {
	sizes := []int{1, 100, 1100, 1199, 1200, 1201, 1452, 3000, 8 << 10, 50 << 10, 300 << 10}
	for _, ext := range []bool{false, true} {
		t.Run(fmt.Sprintf("ext=%v", ext), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ts := startServer(t, RelayConfig{})
			url := "moqt://" + ts.addr + "/"
			ns := Namespace{"live", "images"}
			pub := NewPublisher(ns, TrackLimits{})
			ps := dialTest(t, ctx, url, Config{Handler: pub})
			if err := ps.PublishNamespace(ctx, ns); err != nil {
				t.Fatal(err)
			}
			track := pub.Track("video")
			type viewer struct {
				name string
				sub  *Subscription
				from int
			}
			var viewers []viewer
			for _, v := range []struct {
				name    string
				version uint64
				from    int
			}{{"d14-a", wire.Version14, 0}, {"d16", wire.Version16, 0}, {"d14-b", wire.Version14, 0},
				{"d16-late", wire.Version16, 3}, {"d14-late", wire.Version14, 3}} {
				s, err := Dial(ctx, url, DialOptions{Insecure: true, Version: v.version, Session: Config{Logger: testLogger(t)}})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				opts := SubscribeOptions{}
				if v.from > 0 {
					opts.Filter, opts.Start = wire.FilterAbsoluteStart, Location{Group: 0, Object: uint64(v.from)}
				}
				sub, err := s.Subscribe(ctx, ns, "video", opts)
				if err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				viewers = append(viewers, viewer{v.name, sub, v.from})
			}
			payload := func(i, n int) []byte {
				b := make([]byte, n)
				for j := range b {
					b[j] = byte(i*31 + j*7)
				}
				return b
			}
			var exts []byte
			if ext {
				exts = []byte{0x02, 0x05} // one even (varint) extension: type 2, value 5
			}
			g := track.NewGroup()
			if g.ID != 0 {
				t.Fatalf("first group %d", g.ID)
			}
			for i, n := range sizes {
				if err := g.Append(Object{ID: uint64(i), Payload: payload(i, n), Extensions: exts}); err != nil {
					t.Fatal(err)
				}
			}
			g.Close()
			for _, v := range viewers {
				gr, err := v.sub.Track.NewReader(false).NextGroup(ctx)
				if err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				for i := v.from; i < len(sizes); i++ {
					o, err := gr.Next(ctx)
					if err != nil {
						t.Fatalf("%s: object %d (%d bytes): %v", v.name, i, sizes[i], err)
					}
					if o.ID != uint64(i) || !bytes.Equal(o.Payload, payload(i, sizes[i])) {
						t.Fatalf("%s: got object %d of %d bytes, want object %d of %d bytes as sent", v.name, o.ID, len(o.Payload), i, sizes[i])
					}
					if !bytes.Equal(o.Extensions, exts) {
						t.Fatalf("%s: object %d: extensions %x, want %x", v.name, i, o.Extensions, exts)
					}
				}
			}
		})
	}
}
