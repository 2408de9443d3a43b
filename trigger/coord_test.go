package trigger

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"github.com/veeam-failover/veeam_failover_exporter/internal/etcdtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// Issue 18: several replicas share their memory in etcd and act exactly
// once. These tests run trigger instances in this process, each with its
// own Veeam clients, audit log and etcd session, against a real
// three-member etcd cluster and the simulator; calls are counted in the
// simulator's request log.

// coordConfig is baseConfig with the memory in etcd under prefix instead of
// a state file.
func coordConfig(t *testing.T, c *etcdtest.Cluster, prefix string, rules ...config.Rule) config.TriggerConfig {
	cfg := baseConfig(t.TempDir(), rules...)
	cfg.StateFile = ""
	cfg.Coordination.Etcd = config.EtcdCoordination{Endpoints: c.Endpoints(), Prefix: prefix, LeaseTTL: model.Duration(5 * time.Second)}
	return cfg
}

// replica is one trigger instance of a group sharing a prefix.
func replica(t *testing.T, env *simEnv, cfg config.TriggerConfig, name string) *harness {
	t.Helper()
	cfg.AuditLog = filepath.Join(t.TempDir(), "audit.jsonl")
	return newHarness(t, cfg, newActors(t, env.sim), Options{ReplicaName: name})
}

// callsOn counts the POSTs (logons aside) whose path or body names id: the
// calls that reached Veeam for that object, refused ones included.
func callsOn(env *simEnv, id string) int {
	id = strings.ToLower(id)
	n := 0
	for _, api := range []simulator.API{simulator.APIVSPC, simulator.APIEM, simulator.APIVBR} {
		for _, r := range env.sim.Requests(api) {
			p := strings.ToLower(r.Path)
			if r.Method != http.MethodPost || strings.Contains(p, "token") || strings.Contains(p, "sessionmngr") {
				continue
			}
			if strings.Contains(p, id) || strings.Contains(strings.ToLower(r.Body), id) {
				n++
			}
		}
	}
	return n
}

// matrixCase is one object for one action type, prepared in the state the
// action needs, and the id its calls carry.
type matrixCase struct {
	action string
	target string
	edit   func(*config.Rule)
	id     string
}

// matrixObjects returns n objects for each of the nine action types.
func matrixObjects(t *testing.T, env *simEnv, n int) map[string][]matrixCase {
	t.Helper()
	est := env.sim.Estate()
	out := map[string][]matrixCase{}
	var ready []simulator.VSPCPlan
	for _, p := range est.VSPC.Plans {
		if p.Status == "Ready" {
			ready = append(ready, p)
		}
	}
	if len(ready) < 2*n {
		t.Fatalf("%d Ready VSPC plans, want %d", len(ready), 2*n)
	}
	for i, p := range ready[:2*n] {
		kind := config.ActionVSPCPlanStart
		if i >= n {
			kind = config.ActionVSPCPlanUndo
			if err := env.sim.SetVSPCPlanStatus(p.InstanceUID, "Success"); err != nil {
				t.Fatal(err)
			}
		}
		out[kind] = append(out[kind], matrixCase{kind, "vspc", withPlan(p.InstanceUID), p.InstanceUID})
	}
	if len(est.EM.Plans) < 2*n {
		t.Fatalf("%d EM plans", len(est.EM.Plans))
	}
	for i, p := range est.EM.Plans[:2*n] {
		kind := config.ActionEMPlanStart
		if i >= n {
			kind = config.ActionEMPlanUndo
		}
		out[kind] = append(out[kind], matrixCase{kind, "em", withPlan(p.UID), p.UID})
	}
	for _, r := range est.EM.CdpReplicas {
		for _, vm := range r.VMs {
			out[config.ActionEMCdpFailover] = append(out[config.ActionEMCdpFailover], matrixCase{config.ActionEMCdpFailover, "em",
				func(ru *config.Rule) { ru.Action.CdpReplica, ru.Action.VM = r.UID, vm.UID }, vm.UID})
		}
	}
	vbrKinds := []string{config.ActionVBRFailover, config.ActionVBRPlannedFailover, config.ActionVBRPermanentFailover, config.ActionVBRUndoFailover}
	if len(est.VBR.Replicas) < len(vbrKinds)*n {
		t.Fatalf("%d VBR replicas", len(est.VBR.Replicas))
	}
	for i, r := range est.VBR.Replicas[:len(vbrKinds)*n] {
		kind := vbrKinds[i/n]
		state := "Ready"
		if kind == config.ActionVBRPermanentFailover || kind == config.ActionVBRUndoFailover {
			state = "Failover"
		}
		if err := env.sim.SetVBRReplicaState(r.ID, state); err != nil {
			t.Fatal(err)
		}
		var point string
		for _, p := range env.sim.Estate().VBR.Points {
			if strings.EqualFold(p.ReplicaID, r.ID) {
				point = p.ID
			}
		}
		out[kind] = append(out[kind], matrixCase{kind, "vbr", func(ru *config.Rule) { ru.Action.Replicas = []string{r.ID} }, point})
	}
	for kind, cs := range out {
		if len(cs) < n {
			t.Fatalf("%d objects for %s, want %d", len(cs), kind, n)
		}
		out[kind] = cs[:n]
	}
	return out
}

