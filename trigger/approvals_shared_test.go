package trigger

import (
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"github.com/veeam-failover/veeam_failover_exporter/internal/etcdtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// Approvals with etcd coordination: replicas of one trigger share their
// approvals. These run trigger instances against a real three-member etcd
// cluster and the simulator; calls are counted in the simulator's log.

// sharedApprovalReplicas starts two replicas sharing prefix, with a rule r
// that asks for approval within `within` before starting plan.
func sharedApprovalReplicas(t *testing.T, env *simEnv, cluster *etcdtest.Cluster, prefix, plan string, within time.Duration) (config.TriggerConfig, *harness, *harness) {
	t.Helper()
	cfg := coordConfig(t, cluster, prefix, newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(plan), withApproval(within)))
	cfg.ApproverToken = testApproverToken
	return cfg, replica(t, env, cfg, "a"), replica(t, env, cfg, "b")
}

// listed waits until h's /trigger lists exactly one approval and returns it.
func listed(t *testing.T, h *harness) approvalJSON {
	t.Helper()
	var aps []approvalJSON
	waitForWithin(t, 5*time.Second, func() bool {
		aps = h.tr.status().Approvals
		return len(aps) == 1
	})
	return aps[0]
}

// auditCount counts the audit lines of h that hold every one of parts.
func auditCount(t *testing.T, h *harness, parts ...string) int {
	t.Helper()
	data, err := os.ReadFile(h.tr.cfg.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(data)) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// TestCoordApprovalAnsweredOnAnotherReplica: an approval asked through
// replica A's webhook is one shared question: B, receiving the same
// notification, shows the same id; B lists and counts it; approved on B,
// the plan starts exactly once, and the id is used on every replica.
func TestCoordApprovalAnsweredOnAnotherReplica(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 41})
	p := env.readyPlans(t, 1)[0]
	_, a, b := sharedApprovalReplicas(t, env, cluster, "/approvals-across/", p.InstanceUID, time.Minute)
	body := amtest.Notification("g1", alertFor("r", time.Now().Add(-time.Hour))).JSON()
	ap := a.awaiting(t, env, body, p.InstanceUID)
	// Both Alertmanager URLs: B gets the same notification and asks nothing new.
	if d := only(t, b.post(t, body), "r"); d.Outcome != verdictAwaiting || !strings.Contains(d.Reason, ap.ID) {
		t.Fatalf("the same notification on B: %+v, want awaiting approval %s", d, ap.ID)
	}
	got := listed(t, b)
	if got.ID != ap.ID || !got.Deadline.Equal(ap.Deadline) || got.RequestID != ap.RequestID {
		t.Fatalf("B lists %+v, want %+v", got, ap)
	}
	for name, h := range map[string]*harness{"a": a, "b": b} {
		if n := pendingApprovals(t, h, "r"); n != 1 {
			t.Fatalf("approvals_pending on %s = %v, want 1 (shared)", name, n)
		}
	}
	code, res := b.answer(t, ap.ID, true, testApproverToken)
	if code != http.StatusOK || res.Decision == nil || res.Decision.Outcome != verdictDecided || res.Decision.RequestID != ap.RequestID {
		t.Fatalf("approval on B: %d %+v", code, res)
	}
	if outs := b.wait(t, 10*time.Second); len(outs) != 1 || outs[0].Outcome != outcomeSuccess {
		t.Fatalf("outcomes on B: %+v", outs)
	}
	for name, h := range map[string]*harness{"a": a, "b": b} {
		if code, res := h.answer(t, ap.ID, true, testApproverToken); code != http.StatusConflict || !strings.Contains(res.Error, "already used: approved by alice") {
			t.Errorf("replay on %s: %d %+v, want 409 already used", name, code, res)
		}
		if n := len(h.tr.status().Approvals); n != 0 {
			t.Errorf("%s lists %d approvals after the answer", name, n)
		}
		// Blocked by dedup where the memory is local, by target_state
		// (the plan ran) where it is only shared: never decided nor asked.
		if d := only(t, h.post(t, body), "r"); d.Outcome != verdictBlocked {
			t.Errorf("repeat on %s after the action: %+v, want blocked", name, d)
		}
	}
	waitForWithin(t, 3*time.Second, func() bool { return pendingApprovals(t, a, "r") == 0 })
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
		t.Fatalf("%d start calls, want exactly 1", n)
	}
	if n := auditCount(t, b, `"state":"approved"`, ap.ID); n != 1 {
		t.Fatalf("%d approved lines in B's audit log, want 1", n)
	}
}

