package controlplane

import (
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// turnResult is one turn an engine process served, kept for metrics.
type turnResult struct {
	at       time.Time
	latency  float64
	errKind  string
	input    int
	cacheHit int
}

// turns sends test traffic to the engine process and records its real results.
func (r *procRuntime) turns(e *engineState, req api.TurnsRequest) (api.TurnsResult, *apiError) {
	var inst *engineInstance
	if p := r.get(e.UserID); p != nil {
		inst = &p.engineInstance
	}
	return r.s.instanceTurns(e, inst, r.http, req)
}

// metricsLocked are the engine's real turn results in the window (processMetrics).
func (r *procRuntime) metricsLocked(e *engineState, m *api.Metrics) {
	processMetrics(m, e.results, m.From)
}

// processMetrics are the engine's real turn results in the window: requests, errors, p99
// latency and cache-hit ratio as the engine reported them. No traffic reads as no traffic (zero
// requests, warning "no_traffic"), never as a healthy profile.
func processMetrics(m *api.Metrics, rs []turnResult, from time.Time) {
	var lat []float64
	var input, cache int
	kinds := map[string]bool{}
	for _, t := range rs {
		if !t.at.After(from) {
			continue
		}
		m.Requests++
		lat = append(lat, t.latency)
		input += t.input
		cache += t.cacheHit
		if t.errKind != "" {
			m.Errors++
			kinds[t.errKind] = true
		}
	}
	if m.Requests == 0 {
		m.WarningKinds = append(m.WarningKinds, "no_traffic")
		return
	}
	m.ErrorRate = float64(m.Errors) / float64(m.Requests)
	m.P99LatencyMS = percentile(lat, 0.99)
	if input > 0 {
		m.CacheHitRatio = float64(cache) / float64(input)
	}
	for k := range kinds {
		m.WarningKinds = append(m.WarningKinds, k)
	}
}

func percentile(xs []float64, q float64) float64 {
	s := append([]float64(nil), xs...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
