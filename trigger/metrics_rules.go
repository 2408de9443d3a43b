package trigger

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Series of rules removed by a reload disappear (issue 12). A rule removed
// while it had nothing in flight loses every series at once. One removed
// while an action of it is in flight, or an approval of it waits, keeps
// them until that ends and retiredKeep more, so that the outcome it ends
// with (veeam_trigger_action_outcomes_total, action_failures_total) is
// scraped and alerted on before the series go.

// defaultRetiredKeep is how long a removed rule's series outlive its last
// action or approval.
const defaultRetiredKeep = 15 * time.Minute

// retiredRule is a rule removed by a reload whose series are still there.
type retiredRule struct {
	// idleSince is when its last action or approval ended (zero while one
	// is in flight or waiting).
	idleSince time.Time
}

// ruleVectors are the vectors with a rule label; their series of a removed
// rule are deleted. veeam_trigger_approvals_pending is computed at each
// scrape from the rules and the waiting approvals, so it needs no delete.
func (m *metrics) ruleVectors() []interface {
	DeletePartialMatch(prometheus.Labels) int
} {
	return []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.blocked, m.actions, m.dryRunActions, m.failures, m.outcomes, m.duration, m.lastAction, m.lastActionInfo, m.pending}
}

// retireRulesLocked is called by Reload: the rules of old that cur lacks
// are retired, and a retired rule added back keeps its series.
func (t *Trigger) retireRulesLocked(old, cur []*rule) {
	keep := map[string]bool{}
	for _, r := range cur {
		keep[r.name] = true
	}
	for _, r := range old {
		if !keep[r.name] && t.m.retired[r.name] == nil {
			t.m.retired[r.name] = &retiredRule{}
		}
	}
	for name := range t.m.retired {
		if keep[name] {
			delete(t.m.retired, name)
		}
	}
	t.sweepRetiredLocked(true)
}

// sweepRetiredLocked deletes the series of retired rules with nothing in
// flight: at once when they were idle at the reload (atReload), after
// retiredKeep once their last action or approval ended.
func (t *Trigger) sweepRetiredLocked(atReload bool) {
	if len(t.m.retired) == 0 {
		return
	}
	busy := map[string]bool{}
	for _, a := range t.store.actions {
		busy[a.Rule] = true
	}
	for _, ap := range t.waitingApprovalsLocked() {
		busy[ap.Rule] = true
	}
	now := t.now()
	for name, rr := range t.m.retired {
		switch {
		case busy[name]:
			rr.idleSince = time.Time{}
			continue
		case rr.idleSince.IsZero() && !atReload:
			rr.idleSince = now
			continue
		case !rr.idleSince.IsZero() && now.Sub(rr.idleSince) < t.m.retiredKeep:
			continue
		}
		for _, v := range t.m.ruleVectors() {
			v.DeletePartialMatch(prometheus.Labels{"rule": name})
		}
		delete(t.m.retired, name)
		t.logger.Debug("metric series of a removed rule deleted", "rule", name)
	}
}

// sweepRetired is sweepRetiredLocked for the approval loop's tick.
func (t *Trigger) sweepRetired() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.store != nil {
		t.sweepRetiredLocked(false)
	}
}
