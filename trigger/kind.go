package trigger

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

// kindSpec declares one action kind. Each kind is one file (kind_*.go) whose
// init calls registerKind; config validation, rule compilation, the
// target_state guard, the state file, the call and its tracking all read the
// declaration, so adding a kind touches that file alone. C is the small
// interface the kind needs from its target's client; a Veeam client
// (*vspc.Client, *em.Client, *vbr.Client) satisfies it directly.
type kindSpec[C any] struct {
	// Name as written in a rule's action.type.
	Name string
	// TargetType is the type of target the kind acts on (config.TypeVSPC…).
	TargetType string
	// Object is the shape of what the kind acts on: its config keys, their
	// validation and how a rule names the object (plan, replica set, CDP VM).
	Object objectShape
	// Resolve is target_state's live part: it reads the target and returns
	// exactly what the call will act on, or why the target is not in a state
	// to accept it. It changes nothing.
	Resolve func(ctx context.Context, c C, a *config.Action, object string) (resolved, string)
	// Call makes the call once; it never retries.
	Call func(ctx context.Context, c C, rec *actionRecord) (handle, error)
	// Poll reads the call's handle once: an outcome when the action ended, ""
	// while it runs. tr.mu guards the record's handle fields. When tr.maybe
	// is set the call's answer did not say whether Veeam ran it (5xx, 401,
	// no usable answer): Poll looks for evidence in state that does not
	// depend on that answer and clears tr.maybe once it finds it; without
	// evidence the tracker ends the action uncertain.
	Poll func(ctx context.Context, c C, rec *actionRecord, tr *tracking) (outcome, msg string, err error)
	// Idempotent: the call carries the request id as X-Request-id and
	// Veeam replays its first answer for 5 minutes (VSPC), so it may be
	// sent again within that window after an answer that did not say
	// whether it ran.
	Idempotent bool
}

// tracking is what one tracker knows besides the record: in memory only,
// for the life of the tracker.
type tracking struct {
	mu sync.Locker
	// maybe: the call's answer did not show whether Veeam carried it out.
	maybe bool
	// since is the time since the call at this poll; settle is how long a
	// status that has not left its value from before the call is not
	// judged yet.
	since, settle time.Duration
	// evidence is how long a maybe-done call is watched for evidence
	// (evidenceWindow); at its end a kind that can prove the call was never
	// processed says so (rec.Unsent), else the action ends uncertain.
	evidence time.Duration
	// logonGen is the EM logon session that made the call (0: unknown).
	logonGen uint64
	// taskBaseline is the highest EM task number before the call (-1:
	// unknown); tasks above it may be the call's.
	taskBaseline int
}

// objectShape is how a family of kinds names its object; several kinds share
// one (objectPlan, objectReplicas, objectCdpVM).
type objectShape struct {
	// Keys are the action keys besides type and target that the kind reads.
	Keys []string
	// Check validates those keys for config (config.ActionSpec.Check).
	Check func(name string, a *config.Action, problem func(key, format string, args ...any))
	// Compile says how a rule finds its object: the alert label that names
	// it, or the object fixed in the rule.
	Compile func(name string, a *config.Action) (label, fixed string, err error)
}

// kind is a registered kindSpec with its client type erased.
type kind struct {
	name, targetType string
	object           objectShape
	idempotent       bool
	accepts          func(client any) bool
	resolve          func(ctx context.Context, client any, a *config.Action, object string) (resolved, string)
	call             func(ctx context.Context, client any, rec *actionRecord) (handle, error)
	poll             func(ctx context.Context, client any, rec *actionRecord, tr *tracking) (string, string, error)
}

var kinds = map[string]*kind{}

// registerKind declares a kind to the trigger and to config. Call it from an
// init function; a duplicate name panics.
func registerKind[C any](s kindSpec[C]) {
	if _, dup := kinds[s.Name]; dup {
		panic(fmt.Sprintf("trigger: action kind %q registered twice", s.Name))
	}
	kinds[s.Name] = &kind{
		name: s.Name, targetType: s.TargetType, object: s.Object, idempotent: s.Idempotent,
		accepts: func(c any) bool { _, ok := c.(C); return ok },
		resolve: func(ctx context.Context, c any, a *config.Action, object string) (resolved, string) {
			return s.Resolve(ctx, c.(C), a, object)
		},
		call: func(ctx context.Context, c any, rec *actionRecord) (handle, error) { return s.Call(ctx, c.(C), rec) },
		poll: func(ctx context.Context, c any, rec *actionRecord, tr *tracking) (string, string, error) {
			return s.Poll(ctx, c.(C), rec, tr)
		},
	}
	name, check := s.Name, s.Object.Check
	config.RegisterAction(config.ActionSpec{
		Name: s.Name, TargetType: s.TargetType, Keys: s.Object.Keys,
		Check: func(a *config.Action, problem func(key, format string, args ...any)) { check(name, a, problem) },
	})
}

// clientFor returns the target's client if it can run the kind.
func (k *kind) clientFor(clients map[string]any, target string) (any, error) {
	c, ok := clients[target]
	if !ok || c == nil || !k.accepts(c) {
		return nil, fmt.Errorf("no %s target %q", strings.ToUpper(k.targetType), target)
	}
	return c, nil
}

// handle is what a call returned to track the action by. A call may return
// the EM fields with an error too: they help find what the call did.
type handle struct {
	asyncID  string
	taskID   string
	sessions []sessionHandle
	// logonGen and taskBaseline: see tracking.
	logonGen     uint64
	taskBaseline int
}

// resolved is what target_state found live: the exact thing the call will
// act on. conflictLocked compares it with the actions in flight.
type resolved struct {
	planID, planName          string
	prevStatus, prevSessionID string
	cdpReplica, vm            string
	pointIDs                  []string
}
