package trigger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net/http"
	"os"
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
		tr := &tracking{mu: &t.mu, taskBaseline: -1}
		if rec.Status == statusDecided && !t.send(rec, tr) {
			return
		}
		t.track(rec, tr, resumed)
	}()
}

// Bounds of the second try of a refused call.
const (
	// maxRetryAfter: a 429 whose retry-after is longer is not retried.
	maxRetryAfter = 30 * time.Second
	// defaultRetryAfter: the wait after a 429 that names none.
	defaultRetryAfter = time.Second
	// idempotencyWindow: VSPC replays the first answer to an X-Request-id
	// for 5 minutes; a resend after that could run the call twice. A
	// margin is kept for the resend's own travel.
	idempotencyWindow = 5*time.Minute - 30*time.Second
	// resendPause: before resending an idempotent call whose answer did
	// not say whether it ran.
	resendPause = time.Second
)

// evidenceWindow bounds how long an action whose call got an answer that
// does not say whether Veeam ran it is watched for evidence that it did:
// without any by then it ends uncertain.
func evidenceWindow(timeout time.Duration) time.Duration { return min(timeout, time.Minute) }

// settleWindow bounds how long a status from before the call is not judged
// (it may not have been updated yet).
func settleWindow(timeout time.Duration) time.Duration { return min(timeout/2, 30*time.Second) }

