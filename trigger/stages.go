package trigger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A stage is one guard of the pipeline (DESIGN.md "The guard pipeline").
// The stages are declared once, in order, in pipeline; the decision, the
// veeam_trigger_blocked_total series, /trigger and --trigger.test-payload
// all walk that list. A stage is one of:
//
//   - an alert stage, which looks at one alert and its rule (nil when no
//     rule matches) and runs before alerts are grouped;
//   - a group stage, which looks at the alerts of one rule and object:
//     pure (nothing but the rule and the alerts), state (the trigger's
//     memory, under its mutex) and live (reads the target, without the
//     mutex). A stage may have a state and a live part.
//
// A live read takes time; the state stages before it are checked before the
// read (with their keys reserved) and all state stages again after it.
type stage struct {
	name string
	// noRule: the stage can stop alerts that no rule matches.
	noRule bool
	alert  func(c *alertCheck) string
	pure   func(e *evaluation) string
	state  func(t *Trigger, e *evaluation) string
	live   func(ctx context.Context, t *Trigger, e *evaluation) string
	// dryRun: stopping here is the dry-run verdict, not a block.
	dryRun bool
}

// Guards, in pipeline order.
const (
	guardKillSwitch  = "kill_switch"
	guardMatch       = "match"
	guardResolved    = "resolved"
	guardFor         = "for"
	guardQuorum      = "quorum"
	guardAllow       = "allow"
	guardDedup       = "dedup"
	guardCooldown    = "cooldown"
	guardTargetState = "target_state"
	guardApproval    = "approval"
	guardRateLimit   = "rate_limit"
	guardConcurrency = "concurrency"
	guardDryRun      = "dry_run"
)

// pipeline is the guard order.
var pipeline = []stage{
	{name: guardKillSwitch, noRule: true, alert: func(c *alertCheck) string {
		if c.kill {
			return c.killReason
		}
		return ""
	}},
	{name: guardMatch, noRule: true, alert: func(c *alertCheck) string {
		if c.rule == nil {
			return "no rule matches"
		}
		return ""
	}},
	{name: guardResolved, alert: func(c *alertCheck) string {
		if c.a.Status != statusFiring {
			return "the alert is resolved; only firing alerts act"
		}
		return ""
	}},
	{name: guardFor, alert: func(c *alertCheck) string {
		if c.rule.forDur > 0 && c.now.Sub(c.a.StartsAt) < c.rule.forDur {
			return fmt.Sprintf("firing for less than %s", c.rule.forDur)
		}
		return ""
	}},
	{name: guardQuorum, pure: func(e *evaluation) string {
		_, reason := e.g.quorum()
		return reason
	}},
	{name: guardAllow, pure: func(e *evaluation) string {
		_, reason := e.g.rule.allowed(e.g.object)
		return reason
	}},
	{name: guardDedup, state: func(t *Trigger, e *evaluation) string {
		dry, _ := t.dryRunLocked()
		return t.store.dedupReason(e.keys, e.now, dry)
	}},
	{name: guardCooldown, state: func(t *Trigger, e *evaluation) string {
		dry, _ := t.dryRunLocked()
		return t.store.cooldownReason(e.g.rule.cooldown, e.cks, e.now, dry)
	}},
	{name: guardTargetState, live: func(ctx context.Context, t *Trigger, e *evaluation) string {
		return t.checkTarget(ctx, e)
	}, state: func(t *Trigger, e *evaluation) string {
		return t.conflictLocked(e)
	}},
	// approval: a rule with approval.within waits here for a person
	// (approvals.go); the decision becomes awaiting_approval.
	{name: guardApproval, state: func(t *Trigger, e *evaluation) string {
		if e.g.rule.approval <= 0 {
			return ""
		}
		return fmt.Sprintf("a person must approve this action within %s", e.g.rule.approval)
	}},
	{name: guardRateLimit, state: func(t *Trigger, e *evaluation) string {
		if tokens := t.store.limiter.TokensAt(e.now); tokens < 1 {
			return fmt.Sprintf("rate limit of %d actions per %s reached (%.2f tokens)",
				t.cfg.RateLimit.Actions, time.Duration(t.cfg.RateLimit.Per), tokens)
		}
		return ""
	}},
	{name: guardConcurrency, state: func(t *Trigger, e *evaluation) string {
		if n := len(t.store.actions); n >= t.cfg.MaxConcurrent {
			return fmt.Sprintf("%d actions in flight, max_concurrent is %d", n, t.cfg.MaxConcurrent)
		}
		return ""
	}},
	{name: guardDryRun, dryRun: true, state: func(t *Trigger, _ *evaluation) string {
		_, why := t.dryRunLocked()
		return why
	}},
}

