package trigger

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/coordination"
)

// Several replicas (issue 18). With trigger.coordination.etcd every piece
// of memory that decides (dedup keys, cooldowns, rate-limit use, object
// claims and locks, decided and in-flight actions) lives in etcd, and the
// local state file is not used:
//
//   - decide: after every local guard agreed, the replica checks the shared
//     dedup keys, cooldowns and holds, then claims the object (its
//     objectKey) with coordination.Decide, bound to its session lease, in
//     one fenced transaction with the action record, its dedup keys and
//     cooldowns, a global rate-limit token and a global concurrency slot.
//     A replica that loses answers dedup (the object is claimed elsewhere),
//     rate_limit or concurrency, and calls nothing.
//   - send: the lease must outlive a margin (fencing) before "sending" is
//     written (fenced) and the call made.
//   - finish: the claim and slot are released with the outcome; an unsent
//     action gives back its dedup keys, cooldowns and token; a timeout or
//     uncertain one leaves a shared hold.
//   - hand-over: every replica watches for sessions that end; an action
//     whose owner's lease is gone is adopted (claimed) by another replica:
//     decided → abandoned and released, sending → uncertain (never resent),
//     sent → tracked to its end.
//   - fail safe: without a quorum read and a live session the webhook
//     answers 503 and nothing is called; veeam_trigger_coordination_up is 0.
//
// Keys under the store's data/ directory: actions/<request id>,
// dedup/<key>, cooldowns/<hash of action and object>, holds/<hash of object>,
// pending/<id>/<owner>, approvals/<id> and approval-requests/<request id>
// (approvals_shared.go).

// errCoordination: the shared store could not be used, so nothing was
// decided or called; the webhook answers 503 so that Alertmanager retries.
var errCoordination = errors.New("coordination store unavailable")

const (
	// coordOpTimeout bounds the etcd reads and the transaction of one
	// decision, held under the trigger's mutex.
	coordOpTimeout = 3 * time.Second
	// coordCheckEvery is how often etcd's health is read and actions of
	// replicas that stopped are looked for.
	coordCheckEvery = 500 * time.Millisecond
	// sharedKey names the global rate limit and concurrency counters.
	sharedKey = "trigger"
	// eventAdopted: an action of a replica that stopped was taken over.
	eventAdopted = "adopted"
)

// coordinator is one replica's side of the shared store. owned and saved
// are guarded by the Trigger's mutex; up and why are read without it.
type coordinator struct {
	st     *coordination.Store
	name   string
	margin time.Duration
	ttl    time.Duration
	cfg    config.EtcdCoordination

	up  atomic.Bool
	why atomic.Value // string: why not up

	// owned: actions this replica claimed or adopted, by request id.
	owned map[string]*ownedAction
	// saved: the record last written for each owned action.
	saved map[string][]byte
	// savedPending: this replica's pending decisions as last written, by
	// key.
	savedPending map[string][]byte
	view         *coordStatus
	// approvals: every replica's waiting approvals as last listed from
	// etcd (approvals_shared.go).
	approvals []*approvalRecord

	upGauge prometheus.GaugeFunc
}

type ownedAction struct {
	owner       string // session owner ID the claim was made with
	adoptedFrom string
	prev        []cooldownJSON // shared cooldowns before the decision, for release
}

// sharedAction is an action record in etcd with the replica that owns it.
type sharedAction struct {
	Owner       string         `json:"owner"`
	AdoptedFrom string         `json:"adopted_from,omitempty"`
	Record      *actionRecord  `json:"record"`
	Prev        []cooldownJSON `json:"prev_cooldowns,omitempty"`
}

type sharedDedup struct {
	Until     time.Time `json:"until"`
	RequestID string    `json:"request_id"`
	Owner     string    `json:"owner"`
}

type sharedCooldown struct {
	Action    string    `json:"action"`
	Object    string    `json:"object"`
	At        time.Time `json:"at"`
	RequestID string    `json:"request_id"`
	Owner     string    `json:"owner"`
}

type sharedHold struct {
	objectHold
	Owner string `json:"owner"`
}

func actionKey(rid string) string        { return "actions/" + rid }
func pendingKey(id, owner string) string { return "pending/" + id + "/" + owner }
func dedupKey(k string) string           { return "dedup/" + k }
func cooldownName(k cooldownKey) string  { return "cooldowns/" + hashKey(k.action, k.object) }
func holdKey(object string) string       { return "holds/" + hashKey(object) }
func claimKeyOf(rec *actionRecord) string {
	if rec.ObjectKey != "" {
		return rec.ObjectKey
	}
	return rec.Target + "/written/" + rec.Object
}

