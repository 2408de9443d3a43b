package trigger

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// reconcileAuditLocked ends the decisions that reached the audit log but
// not the state file: the exporter stopped between the two writes, so the
// call was never made. Without this such a decision would never get an
// outcome. It reads the whole audit log once, at start-up.
func (t *Trigger) reconcileAuditLocked() error {
	path := t.cfg.AuditLog
	if path == "" || t.store.disarmed != "" {
		return nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading audit log: %w", err)
	}
	defer f.Close()

	var orphans []*actionRecord
	index := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var l struct {
			Event, Rule, Object, Action, Target, Outcome string
			RequestID                                    string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.RequestID == "" {
			continue // a line torn by a crash
		}
		switch {
		case l.Event == eventDecision && l.Outcome == verdictDecided:
			if _, seen := index[l.RequestID]; !seen {
				index[l.RequestID] = len(orphans)
				orphans = append(orphans, &actionRecord{RequestID: l.RequestID, Rule: l.Rule, Object: l.Object, Action: l.Action, Target: l.Target})
			}
		case l.Event == eventOutcome:
			if i, ok := index[l.RequestID]; ok {
				orphans[i] = nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading audit log: %w", err)
	}
	for _, rec := range orphans {
		if rec == nil || t.store.action(rec.RequestID) != nil {
			continue
		}
		t.finishLocked(rec, outcomeAbandoned, "the exporter stopped before this decision reached the state file; it was never sent", false)
	}
	return nil
}
