package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// startLocked starts the goroutine that sends (status decided) or tracks
// (status sent) an action. resumed marks an action found in the state file
// at start.
func (t *Trigger) startLocked(rec *actionRecord, resumed bool) {
	if t.closed {
		// Stays in the state file: a decided action is abandoned at the
		// next start, a sent one tracked again.
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		if rec.Status == statusDecided && !t.send(rec) {
			return
		}
		t.track(rec, resumed)
	}()
}

// send makes the call. Just before, it checks again that the trigger is
// armed (kill switch, dry-run, disarmed, closing) and makes "sending"
// durable; if either fails the action is abandoned, never sent. It reports
// whether the call was accepted and should be tracked.
func (t *Trigger) send(rec *actionRecord) bool {
	kill, killReason := killSwitch(t.killSwitchPath())
	t.mu.Lock()
	why := killReason
	if !kill {
		if dry, dryWhy := t.dryRunLocked(); dry {
			why = dryWhy
		} else if t.closed {
			why = "the exporter is shutting down"
		}
	}
	if why != "" {
		t.finishLocked(rec, outcomeAbandoned, "not sent: "+why, true)
		t.mu.Unlock()
		return false
	}
	rec.Status, rec.SendingAt = statusSending, t.now()
	if err := t.saveLocked(); err != nil {
		rec.Status = statusDecided
		t.finishLocked(rec, outcomeAbandoned, "not sent: "+err.Error(), true)
		t.mu.Unlock()
		return false
	}
	actors := t.actors
	t.mu.Unlock()

	// The call is not cancelled by Close: its answer (the handle to track)
	// matters more than a fast shutdown, and it is bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), t.callTimeout)
	h, err := t.call(ctx, actors, rec)
	cancel()

	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if err != nil && (errors.Is(err, errNotSent) || errors.Is(err, veeam.ErrClosed)) {
		t.finishLocked(rec, outcomeAbandoned, "not sent: "+err.Error(), true)
		return false
	}
	rec.SentAt = now
	t.m.actions.WithLabelValues(rec.Rule, rec.Action).Inc()
	t.st.lastAction[rec.Rule] = now
	t.m.lastAction.WithLabelValues(rec.Rule).Set(float64(now.UnixNano()) / 1e9)
	switch {
	case err == nil:
	case veeam.StatusCode(err) != 0:
		// Veeam answered with an error: the call was refused.
		t.finishLocked(rec, outcomeFailed, "call refused: "+err.Error(), true)
		return false
	case actionKind(rec.Action) == kindVSPC:
		// No usable answer (connection lost, timeout, unreadable body): the
		// call may or may not have reached VSPC. It is not repeated; the
		// plan's status shows whether it started (if not, the action ends
		// as timeout).
		t.logger.Error("no usable answer to the failover call; following the plan's status to learn whether VSPC received it",
			"rule", rec.Rule, "object", rec.Object, "request_id", rec.RequestID, "err", err)
	default:
		t.finishLocked(rec, outcomeAbandoned, "no usable answer to the call, which may have reached "+rec.Target+
			" (it is not repeated; check the target): "+err.Error(), true)
		return false
	}
	rec.AsyncID, rec.TaskID, rec.Sessions = h.asyncID, h.taskID, h.sessions
	rec.Status = statusSent
	t.logger.Warn("failover call sent", "rule", rec.Rule, "object", rec.Object, "action", rec.Action,
		"target", rec.Target, "request_id", rec.RequestID, "handle", rec.handle())
	// If this write fails the call was still made: track it anyway; after a
	// restart it would count as abandoned (status sending).
	_ = t.saveLocked()
	return true
}

type handle struct {
	asyncID  string
	taskID   string
	sessions []sessionHandle
}

