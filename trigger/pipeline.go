package trigger

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// requestIDNamespace is the UUIDv5 namespace of request ids. It never
// changes: two exporters (or one before and after an upgrade) must derive
// the same id from the same notification.
var requestIDNamespace = uuid.MustParse("6f0c2a4e-8d1b-5e3f-9a7c-2b4d6e8f0a1c")

// requestID is the idempotency key of an action: UUIDv5 of the action type,
// the object as Veeam identifies it (objectKey), the alert group key and the
// group's earliest startsAt. The rule is not part of it: two rules, or a
// renamed rule, acting on one object for one alert group send one id.
func requestID(action, object, groupKey string, startsAt time.Time) string {
	name := action + "\x00" + object + "\x00" + groupKey + "\x00" + startsAt.UTC().Format(time.RFC3339Nano)
	return uuid.NewSHA1(requestIDNamespace, []byte(name)).String()
}

// dedupKeys are the keys that mark an alert group as handled by an action
// on an object: the group (group key + earliest startsAt, what
// Alertmanager's repeats and HA peers share) and each alert instance
// (labels + startsAt), so that an alert already acted on does not act again
// through another group, another rule or when an older alert joins its
// group.
func dedupKeys(action, object, groupKey string, startsAt time.Time, acting []*alert) []string {
	keys := []string{hashKey("group", action, object, groupKey, startsAt.UTC().Format(time.RFC3339Nano))}
	for _, a := range acting {
		keys = append(keys, hashKey("alert", action, object, a.id(), a.StartsAt.UTC().Format(time.RFC3339Nano)))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

func hashKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// stop is a set of alerts of a group that an alert-level guard stopped.
type stop struct {
	guard  string
	reason string
	alerts []*alert
}

// alertGroup is the alerts of one notification for one rule and object
// (rule nil: alerts no rule matches).
type alertGroup struct {
	rule   *rule
	object string
	order  int
	// stops holds alerts stopped by the alert stages, in guard order.
	stops []*stop
	// acting are the alerts that passed those guards.
	acting []*alert
	// only, when set, are the group stages that apply (runs): a manual
	// action or an approved decision meets only these.
	only []string
}

func (g *alertGroup) stopAt(guard, reason string, a *alert) {
	for _, s := range g.stops {
		if s.guard == guard {
			s.alerts = append(s.alerts, a)
			return
		}
	}
	g.stops = append(g.stops, &stop{guard: guard, reason: reason, alerts: []*alert{a}})
}

func (g *alertGroup) contains(a *alert) bool {
	if slices.Contains(g.acting, a) {
		return true
	}
	for _, s := range g.stops {
		if slices.Contains(s.alerts, a) {
			return true
		}
	}
	return false
}

// classify runs the alert stages and groups the alerts by rule and object. An alert matching several
// rules is in a group of each. It calls nothing and reads no state.
func classify(p *payload, rules []*rule, now time.Time, kill bool, killReason string) []*alertGroup {
	type key struct {
		rule   int
		object string
	}
	groups := map[key]*alertGroup{}
	get := func(ri int, r *rule, object string) *alertGroup {
		k := key{ri, object}
		g, ok := groups[k]
		if !ok {
			g = &alertGroup{rule: r, object: object, order: len(groups)}
			groups[k] = g
		}
		return g
	}
	for i := range p.Alerts {
		a := &p.Alerts[i]
		matched := false
		for ri, r := range rules {
			if !r.matches(a) {
				continue
			}
			matched = true
			g := get(ri, r, r.object(a))
			if s, reason := firstAlertStop(&alertCheck{a: a, rule: r, now: now, kill: kill, killReason: killReason}); s != nil {
				g.stopAt(s.name, reason, a)
			} else {
				g.acting = append(g.acting, a)
			}
		}
		if !matched {
			g := get(len(rules), nil, "")
			s, reason := firstAlertStop(&alertCheck{a: a, now: now, kill: kill, killReason: killReason})
			g.stopAt(s.name, reason, a)
		}
	}
	out := make([]*alertGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *alertGroup) int { return cmp.Compare(a.order, b.order) })
	return out
}

// quorum reports whether enough distinct alerts (by labels, or by the
// rule's quorum_by labels) act.
func (g *alertGroup) quorum() (bool, string) {
	seen := map[string]bool{}
	for _, a := range g.acting {
		if k := g.rule.quorumKey(a); k != "" {
			seen[k] = true
		}
	}
	if len(seen) < g.rule.minAlerts {
		if len(g.rule.quorumBy) > 0 {
			return false, fmt.Sprintf("%d distinct values of %v among the firing alerts, min_alerts is %d", len(seen), g.rule.quorumBy, g.rule.minAlerts)
		}
		return false, fmt.Sprintf("%d distinct firing alerts, min_alerts is %d", len(seen), g.rule.minAlerts)
	}
	return true, ""
}

func earliestStart(as []*alert) time.Time {
	var t time.Time
	for _, a := range as {
		if t.IsZero() || a.StartsAt.Before(t) {
			t = a.StartsAt
		}
	}
	return t
}

func fingerprints(as []*alert) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.displayFingerprint())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// errClosed answers webhooks that arrive while the trigger shuts down.
var errClosed = errors.New("trigger is shutting down")