// openCoordinator connects to etcd. A bad configuration (TLS files) is an
// error; etcd being unreachable is not: the replica starts, answers 503 and
// reports coordination down until etcd answers.
func openCoordinator(cfg config.EtcdCoordination, name string, logger *slog.Logger) (*coordinator, error) {
	var tlsConf *tls.Config
	useTLS := cfg.TLSConfig != (promconfig.TLSConfig{})
	for _, e := range cfg.Endpoints {
		useTLS = useTLS || strings.HasPrefix(e, "https://")
	}
	if useTLS {
		var err error
		if tlsConf, err = promconfig.NewTLSConfig(&cfg.TLSConfig); err != nil {
			return nil, fmt.Errorf("trigger.coordination.etcd.tls_config: %w", err)
		}
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	ttl := time.Duration(cfg.LeaseTTL)
	if ttl == 0 {
		ttl = coordination.DefaultLeaseTTL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := coordination.Open(ctx, coordination.Config{
		Endpoints: cfg.Endpoints, Prefix: cfg.Prefix, TLS: tlsConf,
		Username: cfg.Username, Password: string(cfg.Password),
		Name: name, LeaseTTL: ttl,
		DialTimeout: 2 * time.Second, RequestTimeout: coordOpTimeout, HealthTimeout: time.Second,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("trigger.coordination.etcd: %w", err)
	}
	c := &coordinator{st: st, name: name, margin: ttl / 4, ttl: ttl, cfg: cfg,
		owned: map[string]*ownedAction{}, saved: map[string][]byte{}, savedPending: map[string][]byte{}}
	c.why.Store("not checked yet")
	c.check(context.Background())
	c.upGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "veeam_trigger_coordination_up",
		Help: "1 when the trigger's shared store (etcd) answers a quorum read and this replica holds a live session; 0 when it does not, and no replica acts.",
	}, func() float64 { return boolFloat(c.up.Load()) })
	return c, nil
}

// check reads etcd's health once and records it.
func (c *coordinator) check(ctx context.Context) bool {
	err := c.st.Health(ctx)
	if err != nil {
		c.why.Store(err.Error())
	} else {
		c.why.Store("")
	}
	c.up.Store(err == nil)
	return err == nil
}

// downReason is why the store cannot be used now, or "".
func (c *coordinator) downReason() string {
	if c.up.Load() {
		return ""
	}
	why, _ := c.why.Load().(string)
	return "etcd (" + strings.Join(c.cfg.Endpoints, ",") + ") cannot be used, so no replica acts until it answers: " + why
}

// coordDownLocked says why the trigger must not act because of its shared
// store, or "" (also without one).
func (t *Trigger) coordDownLocked() string {
	if t.coord == nil {
		return ""
	}
	return t.coord.downReason()
}

// coordReady is decide's first look: without a usable store nothing is
// decided (and the webhook answers 503).
func (t *Trigger) coordReady() error {
	if t.coord == nil {
		return nil
	}
	if why := t.coord.downReason(); why != "" {
		return fmt.Errorf("%w: %s", errCoordination, why)
	}
	return nil
}

// coordDecideUnlocked makes a locally decided action global: it checks the
// shared dedup keys, cooldowns and holds and claims the object with the
// records, a rate-limit token and a concurrency slot in one transaction.
// A guard name means another replica (or the shared memory) refused it; an
// error that the store could not be used. Either way nothing may be
// called, and the caller undoes its local commit (undoCommitLocked). It is
// called with t.mu held, releases it for the etcd round trips and holds it
// again when it returns.
func (t *Trigger) coordDecideUnlocked(ctx context.Context, rec *actionRecord, r *rule, keys []string, cks []cooldownKey, until time.Time) (guard, reason string, err error) {
	c := t.coord
	if c == nil {
		return "", "", nil
	}
	if err := t.coordReady(); err != nil {
		return "", "", err
	}
	cfg := t.cfg
	var own *ownedAction
	var saved []byte
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		if own != nil {
			c.owned[rec.RequestID], c.saved[rec.RequestID] = own, saved
		}
	}()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), coordOpTimeout)
	defer cancel()
	now := rec.DecidedAt
	owner := c.st.ID()
	fail := func(err error) (string, string, error) {
		return "", "", fmt.Errorf("%w: %w", errCoordination, err)
	}

	// The shared memory, read in parallel.
	var names []string
	for _, k := range keys {
		names = append(names, dedupKey(k))
	}
	var cdNames []string
	for _, k := range cks {
		if k.action != legacyRuleScope {
			cdNames = append(cdNames, cooldownName(k))
		}
	}
	names = append(names, cdNames...)
	if rec.ObjectKey != "" {
		names = append(names, holdKey(rec.ObjectKey))
	}
	// The claim's transaction compares what was read (Unchanged): a quick
	// decide-call-release by another replica in between is seen, and the
	// memory read again.
	var res coordination.Result
	var sa sharedAction
	var recJSON []byte
	var prev []cooldownJSON
	for attempt := 0; ; attempt++ {
		entries, err := c.getAllEntries(ctx, names)
		if err != nil {
			return fail(err)
		}
		got := make(map[string][]byte, len(entries))
		unchanged := make(map[string]int64, len(names))
		for _, n := range names {
			unchanged[n] = entries[n].ModRevision // 0: absent
			if e, ok := entries[n]; ok {
				got[n] = e.Value
			}
		}
		for _, k := range keys {
			var sd sharedDedup
			if v, ok := got[dedupKey(k)]; ok && json.Unmarshal(v, &sd) == nil && sd.Until.After(now) {
				return guardDedup, fmt.Sprintf("already handled for this alert group and startsAt (request id %s, replica %s)", sd.RequestID, sd.Owner), nil
			}
		}
		prev = nil
		for _, n := range cdNames {
			var sc sharedCooldown
			v, ok := got[n]
			if !ok || json.Unmarshal(v, &sc) != nil {
				continue
			}
			prev = append(prev, cooldownJSON{Action: sc.Action, Object: sc.Object, At: sc.At})
			if until := sc.At.Add(r.cooldown); r.cooldown > 0 && until.After(now) {
				return guardCooldown, fmt.Sprintf("last %s on this object at %s by replica %s; cooldown %s until %s", sc.Action,
					sc.At.UTC().Format(time.RFC3339), sc.Owner, r.cooldown, until.UTC().Format(time.RFC3339)), nil
			}
		}
		if rec.ObjectKey != "" {
			var h sharedHold
			if v, ok := got[holdKey(rec.ObjectKey)]; ok && json.Unmarshal(v, &h) == nil && h.Until.After(now) {
				return guardTargetState, fmt.Sprintf("action %s (%s, rule %s, replica %s) on this object ended %s; the object stays locked until %s (it may still be running)",
					h.RequestID, h.Action, h.Rule, h.Owner, h.Outcome, h.Until.UTC().Format(time.RFC3339)), nil
			}
		}

		// The claim, with everything it decides.
		sa = sharedAction{Owner: owner, Record: rec, Prev: prev}
		recJSON, err = json.Marshal(sa)
		if err != nil {
			return fail(err)
		}
		records := map[string][]byte{actionKey(rec.RequestID): recJSON}
		for _, k := range keys {
			records[dedupKey(k)], _ = json.Marshal(sharedDedup{Until: until, RequestID: rec.RequestID, Owner: owner})
		}
		for _, k := range cks {
			if k.action != legacyRuleScope {
				records[cooldownName(k)], _ = json.Marshal(sharedCooldown{Action: k.action, Object: k.object, At: now, RequestID: rec.RequestID, Owner: owner})
			}
		}
		res, err = c.st.Decide(ctx, coordination.Decision{
			Key:       claimKeyOf(rec),
			Records:   records,
			Rate:      c.rate(cfg, rec.RequestID),
			Slot:      c.slot(cfg, rec.RequestID),
			Unchanged: unchanged,
		})
		if err != nil {
			// The outcome is unknown: if it committed, the record names this
			// replica with status decided and the scan releases it.
			return fail(err)
		}
		if res.Refused != coordination.RefusedChanged || attempt == 2 {
			break
		}
	}
	switch res.Refused {
	case "":
	case coordination.RefusedClaimed:
		return guardDedup, fmt.Sprintf("object %s is claimed by replica %s: an action on it is in flight there", claimKeyOf(rec), res.Owner), nil
	case coordination.RefusedRateLimit:
		return guardRateLimit, fmt.Sprintf("rate limit of %d actions per %s reached (counted over every replica)",
			cfg.RateLimit.Actions, time.Duration(cfg.RateLimit.Per)), nil
	case coordination.RefusedMaxConcurrent:
		return guardConcurrency, fmt.Sprintf("max_concurrent %d actions in flight over every replica", cfg.MaxConcurrent), nil
	case coordination.RefusedChanged:
		return guardDedup, "the shared memory of this object kept changing while this replica decided: other replicas are acting on it", nil
	default:
		return fail(fmt.Errorf("refused: %s", res.Refused))
	}
	if res.Owner != owner {
		// The session changed between reading its ID and committing.
		sa.Owner = res.Owner
		if recJSON, err = json.Marshal(sa); err == nil {
			err = c.st.Put(ctx, actionKey(rec.RequestID), recJSON)
		}
		if err != nil {
			return fail(err)
		}
	}
	own, saved = &ownedAction{owner: res.Owner, prev: prev}, recJSON
	return "", "", nil
}