// handle names what tracks the action, for logs and the audit.
func (a *actionRecord) handle() string {
	switch {
	case a.AsyncID != "":
		return "async action " + a.AsyncID
	case a.TaskID != "":
		return "task " + a.TaskID
	case len(a.Sessions) > 0:
		ids := make([]string, len(a.Sessions))
		for i, s := range a.Sessions {
			ids[i] = s.ID
		}
		return "sessions " + strings.Join(ids, ",")
	case a.PlanID != "":
		return "plan " + a.PlanID
	}
	return ""
}

// call makes the failover call, once. Nothing here retries: the clients
// never retry actions either.
func (t *Trigger) call(ctx context.Context, actors Actors, rec *actionRecord) (handle, error) {
	var h handle
	switch actionKind(rec.Action) {
	case kindVSPC:
		act := actors.VSPC[rec.Target]
		if act == nil {
			return h, fmt.Errorf("%w: no VSPC target %q", errNotSent, rec.Target)
		}
		var err error
		var aa *veeam.AsyncAction
		if rec.Action == config.ActionVSPCPlanStart {
			aa, err = act.StartPlan(ctx, rec.PlanID, rec.Test, rec.RequestID)
		} else {
			aa, err = act.UndoFailoverPlan(ctx, rec.PlanID, rec.RequestID)
		}
		if err != nil {
			return h, err
		}
		if aa != nil {
			h.asyncID = aa.ID
		}
	case kindEM:
		act := actors.EM[rec.Target]
		if act == nil {
			return h, fmt.Errorf("%w: no EM target %q", errNotSent, rec.Target)
		}
		var err error
		var id string
		switch rec.Action {
		case config.ActionEMPlanStart:
			task, e := act.StartFailoverPlan(ctx, rec.PlanID, nil)
			id, err = task.ID, e
		case config.ActionEMPlanUndo:
			task, e := act.UndoFailoverPlan(ctx, rec.PlanID)
			id, err = task.ID, e
		case config.ActionEMCdpFailover:
			task, e := act.FailoverCdpVM(ctx, rec.CdpReplica, rec.VM)
			id, err = task.ID, e
		}
		if err != nil {
			return h, err
		}
		h.taskID = id
	case kindVBR:
		act := actors.VBR[rec.Target]
		if act == nil {
			return h, fmt.Errorf("%w: no VBR target %q", errNotSent, rec.Target)
		}
		sessions, err := act.StartFailover(ctx, rec.Action, rec.PointIDs, rec.Reason)
		if err != nil {
			return h, err
		}
		for _, s := range sessions {
			h.sessions = append(h.sessions, sessionHandle{ID: s.ID})
		}
	default:
		return h, fmt.Errorf("%w: unknown action %q", errNotSent, rec.Action)
	}
	return h, nil
}

// errNotSent marks call errors raised before anything was sent.
var errNotSent = errors.New("not sent")

// track follows an action to its end or its deadline (sent time + the
// action_timeout). Close stops it without an outcome: the action stays
// "sent" in the state file and is tracked again after a restart.
func (t *Trigger) track(rec *actionRecord, resumed bool) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	first := true
	failing := 0
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-timer.C:
		}
		t.mu.Lock()
		timeout := time.Duration(t.cfg.ActionTimeout)
		actors := t.actors
		t.mu.Unlock()
		ctx, cancel := context.WithTimeout(t.ctx, t.checkTimeout)
		outcome, msg, err := t.pollOnce(ctx, actors, rec)
		cancel()
		if t.ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && resumed && first && rec.TaskID != "":
			// EM scopes tasks to the logon session that started them: after
			// a restart the task is usually gone.
			t.finish(rec, outcomeAbandoned, "EM task "+rec.TaskID+" cannot be read after a restart (tasks belong to the logon session that started them): "+err.Error())
			return
		case err != nil:
			failing++
			level := slog.LevelDebug
			if failing == 1 {
				level = slog.LevelWarn
			}
			t.logger.Log(t.ctx, level, "reading the state of a failover action failed; retrying",
				"rule", rec.Rule, "request_id", rec.RequestID, "failures", failing, "err", err)
		case outcome != "":
			t.finish(rec, outcome, msg)
			return
		default:
			failing = 0
		}
		if deadline := rec.SentAt.Add(timeout); !t.now().Before(deadline) {
			t.finish(rec, outcomeTimeout, fmt.Sprintf("not finished %s after the call (action_timeout); it may still be running on %s", timeout, rec.Target))
			return
		}
		first = false
		timer.Reset(t.poll)
	}
}

