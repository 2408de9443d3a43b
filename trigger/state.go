package trigger

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// stateVersion is the state file format. A file with another version is
// treated as unreadable: the trigger starts disarmed rather than guess.
const stateVersion = 1

// Action statuses in the state file. An action is removed from the file
// once its outcome is recorded.
//
//   - decided: every guard agreed and the decision is durable; the call has
//     not been started. After a restart it is never sent (outcome abandoned).
//   - sending: the trigger is about to make, or is making, the call. After a
//     restart nobody knows whether Veeam received it; it is never repeated
//     (outcome abandoned, logged as uncertain).
//   - sent: the call was answered; the handle (async action, task, sessions)
//     is recorded and the action is tracked to its end, also after a restart.
const (
	statusDecided = "decided"
	statusSending = "sending"
	statusSent    = "sent"
)

// Outcomes of an action.
const (
	outcomeSuccess   = "success"
	outcomeWarning   = "warning"
	outcomeFailed    = "failed"
	outcomeTimeout   = "timeout"
	outcomeAbandoned = "abandoned"
	// outcomeSubmitted: Veeam took the request and no API gives a
	// completion signal; never counted as success.
	outcomeSubmitted = "submitted"
	// outcomeUncertain: maybe done; the answer was lost or was an error
	// after the call, and the tracked state could not settle it in time.
	outcomeUncertain = "uncertain"
	// outcomeExpired and outcomeRejected end an approval not given in time,
	// or refused.
	outcomeExpired  = "expired"
	outcomeRejected = "rejected"
)

var outcomes = []string{outcomeSuccess, outcomeWarning, outcomeFailed, outcomeTimeout, outcomeAbandoned,
	outcomeSubmitted, outcomeUncertain, outcomeExpired, outcomeRejected}

// actionRecord is one decided action, from decision to outcome.
type actionRecord struct {
	RequestID string    `json:"request_id"`
	Rule      string    `json:"rule"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Object    string    `json:"object"`
	GroupKey  string    `json:"group_key"`
	StartsAt  time.Time `json:"starts_at"`
	Alerts    []string  `json:"alerts"`
	Status    string    `json:"status"`
	// Unsent marks an action known not to have reached Veeam (refused
	// unprocessed, or never sent): ending it releases its cooldown, dedup
	// keys and rate token.
	Unsent    bool      `json:"unsent,omitempty"`
	DecidedAt time.Time `json:"decided_at"`
	SendingAt time.Time `json:"sending_at,omitzero"`
	SentAt    time.Time `json:"sent_at,omitzero"`

	// What the call acts on, resolved by the target_state guard, so the call
	// is made on exactly what was checked.
	PlanID        string   `json:"plan_id,omitempty"`
	PlanName      string   `json:"plan_name,omitempty"`
	Test          bool     `json:"test,omitempty"`
	PrevStatus    string   `json:"prev_status,omitempty"`
	PrevSessionID string   `json:"prev_session_id,omitempty"`
	CdpReplica    string   `json:"cdp_replica,omitempty"`
	VM            string   `json:"vm,omitempty"`
	PointIDs      []string `json:"point_ids,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	// ObjectKey is the object as Veeam identifies it (objectKey): the key of
	// the object lock, dedup, cooldown and request id.
	ObjectKey string `json:"object_key,omitempty"`
	// Memory is what the decision added to the trigger's memory, so that an
	// action that never reached Veeam gives it back (release).
	Memory *actionMemory `json:"memory,omitempty"`

	// Handles returned by the call.
	AsyncID   string          `json:"async_id,omitempty"`
	AsyncDone bool            `json:"async_done,omitempty"`
	TaskID    string          `json:"task_id,omitempty"`
	Sessions  []sessionHandle `json:"sessions,omitempty"`
}

// sessionHandle is one VBR session started by an action; Result is set once
// the session stopped.
type sessionHandle struct {
	ID     string `json:"id"`
	Result string `json:"result,omitempty"`
}