// undoCoordLocked takes back a decision the shared store refused, or one
// that could not be audited after it won its claim (then the claim and the
// shared memory it took are given back too). Other decisions may have been
// committed locally since, so only what this one added goes.
func (t *Trigger) undoCoordLocked(rec *actionRecord) {
	t.coordReleaseLocked(rec, outcomeAbandoned) // nothing when the claim was refused
	t.store.forget(rec.Memory)
	rec.Memory = nil
	t.store.removeAction(rec.RequestID)
}

func (c *coordinator) rate(cfg config.TriggerConfig, rid string) *coordination.Rate {
	return &coordination.Rate{Key: sharedKey, Limit: cfg.RateLimit.Actions, Window: time.Duration(cfg.RateLimit.Per), ID: rid}
}

func (c *coordinator) slot(cfg config.TriggerConfig, rid string) *coordination.Slot {
	return &coordination.Slot{Key: sharedKey, Max: cfg.MaxConcurrent, ID: rid}
}

// getAll reads records concurrently; absent ones are left out.
func (c *coordinator) getAll(ctx context.Context, names []string) (map[string][]byte, error) {
	entries, err := c.getAllEntries(ctx, names)
	out := make(map[string][]byte, len(entries))
	for n, e := range entries {
		out[n] = e.Value
	}
	return out, err
}

