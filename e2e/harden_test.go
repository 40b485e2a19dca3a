package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/moqgate/moqgate/internal/rtctest"
)

// Hardening tests: one attacking client on loopback, a healthy viewer
// watching; the server's peak RSS (VmHWM) stays under a stated bound, the
// viewer keeps receiving, and the refused client gets the protocol's
// proper answer.

// peakRSS is the moqgate process's peak resident set size in bytes.
func (g *gate) peakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read the server's memory use: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// peakBound fails the test if the peak RSS grew by more than bound.
func peakBound(t *testing.T, base, peak, bound int64) {
	t.Helper()
	if peak > base+bound {
		t.Fatalf("peak RSS %d -> %d MiB, want at most %d MiB more", base>>20, peak>>20, bound>>20)
	}
}

// healthyBroadcast publishes live/ok over RTMP (H.264, 1 s GOP) for d and
// starts a MoQ viewer of it for view; the returned func checks that the
// viewer received at least 60 frames.
func healthyBroadcast(t *testing.T, ctx context.Context, g *gate, d, view time.Duration) func() {
	t.Helper()
	ffmpeg(t, ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", fmt.Sprint(d.Seconds()),
		"-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30", "-f", "flv", g.RTMP+"/live/ok")
	g.waitBroadcast(t, ctx, "live/ok")
	file, done := sub(t, ctx, g.MoQ, "live/ok", "--duration", view.String())
	return func() {
		t.Helper()
		waitExit(t, done, view+30*time.Second)
		if p := ffprobe(t, file); len(p.Streams) != 1 || atoi(p.Streams[0].NbFrames) < 60 {
			t.Fatalf("the healthy viewer during the attack: %+v", p.Streams)
		}
	}
}

// whepOffer is a real recvonly offer (pion) with n video m-lines, each
// with its own mid, all in one BUNDLE group.
func whepOffer(t *testing.T, n int) string {
	t.Helper()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	head, media, ok := strings.Cut(o.SDP, "m=video")
	if !ok {
		t.Fatalf("no video section in %q", o.SDP)
	}
	media = oneCodec(t, "m=video"+media)
	var b strings.Builder
	mids := make([]string, n)
	for i := range mids {
		mids[i] = strconv.Itoa(i)
		b.WriteString(strings.Replace(media, "a=mid:0", "a=mid:"+mids[i], 1))
	}
	head = strings.Replace(head, "a=group:BUNDLE 0", "a=group:BUNDLE "+strings.Join(mids, " "), 1)
	return head + b.String()
}

// oneCodec keeps only the first H.264 payload type of a media section
// (pion offers every codec it has: 4 KB a section).
func oneCodec(t *testing.T, media string) string {
	t.Helper()
	pt := ""
	for _, l := range strings.Split(media, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a=rtpmap:"); ok && strings.Contains(v, " H264/90000") {
			pt, _, _ = strings.Cut(v, " ")
			break
		}
	}
	if pt == "" {
		t.Fatalf("no H.264 in %q", media)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(media, "\r\n"), "\r\n") {
		switch {
		case strings.HasPrefix(l, "m=video"):
			f := strings.Fields(l)
			l = strings.Join(append(f[:3], pt), " ")
		case strings.HasPrefix(l, "a=rtpmap:"), strings.HasPrefix(l, "a=fmtp:"), strings.HasPrefix(l, "a=rtcp-fb:"):
			if !strings.HasPrefix(l[strings.Index(l, ":")+1:], pt+" ") {
				continue
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n") + "\r\n"
}

// result counts the answers an attack got, by status.
type result struct {
	mu       sync.Mutex
	byStatus map[int]int
	bad      []string // answers that are not the protocol's proper one
}

func (r *result) add(status int, ok bool, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byStatus == nil {
		r.byStatus = map[int]int{}
	}
	r.byStatus[status]++
	if !ok && len(r.bad) < 5 {
		r.bad = append(r.bad, what)
	}
}

// flood runs n requests, conc at a time.
func flood(n, conc int, do func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, conc)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			do(i)
		}()
	}
	wg.Wait()
}