// TestCoordTwoReplicaMatrix: two replicas get the same alert, at delays
// from 0 to 10s apart, with the same group key or two different ones (two
// Alertmanager group-key formats): every action type reaches Veeam exactly
// once, and the replica that did not act says why.
func TestCoordTwoReplicaMatrix(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 18, ActionDuration: 300 * time.Millisecond,
		VSPC: simulator.VSPCOptions{Plans: 60, ObjectsPerPlan: 1, BackupServers: 1},
		EM:   simulator.EMOptions{Plans: 22, VMsPerPlan: 1, CloudSessions: 1, CdpReplicas: 2, VMsPerCdpReplica: 6},
		VBR:  simulator.VBROptions{Replicas: 44, PointsPerReplica: 1}})
	delays := []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond, time.Second, 10 * time.Second}
	objects := matrixObjects(t, env, 2*len(delays))
	// Every case at once (t.Run from several goroutines, not t.Parallel,
	// whose limit is GOMAXPROCS): the 10s cases wait side by side.
	var all sync.WaitGroup
	defer all.Wait()
	for kind, cases := range objects {
		for i, delay := range delays {
			for j, sameKey := range []bool{true, false} {
				mc := cases[2*i+j]
				name := fmt.Sprintf("%s/%s/same_group_key=%t", kind, delay, sameKey)
				all.Add(1)
				go func() {
					defer all.Done()
					t.Run(name, func(t *testing.T) { runMatrixCase(t, env, cluster, name, mc, delay, sameKey) })
				}()
			}
		}
	}
}

// runMatrixCase is one case of TestCoordTwoReplicaMatrix.
func runMatrixCase(t *testing.T, env *simEnv, cluster *etcdtest.Cluster, name string, mc matrixCase, delay time.Duration, sameKey bool) {
	rule := "r-" + strings.ReplaceAll(strings.ReplaceAll(name, "/", "-"), "=", "-")
	r := newRule(rule, mc.action, mc.target, mc.edit)
	cfg := coordConfig(t, cluster, "/matrix/"+rule+"/", r)
	a, b := replica(t, env, cfg, "a"), replica(t, env, cfg, "b")
	start := time.Now().Add(-time.Minute)
	keyA, keyB := `{}:{alertname="SiteDown"}`, `{}:{alertname="SiteDown"}`
	if !sameKey {
		keyB = `{}/{rule="` + rule + `"}:{alertname="SiteDown"}`
	}
	bodyA := amtest.Notification(keyA, alertFor(rule, start)).JSON()
	bodyB := amtest.Notification(keyB, alertFor(rule, start)).JSON()
	var ansB webhookAnswer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(delay)
		ansB = b.post(t, bodyB)
	}()
	ansA := a.post(t, bodyA)
	wg.Wait()
	a.wait(t, 20*time.Second)
	b.wait(t, 20*time.Second)
	if n := callsOn(env, mc.id); n != 1 {
		t.Fatalf("%d calls on %s, want 1; answers A %+v B %+v; outcomes A %+v B %+v", n, mc.id, ansA.Decisions, ansB.Decisions,
			a.tr.status().RecentOutcomes, b.tr.status().RecentOutcomes)
	}
	// One replica called; the other was refused (blocked, with
	// the reason), or decided but never sent (its fence failed
	// on this loaded machine: abandoned and released).
	dA, dB := only(t, ansA, rule), only(t, ansB, rule)
	var called []outcomeLine
	for _, o := range append(a.tr.status().RecentOutcomes, b.tr.status().RecentOutcomes...) {
		if o.Outcome != outcomeAbandoned || !strings.HasPrefix(o.Message, "not sent") {
			called = append(called, o)
		}
	}
	if len(called) != 1 || (verdict(dA) != verdictDecided && verdict(dB) != verdictDecided) {
		t.Fatalf("want one action that called: A %s (%s), B %s (%s); outcomes %+v", verdict(dA), dA.Reason, verdict(dB), dB.Reason, called)
	}
	for _, d := range []decision{dA, dB} {
		if verdict(d) != verdictDecided && d.Reason == "" {
			t.Fatalf("blocked without a reason: %+v", d)
		}
	}
}

