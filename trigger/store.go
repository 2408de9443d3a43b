package trigger

import (
	"fmt"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

// backend keeps the durable state between restarts. The local state file
// (fileBackend) is the one backend today; a shared store for several
// replicas (issue 18) implements the same three methods.
type backend interface {
	// Load reads the stored state; none stored yet is an empty state. An
	// error disarms the trigger.
	Load() (*state, error)
	// Save replaces the stored state; when it returns nil the state
	// survives a crash.
	Save(*state) error
	// KeepAside keeps an unusable stored state for the operator and says
	// where.
	KeepAside(now time.Time) (string, error)
}

// store is what the trigger remembers between notifications: the durable
// state (dedup keys, cooldowns, rate-limit use, actions in flight) and its
// backend, the dry-run memory, the reservations of decisions under way and
// the token bucket built from the persisted uses. Trigger holds it and its
// mutex; every method expects that mutex held.
type store struct {
	*state
	backend backend // nil without state_file: nothing survives a restart
	// disarmed says why the stored state could not be used; while set the
	// trigger acts as in dry-run mode and never writes the backend.
	disarmed string
	// Dry-run decisions have their own dedup and cooldown memory (not
	// persisted) so dry-run shows what armed mode would do without
	// affecting it once armed.
	dryDedup     map[string]time.Time
	dryCooldowns map[cooldownKey]time.Time
	// pending holds dedup and cooldown keys of decisions between their
	// first and second look at the state (while target_state reads Veeam),
	// so concurrent identical notifications stop at dedup.
	pending map[string]bool
	limiter *rate.Limiter
}

func newStore(b backend) *store {
	return &store{
		state:        newState(),
		backend:      b,
		dryDedup:     map[string]time.Time{},
		dryCooldowns: map[cooldownKey]time.Time{},
		pending:      map[string]bool{},
	}
}

// load reads the backend; on error the store is disarmed and the unusable
// state is kept aside. It returns the error.
func (s *store) load(now time.Time) error {
	st := newState()
	if s.backend != nil {
		var err error
		if st, err = s.backend.Load(); err != nil {
			reason := err.Error()
			if cp, cpErr := s.backend.KeepAside(now); cpErr != nil {
				reason += fmt.Sprintf("; could not keep a copy: %v", cpErr)
			} else if cp != "" {
				reason += "; a copy is kept at " + cp
			}
			s.disarmed = reason + "; fix or remove the state file and reload"
			return err
		}
	}
	s.disarmed = ""
	s.state = st
	return nil
}

// save writes the state. It never writes while disarmed: the unusable
// stored state stays as it is for the operator. keepCooldown says how long a
// rule's cooldown entries must be kept.
func (s *store) save(now time.Time, keepCooldown func(rule string) time.Duration, ratePer time.Duration) error {
	if s.backend == nil || s.disarmed != "" {
		return nil
	}
	s.prune(now, keepCooldown, ratePer)
	return s.backend.Save(s.state)
}

// rebuildLimiter makes the token bucket from the configured rate and the
// persisted uses, so a restart does not refill it.
func (s *store) rebuildLimiter(rl config.RateLimit, now time.Time) {
	per := time.Duration(rl.Per)
	lim := rate.NewLimiter(rate.Limit(float64(rl.Actions)/per.Seconds()), rl.Actions)
	for _, u := range s.rateUses {
		if u.Add(per).After(now) && !u.After(now) {
			lim.AllowN(u, 1)
		}
	}
	s.limiter = lim
}

// dedupReason says why the keys count as handled, or "".
func (s *store) dedupReason(keys []string, now time.Time, dry bool) string {
	mem := s.dedup
	if dry {
		mem = s.dryDedup
	}
	for _, k := range keys {
		if s.pending[k] {
			return "the same alerts are being decided for another notification"
		}
		if exp, ok := mem[k]; ok && exp.After(now) {
			if dry {
				return "already handled (dry-run) for this alert group and startsAt"
			}
			return "already handled for this alert group and startsAt"
		}
	}
	return ""
}

// cooldownReason says why the rule must wait before acting on the object
// again, or "".
func (s *store) cooldownReason(cooldown time.Duration, k cooldownKey, now time.Time, dry bool) string {
	if s.pending[pendingCooldownKey(k)] {
		return "an action for this rule and object is being decided for another notification"
	}
	mem := s.cooldowns
	if dry {
		mem = s.dryCooldowns
	}
	at, ok := mem[k]
	if !ok || cooldown <= 0 {
		return ""
	}
	if until := at.Add(cooldown); until.After(now) {
		return fmt.Sprintf("last action at %s; cooldown %s until %s", at.UTC().Format(time.RFC3339), cooldown, until.UTC().Format(time.RFC3339))
	}
	return ""
}

func pendingCooldownKey(k cooldownKey) string {
	return "cooldown\x00" + k.rule + "\x00" + k.object
}

// reserve marks a decision's keys as under way; release forgets them.
func (s *store) reserve(keys []string) {
	for _, k := range keys {
		s.pending[k] = true
	}
}

func (s *store) release(keys []string) {
	for _, k := range keys {
		delete(s.pending, k)
	}
}

// rememberDry records a dry-run decision in the dry-run memory.
func (s *store) rememberDry(keys []string, ck cooldownKey, until, now time.Time, cooldownOf func(rule string) (time.Duration, bool)) {
	for k, exp := range s.dryDedup {
		if !exp.After(now) {
			delete(s.dryDedup, k)
		}
	}
	for k, at := range s.dryCooldowns {
		if cd, ok := cooldownOf(k.rule); !ok || !at.Add(cd).After(now) {
			delete(s.dryCooldowns, k)
		}
	}
	for _, k := range keys {
		s.dryDedup[k] = until
	}
	s.dryCooldowns[ck] = now
}

// commit records a decided action: its dedup keys until until, the
// cooldown, a rate-limit use and the action itself. The returned undo puts
// everything back when the state cannot be saved.
func (s *store) commit(rec *actionRecord, keys []string, ck cooldownKey, until, now time.Time) (undo func()) {
	prevCooldown, hadCooldown := s.cooldowns[ck]
	prevUses := s.rateUses
	for _, k := range keys {
		s.dedup[k] = until
	}
	s.cooldowns[ck] = now
	s.rateUses = append(slices.Clone(prevUses), now)
	s.actions = append(s.actions, rec)
	return func() {
		for _, k := range keys {
			delete(s.dedup, k)
		}
		if hadCooldown {
			s.cooldowns[ck] = prevCooldown
		} else {
			delete(s.cooldowns, ck)
		}
		s.rateUses = prevUses
		s.removeAction(rec.RequestID)
	}
}
