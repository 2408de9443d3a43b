package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/coordination"
)

// Approvals with trigger.coordination.etcd (issue 18): an approval is a
// shared record, so that any replica lists it, any replica answers it and
// a replica that stops (or restarts) loses none.
//
//   - approvals/<id> holds the record and, once used, its answer: a used
//     id stays answered (a replay is 409 on every replica) until it is
//     answeredKeep old.
//   - approval-requests/<request id> holds the id of the approval asked for
//     that decision, so that replicas receiving the same notification ask
//     one question. Both are written in one transaction that fails if
//     another replica asked first; the loser shows the winner's id.
//   - An answer (approve, reject, or the deadline) is a compare-and-swap on
//     the record's mod revision: of two replicas answering at once one
//     wins, the other answers 409 and calls nothing. A refusal writes the
//     alerts' shared dedup keys in the same transaction, so no replica asks
//     about them again. An approval is then decided on the replica that
//     answered, through the usual claim.
//   - Every replica expires due approvals; the compare-and-swap makes one of
//     them record `expired` (and count and audit it).
//   - veeam_trigger_approvals_pending and /trigger show every replica's
//     waiting approvals as listed from etcd within the last second (/trigger
//     lists them again when it is read).

func approvalKey(id string) string       { return "approvals/" + id }
func approvalIndexKey(rid string) string { return "approval-requests/" + rid }

// sharedApproval is an approval in etcd: the replica that asked, the
// record and, once used, the answer.
type sharedApproval struct {
	Owner      string            `json:"owner"`
	Record     *approvalRecord   `json:"record"`
	Answer     *answeredApproval `json:"answer,omitempty"`
	AnsweredOn string            `json:"answered_on,omitempty"`
}

func decodeShared(v []byte) (sharedApproval, bool) {
	var sa sharedApproval
	if json.Unmarshal(v, &sa) != nil || sa.Record == nil || sa.Record.ID == "" {
		return sa, false
	}
	return sa, true
}

// coordAwaitApprovalLocked is awaitApprovalLocked with the approvals in
// etcd. It runs under the Trigger's mutex, as the shared Save does.
func (t *Trigger) coordAwaitApprovalLocked(e *evaluation, d decision, why string) (decision, error) {
	c := t.coord
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), coordOpTimeout)
	defer cancel()
	fail := func(err error) (decision, error) {
		d.Outcome, d.Reason = verdictNotRecorded, err.Error()
		return d, fmt.Errorf("approval not recorded: %w: %w", errCoordination, err)
	}
	// A refusal on any replica (or an action decided there) made these
	// alerts handled: they are not asked about again.
	var names []string
	for _, k := range e.keys {
		names = append(names, dedupKey(k))
	}
	got, err := c.getAll(ctx, names)
	if err != nil {
		return fail(err)
	}
	for _, k := range e.keys {
		var sd sharedDedup
		if v, ok := got[dedupKey(k)]; ok && json.Unmarshal(v, &sd) == nil && sd.Until.After(e.now) {
			d.Guard, d.Outcome = guardDedup, verdictBlocked
			d.Reason = fmt.Sprintf("already handled for this alert group and startsAt (request id %s, replica %s)", sd.RequestID, sd.Owner)
			t.recordLocked(d, true)
			return d, nil
		}
	}
	for range 3 {
		idx, found, err := c.st.Get(ctx, approvalIndexKey(d.RequestID))
		if err != nil {
			return fail(err)
		}
		var rev int64
		if found {
			rev = idx.ModRevision
			ex, ok, err := c.st.Get(ctx, approvalKey(string(idx.Value)))
			if err != nil {
				return fail(err)
			}
			if sa, valid := decodeShared(ex.Value); ok && valid && sa.Answer == nil {
				d.Reason = fmt.Sprintf("awaiting approval %s until %s (asked by replica %s)", sa.Record.ID,
					sa.Record.Deadline.UTC().Format(time.RFC3339), sa.Owner)
				t.recordLocked(d, true)
				return d, nil
			}
			// The approval it names was used (an approval whose call a
			// guard then stopped) or is gone: this decision asks anew.
		}
		ap := newApproval(e, d)
		data, err := json.Marshal(sharedApproval{Owner: c.st.ID(), Record: ap})
		if err != nil {
			return fail(err)
		}
		won, err := c.st.UpdateWith(ctx, approvalIndexKey(d.RequestID), []byte(ap.ID), rev, map[string][]byte{approvalKey(ap.ID): data})
		if err != nil {
			return fail(err)
		}
		if !won {
			continue // another replica asked meanwhile: show its approval
		}
		c.approvals = append(c.approvals, ap)
		return t.askedLocked(ap, d, why), nil
	}
	return fail(coordination.ErrContention)
}

