package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

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
	clients := t.clients
	t.mu.Unlock()

	// The call is not cancelled by Close: its answer (the handle to track)
	// matters more than a fast shutdown, and it is bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), t.callTimeout)
	h, err := call(ctx, clients, rec)
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
	t.store.lastAction[rec.Rule] = now
	t.m.lastAction.WithLabelValues(rec.Rule).Set(float64(now.UnixNano()) / 1e9)
	switch {
	case err == nil:
	case veeam.StatusCode(err) != 0:
		// Veeam answered with an error: the call was refused.
		t.finishLocked(rec, outcomeFailed, "call refused: "+err.Error(), true)
		return false
	case kinds[rec.Action].followUncertain:
		// No usable answer (connection lost, timeout, unreadable body): the
		// call may or may not have reached the target. It is not repeated;
		// the target's own state shows whether it started (if not, the
		// action ends as timeout).
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
func call(ctx context.Context, clients map[string]any, rec *actionRecord) (handle, error) {
	k := kinds[rec.Action]
	if k == nil {
		return handle{}, fmt.Errorf("%w: unknown action %q", errNotSent, rec.Action)
	}
	c, err := k.clientFor(clients, rec.Target)
	if err != nil {
		return handle{}, fmt.Errorf("%w: %w", errNotSent, err)
	}
	return k.call(ctx, c, rec)
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
		clients := t.clients
		t.mu.Unlock()
		ctx, cancel := context.WithTimeout(t.ctx, t.checkTimeout)
		outcome, msg, err := t.pollOnce(ctx, clients, rec)
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
func (t *Trigger) pollOnce(ctx context.Context, clients map[string]any, rec *actionRecord) (outcome, msg string, err error) {
	k := kinds[rec.Action]
	if k == nil {
		return "", "", fmt.Errorf("unknown action %q", rec.Action)
	}
	c, err := k.clientFor(clients, rec.Target)
	if err != nil {
		return "", "", err
	}
	return k.poll(ctx, c, rec, &t.mu)
}

func (t *Trigger) finish(rec *actionRecord, outcome, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finishLocked(rec, outcome, msg, true)
}

// finishLocked records an action's outcome: metrics, audit line (on disk),
// recent outcomes, log, and removal from the state file.
func (t *Trigger) finishLocked(rec *actionRecord, outcome, msg string, save bool) {
	t.releaseLocked(rec, outcome) // release.go: give back what an unsent action took
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
	t.store.removeAction(rec.RequestID)
	if save {
		_ = t.saveLocked()
	}
}
