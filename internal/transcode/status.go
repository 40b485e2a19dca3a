package transcode

import (
	"sort"
	"time"
)

// Status is a running transcode (a derived rendition being made), for the
// API.
type Status struct {
	Broadcast   string    `json:"broadcast"`
	Rendition   string    `json:"rendition"`
	Codec       string    `json:"codec"`
	Source      string    `json:"source"` // the track it is made from
	SourceCodec string    `json:"source_codec"`
	Started     time.Time `json:"started"`
	Bitrate     int       `json:"bitrate,omitempty"`
	Preset      string    `json:"preset,omitempty"`
	// CPUSeconds is the ffmpeg processes' CPU time so far; CPUPercent
	// their recent use (100 = one core).
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"`
	// Ready: its first frame is published.
	Ready bool `json:"ready"`
}

// Stats are the registry's counters since it was made, by rendition.
type Stats struct {
	Running    map[string]int
	Started    map[string]uint64
	CPUSeconds map[string]float64 // of the ended and the running ones
	// Refused counts video transcodes refused at the cap.
	Refused uint64
}

// Transcodes lists the running transcodes, by broadcast then rendition.
func (r *Registry) Transcodes() []Status {
	r.mu.Lock()
	ws := make([]*Writer, 0, len(r.writers))
	for _, w := range r.writers {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	var out []Status
	for _, w := range ws {
		w.mu.Lock()
		tc, vt := w.tc, w.vt
		w.mu.Unlock()
		if tc != nil {
			out = append(out, tc.describe())
		}
		if vt != nil {
			out = append(out, vt.describe())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Broadcast != out[j].Broadcast {
			return out[i].Broadcast < out[j].Broadcast
		}
		return out[i].Rendition < out[j].Rendition
	})
	return out
}

// Stats returns the counters.
func (r *Registry) Stats() Stats {
	st := Stats{Running: map[string]int{}, Started: map[string]uint64{}, CPUSeconds: map[string]float64{},
		Refused: r.refused.Load()}
	running := r.Transcodes()
	r.statMu.Lock()
	for k, v := range r.startedN {
		st.Started[k] = v
	}
	for k, v := range r.cpuEnded {
		st.CPUSeconds[k] = v
	}
	r.statMu.Unlock()
	for _, t := range running {
		st.Running[t.Rendition]++
		st.CPUSeconds[t.Rendition] += t.CPUSeconds
	}
	return st
}

func (r *Registry) started(rendition string) {
	r.statMu.Lock()
	r.startedN[rendition]++
	r.statMu.Unlock()
}

// ended adds a stopped transcode's CPU time to its rendition's.
func (r *Registry) ended(rendition string, m *cpuMeter) {
	m.sample()
	r.statMu.Lock()
	r.cpuEnded[rendition] += m.total()
	r.statMu.Unlock()
}