// alertCheck is what an alert stage looks at.
type alertCheck struct {
	a          *alert
	rule       *rule // nil: no rule matches
	now        time.Time
	kill       bool
	killReason string
}

// evaluation is what the group stages look at: one rule and object over the
// alerts of one notification that passed the alert stages.
//
// The memory (dedup, cooldown, request id) is keyed on the action and the
// object, never on the rule: before target_state's live read on the object
// as written (so repeats stop before reading Veeam), after it also on the
// object as Veeam identifies it (objectKey), so that two spellings of one
// object, or two rules on it, are one.
type evaluation struct {
	p        *payload
	g        *alertGroup
	now      time.Time
	startsAt time.Time
	keys     []string      // dedup keys
	cks      []cooldownKey // cooldown keys
	res      resolved      // set by target_state's live part
	object   string        // objectKey of res, once resolved
	// unreadable: target_state stopped because the target could not be
	// read, not because of what it answered (a pending decision retries).
	unreadable bool
}

// keyOn adds the dedup and cooldown keys of the decision on object (as
// written or as resolved).
func (e *evaluation) keyOn(object string) {
	r := e.g.rule
	e.keys = append(e.keys, dedupKeys(r.action.Type, object, e.p.GroupKey, e.startsAt, e.g.acting)...)
	slices.Sort(e.keys)
	e.keys = slices.Compact(e.keys)
	e.cks = append(e.cks, cooldownKey{r.action.Type, object})
}

// writtenObject is the object as the rule or the alert writes it, on its
// target: the key before the live read.
func writtenObject(r *rule, object string) string {
	return r.action.Target + "/written/" + object
}

// objectKey is the object as Veeam identifies it, on its target: the plan id,
// the CDP replica and VM, or the sorted set of VBR restore points (ids,
// lower case). "" when nothing was resolved.
func objectKey(target string, res resolved) string {
	switch {
	case res.planID != "":
		return target + "/plan/" + strings.ToLower(res.planID)
	case res.vm != "":
		return target + "/cdp/" + strings.ToLower(res.cdpReplica) + "/" + strings.ToLower(res.vm)
	case len(res.pointIDs) > 0:
		ids := make([]string, len(res.pointIDs))
		for i, p := range res.pointIDs {
			ids[i] = strings.ToLower(p)
		}
		return target + "/points/" + joinSorted(ids)
	}
	return ""
}

// unreadableTarget tells a target that could not be read (a client error
// while reading or listing: worth reading again) from one that answered
// with a state that refuses the call. The kinds report both as a reason;
// the ones a read error gives start with the read that failed.
func unreadableTarget(reason string) bool {
	return strings.HasPrefix(reason, "reading ") || strings.HasPrefix(reason, "listing ")
}

// firstAlertStop runs the alert stages on one alert; it returns the stage
// that stops it, or nil.
func firstAlertStop(c *alertCheck) (*stage, string) {
	for i := range pipeline {
		s := &pipeline[i]
		if s.alert == nil || (c.rule == nil && !s.noRule) {
			continue
		}
		if reason := s.alert(c); reason != "" {
			return s, reason
		}
	}
	return nil, ""
}

// groupStages returns the group stages of kind has (pure, state or live).
func groupStages(has func(s *stage) bool) []*stage {
	var out []*stage
	for i := range pipeline {
		if s := &pipeline[i]; s.alert == nil && has(s) {
			out = append(out, s)
		}
	}
	return out
}

