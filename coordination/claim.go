package coordination

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxAttempts bounds the retries of a transaction whose shared counter
// changed between the read and the write.
const maxAttempts = 64

// Refusal says which guard refused a Decision.
type Refusal string

// Refusals; "" means the decision won.
const (
	RefusedClaimed       Refusal = "claimed"        // another session (or an earlier call of this one) holds the object
	RefusedRateLimit     Refusal = "rate_limit"     // Limit uses in the last Window
	RefusedMaxConcurrent Refusal = "max_concurrent" // Max slots held
	RefusedChanged       Refusal = "changed"        // a record in Unchanged changed since it was read
)

// Rate asks for one use of a rate limit shared by every replica: at most
// Limit uses within any Window. ID names the use so that ReturnToken can
// give it back; taking an ID already counted does not count it twice.
type Rate struct {
	Key    string
	Limit  int
	Window time.Duration
	ID     string
}

// Slot asks for one of Max concurrency slots shared by every replica, held
// by ID until ReleaseSlot or Release frees it. Slots outlive leases: an
// adopted action keeps its slot.
type Slot struct {
	Key string
	Max int
	ID  string
}

// Decision is one claim of an object with everything that must happen with
// it, or not at all, in one transaction.
type Decision struct {
	Key     string            // the object: created if absent, bound to this session's lease
	Records map[string][]byte // data records written with the claim (they outlive the lease)
	Rate    *Rate             // optional
	Slot    *Slot             // optional
	// Unchanged: data records the decision was based on, with the
	// ModRevision they were read at (0: absent). If any changed since, the
	// decision is refused (RefusedChanged) and the caller reads again.
	Unchanged map[string]int64
}

// Result is what a Decision got.
type Result struct {
	Won     bool
	Owner   string  // owner ID holding the claim: this session's when Won
	Refused Refusal // why not Won
}

// ClaimInfo is one held claim.
type ClaimInfo struct {
	Key   string
	Owner string
}

func (s *Store) claimKey(key string) string { return s.cfg.Prefix + claimsDir + key }
func (s *Store) rateKey(key string) string  { return s.cfg.Prefix + ratesDir + key }
func (s *Store) slotKey(key string) string  { return s.cfg.Prefix + slotsDir + key }

// Claim claims key for this session and writes records in the same
// transaction. A loser (won false) learns the owner and writes nothing.
// owner equal to ID() means this session already holds the object (for
// example when an earlier Claim returned an error after committing).
// An error means the outcome is unknown: do not act on it.
func (s *Store) Claim(ctx context.Context, key string, records map[string][]byte) (won bool, owner string, err error) {
	r, err := s.Decide(ctx, Decision{Key: key, Records: records})
	return r.Won, r.Owner, err
}

// rateState is the shared value of a Rate key.
type rateState struct {
	Uses []rateUse `json:"uses"`
}

type rateUse struct {
	ID string `json:"id"`
	At int64  `json:"at"` // Unix nanoseconds, the taker's clock
}

// slotState is the shared value of a Slot key.
type slotState struct {
	Holders []string `json:"holders"`
}

// counter is a shared key read in the same snapshot as the claim, written
// back only if nobody changed it in between.
type counter struct {
	key   string
	rev   int64 // ModRevision read; 0 when absent
	value []byte
}

func (c counter) cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(c.key), "=", c.rev)
}

func (c counter) put() clientv3.Op { return clientv3.OpPut(c.key, string(c.value)) }

// read gets keys in one snapshot.
func (s *Store) read(ctx context.Context, keys ...string) ([]counter, error) {
	cli, err := s.client()
	if err != nil {
		return nil, err
	}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	out := make([]counter, len(keys))
	for i, k := range keys {
		out[i].key = k
		if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
			out[i].rev, out[i].value = kvs[0].ModRevision, kvs[0].Value
		}
	}
	return out, nil
}

