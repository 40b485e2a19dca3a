package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqgate/moqgate/ingest"
	"github.com/moqgate/moqgate/ingest/srt"
	"github.com/moqgate/moqgate/internal/auth"
	"github.com/moqgate/moqgate/media"
	"github.com/moqgate/moqgate/moq"
)

// setupSRT binds the SRT port (unless srt.addr is empty).
func (s *Server) setupSRT() error {
	c := s.cfg.SRT
	if c.Addr == "" {
		return nil
	}
	srv, err := srt.Listen(c.Addr, srt.Config{
		Passphrase: c.Passphrase, Latency: c.Latency, MaxBW: int64(c.MaxBW),
		InitTimeout: s.cfg.Limits.HandshakeTimeout,
		Logger:      s.log.With("component", "srt"),
		Admit: func(remote net.Addr) (func(), error) {
			release, err := s.sessions.Admit(remote.String())
			if err != nil {
				s.metrics.limitRefusals.WithLabelValues("sessions").Inc()
				return nil, fmt.Errorf("%w: %v", srt.ErrOverload, err)
			}
			return release, nil
		},
		Authorize: s.authorizeSRT,
		OnPublish: s.onSRTPublish,
		Source:    s.relay.Local("srt"),
	})
	if err != nil {
		return err
	}
	s.srtSrv, s.SRTAddr = srv, srv.Addr()
	return nil
}

// runSRT serves SRT until ctx is done.
func (s *Server) runSRT(ctx context.Context, errc chan<- error) {
	if s.srtSrv == nil {
		return
	}
	if err := s.srtSrv.Serve(ctx); err != nil && ctx.Err() == nil {
		errc <- fmt.Errorf("srt listener: %w", err)
	}
}

// srtAddr is the SRT address for the startup log.
func (s *Server) srtAddr() string {
	if s.srtSrv == nil {
		return "off"
	}
	return "srt://" + s.srtSrv.Addr().String()
}

// authorizeSRT checks the token an SRT caller put in its stream ID, before
// the handshake completes.
func (s *Server) authorizeSRT(ctx context.Context, id srt.StreamID, remote net.Addr) (time.Time, error) {
	if !s.authorizer().Enabled() {
		return time.Time{}, nil
	}
	if id.Mode == srt.ModePublish {
		g, err := s.authorizePublish(ctx, "srt", id.Token, id.Path, remote.String())
		if err != nil {
			if errors.Is(err, errNotAllowed) {
				return time.Time{}, fmt.Errorf("%w: %v", srt.ErrForbidden, err)
			}
			return time.Time{}, fmt.Errorf("%w: %v", srt.ErrUnauthorized, err)
		}
		return g.Expires, nil
	}
	g, err := s.authorizer().Check(id.Token, auth.Subscribe, id.Path)
	if err != nil {
		s.metrics.authRefusals.WithLabelValues("srt").Inc()
		s.log.Info("SRT reader refused", "path", id.Path, "remote", remote.String(), "reason", err)
		if errors.Is(err, auth.ErrForbidden) {
			return time.Time{}, fmt.Errorf("%w: not allowed to play this broadcast", srt.ErrForbidden)
		}
		return time.Time{}, srt.ErrUnauthorized
	}
	return g.Expires, nil
}

// onSRTPublish starts an SRT publisher's broadcast in the relay (a
// reconnecting publisher continues its timeline).
func (s *Server) onSRTPublish(ctx context.Context, id srt.StreamID, remote net.Addr) (media.BroadcastWriter, error) {
	log := s.log.With("component", "srt", "path", id.Path, "remote", remote.String())
	ib, err := ingest.StartWith(ctx, ingest.LocalDialer(s.relay, "srt", log), id.Path, log, ingest.Options{Continuity: s.continuity})
	if err != nil {
		var re *moq.RequestError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%w: %s", srt.ErrConflict, re.Reason)
		}
		return nil, err
	}
	return s.withOpus(id.Path, ib), nil // AAC to Opus for WHEP viewers, on demand
}

// srtCollector exports the SRT listener's counters at scrape time.
type srtCollector struct {
	s                                           *Server
	sessions, bytesIn, bytesOut, retrans, drops *prometheus.Desc
	lost, rejected                              *prometheus.Desc
}

func newSRTCollector(s *Server) *srtCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("moqgate_srt_"+name, help, labels, nil)
	}
	return &srtCollector{s: s,
		sessions: d("sessions", "Live SRT sessions, by mode (publish, read).", "mode"),
		bytesIn:  d("bytes_received_total", "Bytes received on SRT sessions (SRT packets, headers included)."),
		bytesOut: d("bytes_sent_total", "Bytes sent on SRT sessions (SRT packets, headers included)."),
		retrans:  d("packets_retransmitted_total", "SRT data packets retransmitted (received again from publishers, sent again to readers)."),
		drops:    d("packets_dropped_total", "SRT data packets dropped as too late to deliver."),
		lost:     d("packets_lost_total", "SRT data packets detected missing at the receiver (before retransmission)."),
		rejected: d("rejected_total", "SRT callers rejected (stream ID, passphrase, token, limits, conflicts)."),
	}
}

func (c *srtCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sessions, c.bytesIn, c.bytesOut, c.retrans, c.drops, c.lost, c.rejected} {
		ch <- d
	}
}

func (c *srtCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.srtSrv == nil {
		return
	}
	st := c.s.srtSrv.Stats()
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(st.Publishers), "publish")
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(st.Readers), "read")
	for _, m := range []struct {
		d *prometheus.Desc
		v uint64
	}{{c.bytesIn, st.BytesIn}, {c.bytesOut, st.BytesOut}, {c.retrans, st.Retransmitted},
		{c.drops, st.Dropped}, {c.lost, st.Lost}, {c.rejected, st.Refused}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
}