// getAllEntries is getAll with each record's revision.
func (c *coordinator) getAllEntries(ctx context.Context, names []string) (map[string]coordination.Entry, error) {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	out := make(map[string]coordination.Entry, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var first error
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, found, err := c.st.Get(ctx, n)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && first == nil:
				first = err
			case found:
				out[n] = e
			}
		}()
	}
	wg.Wait()
	return out, first
}

// coordFence is the last check before a call: this replica still owns the
// action under the session it claimed it with, and its lease outlives the
// margin. "" when the call may go.
func (t *Trigger) coordFence(rec *actionRecord) string {
	c := t.coord
	if c == nil {
		return ""
	}
	t.mu.Lock()
	o := c.owned[rec.RequestID]
	t.mu.Unlock()
	switch {
	case o == nil || o.owner != c.st.ID():
		return "this replica's etcd session changed since it claimed the object: the claim may belong to another replica now"
	case !c.st.LeaseAlive(t.ctx, c.margin):
		return fmt.Sprintf("this replica's etcd lease cannot be confirmed to live %s more (fencing): another replica could claim the object meanwhile", c.margin)
	}
	return ""
}

// coordBackend is the store's backend with coordination: the shared
// records are written as the trigger saves (status changes of its own
// actions, fenced); nothing is kept locally.
type coordBackend struct{ t *Trigger }

// Load gives an empty memory: the shared one is read where it decides, and
// actions of replicas that stopped (this one before a restart included)
// are adopted from etcd.
func (b *coordBackend) Load() (*state, error) { return newState(), nil }

func (b *coordBackend) KeepAside(time.Time) (string, error) { return "", nil }

// Save writes the records of owned actions that changed since they were
// last written, and this replica's pending decisions (so that another
// replica takes them over if this one dies). It runs under the Trigger's
// mutex.
func (b *coordBackend) Save(s *state) error {
	c := b.t.coord
	if err := b.savePending(s); err != nil {
		return err
	}
	for _, a := range s.actions {
		o := c.owned[a.RequestID]
		if o == nil {
			continue
		}
		data, err := json.Marshal(sharedAction{Owner: o.owner, AdoptedFrom: o.adoptedFrom, Record: a, Prev: o.prev})
		if err != nil {
			return err
		}
		if string(data) == string(c.saved[a.RequestID]) {
			continue
		}
		if o.owner != c.st.ID() {
			// Claimed under a session that ended: the replica that adopts it
			// writes it now (coordDropStale drops it here).
			continue
		}
		// Not cancelled by Close: "sent" after a call in flight at
		// shutdown must reach the adopting replica.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(b.t.ctx), coordOpTimeout)
		err = c.st.Put(ctx, actionKey(a.RequestID), data)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %w", errCoordination, err)
		}
		c.saved[a.RequestID] = data
	}
	return nil
}

// sharedPending is a pending decision in etcd with the replica keeping it.
type sharedPending struct {
	Owner    string           `json:"owner"`
	Decision *pendingDecision `json:"decision"`
}

