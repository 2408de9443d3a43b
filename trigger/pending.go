package trigger

import (
	"slices"
	"strings"
	"time"
)

// A pending decision is a group of alerts blocked only by something that
// passes with time: `for` (not firing long enough yet), target_state when
// the target could not be read, rate_limit or concurrency. Alertmanager
// sends an unchanged group again only at repeat_interval (hours), so the
// trigger keeps such a decision (in the state file) and evaluates it again
// itself, through the whole pipeline, when it could pass: at the `for`
// deadline, after a backoff for an unreadable target (until it expires),
// when a rate-limit token or a concurrency slot frees. It is dropped when
// its alerts are resolved by a later notification, when it expires, or when
// an evaluation ends otherwise (acted, or blocked by a guard that time does
// not lift). A decision a person approved that rate_limit or concurrency
// then stopped is kept too, and meets only the approved guards again.
type pendingDecision struct {
	ID       string    `json:"id"`
	Rule     string    `json:"rule"`
	Action   string    `json:"action"`
	Target   string    `json:"target"`
	Object   string    `json:"object"`
	GroupKey string    `json:"group_key"`
	Guard    string    `json:"guard"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
	Next     time.Time `json:"next"`
	Expires  time.Time `json:"expires"`
	Attempts int       `json:"attempts,omitempty"`
	Alerts   []alert   `json:"alerts"`
	// Only, when set, are the group stages the decision meets again: a
	// decision a person approved, waiting for a token or a slot.
	Only []string `json:"only,omitempty"`
	// lastEval keeps a decision waiting for a slot or token from being
	// evaluated more often than minRecheck.
	lastEval time.Time
}

const (
	// pendingGrace is how long after its `for` deadline, or after the time
	// a token or slot is next looked for, a pending decision waits before
	// it expires, when its alerts' endsAt is earlier: Alertmanager's endsAt
	// is a snapshot that Prometheus keeps pushing forward.
	pendingGrace = 10 * time.Minute
	// readRetries caps the backoff of a decision whose target could not be
	// read: the n-th try waits readBackoff * 2^(min(n, readRetries)-1), so
	// 2 s up to 32 s, until the decision expires.
	readRetries = 5
	readBackoff = 2 * time.Second
	// slotRecheck is how often a decision waiting for a concurrency slot is
	// looked at even without a slot freeing.
	slotRecheck = time.Minute
	// minRecheck keeps a failed evaluation from spinning.
	minRecheck = time.Second
)

// pendingGuards are the guards a decision can wait on.
var pendingGuards = []string{guardFor, guardTargetState, guardRateLimit, guardConcurrency}

// pendingLine is the audit line of a decision kept or dropped.
type pendingLine struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	Rule      string    `json:"rule"`
	Object    string    `json:"object"`
	GroupKey  string    `json:"group_key"`
	Guard     string    `json:"guard"`
	State     string    `json:"state"` // kept or dropped
	Reason    string    `json:"reason"`
	Next      time.Time `json:"next,omitzero"`
	RequestID string    `json:"request_id"`
}

// pendingID names the pending decision of a rule, object and alert group;
// an approved decision (only set) is apart from the one Alertmanager's
// repeats evaluate.
func pendingID(r *rule, object, groupKey string, only []string) string {
	parts := []string{"pending", r.name, r.action.Type, r.action.Target, object, groupKey}
	return hashKey(append(parts, only...)...)
}

// scope keeps the group of a pending decision: its rule's, or, when that
// rule is gone (renamed), the group of a rule with the same action on the
// same object.
func (pd *pendingDecision) scope(groups []*alertGroup, rules []*rule) []*alertGroup {
	byName := slices.ContainsFunc(rules, func(r *rule) bool { return r.name == pd.Rule })
	for _, g := range groups {
		if g.rule == nil || g.object != pd.Object || g.rule.action.Type != pd.Action || g.rule.action.Target != pd.Target {
			continue
		}
		if !byName || g.rule.name == pd.Rule {
			return []*alertGroup{g}
		}
	}
	return nil
}

// keepPending keeps, updates or drops the pending decision of a group after
// it was evaluated (final is the group stages' verdict, nil when every alert
// stopped at an alert stage). from is the pending decision evaluated again.
func (t *Trigger) keepPending(p *payload, g *alertGroup, final *decision, from *pendingDecision) {
	if g.rule == nil {
		return
	}
	r := g.rule
	if from == nil && g.stoppedBy(guardKillSwitch) {
		// Alertmanager's notification met the kill switch: it says nothing
		// about what the kept decision waits for (it is evaluated again, and
		// met by the kill switch, when due).
		return
	}
	if final != nil && beingDecided(final) {
		return // another evaluation of the same alerts decides and keeps it
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	id := pendingID(r, g.object, p.GroupKey, g.only)
	if from != nil && from.ID != id {
		t.dropPendingLocked(from.ID, "", "")
	}
	var guard, reason string
	var next time.Time
	var alerts []alert
	for _, a := range g.acting {
		alerts = append(alerts, *a)
	}
	for _, s := range g.stops {
		if s.guard != guardFor {
			continue
		}
		for _, a := range s.alerts {
			alerts = append(alerts, *a)
			if at := a.StartsAt.Add(r.forDur); guard == "" || at.Before(next) {
				guard, reason, next = guardFor, s.reason, at
			}
		}
	}
	prev := t.store.pendingByID(id)
	attempts := 0
	if final != nil {
		switch {
		case final.Outcome != verdictBlocked:
			guard = "" // acted (or dry-run): nothing left to wait for
		case g.only != nil && final.Guard != guardRateLimit && final.Guard != guardConcurrency:
			guard = "" // approved, then stopped by what time does not lift
		case final.Guard == guardTargetState && final.retry:
			if prev != nil && prev.Guard == guardTargetState {
				attempts = prev.Attempts
			}
			attempts++
			at := now.Add(readBackoff << (min(attempts, readRetries) - 1))
			if guard == "" || at.Before(next) {
				guard, reason, next = guardTargetState, final.Reason, at
			}
		case final.Guard == guardRateLimit:
			res := t.store.limiter.ReserveN(now, 1)
			at := now.Add(res.DelayFrom(now))
			res.CancelAt(now)
			if guard == "" || at.Before(next) {
				guard, reason, next = guardRateLimit, final.Reason, at
			}
		case final.Guard == guardConcurrency:
			if at := now.Add(slotRecheck); guard == "" || at.Before(next) {
				guard, reason, next = guardConcurrency, final.Reason, at
			}
		}
	}
	if guard == "" || len(alerts) == 0 {
		if prev != nil {
			why := "evaluated again"
			if final != nil {
				why = verdictText(*final)
			}
			t.dropPendingLocked(id, "ended", why)
		}
		return
	}
	if prev != nil && from == nil && prev.Guard == guard && prev.Next.Equal(next) && prev.Attempts == attempts && len(prev.Alerts) == len(alerts) {
		return // a repeat of what is kept already (a storm): no write
	}
	pd := &pendingDecision{ID: id, Rule: r.name, Action: r.action.Type, Target: r.action.Target, Object: g.object,
		GroupKey: p.GroupKey, Guard: guard, Reason: reason, Since: now, Next: next, Attempts: attempts, Alerts: alerts, Only: g.only}
	if prev != nil {
		pd.Since, pd.lastEval = prev.Since, prev.lastEval
	}
	pd.Expires = pendingExpiry(pd, prev, r.forDur)
	for _, a := range alerts {
		if a.EndsAt.After(pd.Expires) {
			pd.Expires = a.EndsAt
		}
	}
	t.store.putPending(pd)
	_ = t.audit.write(pendingLine{Time: now, Event: eventPending, Rule: pd.Rule, Object: pd.Object, GroupKey: pd.GroupKey,
		Guard: guard, State: "kept", Reason: reason, Next: next, RequestID: pd.ID}, false)
	t.pendingChangedLocked()
}

// pendingExpiry is when a kept decision is given up unless its alerts'
// endsAt is later: pendingGrace after its `for` deadline or after the time
// it is next looked at, whichever is later, computed again each time it is
// kept, so a decision waiting for a token that frees in 30 minutes, or for
// a slot a long failover holds, is not dropped meanwhile. Tries of an
// unreadable target do not push it on: it stays where the first try of the
// run put it, which bounds them (prev is the decision as kept before).
func pendingExpiry(pd, prev *pendingDecision, forDur time.Duration) time.Time {
	if pd.Guard == guardTargetState && prev != nil && prev.Guard == guardTargetState {
		return prev.Expires
	}
	return maxTime(pd.Since.Add(forDur), pd.Next).Add(pendingGrace)
}

// stoppedBy reports whether an alert stage stopped alerts of the group.
func (g *alertGroup) stoppedBy(guard string) bool {
	return slices.ContainsFunc(g.stops, func(s *stop) bool { return s.guard == guard })
}

// beingDecided reports whether d stopped only because another evaluation
// of the same alerts or object held their keys (store.reserve): that one
// decides, and keeps or drops the pending decision.
func beingDecided(d *decision) bool {
	return d.Outcome == verdictBlocked && (d.Guard == guardDedup || d.Guard == guardCooldown) &&
		strings.Contains(d.Reason, "being decided for another notification")
}

func verdictText(d decision) string {
	if d.Outcome == verdictBlocked {
		return "blocked at " + d.Guard
	}
	return d.Outcome
}

// dropPendingLocked forgets a pending decision (state "" drops silently:
// it is replaced).
func (t *Trigger) dropPendingLocked(id, state, why string) {
	pd := t.store.pendingByID(id)
	if pd == nil {
		return
	}
	t.store.pending = slices.DeleteFunc(t.store.pending, func(p *pendingDecision) bool { return p.ID == id })
	if state != "" {
		_ = t.audit.write(pendingLine{Time: t.now(), Event: eventPending, Rule: pd.Rule, Object: pd.Object, GroupKey: pd.GroupKey,
			Guard: pd.Guard, State: "dropped", Reason: state + ": " + why, RequestID: pd.ID}, false)
		t.logger.Info("pending decision dropped", "rule", pd.Rule, "object", pd.Object, "guard", pd.Guard, "why", state+": "+why)
	}
	t.pendingChangedLocked()
}

func (s *store) pendingByID(id string) *pendingDecision {
	for _, p := range s.pending {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func (s *store) putPending(pd *pendingDecision) {
	for i, p := range s.pending {
		if p.ID == pd.ID {
			s.pending[i] = pd
			return
		}
	}
	s.pending = append(s.pending, pd)
}

// pendingChangedLocked makes a change of the pending decisions durable and
// visible, and wakes the loop to plan its next look.
func (t *Trigger) pendingChangedLocked() {
	_ = t.saveLocked()
	t.m.setPendingLocked(t.rules, t.store.pending)
	t.wakePending()
}

// noteAlerts applies a notification to the pending decisions and to the
// approvals waiting for a person (approvals.go).
func (t *Trigger) noteAlerts(p *payload, now time.Time) {
	t.notePendingAlerts(p)
	t.endResolvedApprovals(p, now)
}

// notePendingAlerts applies a notification to the pending decisions: an
// alert it resolves is no longer waiting (a decision left without alerts is
// dropped); one it shows firing gets its later endsAt.
func (t *Trigger) notePendingAlerts(p *payload) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.store.pending) == 0 {
		return
	}
	state := map[string]*alert{}
	for i := range p.Alerts {
		state[p.Alerts[i].id()] = &p.Alerts[i]
	}
	changed := false
	for _, pd := range slices.Clone(t.store.pending) {
		kept := pd.Alerts[:0:0]
		for _, a := range pd.Alerts {
			n, ok := state[a.id()]
			switch {
			case !ok:
				kept = append(kept, a)
			case n.Status == statusResolved:
				changed = true
			default:
				if n.EndsAt.After(a.EndsAt) {
					a.EndsAt = n.EndsAt
					pd.Expires = maxTime(pd.Expires, n.EndsAt)
					changed = true
				}
				kept = append(kept, a)
			}
		}
		pd.Alerts = kept
		if len(kept) == 0 {
			t.dropPendingLocked(pd.ID, "resolved", "its alerts were resolved by a later notification")
		}
	}
	if changed {
		t.pendingChangedLocked()
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// wakePending tells the pending loop to look again (never blocks).
func (t *Trigger) wakePending() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// pendingLoop evaluates pending decisions again when they are due, until
// Close.
func (t *Trigger) pendingLoop() {
	defer t.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, wait := t.duePending()
		for _, pd := range due {
			t.reevaluate(pd)
		}
		if len(due) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-t.ctx.Done():
			return
		case <-t.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// duePending drops expired pending decisions and returns those due now and
// how long until the next one.
func (t *Trigger) duePending() ([]*pendingDecision, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, time.Hour
	}
	now := t.now()
	wait := time.Hour
	var due []*pendingDecision
	for _, pd := range slices.Clone(t.store.pending) {
		if !now.Before(pd.Expires) {
			t.dropPendingLocked(pd.ID, "expired", "its alerts' endsAt (or "+pendingGrace.String()+" after its for deadline or last wait) passed before it could act")
			continue
		}
		ready := !now.Before(pd.Next)
		if rested := !now.Before(pd.lastEval.Add(minRecheck)); rested {
			switch pd.Guard {
			case guardConcurrency:
				ready = ready || len(t.store.actions) < t.cfg.MaxConcurrent
			case guardRateLimit:
				ready = ready || t.store.limiter.TokensAt(now) >= 1
			}
		} else {
			ready = false
			wait = min(wait, pd.lastEval.Add(minRecheck).Sub(now))
		}
		if ready {
			pd.lastEval = now
			// A copy: noteAlerts changes the kept one under the mutex
			// while this one is evaluated without it.
			c := *pd
			c.Alerts, c.Only = slices.Clone(pd.Alerts), slices.Clone(pd.Only)
			due = append(due, &c)
			continue
		}
		wait = min(wait, pd.Next.Sub(now), pd.Expires.Sub(now))
	}
	return due, max(wait, 10*time.Millisecond)
}

// reevaluate runs a pending decision through the pipeline again, as if
// Alertmanager had sent its group again.
func (t *Trigger) reevaluate(pd *pendingDecision) {
	p := &payload{Version: "4", GroupKey: pd.GroupKey, Status: statusFiring, Receiver: "pending"}
	p.Alerts = slices.Clone(pd.Alerts)
	t.logger.Info("evaluating a pending decision again", "rule", pd.Rule, "object", pd.Object, "guard", pd.Guard, "attempts", pd.Attempts)
	if pd.Only != nil {
		t.reevaluateApproved(p, pd)
		return
	}
	ds, err := t.evaluateScoped(t.ctx, p, pd)
	if err != nil {
		t.logger.Error("pending decision could not be evaluated again", "rule", pd.Rule, "object", pd.Object, "err", err)
		return
	}
	if len(ds) == 0 {
		t.mu.Lock()
		t.dropPendingLocked(pd.ID, "ended", "no rule acts on its alerts any more")
		t.mu.Unlock()
	}
}

// reevaluateApproved runs a decision a person approved, kept for a token or
// a slot, through the approved guards again (approvedGuards, kill switch
// first), as the approval did.
func (t *Trigger) reevaluateApproved(p *payload, pd *pendingDecision) {
	t.mu.Lock()
	r := t.ruleLocked(pd.Rule)
	t.mu.Unlock()
	if r == nil || r.action.Type != pd.Action || r.action.Target != pd.Target {
		t.mu.Lock()
		t.dropPendingLocked(pd.ID, "ended", "rule "+pd.Rule+" no longer has this action")
		t.mu.Unlock()
		return
	}
	g := &alertGroup{rule: r, object: pd.Object, only: pd.Only}
	for i := range p.Alerts {
		g.acting = append(g.acting, &p.Alerts[i])
	}
	now := t.now()
	d := decision{Time: now, Event: eventDecision, Rule: r.name, Object: pd.Object, Action: r.action.Type, Target: r.action.Target,
		GroupKey: pd.GroupKey, Outcome: verdictBlocked}
	var res answerResult
	if t.decideForPerson(t.ctx, p, g, d, now, &res) != 200 {
		t.logger.Error("pending decision could not be evaluated again", "rule", pd.Rule, "object", pd.Object, "err", res.Error)
		return
	}
	if res.Decision.Guard == guardKillSwitch {
		t.mu.Lock()
		t.dropPendingLocked(pd.ID, "ended", "blocked at "+guardKillSwitch)
		t.mu.Unlock()
		return
	}
	t.keepPending(p, g, res.Decision, pd)
}
