package moq

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("MOQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// publishLocal connects a publisher to the relay in-process and announces ns.
func publishLocal(t testing.TB, ctx context.Context, r *Relay, path string) (*Publisher, *Session) {
	t.Helper()
	pub := NewPublisher(ParsePath(path), TrackLimits{})
	s, err := r.ConnectLocal(ctx, Config{Handler: pub, Logger: testLogger(t)}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PublishNamespace(ctx, pub.Namespace()); err != nil {
		t.Fatal(err)
	}
	return pub, s
}

func payload(g, o int) []byte {
	return []byte(fmt.Sprintf("group %d object %d %s", g, o, bytes.Repeat([]byte{'x'}, 100)))
}

// writeGroup appends one group of n objects.
func writeGroup(t testing.TB, tr *Track, g, n int) {
	t.Helper()
	grp := tr.NewGroup()
	if grp == nil {
		t.Fatal("NewGroup refused")
	}
	for o := 0; o < n; o++ {
		if err := grp.Append(Object{ID: uint64(o), Payload: payload(g, o)}); err != nil {
			t.Fatal(err)
		}
	}
	grp.Close()
}

// readGroups reads n complete groups from a track and checks contents.
func readGroups(ctx context.Context, tr *Track, n, perGroup int) ([]uint64, error) {
	rd := tr.NewReader(false)
	var ids []uint64
	for len(ids) < n {
		gr, err := rd.NextGroup(ctx)
		if err != nil {
			return ids, err
		}
		for o := 0; ; o++ {
			obj, err := gr.Next(ctx)
			if err == io.EOF {
				if o != perGroup {
					return ids, fmt.Errorf("group %d: %d objects, want %d", gr.ID(), o, perGroup)
				}
				break
			}
			if err != nil {
				return ids, fmt.Errorf("group %d: %w", gr.ID(), err)
			}
			if obj.ID != uint64(o) {
				return ids, fmt.Errorf("group %d: object %d, want %d", gr.ID(), obj.ID, o)
			}
			if !bytes.HasPrefix(obj.Payload, []byte(fmt.Sprintf("group %d object %d ", gr.ID(), o))) {
				return ids, fmt.Errorf("group %d object %d: wrong payload %q", gr.ID(), o, obj.Payload[:20])
			}
		}
		ids = append(ids, gr.ID())
	}
	return ids, nil
}

func TestRelayLocalPublishSubscribe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := NewRelay(RelayConfig{Logger: testLogger(t)})
	pub, _ := publishLocal(t, ctx, r, "live/test")
	video := pub.Track("video")
	writeGroup(t, video, 0, 5)
	writeGroup(t, video, 1, 5)

	sub, err := r.ConnectLocal(ctx, Config{Logger: testLogger(t)}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sub.Subscribe(ctx, Namespace{"live", "test"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Largest is the last object before the group delivery starts with.
	if !s.ContentExists || s.Largest != (Location{0, 4}) {
		t.Fatalf("SUBSCRIBE_OK content=%v largest=%v", s.ContentExists, s.Largest)
	}
	done := make(chan error, 1)
	var got []uint64
	go func() {
		var err error
		got, err = readGroups(ctx, s.Track, 3, 5)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	writeGroup(t, video, 2, 5)
	writeGroup(t, video, 3, 5)
	if err := <-done; err != nil {
		for _, g := range s.Track.cachedGroups() {
			os, d := g.Objects()
			t.Logf("cached group %d: %d objects done=%v", g.ID, len(os), d)
		}
		for _, g := range r.Broadcasts()[0].Tracks[0].track.cachedGroups() {
			os, d := g.Objects()
			t.Logf("relay group %d: %d objects done=%v", g.ID, len(os), d)
		}
		t.Fatal(err, got)
	}
	// Largest Object starts at the first object of the newest group.
	slices.Sort(got)
	if got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("groups %v, want [1 2 3]", got)
	}
	// The same path as one tuple element reaches the same broadcast.
	s2, err := sub.Subscribe(ctx, Namespace{"live/test"}, "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Largest.Group != 2 {
		t.Fatalf("largest %v", s2.Largest)
	}
	_, err = sub.Subscribe(ctx, Namespace{"live", "nope"}, "video", SubscribeOptions{})
	var re *RequestError
	if !errors.As(err, &re) || re.Code != wire.SubscribeErrorTrackDoesNotExist {
		t.Fatalf("unknown broadcast: %v", err)
	}
}

// ---- over the network ----

func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

type testServer struct {
	relay *Relay
	srv   *Server
	addr  string
}

func startServer(t testing.TB, rc RelayConfig) *testServer {
	t.Helper()
	return startServerWith(t, rc, Config{})
}

// startServerWith is startServer with a template for accepted sessions.
func startServerWith(t testing.TB, rc RelayConfig, sess Config) *testServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Logger == nil {
		rc.Logger = testLogger(t)
	}
	r := NewRelay(rc)
	srv := &Server{Handler: r, Session: sess, TLSConfig: selfSigned(t), Logger: testLogger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx, pc)
	}()
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), time.Second)
		srv.Shutdown(sctx)
		c()
		cancel()
		<-done
		pc.Close()
	})
	return &testServer{relay: r, srv: srv, addr: pc.LocalAddr().String()}
}

func dialTest(t testing.TB, ctx context.Context, url string, cfg Config) *Session {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := Dial(ctx, url, DialOptions{Insecure: true, Session: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRelayFanOutQUICAndWebTransport(t *testing.T) {
	for _, scheme := range []string{"moqt", "https"} {
		t.Run(scheme, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ts := startServer(t, RelayConfig{})
			url := scheme + "://" + ts.addr + "/"
			pub := NewPublisher(Namespace{"live", "fan"}, TrackLimits{})
			ps := dialTest(t, ctx, url, Config{Handler: pub})
			if err := ps.PublishNamespace(ctx, pub.Namespace()); err != nil {
				t.Fatal(err)
			}
			video := pub.Track("video")
			writeGroup(t, video, 0, 10)

			const n = 50
			const groups = 5
			var wg sync.WaitGroup
			errs := make(chan error, n)
			ready := make(chan struct{}, n)
			dialing := make(chan struct{}, 16) // handshakes at once, so a loaded CI machine keeps up
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					dialing <- struct{}{}
					s, err := Dial(ctx, url, DialOptions{Insecure: true, Session: Config{Logger: testLogger(t)}})
					<-dialing
					if err != nil {
						errs <- err
						return
					}
					defer s.Close()
					sub, err := s.Subscribe(ctx, Namespace{"live", "fan"}, "video", SubscribeOptions{})
					if err != nil {
						errs <- err
						return
					}
					ready <- struct{}{}
					got, err := readGroups(ctx, sub.Track, groups, 10)
					if err != nil {
						errs <- err
						return
					}
					// Each group is its own stream, so groups may complete
					// out of order; objects inside a group are in order.
					slices.Sort(got)
					for k := range got {
						if got[k] != uint64(k) {
							errs <- fmt.Errorf("groups %v", got)
							return
						}
					}
				}()
			}
			for i := 0; i < n; i++ {
				select {
				case <-ready:
				case err := <-errs:
					t.Fatal(err)
				}
			}
			for g := 1; g < groups; g++ {
				writeGroup(t, video, g, 10)
				time.Sleep(20 * time.Millisecond)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// One upstream subscription served all 50: the publisher sent
			// each object once.
			if o, _, _, _, _ := ps.Stats(); o != groups*10 {
				t.Fatalf("publisher sent %d objects, want %d (one upstream subscription)", o, groups*10)
			}
		})
	}
}
