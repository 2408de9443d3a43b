package trigger

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/coordination"
	"github.com/veeam-failover/veeam_failover_exporter/internal/etcdtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// revokeLease ends a replica's etcd session from outside, as a lease that
// lapsed (a long pause, a partition) would: the owner ID ends in the lease
// ID in hex.
func revokeLease(t *testing.T, cluster *etcdtest.Cluster, owner string) {
	t.Helper()
	id, err := strconv.ParseInt(owner[strings.LastIndex(owner, "-")+1:], 16, 64)
	if err != nil {
		t.Fatalf("owner %q: %v", owner, err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: cluster.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(id)); err != nil {
		t.Fatal(err)
	}
}

// waitSharedStatus waits for the shared record of an action to have status.
func waitSharedStatus(t *testing.T, h *harness, rid, status string) {
	t.Helper()
	waitFor(t, func() bool {
		e, found, err := h.tr.coord.st.Get(context.Background(), actionKey(rid))
		var sa sharedAction
		return err == nil && found && json.Unmarshal(e.Value, &sa) == nil && sa.Record != nil && sa.Record.Status == status
	})
}

// outcomesOf is h's outcomes for one request id.
func outcomesOf(h *harness, rid string) []outcomeLine {
	var out []outcomeLine
	for _, o := range h.tr.status().RecentOutcomes {
		if o.RequestID == rid {
			out = append(out, o)
		}
	}
	return out
}

// TestCoordAdoptRereadsRecord: the adopting replica listed an action as
// decided; its owner then wrote sending, called, and its lease lapsed. The
// adoption acts on the record as it is once the claim is won: uncertain,
// kept, never "abandoned, never sent" (which would release it for a second
// call).
func TestCoordAdoptRereadsRecord(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 181})
	p := env.readyPlans(t, 1)[0]
	cfg := coordConfig(t, cluster, "/reread/", newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(p.InstanceUID)))
	b := replica(t, env, cfg, "b")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ghost, err := coordination.Open(ctx, coordination.Config{Endpoints: cluster.Endpoints(), Prefix: "/reread/", Name: "ghost",
		LeaseTTL: 5 * time.Second, DialTimeout: 2 * time.Second, RequestTimeout: coordOpTimeout, HealthTimeout: time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ghost.ID() != "" })
	now := time.Now()
	rec := &actionRecord{RequestID: "18181818-2222-4222-8222-181818181818", Rule: "r", Action: config.ActionVSPCPlanStart, Target: "vspc",
		Object: p.InstanceUID, ObjectKey: "vspc/plan/" + strings.ToLower(p.InstanceUID), PlanID: p.InstanceUID, Status: statusDecided, DecidedAt: now}
	stale := sharedAction{Owner: ghost.ID(), Record: rec}
	data, _ := json.Marshal(stale)
	if res, err := ghost.Decide(ctx, coordination.Decision{Key: claimKeyOf(rec), Records: map[string][]byte{actionKey(rec.RequestID): data}}); err != nil || !res.Won {
		t.Fatalf("ghost claim: %+v %v", res, err)
	}
	staleCopy := stale
	staleRec := *rec
	staleCopy.Record = &staleRec
	// The owner moves on: sending, the call, then its lease ends.
	rec.Status, rec.SendingAt = statusSending, time.Now()
	data, _ = json.Marshal(sharedAction{Owner: ghost.ID(), Record: rec})
	if err := ghost.Put(ctx, actionKey(rec.RequestID), data); err != nil {
		t.Fatal(err)
	}
	if err := ghost.Close(); err != nil {
		t.Fatal(err)
	}
	// B adopts with the copy it listed before (its own scan may come
	// first: either way the record as it is now decides).
	b.tr.coordAdopt(ctx, &staleCopy)
	o := waitOutcome(t, b, 10*time.Second)
	if o.RequestID != rec.RequestID || o.Outcome != outcomeUncertain {
		t.Fatalf("outcome %+v, want uncertain", o)
	}
	time.Sleep(2 * coordCheckEvery)
	if outs := outcomesOf(b, rec.RequestID); len(outs) != 1 {
		t.Fatalf("outcomes %+v, want one uncertain", outs)
	}
}

