package trigger

import "time"

// releaseLocked is the first step of ending an action (finishLocked calls
// it). An action known not to have reached Veeam (still decided: never
// sending; or marked Unsent because Veeam's answer proves the call
// unprocessed) gives back what its decision took: dedup keys, cooldowns,
// rate-limit use (its object lock ends with the record), so that the next
// notification of a still firing alert acts. An action that ended without a
// known result (timeout, uncertain, abandoned after it was sent) keeps everything and holds its object
// one more action_timeout: its task may still be running. Either way a
// concurrency slot frees, so pending decisions are looked at again.
func (t *Trigger) releaseLocked(rec *actionRecord, outcome string) {
	t.coordReleaseLocked(rec, outcome) // coord.go: the same in the shared store
	now := t.now()
	switch {
	case rec.Status == statusDecided || rec.Unsent:
		t.forgetLocked(rec)
		why := "never sent"
		if rec.Unsent {
			why = "refused by " + rec.Target + " without being processed"
		}
		if err := t.audit.write(releasedLine(rec, now, why), true); err != nil {
			t.logger.Error("audit log not written", "err", err)
		}
		t.logger.Warn("action released: it never reached Veeam, so its cooldown, dedup keys, rate-limit token and object lock are given back",
			"rule", rec.Rule, "object", rec.Object, "request_id", rec.RequestID, "reason", why)
	case holdsObject(rec, outcome):
		until := now.Add(time.Duration(t.cfg.ActionTimeout))
		t.store.holds[rec.ObjectKey] = objectHold{Object: rec.ObjectKey, RequestID: rec.RequestID, Rule: rec.Rule,
			Action: rec.Action, Outcome: outcome, Until: until}
		t.logger.Error("object stays locked: the action on it ended without a known result",
			"rule", rec.Rule, "object", rec.Object, "request_id", rec.RequestID, "outcome", outcome, "until", until)
	}
	t.wakePending()
}

// forgetLocked gives back the local memory an unsent action's decision
// took: dedup keys, cooldowns, rate-limit use.
func (t *Trigger) forgetLocked(rec *actionRecord) {
	if t.store.forget(rec.Memory) {
		t.store.rebuildLimiter(t.cfg.RateLimit, t.now())
	}
	rec.Memory = nil
}

// holdsObject reports whether an action that ended keeps its object locked
// one more action_timeout: it was sent and its result is unknown (timeout,
// uncertain, or abandoned after sending: its task may still run).
func holdsObject(rec *actionRecord, outcome string) bool {
	if rec.ObjectKey == "" || rec.Status == statusDecided || rec.Unsent {
		return false
	}
	return outcome == outcomeTimeout || outcome == outcomeUncertain || (outcome == outcomeAbandoned && !rec.SentAt.IsZero())
}

// releasedAudit is the audit line of a released action.
type releasedAudit struct {
	actionAudit
	Message string `json:"message"`
}

func releasedLine(rec *actionRecord, now time.Time, why string) releasedAudit {
	return releasedAudit{actionAudit: rec.audit(now, eventReleased),
		Message: why + ": cooldown, dedup keys, rate-limit token and object lock released"}
}
