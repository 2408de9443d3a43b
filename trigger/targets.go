package trigger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// VSPC plan statuses (veeam-api.md §3.7).
const (
	vspcReady      = "Ready"
	vspcCompleted  = "Completed"
	vspcSuccess    = "Success"
	vspcFailed     = "Failed"
	vspcUndoFailed = "UndoFailed"
)

// vspcUndoable are the failed-over statuses an undo may start from: a
// failover that ended (Success, Completed), a partial one (Failed) and a
// failed undo (UndoFailed), as the simulator and veeam-api.md §4 have it.
var vspcUndoable = []string{vspcSuccess, vspcCompleted, vspcFailed, vspcUndoFailed}

// resolved is what target_state found live: the exact thing the call will
// act on.
type resolved struct {
	planID, planName          string
	prevStatus, prevSessionID string
	cdpReplica, vm            string
	pointIDs                  []string
}

// checkTarget is the target_state guard's live part: it reads the target and
// says why it is not in a state to accept the call ("" when it is). It calls
// nothing that changes anything.
func (t *Trigger) checkTarget(ctx context.Context, r *rule, object string) (resolved, string) {
	t.mu.Lock()
	actors := t.actors
	t.mu.Unlock()
	a := r.action
	var res resolved
	switch r.kind {
	case kindVSPC:
		act := actors.VSPC[a.Target]
		if act == nil {
			return res, fmt.Sprintf("no VSPC target %q", a.Target)
		}
		p, err := resolvePlan(ctx, act.GetFailoverPlan, act.ListFailoverPlans, object)
		if err != nil {
			return res, err.Error()
		}
		res.planID, res.planName, res.prevStatus = p.ID, p.Name, p.Status
		if p.LastSession != nil {
			res.prevSessionID = p.LastSession.ID
		}
		switch a.Type {
		case config.ActionVSPCPlanStart:
			if p.Status != vspcReady {
				return res, fmt.Sprintf("plan %q (%s) is %s, not Ready", p.Name, p.ID, p.Status)
			}
		case config.ActionVSPCPlanUndo:
			if !slices.Contains(vspcUndoable, p.Status) {
				return res, fmt.Sprintf("plan %q (%s) is %s, not failed over (%s)", p.Name, p.ID, p.Status, strings.Join(vspcUndoable, ", "))
			}
		}
	case kindEM:
		act := actors.EM[a.Target]
		if act == nil {
			return res, fmt.Sprintf("no EM target %q", a.Target)
		}
		if a.Type == config.ActionEMCdpFailover {
			// The client API has no way to read a CDP replica VM; the
			// in-flight check below is all there is.
			res.cdpReplica, res.vm = strings.ToLower(a.CdpReplica), strings.ToLower(a.VM)
			break
		}
		p, err := resolvePlan(ctx, act.GetFailoverPlan, act.ListFailoverPlans, object)
		if err != nil {
			return res, err.Error()
		}
		res.planID, res.planName = p.ID, p.Name
	case kindVBR:
		act := actors.VBR[a.Target]
		if act == nil {
			return res, fmt.Sprintf("no VBR target %q", a.Target)
		}
		op := vbrOperations[a.Type]
		var err error
		if len(a.ReplicaPointIDs) > 0 {
			res.pointIDs, err = checkPoints(ctx, act, a.ReplicaPointIDs, op)
		} else {
			names := a.Replicas
			if r.label != "" {
				names = []string{object}
			}
			res.pointIDs, err = resolveReplicas(ctx, act, names, op)
		}
		if err != nil {
			return res, err.Error()
		}
	}
	return res, ""
}

// conflictLocked is target_state's look at our own state: the trigger does
// not act on a plan, CDP VM or restore point it has an action in flight on
// (EM has no plan status; this is how "no task of ours still running" is
// known).
func (t *Trigger) conflictLocked(r *rule, res resolved) string {
	for _, a := range t.st.actions {
		if a.Target != r.action.Target {
			continue
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

// resolvePlan finds the plan named by object: an id (any case, read
// directly) or an exact name, which must be unique.
func resolvePlan(ctx context.Context, get func(context.Context, string) (veeam.FailoverPlan, error),
	list func(context.Context) ([]veeam.FailoverPlan, error), object string) (veeam.FailoverPlan, error) {
	if id, err := uuid.Parse(object); err == nil {
		p, err := get(ctx, id.String())
		if err != nil {
			return p, fmt.Errorf("reading plan %s: %w", id, err)
		}
		if p.ID == "" {
			p.ID = id.String()
		}
		p.ID = strings.ToLower(p.ID)
		return p, nil
	}
	plans, err := list(ctx)
	if err != nil {
		return veeam.FailoverPlan{}, fmt.Errorf("listing plans to find %q: %w", object, err)
	}
	var found []veeam.FailoverPlan
	for _, p := range plans {
		if p.Name == object {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return veeam.FailoverPlan{}, fmt.Errorf("no plan named %q", object)
	case 1:
		p := found[0]
		if p.ID == "" {
			return p, fmt.Errorf("plan %q has no id", object)
		}
		p.ID = strings.ToLower(p.ID)
		return p, nil
	}
	return veeam.FailoverPlan{}, fmt.Errorf("%d plans are named %q; name the plan by id", len(found), object)
}

// resolveReplicas finds each replica (id or unique name) and its newest
// restore point that allows the operation. Every replica must have one:
// a partial failover of a set is not something to decide automatically.
func resolveReplicas(ctx context.Context, act VBRActor, names []string, op string) ([]string, error) {
	all, err := act.ListReplicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing replicas: %w", err)
	}
	var pointIDs []string
	for _, name := range names {
		var found []veeam.Replica
		for _, r := range all {
			if strings.EqualFold(r.ID, name) || r.Name == name {
				found = append(found, r)
			}
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("no replica %q", name)
		case 1:
		default:
			return nil, fmt.Errorf("%d replicas match %q; name the replica by id", len(found), name)
		}
		rep := found[0]
		points, err := act.ListReplicaPointsOf(ctx, rep.ID)
		if err != nil {
			return nil, fmt.Errorf("listing restore points of replica %q: %w", name, err)
		}
		var best *veeam.ReplicaPoint
		for i := range points {
			p := &points[i]
			if p.Allows(op) && (best == nil || p.CreationTime.After(best.CreationTime)) {
				best = p
			}
		}
		if best == nil {
			return nil, fmt.Errorf("replica %q (%s, state %s) has no restore point that allows %s", name, rep.ID, rep.State, op)
		}
		pointIDs = append(pointIDs, strings.ToLower(best.ID))
	}
	if len(pointIDs) == 0 {
		return nil, errors.New("no replicas to act on")
	}
	return pointIDs, nil
}

// checkPoints checks that every given restore point allows the operation.
func checkPoints(ctx context.Context, act VBRActor, ids []string, op string) ([]string, error) {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		p, err := act.GetReplicaPoint(ctx, strings.ToLower(id))
		if err != nil {
			return nil, fmt.Errorf("reading restore point %s: %w", id, err)
		}
		if !p.Allows(op) {
			return nil, fmt.Errorf("restore point %s (state %s) does not allow %s", id, p.State, op)
		}
		out = append(out, strings.ToLower(id))
	}
	return out, nil
}