func (a *actionRecord) clone() *actionRecord {
	c := *a
	c.Alerts = slices.Clone(a.Alerts)
	c.PointIDs = slices.Clone(a.PointIDs)
	c.Sessions = slices.Clone(a.Sessions)
	if a.Memory != nil {
		m := *a.Memory
		m.DedupKeys = slices.Clone(m.DedupKeys)
		m.Cooldowns = slices.Clone(m.Cooldowns)
		c.Memory = &m
	}
	return &c
}

// actionMemory is what one decided action added to the memory: its dedup
// keys, its cooldown entries (with the time each had before, zero for none)
// and the rate-limit use taken at At.
type actionMemory struct {
	At        time.Time      `json:"at"`
	DedupKeys []string       `json:"dedup_keys"`
	Cooldowns []cooldownJSON `json:"cooldowns"`
}

// cooldownKey is an action on an object. object is the object as Veeam
// identifies it (objectKey) or as written (writtenObject); action is the
// action type. Neither depends on the rule: renaming a rule keeps its
// cooldowns. action legacyRuleScope marks an entry of an older state file,
// keyed on the rule and the object as written (rule + "\x00" + object).
type cooldownKey struct{ action, object string }

const legacyRuleScope = "\x00rule"

func legacyCooldownKey(rule, object string) cooldownKey {
	return cooldownKey{legacyRuleScope, rule + "\x00" + object}
}

// objectHold keeps an object locked after an action on it ended without a
// known result (timeout, uncertain): the task may still be running, so no
// rule acts on the object before Until.
type objectHold struct {
	Object    string    `json:"object"`
	RequestID string    `json:"request_id"`
	Rule      string    `json:"rule"`
	Action    string    `json:"action"`
	Outcome   string    `json:"outcome"`
	Until     time.Time `json:"until"`
}

// state is what must survive a restart: dedup keys, cooldowns, rate-limit
// use and the actions not yet finished.
type state struct {
	dedup      map[string]time.Time // key -> expiry
	cooldowns  map[cooldownKey]time.Time
	rateUses   []time.Time          // times a rate-limit token was taken
	lastAction map[string]time.Time // rule -> time of its last call
	actions    []*actionRecord      // decided, sending or sent; oldest first
	holds      map[string]objectHold
	pending    []*pendingDecision // decisions to evaluate again
	// approvals wait for a person (approvals.go); answered remembers the
	// ids already used, so that an answer is never replayed.
	approvals []*approvalRecord
	answered  map[string]answeredApproval
	// lastHeartbeat is when the heartbeat alert last arrived.
	lastHeartbeat time.Time
}

func newState() *state {
	return &state{
		dedup:      map[string]time.Time{},
		cooldowns:  map[cooldownKey]time.Time{},
		lastAction: map[string]time.Time{},
		holds:      map[string]objectHold{},
		answered:   map[string]answeredApproval{},
	}
}

func (s *state) action(requestID string) *actionRecord {
	for _, a := range s.actions {
		if a.RequestID == requestID {
			return a
		}
	}
	return nil
}

func (s *state) removeAction(requestID string) {
	s.actions = slices.DeleteFunc(s.actions, func(a *actionRecord) bool { return a.RequestID == requestID })
}

// prune drops what can no longer matter at now. keepCooldown is how long
// cooldown entries must be kept.
func (s *state) prune(now time.Time, keepCooldown time.Duration, ratePer time.Duration) {
	pruneMemory(s.dedup, s.cooldowns, now, keepCooldown)
	for k, h := range s.holds {
		if !h.Until.After(now) {
			delete(s.holds, k)
		}
	}
	s.rateUses = slices.DeleteFunc(s.rateUses, func(t time.Time) bool { return !t.Add(ratePer).After(now) })
}

// pruneMemory drops the dedup keys expired at now and the cooldowns older
// than keepCooldown: of the state, or of the dry-run memory.
func pruneMemory(dedup map[string]time.Time, cooldowns map[cooldownKey]time.Time, now time.Time, keepCooldown time.Duration) {
	maps.DeleteFunc(dedup, func(_ string, exp time.Time) bool { return !exp.After(now) })
	maps.DeleteFunc(cooldowns, func(_ cooldownKey, at time.Time) bool { return !at.Add(keepCooldown).After(now) })
}