// TestHardenWHEPOfferFlood: 150 offers of 1,000 m-lines are answered 400
// with the reason, and of 1,000 small offers that never connect no more
// than webrtc_pending_per_ip wait for ICE at once, the rest answered 503
// with Retry-After; the server stays small and a MoQ viewer keeps
// receiving.
func TestHardenWHEPOfferFlood(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	g := startGate(t, "", "--log-level", "info")
	check := healthyBroadcast(t, ctx, g, 60*time.Second, 15*time.Second)
	base := g.peakRSS(t)
	url := g.Web + "/whep/live/ok"

	big := whepOffer(t, 1000)
	var bigRes result
	flood(150, 8, func(int) {
		st, _, body, err := rtctest.Do(ctx, "POST", url, "", "application/sdp", big, nil)
		bigRes.add(st, err == nil && st == 400 && strings.Contains(body, "media sections"), fmt.Sprint(st, body, err))
	})
	small := whepOffer(t, 1)
	var smallRes result
	flood(1000, 16, func(int) {
		st, h, body, err := rtctest.Do(ctx, "POST", url, "", "application/sdp", small, nil)
		ok := err == nil && (st == 201 || st == 503 && h.Get("Retry-After") != "")
		smallRes.add(st, ok, fmt.Sprint(st, h, body, err))
	})
	peak := g.peakRSS(t)
	t.Logf("offers of 1,000 m-lines (%d KB each): %v; small offers: %v; peak RSS %d -> %d MiB",
		len(big)>>10, bigRes.byStatus, smallRes.byStatus, base>>20, peak>>20)
	if len(bigRes.bad) > 0 || len(smallRes.bad) > 0 {
		t.Fatalf("improper answers: %q %q", bigRes.bad, smallRes.bad)
	}
	// 16 per IP may await ICE at once; a few more if some were reaped
	// (10 s) while the flood ran.
	if n := smallRes.byStatus[201]; n < 1 || n > 48 {
		t.Fatalf("%d small offers answered 201, want 1..48 (16 awaiting ICE at a time)", n)
	}
	peakBound(t, base, peak, 128<<20)
	check()
}

// rtmpPartialAttack is one connection from 127.0.0.2 that completes the
// RTMP handshake, sets a 64 KiB chunk size and then sends, on 60 chunk
// streams, the first chunks of 8 MiB video messages (never completing
// one): up to 16 MiB of partial messages, without connect or publish. It
// returns when the server closes the connection, or after hold.
func rtmpPartialAttack(addr string, hold time.Duration) (closedBy bool, sent int, err error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return false, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hold))
	c1 := make([]byte, 1537)
	c1[0] = 3
	if _, err := c.Write(c1); err != nil {
		return isClosed(err), 0, nil
	}
	s := make([]byte, 3073)
	if _, err := io.ReadFull(c, s); err != nil {
		return isClosed(err), 0, nil
	}
	if _, err := c.Write(s[1:1537]); err != nil { // C2 echoes S1
		return isClosed(err), 0, nil
	}
	const chunk = 64 << 10
	// SetChunkSize on chunk stream 2.
	msg := []byte{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 1, 0, 0}
	body := make([]byte, chunk)
	for csid := byte(3); csid < 63 && sent < 16<<20; csid++ {
		// Type 0 header: 8 MiB video message (type 9) on stream 1, then
		// 4 chunks of its body.
		msg = append(msg, csid, 0, 0, 0, 0x80, 0, 0, 9, 1, 0, 0, 0)
		msg = append(msg, body...)
		for range 3 {
			msg = append(msg, 0xc0|csid)
			msg = append(msg, body...)
		}
		if _, err := c.Write(msg); err != nil {
			return isClosed(err), sent, nil
		}
		sent += len(msg)
		msg = msg[:0]
	}
	// Wait for the server to close the connection (or hold to pass).
	_, err = io.Copy(io.Discard, c)
	return err == nil || isClosed(err), sent, nil
}

// isClosed: the peer closed or reset the connection (not our timeout).
func isClosed(err error) bool {
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestHardenRTMPBeforePublish: 30 connections from one IP that handshake
// and send 16 MiB of partial messages each, never publishing: at most 16
// are admitted at a time (the others closed at once), none may buffer more
// than 256 KiB before its publish is accepted (closed when it tries), the
// server stays small and a viewer of a live RTMP broadcast (another IP)
// keeps receiving.
func TestHardenRTMPBeforePublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	g := startGate(t, "", "--log-level", "info")
	check := healthyBroadcast(t, ctx, g, 60*time.Second, 12*time.Second)
	base := g.peakRSS(t)
	addr := strings.TrimPrefix(g.RTMP, "rtmp://")
	const conns, hold = 30, 8 * time.Second
	var res result
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			closed, sent, err := rtmpPartialAttack(addr, hold)
			mu.Lock()
			total += sent
			mu.Unlock()
			st := 0
			if closed {
				st = 1
			}
			res.add(st, err == nil && closed, fmt.Sprint("closed=", closed, " sent=", sent, " err=", err))
		}()
	}
	wg.Wait()
	peak := g.peakRSS(t)
	t.Logf("%d connections sent %d MiB of partial messages; closed by the server: %d of %d; peak RSS %d -> %d MiB",
		conns, total>>20, res.byStatus[1], conns, base>>20, peak>>20)
	if len(res.bad) > 0 {
		t.Fatalf("connections not closed by the server within %s: %q", hold, res.bad)
	}
	peakBound(t, base, peak, 64<<20)
	check()
}

