package trigger

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Approvals (rule key approval: {within: 15m}): a decision that passed every
// guard up to target_state waits for a person instead of calling. It is kept
// in the state file with an id and a deadline, exported as
// veeam_trigger_approvals_pending{rule}, and answered with POST
// /trigger/approvals/{id} (the approver's token). An approval runs the live
// guards again (kill_switch, target_state, rate_limit, concurrency, dry_run)
// before the call; a rejection or the deadline ends it without a call
// (outcomes rejected, expired), and the same alerts are not asked about
// again. An id answers once: a replay is refused.

const (
	// verdictAwaiting is the decision of a rule that asks a person first.
	verdictAwaiting = "awaiting_approval"
	// eventApproval: an approval asked, answered or expired.
	eventApproval = "approval"
	// answeredKeep is how long used approval ids are remembered, so that a
	// replayed answer is told apart from a forged id.
	answeredKeep = 30 * 24 * time.Hour
	// approvalTick bounds how late an approval expires.
	approvalTick = time.Second
)

// Answer states of an approval.
const (
	approvalApproved = "approved"
	approvalRejected = "rejected"
	approvalExpired  = "expired"
)

// approvedGuards are the group stages an approved decision meets again
// (kill_switch, an alert stage, is checked before them). dedup and cooldown
// stop a second action on the object since the question was asked (another
// rule, another approval for another group); waiting for a person committed
// no keys, so they cannot stop the approved decision itself.
var approvedGuards = []string{guardDedup, guardCooldown, guardTargetState, guardRateLimit, guardConcurrency, guardDryRun}