func (r *Rate) check() error {
	if r.Key == "" || r.ID == "" || r.Limit < 1 || r.Window <= 0 {
		return fmt.Errorf("rate %q: want a key, an id, limit >= 1 and a positive window", r.Key)
	}
	return nil
}

func (sl *Slot) check() error {
	if sl.Key == "" || sl.ID == "" || sl.Max < 1 {
		return fmt.Errorf("slot %q: want a key, an id and max >= 1", sl.Key)
	}
	return nil
}

// take adds one use to c if the limit allows; false when it does not.
func (r *Rate) take(c *counter, now time.Time) (bool, error) {
	var st rateState
	if len(c.value) > 0 {
		if err := json.Unmarshal(c.value, &st); err != nil {
			return false, fmt.Errorf("rate %s: corrupt value: %w", r.Key, err)
		}
	}
	cut := now.Add(-r.Window).UnixNano()
	st.Uses = slices.DeleteFunc(st.Uses, func(u rateUse) bool { return u.At <= cut })
	if !slices.ContainsFunc(st.Uses, func(u rateUse) bool { return u.ID == r.ID }) {
		if len(st.Uses) >= r.Limit {
			return false, nil
		}
		st.Uses = append(st.Uses, rateUse{ID: r.ID, At: now.UnixNano()})
	}
	var err error
	c.value, err = json.Marshal(st)
	return true, err
}

// take adds ID to the holders if a slot is free; false when none is.
func (sl *Slot) take(c *counter) (bool, error) {
	st, err := decodeSlots(sl.Key, c.value)
	if err != nil {
		return false, err
	}
	if !slices.Contains(st.Holders, sl.ID) {
		if len(st.Holders) >= sl.Max {
			return false, nil
		}
		st.Holders = append(st.Holders, sl.ID)
	}
	c.value, err = json.Marshal(st)
	return true, err
}

func decodeSlots(key string, v []byte) (slotState, error) {
	var st slotState
	if len(v) > 0 {
		if err := json.Unmarshal(v, &st); err != nil {
			return st, fmt.Errorf("slot %s: corrupt value: %w", key, err)
		}
	}
	return st, nil
}

