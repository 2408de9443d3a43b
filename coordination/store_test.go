package coordination

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/internal/etcdtest"
)

// open connects a Store named name to the cluster and closes it when the
// test ends.
func open(t testing.TB, c *etcdtest.Cluster, name string, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		Endpoints: c.Endpoints(),
		Prefix:    "/test/",
		Name:      name,
		// Long enough that a loaded CI machine does not lapse leases by
		// accident; tests of expiry and time-outs shorten them.
		LeaseTTL:       10 * time.Second,
		DialTimeout:    2 * time.Second,
		RequestTimeout: 10 * time.Second,
		HealthTimeout:  time.Second,
	}
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.ID() == "" {
		t.Fatalf("open %s: no session after Open with a healthy cluster", name)
	}
	return s
}

// crash stops s the way kill -9 would: its lease is neither renewed nor
// revoked, so its claims last until the lease expires.
func crash(s *Store) {
	s.mu.Lock()
	sess := s.sess
	s.mu.Unlock()
	s.cancel() // no new session
	if sess != nil {
		sess.Orphan()
	}
	<-s.done
}

// eventually polls check every 50ms until it is true or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// race makes n claims spread over keys keys from every store concurrently
// and checks that each key has exactly one winner, that every loser names
// that winner, and that the winner's record was written with its claim.
func race(t *testing.T, stores []*Store, n, keys int) {
	t.Helper()
	ctx := context.Background()
	type answer struct {
		store int
		won   bool
		owner string
	}
	ids := make([]string, len(stores))
	for i, s := range stores {
		ids[i] = s.ID()
	}
	var mu sync.Mutex
	answers := map[string][]answer{}
	var errs []error
	var wg sync.WaitGroup
	work := make(chan int)
	const workers = 8
	for si, s := range stores {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					key := fmt.Sprintf("obj/%03d", i%keys)
					won, owner, err := s.Claim(ctx, key, map[string][]byte{"decisions/" + key + "/" + s.ID(): []byte("decided")})
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						answers[key] = append(answers[key], answer{si, won, owner})
					}
					mu.Unlock()
				}
			}()
		}
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, s := range stores {
		if s.ID() != ids[i] {
			t.Fatalf("replica %d lost its lease during the race (owner %s became %s)", i, ids[i], s.ID())
		}
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d claims failed, first: %v", len(errs), n, errs[0])
	}
	if len(answers) != keys {
		t.Fatalf("answers for %d keys, want %d", len(answers), keys)
	}
	for key, as := range answers {
		var winners []answer
		for _, a := range as {
			if a.won {
				winners = append(winners, a)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("%s: %d winners, want 1: %+v", key, len(winners), winners)
		}
		w := winners[0]
		for _, a := range as {
			if a.owner != w.owner {
				t.Fatalf("%s: answer %+v names owner %q, winner is %q", key, a, a.owner, w.owner)
			}
		}
		recs, err := stores[0].List(ctx, "decisions/"+key+"/")
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Key != "decisions/"+key+"/"+w.owner {
			t.Fatalf("%s: decision records %+v, want only the winner's", key, recs)
		}
	}
}

func TestClaimExactlyOnceAcrossThreeReplicas(t *testing.T) {
	c := etcdtest.Start(t)
	stores := []*Store{open(t, c, "a"), open(t, c, "b"), open(t, c, "c")}
	race(t, stores, 1000, 50)
}

func TestClaimExactlyOnceWithOneMemberDown(t *testing.T) {
	c := etcdtest.Start(t)
	stores := []*Store{open(t, c, "a"), open(t, c, "b"), open(t, c, "c")}
	c.Kill(0)
	c.WaitHealthy(10 * time.Second)
	race(t, stores, 300, 20)
	if !stores[0].Up(context.Background()) {
		t.Fatal("Up false with two of three members")
	}
}