// savePending writes the pending decisions that changed and removes those
// that are gone, under this session's owner ID.
func (b *coordBackend) savePending(s *state) error {
	c := b.t.coord
	me := c.st.ID()
	if me == "" {
		if len(s.pending) == 0 && len(c.savedPending) == 0 {
			return nil
		}
		return fmt.Errorf("%w: %w", errCoordination, coordination.ErrNoSession)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.t.ctx), coordOpTimeout)
	defer cancel()
	current := map[string]bool{}
	for _, pd := range s.pending {
		k := pendingKey(pd.ID, me)
		current[k] = true
		data, err := json.Marshal(sharedPending{Owner: me, Decision: pd})
		if err != nil {
			return err
		}
		if string(data) == string(c.savedPending[k]) {
			continue
		}
		if err := c.st.Put(ctx, k, data); err != nil {
			return fmt.Errorf("%w: %w", errCoordination, err)
		}
		c.savedPending[k] = data
	}
	for k := range c.savedPending {
		if current[k] {
			continue
		}
		if err := c.st.Delete(ctx, k); err != nil {
			return fmt.Errorf("%w: %w", errCoordination, err)
		}
		delete(c.savedPending, k)
	}
	return nil
}

// coordAdoptPending takes over the pending decisions kept by replicas that
// stopped: this one evaluates them again when they are due, through the
// whole pipeline (and the claim), as their replica would have.
func (t *Trigger) coordAdoptPending(ctx context.Context, alive map[string]bool) {
	c := t.coord
	entries, err := c.st.List(ctx, "pending/")
	if err != nil {
		return
	}
	me := c.st.ID()
	for _, e := range entries {
		var sp sharedPending
		if json.Unmarshal(e.Value, &sp) != nil || sp.Decision == nil || sp.Owner == "" || sp.Owner == me {
			continue
		}
		ok, seen := alive[sp.Owner]
		if !seen {
			if ok, err = c.st.OwnerAlive(ctx, sp.Owner); err != nil {
				return
			}
			alive[sp.Owner] = ok
		}
		if ok {
			continue
		}
		// Removed first: of two replicas that see it, the one whose delete
		// comes second still keeps a copy, which the claim makes harmless.
		if err := c.st.Delete(ctx, e.Key); err != nil {
			return
		}
		pd := sp.Decision
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return
		}
		if t.store.pendingByID(pd.ID) == nil {
			t.store.putPending(pd)
			_ = t.audit.write(pendingLine{Time: t.now(), Event: eventPending, Rule: pd.Rule, Object: pd.Object, GroupKey: pd.GroupKey,
				Guard: pd.Guard, State: "adopted", Reason: "kept by replica " + sp.Owner + ", which stopped", Next: pd.Next, RequestID: pd.ID}, false)
			t.logger.Warn("adopted a pending decision of a replica that stopped", "rule", pd.Rule, "object", pd.Object, "guard", pd.Guard, "from", sp.Owner)
			t.pendingChangedLocked()
		}
		t.mu.Unlock()
	}
}

// coordReleaseLocked ends an owned action in the shared store (release.go
// calls it first): its claim and slot go; an action that never reached
// Veeam gives back its dedup keys, cooldowns and token; one that ended
// without a known result leaves a hold on its object. Failures are logged:
// the record stays, and the replica's scan (or, once its lease is gone,
// another replica) ends it.
func (t *Trigger) coordReleaseLocked(rec *actionRecord, outcome string) {
	c := t.coord
	if c == nil {
		return
	}
	o := c.owned[rec.RequestID]
	if o == nil {
		return
	}
	delete(c.owned, rec.RequestID)
	delete(c.saved, rec.RequestID)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), coordOpTimeout)
	defer cancel()
	now := t.now()
	records := map[string][]byte{}
	if holdsObject(rec, outcome) {
		h := sharedHold{objectHold: objectHold{Object: rec.ObjectKey, RequestID: rec.RequestID, Rule: rec.Rule, Action: rec.Action,
			Outcome: outcome, Until: now.Add(time.Duration(t.cfg.ActionTimeout))}, Owner: o.owner}
		records[holdKey(rec.ObjectKey)], _ = json.Marshal(h)
	}
	unsent := rec.Status == statusDecided || rec.Unsent
	if err := t.coordEnd(ctx, rec, o, records, unsent); err != nil {
		t.logger.Error("the shared store could not record the end of an action; it is ended again later", "rule", rec.Rule,
			"object", rec.Object, "request_id", rec.RequestID, "err", err)
	}
}

