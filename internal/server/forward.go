package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqgate/moqgate/egress/forward"
	"github.com/moqgate/moqgate/internal/config"
)

// newForwarder makes the manager of the forward targets (nil: none).
func (s *Server) newForwarder() (*forward.Manager, error) {
	if len(s.cfg.Forward) == 0 {
		return nil, nil
	}
	targets := make([]forward.Target, 0, len(s.cfg.Forward))
	for _, f := range s.cfg.Forward {
		targets = append(targets, forwardTarget(f))
	}
	return forward.New(s.relay.Local("forward"), targets, s.log.With("component", "forward"))
}

func forwardTarget(f config.Forward) forward.Target {
	return forward.Target{URL: f.URL, Draft: f.Draft, Token: f.Token, TokenInURL: f.TokenInURL,
		Fingerprint: f.Fingerprint, Insecure: f.Insecure, Prefixes: f.Prefixes,
		RenameFrom: f.Rename.From, RenameTo: f.Rename.To, Mode: f.Mode, Failover: f.Failover, Relayed: f.Relayed}
}

func (s *Server) apiForwardHandler(w http.ResponseWriter, _ *http.Request) {
	st := []forward.Status{}
	if s.forward != nil {
		st = s.forward.Status()
	}
	writeJSON(w, map[string]any{"targets": st})
}

// forwardMetrics describes the per-target gauges and counters.
type forwardMetrics struct {
	connected, broadcasts, bytes, reconnects *prometheus.Desc
}

func newForwardMetrics() forwardMetrics {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("moqgate_forward_"+name, help, []string{"target"}, nil)
	}
	return forwardMetrics{
		connected:  d("connected", "1 while the session to the forward target is up."),
		broadcasts: d("broadcasts", "Broadcasts being forwarded to the target."),
		bytes:      d("bytes_sent_total", "Object payload bytes sent to the target."),
		reconnects: d("reconnects_total", "Reconnection attempts to the target."),
	}
}

func (fm forwardMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{fm.connected, fm.broadcasts, fm.bytes, fm.reconnects} {
		ch <- d
	}
}

func (fm forwardMetrics) collect(m *forward.Manager, ch chan<- prometheus.Metric) {
	if m == nil {
		return
	}
	for _, st := range m.Status() {
		up := 0.0
		if st.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(fm.connected, prometheus.GaugeValue, up, st.URL)
		ch <- prometheus.MustNewConstMetric(fm.broadcasts, prometheus.GaugeValue, float64(st.Broadcasts), st.URL)
		ch <- prometheus.MustNewConstMetric(fm.bytes, prometheus.CounterValue, float64(st.Bytes), st.URL)
		ch <- prometheus.MustNewConstMetric(fm.reconnects, prometheus.CounterValue, float64(st.Reconnects), st.URL)
	}
}