// send makes the call. Before it, and before a second call, it checks again
// that the trigger may call (lockIfSendable); before the first it also
// makes "sending" durable. If either fails the action is abandoned, never
// sent (a resend after a maybe-done answer is skipped instead: tracking
// decides). It reports whether the action should be tracked.
//
// What the answer says decides what follows:
//   - accepted: tracked by its handle;
//   - 429: Veeam refused without doing anything; tried once more after its
//     retry-after (when at most maxRetryAfter), then abandoned as not sent
//     (rec.Unsent: its cooldown, dedup keys and token are released);
//   - another 4xx but 401: refused, failed;
//   - 5xx, 401, no usable answer: maybe done. Never resent, except an
//     idempotent call (VSPC, X-Request-id) within Veeam's replay window;
//     then tracked through state that does not depend on the answer
//     (tr.maybe) until evidenceWindow, else uncertain.
func (t *Trigger) send(rec *actionRecord, tr *tracking) bool {
	if why := t.lockIfSendable(rec); why != "" {
		rec.Unsent = true
		t.finishLocked(rec, outcomeAbandoned, "not sent: "+why, true)
		t.mu.Unlock()
		return false
	}
	rec.Status, rec.SendingAt = statusSending, t.now()
	if err := t.saveLocked(); err != nil {
		rec.Status, rec.Unsent = statusDecided, true
		t.finishLocked(rec, outcomeAbandoned, "not sent: "+err.Error(), true)
		t.mu.Unlock()
		return false
	}
	clients := t.clients
	t.mu.Unlock()

	h, err := t.callOnce(clients, rec, time.Time{})
	switch {
	case err == nil || errors.Is(err, errNotSent) || errors.Is(err, veeam.ErrClosed):
	case veeam.StatusCode(err) == http.StatusTooManyRequests:
		wait := retryAfter(err)
		if wait > maxRetryAfter || !t.pause(wait) {
			break
		}
		// The wait may have outlived the arming or the lease: the first
		// call was refused unprocessed, so the action ends not sent.
		if why := t.lockIfSendable(rec); why != "" {
			rec.Unsent = true
			t.finishLocked(rec, outcomeAbandoned, "not sent: "+rec.Target+" refused the call without carrying it out (429) and it was not sent again: "+why, true)
			t.mu.Unlock()
			return false
		}
		t.mu.Unlock()
		t.logger.Warn("Veeam refused the failover call with 429; sending it once more", "rule", rec.Rule, "object", rec.Object,
			"request_id", rec.RequestID, "after", wait, "err", err)
		h, err = t.callOnce(clients, rec, time.Time{})
	case maybeDone(err) && kinds[rec.Action].idempotent && t.now().Add(resendPause).Sub(rec.SendingAt) < idempotencyWindow:
		// VSPC replays the first answer to this X-Request-id if it ran the
		// call, or runs it now if it did not: never twice. Not resent when
		// the trigger may no longer call: the first call may have run, so
		// tracking decides.
		if !t.pause(resendPause) {
			break
		}
		why := t.lockIfSendable(rec)
		t.mu.Unlock()
		if why != "" {
			t.logger.Warn("no clear answer to the failover call; not resending it", "rule", rec.Rule, "object", rec.Object,
				"request_id", rec.RequestID, "reason", why, "err", err)
			break
		}
		t.logger.Warn("no clear answer to the failover call; resending it with the same X-Request-id within VSPC's replay window",
			"rule", rec.Rule, "object", rec.Object, "request_id", rec.RequestID, "err", err)
		// The resend must end inside the window too.
		h2, err2 := t.callOnce(clients, rec, rec.SendingAt.Add(idempotencyWindow))
		if err2 == nil || maybeDone(err2) {
			h, err = h2, err2
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if err != nil && (errors.Is(err, errNotSent) || errors.Is(err, veeam.ErrClosed)) {
		rec.Unsent = true
		t.finishLocked(rec, outcomeAbandoned, "not sent: "+err.Error(), true)
		return false
	}
	if veeam.StatusCode(err) == http.StatusTooManyRequests {
		// Throttled before anything was done (twice, or with a
		// retry-after too long to wait).
		rec.Unsent = true
		t.finishLocked(rec, outcomeAbandoned, "not sent: "+rec.Target+" refused the call without carrying it out (429, too many requests); nothing was done, so the next notification may act again: "+err.Error(), true)
		return false
	}
	rec.SentAt = now
	t.m.actions.WithLabelValues(rec.Rule, rec.Action).Inc()
	t.store.lastAction[rec.Rule] = now
	t.m.lastAction.WithLabelValues(rec.Rule).Set(float64(now.UnixNano()) / 1e9)
	t.m.lastActionInfo.DeletePartialMatch(prometheus.Labels{"rule": rec.Rule})
	t.m.lastActionInfo.WithLabelValues(rec.Rule, rec.Action, rec.Target, rec.Object).Set(1)
	tr.logonGen, tr.taskBaseline = h.logonGen, h.taskBaseline
	switch {
	case err == nil:
	case maybeDone(err):
		// The answer does not say whether Veeam ran the call. It is not
		// repeated; state that does not depend on the answer says.
		tr.maybe = true
		t.logger.Error("the failover call got no clear answer and may have been carried out; it is not repeated, following the target's state",
			"rule", rec.Rule, "object", rec.Object, "target", rec.Target, "request_id", rec.RequestID, "err", err)
	default:
		// Veeam answered that it would not do it (400, 403, 404, 409…).
		t.finishLocked(rec, outcomeFailed, "call refused: "+err.Error(), true)
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

// callOnce makes the call once under the call timeout, and before
// deadline (t.now's clock) unless it is zero. It is not cancelled by Close:
// its answer (the handle to track) matters more than a fast shutdown, and
// it is bounded.
func (t *Trigger) callOnce(clients map[string]any, rec *actionRecord, deadline time.Time) (handle, error) {
	timeout := t.callTimeout
	if !deadline.IsZero() {
		timeout = min(timeout, deadline.Sub(t.now()))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), timeout)
	defer cancel()
	return call(ctx, clients, rec)
}

// lockIfSendable is the check before every call: the trigger is armed (no
// kill switch, not dry-run, not closing) and, with several replicas, this
// one still owns the action (coordFence). It returns with t.mu held, and
// why the call must not go ("" when it may).
func (t *Trigger) lockIfSendable(rec *actionRecord) string {
	kill, why := killSwitch(t.killSwitchPath())
	if !kill {
		why = t.coordFence(rec) // coord.go: several replicas
	}
	t.mu.Lock()
	if why != "" {
		return why
	}
	if dry, dryWhy := t.dryRunLocked(); dry {
		return dryWhy
	}
	if t.closed {
		return "the exporter is shutting down"
	}
	return ""
}

// pause waits d, or reports false when the trigger closes first.
func (t *Trigger) pause(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// maybeDone reports whether an error answer to an action leaves open
// whether Veeam carried it out: a server error (VSPC 520 included, which
// may come after the work), a 401 to the call itself (the EM and VBR
// clients do not resend it), a 408, or no usable answer at all.
func maybeDone(err error) bool {
	switch code := veeam.StatusCode(err); {
	case err == nil:
		return false
	case code == 0, code == http.StatusUnauthorized, code == http.StatusRequestTimeout, code >= 500:
		return true
	}
	return false
}

// retryAfter is a 429's retry-after when the client reports it (VSPC),
// else defaultRetryAfter.
func retryAfter(err error) time.Duration {
	var ve *veeam.APIError
	if errors.As(err, &ve) && ve.RetryAfter > 0 {
		return ve.RetryAfter
	}
	return defaultRetryAfter
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
// "sent" in the state file and is tracked again after a restart. An action
// whose target a reload removed ends at once.
func (t *Trigger) track(rec *actionRecord, tr *tracking, resumed bool) {
	if resumed && t.outcomeWritten(rec) {
		return
	}
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
		if t.coordStaleLocked(rec) {
			// Claimed under an etcd session that ended: the adopting
			// replica tracks it (coord.go).
			t.mu.Unlock()
			return
		}
		timeout := time.Duration(t.cfg.ActionTimeout)
		clients := t.clients
		t.mu.Unlock()
		tr.since = t.now().Sub(rec.SentAt)
		tr.settle, tr.evidence = settleWindow(timeout), evidenceWindow(timeout)
		ctx, cancel := context.WithTimeout(t.ctx, t.checkTimeout)
		outcome, msg, err := t.pollOnce(ctx, clients, rec, tr)
		cancel()
		if t.ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, errTargetGone):
			t.finish(rec, outcomeAbandoned, "target removed by reload: "+err.Error()+"; the action may still be running there and is no longer tracked: check "+rec.Target)
			return
		case err != nil && resumed && first && rec.TaskID != "" && len(rec.Sessions) == 0:
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
		if tr.maybe && tr.since >= tr.evidence {
			t.finish(rec, outcomeUncertain, fmt.Sprintf("the call got no clear answer (an error or none) and for %s nothing on %s showed whether it was carried out; it is not repeated: check %s", tr.evidence, rec.Target, rec.Object))
			return
		}
		// Judged on the time the poll was made for, as the evidence window
		// is: a slow poll must not turn "not carried out" into a timeout.
		if tr.since >= timeout {
			t.finish(rec, outcomeTimeout, fmt.Sprintf("not finished %s after the call (action_timeout); it may still be running on %s", timeout, rec.Target))
			return
		}
		first = false
		timer.Reset(t.poll)
	}
}

// errTargetGone: the action's target is no longer configured (a reload).
var errTargetGone = errors.New("target gone")

// pollOnce reads the action's handle once. It returns an outcome when the
// action ended, "" while it runs.
func (t *Trigger) pollOnce(ctx context.Context, clients map[string]any, rec *actionRecord, tr *tracking) (outcome, msg string, err error) {
	k := kinds[rec.Action]
	if k == nil {
		return "", "", fmt.Errorf("unknown action %q", rec.Action)
	}
	c, err := k.clientFor(clients, rec.Target)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", errTargetGone, err)
	}
	return k.poll(ctx, c, rec, tr)
}

// outcomeWritten handles an action found "sent" in the state file whose
// outcome is already in the audit log: the exporter stopped (or could not
// write the state file) between the two. It is dropped from the state
// without a second outcome.
func (t *Trigger) outcomeWritten(rec *actionRecord) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !auditHasOutcome(t.cfg.AuditLog, rec.RequestID) {
		return false
	}
	t.logger.Info("the outcome of this action is in the audit log already; dropping it from the state file",
		"rule", rec.Rule, "object", rec.Object, "request_id", rec.RequestID)
	t.store.removeAction(rec.RequestID)
	_ = t.saveLocked()
	return true
}

// auditHasOutcome reports whether the audit log holds an outcome line for
// the request id. It reads the whole log: used only for actions resumed at
// start.
func auditHasOutcome(path, requestID string) bool {
	if path == "" {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	needle := []byte(requestID)
	for sc.Scan() {
		if !bytes.Contains(sc.Bytes(), needle) {
			continue
		}
		var l struct {
			Event     string
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Event == eventOutcome && l.RequestID == requestID {
			return true
		}
	}
	return false
}

func (t *Trigger) finish(rec *actionRecord, outcome, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finishLocked(rec, outcome, msg, true)
}

// noteOutcomeLocked writes an outcome's audit line (on disk) and keeps it
// among the recent outcomes.
func (t *Trigger) noteOutcomeLocked(line outcomeLine) {
	if err := t.audit.write(line, true); err != nil {
		t.logger.Error("audit log not written", "err", err)
	}
	t.recentOutcomes = append(t.recentOutcomes, line)
	if len(t.recentOutcomes) > recentMax {
		t.recentOutcomes = slices.Delete(t.recentOutcomes, 0, len(t.recentOutcomes)-recentMax)
	}
}

// finishLocked records an action's outcome: metrics, audit line (on disk),
// recent outcomes, log, and removal from the state file.
//
// save is false only at start-up (resumed and reconciled actions): an
// outcome the audit log holds already, written before a crash that kept
// the state file from following, is not written twice.
func (t *Trigger) finishLocked(rec *actionRecord, outcome, msg string, save bool) {
	if !save && auditHasOutcome(t.cfg.AuditLog, rec.RequestID) {
		// Its released line, if any, is in the audit log too.
		if rec.Status == statusDecided || rec.Unsent {
			t.forgetLocked(rec)
		}
		t.store.removeAction(rec.RequestID)
		return
	}
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
	line := outcomeLine{actionAudit: rec.audit(now, eventOutcome), Outcome: outcome, Message: msg, Handle: rec.handle(), DurationSeconds: dur}
	t.noteOutcomeLocked(line)
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