// coordEnd releases the claim and slot, writes records, removes the action
// record and, for an unsent action, gives back its shared memory.
func (t *Trigger) coordEnd(ctx context.Context, rec *actionRecord, o *ownedAction, records map[string][]byte, unsent bool) error {
	c := t.coord
	if o.owner != c.st.ID() {
		return fmt.Errorf("etcd: %w: the claim on %s went with the lease", coordination.ErrLeaseLost, claimKeyOf(rec))
	}
	slot := c.slot(t.cfg, rec.RequestID)
	err := c.st.Release(ctx, claimKeyOf(rec), records, slot)
	if errors.Is(err, coordination.ErrNotOwner) {
		err = nil
		for k, v := range records {
			err = errors.Join(err, c.st.Put(ctx, k, v))
		}
		err = errors.Join(err, c.st.ReleaseSlot(ctx, *slot))
	}
	if err != nil {
		return err
	}
	if unsent {
		if rec.Memory != nil {
			for _, k := range rec.Memory.DedupKeys {
				err = errors.Join(err, c.st.Delete(ctx, dedupKey(k)))
			}
			for _, cj := range rec.Memory.Cooldowns {
				k := cj.key()
				if k.action == legacyRuleScope {
					continue
				}
				i := slices.IndexFunc(o.prev, func(p cooldownJSON) bool { return p.key() == k })
				if i < 0 {
					err = errors.Join(err, c.st.Delete(ctx, cooldownName(k)))
					continue
				}
				v, _ := json.Marshal(sharedCooldown{Action: k.action, Object: k.object, At: o.prev[i].At, Owner: "restored"})
				err = errors.Join(err, c.st.Put(ctx, cooldownName(k), v))
			}
		}
		err = errors.Join(err, c.st.ReturnToken(ctx, *c.rate(t.cfg, rec.RequestID)))
	}
	if err != nil {
		return err
	}
	return c.st.Delete(ctx, actionKey(rec.RequestID))
}

// adoptedAudit is the audit line of an action taken over from a replica
// that stopped.
type adoptedAudit struct {
	actionAudit
	Status  string `json:"status"`
	From    string `json:"from"`
	By      string `json:"by"`
	Message string `json:"message"`
}

// coordLoop keeps the health flag current, ends this replica's leftover
// records, adopts actions of replicas that stopped and refreshes the view
// /trigger shows, until Close.
func (t *Trigger) coordLoop() {
	defer t.wg.Done()
	c := t.coord
	gone := c.st.MembersGone(t.ctx)
	tick := time.NewTicker(coordCheckEvery)
	defer tick.Stop()
	lastPrune := time.Now()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		case _, ok := <-gone:
			if !ok {
				gone = nil
			}
		}
		if !c.check(t.ctx) {
			t.mu.Lock()
			if c.view != nil {
				v := *c.view
				v.Up, v.Reason = false, c.downReason()
				c.view = &v
			}
			t.mu.Unlock()
			continue
		}
		t.coordScan()
		if time.Since(lastPrune) >= coordPruneEvery {
			lastPrune = time.Now()
			t.coordPrune()
		}
	}
}

// coordPruneEvery is how often expired shared memory is removed.
const coordPruneEvery = 10 * time.Minute

// coordPrune removes shared dedup keys, cooldowns and holds that can no
// longer matter, as the state file's prune does. Every replica may do it;
// removing an expired record twice is harmless.
func (t *Trigger) coordPrune() {
	c := t.coord
	t.mu.Lock()
	keep := t.keepCooldownLocked()
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.ctx, time.Minute)
	defer cancel()
	now := t.now()
	expired := func(prefix string, until func([]byte) (time.Time, bool)) {
		entries, err := c.st.List(ctx, prefix)
		if err != nil {
			return
		}
		for _, e := range entries {
			if u, ok := until(e.Value); ok && !u.After(now) {
				_ = c.st.Delete(ctx, e.Key)
			}
		}
	}
	expired("dedup/", func(v []byte) (time.Time, bool) {
		var d sharedDedup
		return d.Until, json.Unmarshal(v, &d) == nil
	})
	expired("cooldowns/", func(v []byte) (time.Time, bool) {
		var cd sharedCooldown
		return cd.At.Add(keep), json.Unmarshal(v, &cd) == nil
	})
	expired("holds/", func(v []byte) (time.Time, bool) {
		var h sharedHold
		return h.Until, json.Unmarshal(v, &h) == nil
	})
}

