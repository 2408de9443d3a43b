package trigger

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// Audit events.
const (
	eventDecision = "decision"
	eventOutcome  = "outcome"
	// eventReleased: an action that never reached Veeam gave back its
	// dedup keys, cooldowns, rate-limit use and object lock.
	eventReleased = "released"
	// eventPending: a decision kept to be evaluated again, or dropped.
	eventPending = "pending"
)

// decision is one verdict of the pipeline for one rule and object over the
// alerts of one notification that stopped at the same place: blocked by a
// guard, a dry-run action, or an action decided. It is an audit line, an
// entry of /trigger's recent decisions and part of the webhook's answer.
type decision struct {
	Time   time.Time `json:"time"`
	Event  string    `json:"event"`
	Rule   string    `json:"rule"`
	Object string    `json:"object,omitempty"`
	// ObjectKey is the object as Veeam identifies it, once target_state
	// resolved it.
	ObjectKey string   `json:"object_key,omitempty"`
	Alerts    []string `json:"alerts"`
	GroupKey  string   `json:"group_key"`
	Guard     string   `json:"guard,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Action    string   `json:"action,omitempty"`
	Target    string   `json:"target,omitempty"`
	RequestID string   `json:"request_id,omitempty"`
	// Outcome is blocked, dry_run or decided (not_recorded in a webhook
	// answer when the decision could not be made durable: nothing called).
	Outcome string `json:"outcome"`
	// retry: blocked at target_state because the target could not be read.
	retry bool
}

// decidedLine is the audit line of a decided action: the decision and what
// it added to the memory, from which a lost state file is rebuilt.
type decidedLine struct {
	decision
	Memory *actionMemory `json:"memory,omitempty"`
}

// Decision outcomes.
const (
	verdictBlocked = "blocked"
	verdictDryRun  = "dry_run"
	verdictDecided = "decided"
	// verdictNotRecorded only appears in a 500 answer.
	verdictNotRecorded = "not_recorded"
)

// actionAudit is the head of every audit line about one action, so that a
// reader finds the same keys first whatever happened to it.
type actionAudit struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	Rule      string    `json:"rule"`
	Object    string    `json:"object"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	RequestID string    `json:"request_id"`
}

// audit is the head of an audit line about a.
func (a *actionRecord) audit(now time.Time, event string) actionAudit {
	return actionAudit{Time: now, Event: event, Rule: a.Rule, Object: a.Object, Action: a.Action, Target: a.Target, RequestID: a.RequestID}
}

// outcomeLine is the audit line written when an action ends.
type outcomeLine struct {
	actionAudit
	Outcome         string  `json:"outcome"`
	Message         string  `json:"message,omitempty"`
	Handle          string  `json:"handle,omitempty"`
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
}

// auditLog appends JSON lines to the audit file. Lines carry rule names,
// objects, alert fingerprints and request ids, never a secret.
type auditLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// openAudit opens path for appending; "" gives a log that writes nothing.
func openAudit(path string) (*auditLog, error) {
	l := &auditLog{path: path}
	if path == "" {
		return l, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	l.f = f
	return l, nil
}

// write appends one line; with sync it is on disk when write returns.
func (l *auditLog) write(v any, sync bool) error {
	if l == nil || l.f == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if sync {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
	}
	return nil
}

func (l *auditLog) close() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.f.Close()
	l.f = nil
	return err
}
