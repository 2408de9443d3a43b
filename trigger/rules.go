package trigger

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

// rule is a config rule compiled for matching.
type rule struct {
	name      string
	matchers  labels.Matchers
	forDur    time.Duration
	minAlerts int
	cooldown  time.Duration
	action    config.Action
	kind      *kind
	// label is the alert label that names the object (plan_label or
	// replica_label), "" when the object is fixed in the rule.
	label string
	// fixedObject is the object when label is "".
	fixedObject string
	// quorumBy: the quorum counts distinct values of these labels (nil:
	// distinct label sets).
	quorumBy []string
	// approval is how long a person has to approve a decision; 0: none asked.
	approval time.Duration
}

// compileRules compiles the rules of a loaded config. With clients non-nil
// every rule's target must have a client that can run its kind.
func compileRules(cfg *config.TriggerConfig, clients map[string]any) ([]*rule, error) {
	var errs []error
	seen := map[string]bool{}
	rules := make([]*rule, 0, len(cfg.Rules))
	for i := range cfg.Rules {
		r, err := compileRule(&cfg.Rules[i], clients)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %d (%q): %w", i, cfg.Rules[i].Name, err))
			continue
		}
		if r.approval > 0 && cfg.ApproverToken == "" {
			errs = append(errs, fmt.Errorf("rule %d (%q): approval needs approver_token_file: nobody could approve", i, r.name))
			continue
		}
		if seen[r.name] {
			errs = append(errs, fmt.Errorf("rule %d: duplicate name %q", i, r.name))
			continue
		}
		seen[r.name] = true
		rules = append(rules, r)
	}
	if _, err := parseMatchers(cfg.HeartbeatMatchers); err != nil {
		errs = append(errs, fmt.Errorf("heartbeat_matchers: %w", err))
	}
	if cfg.ApproverToken != "" && cfg.ApproverToken == cfg.WebhookBearerToken {
		errs = append(errs, errors.New("approver_token_file holds the webhook's token: whoever can send alerts could approve failovers"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rules, nil
}

// compileRule refuses what cannot be compiled into a safe rule: a rule with
// no matchers would match every alert, one whose object an alert label
// chooses without allow would let whoever writes labels choose what fails
// over.
func compileRule(c *config.Rule, clients map[string]any) (*rule, error) {
	if c.Name == "" || c.Name == ruleNone {
		return nil, fmt.Errorf("a rule needs a name other than %q", ruleNone)
	}
	r := &rule{
		name:      c.Name,
		forDur:    time.Duration(c.For),
		minAlerts: c.MinAlerts,
		cooldown:  time.Duration(c.Cooldown),
		action:    c.Action,
		kind:      kinds[c.Action.Type],
		quorumBy:  slices.Clone(c.QuorumBy),
	}
	if r.approval = time.Duration(c.Approval.Within); r.approval < 0 {
		return nil, errors.New("approval.within must not be negative")
	}
	if r.forDur < 0 || r.cooldown < 0 {
		return nil, errors.New("for and cooldown must not be negative")
	}
	if len(c.Matchers) == 0 {
		return nil, errors.New("a rule needs at least one matcher")
	}
	r.matchers = make(labels.Matchers, 0, len(c.Matchers))
	for _, s := range c.Matchers {
		m, err := labels.ParseMatcher(s)
		if err != nil {
			return nil, fmt.Errorf("matcher %q: %w", s, err)
		}
		r.matchers = append(r.matchers, m)
	}

	a := &c.Action
	if r.kind == nil {
		return nil, fmt.Errorf("unknown action type %q", a.Type)
	}
	if a.Target == "" {
		return nil, errors.New("action.target is required")
	}
	if clients != nil {
		if _, err := r.kind.clientFor(clients, a.Target); err != nil {
			return nil, fmt.Errorf("action.target %q is not a %s target", a.Target, r.kind.targetType)
		}
	}
	var err error
	if r.label, r.fixedObject, err = r.kind.object.Compile(r.kind.name, a); err != nil {
		return nil, err
	}
	if r.label != "" && len(a.Allow) == 0 {
		return nil, fmt.Errorf("taking the object from label %q needs action.allow", r.label)
	}
	return r, nil
}

// matches reports whether every matcher of the rule holds for the alert.
func (r *rule) matches(a *alert) bool {
	return r.matchers.Matches(a.labelSet())
}

// quorumKey is what the quorum counts an alert as: its label set, or with
// quorum_by the values of those labels, so that two probes from one vantage
// point (differing in another label) count once. An alert that has none of
// the quorum_by labels names no vantage point: "", not counted.
func (r *rule) quorumKey(a *alert) string {
	if len(r.quorumBy) == 0 {
		return a.id()
	}
	parts := make([]string, len(r.quorumBy))
	named := false
	for i, l := range r.quorumBy {
		v := a.Labels[l]
		named = named || v != ""
		parts[i] = l + "=" + strconv.Quote(v)
	}
	if !named {
		return ""
	}
	return strings.Join(parts, ",")
}

// object is what the rule acts on for this alert: the plan, the replica(s)
// or the CDP VM, as written in the rule or in the alert's label. Cooldowns,
// dedup and request ids are keyed by it.
func (r *rule) object(a *alert) string {
	if r.label == "" {
		return r.fixedObject
	}
	return a.Labels[r.label]
}

// allowed reports whether a label-chosen object may be acted on.
func (r *rule) allowed(object string) (bool, string) {
	if r.label == "" {
		if len(r.action.Allow) > 0 && !slices.Contains(r.action.Allow, object) {
			return false, fmt.Sprintf("%q is not in allow", object)
		}
		return true, ""
	}
	if object == "" {
		return false, fmt.Sprintf("the alerts have no label %q", r.label)
	}
	if !slices.Contains(r.action.Allow, object) {
		return false, fmt.Sprintf("label %s=%q is not in allow", r.label, object)
	}
	return true, ""
}

// ruleInfo is a rule as /trigger shows it.
type ruleInfo struct {
	Name      string     `json:"name"`
	Matchers  []string   `json:"matchers"`
	For       string     `json:"for"`
	MinAlerts int        `json:"min_alerts"`
	QuorumBy  []string   `json:"quorum_by,omitempty"`
	Approval  string     `json:"approval_within,omitempty"`
	Cooldown  string     `json:"cooldown"`
	Action    actionInfo `json:"action"`
}

type actionInfo struct {
	Type            string   `json:"type"`
	Target          string   `json:"target"`
	Object          string   `json:"object,omitempty"`
	Plan            string   `json:"plan,omitempty"`
	PlanLabel       string   `json:"plan_label,omitempty"`
	Allow           []string `json:"allow,omitempty"`
	Test            bool     `json:"test,omitempty"`
	Replicas        []string `json:"replicas,omitempty"`
	ReplicaLabel    string   `json:"replica_label,omitempty"`
	ReplicaPointIDs []string `json:"replica_point_ids,omitempty"`
	CdpReplica      string   `json:"cdp_replica,omitempty"`
	VM              string   `json:"vm,omitempty"`
}

func (r *rule) info() ruleInfo {
	ms := make([]string, len(r.matchers))
	for i, m := range r.matchers {
		ms[i] = m.String()
	}
	a := r.action
	return ruleInfo{
		Name:      r.name,
		Matchers:  ms,
		For:       r.forDur.String(),
		MinAlerts: r.minAlerts,
		QuorumBy:  r.quorumBy,
		Approval:  durationOrEmpty(r.approval),
		Cooldown:  r.cooldown.String(),
		Action: actionInfo{
			Type: a.Type, Target: a.Target, Object: r.fixedObject,
			Plan: a.Plan, PlanLabel: a.PlanLabel, Allow: a.Allow, Test: a.Test,
			Replicas: a.Replicas, ReplicaLabel: a.ReplicaLabel, ReplicaPointIDs: a.ReplicaPointIDs,
			CdpReplica: a.CdpReplica, VM: a.VM,
		},
	}
}

func durationOrEmpty(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}