func TestQuorumLostNoClaimThenRecovers(t *testing.T) {
	c := etcdtest.Start(t)
	a := open(t, c, "a", func(cfg *Config) { cfg.LeaseTTL, cfg.RequestTimeout = 2*time.Second, 2*time.Second })
	b := open(t, c, "b", func(cfg *Config) { cfg.LeaseTTL = 5 * time.Second })
	ctx := context.Background()
	c.Kill(1)
	c.Kill(2)
	// Claims both right away (the dead members' connections fail fast) and
	// once the lone member has lost its leadership (requests wait there).
	eventually(t, 5*time.Second, "lone member reports unhealthy", func() bool { return !c.Healthy(0) })
	for i := range 3 {
		key := fmt.Sprintf("obj/lost%d", i)
		start := time.Now()
		won, owner, err := a.Claim(ctx, key, nil)
		took := time.Since(start)
		if err == nil || won {
			t.Fatalf("Claim without quorum: won %v owner %q err %v, want an error and no win", won, owner, err)
		}
		if took > 2*time.Second+time.Second {
			t.Fatalf("Claim without quorum took %s, want at most RequestTimeout (2s) plus a margin", took)
		}
		t.Logf("Claim without quorum failed after %s: %v", took.Round(time.Millisecond), err)
	}
	if a.Up(ctx) || b.Up(ctx) {
		t.Fatal("Up true without quorum")
	}
	if b.LeaseAlive(ctx, 0) {
		t.Fatal("LeaseAlive true without quorum")
	}

	restarted := time.Now()
	c.Restart(1)
	c.Restart(2)
	c.WaitHealthy(20 * time.Second)
	eventually(t, 20*time.Second, "both replicas up again", func() bool { return a.Up(ctx) && b.Up(ctx) })
	// The claim tried during the outage did not happen, or happened once.
	t.Logf("replicas up %s after the members restarted", time.Since(restarted).Round(time.Millisecond))
	for i := range 3 {
		key := fmt.Sprintf("obj/lost%d", i)
		ra, err := a.Decide(ctx, Decision{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		rb, err := b.Decide(ctx, Decision{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if !ra.Won && !(ra.Refused == RefusedClaimed && ra.Owner != "") || rb.Won {
			t.Fatalf("after recovery %s: a %+v, b %+v; want exactly one holder", key, ra, rb)
		}
	}
	won, _, err := b.Claim(ctx, "obj/after", nil)
	if err != nil || !won {
		t.Fatalf("claim after recovery: won %v, err %v", won, err)
	}
}

func TestCrashedReplicaLosesClaimsToAnother(t *testing.T) {
	c := etcdtest.Start(t)
	short := func(cfg *Config) { cfg.LeaseTTL = 2 * time.Second }
	a, b := open(t, c, "a", short), open(t, c, "b", short)
	ctx := context.Background()
	won, _, err := a.Claim(ctx, "obj/1", map[string][]byte{"actions/obj/1": []byte("sending")})
	if err != nil || !won {
		t.Fatalf("a claim: won %v, err %v", won, err)
	}
	aID := a.ID()
	// The lease outlives the crash by its TTL: the watch is up long before.
	gone := b.MembersGone(context.Background())
	crash(a)

	won, owner, err := b.Claim(ctx, "obj/1", nil)
	if err != nil || won || owner != aID {
		t.Fatalf("b claim while a's lease lives: won %v owner %q err %v; want refused, owner %q", won, owner, err, aID)
	}
	start := time.Now()
	eventually(t, 5*time.Second, "a's lease expires", func() bool {
		alive, err := b.OwnerAlive(ctx, aID)
		return err == nil && !alive
	})
	t.Logf("a's claims gone %s after the crash (lease TTL 2s)", time.Since(start).Round(time.Millisecond))
	select {
	case id := <-gone:
		if id != aID {
			t.Fatalf("MembersGone sent %q, want %q", id, aID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("MembersGone sent nothing after a's lease expired")
	}
	won, owner, err = b.Claim(ctx, "obj/1", nil)
	if err != nil || !won || owner != b.ID() {
		t.Fatalf("b adopts: won %v owner %q err %v", won, owner, err)
	}
	// The record written with a's claim outlives a's lease.
	e, found, err := b.Get(ctx, "actions/obj/1")
	if err != nil || !found || string(e.Value) != "sending" {
		t.Fatalf("record after hand-over: %+v found %v err %v", e, found, err)
	}
	// The crashed store can no longer write.
	if err := a.Put(ctx, "x", []byte("y")); err == nil {
		t.Fatal("crashed replica's Put succeeded")
	}
}

func TestCloseReleasesClaimsAtOnce(t *testing.T) {
	c := etcdtest.Start(t)
	a, b := open(t, c, "a"), open(t, c, "b")
	ctx := context.Background()
	if won, _, err := a.Claim(ctx, "obj/1", nil); err != nil || !won {
		t.Fatalf("a claim: %v %v", won, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if won, owner, err := b.Claim(ctx, "obj/1", nil); err != nil || !won {
		t.Fatalf("b claim after a closed: won %v owner %q err %v", won, owner, err)
	}
	if _, _, err := a.Claim(ctx, "obj/2", nil); !errors.Is(err, ErrNoSession) {
		t.Fatalf("claim on a closed store: %v, want ErrNoSession", err)
	}
}

// TestFencing revokes a replica's lease behind its back (as an expiry
// during a pause would): the replica's own client has not noticed, yet
// LeaseAlive is false and every write is refused.
func TestFencing(t *testing.T) {
	c := etcdtest.Start(t)
	short := func(cfg *Config) { cfg.LeaseTTL = 2 * time.Second }
	a, b := open(t, c, "a", short), open(t, c, "b", short)
	ctx := context.Background()
	if !a.LeaseAlive(ctx, 500*time.Millisecond) {
		t.Fatal("LeaseAlive false on a fresh session")
	}
	if a.LeaseAlive(ctx, 3*time.Second) {
		t.Fatal("LeaseAlive true with a margin longer than the 2s TTL")
	}
	if won, _, err := a.Claim(ctx, "obj/1", nil); err != nil || !won {
		t.Fatalf("a claim: %v %v", won, err)
	}
	_, sess, _, err := a.session()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli.Revoke(ctx, sess.Lease()); err != nil {
		t.Fatal(err)
	}
	if a.LeaseAlive(ctx, 0) {
		t.Fatal("LeaseAlive true after the lease was revoked")
	}
	_, _, err = a.Claim(ctx, "obj/2", nil)
	if !errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrNoSession) {
		t.Fatalf("claim after the lease was revoked: %v, want ErrLeaseLost or ErrNoSession", err)
	}
	if won, _, err := b.Claim(ctx, "obj/1", nil); err != nil || !won {
		t.Fatalf("b takes obj/1 from the fenced replica: won %v err %v", won, err)
	}
	// a gets a new session with a new owner ID and works again.
	old := sess.Lease()
	eventually(t, 10*time.Second, "a has a new session", func() bool {
		_, s2, _, err := a.session()
		return err == nil && s2.Lease() != old
	})
	if won, _, err := a.Claim(ctx, "obj/3", nil); err != nil || !won {
		t.Fatalf("a claim with its new session: won %v err %v", won, err)
	}
}

func TestGlobalRateLimit(t *testing.T) {
	c := etcdtest.Start(t)
	stores := []*Store{open(t, c, "a"), open(t, c, "b"), open(t, c, "c")}
	ctx := context.Background()
	const limit, window = 5, 3 * time.Second
	var mu sync.Mutex
	won := map[Refusal]int{}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[i%3]
			key := fmt.Sprintf("obj/%d", i)
			r, err := s.Decide(ctx, Decision{Key: key, Rate: &Rate{Key: "rule", Limit: limit, Window: window, ID: key}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("decide %s: %v", key, err)
				return
			}
			won[r.Refused]++
		}()
	}
	wg.Wait()
	if won[""] != limit || won[RefusedRateLimit] != 60-limit {
		t.Fatalf("outcomes %v, want %d won and %d refused by rate_limit", won, limit, 60-limit)
	}
	if n, err := stores[1].RateUses(ctx, "rule", window); err != nil || n != limit {
		t.Fatalf("RateUses = %d, %v; want %d", n, err, limit)
	}
	// A refused decision claimed nothing.
	if claims, _ := stores[0].Claims(ctx); len(claims) != limit {
		t.Fatalf("%d claims held, want %d", len(claims), limit)
	}
	// A token given back lets one more through; the window frees the rest.
	r, err := stores[0].Decide(ctx, Decision{Key: "obj/extra", Rate: &Rate{Key: "rule", Limit: limit, Window: window, ID: "obj/extra"}})
	if err != nil || r.Refused != RefusedRateLimit {
		t.Fatalf("decision over the limit: %+v %v", r, err)
	}
	claims, _ := stores[0].Claims(ctx)
	if err := stores[2].ReturnToken(ctx, Rate{Key: "rule", Limit: limit, Window: window, ID: claims[0].Key}); err != nil {
		t.Fatal(err)
	}
	r, err = stores[0].Decide(ctx, Decision{Key: "obj/extra", Rate: &Rate{Key: "rule", Limit: limit, Window: window, ID: "obj/extra"}})
	if err != nil || !r.Won {
		t.Fatalf("decision after a returned token: %+v %v", r, err)
	}
	eventually(t, window+time.Second, "the window frees the tokens", func() bool {
		r, err := stores[1].Decide(ctx, Decision{Key: "obj/later", Rate: &Rate{Key: "rule", Limit: limit, Window: window, ID: "obj/later"}})
		return err == nil && r.Won
	})
}

func TestGlobalMaxConcurrent(t *testing.T) {
	c := etcdtest.Start(t)
	stores := []*Store{open(t, c, "a"), open(t, c, "b"), open(t, c, "c")}
	ctx := context.Background()
	const max = 2
	type win struct {
		s   *Store
		key string
	}
	var mu sync.Mutex
	var wins []win
	refused := 0
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[i%3]
			key := fmt.Sprintf("obj/%d", i)
			r, err := s.Decide(ctx, Decision{Key: key, Slot: &Slot{Key: "all", Max: max, ID: key}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("decide %s: %v", key, err)
			case r.Won:
				wins = append(wins, win{s, key})
			case r.Refused == RefusedMaxConcurrent:
				refused++
			default:
				t.Errorf("decide %s: %+v", key, r)
			}
		}()
	}
	wg.Wait()
	if len(wins) != max || refused != 30-max {
		t.Fatalf("%d won, %d refused; want %d and %d", len(wins), refused, max, 30-max)
	}
	if h, err := stores[0].SlotHolders(ctx, "all"); err != nil || len(h) != max {
		t.Fatalf("holders %v, %v", h, err)
	}
	// The outcome is written, the claim ended and the slot freed together.
	w := wins[0]
	if err := w.s.Release(ctx, w.key, map[string][]byte{"outcomes/" + w.key: []byte("success")}, &Slot{Key: "all", Max: max, ID: w.key}); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := stores[0].Owner(ctx, w.key); held {
		t.Fatal("claim still held after Release")
	}
	if e, found, err := stores[0].Get(ctx, "outcomes/"+w.key); err != nil || !found || string(e.Value) != "success" {
		t.Fatalf("outcome after Release: %+v %v %v", e, found, err)
	}
	r, err := stores[1].Decide(ctx, Decision{Key: "obj/next", Slot: &Slot{Key: "all", Max: max, ID: "obj/next"}})
	if err != nil || !r.Won {
		t.Fatalf("decision after a slot was freed: %+v %v", r, err)
	}
	// Only the owner releases a claim.
	other := stores[0]
	if other == wins[1].s {
		other = stores[1]
	}
	if err := other.Release(ctx, wins[1].key, nil, nil); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("release by another replica: %v, want ErrNotOwner", err)
	}
}

func TestRecords(t *testing.T) {
	c := etcdtest.Start(t)
	s := open(t, c, "a")
	ctx := context.Background()
	if _, found, err := s.Get(ctx, "r/1"); err != nil || found {
		t.Fatalf("get absent: %v %v", found, err)
	}
	if ok, err := s.Update(ctx, "r/1", []byte("v1"), 0); err != nil || !ok {
		t.Fatalf("create: %v %v", ok, err)
	}
	if ok, err := s.Update(ctx, "r/1", []byte("again"), 0); err != nil || ok {
		t.Fatalf("create over an existing record: %v %v; want refused", ok, err)
	}
	e, found, err := s.Get(ctx, "r/1")
	if err != nil || !found || string(e.Value) != "v1" {
		t.Fatalf("get: %+v %v %v", e, found, err)
	}
	if ok, err := s.Update(ctx, "r/1", []byte("v2"), e.ModRevision); err != nil || !ok {
		t.Fatalf("update at the read revision: %v %v", ok, err)
	}
	if ok, err := s.Update(ctx, "r/1", []byte("stale"), e.ModRevision); err != nil || ok {
		t.Fatalf("update at a stale revision: %v %v; want refused", ok, err)
	}
	if err := s.Put(ctx, "r/2", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "q/1", []byte("other")); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, "r/")
	if err != nil || len(list) != 2 || list[0].Key != "r/1" || string(list[0].Value) != "v2" || list[1].Key != "r/2" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := s.Delete(ctx, "r/1"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Get(ctx, "r/1"); found {
		t.Fatal("found after delete")
	}
	if err := s.Put(ctx, "", nil); err == nil {
		t.Fatal("empty key accepted")
	}
	members, err := s.Members(ctx)
	if err != nil || len(members) != 1 || members[0] != s.ID() {
		t.Fatalf("members %v %v", members, err)
	}
}

// TestUpdateWith: the guarded key and its companion records are written
// together or not at all, and of two writers at the same revision one wins.
func TestUpdateWith(t *testing.T) {
	c := etcdtest.Start(t)
	a, b := open(t, c, "a"), open(t, c, "b")
	ctx := context.Background()
	if ok, err := a.UpdateWith(ctx, "idx/1", []byte("x"), 0, map[string][]byte{"rec/x": []byte("X")}); err != nil || !ok {
		t.Fatalf("create: %v %v", ok, err)
	}
	if ok, err := b.UpdateWith(ctx, "idx/1", []byte("y"), 0, map[string][]byte{"rec/y": []byte("Y")}); err != nil || ok {
		t.Fatalf("create over an existing key: %v %v; want refused", ok, err)
	}
	if _, found, _ := a.Get(ctx, "rec/y"); found {
		t.Fatal("the loser's record was written")
	}
	if e, found, _ := b.Get(ctx, "rec/x"); !found || string(e.Value) != "X" {
		t.Fatalf("the winner's record: %+v %v", e, found)
	}
	e, _, err := a.Get(ctx, "idx/1")
	if err != nil {
		t.Fatal(err)
	}
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.UpdateWith(ctx, "idx/1", []byte(fmt.Sprint(i)), e.ModRevision, map[string][]byte{fmt.Sprintf("rec/%d", i): nil})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d writers won at the same revision, want 1", wins)
	}
	if _, err := a.UpdateWith(ctx, "idx/1", nil, 0, map[string][]byte{"idx/1": nil}); err == nil {
		t.Fatal("the guarded key as a record was accepted")
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no endpoints", Config{}},
		{"empty endpoint", Config{Endpoints: []string{" "}}},
		{"password without user", Config{Endpoints: []string{"http://127.0.0.1:1"}, Password: "s3cret-pw"}},
		{"fractional ttl", Config{Endpoints: []string{"http://127.0.0.1:1"}, LeaseTTL: 1500 * time.Millisecond}},
		{"short ttl", Config{Endpoints: []string{"http://127.0.0.1:1"}, LeaseTTL: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), tc.cfg, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open accepted it")
			}
			if tc.cfg.Password != "" && strings.Contains(err.Error(), tc.cfg.Password) {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

// TestUnreachableAtStart: etcd down at start-up is not an error; the store
// reports down, refuses to claim, and connects once etcd is there.
func TestUnreachableAtStart(t *testing.T) {
	c := etcdtest.Start(t)
	for i := range c.Size() {
		c.Stop(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	s, err := Open(ctx, Config{Endpoints: c.Endpoints(), Prefix: "/test/", LeaseTTL: 2 * time.Second, RequestTimeout: time.Second, HealthTimeout: time.Second}, nil)
	if err != nil {
		t.Fatalf("Open with etcd down: %v", err)
	}
	defer s.Close()
	if s.Up(context.Background()) {
		t.Fatal("Up with etcd down")
	}
	if _, _, err := s.Claim(context.Background(), "obj/1", nil); err == nil {
		t.Fatal("claim with etcd down succeeded")
	}
	for i := range c.Size() {
		c.Restart(i)
	}
	c.WaitHealthy(20 * time.Second)
	eventually(t, 15*time.Second, "store connects", func() bool { return s.Up(context.Background()) })
	if won, _, err := s.Claim(context.Background(), "obj/1", nil); err != nil || !won {
		t.Fatalf("claim once etcd is up: %v %v", won, err)
	}
}

// BenchmarkClaim measures one winning Claim (one fenced transaction)
// against the local three-member cluster, with its p50 and p99.
func BenchmarkClaim(b *testing.B) {
	c := etcdtest.Start(b)
	s := open(b, c, "bench")
	benchDecide(b, s, func(i int) Decision {
		return Decision{Key: fmt.Sprintf("bench/%d", i), Records: map[string][]byte{fmt.Sprintf("d/%d", i): []byte("decided")}}
	})
}

// BenchmarkDecideWithRateAndSlot adds a rate token and a concurrency slot
// (a snapshot read, then the transaction) to the claim.
func BenchmarkDecideWithRateAndSlot(b *testing.B) {
	c := etcdtest.Start(b)
	s := open(b, c, "bench")
	benchDecide(b, s, func(i int) Decision {
		key := fmt.Sprintf("bench/%d", i)
		return Decision{
			Key:     key,
			Records: map[string][]byte{"d/" + key: []byte("decided")},
			Rate:    &Rate{Key: "r", Limit: 1 << 20, Window: time.Millisecond, ID: key},
			Slot:    &Slot{Key: "s", Max: 1, ID: "one"},
		}
	})
}

func benchDecide(b *testing.B, s *Store, decision func(int) Decision) {
	ctx := context.Background()
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		r, err := s.Decide(ctx, decision(i))
		took = append(took, time.Since(start))
		if err != nil || !r.Won {
			b.Fatalf("decide %d: %+v %v", i, r, err)
		}
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkClaimParallel: three replicas claiming concurrently.
func BenchmarkClaimParallel(b *testing.B) {
	c := etcdtest.Start(b)
	stores := []*Store{open(b, c, "a"), open(b, c, "b"), open(b, c, "c")}
	ctx := context.Background()
	var n sync.Mutex
	next := 0
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			i := next
			next++
			n.Unlock()
			if _, _, err := stores[i%3].Claim(ctx, fmt.Sprintf("bench/%d", i), nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestAuthWithPrefixUser runs against etcd with authentication on and a
// user limited to the store's prefix: right credentials work; a wrong
// password or a prefix outside the grant make the store report down with a
// reason, and the password appears in no error and no log line.
func TestAuthWithPrefixUser(t *testing.T) {
	c := etcdtest.Start(t)
	const user, password = "veeam", "pw-Zq8-never-shown"
	c.EnableAuth(user, password, "/test/")
	ctx := context.Background()

	s := open(t, c, "a", func(cfg *Config) { cfg.Username, cfg.Password = user, password })
	if won, _, err := s.Claim(ctx, "obj/1", map[string][]byte{"d/1": []byte("x")}); err != nil || !won {
		t.Fatalf("claim with a prefix user: %v %v", won, err)
	}
	if !s.Up(ctx) || !s.LeaseAlive(ctx, 0) {
		t.Fatal("not up with a prefix user")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close (revokes the lease) with a prefix user: %v", err)
	}

	for _, tc := range []struct {
		name, prefix, password, want string
	}{
		{"wrong password", "/test/", "wrong-" + password, "authentication failed"},
		{"prefix outside the grant", "/other/", password, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			octx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			s, err := Open(octx, Config{Endpoints: c.Endpoints(), Prefix: tc.prefix, Username: user, Password: tc.password, LeaseTTL: 2 * time.Second, RequestTimeout: time.Second, HealthTimeout: time.Second}, logger)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			herr := s.Health(ctx)
			if herr == nil {
				t.Fatal("Health nil")
			}
			if !strings.Contains(herr.Error(), tc.want) {
				t.Fatalf("Health: %v; want it to say %q", herr, tc.want)
			}
			_, _, cerr := s.Claim(ctx, "obj/2", nil)
			if cerr == nil {
				t.Fatal("claim succeeded")
			}
			mu.Lock()
			all := logs.String() + herr.Error() + cerr.Error()
			mu.Unlock()
			if strings.Contains(all, password) {
				t.Fatalf("password leaked:\n%s", all)
			}
			t.Logf("health: %v", herr)
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
