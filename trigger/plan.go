package trigger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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
// the call was made, but a status read soon after the call may still be the
// one from before (an undo of an UndoFailed plan): the plan is judged once
// its status or its last session changed, or once tr.settle passed. An
// async action VSPC no longer keeps (404: 5 minutes after success, 1 hour
// after failure) is not read again; the plan's status says the rest.
func pollVSPCPlan(ctx context.Context, c vspcPlans, rec *actionRecord, tr *tracking,
	end func(p veeam.FailoverPlan, newSession bool) string) (string, string, error) {
	tr.mu.Lock()
	asyncID, asyncDone := rec.AsyncID, rec.AsyncDone
	tr.mu.Unlock()
	if asyncID != "" && !asyncDone {
		aa, err := c.GetAsyncAction(ctx, asyncID)
		switch {
		case errors.Is(err, veeam.ErrNotFound):
			aa.Status = "expired"
		case err != nil:
			return "", "", fmt.Errorf("reading async action %s: %w", asyncID, err)
		}
		switch strings.ToLower(aa.Status) {
		case "succeed", "expired":
			tr.mu.Lock()
			rec.AsyncDone = true
			tr.mu.Unlock()
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
	var last, lastMsg, lastID string
	if p.LastSession != nil {
		last, lastMsg, lastID = p.LastSession.Status, p.LastSession.Message, p.LastSession.ID
	}
	newSession := lastID != "" && !strings.EqualFold(lastID, rec.PrevSessionID)
	changed := newSession || p.Status != rec.PrevStatus
	switch {
	case tr.maybe && !changed && tr.since >= tr.evidence:
		return provedNotRun(ctx, c, rec, tr, p)
	case tr.maybe && !changed:
		// Nothing shows that VSPC ran the call (yet).
		return "", "", nil
	case tr.maybe:
		tr.maybe = false
	case !changed && tr.since < tr.settle:
		return "", "", nil
	}
	outcome := end(p, newSession)
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

// provedNotRun ends a maybe-done VSPC call that left no trace: VSPC keeps an
// async action under the call's X-Request-id once it processed the request
// (its result for 5 minutes, 1 hour after a failure), so a 404 for it, with
// a plan that never left its status or session from before the call, shows
// the call was never processed (a 5xx answered before processing). The
// action is then abandoned as not sent (rec.Unsent). Anything else stays
// uncertain.
func provedNotRun(ctx context.Context, c vspcPlans, rec *actionRecord, tr *tracking, p veeam.FailoverPlan) (string, string, error) {
	if _, err := c.GetAsyncAction(ctx, rec.RequestID); !errors.Is(err, veeam.ErrNotFound) {
		return "", "", err
	}
	tr.mu.Lock()
	rec.Unsent = true
	tr.mu.Unlock()
	return outcomeAbandoned, fmt.Sprintf("not carried out: the call got an error or no answer, VSPC has no async action for its X-Request-id %s and plan %s stayed %s for %s; nothing was done, so the next notification may act again",
		rec.RequestID, p.Name, p.Status, tr.since.Round(time.Millisecond)), nil
}

// sessionOutcome maps a VSPC session status to an outcome.
func sessionOutcome(status string) string {
	switch status {
	case "Success":
		return outcomeSuccess
	case "Warning":
		return outcomeWarning
	}
	return outcomeFailed
}

// sessionEnded reports whether a plan's last session finished.
func sessionEnded(s *veeam.PlanSession) bool {
	if s == nil {
		return false
	}
	switch s.Status {
	case "Success", "Warning", "Failed":
		return true
	}
	return !s.EndTime.IsZero()
}

// taskReader follows Enterprise Manager tasks; *em.Client has it.
type taskReader interface {
	GetTask(ctx context.Context, taskID string) (veeam.Task, error)
	// ListTasks reads the tasks of the current logon session: where a
	// call whose answer was lost finds its task.
	ListTasks(ctx context.Context) ([]veeam.Task, error)
	// LogonGeneration counts logon sessions: a task of an older one can
	// no longer be read.
	LogonGeneration() uint64
}

// emCall makes an Enterprise Manager call, noting first the highest task
// number of the logon session and the session itself, so that a call whose
// answer is lost can still find its task. The handle is returned with the
// error too.
func emCall(ctx context.Context, c taskReader, do func() (veeam.Task, error)) (handle, error) {
	h := handle{taskBaseline: -1}
	if tasks, err := c.ListTasks(ctx); err == nil {
		h.taskBaseline = 0
		for _, t := range tasks {
			h.taskBaseline = max(h.taskBaseline, taskNumber(t.ID))
		}
	}
	h.logonGen = c.LogonGeneration()
	task, err := do()
	if err != nil {
		return h, err
	}
	h.taskID = task.ID
	if task.LogonGeneration != 0 {
		h.logonGen = task.LogonGeneration
	}
	return h, nil
}

// taskNumber is N of an EM task id task-N (0 when not of that form).
func taskNumber(id string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.ToLower(id), "task-"))
	if err != nil {
		return 0
	}
	return n
}

// findTask looks, after an answer that did not say whether EM ran the call,
// for the call's task in the logon session's task list: the one task of
// the operation created after the call's baseline. It reports whether it
// adopted one.
func findTask(ctx context.Context, c taskReader, rec *actionRecord, tr *tracking, operation string) (bool, error) {
	if tr.taskBaseline < 0 || c.LogonGeneration() > tr.logonGen {
		// No baseline, or the logon session of the call is gone with its
		// tasks: nothing to find.
		return false, nil
	}
	tasks, err := c.ListTasks(ctx)
	if err != nil {
		return false, err
	}
	if c.LogonGeneration() > tr.logonGen {
		return false, nil
	}
	var found []veeam.Task
	for _, t := range tasks {
		if strings.EqualFold(t.Operation, operation) && taskNumber(t.ID) > tr.taskBaseline {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		// None yet, or several calls of ours: not provably this one.
		return false, nil
	}
	tr.mu.Lock()
	rec.TaskID = found[0].ID
	tr.mu.Unlock()
	tr.maybe = false
	return true, nil
}

// EM task operations, as Task.Operation names them.
const (
	emOpPlanStart   = "StartFailoverPlan"
	emOpPlanUndo    = "UndoFailoverPlan"
	emOpCdpFailover = "StartFailover"
)

// pollTask reads an Enterprise Manager task once and returns the finished
// task (ok) for the kind to judge. A task of a logon session that ended
// (a re-login since the call) is gone: the action is abandoned at once.
func pollTask(ctx context.Context, c taskReader, rec *actionRecord, tr *tracking, operation string) (task veeam.Task, ok bool, outcome, msg string, err error) {
	if tr.maybe {
		if tr.logonGen > 0 && c.LogonGeneration() > tr.logonGen {
			return task, false, outcomeUncertain, "the call got no clear answer and the logon session that made it ended (a 401 or a re-login), taking its tasks with it: whether EM carried the call out cannot be read; it is not repeated: check " + rec.Object + " in Enterprise Manager", nil
		}
		if found, err := findTask(ctx, c, rec, tr, operation); !found {
			return task, false, "", "", err
		}
	}
	tr.mu.Lock()
	taskID := rec.TaskID
	tr.mu.Unlock()
	if taskID == "" {
		return task, false, outcomeAbandoned, "EM answered without a task id; the outcome cannot be tracked", nil
	}
	gone := func() (veeam.Task, bool, string, string, error) {
		return task, false, outcomeAbandoned, "EM task " + taskID + " belongs to a logon session that ended (the client logged on again); EM no longer shows it, so its outcome cannot be read: check the object in Enterprise Manager", nil
	}
	if tr.logonGen > 0 && c.LogonGeneration() > tr.logonGen {
		return gone()
	}
	task, err = c.GetTask(ctx, taskID)
	if tr.logonGen > 0 && c.LogonGeneration() > tr.logonGen {
		return gone()
	}
	if err != nil || !task.Finished() {
		return task, false, "", "", err
	}
	if task.HasResult && !task.Success {
		return task, false, outcomeFailed, "task " + task.ID + " failed: " + task.Message, nil
	}
	return task, true, "", "", nil
}

// pollPlanTask follows an Enterprise Manager plan start or undo. Its
// finished task only says that EM took the request, and EM's API has no
// plan status or session for it: the outcome is submitted, never success.
func pollPlanTask(ctx context.Context, c taskReader, rec *actionRecord, tr *tracking, operation string) (string, string, error) {
	task, ok, outcome, msg, err := pollTask(ctx, c, rec, tr, operation)
	if !ok {
		return outcome, msg, err
	}
	m := "EM took the request (task " + task.ID
	if task.Message != "" {
		m += ": " + task.Message
	}
	return outcomeSubmitted, m + "); EM's API shows no completion of a failover plan: check plan " + rec.PlanName + " in Enterprise Manager", nil
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