// stateFile is the JSON form of state.
type stateFile struct {
	Version       int                  `json:"version"`
	Dedup         map[string]time.Time `json:"dedup"`
	Cooldowns     []cooldownJSON       `json:"cooldowns"`
	RateLimitUses []time.Time          `json:"rate_limit_uses"`
	LastAction    map[string]time.Time `json:"last_action"`
	Actions       []*actionRecord      `json:"actions"`
	Holds         []objectHold         `json:"holds,omitempty"`
	Pending       []*pendingDecision   `json:"pending,omitempty"`
	Approvals     []*approvalRecord    `json:"approvals,omitempty"`
	Answered      []answeredApproval   `json:"answered_approvals,omitempty"`
	LastHeartbeat time.Time            `json:"last_heartbeat,omitzero"`
}

// cooldownJSON is a cooldown entry: action and object, or (older files)
// rule and object as written.
type cooldownJSON struct {
	Rule   string    `json:"rule,omitempty"`
	Action string    `json:"action,omitempty"`
	Object string    `json:"object"`
	At     time.Time `json:"at,omitzero"`
}

func (k cooldownKey) json(at time.Time) cooldownJSON {
	if k.action == legacyRuleScope {
		rule, object, _ := strings.Cut(k.object, "\x00")
		return cooldownJSON{Rule: rule, Object: object, At: at}
	}
	return cooldownJSON{Action: k.action, Object: k.object, At: at}
}

func (c cooldownJSON) key() cooldownKey {
	if c.Action == "" {
		return legacyCooldownKey(c.Rule, c.Object)
	}
	return cooldownKey{c.Action, c.Object}
}

func (s *state) marshal() ([]byte, error) {
	f := stateFile{
		Version:       stateVersion,
		Dedup:         s.dedup,
		Cooldowns:     make([]cooldownJSON, 0, len(s.cooldowns)),
		RateLimitUses: s.rateUses,
		LastAction:    s.lastAction,
		Actions:       s.actions,
		Pending:       s.pending,
		Approvals:     s.approvals,
		LastHeartbeat: s.lastHeartbeat,
	}
	for _, a := range s.answered {
		f.Answered = append(f.Answered, a)
	}
	slices.SortFunc(f.Answered, func(a, b answeredApproval) int { return compareStrings(a.ID, b.ID) })
	for _, h := range s.holds {
		f.Holds = append(f.Holds, h)
	}
	slices.SortFunc(f.Holds, func(a, b objectHold) int { return compareStrings(a.Object, b.Object) })
	if f.RateLimitUses == nil {
		f.RateLimitUses = []time.Time{}
	}
	if f.Actions == nil {
		f.Actions = []*actionRecord{}
	}
	for k, at := range s.cooldowns {
		f.Cooldowns = append(f.Cooldowns, k.json(at))
	}
	slices.SortFunc(f.Cooldowns, func(a, b cooldownJSON) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		if a.Rule != b.Rule {
			return compareStrings(a.Rule, b.Rule)
		}
		if a.Action != b.Action {
			return compareStrings(a.Action, b.Action)
		}
		return compareStrings(a.Object, b.Object)
	})
	return json.MarshalIndent(f, "", "  ")
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// unmarshalState parses a state file strictly: the trigger wrote it, so
// anything unexpected means it was damaged or written by something else.
func unmarshalState(data []byte) (*state, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f stateFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the state object")
	}
	if f.Version != stateVersion {
		return nil, fmt.Errorf("state format version %d, want %d", f.Version, stateVersion)
	}
	s := newState()
	for k, v := range f.Dedup {
		if k == "" {
			return nil, errors.New("empty dedup key")
		}
		s.dedup[k] = v
	}
	for _, c := range f.Cooldowns {
		if (c.Rule == "" && c.Action == "") || c.At.IsZero() {
			return nil, errors.New("cooldown entry without action or time")
		}
		s.cooldowns[c.key()] = c.At
	}
	s.rateUses = f.RateLimitUses
	slices.SortFunc(s.rateUses, time.Time.Compare)
	for k, v := range f.LastAction {
		s.lastAction[k] = v
	}
	seen := map[string]bool{}
	for i, a := range f.Actions {
		switch {
		case a == nil:
			return nil, fmt.Errorf("actions[%d]: null", i)
		case a.RequestID == "" || a.Rule == "" || a.Target == "":
			return nil, fmt.Errorf("actions[%d]: missing request_id, rule or target", i)
		case kinds[a.Action] == nil:
			return nil, fmt.Errorf("actions[%d]: unknown action %q", i, a.Action)
		case a.Status != statusDecided && a.Status != statusSending && a.Status != statusSent:
			return nil, fmt.Errorf("actions[%d]: unknown status %q", i, a.Status)
		case seen[a.RequestID]:
			return nil, fmt.Errorf("actions[%d]: duplicate request_id %s", i, a.RequestID)
		}
		seen[a.RequestID] = true
		s.actions = append(s.actions, a)
	}
	for i, h := range f.Holds {
		if h.Object == "" || h.Until.IsZero() {
			return nil, fmt.Errorf("holds[%d]: missing object or until", i)
		}
		s.holds[h.Object] = h
	}
	for i, p := range f.Pending {
		if p == nil || p.ID == "" || p.Rule == "" || len(p.Alerts) == 0 {
			return nil, fmt.Errorf("pending[%d]: missing id, rule or alerts", i)
		}
		s.pending = append(s.pending, p)
	}
	for i, a := range f.Approvals {
		if a == nil || a.ID == "" || a.Rule == "" || a.RequestID == "" || a.Deadline.IsZero() {
			return nil, fmt.Errorf("approvals[%d]: missing id, rule, request_id or deadline", i)
		}
		s.approvals = append(s.approvals, a)
	}
	for i, a := range f.Answered {
		if a.ID == "" || a.State == "" {
			return nil, fmt.Errorf("answered_approvals[%d]: missing id or state", i)
		}
		s.answered[a.ID] = a
	}
	s.lastHeartbeat = f.LastHeartbeat
	return s, nil
}