// approvalRecord is a decision waiting for a person. It keeps the alerts so
// that the approved decision is the same one: same object, group key and
// startsAt, hence the same request id.
type approvalRecord struct {
	ID        string    `json:"id"`
	RequestID string    `json:"request_id"`
	Rule      string    `json:"rule"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Object    string    `json:"object"`
	ObjectKey string    `json:"object_key,omitempty"`
	PlanName  string    `json:"plan_name,omitempty"`
	GroupKey  string    `json:"group_key"`
	Alerts    []alert   `json:"alerts"`
	DedupKeys []string  `json:"dedup_keys"`
	AskedAt   time.Time `json:"asked_at"`
	Deadline  time.Time `json:"deadline"`
}

// answeredApproval is a used approval id.
type answeredApproval struct {
	ID    string    `json:"id"`
	State string    `json:"state"`
	By    string    `json:"by,omitempty"`
	At    time.Time `json:"at"`
}

// approvalLine is the audit line of an approval asked, answered or expired.
type approvalLine struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	ID        string    `json:"approval_id"`
	State     string    `json:"state"` // asked, approved, rejected, expired
	Rule      string    `json:"rule"`
	Object    string    `json:"object"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	RequestID string    `json:"request_id"`
	By        string    `json:"by,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Deadline  time.Time `json:"deadline"`
}

func (ap *approvalRecord) line(now time.Time, state, by, reason string) approvalLine {
	return approvalLine{Time: now, Event: eventApproval, ID: ap.ID, State: state, Rule: ap.Rule, Object: ap.Object,
		Action: ap.Action, Target: ap.Target, RequestID: ap.RequestID, By: by, Reason: reason, Deadline: ap.Deadline}
}

// awaitApprovalLocked turns a decision stopped by the approval stage into
// one awaiting a person: a new approval, durable before the answer, or the
// one already waiting for the same request id (Alertmanager's repeats).
// With coordination the approval lives in etcd (approvals_shared.go).
func (t *Trigger) awaitApprovalLocked(e *evaluation, d decision, why string) (decision, error) {
	d.Guard, d.Outcome = guardApproval, verdictAwaiting
	if t.coord != nil {
		return t.coordAwaitApprovalLocked(e, d, why)
	}
	for _, ap := range t.store.approvals {
		if ap.RequestID == d.RequestID {
			d.Reason = fmt.Sprintf("awaiting approval %s until %s", ap.ID, ap.Deadline.UTC().Format(time.RFC3339))
			t.recordLocked(d, true)
			return d, nil
		}
	}
	ap := newApproval(e, d)
	t.store.approvals = append(t.store.approvals, ap)
	if err := t.saveLocked(); err != nil {
		t.store.approvals = slices.DeleteFunc(t.store.approvals, func(a *approvalRecord) bool { return a == ap })
		d.Outcome, d.Reason = verdictNotRecorded, err.Error()
		return d, fmt.Errorf("approval not recorded: %w", err)
	}
	return t.askedLocked(ap, d, why), nil
}

// newApproval is the approval a decision waits for: the alerts and keys of
// the evaluation, with a new id and the rule's deadline.
func newApproval(e *evaluation, d decision) *approvalRecord {
	ap := &approvalRecord{
		ID: rand.Text(), RequestID: d.RequestID, Rule: e.g.rule.name, Action: e.g.rule.action.Type,
		Target: e.g.rule.action.Target, Object: e.g.object, ObjectKey: e.object, PlanName: e.res.planName,
		GroupKey: e.p.GroupKey, DedupKeys: slices.Clone(e.keys), AskedAt: e.now, Deadline: e.now.Add(e.g.rule.approval),
	}
	for _, a := range e.g.acting {
		ap.Alerts = append(ap.Alerts, *a)
	}
	return ap
}

// askedLocked audits and logs an approval made durable, and records the
// decision that waits for it.
func (t *Trigger) askedLocked(ap *approvalRecord, d decision, why string) decision {
	if err := t.audit.write(ap.line(ap.AskedAt, "asked", "", why), true); err != nil {
		t.logger.Error("audit log not written", "err", err)
	}
	d.Reason = fmt.Sprintf("awaiting approval %s until %s: %s", ap.ID, ap.Deadline.UTC().Format(time.RFC3339), why)
	t.recordLocked(d, true)
	t.logger.Warn("failover action awaits a person's approval", "rule", ap.Rule, "object", ap.Object, "action", ap.Action,
		"approval_id", ap.ID, "deadline", ap.Deadline, "request_id", ap.RequestID)
	return d
}

// takeApprovalLocked marks an approval used: no longer waiting, its id
// remembered. Refused (rejected, expired) it also remembers its alerts as
// handled, so the same alerts do not ask again. It returns the undo for a
// state that could not be saved.
func (t *Trigger) takeApprovalLocked(ap *approvalRecord, state, by string, now time.Time) (undo func()) {
	prev := t.store.approvals
	t.store.approvals = slices.DeleteFunc(slices.Clone(prev), func(a *approvalRecord) bool { return a.ID == ap.ID })
	for id, a := range t.store.answered {
		if now.Sub(a.At) > answeredKeep {
			delete(t.store.answered, id)
		}
	}
	t.store.answered[ap.ID] = answeredApproval{ID: ap.ID, State: state, By: by, At: now}
	var added []string
	if state != approvalApproved {
		for _, k := range ap.DedupKeys {
			if _, ok := t.store.dedup[k]; !ok {
				added = append(added, k)
				t.store.dedup[k] = now.Add(minDedupTTL)
			}
		}
	}
	return func() {
		t.store.approvals = prev
		delete(t.store.answered, ap.ID)
		for _, k := range added {
			delete(t.store.dedup, k)
		}
	}
}

// refuseApprovalLocked ends an approval without a call: rejected by a
// person or expired. It is counted as the action's outcome and audited with
// who and why.
func (t *Trigger) refuseApprovalLocked(ap *approvalRecord, state, by, reason string, now time.Time) error {
	undo := t.takeApprovalLocked(ap, state, by, now)
	if err := t.saveLocked(); err != nil {
		undo()
		return err
	}
	t.noteRefusedLocked(ap, state, by, reason, now)
	return nil
}

// noteRefusedLocked audits, counts and logs an approval that ended without
// a call, once it is recorded as used.
func (t *Trigger) noteRefusedLocked(ap *approvalRecord, state, by, reason string, now time.Time) {
	if err := t.audit.write(ap.line(now, state, by, reason), true); err != nil {
		t.logger.Error("audit log not written", "err", err)
	}
	outcome, msg := outcomeRejected, fmt.Sprintf("rejected by %s: %s; nothing was called", by, reason)
	if state == approvalExpired {
		outcome = outcomeExpired
		msg = fmt.Sprintf("not approved by %s (asked %s); nothing was called", ap.Deadline.UTC().Format(time.RFC3339),
			ap.AskedAt.UTC().Format(time.RFC3339))
	}
	t.m.outcomes.WithLabelValues(ap.Rule, ap.Action, outcome).Inc()
	t.noteOutcomeLocked(outcomeLine{actionAudit: actionAudit{Time: now, Event: eventOutcome, Rule: ap.Rule, Object: ap.Object,
		Action: ap.Action, Target: ap.Target, RequestID: ap.RequestID}, Outcome: outcome, Message: msg})
	t.logger.Warn("failover action not approved", "rule", ap.Rule, "object", ap.Object, "approval_id", ap.ID,
		"outcome", outcome, "by", by, "reason", reason)
}

// An approval whose alerts all resolved asks about a disaster that is over:
// it ends as a refusal by Alertmanager, like a person's.
const (
	resolvedBy     = "alertmanager"
	resolvedReason = "alerts resolved"
)

// resolvedInstances are the alerts (labels and startsAt) a notification
// shows resolved.
func resolvedInstances(p *payload) map[string]bool {
	out := map[string]bool{}
	for i := range p.Alerts {
		if a := &p.Alerts[i]; a.Status == statusResolved {
			out[alertInstance(a)] = true
		}
	}
	return out
}

func alertInstance(a *alert) string {
	return a.id() + "\x00" + a.StartsAt.UTC().Format(time.RFC3339Nano)
}

// markResolved marks the approval's alerts that resolved; it reports
// whether it changed any and whether all of them are resolved now. Alerts
// resolve one notification at a time (Alertmanager sends a resolved alert
// once), so the marks are kept with the approval.
func (ap *approvalRecord) markResolved(resolved map[string]bool) (changed, all bool) {
	all = len(ap.Alerts) > 0
	for i := range ap.Alerts {
		a := &ap.Alerts[i]
		if a.Status != statusResolved && resolved[alertInstance(a)] {
			a.Status, changed = statusResolved, true
		}
		all = all && a.Status == statusResolved
	}
	return changed, all
}

// endResolvedApprovals ends the approvals whose alerts have all resolved
// (outcome rejected, by alertmanager), as a rejection ends them.
func (t *Trigger) endResolvedApprovals(p *payload, now time.Time) {
	resolved := resolvedInstances(p)
	if len(resolved) == 0 {
		return
	}
	if t.coord != nil {
		t.coordEndResolvedApprovals(resolved) // approvals_shared.go
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ap := range slices.Clone(t.store.approvals) {
		prev := slices.Clone(ap.Alerts)
		changed, all := ap.markResolved(resolved)
		var err error
		switch {
		case all:
			err = t.refuseApprovalLocked(ap, approvalRejected, resolvedBy, resolvedReason, now)
		case changed:
			err = t.saveLocked()
		}
		if err != nil {
			ap.Alerts = prev
			t.logger.Error("an approval whose alerts resolved could not be recorded", "approval_id", ap.ID, "err", err)
		}
	}
}

// approvalAnswer is the body of POST /trigger/approvals/{id}.
type approvalAnswer struct {
	Approve *bool  `json:"approve"`
	By      string `json:"by"`
	Reason  string `json:"reason"`
}

// answerResult is the answer to an approval or a manual action.
type answerResult struct {
	Status   string    `json:"status"`
	Error    string    `json:"error,omitempty"`
	Approval string    `json:"approval_id,omitempty"`
	State    string    `json:"state,omitempty"`
	Decision *decision `json:"decision,omitempty"`
}

// approvalTake is an approval marked used: ap with the state it ended in,
// or the HTTP status and error when it could not be (ap nil).
type approvalTake struct {
	ap    *approvalRecord
	state string
	now   time.Time
	code  int
	err   string
}

func takeFailed(code int, format string, args ...any) approvalTake {
	return approvalTake{code: code, err: fmt.Sprintf(format, args...)}
}

// answerApproval applies a person's answer. It returns the HTTP status:
// 404 for an id that never waited (forged), 409 for one already used or
// expired (replayed), 500 when the answer could not be made durable (and
// nothing was called), 503 when the shared store cannot be used.
func (t *Trigger) answerApproval(ctx context.Context, id string, ans approvalAnswer) (int, answerResult) {
	res := answerResult{Approval: id}
	take := t.takeLocalApproval
	if t.coord != nil {
		take = t.coordTakeApproval // approvals_shared.go
	}
	tk := take(ctx, id, ans)
	if tk.ap == nil {
		res.Error = tk.err
		return tk.code, res
	}
	ap, now := tk.ap, tk.now
	switch tk.state {
	case approvalExpired:
		res.Error = "approval " + id + " expired at " + ap.Deadline.UTC().Format(time.RFC3339)
		return 409, res
	case approvalRejected:
		res.State = approvalRejected
		return 200, res
	}
	t.mu.Lock()
	if err := t.audit.write(ap.line(now, approvalApproved, ans.By, ans.Reason), true); err != nil {
		t.logger.Error("audit log not written", "err", err)
	}
	t.logger.Warn("failover action approved; its live guards run again before the call", "rule", ap.Rule, "object", ap.Object,
		"approval_id", ap.ID, "by", ans.By, "reason", ans.Reason)
	r := t.ruleLocked(ap.Rule)
	t.mu.Unlock()
	res.State = approvalApproved

	d := decision{Time: now, Event: eventDecision, Rule: ap.Rule, Object: ap.Object, Action: ap.Action, Target: ap.Target,
		GroupKey: ap.GroupKey, RequestID: ap.RequestID, Outcome: verdictBlocked, Alerts: fingerprints(nil)}
	if r == nil || r.action.Type != ap.Action || r.action.Target != ap.Target {
		d.Guard, d.Reason = guardApproval, "approved, but rule "+ap.Rule+" no longer has this action: nothing called"
		t.record(d)
		res.Decision = &d
		return 409, res
	}
	g := &alertGroup{rule: r, object: ap.Object, only: approvedGuards}
	for i := range ap.Alerts {
		g.acting = append(g.acting, &ap.Alerts[i])
	}
	d.Alerts = fingerprints(g.acting)
	p := &payload{Version: "4", GroupKey: ap.GroupKey, Status: statusFiring, Receiver: "approval"}
	code := t.decideForPerson(ctx, p, g, d, now, &res)
	// Stopped by rate_limit or concurrency, the approved decision waits
	// for a token or a slot (pending.go); stopped otherwise it ends.
	if res.Decision.Guard != guardKillSwitch {
		t.keepPending(p, g, res.Decision, nil)
	}
	return code, res
}

// takeLocalApproval marks an approval of the state file used.
func (t *Trigger) takeLocalApproval(_ context.Context, id string, ans approvalAnswer) approvalTake {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var ap *approvalRecord
	for _, a := range t.store.approvals {
		if a.ID == id {
			ap = a
		}
	}
	if ap == nil {
		if a, used := t.store.answered[id]; used {
			return takeFailed(409, "approval %s was already used: %s %s at %s", id, a.State, byText(a.By), a.At.UTC().Format(time.RFC3339))
		}
		return takeFailed(404, "no approval with this id is waiting")
	}
	tk := approvalTake{ap: ap, state: answerState(ap, ans, now), now: now}
	switch tk.state {
	case approvalExpired:
		_ = t.refuseApprovalLocked(ap, approvalExpired, "", "", now)
	case approvalRejected:
		if err := t.refuseApprovalLocked(ap, approvalRejected, ans.By, ans.Reason, now); err != nil {
			return takeFailed(500, "the rejection could not be recorded: %v", err)
		}
	default:
		undo := t.takeApprovalLocked(ap, approvalApproved, ans.By, now)
		if err := t.saveLocked(); err != nil {
			undo()
			return takeFailed(500, "the approval could not be recorded, nothing was called: %v", err)
		}
	}
	return tk
}

// answerState is the state an answer gives an approval at now: expired
// once its deadline passed, whatever the answer.
func answerState(ap *approvalRecord, ans approvalAnswer, now time.Time) string {
	switch {
	case !now.Before(ap.Deadline):
		return approvalExpired
	case !*ans.Approve:
		return approvalRejected
	}
	return approvalApproved
}

func byText(by string) string {
	if by == "" {
		return "(deadline)"
	}
	return "by " + by
}

// approvalLoop expires approvals whose deadline passed, until Close.
func (t *Trigger) approvalLoop() {
	defer t.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(t.expireApprovals())
		t.sweepRetired() // metrics_rules.go
	}
}

// expireApprovals ends the approvals whose deadline passed and returns how
// long to wait before looking again.
func (t *Trigger) expireApprovals() time.Duration {
	if t.coord != nil {
		return t.coordSyncApprovals(true) // approvals_shared.go
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return approvalTick
	}
	now := t.now()
	wait := approvalTick
	for _, ap := range slices.Clone(t.store.approvals) {
		if now.Before(ap.Deadline) {
			wait = min(wait, ap.Deadline.Sub(now))
			continue
		}
		if err := t.refuseApprovalLocked(ap, approvalExpired, "", "", now); err != nil {
			t.logger.Error("an expired approval could not be recorded; trying again", "approval_id", ap.ID, "err", err)
		}
	}
	return max(wait, 10*time.Millisecond)
}

// waitingApprovalsLocked are the approvals waiting for a person: the state
// file's, or with coordination every replica's as last listed from etcd.
func (t *Trigger) waitingApprovalsLocked() []*approvalRecord {
	if t.coord != nil {
		return t.coord.approvals
	}
	return t.store.approvals
}

// approvalJSON is an approval as /trigger shows it.
type approvalJSON struct {
	ID               string    `json:"id"`
	Rule             string    `json:"rule"`
	Action           string    `json:"action"`
	Target           string    `json:"target"`
	Object           string    `json:"object"`
	PlanName         string    `json:"plan_name,omitempty"`
	RequestID        string    `json:"request_id"`
	AskedAt          time.Time `json:"asked_at"`
	Deadline         time.Time `json:"deadline"`
	RemainingSeconds float64   `json:"remaining_seconds"`
	Alerts           []string  `json:"alerts"`
}

func (t *Trigger) approvalsJSONLocked(now time.Time) []approvalJSON {
	aps := t.waitingApprovalsLocked()
	out := make([]approvalJSON, 0, len(aps))
	for _, ap := range aps {
		j := approvalJSON{ID: ap.ID, Rule: ap.Rule, Action: ap.Action, Target: ap.Target, Object: ap.Object, PlanName: ap.PlanName,
			RequestID: ap.RequestID, AskedAt: ap.AskedAt, Deadline: ap.Deadline, RemainingSeconds: max(ap.Deadline.Sub(now).Seconds(), 0)}
		for i := range ap.Alerts {
			j.Alerts = append(j.Alerts, ap.Alerts[i].displayFingerprint())
		}
		out = append(out, j)
	}
	return out
}

// approvalsCollector exports veeam_trigger_approvals_pending{rule} from the
// store at each scrape: every rule's series, at 0 when nothing waits.
type approvalsCollector struct {
	t    *Trigger
	desc *prometheus.Desc
	info *prometheus.Desc
}

func newApprovalsCollector(t *Trigger) *approvalsCollector {
	return &approvalsCollector{t: t, desc: prometheus.NewDesc("veeam_trigger_approvals_pending",
		"Decisions waiting for a person's approval (rule key approval), by rule; /trigger lists their ids and deadlines. With coordination, every replica's approvals (shared in etcd, listed each second).",
		[]string{"rule"}, nil),
		info: prometheus.NewDesc("veeam_trigger_approval_info",
			"A decision waiting for approval, always 1, with what it would act on, so that the page names the object; gone once answered or expired.",
			[]string{"rule", "action", "target", "object", "approval_id"}, nil)}
}

func (c *approvalsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.info }

func (c *approvalsCollector) Collect(ch chan<- prometheus.Metric) {
	c.t.mu.Lock()
	n := map[string]float64{}
	for _, r := range c.t.rules {
		n[r.name] = 0
	}
	var waiting []*approvalRecord
	if c.t.store != nil {
		waiting = c.t.waitingApprovalsLocked()
		for _, a := range waiting {
			n[a.Rule]++
		}
	}
	c.t.mu.Unlock()
	for rule, v := range n {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, rule)
	}
	for _, a := range waiting {
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, a.Rule, a.Action, a.Target, a.Object, a.ID)
	}
}
