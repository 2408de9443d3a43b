package trigger

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// planReader reads failover plans; VSPC and Enterprise Manager clients both
// have it.
type planReader interface {
	// ListFailoverPlans resolves a plan given by name.
	ListFailoverPlans(ctx context.Context) ([]veeam.FailoverPlan, error)
	// GetFailoverPlan reads a plan given by id, and its live status.
	GetFailoverPlan(ctx context.Context, planID string) (veeam.FailoverPlan, error)
}

// resolvePlan finds the plan named by object: an id (any case, read
// directly) or an exact name, which must be unique.
func resolvePlan(ctx context.Context, c planReader, object string) (veeam.FailoverPlan, error) {
	if id, err := uuid.Parse(object); err == nil {
		p, err := c.GetFailoverPlan(ctx, id.String())
		if err != nil {
			return p, fmt.Errorf("reading plan %s: %w", id, err)
		}
		if p.ID == "" {
			p.ID = id.String()
		}
		p.ID = strings.ToLower(p.ID)
		return p, nil
	}
	plans, err := c.ListFailoverPlans(ctx)
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

// VSPC plan statuses (veeam-api.md §3.7).
const (
	vspcReady      = "Ready"
	vspcCompleted  = "Completed"
	vspcSuccess    = "Success"
	vspcFailed     = "Failed"
	vspcUndoFailed = "UndoFailed"
)

// vspcPlans is what both VSPC kinds read: plans and async actions.
type vspcPlans interface {
	planReader
	// GetAsyncAction follows a 202 answer.
	GetAsyncAction(ctx context.Context, actionID string) (veeam.AsyncAction, error)
}

// resolveVSPCPlan finds the plan and asks refuse whether its live status
// accepts the call.
func resolveVSPCPlan(ctx context.Context, c planReader, object string, refuse func(p veeam.FailoverPlan) string) (resolved, string) {
	var res resolved
	p, err := resolvePlan(ctx, c, object)
	if err != nil {
		return res, err.Error()
	}
	res.planID, res.planName, res.prevStatus = p.ID, p.Name, p.Status
	if p.LastSession != nil {
		res.prevSessionID = p.LastSession.ID
	}
	return res, refuse(p)
}

// asyncHandle is the handle of a VSPC answer: the async action on 202,
// nothing on 200 (the plan's status is followed).
func asyncHandle(aa *veeam.AsyncAction, err error) (handle, error) {
	if err != nil || aa == nil {
		return handle{}, err
	}
	return handle{asyncID: aa.ID}, nil
}

// pollVSPCPlan follows the async action (when VSPC answered 202) and then the
// plan's status; end says which status ends the action and how ("" while
// it runs). target_state made sure the plan was not in an end status when
// the call was made.
func pollVSPCPlan(ctx context.Context, c vspcPlans, rec *actionRecord, mu sync.Locker,
	end func(status, lastSession string) string) (string, string, error) {
	mu.Lock()
	asyncID, asyncDone := rec.AsyncID, rec.AsyncDone
	mu.Unlock()
	if asyncID != "" && !asyncDone {
		aa, err := c.GetAsyncAction(ctx, asyncID)
		if err != nil {
			return "", "", fmt.Errorf("reading async action %s: %w", asyncID, err)
		}
		switch strings.ToLower(aa.Status) {
		case "succeed":
			mu.Lock()
			rec.AsyncDone = true
			mu.Unlock()
		case "failed", "canceled":
			// The plan's status may say more; fall through to it, but the
			// action did not succeed whatever the plan says now.
			p, err := c.GetFailoverPlan(ctx, rec.PlanID)
			msg := "VSPC async action " + asyncID + " " + strings.ToLower(aa.Status)
			if err == nil && p.LastSession != nil && p.LastSession.Message != "" {
				msg += ": " + p.LastSession.Message
			}
			return outcomeFailed, msg, nil
		default:
			return "", "", nil
		}
	}
	p, err := c.GetFailoverPlan(ctx, rec.PlanID)
	if err != nil {
		return "", "", fmt.Errorf("reading plan %s: %w", rec.PlanID, err)
	}
	var last, lastMsg string
	if p.LastSession != nil {
		last, lastMsg = p.LastSession.Status, p.LastSession.Message
	}
	outcome := end(p.Status, last)
	if outcome == "" {
		return "", "", nil
	}
	s := "plan " + p.Name + " is " + p.Status
	if last != "" {
		s += ", last session " + last
	}
	if lastMsg != "" {
		s += ": " + lastMsg
	}
	return outcome, s, nil
}

// taskReader follows Enterprise Manager tasks.
type taskReader interface {
	GetTask(ctx context.Context, taskID string) (veeam.Task, error)
}

// taskHandle is the handle of an Enterprise Manager answer.
func taskHandle(task veeam.Task, err error) (handle, error) {
	if err != nil {
		return handle{}, err
	}
	return handle{taskID: task.ID}, nil
}

// pollTask reads an Enterprise Manager task once.
func pollTask(ctx context.Context, c taskReader, rec *actionRecord, _ sync.Locker) (string, string, error) {
	if rec.TaskID == "" {
		return outcomeAbandoned, "EM answered without a task id; the outcome cannot be tracked", nil
	}
	task, err := c.GetTask(ctx, rec.TaskID)
	if err != nil {
		return "", "", err
	}
	if !task.Finished() {
		return "", "", nil
	}
	switch {
	case !task.HasResult:
		return outcomeWarning, "task " + task.ID + " finished without a result", nil
	case task.Success:
		return outcomeSuccess, task.Message, nil
	}
	return outcomeFailed, "task " + task.ID + " failed: " + task.Message, nil
}

// resolveEMPlan finds an Enterprise Manager plan. EM has no plan status to
// check: target_state's look at the actions in flight is all there is.
func resolveEMPlan(ctx context.Context, c planReader, object string) (resolved, string) {
	p, err := resolvePlan(ctx, c, object)
	if err != nil {
		return resolved{}, err.Error()
	}
	return resolved{planID: p.ID, planName: p.Name}, ""
}
