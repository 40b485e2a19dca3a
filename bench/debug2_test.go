package bench

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqgate/moqgate/internal/certs"
	"github.com/moqgate/moqgate/moq"
)

func TestDebugMTU(t *testing.T) {
	if os.Getenv("DEBUGLAT") == "" {
		t.Skip()
	}
	for _, ips := range []int{0, 1, 2} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cm, _ := certs.New(certs.Options{})
		tc := cm.TLSConfig()
		tc.NextProtos = []string{"x"}
		pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
		qconf := &quic.Config{}
		if ips > 0 {
			qconf = moq.QUICConfig()
		}
		var ln interface {
			Accept(context.Context) (*quic.Conn, error)
			Close() error
		}
		var err error
		if ips == 2 {
			ln, err = quic.ListenEarly(pc, tc, qconf)
		} else {
			ln, err = quic.Listen(pc, tc, qconf)
		}
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			for i := 0; i < 20; i++ {
				time.Sleep(50 * time.Millisecond)
				s, _ := c.OpenUniStreamSync(ctx)
				s.Write(make([]byte, 100000))
				s.Close()
				time.Sleep(50 * time.Millisecond)
			}
		}()
		qc, err := quic.DialAddr(ctx, pc.LocalAddr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"x"}}, qconf)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			s, _ := qc.AcceptUniStream(ctx)
			io.Copy(io.Discard, s)
		}
		st := qc.ConnectionStats()
		t.Logf("cfg=%d: %d packets, %.0f B each, %.1f packets per 100 KB", ips, st.PacketsReceived, float64(st.BytesReceived)/float64(st.PacketsReceived), float64(st.PacketsReceived)/20)
		qc.CloseWithError(0, "")
		ln.Close()
		pc.Close()
		cancel()
	}
}
