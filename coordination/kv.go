package coordination

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Entry is one stored record. Key is relative to the store's data keys, as
// callers name it.
type Entry struct {
	Key         string
	Value       []byte
	ModRevision int64 // for Update: the revision the caller saw
}

// checkKey refuses keys that would escape their directory or be ambiguous.
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if strings.ContainsRune(key, 0) {
		return fmt.Errorf("key %q contains NUL", key)
	}
	return nil
}

func (s *Store) dataKey(key string) string { return s.cfg.Prefix + dataDir + key }

// Get reads one record with a quorum read; found is false when it does not
// exist.
func (s *Store) Get(ctx context.Context, key string) (e Entry, found bool, err error) {
	if err := checkKey(key); err != nil {
		return Entry{}, false, fmt.Errorf("etcd get: %w", err)
	}
	cli, err := s.client()
	if err != nil {
		return Entry{}, false, fmt.Errorf("etcd get %s: %w", key, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := cli.Get(ctx, s.dataKey(key))
	if err != nil {
		return Entry{}, false, fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return Entry{}, false, nil
	}
	kv := resp.Kvs[0]
	return Entry{Key: key, Value: kv.Value, ModRevision: kv.ModRevision}, true, nil
}

// List reads every record whose key starts with prefix ("" for all), in key
// order.
func (s *Store) List(ctx context.Context, prefix string) ([]Entry, error) {
	cli, err := s.client()
	if err != nil {
		return nil, fmt.Errorf("etcd list %s: %w", prefix, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := cli.Get(ctx, s.dataKey(prefix), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd list %s: %w", prefix, err)
	}
	out := make([]Entry, 0, len(resp.Kvs))
	base := len(s.dataKey(""))
	for _, kv := range resp.Kvs {
		out = append(out, Entry{Key: string(kv.Key[base:]), Value: kv.Value, ModRevision: kv.ModRevision})
	}
	return out, nil
}

// Put writes a record, fenced by this replica's lease. The record outlives
// the lease.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("etcd put: %w", err)
	}
	_, err := s.fencedTxn(ctx, "put "+key, nil, []clientv3.Op{clientv3.OpPut(s.dataKey(key), string(value))})
	return err
}

// Delete removes a record (absent is fine), fenced by this replica's lease.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("etcd delete: %w", err)
	}
	_, err := s.fencedTxn(ctx, "delete "+key, nil, []clientv3.Op{clientv3.OpDelete(s.dataKey(key))})
	return err
}

// Update writes a record only if it is unchanged since the caller read it:
// modRevision is Entry.ModRevision, or 0 for "must not exist". ok is false
// when another write came first; nothing was written then.
func (s *Store) Update(ctx context.Context, key string, value []byte, modRevision int64) (ok bool, err error) {
	if err := checkKey(key); err != nil {
		return false, fmt.Errorf("etcd update: %w", err)
	}
	k := s.dataKey(key)
	cmp := clientv3.Compare(clientv3.ModRevision(k), "=", modRevision)
	resp, err := s.fencedTxn(ctx, "update "+key, []clientv3.Cmp{cmp}, []clientv3.Op{clientv3.OpPut(k, string(value))})
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// fencedTxn commits ops if cmps hold and this replica's lease is alive. A
// failed fence is ErrLeaseLost; failed cmps are a response with Succeeded
// false whose Responses are elseOps' answers.
func (s *Store) fencedTxn(ctx context.Context, what string, cmps []clientv3.Cmp, ops []clientv3.Op, elseOps ...clientv3.Op) (*clientv3.TxnResponse, error) {
	_, sess, id, err := s.session()
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", what, err)
	}
	return s.fencedTxnAs(ctx, what, sess, id, cmps, ops, elseOps...)
}

// fencedTxnAs is fencedTxn for a session the caller already holds. The Else
// branch also reads the member key to tell a lost lease from failed cmps.
func (s *Store) fencedTxnAs(ctx context.Context, what string, sess *concurrency.Session, id string, cmps []clientv3.Cmp, ops []clientv3.Op, elseOps ...clientv3.Op) (*clientv3.TxnResponse, error) {
	member := s.cfg.Prefix + membersDir + id
	all := append([]clientv3.Cmp{s.fence(sess, id)}, cmps...)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := sess.Client().Txn(ctx).If(all...).Then(ops...).Else(append([]clientv3.Op{clientv3.OpGet(member)}, elseOps...)...).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", what, err)
	}
	if !resp.Succeeded {
		m := resp.Responses[0].GetResponseRange()
		if m == nil || len(m.Kvs) == 0 || m.Kvs[0].Lease != int64(sess.Lease()) {
			return nil, fmt.Errorf("etcd %s: %w", what, ErrLeaseLost)
		}
		resp.Responses = resp.Responses[1:]
	}
	return resp, nil
}

// UpdateWith is Update that also writes records (other keys) in the same
// transaction: all of it if key is unchanged since modRevision (0: key
// must not exist), none of it otherwise (ok false). It lets one record
// guard others, such as an index written with the record it points to.
func (s *Store) UpdateWith(ctx context.Context, key string, value []byte, modRevision int64, records map[string][]byte) (ok bool, err error) {
	if err := checkKey(key); err != nil {
		return false, fmt.Errorf("etcd update: %w", err)
	}
	k := s.dataKey(key)
	ops := []clientv3.Op{clientv3.OpPut(k, string(value))}
	for _, rk := range sortedKeys(records) {
		if err := checkKey(rk); err != nil {
			return false, fmt.Errorf("etcd update %s: record: %w", key, err)
		}
		if rk == key {
			return false, fmt.Errorf("etcd update %s: the guarded key is also a record", key)
		}
		ops = append(ops, clientv3.OpPut(s.dataKey(rk), string(records[rk])))
	}
	cmp := clientv3.Compare(clientv3.ModRevision(k), "=", modRevision)
	resp, err := s.fencedTxn(ctx, "update "+key, []clientv3.Cmp{cmp}, ops)
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}