// Decide claims d.Key, takes d.Rate's token and d.Slot's slot, and writes
// d.Records, all in one fenced transaction, or does none of it. A refusal
// is a Result with Won false, not an error. An error means the outcome is
// unknown (the transaction may have committed): do not act; a later Decide
// on the same key answers RefusedClaimed with Owner == ID() if it had.
func (s *Store) Decide(ctx context.Context, d Decision) (Result, error) {
	if err := checkKey(d.Key); err != nil {
		return Result{}, fmt.Errorf("etcd claim: %w", err)
	}
	for k := range d.Records {
		if err := checkKey(k); err != nil {
			return Result{}, fmt.Errorf("etcd claim %s: record: %w", d.Key, err)
		}
	}
	for k := range d.Unchanged {
		if err := checkKey(k); err != nil {
			return Result{}, fmt.Errorf("etcd claim %s: unchanged record: %w", d.Key, err)
		}
	}
	if d.Rate != nil {
		if err := d.Rate.check(); err != nil {
			return Result{}, fmt.Errorf("etcd claim %s: %w", d.Key, err)
		}
	}
	if d.Slot != nil {
		if err := d.Slot.check(); err != nil {
			return Result{}, fmt.Errorf("etcd claim %s: %w", d.Key, err)
		}
	}
	what := "claim " + d.Key
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	ck := s.claimKey(d.Key)
	keys := []string{ck}
	if d.Rate != nil {
		keys = append(keys, s.rateKey(d.Rate.Key))
	}
	if d.Slot != nil {
		keys = append(keys, s.slotKey(d.Slot.Key))
	}
	for range maxAttempts {
		_, sess, id, err := s.session()
		if err != nil {
			return Result{}, fmt.Errorf("etcd %s: %w", what, err)
		}
		// A bare claim needs no read: the transaction's Else branch tells
		// the owner. Counters are read first to compute their new values.
		cs := []counter{{key: ck}}
		if len(keys) > 1 {
			cs, err = s.read(ctx, keys...)
			if err != nil {
				return Result{}, fmt.Errorf("etcd %s: read: %w", what, err)
			}
		}
		if cs[0].rev != 0 {
			return Result{Owner: string(cs[0].value), Refused: RefusedClaimed}, nil
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(ck), "=", 0)}
		for _, k := range sortedKeys(d.Unchanged) {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.dataKey(k)), "=", d.Unchanged[k]))
		}
		var ops []clientv3.Op
		i := 1
		if d.Rate != nil {
			ok, err := d.Rate.take(&cs[i], time.Now())
			if err != nil {
				return Result{}, fmt.Errorf("etcd %s: %w", what, err)
			}
			if !ok {
				return Result{Refused: RefusedRateLimit}, nil
			}
			cmps, ops = append(cmps, cs[i].cmp()), append(ops, cs[i].put())
			i++
		}
		if d.Slot != nil {
			ok, err := d.Slot.take(&cs[i])
			if err != nil {
				return Result{}, fmt.Errorf("etcd %s: %w", what, err)
			}
			if !ok {
				return Result{Refused: RefusedMaxConcurrent}, nil
			}
			cmps, ops = append(cmps, cs[i].cmp()), append(ops, cs[i].put())
		}
		ops = append(ops, clientv3.OpPut(ck, id, clientv3.WithLease(sess.Lease())))
		for _, k := range sortedKeys(d.Records) {
			ops = append(ops, clientv3.OpPut(s.dataKey(k), string(d.Records[k])))
		}
		resp, err := s.fencedTxnAs(ctx, what, sess, id, cmps, ops, clientv3.OpGet(ck))
		if err != nil {
			return Result{}, err
		}
		if resp.Succeeded {
			return Result{Won: true, Owner: id}, nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			return Result{Owner: string(kvs[0].Value), Refused: RefusedClaimed}, nil
		}
		if changed, err := s.changed(ctx, d.Unchanged); err != nil {
			return Result{}, fmt.Errorf("etcd %s: read: %w", what, err)
		} else if changed {
			return Result{Refused: RefusedChanged}, nil
		}
		// A counter changed under us: read again.
	}
	return Result{}, fmt.Errorf("etcd %s: %w", what, ErrContention)
}

// changed reports whether a data record's ModRevision differs from the
// one given (0: absent).
func (s *Store) changed(ctx context.Context, revs map[string]int64) (bool, error) {
	if len(revs) == 0 {
		return false, nil
	}
	cli, err := s.client()
	if err != nil {
		return false, err
	}
	for _, k := range sortedKeys(revs) {
		resp, err := cli.Get(ctx, s.dataKey(k))
		if err != nil {
			return false, err
		}
		var rev int64
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
		}
		if rev != revs[k] {
			return true, nil
		}
	}
	return false, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Release ends this session's claim on key, writes records and, if slot is
// not nil, frees slot.ID's slot, in one transaction. ErrNotOwner (wrapped)
// when the claim is gone or another session's; nothing is written then.
func (s *Store) Release(ctx context.Context, key string, records map[string][]byte, slot *Slot) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("etcd release: %w", err)
	}
	what := "release " + key
	ck := s.claimKey(key)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	for range maxAttempts {
		_, sess, id, err := s.session()
		if err != nil {
			return fmt.Errorf("etcd %s: %w", what, err)
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.Value(ck), "=", id),
			clientv3.Compare(clientv3.LeaseValue(ck), "=", sess.Lease()),
		}
		ops := []clientv3.Op{clientv3.OpDelete(ck)}
		if slot != nil {
			cs, err := s.read(ctx, s.slotKey(slot.Key))
			if err != nil {
				return fmt.Errorf("etcd %s: read: %w", what, err)
			}
			if changed, err := freeSlot(slot, &cs[0]); err != nil {
				return fmt.Errorf("etcd %s: %w", what, err)
			} else if changed {
				cmps, ops = append(cmps, cs[0].cmp()), append(ops, cs[0].put())
			}
		}
		for _, k := range sortedKeys(records) {
			if err := checkKey(k); err != nil {
				return fmt.Errorf("etcd %s: record: %w", what, err)
			}
			ops = append(ops, clientv3.OpPut(s.dataKey(k), string(records[k])))
		}
		resp, err := s.fencedTxnAs(ctx, what, sess, id, cmps, ops, clientv3.OpGet(ck))
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || string(kvs[0].Value) != id || kvs[0].Lease != int64(sess.Lease()) {
			return fmt.Errorf("etcd %s: %w", what, ErrNotOwner)
		}
		// The slot key changed under us: read again.
	}
	return fmt.Errorf("etcd %s: %w", what, ErrContention)
}