// coordScan looks at every shared action once.
func (t *Trigger) coordScan() {
	c := t.coord
	ctx, cancel := context.WithTimeout(t.ctx, coordOpTimeout)
	defer cancel()
	entries, err := c.st.List(ctx, "actions/")
	if err != nil {
		return
	}
	me := c.st.ID()
	t.coordDropStale(me)
	alive := map[string]bool{}
	view := &coordStatus{Store: "etcd", Up: true, Replica: me, Actions: []coordActionJSON{}, Claims: []coordClaimJSON{}}
	for _, e := range entries {
		var sa sharedAction
		if json.Unmarshal(e.Value, &sa) != nil || sa.Record == nil || sa.Record.RequestID == "" {
			continue
		}
		rec := sa.Record
		view.Actions = append(view.Actions, coordActionJSON{RequestID: rec.RequestID, Rule: rec.Rule, Action: rec.Action, Target: rec.Target,
			Object: rec.Object, ObjectKey: rec.ObjectKey, Status: rec.Status, Owner: sa.Owner, AdoptedFrom: sa.AdoptedFrom, DecidedAt: rec.DecidedAt})
		if sa.Owner == me {
			t.coordLeftover(ctx, &sa)
			continue
		}
		ok, seen := alive[sa.Owner]
		if !seen {
			var err error
			if ok, err = c.st.OwnerAlive(ctx, sa.Owner); err != nil {
				return
			}
			alive[sa.Owner] = ok
		}
		if !ok {
			t.coordAdopt(ctx, &sa)
		}
	}
	t.coordAdoptPending(ctx, alive)
	if claims, err := c.st.Claims(ctx); err == nil {
		for _, cl := range claims {
			view.Claims = append(view.Claims, coordClaimJSON{Object: cl.Key, Owner: cl.Owner})
		}
	}
	view.Members, _ = c.st.Members(ctx)
	view.CheckedAt = t.now()
	t.mu.Lock()
	c.view = view
	t.mu.Unlock()
}

// coordDropStale stops following the actions this replica owned under a
// session that has ended (me is the current one): their claims went with
// the lease, and the replica that adopts them (this one too, under its new
// session) tracks them from the shared record. Their trackers stop when
// they find them gone from the local state.
func (t *Trigger) coordDropStale(me string) {
	if me == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for rid, o := range t.coord.owned {
		if o.owner == me {
			continue
		}
		delete(t.coord.owned, rid)
		delete(t.coord.saved, rid)
		if rec := t.store.action(rid); rec != nil {
			t.logger.Warn("this replica's etcd session changed: an action claimed under the old one is left to the replica that adopts it",
				"rule", rec.Rule, "object", rec.Object, "request_id", rid, "status", rec.Status, "old_owner", o.owner)
			t.store.removeAction(rid)
		}
	}
}

// coordStaleLocked reports whether this replica no longer owns an action
// it follows: it was claimed under a session that has ended (or dropped for
// that reason).
func (t *Trigger) coordStaleLocked(rec *actionRecord) bool {
	c := t.coord
	if c == nil {
		return false
	}
	o := c.owned[rec.RequestID]
	return t.store.action(rec.RequestID) != rec || o == nil || o.owner != c.st.ID()
}

// coordLeftover ends a record of this replica's session that no local
// action matches: a Decide whose answer was lost after it committed, or an
// end whose shared part failed. It was never sent by this session if it is
// still decided.
func (t *Trigger) coordLeftover(ctx context.Context, sa *sharedAction) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := sa.Record
	if t.store.action(rec.RequestID) != nil || t.coord.owned[rec.RequestID] != nil {
		return
	}
	o := &ownedAction{owner: sa.Owner, adoptedFrom: sa.AdoptedFrom, prev: sa.Prev}
	if err := t.coordEnd(ctx, rec, o, nil, rec.Status == statusDecided); err != nil {
		t.logger.Debug("leftover shared action not ended yet", "request_id", rec.RequestID, "err", err)
		return
	}
	t.logger.Info("leftover shared record of this replica ended", "rule", rec.Rule, "object", rec.Object, "request_id", rec.RequestID, "status", rec.Status)
}