// fileBackend keeps the state in a local JSON file, replaced atomically on
// every save.
type fileBackend struct {
	path    string
	corrupt corruptCopy
}

// newFileBackend uses the file at path, removing what an earlier crash
// left behind.
func newFileBackend(path string) *fileBackend {
	removeStaleTemps(path)
	return &fileBackend{path: path}
}

func (f *fileBackend) Load() (*state, error) { return loadState(f.path) }

func (f *fileBackend) Save(s *state) error {
	data, err := s.marshal()
	if err == nil {
		err = writeFileAtomic(f.path, data)
	}
	if err != nil {
		return fmt.Errorf("writing state file %s: %w", f.path, err)
	}
	return nil
}

// KeepAside copies an unreadable state file aside (once per content).
func (f *fileBackend) KeepAside(now time.Time) (string, error) {
	if _, err := os.Stat(f.path); err != nil {
		return "", nil
	}
	return keepCorruptCopy(f.path, now, &f.corrupt)
}

// loadState reads the state file. A missing file is errNotStored (a first
// start, or a lost volume: the store tells them apart with the audit log);
// anything else that cannot be read is an error.
func loadState(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNotStored
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file: %w", err)
	}
	s, err := unmarshalState(data)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return s, nil
}

// removeStaleTemps deletes the temporary files writeFileAtomic leaves when
// the process dies mid-write; they never hold the only copy of anything.
func removeStaleTemps(path string) {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	for _, f := range stale {
		_ = os.Remove(f)
	}
}

// writeFileAtomic replaces path with data so that a crash at any moment
// leaves either the old or the new content: a temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// keepCorruptCopy copies an unreadable state file aside, so that whatever is
// in it (actions in flight) stays available to the operator. It returns the
// copy's path. last is the copy made before (path and content hash); the
// same content is not copied twice.
func keepCorruptCopy(path string, now time.Time, last *corruptCopy) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	if last.path != "" && last.sum == sum {
		return last.path, nil
	}
	dst := path + ".corrupt-" + now.UTC().Format("20060102T150405.000000000Z")
	if err := writeFileAtomic(dst, data); err != nil {
		return "", err
	}
	*last = corruptCopy{path: dst, sum: sum}
	return dst, nil
}

type corruptCopy struct {
	path string
	sum  [32]byte
}
