package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// cloudSessions is the cloud_failover_sessions collector (EM): counts per
// state and result over every session, and per-session series for the
// newest Options.SessionsPerPlan sessions of each plan. EM has no plan id on
// a session; its name is the plan's name.
func (e *Exporter) cloudSessions(ctx context.Context, t *target) ([]*block, error) {
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

	m, tn := e.m, t.Name
	n := e.opts.SessionsPerPlan
	states, results := len(sessionStates), len(sessionResults)
	counts := make([]int, states*results)
	rows := min(len(sessions), 64)
	info, progress := newBlock(m.sessionInfo, rows), newBlock(m.sessionProgress, rows)
	state, result := newBlock(m.sessionState, rows), newBlock(m.sessionResult, rows)
	start, end := newBlock(m.sessionStart, rows), newBlock(m.sessionEnd, rows)
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
		info.add(1, tn, s.ID, s.Name)
		progress.add(float64(min(max(s.Progress, 0), 100))/100, tn, s.ID)
		state.add(float64(st), tn, s.ID)
		result.add(float64(res), tn, s.ID)
		if !s.CreationTime.IsZero() {
			start.add(unixSeconds(s.CreationTime), tn, s.ID)
		}
		if !s.EndTime.IsZero() {
			end.add(unixSeconds(s.EndTime), tn, s.ID)
		}
	}
	total := newBlock(m.sessions, states)
	for st := range sessionStates {
		total.addCounts(counts[st*results:(st+1)*results], tn, sessionStates[st])
	}
	return []*block{total, info, progress, state, result, start, end}, nil
}