// TestCoordApprovalAnsweredTwiceAtOnce: the same id answered on A and B at
// the same moment is used once: one 200, one 409, one call. A rejection on
// one replica keeps the other from asking again about the same alerts.
func TestCoordApprovalAnsweredTwiceAtOnce(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 42})
	plans := env.readyPlans(t, 6)
	for round, p := range plans[:5] {
		prefix := "/approvals-race/" + p.InstanceUID + "/"
		_, a, b := sharedApprovalReplicas(t, env, cluster, prefix, p.InstanceUID, time.Minute)
		body := amtest.Notification("g1", alertFor("r", time.Now().Add(-time.Hour))).JSON()
		ap := a.awaiting(t, env, body, p.InstanceUID)
		codes := make([]int, 2)
		var wg sync.WaitGroup
		for i, h := range []*harness{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _ = h.answer(t, ap.ID, true, testApproverToken)
			}()
		}
		wg.Wait()
		if !(codes[0] == http.StatusOK && codes[1] == http.StatusConflict || codes[0] == http.StatusConflict && codes[1] == http.StatusOK) {
			t.Fatalf("round %d: answers %v, want one 200 and one 409", round, codes)
		}
		a.wait(t, 10*time.Second)
		b.wait(t, 10*time.Second)
		if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
			t.Fatalf("round %d: %d start calls, want exactly 1", round, n)
		}
	}
	// Rejected on A: B does not ask about the same alerts again.
	p := plans[5]
	_, a2, b2 := sharedApprovalReplicas(t, env, cluster, "/approvals-reject/", p.InstanceUID, time.Minute)
	body := amtest.Notification("g2", alertFor("r", time.Now().Add(-time.Hour))).JSON()
	ap := a2.awaiting(t, env, body, p.InstanceUID)
	if code, res := a2.answer(t, ap.ID, false, testApproverToken); code != http.StatusOK || res.State != approvalRejected {
		t.Fatalf("rejection on A: %d %+v", code, res)
	}
	if d := only(t, b2.post(t, body), "r"); d.Guard != guardDedup {
		t.Fatalf("the rejected alerts on B: %+v, want dedup (not asked again)", d)
	}
	if code, _ := b2.answer(t, ap.ID, true, testApproverToken); code != http.StatusConflict {
		t.Fatalf("approving on B what A rejected: %d, want 409", code)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 0 {
		t.Fatalf("%d start calls after a rejection, want none", n)
	}
}

// TestCoordApprovalSurvivesRestart: the replica that asked stops; the
// approval stays in etcd with its deadline, the other replica lists it,
// and once the first is back it answers it: one call.
func TestCoordApprovalSurvivesRestart(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 43})
	p := env.readyPlans(t, 1)[0]
	cfg, a, b := sharedApprovalReplicas(t, env, cluster, "/approvals-restart/", p.InstanceUID, time.Minute)
	body := amtest.Notification("g1", alertFor("r", time.Now().Add(-time.Hour))).JSON()
	ap := a.awaiting(t, env, body, p.InstanceUID)
	closeHarness(t, a)
	if got := listed(t, b); got.ID != ap.ID || !got.Deadline.Equal(ap.Deadline) {
		t.Fatalf("B lists %+v after A stopped, want %s until %s", got, ap.ID, ap.Deadline)
	}
	a2 := replica(t, env, cfg, "a")
	if got := listed(t, a2); got.ID != ap.ID || !got.Deadline.Equal(ap.Deadline) {
		t.Fatalf("A after its restart lists %+v, want %s until %s", got, ap.ID, ap.Deadline)
	}
	if code, res := a2.answer(t, ap.ID, true, testApproverToken); code != http.StatusOK || res.Decision == nil || res.Decision.Outcome != verdictDecided {
		t.Fatalf("approval after the restart: %d %+v", code, res)
	}
	a2.wait(t, 10*time.Second)
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
		t.Fatalf("%d start calls, want exactly 1", n)
	}
}

// TestCoordApprovalExpiresOnce: every replica watches the deadline; the
// approval ends expired once over all of them (one outcome, one audit
// line), nothing is called, and a late answer is 409 everywhere.
func TestCoordApprovalExpiresOnce(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 44})
	p := env.readyPlans(t, 1)[0]
	_, a, b := sharedApprovalReplicas(t, env, cluster, "/approvals-expiry/", p.InstanceUID, 700*time.Millisecond)
	body := amtest.Notification("g1", alertFor("r", time.Now().Add(-time.Hour))).JSON()
	ap := a.awaiting(t, env, body, p.InstanceUID)
	expired := func() float64 {
		return a.counter(a.tr.m.outcomes, "r", config.ActionVSPCPlanStart, outcomeExpired) +
			b.counter(b.tr.m.outcomes, "r", config.ActionVSPCPlanStart, outcomeExpired)
	}
	waitForWithin(t, 10*time.Second, func() bool { return expired() >= 1 })
	time.Sleep(2 * time.Second) // both loops have looked at it again since
	if n := expired(); n != 1 {
		t.Fatalf("expired outcomes over both replicas = %v, want 1", n)
	}
	if n := auditCount(t, a, `"state":"expired"`, ap.ID) + auditCount(t, b, `"state":"expired"`, ap.ID); n != 1 {
		t.Fatalf("%d expired audit lines over both replicas, want 1", n)
	}
	for name, h := range map[string]*harness{"a": a, "b": b} {
		if code, res := h.answer(t, ap.ID, true, testApproverToken); code != http.StatusConflict || !strings.Contains(res.Error, "expired") {
			t.Errorf("late answer on %s: %d %+v, want 409 expired", name, code, res)
		}
		if n := len(h.tr.status().Approvals); n != 0 {
			t.Errorf("%s lists %d approvals after the deadline", name, n)
		}
		if n := pendingApprovals(t, h, "r"); n != 0 {
			t.Errorf("approvals_pending on %s = %v after the deadline", name, n)
		}
	}
	if n := env.actionPosts(); n != 0 {
		t.Fatalf("%d calls after an expiry, want none", n)
	}
}