// evaluate runs the pipeline over a notification and returns its
// decisions. An error means a decision could not be made durable (or the
// trigger is closing): the decision that failed called nothing. A
// notification that would make more than max_decisions_per_notification
// decisions is refused (a *payloadError) before anything is decided.
func (t *Trigger) evaluate(ctx context.Context, p *payload) ([]decision, error) {
	return t.evaluateScoped(ctx, p, nil)
}

// evaluateScoped is evaluate; with pd it evaluates a pending decision again,
// on its group only.
func (t *Trigger) evaluateScoped(ctx context.Context, p *payload, pd *pendingDecision) ([]decision, error) {
	now := t.now()
	t.mu.Lock()
	rules := t.rules
	killPath := t.cfg.KillSwitchFile
	maxDecisions := t.cfg.MaxDecisionsPerNotification
	t.mu.Unlock()
	kill, killReason := killSwitch(killPath)
	groups := classify(p, rules, now, kill, killReason)
	if pd != nil {
		groups = pd.scope(groups, rules)
	} else {
		n := 0
		for _, g := range groups {
			n += len(g.stops)
			if len(g.acting) > 0 {
				n++
			}
		}
		if n > maxDecisions {
			return nil, badPayload("the notification would make %d decisions, more than max_decisions_per_notification (%d); nothing was decided", n, maxDecisions)
		}
		t.noteAlerts(p, now)
	}
	var out []decision
	for _, g := range groups {
		base := decision{Time: now, Event: eventDecision, Rule: ruleNone, GroupKey: p.GroupKey, Outcome: verdictBlocked}
		if g.rule != nil {
			base.Rule, base.Object = g.rule.name, g.object
			base.Action, base.Target = g.rule.action.Type, g.rule.action.Target
		}
		for _, s := range g.stops {
			d := base
			d.Alerts = fingerprints(s.alerts)
			d.Guard, d.Reason = s.guard, s.reason
			if g.rule != nil {
				d.RequestID = requestID(g.rule.action.Type, writtenObject(g.rule, g.object), p.GroupKey, earliestStart(s.alerts))
			}
			t.record(d)
			out = append(out, d)
		}
		var final *decision
		if len(g.acting) > 0 {
			d, err := t.decide(ctx, p, g, base, now)
			out = append(out, d)
			if err != nil {
				return out, err
			}
			final = &d
		}
		t.keepPending(p, g, final, pd)
	}
	return out, nil
}

