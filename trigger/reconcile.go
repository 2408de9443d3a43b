package trigger

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// auditRecord is what the trigger reads back from an audit line.
type auditRecord struct {
	Time      time.Time     `json:"time"`
	Event     string        `json:"event"`
	Rule      string        `json:"rule"`
	Object    string        `json:"object"`
	ObjectKey string        `json:"object_key"`
	Action    string        `json:"action"`
	Target    string        `json:"target"`
	GroupKey  string        `json:"group_key"`
	Outcome   string        `json:"outcome"`
	RequestID string        `json:"request_id"`
	Memory    *actionMemory `json:"memory"`
}

// readAudit calls fn for each line of the audit log that carries a request
// id, in order; a missing log has none. Lines torn by a crash are skipped.
func readAudit(path string, fn func(l *auditRecord)) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading audit log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var l auditRecord
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.RequestID == "" {
			continue
		}
		fn(&l)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading audit log: %w", err)
	}
	return nil
}

// reconcileAuditLocked ends the decisions that reached the audit log but
// not the state file: the exporter stopped between the two writes, so the
// call was never made. Without this such a decision would never get an
// outcome. It reads the whole audit log once, at start-up.
func (t *Trigger) reconcileAuditLocked() error {
	path := t.cfg.AuditLog
	if path == "" || t.disarmedLocked() != "" || t.coord != nil {
		// With a shared store its records, not this audit log, say what
		// is unfinished; the replicas adopt it (coord.go).
		return nil
	}
	var orphans []*actionRecord
	index := map[string]int{}
	err := readAudit(path, func(l *auditRecord) {
		switch {
		case l.Event == eventDecision && l.Outcome == verdictDecided:
			if _, seen := index[l.RequestID]; !seen {
				index[l.RequestID] = len(orphans)
				orphans = append(orphans, &actionRecord{RequestID: l.RequestID, Rule: l.Rule, Object: l.Object, ObjectKey: l.ObjectKey,
					Action: l.Action, Target: l.Target, Status: statusDecided})
			}
		case l.Event == eventOutcome:
			if i, ok := index[l.RequestID]; ok {
				orphans[i] = nil
			}
		}
	})
	if err != nil {
		return err
	}
	for _, rec := range orphans {
		if rec == nil || t.store.action(rec.RequestID) != nil {
			continue
		}
		t.finishLocked(rec, outcomeAbandoned, "the exporter stopped before this decision reached the state file; it was never sent", false)
	}
	return nil
}

// rebuildFromAuditLocked rebuilds a lost state file from the audit log, which
// holds every decided action with what it added to the memory: dedup keys,
// cooldowns and rate-limit uses come back unless the action was released;
// an action that ended timeout or uncertain holds its object again; and an
// action with no outcome (its state was lost with the file: it may have
// been sent) ends uncertain, keeping everything. Without this a lost volume
// would start the trigger armed with no memory over a history of actions.
// It reports whether the log held any decided action.
func (t *Trigger) rebuildFromAuditLocked() (bool, error) {
	type entry struct {
		l        *auditRecord
		released bool
		outcome  string
		endedAt  time.Time
	}
	var order []*entry
	byID := map[string]*entry{}
	err := readAudit(t.cfg.AuditLog, func(l *auditRecord) {
		switch e := byID[l.RequestID]; {
		case l.Event == eventDecision && l.Outcome == verdictDecided && e == nil:
			e = &entry{l: l}
			byID[l.RequestID] = e
			order = append(order, e)
		case e == nil:
		case l.Event == eventReleased:
			e.released = true
		case l.Event == eventOutcome && e.outcome == "":
			e.outcome, e.endedAt = l.Outcome, l.Time
		}
	})
	if err != nil || len(order) == 0 {
		return false, err
	}
	now := t.now()
	s := t.store
	hold := time.Duration(t.cfg.ActionTimeout)
	var open []*actionRecord
	for _, e := range order {
		l := e.l
		if e.released {
			continue
		}
		m := l.Memory
		if m == nil {
			// An older exporter's line: no memory to rebuild, but an action
			// without outcome still counts as maybe sent.
			m = &actionMemory{At: l.Time}
		}
		ttl := minDedupTTL
		if r := t.ruleLocked(l.Rule); r != nil {
			ttl = max(ttl, r.cooldown)
		}
		for _, k := range m.DedupKeys {
			if until := m.At.Add(ttl); until.After(s.dedup[k]) {
				s.dedup[k] = until
			}
		}
		for _, c := range m.Cooldowns {
			if k := c.key(); m.At.After(s.cooldowns[k]) {
				s.cooldowns[k] = m.At
			}
		}
		s.rateUses = append(s.rateUses, m.At)
		if m.At.After(s.lastAction[l.Rule]) {
			s.lastAction[l.Rule] = m.At
		}
		switch e.outcome {
		case "":
			open = append(open, &actionRecord{RequestID: l.RequestID, Rule: l.Rule, Action: l.Action, Target: l.Target,
				Object: l.Object, ObjectKey: l.ObjectKey, GroupKey: l.GroupKey, Status: statusSending, DecidedAt: m.At})
		case outcomeTimeout, outcomeUncertain:
			if until := e.endedAt.Add(hold); l.ObjectKey != "" && until.After(now) {
				s.holds[l.ObjectKey] = objectHold{Object: l.ObjectKey, RequestID: l.RequestID, Rule: l.Rule,
					Action: l.Action, Outcome: e.outcome, Until: until}
			}
		}
	}
	t.logger.Warn("state file missing: rebuilt the trigger's memory from the audit log",
		"state_file", t.cfg.StateFile, "audit_log", t.cfg.AuditLog, "decided_actions", len(order), "without_outcome", len(open))
	for _, rec := range open {
		s.actions = append(s.actions, rec)
		t.finishLocked(rec, outcomeUncertain, "the state file was lost; this action has no outcome in the audit log and may have been sent: it is not repeated, check the target", false)
	}
	if err := t.saveLocked(); err != nil {
		return true, fmt.Errorf("writing the rebuilt state file: %w", err)
	}
	return true, nil
}
