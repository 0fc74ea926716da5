package controlplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	s := r.s
	p := r.get(e.UserID)
	if p == nil {
		s.mu.Lock()
		ae := s.engineUnavailable503(e)
		s.mu.Unlock()
		return api.TurnsResult{}, ae
	}
	resp, err := p.postTurns(r.http, EngineTurnRequest{Count: req.Count, Content: req.Content})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return api.TurnsResult{}, ae
		}
		return api.TurnsResult{}, newErr(http.StatusBadGateway, api.CodeEngineUnavailable, fmt.Sprintf("user %s's engine process did not answer: %v", e.UserID, err))
	}
	s.mu.Lock()
	now := time.Now()
	e.BrainWrites = resp.BrainWrites
	e.writes = append(e.writes, writeEvent{at: now, count: resp.Written})
	for _, t := range resp.Results {
		e.results = append(e.results, turnResult{at: now, latency: t.LatencyMS, errKind: t.Error, input: t.InputTokens, cacheHit: t.CacheHitTokens})
	}
	if len(e.writes) > 1024 {
		e.writes = e.writes[len(e.writes)-1024:]
	}
	if len(e.results) > 4096 {
		e.results = e.results[len(e.results)-4096:]
	}
	err = s.reg.putEngines(e.Engine)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("registry write failed", "user_id", e.UserID, "error", err)
	}
	return api.TurnsResult{Written: resp.Written, BrainWrites: resp.BrainWrites, Turns: resp.Turns}, nil
}

// postTurns calls the engine's turn endpoint with its key.
func (p *engineProc) postTurns(c *http.Client, req EngineTurnRequest) (*EngineTurnResponse, error) {
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, p.url+"/v1/turns", bytes.NewReader(b))
	hr.Header.Set("X-Engine-Key", p.key)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		_ = json.Unmarshal(body, &eb)
		status := http.StatusBadGateway
		if resp.StatusCode == http.StatusServiceUnavailable {
			status = http.StatusServiceUnavailable
		}
		code := eb.Error.Code
		if code == "" {
			code = api.CodeEngineUnavailable
		}
		return nil, newErr(status, code, fmt.Sprintf("user %s's engine (%s, process %d) answered %d: %s", p.user, p.version, p.pid, resp.StatusCode, eb.Error.Message))
	}
	var out EngineTurnResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("unreadable turn response: %w", err)
	}
	return &out, nil
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