// decide runs the group stages for alerts that passed the alert stages.
// When all agree the action is made durable and started.
//
// The state stages run twice: before target_state's live read on the object
// as written (their keys reserved while Veeam is read, so concurrent
// identical notifications stop at dedup), and after it on the object as
// written and as Veeam identifies it, all of them, since the state may have
// changed meanwhile (another rule, a reload).
func (t *Trigger) decide(ctx context.Context, p *payload, g *alertGroup, d decision, now time.Time) (decision, error) {
	r := g.rule
	e := &evaluation{p: p, g: g, now: now, startsAt: earliestStart(g.acting)}
	written := writtenObject(r, g.object)
	e.keyOn(written)
	if t.ruleLegacyCooldown(r, g.object) {
		e.cks = append(e.cks, legacyCooldownKey(r.name, g.object))
	}
	d.Alerts = fingerprints(g.acting)
	d.RequestID = requestID(r.action.Type, written, p.GroupKey, e.startsAt)
	blockLocked := func(guard, reason string) (decision, error) {
		d.Guard, d.Reason = guard, reason
		t.recordLocked(d, true)
		return d, nil
	}
	for _, s := range groupStages(func(s *stage) bool { return s.pure != nil && g.runs(s) }) {
		if reason := s.pure(e); reason != "" {
			d.Guard, d.Reason = s.name, reason
			t.record(d)
			return d, nil
		}
	}
	if err := t.coordReady(); err != nil {
		// Several replicas and no shared store: nobody acts (503).
		d.Outcome, d.Reason = verdictNotRecorded, err.Error()
		return d, err
	}

	reserved := slices.Clone(e.keys)
	for _, k := range e.cks {
		reserved = append(reserved, reservedCooldownKey(k))
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return d, errClosed
	}
	if s, reason := t.firstStateStop(e, beforeLive()); s != nil {
		defer t.mu.Unlock()
		return blockLocked(s.name, reason)
	}
	t.store.reserve(reserved)
	t.mu.Unlock()

	var liveStop *stage
	var liveReason string
	for _, s := range groupStages(func(s *stage) bool { return s.live != nil && g.runs(s) }) {
		cctx, cancel := context.WithTimeout(ctx, t.checkTimeout)
		liveReason = s.live(cctx, t, e)
		cancel()
		if liveReason != "" {
			liveStop = s
			break
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.store.unreserve(reserved)
	e.now = t.now()
	now = e.now
	if liveStop != nil {
		d.retry = e.unreadable
		return blockLocked(liveStop.name, liveReason)
	}
	if t.closed {
		return d, errClosed
	}
	if e.object = objectKey(r.action.Target, e.res); e.object != "" {
		e.keyOn(e.object)
		d.ObjectKey = e.object
		d.RequestID = requestID(r.action.Type, e.object, p.GroupKey, e.startsAt)
	}
	ttl := max(r.cooldown, minDedupTTL)
	if s, reason := t.firstStateStop(e, groupStages(func(*stage) bool { return true })); s != nil {
		if s.name == guardApproval {
			return t.awaitApprovalLocked(e, d, reason) // approvals.go
		}
		if !s.dryRun {
			return blockLocked(s.name, reason)
		}
		t.store.rememberDry(e.keys, e.cks, now.Add(ttl), now, t.keepCooldownLocked())
		d.Guard, d.Reason, d.Outcome = s.name, reason, verdictDryRun
		t.recordLocked(d, true)
		return d, nil
	}

	res := e.res
	rec := &actionRecord{
		RequestID: d.RequestID, Rule: r.name, Action: r.action.Type, Target: r.action.Target,
		Object: g.object, ObjectKey: e.object, GroupKey: p.GroupKey, StartsAt: e.startsAt, Alerts: d.Alerts,
		Status: statusDecided, DecidedAt: now,
		PlanID: res.planID, PlanName: res.planName, Test: r.action.Test && slices.Contains(r.kind.object.Keys, "test"),
		PrevStatus: res.prevStatus, PrevSessionID: res.prevSessionID,
		CdpReplica: res.cdpReplica, VM: res.vm, PointIDs: res.pointIDs, Reason: r.action.Reason,
	}
	if t.store.action(rec.RequestID) != nil {
		// Same request id still in flight: same action, object, group and
		// startsAt. Dedup should have caught it; never send it twice.
		return blockLocked(guardDedup, "an action with this request id is in flight")
	}
	d.Outcome = verdictDecided
	undo := t.store.commit(rec, e.keys, e.cks, now.Add(ttl), now)
	// Several replicas: the claim in the shared store is the last word
	// (coord.go). It is asked without the mutex; the local commit stops
	// concurrent identical notifications meanwhile.
	if t.coord != nil {
		guard, reason, err := t.coordDecideUnlocked(ctx, rec, r, e.keys, e.cks, now.Add(ttl))
		undo = func() { t.undoCoordLocked(rec) }
		if err != nil || guard != "" {
			undo()
			if err != nil {
				t.logger.Error("decision not recorded in the shared store; nothing is called", "rule", r.name, "object", g.object, "request_id", d.RequestID, "err", err)
				d.Outcome, d.Reason = verdictNotRecorded, err.Error()
				return d, err
			}
			d.Outcome = verdictBlocked
			return blockLocked(guard, reason)
		}
	}
	// The audit line (with what the decision adds to the memory, so a lost
	// state file can be rebuilt from it) is on disk before the state, and
	// both before the call.
	if err := t.audit.write(decidedLine{decision: d, Memory: rec.Memory}, true); err != nil {
		undo()
		t.logger.Error("decision not recorded in the audit log; nothing is called", "rule", r.name, "object", g.object, "request_id", d.RequestID, "err", err)
		d.Outcome, d.Reason = verdictNotRecorded, err.Error()
		return d, fmt.Errorf("decision not recorded: %w", err)
	}
	if err := t.saveLocked(); err != nil {
		undo()
		_ = t.audit.write(outcomeLine{actionAudit: rec.audit(now, eventOutcome), Outcome: outcomeAbandoned,
			Message: "not sent: the state file could not be written"}, true)
		_ = t.audit.write(releasedLine(rec, now, "the decision never reached the state file"), true)
		d.Outcome, d.Reason = verdictNotRecorded, err.Error()
		return d, fmt.Errorf("decision not recorded: %w", err)
	}
	t.store.limiter.AllowN(now, 1)
	t.recordLocked(d, false)
	t.startLocked(rec, false)
	return d, nil
}

// ruleLegacyCooldown reports whether an older state file holds a cooldown
// of this rule on this object as written (kept through an upgrade).
func (t *Trigger) ruleLegacyCooldown(r *rule, object string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.store.cooldowns[legacyCooldownKey(r.name, object)]
	return ok
}

// record adds a decision to the metrics, recent decisions, audit log and
// log.
func (t *Trigger) record(d decision) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recordLocked(d, true)
}

func (t *Trigger) recordLocked(d decision, audit bool) {
	switch d.Outcome {
	case verdictBlocked:
		t.m.blocked.WithLabelValues(d.Rule, d.Guard).Inc()
	case verdictAwaiting:
		t.m.blocked.WithLabelValues(d.Rule, guardApproval).Inc()
	case verdictDryRun:
		t.m.blocked.WithLabelValues(d.Rule, guardDryRun).Inc()
		t.m.dryRunActions.WithLabelValues(d.Rule, d.Action).Inc()
	}
	t.recent = append(t.recent, d)
	if len(t.recent) > recentMax {
		t.recent = slices.Delete(t.recent, 0, len(t.recent)-recentMax)
	}
	if audit {
		if err := t.audit.write(d, false); err != nil {
			t.logger.Error("audit log not written", "err", err)
		}
	}
	attrs := []any{"rule", d.Rule, "object", d.Object, "alerts", len(d.Alerts), "group_key", d.GroupKey, "request_id", d.RequestID}
	switch {
	case d.Outcome == verdictDecided:
		t.logger.Warn("failover action decided", append(attrs, "action", d.Action, "target", d.Target)...)
	case d.Outcome == verdictDryRun:
		t.logger.Info("dry-run: failover action not called", append(attrs, "action", d.Action, "target", d.Target, "reason", d.Reason)...)
	case d.Guard == guardMatch || d.Guard == guardResolved:
		t.logger.Debug("alerts blocked", append(attrs, "guard", d.Guard, "reason", d.Reason)...)
	default:
		t.logger.Info("alerts blocked", append(attrs, "guard", d.Guard, "reason", d.Reason)...)
	}
}