// coordTakeApproval marks a shared approval used with a person's answer.
func (t *Trigger) coordTakeApproval(ctx context.Context, id string, ans approvalAnswer) approvalTake {
	if err := t.coordReady(); err != nil {
		return takeFailed(503, "%v; nothing was answered", err)
	}
	state := approvalRejected
	if *ans.Approve {
		state = approvalApproved
	}
	return t.coordEndApproval(ctx, id, state, ans.By, ans.Reason)
}

// coordEndApproval ends a shared approval with state (expired whatever
// state once its deadline passed) if no replica ended it first. A refused
// one is audited and counted here; an approved one is decided by the
// caller.
func (t *Trigger) coordEndApproval(ctx context.Context, id, state, by, reason string) approvalTake {
	c := t.coord
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), coordOpTimeout)
	defer cancel()
	e, found, err := c.st.Get(ctx, approvalKey(id))
	if err != nil {
		return takeFailed(503, "%v: %v; nothing was answered", errCoordination, err)
	}
	sa, valid := decodeShared(e.Value)
	switch {
	case !found:
		return takeFailed(404, "no approval with this id is waiting")
	case !valid:
		return takeFailed(500, "the shared record of approval %s cannot be read; nothing was answered", id)
	case sa.Answer != nil:
		return usedTake(id, sa)
	}
	now := t.now()
	if !now.Before(sa.Record.Deadline) {
		state, by, reason = approvalExpired, "", ""
	}
	ap := sa.Record
	sa.Answer, sa.AnsweredOn = &answeredApproval{ID: id, State: state, By: by, At: now}, c.st.ID()
	data, err := json.Marshal(sa)
	if err != nil {
		return takeFailed(500, "%v", err)
	}
	records := map[string][]byte{}
	if state != approvalApproved {
		for _, k := range ap.DedupKeys {
			records[dedupKey(k)], _ = json.Marshal(sharedDedup{Until: now.Add(minDedupTTL), RequestID: ap.RequestID, Owner: c.st.ID()})
		}
	}
	won, err := c.st.UpdateWith(ctx, approvalKey(id), data, e.ModRevision, records)
	if err != nil {
		// Maybe recorded, maybe not: either way nothing is called here,
		// and a second answer learns which (409 or a fresh answer).
		return takeFailed(503, "%v: the answer to approval %s may not have been recorded: %v; nothing was called, look at /trigger and answer again if it still waits",
			errCoordination, id, err)
	}
	if !won {
		if e, found, err := c.st.Get(ctx, approvalKey(id)); err == nil && found {
			if sa, ok := decodeShared(e.Value); ok && sa.Answer != nil {
				return usedTake(id, sa)
			}
		}
		return takeFailed(409, "approval %s was answered on another replica at the same time", id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c.dropApproval(id)
	if state != approvalApproved {
		t.noteRefusedLocked(ap, state, by, reason, now)
	}
	return approvalTake{ap: ap, state: state, now: now}
}

// coordEndResolvedApprovals is endResolvedApprovals with the approvals in
// etcd: the marks are a compare-and-swap on the record, the end is
// coordEndApproval's (one replica records it).
func (t *Trigger) coordEndResolvedApprovals(resolved map[string]bool) {
	if t.coordReady() != nil {
		return
	}
	c := t.coord
	t.mu.Lock()
	var ids []string
	for _, ap := range c.approvals {
		for i := range ap.Alerts {
			if resolved[alertInstance(&ap.Alerts[i])] {
				ids = append(ids, ap.ID)
				break
			}
		}
	}
	t.mu.Unlock()
	for _, id := range ids {
		if err := t.coordMarkResolved(id, resolved); err != nil {
			t.logger.Error("an approval whose alerts resolved could not be recorded", "approval_id", id, "err", err)
		}
	}
}

func (t *Trigger) coordMarkResolved(id string, resolved map[string]bool) error {
	c := t.coord
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), coordOpTimeout)
	defer cancel()
	for range 3 {
		e, found, err := c.st.Get(ctx, approvalKey(id))
		if err != nil {
			return err
		}
		sa, valid := decodeShared(e.Value)
		if !found || !valid || sa.Answer != nil {
			return nil
		}
		changed, all := sa.Record.markResolved(resolved)
		if all {
			if tk := t.coordEndApproval(ctx, id, approvalRejected, resolvedBy, resolvedReason); tk.ap == nil && tk.code != 409 {
				return errors.New(tk.err)
			}
			return nil
		}
		if !changed {
			return nil
		}
		data, err := json.Marshal(sa)
		if err != nil {
			return err
		}
		if won, err := c.st.UpdateWith(ctx, approvalKey(id), data, e.ModRevision, nil); err != nil || won {
			return err
		}
	}
	return coordination.ErrContention
}