// pollOnce reads the action's handle once. It returns an outcome when the
// action ended, "" while it runs.
func (t *Trigger) pollOnce(ctx context.Context, actors Actors, rec *actionRecord) (outcome, msg string, err error) {
	switch actionKind(rec.Action) {
	case kindVSPC:
		return t.pollVSPC(ctx, actors.VSPC[rec.Target], rec)
	case kindEM:
		act := actors.EM[rec.Target]
		if act == nil {
			return "", "", fmt.Errorf("no EM target %q", rec.Target)
		}
		if rec.TaskID == "" {
			return outcomeAbandoned, "EM answered without a task id; the outcome cannot be tracked", nil
		}
		task, err := act.GetTask(ctx, rec.TaskID)
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
	case kindVBR:
		act := actors.VBR[rec.Target]
		if act == nil {
			return "", "", fmt.Errorf("no VBR target %q", rec.Target)
		}
		if len(rec.Sessions) == 0 {
			return outcomeAbandoned, "VBR answered without sessions; the outcome cannot be tracked", nil
		}
		var msgs []string
		running := false
		for i := range rec.Sessions {
			t.mu.Lock()
			sh := rec.Sessions[i]
			t.mu.Unlock()
			if sh.Result != "" {
				continue
			}
			s, err := act.GetSession(ctx, sh.ID)
			if err != nil {
				return "", "", err
			}
			if s.State != "Stopped" {
				running = true
				continue
			}
			res := s.Result
			if res == "" {
				res = "None"
			}
			if s.Message != "" && res != "Success" {
				msgs = append(msgs, fmt.Sprintf("session %s (%s): %s", s.ID, s.Name, s.Message))
			}
			t.mu.Lock()
			rec.Sessions[i].Result = res
			t.mu.Unlock()
		}
		if running {
			return "", "", nil
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		outcome := outcomeSuccess
		for _, s := range rec.Sessions {
			switch s.Result {
			case "Success":
			case "Warning":
				if outcome == outcomeSuccess {
					outcome = outcomeWarning
				}
			default: // Failed, None (cancelled) or unknown
				outcome = outcomeFailed
			}
		}
		results := make([]string, len(rec.Sessions))
		for i, s := range rec.Sessions {
			results[i] = s.ID + "=" + s.Result
		}
		return outcome, strings.Join(append([]string{"sessions " + strings.Join(results, ", ")}, msgs...), "; "), nil
	}
	return "", "", fmt.Errorf("unknown action %q", rec.Action)
}

// pollVSPC follows the async action (when VSPC answered 202) and then the
// plan's status: start ends in Success/Completed/Failed, undo in
// Ready/UndoFailed (the plan was not in those states when the call was
// made, target_state made sure of that).
func (t *Trigger) pollVSPC(ctx context.Context, act VSPCActor, rec *actionRecord) (string, string, error) {
	if act == nil {
		return "", "", fmt.Errorf("no VSPC target %q", rec.Target)
	}
	t.mu.Lock()
	asyncID, asyncDone := rec.AsyncID, rec.AsyncDone
	t.mu.Unlock()
	if asyncID != "" && !asyncDone {
		aa, err := act.GetAsyncAction(ctx, asyncID)
		if err != nil {
			return "", "", fmt.Errorf("reading async action %s: %w", asyncID, err)
		}
		switch strings.ToLower(aa.Status) {
		case "succeed":
			t.mu.Lock()
			rec.AsyncDone = true
			t.mu.Unlock()
		case "failed", "canceled":
			// The plan's status may say more; fall through to it, but the
			// action did not succeed whatever the plan says now.
			p, err := act.GetFailoverPlan(ctx, rec.PlanID)
			msg := "VSPC async action " + asyncID + " " + strings.ToLower(aa.Status)
			if err == nil && p.LastSession != nil && p.LastSession.Message != "" {
				msg += ": " + p.LastSession.Message
			}
			return outcomeFailed, msg, nil
		default:
			return "", "", nil
		}
	}
	p, err := act.GetFailoverPlan(ctx, rec.PlanID)
	if err != nil {
		return "", "", fmt.Errorf("reading plan %s: %w", rec.PlanID, err)
	}
	var last, lastMsg string
	if p.LastSession != nil {
		last, lastMsg = p.LastSession.Status, p.LastSession.Message
	}
	describe := func() string {
		s := "plan " + p.Name + " is " + p.Status
		if last != "" {
			s += ", last session " + last
		}
		if lastMsg != "" {
			s += ": " + lastMsg
		}
		return s
	}
	if rec.Action == config.ActionVSPCPlanStart {
		switch p.Status {
		case vspcSuccess, vspcCompleted:
			switch last {
			case "Warning":
				return outcomeWarning, describe(), nil
			case "Failed":
				return outcomeFailed, describe(), nil
			}
			return outcomeSuccess, describe(), nil
		case vspcFailed:
			return outcomeFailed, describe(), nil
		}
		return "", "", nil
	}
	switch p.Status {
	case vspcReady:
		return outcomeSuccess, describe(), nil
	case vspcUndoFailed:
		return outcomeFailed, describe(), nil
	}
	return "", "", nil
}

func (t *Trigger) finish(rec *actionRecord, outcome, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finishLocked(rec, outcome, msg, true)
}

// finishLocked records an action's outcome: metrics, audit line (on disk),
// recent outcomes, log, and removal from the state file.
func (t *Trigger) finishLocked(rec *actionRecord, outcome, msg string, save bool) {
	now := t.now()
	var dur float64
	if !rec.SentAt.IsZero() && outcome != outcomeAbandoned {
		dur = now.Sub(rec.SentAt).Seconds()
		t.m.duration.WithLabelValues(rec.Rule, rec.Action).Observe(max(dur, 0))
	}
	t.m.outcomes.WithLabelValues(rec.Rule, rec.Action, outcome).Inc()
	if outcome == outcomeFailed {
		t.m.failures.WithLabelValues(rec.Rule, rec.Action).Inc()
	}
	line := outcomeLine{
		Time: now, Event: eventOutcome, Rule: rec.Rule, Object: rec.Object, Action: rec.Action, Target: rec.Target,
		RequestID: rec.RequestID, Outcome: outcome, Message: msg, Handle: rec.handle(), DurationSeconds: dur,
	}
	if err := t.audit.write(line, true); err != nil {
		t.logger.Error("audit log not written", "err", err)
	}
	t.recentOutcomes = append(t.recentOutcomes, line)
	if len(t.recentOutcomes) > recentMax {
		t.recentOutcomes = slices.Delete(t.recentOutcomes, 0, len(t.recentOutcomes)-recentMax)
	}
	attrs := []any{"rule", rec.Rule, "object", rec.Object, "action", rec.Action, "target", rec.Target,
		"request_id", rec.RequestID, "outcome", outcome, "message", msg}
	switch outcome {
	case outcomeSuccess:
		t.logger.Info("failover action finished", attrs...)
	case outcomeWarning:
		t.logger.Warn("failover action finished", attrs...)
	default:
		t.logger.Error("failover action did not succeed", attrs...)
	}
	t.st.removeAction(rec.RequestID)
	if save {
		_ = t.saveLocked()
	}
}