// TestCoordThousandNotifications: 1,000 notifications on ten objects,
// spread at random over three replicas and sent 40 at a time, make one
// call per object.
func TestCoordThousandNotifications(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 1000, ActionDuration: 200 * time.Millisecond,
		EM: simulator.EMOptions{Plans: 10, VMsPerPlan: 1, CloudSessions: 1, CdpReplicas: 1, VMsPerCdpReplica: 1}})
	plans := env.sim.Estate().EM.Plans
	var rules []config.Rule
	for i, p := range plans {
		rules = append(rules, newRule(fmt.Sprintf("p%d", i), config.ActionEMPlanStart, "em", withPlan(p.UID)))
	}
	cfg := coordConfig(t, cluster, "/storm/", rules...)
	rs := []*harness{replica(t, env, cfg, "a"), replica(t, env, cfg, "b"), replica(t, env, cfg, "c")}
	rng := rand.New(rand.NewSource(1000))
	type job struct {
		r    *harness
		body []byte
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	decided := 0
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				ans := j.r.post(t, j.body)
				mu.Lock()
				for _, d := range ans.Decisions {
					if d.Outcome == verdictDecided {
						decided++
					}
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now().Add(-time.Minute)
	for i := range 1000 {
		p := rng.Intn(len(plans))
		key := fmt.Sprintf(`{}:{alertname="SiteDown",n="%d"}`, rng.Intn(3))
		jobs <- job{rs[rng.Intn(len(rs))], amtest.Notification(key, alertFor(fmt.Sprintf("p%d", p), start.Add(time.Duration(i%2)*time.Second))).JSON()}
	}
	close(jobs)
	wg.Wait()
	for _, r := range rs {
		r.wait(t, 20*time.Second)
	}
	for _, p := range plans {
		if n := callsOn(env, p.UID); n != 1 {
			t.Errorf("plan %s: %d calls, want 1", p.Name, n)
		}
	}
	if decided != len(plans) {
		t.Errorf("%d decided answers, want %d", decided, len(plans))
	}
	// Each replica's /trigger shows the shared state: every replica, no
	// claim left.
	for _, r := range rs {
		waitForWithin(t, 5*time.Second, func() bool {
			st := r.tr.status().Coordination
			return st != nil && st.Up && len(st.Members) == 3 && len(st.Claims) == 0 && len(st.Actions) == 0 && st.Replica != ""
		})
	}
}

// TestCoordHandOver: a replica stops (its lease ends) while its action is
// in flight; another one adopts it, follows it to its real end and writes
// that outcome, without sending it again. Status sending ends uncertain.
func TestCoordHandOver(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 7, ActionDuration: 1500 * time.Millisecond})
	p := env.readyPlans(t, 1)[0]
	cfg := coordConfig(t, cluster, "/handover/", newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(p.InstanceUID)))
	a, b := replica(t, env, cfg, "a"), replica(t, env, cfg, "b")
	body := amtest.Notification("g", alertFor("r", time.Now().Add(-time.Minute))).JSON()
	if d := only(t, a.post(t, body), "r"); verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	waitFor(t, func() bool {
		st := b.tr.status().Coordination
		return st != nil && len(st.Actions) == 1 && st.Actions[0].Status == statusSent
	})
	// A stops without ending the action: Close stops tracking and revokes
	// its lease (what a kill -9 does after lease_ttl).
	closeHarness(t, a)
	outs := waitOutcome(t, b, 15*time.Second)
	if outs.Outcome != outcomeSuccess {
		t.Fatalf("adopted outcome %s (%s), want success", outs.Outcome, outs.Message)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
		t.Fatalf("%d starts, want 1", n)
	}
	checkAuditEvent(t, b.tr.cfg.AuditLog, outs.RequestID, eventAdopted)
	// A repeat of the alert on B is refused by the shared memory.
	if d := only(t, b.post(t, body), "r"); verdict(d) == verdictDecided {
		t.Fatalf("acted again: %+v", d)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
		t.Fatalf("%d starts after a repeat, want 1", n)
	}
}

