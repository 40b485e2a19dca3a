package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moqgate/moqgate/internal/transcode"
	"github.com/moqgate/moqgate/moq"
)

// metrics reads the relay's and the listeners' counters at scrape time, so
// the data path keeps plain atomic counters and no global registry exists.
type metrics struct {
	s             *Server
	authRefusals  *prometheus.CounterVec
	limitRefusals *prometheus.CounterVec
	subscribeLat  prometheus.Histogram

	sessions, objectsOut, bytesOut, objectsIn, bytesIn, dropped    *prometheus.Desc
	broadcasts, cacheBytes, trackSubs                              *prometheus.Desc
	webrtcPending, inFlight                                        *prometheus.Desc
	transcodes, transcodesStarted, transcodeCPU, transcodesRefused *prometheus.Desc
	forward                                                        forwardMetrics
	record                                                         recordMetrics
}

func newMetrics(s *Server) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("moqgate_"+name, help, labels, nil)
	}
	return &metrics{
		s: s,
		authRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "moqgate_auth_refusals_total",
			Help: "Requests refused for a missing, invalid or insufficient token."}, []string{"protocol"}),
		limitRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "moqgate_limit_refusals_total",
			Help: "Connections or requests refused by a configured limit."}, []string{"limit"}),
		subscribeLat: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "moqgate_subscribe_seconds",
			Help:    "Time from SUBSCRIBE to the subscription being ready at the relay (incl. upstream).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		sessions: d("sessions", "Live sessions by protocol (quic, webtransport; rtmp publishers, hls muxers; "+
			"whip and whep peer connections).", "protocol"),
		objectsOut:        d("objects_sent_total", "MoQ objects sent, by protocol.", "protocol"),
		bytesOut:          d("bytes_sent_total", "Object payload bytes sent, by protocol.", "protocol"),
		objectsIn:         d("objects_received_total", "MoQ objects received, by protocol.", "protocol"),
		bytesIn:           d("bytes_received_total", "Object payload bytes received, by protocol.", "protocol"),
		dropped:           d("groups_dropped_total", "Groups dropped for subscribers that could not keep up, by protocol.", "protocol"),
		broadcasts:        d("broadcasts", "Broadcasts known to the relay."),
		cacheBytes:        d("cache_bytes", "Object payload bytes held in the relay's track caches."),
		trackSubs:         d("subscriptions", "Subscriptions on relay tracks, by protocol.", "protocol"),
		inFlight:          d("bytes_in_flight", "Bytes of MoQ objects being received (read, not yet complete)."),
		webrtcPending:     d("webrtc_pending_sessions", "WHIP/WHEP sessions answered and awaiting ICE."),
		transcodes:        d("transcodes", "Transcodes running (derived renditions being made), by rendition.", "rendition"),
		transcodesStarted: d("transcodes_started_total", "Transcodes started, by rendition.", "rendition"),
		transcodeCPU:      d("transcode_cpu_seconds_total", "CPU time of the transcoders' ffmpeg processes, by rendition.", "rendition"),
		transcodesRefused: d("video_transcodes_refused_total", "Video transcodes refused at webrtc.max_video_transcodes."),
		forward:           newForwardMetrics(),
		record:            newRecordMetrics(),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.sessions, m.objectsOut, m.bytesOut, m.objectsIn, m.bytesIn,
		m.dropped, m.broadcasts, m.cacheBytes, m.trackSubs, m.webrtcPending, m.inFlight,
		m.transcodes, m.transcodesStarted, m.transcodeCPU, m.transcodesRefused} {
		ch <- d
	}
	m.forward.describe(ch)
	m.record.describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.forward.collect(m.s.forward, ch)
	m.record.collect(m.s.recorder, ch)
	stats := m.s.moq.Stats()
	for p, t := range m.s.relay.LocalStats() {
		stats[p] = t
	}
	m.webrtcSessions(stats)
	for p, t := range stats {
		ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(t.Sessions), p)
		ch <- prometheus.MustNewConstMetric(m.objectsOut, prometheus.CounterValue, float64(t.ObjectsOut), p)
		ch <- prometheus.MustNewConstMetric(m.bytesOut, prometheus.CounterValue, float64(t.BytesOut), p)
		ch <- prometheus.MustNewConstMetric(m.objectsIn, prometheus.CounterValue, float64(t.ObjectsIn), p)
		ch <- prometheus.MustNewConstMetric(m.bytesIn, prometheus.CounterValue, float64(t.BytesIn), p)
		ch <- prometheus.MustNewConstMetric(m.dropped, prometheus.CounterValue, float64(t.GroupsDropped), p)
	}
	bs := m.s.relay.Broadcasts()
	ch <- prometheus.MustNewConstMetric(m.broadcasts, prometheus.GaugeValue, float64(len(bs)))
	ch <- prometheus.MustNewConstMetric(m.cacheBytes, prometheus.GaugeValue, float64(m.s.relay.CacheBytes()))
	ch <- prometheus.MustNewConstMetric(m.inFlight, prometheus.GaugeValue, float64(m.s.inFlight.InUse()))
	if p := m.s.webrtc.pending; p != nil {
		ch <- prometheus.MustNewConstMetric(m.webrtcPending, prometheus.GaugeValue, float64(p.Count()))
	}
	m.collectTranscodes(ch)
	subs := map[string]int{}
	for _, b := range bs {
		for _, t := range b.Tracks {
			for p, n := range t.Subscribers {
				subs[p] += n
			}
		}
	}
	for p, n := range subs {
		ch <- prometheus.MustNewConstMetric(m.trackSubs, prometheus.GaugeValue, float64(n), p)
	}
}

// collectTranscodes reports the derived renditions being made; both
// renditions are present whenever WebRTC is on.
func (m *metrics) collectTranscodes(ch chan<- prometheus.Metric) {
	if m.s.webrtc == nil || m.s.webrtc.transcode == nil {
		return
	}
	st := m.s.webrtc.transcode.Stats()
	for _, r := range []string{transcode.OpusTrack, transcode.VideoTrack} {
		ch <- prometheus.MustNewConstMetric(m.transcodes, prometheus.GaugeValue, float64(st.Running[r]), r)
		ch <- prometheus.MustNewConstMetric(m.transcodesStarted, prometheus.CounterValue, float64(st.Started[r]), r)
		ch <- prometheus.MustNewConstMetric(m.transcodeCPU, prometheus.CounterValue, st.CPUSeconds[r], r)
	}
	ch <- prometheus.MustNewConstMetric(m.transcodesRefused, prometheus.CounterValue, float64(st.Refused))
}

// webrtcSessions counts WHIP and WHEP sessions as their peer connections
// (a viewer is a session, as a MoQ subscriber is), not as the in-process
// relay sessions behind them: WHEP viewers of a broadcast share one. Both
// labels are present whenever WebRTC is on.
func (m *metrics) webrtcSessions(stats map[string]moq.TransportStats) {
	w := m.s.webrtc
	if w == nil || w.engine == nil {
		return
	}
	for p, n := range map[string]int{"whip": w.whip.Sessions(), "whep": w.whep.Sessions()} {
		t := stats[p]
		t.Sessions = n
		stats[p] = t
	}
}

// handler serves /metrics from a registry of our own.
func (m *metrics) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, newSRTCollector(m.s), m.authRefusals, m.limitRefusals, m.subscribeLat,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

var _ prometheus.Collector = (*metrics)(nil)
