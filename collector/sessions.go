package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// cloudSessions is the cloud_failover_sessions collector (EM): counts per
// state and result over every session, and per-session series for the
// newest Options.SessionsPerPlan sessions of each plan. EM has no plan id on
// a session; its name is the plan's name.
func (e *Exporter) cloudSessions(ctx context.Context, t *target) ([]prometheus.Metric, error) {
	sessions, err := t.EM.ListCloudFailoverSessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list cloud failover sessions: %w", err)
	}
	for i := range sessions {
		sessions[i].ID = lower(sessions[i].ID)
	}
	// Per plan, newest first; ties and duplicates by id.
	slices.SortFunc(sessions, func(a, b veeam.CloudFailoverSession) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := b.CreationTime.Compare(a.CreationTime); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})

	b, m := e.b, e.m
	n := e.opts.SessionsPerPlan
	states, results := len(sessionStates), len(sessionResults)
	counts := make([]int, states*results)
	out := make([]prometheus.Metric, 0, states*results+min(len(sessions), 64)*(4+states+results))
	seen := make(map[string]struct{}, len(sessions))
	inPlan := 0
	for i, s := range sessions {
		if _, dup := seen[s.ID]; dup {
			continue
		}
		seen[s.ID] = struct{}{}
		st, res := m.sessionState.index(s.State), m.sessionResult.index(s.Result)
		counts[st*results+res]++

		if i == 0 || sessions[i-1].Name != s.Name {
			inPlan = 0
		}
		if inPlan >= n {
			continue
		}
		inPlan++
		id := b.pair(labelSessionID, s.ID)
		out = append(out,
			b.gauge(m.sessionInfo, 1, t.pair, id, b.pair("plan", s.Name)),
			b.gauge(m.sessionProgress, float64(min(max(s.Progress, 0), 100))/100, t.pair, id))
		out = b.stateset(out, m.sessionState, st, t.pair, id)
		out = b.stateset(out, m.sessionResult, res, t.pair, id)
		if !s.CreationTime.IsZero() {
			out = append(out, b.gauge(m.sessionStart, unixSeconds(s.CreationTime), t.pair, id))
		}
		if !s.EndTime.IsZero() {
			out = append(out, b.gauge(m.sessionEnd, unixSeconds(s.EndTime), t.pair, id))
		}
	}
	for st := range sessionStates {
		out = b.counts(out, m.sessions, counts[st*results:(st+1)*results], t.pair, m.sessionState.statePairs[st])
	}
	return out, nil
}