// freeSlot removes slot.ID from the holders; false when it held none.
func freeSlot(slot *Slot, c *counter) (bool, error) {
	st, err := decodeSlots(slot.Key, c.value)
	if err != nil {
		return false, err
	}
	n := len(st.Holders)
	st.Holders = slices.DeleteFunc(st.Holders, func(h string) bool { return h == slot.ID })
	if len(st.Holders) == n {
		return false, nil
	}
	c.value, err = json.Marshal(st)
	return true, err
}

// modifyCounter applies change to one shared key with a fenced
// compare-and-swap, retrying while others change it.
func (s *Store) modifyCounter(ctx context.Context, what, key string, change func(*counter) (bool, error)) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	for range maxAttempts {
		cs, err := s.read(ctx, key)
		if err != nil {
			return fmt.Errorf("etcd %s: read: %w", what, err)
		}
		changed, err := change(&cs[0])
		if err != nil {
			return fmt.Errorf("etcd %s: %w", what, err)
		}
		if !changed {
			return nil
		}
		resp, err := s.fencedTxn(ctx, what, []clientv3.Cmp{cs[0].cmp()}, []clientv3.Op{cs[0].put()})
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("etcd %s: %w", what, ErrContention)
}

// ReleaseSlot frees slot.ID's slot (nothing if it holds none). Any replica
// may free it: the one that tracked the action to its end.
func (s *Store) ReleaseSlot(ctx context.Context, slot Slot) error {
	if err := slot.check(); err != nil {
		return fmt.Errorf("etcd release slot: %w", err)
	}
	return s.modifyCounter(ctx, "release slot "+slot.Key, s.slotKey(slot.Key), func(c *counter) (bool, error) {
		return freeSlot(&slot, c)
	})
}

// ReturnToken gives back rate.ID's use (nothing if it has none), for an
// action known never to have reached Veeam.
func (s *Store) ReturnToken(ctx context.Context, rate Rate) error {
	if err := rate.check(); err != nil {
		return fmt.Errorf("etcd return token: %w", err)
	}
	return s.modifyCounter(ctx, "return token "+rate.Key, s.rateKey(rate.Key), func(c *counter) (bool, error) {
		var st rateState
		if len(c.value) > 0 {
			if err := json.Unmarshal(c.value, &st); err != nil {
				return false, fmt.Errorf("rate %s: corrupt value: %w", rate.Key, err)
			}
		}
		n := len(st.Uses)
		st.Uses = slices.DeleteFunc(st.Uses, func(u rateUse) bool { return u.ID == rate.ID })
		if len(st.Uses) == n {
			return false, nil
		}
		var err error
		c.value, err = json.Marshal(st)
		return true, err
	})
}

// RateUses is how many uses of the rate key fall within the last window.
func (s *Store) RateUses(ctx context.Context, key string, window time.Duration) (int, error) {
	cs, err := s.read(ctx, s.rateKey(key))
	if err != nil {
		return 0, fmt.Errorf("etcd rate %s: %w", key, err)
	}
	var st rateState
	if len(cs[0].value) > 0 {
		if err := json.Unmarshal(cs[0].value, &st); err != nil {
			return 0, fmt.Errorf("etcd rate %s: corrupt value: %w", key, err)
		}
	}
	cut := time.Now().Add(-window).UnixNano()
	n := 0
	for _, u := range st.Uses {
		if u.At > cut {
			n++
		}
	}
	return n, nil
}