// usedTake is the 409 of an approval already used, saying how and where.
func usedTake(id string, sa sharedApproval) approvalTake {
	a := sa.Answer
	return takeFailed(409, "approval %s was already used: %s %s at %s (replica %s)", id, a.State, byText(a.By),
		a.At.UTC().Format(time.RFC3339), sa.AnsweredOn)
}

// dropApproval takes a used approval out of the listed ones.
func (c *coordinator) dropApproval(id string) {
	out := make([]*approvalRecord, 0, len(c.approvals))
	for _, ap := range c.approvals {
		if ap.ID != id {
			out = append(out, ap)
		}
	}
	c.approvals = out
}

// coordSyncApprovals lists the shared approvals for /trigger and the
// metric and, with expire, ends those whose deadline passed and removes
// answers older than answeredKeep. It returns how long to wait before
// looking again.
func (t *Trigger) coordSyncApprovals(expire bool) time.Duration {
	c := t.coord
	if t.coordReady() != nil {
		return approvalTick
	}
	ctx, cancel := context.WithTimeout(t.ctx, coordOpTimeout)
	defer cancel()
	entries, err := c.st.List(ctx, "approvals/")
	if err != nil {
		return approvalTick
	}
	now := t.now()
	wait := approvalTick
	var waiting []*approvalRecord
	for _, e := range entries {
		sa, ok := decodeShared(e.Value)
		switch {
		case !ok:
		case sa.Answer != nil:
			if expire && now.Sub(sa.Answer.At) > answeredKeep {
				t.coordForgetApproval(ctx, e.Key, sa.Record)
			}
		case now.Before(sa.Record.Deadline):
			waiting = append(waiting, sa.Record)
			wait = min(wait, sa.Record.Deadline.Sub(now))
		case expire:
			tk := t.coordEndApproval(ctx, sa.Record.ID, approvalExpired, "", "")
			if tk.ap == nil && tk.code != 409 {
				t.logger.Error("an expired approval could not be recorded; trying again", "approval_id", sa.Record.ID, "err", tk.err)
				waiting = append(waiting, sa.Record)
			}
		default:
			waiting = append(waiting, sa.Record)
		}
	}
	t.mu.Lock()
	c.approvals = waiting
	t.mu.Unlock()
	return max(wait, 10*time.Millisecond)
}

// coordForgetApproval removes an old answered approval and the request
// index that still names it.
func (t *Trigger) coordForgetApproval(ctx context.Context, key string, ap *approvalRecord) {
	c := t.coord
	if idx, found, err := c.st.Get(ctx, approvalIndexKey(ap.RequestID)); err == nil && found && string(idx.Value) == ap.ID {
		_ = c.st.Delete(ctx, approvalIndexKey(ap.RequestID))
	}
	_ = c.st.Delete(ctx, key)
}
