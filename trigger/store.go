package trigger

import (
	"errors"
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
	// Load reads the stored state. Nothing stored is errNotStored: the
	// store then asks the audit log whether that is a first start or lost
	// memory. Any other error disarms the trigger.
	Load() (*state, error)
	// Save replaces the stored state; when it returns nil the state
	// survives a crash.
	Save(*state) error
	// KeepAside keeps an unusable stored state for the operator and says
	// where.
	KeepAside(now time.Time) (string, error)
}

// errNotStored is Load's answer when no state was ever stored (or it is
// gone).
var errNotStored = errors.New("no state stored")

// store is what the trigger remembers between notifications: the durable
// state (dedup keys, cooldowns, rate-limit use, actions in flight, object
// holds, pending decisions) and its backend, the dry-run memory, the
// reservations of decisions under way and the token bucket built from the
// persisted uses. Trigger holds it and its mutex; every method expects
// that mutex held.
type store struct {
	*state
	backend backend // nil without state_file: nothing survives a restart
	// disarmed says why the stored state could not be used; while set the
	// trigger acts as in dry-run mode and never writes the backend.
	disarmed string
	// notStored: the backend had no state at the last load.
	notStored bool
	// Dry-run decisions have their own dedup and cooldown memory (not
	// persisted) so dry-run shows what armed mode would do without
	// affecting it once armed.
	dryDedup     map[string]time.Time
	dryCooldowns map[cooldownKey]time.Time
	// reserved holds dedup and cooldown keys of decisions between their
	// first and second look at the state (while target_state reads Veeam),
	// so concurrent identical notifications stop at dedup.
	reserved map[string]bool
	limiter  *rate.Limiter
}

func newStore(b backend) *store {
	return &store{
		state:        newState(),
		backend:      b,
		dryDedup:     map[string]time.Time{},
		dryCooldowns: map[cooldownKey]time.Time{},
		reserved:     map[string]bool{},
	}
}

// load reads the backend; on error the store is disarmed and the unusable
// state is kept aside. It returns the error. Nothing stored is an empty
// state with notStored set.
func (s *store) load(now time.Time) error {
	st := newState()
	s.notStored = false
	if s.backend != nil {
		loaded, err := s.backend.Load()
		switch {
		case errors.Is(err, errNotStored):
			s.notStored = true
		case err != nil:
			reason := err.Error()
			if cp, cpErr := s.backend.KeepAside(now); cpErr != nil {
				reason += fmt.Sprintf("; could not keep a copy: %v", cpErr)
			} else if cp != "" {
				reason += "; a copy is kept at " + cp
			}
			s.disarmed = reason + "; fix or remove the state file and reload"
			return err
		default:
			st = loaded
		}
	}
	s.disarmed = ""
	s.state = st
	return nil
}

// save writes the state. It never writes while disarmed: the unusable
// stored state stays as it is for the operator.
func (s *store) save(now time.Time, keepCooldown, ratePer time.Duration) error {
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
		if s.reserved[k] {
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

// cooldownReason says why the action must wait before acting on the object
// again, or "". Any of the keys counts (the object as written, as Veeam
// identifies it, and an older state file's rule key).
func (s *store) cooldownReason(cooldown time.Duration, keys []cooldownKey, now time.Time, dry bool) string {
	mem := s.cooldowns
	if dry {
		mem = s.dryCooldowns
	}
	for _, k := range keys {
		if s.reserved[reservedCooldownKey(k)] {
			return "an action on this object is being decided for another notification"
		}
		at, ok := mem[k]
		if !ok || cooldown <= 0 {
			continue
		}
		if until := at.Add(cooldown); until.After(now) {
			return fmt.Sprintf("last %s on this object at %s; cooldown %s until %s", k.action, at.UTC().Format(time.RFC3339), cooldown, until.UTC().Format(time.RFC3339))
		}
	}
	return ""
}

func reservedCooldownKey(k cooldownKey) string {
	return "cooldown\x00" + k.action + "\x00" + k.object
}

// reserve marks a decision's keys as under way; unreserve forgets them.
func (s *store) reserve(keys []string) {
	for _, k := range keys {
		s.reserved[k] = true
	}
}

func (s *store) unreserve(keys []string) {
	for _, k := range keys {
		delete(s.reserved, k)
	}
}

// rememberDry records a dry-run decision in the dry-run memory.
func (s *store) rememberDry(keys []string, cks []cooldownKey, until, now time.Time, keepCooldown time.Duration) {
	pruneMemory(s.dryDedup, s.dryCooldowns, now, keepCooldown)
	for _, k := range keys {
		s.dryDedup[k] = until
	}
	for _, k := range cks {
		s.dryCooldowns[k] = now
	}
}

// commit records a decided action: its dedup keys until until, its
// cooldowns, a rate-limit use and the action itself, and notes in the
// record what it added (rec.Memory) so that release can give it back. The
// returned undo puts everything back when the state cannot be saved.
func (s *store) commit(rec *actionRecord, keys []string, cks []cooldownKey, until, now time.Time) (undo func()) {
	prevUses := s.rateUses
	mem := &actionMemory{At: now, DedupKeys: slices.Clone(keys)}
	for _, k := range cks {
		c := k.json(s.cooldowns[k])
		mem.Cooldowns = append(mem.Cooldowns, c)
	}
	for _, k := range keys {
		s.dedup[k] = until
	}
	for _, k := range cks {
		s.cooldowns[k] = now
	}
	s.rateUses = append(slices.Clone(prevUses), now)
	rec.Memory = mem
	s.actions = append(s.actions, rec)
	return func() {
		s.forget(mem)
		s.rateUses = prevUses
		s.removeAction(rec.RequestID)
	}
}

// forget gives back what an action added to the memory: its dedup keys,
// its cooldowns (the earlier time, if any, comes back) and its rate-limit
// use. It reports whether the rate-limit uses changed.
func (s *store) forget(mem *actionMemory) bool {
	if mem == nil {
		return false
	}
	for _, k := range mem.DedupKeys {
		delete(s.dedup, k)
	}
	for _, c := range mem.Cooldowns {
		k := c.key()
		if at, ok := s.cooldowns[k]; !ok || !at.Equal(mem.At) {
			continue // a later action set it
		}
		if c.At.IsZero() {
			delete(s.cooldowns, k)
		} else {
			s.cooldowns[k] = c.At
		}
	}
	if i := slices.IndexFunc(s.rateUses, mem.At.Equal); i >= 0 {
		s.rateUses = slices.Delete(slices.Clone(s.rateUses), i, i+1)
		return true
	}
	return false
}