// TestHardenHLSUnknownBroadcasts: 5,000 requests for distinct broadcasts
// that do not exist, 200 at a time, are answered 404 from the relay's
// directory without taking a muxer slot (hls.max_muxers: 4), while a real
// LL-HLS viewer's requests for a live broadcast are answered 200.
func TestHardenHLSUnknownBroadcasts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// The flood's 200 workers reconnect faster than the server counts their
	// closed connections: the per-IP connection cap is not under test here.
	g := startGate(t, "hls:\n  max_muxers: 4\nlimits:\n  http_connections_per_ip: 2048\n", "--log-level", "info")
	check := healthyBroadcast(t, ctx, g, 60*time.Second, 10*time.Second)
	base := g.peakRSS(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	get := func(path string) (int, error) {
		resp, err := client.Get(g.Web + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	stop := make(chan struct{})
	viewer := make(chan []int, 1)
	var requested atomic.Int64
	go func() {
		var got []int
		defer func() { viewer <- got }()
		// The viewer's first request comes in the middle of the flood.
		for requested.Load() < 1000 {
			time.Sleep(5 * time.Millisecond)
		}
		for {
			st, err := get("/hls/live/ok/index.m3u8")
			if err != nil {
				st = -1
			}
			got = append(got, st)
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	var res result
	flood(5000, 200, func(i int) {
		requested.Add(1)
		st, err := get(fmt.Sprintf("/hls/live/missing%d/index.m3u8", i))
		res.add(st, err == nil && st == http.StatusNotFound, fmt.Sprint(st, err))
	})
	close(stop)
	got := <-viewer
	peak := g.peakRSS(t)
	t.Logf("unknown broadcasts: %v; live broadcast during the flood: %v; peak RSS %d -> %d MiB", res.byStatus, got, base>>20, peak>>20)
	if len(res.bad) > 0 {
		t.Fatalf("unknown broadcasts answered otherwise than 404: %q", res.bad)
	}
	for _, st := range got {
		if st != http.StatusOK {
			t.Fatalf("the live broadcast's playlist during the flood: %v, want all 200", got)
		}
	}
	peakBound(t, base, peak, 64<<20)
	check()
}

// TestHardenHTTPConnections: 200 connections from one IP to the web port
// with http_connections_per_ip 50: 50 are admitted and the other 150
// answered 503 with Retry-After and closed, while another IP's requests
// are served; a POST dribbling its body a byte at a time is cut off after
// http_read_timeout.
func TestHardenHTTPConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGate(t, "limits:\n  http_connections_per_ip: 50\n  http_read_timeout: 2s\n", "--log-level", "info")
	base := g.peakRSS(t)
	addr := strings.TrimPrefix(g.Web, "http://")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var conns []net.Conn
	for i := 0; i < 200; i++ {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Another IP is served meanwhile.
	resp, err := http.Get(g.Web + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /healthz during the flood: %v %v", resp, err)
	}
	resp.Body.Close()
	// Each connection is read at once (a deadline past makes Go's Read
	// fail without looking at what has arrived).
	var res result
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b, err := io.ReadAll(c)
			var ne net.Error
			switch {
			case strings.HasPrefix(string(b), "HTTP/1.1 503") && strings.Contains(string(b), "Retry-After: 5"):
				res.add(503, true, "")
			case errors.As(err, &ne) && ne.Timeout() && len(b) == 0:
				res.add(0, true, "") // admitted, waiting for a request
			default:
				res.add(-1, false, fmt.Sprintf("%q %v", b, err))
			}
		}()
	}
	wg.Wait()
	refused, silent := res.byStatus[503], res.byStatus[0]
	if len(res.bad) > 0 {
		t.Fatalf("connections: %q", res.bad)
	}
	if silent != 50 || refused != 150 {
		t.Fatalf("%d admitted, %d refused; want 50 and 150", silent, refused)
	}
	// A POST whose body dribbles in.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /whip/live/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 5000\r\n\r\n")
	start := time.Now()
	cut := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, c)
		cut <- time.Since(start)
	}()
	for i := 0; ; i++ {
		if _, err := c.Write([]byte("v")); err != nil {
			break
		}
		select {
		case el := <-cut:
			t.Logf("dribbling POST cut off after %s", el.Round(100*time.Millisecond))
			if el > 8*time.Second {
				t.Fatalf("dribbling POST cut off after %s, want about http_read_timeout (2s)", el)
			}
			peak := g.peakRSS(t)
			t.Logf("peak RSS %d -> %d MiB", base>>20, peak>>20)
			return
		case <-time.After(300 * time.Millisecond):
		}
		if i > 40 {
			t.Fatal("the dribbling POST is still open after 12 s")
		}
	}
}