// SlotHolders lists the IDs holding slots of key.
func (s *Store) SlotHolders(ctx context.Context, key string) ([]string, error) {
	cs, err := s.read(ctx, s.slotKey(key))
	if err != nil {
		return nil, fmt.Errorf("etcd slot %s: %w", key, err)
	}
	st, err := decodeSlots(key, cs[0].value)
	if err != nil {
		return nil, fmt.Errorf("etcd %w", err)
	}
	return st.Holders, nil
}

// Owner says who holds the claim on key; held is false when nobody does
// (never claimed, released, or its owner's lease expired).
func (s *Store) Owner(ctx context.Context, key string) (owner string, held bool, err error) {
	cs, err := s.read(ctx, s.claimKey(key))
	if err != nil {
		return "", false, fmt.Errorf("etcd owner of %s: %w", key, err)
	}
	return string(cs[0].value), cs[0].rev != 0, nil
}

// Claims lists every held claim in key order, for /trigger.
func (s *Store) Claims(ctx context.Context) ([]ClaimInfo, error) {
	cli, err := s.client()
	if err != nil {
		return nil, fmt.Errorf("etcd claims: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	base := s.claimKey("")
	resp, err := cli.Get(ctx, base, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd claims: %w", err)
	}
	out := make([]ClaimInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, ClaimInfo{Key: string(kv.Key[len(base):]), Owner: string(kv.Value)})
	}
	return out, nil
}

// OwnerAlive reports whether the session with this owner ID still holds its
// lease. An in-flight action recorded by an owner that is not alive is for
// another replica to adopt (by claiming its object).
func (s *Store) OwnerAlive(ctx context.Context, owner string) (bool, error) {
	if owner == "" {
		return false, errors.New("etcd owner alive: empty owner")
	}
	cs, err := s.read(ctx, s.cfg.Prefix+membersDir+owner)
	if err != nil {
		return false, fmt.Errorf("etcd owner alive %s: %w", owner, err)
	}
	return cs[0].rev != 0, nil
}

// Members lists the owner IDs of the live sessions.
func (s *Store) Members(ctx context.Context) ([]string, error) {
	cli, err := s.client()
	if err != nil {
		return nil, fmt.Errorf("etcd members: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	base := s.cfg.Prefix + membersDir
	resp, err := cli.Get(ctx, base, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd members: %w", err)
	}
	out := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key[len(base):]))
	}
	return out, nil
}

// MembersGone sends the owner ID of every session that ends (closed, or its
// lease expired) from now on, so that a replica can look for actions to
// adopt at once instead of at its next poll. The channel closes when ctx
// ends or the store closes. Events missed while etcd was unreachable are
// not replayed: keep polling OwnerAlive as well.
func (s *Store) MembersGone(ctx context.Context) <-chan string {
	out := make(chan string, 16)
	go func() {
		defer close(out)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-s.ctx.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		base := s.cfg.Prefix + membersDir
		for ctx.Err() == nil {
			cli, err := s.client()
			if err != nil {
				select {
				case <-time.After(200 * time.Millisecond):
					continue
				case <-ctx.Done():
					return
				}
			}
			// The watch ends on cancellation, or on an error such as a
			// compacted revision: then watch again from now.
			for resp := range cli.Watch(clientv3.WithRequireLeader(ctx), base, clientv3.WithPrefix(), clientv3.WithFilterPut()) {
				for _, ev := range resp.Events {
					select {
					case out <- string(ev.Kv.Key[len(base):]):
					case <-ctx.Done():
						return
					}
				}
			}
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}()
	return out
}
