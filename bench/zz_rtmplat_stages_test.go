package bench

// TEMPORARY: per-stage breakdown of the RTMP -> MoQ latency (deleted after
// the investigation).

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/moqgate/moqgate/ingest"
	"github.com/moqgate/moqgate/ingest/rtmp"
	"github.com/moqgate/moqgate/internal/certs"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

type stageRec struct {
	mu   sync.Mutex
	lat  map[string]map[int64]time.Duration // tap -> sent -> latency
	keys map[int64]bool
}

func (s *stageRec) tap(ctx context.Context, name string, t *moq.Track, wg *sync.WaitGroup) {
	wg.Go(func() {
		rd := t.NewReader(false)
		for {
			gr, err := rd.NextGroup(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					o, err := gr.Next(ctx)
					if err != nil {
						return
					}
					now := time.Now().UnixNano()
					mdat, err := rtmpLatMdat(o.Payload)
					if err != nil {
						continue
					}
					sent, key, ok := rtmpLatVideoStamp(mdat)
					if !ok {
						continue
					}
					s.mu.Lock()
					if s.lat[name] == nil {
						s.lat[name] = map[int64]time.Duration{}
					}
					s.lat[name][sent] = time.Duration(now - sent)
					s.keys[sent] = key
					s.mu.Unlock()
				}
			})
		}
	})
}

type stageWriter struct {
	*ingest.Broadcast
	rec *stageRec
}

func (w *stageWriter) WriteFrame(track string, f media.Frame) error {
	now := time.Now().UnixNano()
	if track == "video" {
		if sent, key, ok := rtmpLatVideoStamp(f.Data); ok {
			w.rec.mu.Lock()
			if w.rec.lat["0-demux"] == nil {
				w.rec.lat["0-demux"] = map[int64]time.Duration{}
			}
			w.rec.lat["0-demux"][sent] = time.Duration(now - sent)
			w.rec.keys[sent] = key
			w.rec.mu.Unlock()
		}
	}
	return w.Broadcast.WriteFrame(track, f)
}

func TestRTMPLatStages(t *testing.T) {
	if os.Getenv("RTMPLAT_STAGES") == "" {
		t.Skip()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	relay := moq.NewRelay(moq.RelayConfig{Logger: log})
	cm, err := certs.New(certs.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms := &moq.Server{Handler: relay, TLSConfig: cm.TLSConfig(), Logger: log}
	go ms.Serve(ctx, pc)
	bcast := make(chan *ingest.Broadcast, 1)
	rec := &stageRec{lat: map[string]map[int64]time.Duration{}, keys: map[int64]bool{}}
	rs, err := rtmp.NewServer(rtmp.Config{Logger: log, OnPublish: func(ctx context.Context, req rtmp.PublishRequest) (media.BroadcastWriter, error) {
		b, err := ingest.StartWith(ctx, ingest.LocalDialer(relay, "rtmp", log), req.Path, log, ingest.Options{})
		if err == nil {
			bcast <- b
		}
		return &stageWriter{b, rec}, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go rs.Serve(ctx, ln)

	u, _ := url.Parse("rtmp://" + ln.Addr().String() + "/" + rtmpLatPath)
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	vt := &gortmplib.Track{Codec: &codecs.H264{SPS: rtmpLatSPS, PPS: rtmpLatPPS}}
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{vt}}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	win := &rtmpLatWindow{}
	win.start.Store(0)
	win.end.Store(-1)
	pub := &rtmpLatPublisher{cfg: rtmpLatConfig{VideoBitrate: 2e6, FPS: 30, KeyFactor: 6}, w: w, vt: vt, win: win}
	go pub.run(ctx)
	b := <-bcast

	var wg sync.WaitGroup
	rec.tap(ctx, "1-packager", b.Publisher().Track("video"), &wg)

	sess, err := moq.Dial(ctx, "moqt://"+pc.LocalAddr().String()+"/", moq.DialOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := sess.Subscribe(ctx, moq.ParsePath(rtmpLatPath), "video", moq.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec.tap(ctx, "3-quic", sub.Track, &wg)
	lsess, err := relay.ConnectLocal(ctx, moq.Config{}, moq.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rt, _, err := relay.HandleSubscribe(ctx, lsess, &moq.SubscribeRequest{Namespace: moq.ParsePath(rtmpLatPath), TrackName: "video"})
	if err != nil {
		t.Fatal(err)
	}
	rec.tap(ctx, "2-relay", rt, &wg)
	time.Sleep(2 * time.Second)
	from := time.Now().UnixNano()
	time.Sleep(10 * time.Second)
	to := time.Now().UnixNano()
	time.Sleep(500 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, name := range []string{"0-demux", "1-packager", "2-relay", "3-quic"} {
		for _, key := range []bool{false, true} {
			var l []time.Duration
			for sent, d := range rec.lat[name] {
				if sent >= from && sent < to && rec.keys[sent] == key {
					l = append(l, d)
				}
			}
			s := rtmpLatSummary(l)
			fmt.Printf("%-11s key=%-5v n=%3d %s\n", name, key, len(l), s)
		}
	}
	// Per-frame detail of the slowest QUIC deliveries.
	type row struct {
		sent int64
		d    time.Duration
	}
	var rows []row
	for sent, d := range rec.lat["3-quic"] {
		if sent >= from && sent < to {
			rows = append(rows, row{sent, d})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].d > rows[j].d })
	for _, r := range rows[:min(12, len(rows))] {
		fmt.Printf("slow: frame %4d key=%v demux %.2f packager %.2f relay %.2f quic %.2f ms\n", (r.sent-from)/33_333_333, rec.keys[r.sent], rtmpLatMS(rec.lat["0-demux"][r.sent]),
			rtmpLatMS(rec.lat["1-packager"][r.sent]), rtmpLatMS(rec.lat["2-relay"][r.sent]), rtmpLatMS(r.d))
	}
}