// waitOutcome waits for h's first outcome.
func waitOutcome(t *testing.T, h *harness, timeout time.Duration) outcomeLine {
	t.Helper()
	var o outcomeLine
	waitForWithin(t, timeout, func() bool {
		outs := h.tr.status().RecentOutcomes
		if len(outs) == 0 {
			return false
		}
		o = outs[len(outs)-1]
		return true
	})
	return o
}

// TestCoordQuorumLoss: with one etcd member stopped the replicas still act
// exactly once; with two stopped nobody acts, the webhook answers 503 and
// veeam_trigger_coordination_up is 0 while /metrics keeps answering; once
// the members are back the alert, still firing, acts once.
func TestCoordQuorumLoss(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 9, ActionDuration: 200 * time.Millisecond})
	ps := env.readyPlans(t, 2)
	cfg := coordConfig(t, cluster, "/quorum/",
		newRule("one", config.ActionVSPCPlanStart, "vspc", withPlan(ps[0].InstanceUID)),
		newRule("two", config.ActionVSPCPlanStart, "vspc", withPlan(ps[1].InstanceUID)))
	a, b := replica(t, env, cfg, "a"), replica(t, env, cfg, "b")
	start := time.Now().Add(-time.Minute)

	cluster.Stop(0)
	one := amtest.Notification("g1", alertFor("one", start)).JSON()
	var wg sync.WaitGroup
	wg.Add(2)
	for _, h := range []*harness{a, b} {
		go func() {
			defer wg.Done()
			waitForWithin(t, 10*time.Second, func() bool { code, _ := h.postCode(t, one); return code == http.StatusOK })
		}()
	}
	wg.Wait()
	a.wait(t, 10*time.Second)
	b.wait(t, 10*time.Second)
	if n := env.vspcCalls(ps[0].InstanceUID, "start"); n != 1 {
		t.Fatalf("one member down: %d starts, want 1", n)
	}

	cluster.Stop(1)
	waitForWithin(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(a.tr.coord.upGauge) == 0 && testutil.ToFloat64(b.tr.coord.upGauge) == 0
	})
	two := amtest.Notification("g2", alertFor("two", start)).JSON()
	for _, h := range []*harness{a, b} {
		code, ans := h.postCode(t, two)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("quorum lost: webhook answered %d %+v, want 503", code, ans)
		}
		st := h.tr.status()
		if st.Armed || !strings.Contains(st.DisarmedReason, "etcd") || st.Coordination == nil || st.Coordination.Up {
			t.Fatalf("/trigger does not say why: armed %t, reason %q", st.Armed, st.DisarmedReason)
		}
		if _, err := testutil.GatherAndCount(h.reg); err != nil {
			t.Fatalf("metrics: %v", err)
		}
	}
	if n := env.vspcCalls(ps[1].InstanceUID, "start"); n != 0 {
		t.Fatalf("quorum lost: %d starts, want 0", n)
	}

	cluster.Restart(0)
	cluster.Restart(1)
	cluster.WaitHealthy(20 * time.Second)
	// Alertmanager retries the 503s: both replicas get the group again.
	wg.Add(2)
	for _, h := range []*harness{a, b} {
		go func() {
			defer wg.Done()
			waitForWithin(t, 20*time.Second, func() bool { code, _ := h.postCode(t, two); return code == http.StatusOK })
		}()
	}
	wg.Wait()
	a.wait(t, 10*time.Second)
	b.wait(t, 10*time.Second)
	if n := env.vspcCalls(ps[1].InstanceUID, "start"); n != 1 {
		t.Fatalf("after quorum came back: %d starts, want 1", n)
	}
	// Closed now: the restarted members are stopped before the replicas'
	// own clean-up would run (clean-ups run last in, first out).
	closeHarness(t, a)
	closeHarness(t, b)
}