// TestCoordSessionChange: a replica's lease lapses while its call is in
// flight and it gets a new session. The action claimed under the old one
// is left to adoption (this replica's new session adopts it: sending, so
// uncertain, once), and new decisions are not refused because of it.
func TestCoordSessionChange(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 182, ActionDuration: 300 * time.Millisecond})
	ps := env.readyPlans(t, 2)
	cfg := coordConfig(t, cluster, "/session/",
		newRule("one", config.ActionVSPCPlanStart, "vspc", withPlan(ps[0].InstanceUID)),
		newRule("two", config.ActionVSPCPlanStart, "vspc", withPlan(ps[1].InstanceUID)))
	a := replica(t, env, cfg, "a")
	env.sim.SetFault(simulator.APIVSPC, simulator.Fault{Method: http.MethodPost, PathPrefix: vspcPlansPath, Latency: 4 * time.Second, Count: 1})
	d := only(t, a.post(t, alertBody("g1", "one")), "one")
	if verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	// "sending" is written, the call is on its way: the lease ends.
	waitSharedStatus(t, a, d.RequestID, statusSending)
	old := a.tr.coord.st.ID()
	revokeLease(t, cluster, old)
	waitForWithin(t, 10*time.Second, func() bool { id := a.tr.coord.st.ID(); return id != "" && id != old })
	// The call returns meanwhile; its "sent" cannot be written under the
	// old session.
	waitForWithin(t, 10*time.Second, func() bool { return len(outcomesOf(a, d.RequestID)) > 0 })
	waitForWithin(t, 5*time.Second, func() bool { return a.tr.coordReady() == nil })
	code, ans := a.postCode(t, alertBody("g2", "two"))
	if code != http.StatusOK || verdict(only(t, ans, "two")) != verdictDecided {
		t.Fatalf("new decision after the session changed: %d %+v", code, ans)
	}
	a.wait(t, 10*time.Second)
	time.Sleep(4 * coordCheckEvery)
	outs := outcomesOf(a, d.RequestID)
	if len(outs) != 1 || outs[0].Outcome != outcomeUncertain {
		t.Fatalf("outcomes of the action of the old session %+v, want one uncertain", outs)
	}
	for _, p := range ps {
		if n := env.sim.VSPCPlanStarts(p.InstanceUID); n != 1 {
			t.Fatalf("plan %s: %d starts, want 1", p.Name, n)
		}
	}
}

// TestCoordCloseWritesSent: a replica closed gracefully while its call is
// in flight writes "sent" when the call returns, so the replica that adopts
// the action follows it to its real end instead of calling it uncertain.
func TestCoordCloseWritesSent(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 183, ActionDuration: 500 * time.Millisecond})
	p := env.readyPlans(t, 1)[0]
	cfg := coordConfig(t, cluster, "/closesent/", newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(p.InstanceUID)))
	a, b := replica(t, env, cfg, "a"), replica(t, env, cfg, "b")
	env.sim.SetFault(simulator.APIVSPC, simulator.Fault{Method: http.MethodPost, PathPrefix: vspcPlansPath, Latency: 1500 * time.Millisecond, Count: 1})
	d := only(t, a.post(t, alertBody("g", "r")), "r")
	if verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	waitSharedStatus(t, a, d.RequestID, statusSending)
	closeHarness(t, a)
	o := waitOutcome(t, b, 15*time.Second)
	if o.Outcome != outcomeSuccess {
		t.Fatalf("adopted outcome %s (%s), want success", o.Outcome, o.Message)
	}
	if n := env.sim.VSPCPlanStarts(p.InstanceUID); n != 1 {
		t.Fatalf("%d starts, want 1", n)
	}
}
