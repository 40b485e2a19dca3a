package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqgate/moqgate/egress/record"
)

// newRecorder makes the recorder (nil: record.dir is empty).
func (s *Server) newRecorder() (*record.Recorder, error) {
	rc := s.cfg.Record
	if rc.Dir == "" {
		return nil, nil
	}
	rules := make([]record.Rule, 0, len(rc.Prefixes))
	for _, p := range rc.Prefixes {
		rules = append(rules, record.Rule{Prefix: p.Prefix, Off: p.Off})
	}
	return record.New(s.relay.Local("record"), record.Config{Dir: rc.Dir, Pattern: rc.Pattern,
		SegmentDuration: rc.SegmentDuration, MaxAge: rc.MaxAge, MaxBytes: int64(rc.MaxBytes), Rules: rules,
		Logger: s.log.With("component", "record")})
}

// recordRoutes serves the playback API (404 while recording is off).
func (s *Server) recordRoutes() {
	s.mux.HandleFunc("GET /api/recordings", func(w http.ResponseWriter, r *http.Request) {
		if s.recorder == nil {
			writeJSON(w, record.Listing{Recordings: []record.Recording{}})
			return
		}
		writeJSON(w, s.recorder.List(func(path string) bool { return s.checkSubscribe(r, path) == nil }))
	})
	s.mux.HandleFunc("GET /recordings/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		if s.recorder == nil {
			http.Error(w, "recording is off", http.StatusNotFound)
			return
		}
		s.recorder.ServeRecording(w, r, r.PathValue("rest"), s.authorizePlayback)
	})
}

// authorizePlayback needs the sub grant for the path, as live HLS does.
func (s *Server) authorizePlayback(r *http.Request, path string) error {
	if err := s.checkSubscribe(r, path); err != nil {
		s.metrics.authRefusals.WithLabelValues("recordings").Inc()
		return err
	}
	return nil
}

// recordMetrics describes the recorder's counters.
type recordMetrics struct {
	recording, segments, bytes, errors, pruned, failing *prometheus.Desc
}

func newRecordMetrics() recordMetrics {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("moqgate_record_"+name, help, nil, nil)
	}
	return recordMetrics{
		recording: d("broadcasts", "Broadcasts being recorded."),
		segments:  d("segments_total", "Recorded segments closed."),
		bytes:     d("bytes_total", "Object bytes written to recorded segments."),
		errors:    d("errors_total", "Recording write failures (disk full, directory not writable)."),
		pruned:    d("pruned_segments_total", "Segments deleted by retention."),
		failing:   d("failing", "1 while recording fails to write (it retries)."),
	}
}

func (rm recordMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rm.recording, rm.segments, rm.bytes, rm.errors, rm.pruned, rm.failing} {
		ch <- d
	}
}

func (rm recordMetrics) collect(r *record.Recorder, ch chan<- prometheus.Metric) {
	if r == nil {
		return
	}
	st := r.Stats()
	failing := 0.0
	if st.Failing {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(rm.recording, prometheus.GaugeValue, float64(st.Recording))
	ch <- prometheus.MustNewConstMetric(rm.segments, prometheus.CounterValue, float64(st.Segments))
	ch <- prometheus.MustNewConstMetric(rm.bytes, prometheus.CounterValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(rm.errors, prometheus.CounterValue, float64(st.Errors))
	ch <- prometheus.MustNewConstMetric(rm.pruned, prometheus.CounterValue, float64(st.PrunedSegments))
	ch <- prometheus.MustNewConstMetric(rm.failing, prometheus.GaugeValue, failing)
}