// TestCoordPendingHandOver: a decision kept pending by one replica (its
// alert has not fired for `for` yet) is taken over by another when the
// first stops, and acts once at its deadline: the failover is not left to
// Alertmanager's repeat_interval.
func TestCoordPendingHandOver(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 11, ActionDuration: 200 * time.Millisecond})
	p := env.readyPlans(t, 1)[0]
	cfg := coordConfig(t, cluster, "/pending/", newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(p.InstanceUID),
		func(r *config.Rule) { r.For = model.Duration(3 * time.Second) }))
	a, b := replica(t, env, cfg, "a"), replica(t, env, cfg, "b")
	body := amtest.Notification("g", alertFor("r", time.Now())).JSON()
	if d := only(t, a.post(t, body), "r"); verdict(d) != guardFor {
		t.Fatalf("%s (%s), want for", verdict(d), d.Reason)
	}
	closeHarness(t, a)
	waitForWithin(t, 5*time.Second, func() bool { return len(b.tr.status().Pending) == 1 })
	o := waitOutcome(t, b, 15*time.Second)
	if o.Outcome != outcomeSuccess {
		t.Fatalf("outcome %s (%s)", o.Outcome, o.Message)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
		t.Fatalf("%d starts, want 1", n)
	}
}

// TestCoordAuth: with etcd authentication on and a user that may use only
// the prefix, the replicas act once; the password is in no answer, status
// or log line.
func TestCoordAuth(t *testing.T) {
	cluster := etcdtest.Start(t)
	const password = "etcd-s3cret-pw"
	cluster.EnableAuth("vfe", password, "/auth/")
	env := startSim(t, simulator.Options{Seed: 12, ActionDuration: 200 * time.Millisecond})
	p := env.readyPlans(t, 1)[0]
	cfg := coordConfig(t, cluster, "/auth/", newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(p.InstanceUID)))
	cfg.Coordination.Etcd.Username, cfg.Coordination.Etcd.Password = "vfe", password
	var logs strings.Builder
	var mu sync.Mutex
	hs := make([]*harness, 2)
	actors := newActors(t, env.sim)
	for i, name := range []string{"a", "b"} {
		c := cfg
		c.AuditLog = filepath.Join(t.TempDir(), "audit.jsonl")
		hs[i] = newHarness(t, c, actors, Options{ReplicaName: name, Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	}
	body := amtest.Notification("g", alertFor("r", time.Now().Add(-time.Minute))).JSON()
	for _, h := range hs {
		h.post(t, body)
	}
	for _, h := range hs {
		h.wait(t, 10*time.Second)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
		t.Fatalf("%d starts, want 1", n)
	}
	for _, h := range hs {
		if s := mustJSON(t, h.tr.status()); strings.Contains(s, password) {
			t.Fatal("password in /trigger")
		}
	}
	// A reload keeps the shared store; one that changes it is refused
	// (it takes a restart).
	if err := hs[0].tr.Reload(hs[0].cfg, actors); err != nil {
		t.Fatalf("reload: %v", err)
	}
	changed := hs[0].cfg
	changed.Coordination.Etcd.Prefix = "/elsewhere/"
	if err := hs[0].tr.Reload(changed, actors); err == nil || !strings.Contains(err.Error(), "restart") || strings.Contains(err.Error(), password) {
		t.Fatalf("reload changing the store: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), password) {
		t.Fatal("password in the log")
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

// TestCoordPrune: shared dedup keys, cooldowns and holds are removed once
// they can no longer matter, and not before.
func TestCoordPrune(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 13, ActionDuration: 100 * time.Millisecond})
	p := env.readyPlans(t, 1)[0]
	cfg := coordConfig(t, cluster, "/prune/", newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(p.InstanceUID)))
	clock := &offsetClock{}
	o := clock.options()
	o.ReplicaName = "a"
	h := newHarness(t, cfg, env.actors, o)
	h.post(t, amtest.Notification("g", alertFor("r", time.Now().Add(-time.Minute))).JSON())
	h.wait(t, 10*time.Second)
	count := func() int {
		n := 0
		for _, prefix := range []string{"dedup/", "cooldowns/", "holds/"} {
			es, err := h.tr.coord.st.List(context.Background(), prefix)
			if err != nil {
				t.Fatal(err)
			}
			n += len(es)
		}
		return n
	}
	if count() == 0 {
		t.Fatal("no shared memory after an action")
	}
	h.tr.coordPrune()
	if count() == 0 {
		t.Fatal("pruned what still matters")
	}
	clock.add(100 * 24 * time.Hour)
	h.tr.coordPrune()
	if n := count(); n != 0 {
		t.Fatalf("%d shared records left after they expired", n)
	}
}