// coordAdopt takes over an action whose owner's lease is gone: it claims
// the object (the owner's claim went with its lease) and ends or tracks
// the action here. sa is the record as listed, which may be older than the
// owner's last write: once the claim is won (the dead owner's fenced writes
// can no longer land) the record is read again and that status decides. A
// record found decided was never sent: abandoned and released. One found
// sending may have reached Veeam: uncertain, never resent, its memory and a
// hold kept. One found sent is tracked to its end.
func (t *Trigger) coordAdopt(ctx context.Context, sa *sharedAction) {
	c := t.coord
	rec := sa.Record
	if kinds[rec.Action] == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.store.action(rec.RequestID) != nil {
		return
	}
	key := claimKeyOf(rec)
	res, err := c.st.Decide(ctx, coordination.Decision{Key: key})
	if err != nil || !res.Won {
		return
	}
	giveBack := func(why string, err error) {
		if rerr := c.st.Release(ctx, key, nil, nil); rerr != nil {
			t.logger.Error("a claim taken to adopt an action could not be released; it goes with this replica's lease", "object", key, "err", rerr)
		}
		t.logger.Debug("action not adopted", "request_id", rec.RequestID, "reason", why, "err", err)
	}
	e, found, err := c.st.Get(ctx, actionKey(rec.RequestID))
	var cur sharedAction
	switch {
	case err != nil:
		giveBack("its record could not be read again", err)
		return
	case !found:
		giveBack("it ended meanwhile", nil)
		return
	case json.Unmarshal(e.Value, &cur) != nil || cur.Record == nil || claimKeyOf(cur.Record) != key || cur.Owner == res.Owner:
		giveBack("its record changed meanwhile", nil)
		return
	}
	sa, rec = &cur, cur.Record
	data, err := json.Marshal(sharedAction{Owner: res.Owner, AdoptedFrom: sa.Owner, Record: rec, Prev: sa.Prev})
	if err == nil {
		err = c.st.Put(ctx, actionKey(rec.RequestID), data)
	}
	if err != nil {
		giveBack("its record could not be written", err)
		return
	}
	c.owned[rec.RequestID] = &ownedAction{owner: res.Owner, adoptedFrom: sa.Owner, prev: sa.Prev}
	c.saved[rec.RequestID] = data
	msg := map[string]string{
		statusDecided: "decided but never sent by its replica, which stopped: it is not sent now",
		statusSending: "its replica stopped while sending the call: whether " + rec.Target + " received it is unknown, and it is not resent",
		statusSent:    "its replica stopped while tracking it: tracked here to its end",
	}[rec.Status]
	if err := t.audit.write(adoptedAudit{actionAudit: rec.audit(t.now(), eventAdopted), Status: rec.Status, From: sa.Owner, By: res.Owner, Message: msg}, true); err != nil {
		t.logger.Error("audit log not written", "err", err)
	}
	t.logger.Warn("adopted an action of a replica that stopped", "rule", rec.Rule, "object", rec.Object, "request_id", rec.RequestID,
		"status", rec.Status, "from", sa.Owner)
	t.store.actions = append(t.store.actions, rec)
	switch rec.Status {
	case statusDecided:
		t.finishLocked(rec, outcomeAbandoned, "decided by replica "+sa.Owner+", which stopped before sending it; never sent", true)
	case statusSending:
		t.finishLocked(rec, outcomeUncertain, "replica "+sa.Owner+" stopped while sending the call; whether "+rec.Target+
			" received it is unknown and it is not repeated: check "+rec.Object, true)
	default:
		t.startLocked(rec, true)
	}
}

// coordStatus is the shared state in /trigger: which replica owns what.
type coordStatus struct {
	Store     string            `json:"store"`
	Up        bool              `json:"up"`
	Reason    string            `json:"reason,omitempty"`
	Replica   string            `json:"replica"`
	Members   []string          `json:"members"`
	Claims    []coordClaimJSON  `json:"claims"`
	Actions   []coordActionJSON `json:"actions"`
	CheckedAt time.Time         `json:"checked_at,omitzero"`
}

type coordClaimJSON struct {
	Object string `json:"object"`
	Owner  string `json:"owner"`
}

type coordActionJSON struct {
	RequestID   string    `json:"request_id"`
	Rule        string    `json:"rule"`
	Action      string    `json:"action"`
	Target      string    `json:"target"`
	Object      string    `json:"object"`
	ObjectKey   string    `json:"object_key,omitempty"`
	Status      string    `json:"status"`
	Owner       string    `json:"owner"`
	AdoptedFrom string    `json:"adopted_from,omitempty"`
	DecidedAt   time.Time `json:"decided_at"`
}

// coordStatusLocked is the coordination part of /trigger (nil without
// coordination): the view of the last scan, with the health of now.
func (t *Trigger) coordStatusLocked() *coordStatus {
	c := t.coord
	if c == nil {
		return nil
	}
	v := coordStatus{Store: "etcd", Replica: c.st.ID(), Members: []string{}, Claims: []coordClaimJSON{}, Actions: []coordActionJSON{}}
	if c.view != nil {
		v = *c.view
	}
	v.Up, v.Reason = c.up.Load(), c.downReason()
	return &v
}

// coordClose ends the session: its lease is revoked, so its claims go at
// once and another replica adopts what this one was tracking.
func (t *Trigger) coordClose() error {
	if t.coord == nil {
		return nil
	}
	err := t.coord.st.Close()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// It expired already: its claims are gone all the same.
		return nil
	}
	return err
}