// offlineStages are the stages --trigger.test-payload cannot run: they
// read the running trigger's memory or the target.
func offlineStages() []string {
	var out []string
	for _, s := range groupStages(func(s *stage) bool { return (s.state != nil || s.live != nil) && !s.dryRun }) {
		out = append(out, s.name)
	}
	return out
}

// onlineStages are the stages --trigger.test-payload runs as the webhook
// does: the alert stages and the pure ones.
func onlineStages() []string {
	var out []string
	for _, s := range pipeline {
		if s.alert != nil || s.pure != nil {
			out = append(out, s.name)
		}
	}
	return out
}

// firstStateStop runs the state stages of stages in order, under t.mu.
func (t *Trigger) firstStateStop(e *evaluation, stages []*stage) (*stage, string) {
	for _, s := range stages {
		if s.state == nil || !e.g.runs(s) {
			continue
		}
		if reason := s.state(t, e); reason != "" {
			return s, reason
		}
	}
	return nil, ""
}

// runs reports whether a group stage applies to the group: every stage for
// alerts from Alertmanager; only its own guards for a manual action or a
// decision a person approved (manual.go, approvals.go).
func (g *alertGroup) runs(s *stage) bool {
	return g.only == nil || slices.Contains(g.only, s.name)
}

// beforeLive are the group stages up to the first one with a live part.
func beforeLive() []*stage {
	var out []*stage
	for _, s := range groupStages(func(*stage) bool { return true }) {
		if s.live != nil {
			break
		}
		out = append(out, s)
	}
	return out
}

// checkTarget is the target_state guard's live part: it reads the target and
// says why it is not in a state to accept the call ("" when it is). It calls
// nothing that changes anything.
func (t *Trigger) checkTarget(ctx context.Context, e *evaluation) string {
	t.mu.Lock()
	clients := t.clients
	t.mu.Unlock()
	r := e.g.rule
	c, err := r.kind.clientFor(clients, r.action.Target)
	if err != nil {
		return err.Error()
	}
	var reason string
	e.res, reason = r.kind.resolve(ctx, c, &r.action, e.g.object)
	e.unreadable = reason != "" && unreadableTarget(reason)
	return reason
}

// conflictLocked is target_state's look at our own state, the object lock:
// the trigger does not act on an object (plan, CDP VM, restore point) that
// any rule has an action in flight on, or that an action ended on without a
// known result (a hold, until its time). EM has no plan status; this is how
// "no task of ours still running" is known.
func (t *Trigger) conflictLocked(e *evaluation) string {
	r, res := e.g.rule, e.res
	if h, ok := t.store.holds[e.object]; ok && e.object != "" && h.Until.After(e.now) {
		return fmt.Sprintf("action %s (%s, rule %s) on this object ended %s; the object stays locked until %s (it may still be running)",
			h.RequestID, h.Action, h.Rule, h.Outcome, h.Until.UTC().Format(time.RFC3339))
	}
	for _, a := range t.store.actions {
		if a.Target != r.action.Target {
			continue
		}
		if e.object != "" && a.ObjectKey == e.object {
			return fmt.Sprintf("action %s (%s, rule %s) on this object is still %s", a.RequestID, a.Action, a.Rule, a.Status)
		}
		switch {
		case res.planID != "" && a.PlanID == res.planID:
			return fmt.Sprintf("action %s (%s, rule %s) on plan %s is still %s", a.RequestID, a.Action, a.Rule, res.planID, a.Status)
		case res.vm != "" && a.CdpReplica == res.cdpReplica && a.VM == res.vm:
			return fmt.Sprintf("action %s (%s, rule %s) on CDP VM %s is still %s", a.RequestID, a.Action, a.Rule, res.vm, a.Status)
		}
		for _, p := range res.pointIDs {
			if slices.Contains(a.PointIDs, p) {
				return fmt.Sprintf("action %s (%s, rule %s) on restore point %s is still %s", a.RequestID, a.Action, a.Rule, p, a.Status)
			}
		}
	}
	return ""
}
