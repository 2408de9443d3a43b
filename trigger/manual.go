package trigger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
)

// A manual action (POST /trigger/actions, the approver's token) runs a
// rule's action on one object by a person's decision, through the guards
// that protect the object and the estate: kill_switch, allow, cooldown,
// target_state, rate_limit, concurrency and dry_run. The alert guards
// (match, resolved, for, quorum, dedup) and approval do not apply: there is
// no alert, and the person is the approval. It has its own request id,
// audit lines and outcome, like any action.

// manualGuards are the group stages a manual action meets (kill_switch, an
// alert stage, is checked before them).
var manualGuards = []string{guardAllow, guardCooldown, guardTargetState, guardRateLimit, guardConcurrency, guardDryRun}

// eventManual: the audit line of a person's request, before its decision.
const eventManual = "manual"

// manualRequest is the body of POST /trigger/actions.
type manualRequest struct {
	Rule   string `json:"rule"`
	Object string `json:"object"`
	By     string `json:"by"`
	Reason string `json:"reason"`
}

// manualLine is the audit line of a manual request.
type manualLine struct {
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`
	Rule     string    `json:"rule"`
	Object   string    `json:"object"`
	GroupKey string    `json:"group_key"`
	By       string    `json:"by"`
	Reason   string    `json:"reason"`
}

// manualAction runs a person's request through the manual guards. It
// returns the HTTP status: 404 for an unknown rule, 400 for an object the
// rule cannot act on, 500 when the decision could not be made durable, 503
// when the shared store could not be used.
func (t *Trigger) manualAction(ctx context.Context, req manualRequest) (int, answerResult) {
	var res answerResult
	t.mu.Lock()
	r := t.ruleLocked(req.Rule)
	t.mu.Unlock()
	if r == nil {
		res.Error = fmt.Sprintf("no rule named %q", req.Rule)
		return 404, res
	}
	object := req.Object
	switch {
	case r.label == "" && object == "":
		object = r.fixedObject
	case r.label == "" && object != r.fixedObject:
		res.Error = fmt.Sprintf("rule %s acts on %q only", r.name, r.fixedObject)
		return 400, res
	case object == "":
		res.Error = fmt.Sprintf("rule %s takes its object from label %s: name the object", r.name, r.label)
		return 400, res
	}
	now := t.now()
	groupKey := "manual/" + rand.Text()
	if err := t.audit.write(manualLine{Time: now, Event: eventManual, Rule: r.name, Object: object, GroupKey: groupKey,
		By: req.By, Reason: req.Reason}, true); err != nil {
		res.Error = "the request could not be audited, nothing was called: " + err.Error()
		return 500, res
	}
	t.logger.Warn("manual failover action requested", "rule", r.name, "object", object, "by", req.By, "reason", req.Reason)
	d := decision{Time: now, Event: eventDecision, Rule: r.name, Object: object, Action: r.action.Type, Target: r.action.Target,
		GroupKey: groupKey, Outcome: verdictBlocked, Alerts: fingerprints(nil),
		RequestID: requestID(r.action.Type, writtenObject(r, object), groupKey, time.Time{}),
		Reason:    fmt.Sprintf("manual action by %s: %s", req.By, req.Reason)}
	g := &alertGroup{rule: r, object: object, only: manualGuards}
	p := &payload{Version: "4", GroupKey: groupKey, Status: statusFiring, Receiver: "manual"}
	return t.decideForPerson(ctx, p, g, d, now, &res), res
}

// decideForPerson decides an action a person asked for (a manual action,
// an approved decision): the kill switch first (an alert stage, which g.only
// does not reach), then g's group stages. It sets res.Decision and returns
// the HTTP status: 503 when the shared store could not be used, 500 when the
// decision could not be made durable; either way nothing was called.
func (t *Trigger) decideForPerson(ctx context.Context, p *payload, g *alertGroup, d decision, now time.Time, res *answerResult) int {
	if kill, why := killSwitch(t.killSwitchPath()); kill {
		d.Guard, d.Reason = guardKillSwitch, why
		t.record(d)
		res.Decision = &d
		return 200
	}
	d, err := t.decide(ctx, p, g, d, now)
	res.Decision = &d
	if err != nil {
		res.Error = err.Error()
		if errors.Is(err, errCoordination) {
			return 503
		}
		return 500
	}
	return 200
}
