package trigger

import (
	"slices"
	"strconv"
	"time"
)

// A pending decision is a group of alerts blocked only by something that
// passes with time: `for` (not firing long enough yet), target_state when
// the target could not be read, rate_limit or concurrency. Alertmanager
// sends an unchanged group again only at repeat_interval (hours), so the
// trigger keeps such a decision (in the state file) and evaluates it again
// itself, through the whole pipeline, when it could pass: at the `for`
// deadline, after a backoff for an unreadable target (a bounded number of
// times), when a rate-limit token or a concurrency slot frees. It is
// dropped when its alerts are resolved by a later notification, when it
// expires, or when an evaluation ends otherwise (acted, or blocked by a
// guard that time does not lift).
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
	// lastEval keeps a decision waiting for a slot or token from being
	// evaluated more often than minRecheck.
	lastEval time.Time
}

const (
	// pendingGrace is how long after its `for` deadline a pending decision
	// waits at least (for a slot, a token, a readable target) before it
	// expires, when its alerts' endsAt is earlier: Alertmanager's endsAt is
	// a snapshot that Prometheus keeps pushing forward.
	pendingGrace = 10 * time.Minute
	// readRetries bounds the evaluations again of a decision whose target
	// could not be read; the n-th waits readBackoff * 2^(n-1).
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

func pendingID(r *rule, object, groupKey string) string {
	return hashKey("pending", r.name, r.action.Type, r.action.Target, object, groupKey)
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
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	id := pendingID(r, g.object, p.GroupKey)
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
		case final.Guard == guardTargetState && final.retry:
			if prev != nil && prev.Guard == guardTargetState {
				attempts = prev.Attempts
			}
			attempts++
			if attempts > readRetries {
				guard, reason = "", ""
				t.dropPendingLocked(id, "gave up", "the target could not be read after "+strconv.Itoa(readRetries)+" tries: "+final.Reason)
				break
			}
			at := now.Add(readBackoff << (attempts - 1))
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
		GroupKey: p.GroupKey, Guard: guard, Reason: reason, Since: now, Next: next, Attempts: attempts, Alerts: alerts}
	if prev != nil {
		pd.Since, pd.lastEval = prev.Since, prev.lastEval
	}
	pd.Expires = pd.Since.Add(r.forDur + pendingGrace)
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

// noteAlerts applies a notification to the pending decisions: an alert it
// resolves is no longer waiting (a decision left without alerts is
// dropped); one it shows firing gets its later endsAt.
func (t *Trigger) noteAlerts(p *payload, now time.Time) {
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
			t.dropPendingLocked(pd.ID, "expired", "its alerts' endsAt (or "+pendingGrace.String()+" after its for deadline) passed before it could act")
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
			due = append(due, pd)
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
