package trigger

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

// The object shapes shared by the kinds: each says which action keys name
// the object, how config validates them and how a rule finds the object.

// objectPlan is a failover plan, by name or id, or from an alert label.
var objectPlan = objectShape{
	Keys:    []string{"plan", "plan_label", "allow"},
	Check:   checkPlan,
	Compile: compilePlan,
}

// objectPlanTest is objectPlan plus `test` (VSPC's test mode).
var objectPlanTest = objectShape{
	Keys:    append(slices.Clone(objectPlan.Keys), "test"),
	Check:   checkPlan,
	Compile: compilePlan,
}

// objectReplicas is a set of VBR replicas, by name or id, one replica from an
// alert label, or restore points given by id.
var objectReplicas = objectShape{
	Keys:    []string{"replicas", "replica_label", "replica_point_ids", "reason", "allow"},
	Check:   checkReplicas,
	Compile: compileReplicas,
}

// objectCdpVM is one VM of an Enterprise Manager CDP replica.
var objectCdpVM = objectShape{
	Keys:    []string{"cdp_replica", "vm"},
	Check:   checkCdpVM,
	Compile: compileCdpVM,
}

type problemFunc = func(key, format string, args ...any)

func checkPlan(name string, a *config.Action, problem problemFunc) {
	switch {
	case a.Plan != "" && a.PlanLabel != "":
		problem("plan_label", "plan and plan_label are both set; name the plan one way")
	case a.Plan == "" && a.PlanLabel == "":
		problem("plan", "missing: %s needs plan (name or id) or plan_label with allow", name)
	}
	checkLabelAllow("plan_label", a.PlanLabel, a.Allow, problem)
}

func compilePlan(_ string, a *config.Action) (string, string, error) {
	switch {
	case a.Plan != "" && a.PlanLabel != "":
		return "", "", errors.New("action.plan and action.plan_label are exclusive")
	case a.Plan != "":
		return "", a.Plan, nil
	case a.PlanLabel != "":
		return a.PlanLabel, "", nil
	}
	return "", "", errors.New("action.plan or action.plan_label is required")
}

func checkReplicas(name string, a *config.Action, problem problemFunc) {
	var ways []string
	for _, w := range []struct {
		key string
		set bool
	}{{"replicas", len(a.Replicas) > 0}, {"replica_label", a.ReplicaLabel != ""}, {"replica_point_ids", len(a.ReplicaPointIDs) > 0}} {
		if w.set {
			ways = append(ways, w.key)
		}
	}
	switch len(ways) {
	case 0:
		problem("replicas", "missing: %s needs replicas, replica_label or replica_point_ids", name)
	case 1:
	default:
		problem(ways[1], "%s are set; use exactly one of replicas, replica_label and replica_point_ids", strings.Join(ways, " and "))
	}
	checkEntries("replicas", a.Replicas, problem)
	checkEntries("replica_point_ids", a.ReplicaPointIDs, problem)
	checkLabelAllow("replica_label", a.ReplicaLabel, a.Allow, problem)
}

func compileReplicas(_ string, a *config.Action) (label, fixed string, err error) {
	n := 0
	if len(a.Replicas) > 0 {
		n++
		fixed = joinSorted(a.Replicas)
	}
	if len(a.ReplicaPointIDs) > 0 {
		n++
		fixed = "points:" + joinSorted(a.ReplicaPointIDs)
	}
	if a.ReplicaLabel != "" {
		n++
		label = a.ReplicaLabel
	}
	if n != 1 {
		return "", "", errors.New("exactly one of action.replicas, action.replica_point_ids and action.replica_label is required")
	}
	return label, fixed, nil
}

func checkCdpVM(name string, a *config.Action, problem problemFunc) {
	if a.CdpReplica == "" {
		problem("cdp_replica", "missing: %s needs the CDP replica (name or id)", name)
	}
	if a.VM == "" {
		problem("vm", "missing: %s needs the VM (name or id) of the CDP replica", name)
	}
}

func compileCdpVM(name string, a *config.Action) (string, string, error) {
	if a.CdpReplica == "" || a.VM == "" {
		return "", "", fmt.Errorf("%s needs action.cdp_replica and action.vm", name)
	}
	return "", a.CdpReplica + "/" + a.VM, nil
}

// checkLabelAllow: an object chosen by an alert label must be one of allow.
func checkLabelAllow(labelKey, label string, allow []string, problem problemFunc) {
	if label == "" {
		return
	}
	if len(allow) == 0 {
		problem("allow", "missing: with %s the alert chooses the object, so allow must list the ones it may choose", labelKey)
	}
	checkEntries("allow", allow, problem)
}

func checkEntries(key string, list []string, problem problemFunc) {
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			problem(fmt.Sprintf("%s[%d]", key, i), "empty entry")
		}
	}
}

func joinSorted(ss []string) string {
	c := slices.Clone(ss)
	slices.Sort(c)
	return strings.Join(c, ",")
}
