package trigger

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"github.com/veeam-failover/veeam_failover_exporter/internal/etcdtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// Defects found in review of the approvals and the pending decisions
// (issues 14 and 17), each with the test that shows it fixed.

// TestApprovalMeetsCooldown: rule r asks a person, rule a on the same EM
// plan acts meanwhile; approving r afterwards must not start the plan a
// second time (the approved decision meets the cooldown again).
func TestApprovalMeetsCooldown(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 17})
	p := env.sim.Estate().EM.Plans[0]
	now := time.Now()
	cfg := peopleConfig(t.TempDir(),
		newRule("r", config.ActionEMPlanStart, "em", emPlan(p.UID), withApproval(time.Hour)),
		newRule("a", config.ActionEMPlanStart, "em", emPlan(p.Name)))
	h := newHarness(t, cfg, env.actors, Options{})
	if d := only(t, h.post(t, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON()), "r"); d.Outcome != verdictAwaiting {
		t.Fatalf("r: %s %s", verdict(d), d.Reason)
	}
	ap := h.tr.status().Approvals[0]
	if d := only(t, h.post(t, amtest.Notification("g2", alertFor("a", now.Add(-time.Minute))).JSON()), "a"); d.Outcome != verdictDecided {
		t.Fatalf("a: %s %s", verdict(d), d.Reason)
	}
	h.wait(t, 10*time.Second)
	code, res := h.answer(t, ap.ID, true, testApproverToken)
	if code != http.StatusOK || res.Decision == nil || res.Decision.Guard != guardCooldown {
		t.Fatalf("approval after another rule acted: %d %+v, want blocked by cooldown", code, res.Decision)
	}
	time.Sleep(500 * time.Millisecond)
	if got := env.sim.EMPlanStarts(p.UID); got != 1 {
		t.Fatalf("%d EM plan starts, want 1", got)
	}
}

// TestSecondApprovalForObjectBlocked: two alert groups on one EM plan (no
// plan status to stop a second start) ask two questions; once the first is
// approved and acted on, approving the second calls nothing.
func TestSecondApprovalForObjectBlocked(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 18})
	p := env.sim.Estate().EM.Plans[0]
	cfg := peopleConfig(t.TempDir(), newRule("r", config.ActionEMPlanStart, "em", emPlan(p.UID), withApproval(time.Hour)))
	h := newHarness(t, cfg, env.actors, Options{})
	at := time.Now().Add(-time.Hour)
	h.post(t, amtest.Notification("g1", alertFor("r", at, "instance", "1")).JSON())
	h.post(t, amtest.Notification("g2", alertFor("r", at, "instance", "2")).JSON())
	aps := h.tr.status().Approvals
	if len(aps) != 2 {
		t.Fatalf("%d approvals, want one per alert group", len(aps))
	}
	if code, res := h.answer(t, aps[0].ID, true, testApproverToken); code != http.StatusOK || res.Decision.Outcome != verdictDecided {
		t.Fatalf("first approval: %d %+v", code, res.Decision)
	}
	h.wait(t, 10*time.Second)
	code, res := h.answer(t, aps[1].ID, true, testApproverToken)
	if code != http.StatusOK || res.Decision == nil || res.Decision.Guard != guardCooldown {
		t.Fatalf("second approval: %d %+v, want blocked by cooldown", code, res.Decision)
	}
	if n := env.sim.EMPlanStarts(p.UID); n != 1 {
		t.Fatalf("%d EM plan starts, want 1", n)
	}
}

// TestApprovalEndsWhenAlertsResolve: an approval whose alerts all resolved
// (one notification at a time) ends rejected by alertmanager and cannot be
// approved any more.
func TestApprovalEndsWhenAlertsResolve(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 19})
	p := env.readyPlans(t, 1)[0]
	cfg := peopleConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID), withApproval(time.Hour)))
	h := newHarness(t, cfg, env.actors, Options{})
	at := time.Now().Add(-time.Hour)
	ap := h.awaiting(t, env, amtest.Notification("g", alertFor("r", at, "instance", "1"), alertFor("r", at, "instance", "2")).JSON(), p.InstanceUID)

	one := amtest.Resolved(at, "alertname", "SiteDown", "rule", "r", "instance", "1")
	h.post(t, amtest.Notification("g", one, alertFor("r", at, "instance", "2")).JSON())
	if n := len(h.tr.status().Approvals); n != 1 {
		t.Fatalf("%d approvals while one alert still fires, want 1", n)
	}
	two := amtest.Resolved(at, "alertname", "SiteDown", "rule", "r", "instance", "2")
	h.post(t, amtest.Notification("g", two).JSON())
	if aps := h.tr.status().Approvals; len(aps) != 0 {
		t.Fatalf("approvals after every alert resolved: %+v", aps)
	}
	if n := auditCount(t, h, `"event":"approval"`, ap.ID, `"state":"rejected"`, `"by":"alertmanager"`, `"reason":"alerts resolved"`); n != 1 {
		t.Errorf("%d audit lines of the approval ended by the resolution, want 1", n)
	}
	if got := h.counter(h.tr.m.outcomes, "r", config.ActionVSPCPlanStart, outcomeRejected); got != 1 {
		t.Errorf("outcomes{rejected} = %v, want 1", got)
	}
	if code, res := h.answer(t, ap.ID, true, testApproverToken); code != http.StatusConflict {
		t.Fatalf("approval after the alerts resolved: %d %+v, want 409", code, res)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 0 {
		t.Fatalf("%d starts", n)
	}
}

// TestCoordApprovalEndsWhenAlertsResolve: with coordination the resolution
// reaching either replica ends the shared approval for both.
func TestCoordApprovalEndsWhenAlertsResolve(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 20})
	p := env.readyPlans(t, 1)[0]
	_, a, b := sharedApprovalReplicas(t, env, cluster, "/resolved/", p.InstanceUID, time.Hour)
	at := time.Now().Add(-time.Hour)
	if d := only(t, a.post(t, amtest.Notification("g", alertFor("r", at)).JSON()), "r"); d.Outcome != verdictAwaiting {
		t.Fatalf("%s %s", verdict(d), d.Reason)
	}
	ap := listed(t, b)
	b.post(t, amtest.Notification("g", amtest.Resolved(at, "alertname", "SiteDown", "rule", "r")).JSON())
	waitForWithin(t, 5*time.Second, func() bool { return len(a.tr.status().Approvals) == 0 && len(b.tr.status().Approvals) == 0 })
	if code, res := a.answer(t, ap.ID, true, testApproverToken); code != http.StatusConflict {
		t.Fatalf("approval after the alerts resolved: %d %+v, want 409", code, res)
	}
	if n := auditCount(t, b, `"event":"approval"`, ap.ID, `"by":"alertmanager"`); n != 1 {
		t.Errorf("%d audit lines of the resolution on the replica that received it, want 1", n)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 0 {
		t.Fatalf("%d starts", n)
	}
}

// TestApprovedWaitsForToken: an approved decision the rate limit stops is
// kept (meeting only the approved guards again) and acts when the token
// comes, without another answer or notification.
func TestApprovedWaitsForToken(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 21})
	ps := env.readyPlans(t, 2)
	cfg := peopleConfig(t.TempDir(),
		newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(ps[0].InstanceUID), withApproval(time.Hour)),
		newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(ps[1].InstanceUID)))
	cfg.RateLimit = config.RateLimit{Actions: 1, Per: modelDuration(2 * time.Second)}
	h := newHarness(t, cfg, env.actors, Options{})
	at := time.Now().Add(-time.Hour)
	ap := h.awaiting(t, env, amtest.Notification("g1", alertFor("r", at)).JSON(), ps[0].InstanceUID)
	if d := only(t, h.post(t, amtest.Notification("g2", alertFor("a", at)).JSON()), "a"); d.Outcome != verdictDecided {
		t.Fatalf("a: %s %s", verdict(d), d.Reason)
	}
	code, res := h.answer(t, ap.ID, true, testApproverToken)
	if code != http.StatusOK || res.Decision.Guard != guardRateLimit {
		t.Fatalf("approval: %d %+v, want blocked by rate_limit", code, res.Decision)
	}
	pend := h.tr.status().Pending
	if len(pend) != 1 || pend[0].Guard != guardRateLimit || pend[0].Rule != "r" {
		t.Fatalf("pending after the approval %+v, want one at rate_limit", pend)
	}
	waitForWithin(t, 5*time.Second, func() bool { return env.vspcCalls(ps[0].InstanceUID, "start") == 1 })
	h.wait(t, 10*time.Second)
	if n := len(h.tr.status().Pending); n != 0 {
		t.Errorf("%d pending after acting", n)
	}
	if n := env.vspcCalls(ps[0].InstanceUID, "start"); n != 1 {
		t.Fatalf("%d starts of the approved plan, want 1", n)
	}
}

// TestPendingExpiresAfterItsWait: a decision waiting for a rate-limit token
// an hour away is kept until then (plus the grace), not for 10 minutes.
func TestPendingExpiresAfterItsWait(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 28})
	ps := env.readyPlans(t, 2)
	cfg := baseConfig(t.TempDir(),
		newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(ps[0].InstanceUID)),
		newRule("b", config.ActionVSPCPlanStart, "vspc", planStart(ps[1].InstanceUID)))
	cfg.RateLimit = config.RateLimit{Actions: 1, Per: modelDuration(time.Hour)}
	h := newHarness(t, cfg, env.actors, Options{})
	h.post(t, amtest.Notification("g", alertFor("a", time.Now().Add(-time.Hour)), alertFor("b", time.Now().Add(-time.Hour))).JSON())
	pend := h.tr.status().Pending
	if len(pend) != 1 || pend[0].Guard != guardRateLimit {
		t.Fatalf("pending %+v, want one at rate_limit", pend)
	}
	h.tr.mu.Lock()
	pd := *h.tr.store.pending[0]
	h.tr.mu.Unlock()
	if pd.Next.Sub(pd.Since) < 50*time.Minute {
		t.Fatalf("next look %s after it was kept, want the token's ~1h", pd.Next.Sub(pd.Since))
	}
	if !pd.Expires.Equal(pd.Next.Add(pendingGrace)) {
		t.Fatalf("expires %s after it was kept, want its next look + %s (%s)", pd.Expires.Sub(pd.Since), pendingGrace, pd.Next.Add(pendingGrace).Sub(pd.Since))
	}
}

// TestPendingUnreadableKeepsTrying: a target unreadable for longer than
// the first five tries is still tried, every 32 s, until the expiry its
// first try set, and the decision acts once the target answers.
func TestPendingUnreadableKeepsTrying(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 22})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("u", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	clock := &offsetClock{}
	h := newHarness(t, cfg, env.actors, clock.options())
	env.sim.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: "/api/v3/infrastructure/backupServers/failoverplans/" + lower(p.InstanceUID), Status: http.StatusServiceUnavailable})
	at := time.Now().Add(-time.Hour)
	if d := only(t, h.post(t, amtest.Notification("g", alertFor("u", at)).JSON()), "u"); d.Guard != guardTargetState {
		t.Fatalf("first: %s (%s)", verdict(d), d.Reason)
	}
	attempts := func() int {
		h.tr.mu.Lock()
		defer h.tr.mu.Unlock()
		if len(h.tr.store.pending) != 1 {
			return -1
		}
		return h.tr.store.pending[0].Attempts
	}
	expires := h.tr.status().Pending[0].Expires
	for want := 2; want <= readRetries+3; want++ {
		clock.add(33 * time.Second)
		h.tr.wakePending()
		// Alertmanager's notifications meanwhile change the kept alerts
		// while the pending loop evaluates them (run with -race).
		h.post(t, amtest.Notification("g", alertFor("u", at)).JSON())
		waitForWithin(t, 5*time.Second, func() bool { return attempts() >= want || attempts() < 0 })
		if got := attempts(); got < 0 {
			t.Fatalf("pending decision dropped after %d tries while its alert fires", want-1)
		}
	}
	h.tr.mu.Lock()
	wait := h.tr.store.pending[0].Next.Sub(clock.now())
	h.tr.mu.Unlock()
	if wait > 32*time.Second || wait < 30*time.Second {
		t.Errorf("next try in %s, want the capped backoff of 32s", wait)
	}
	// The tries are bounded: they do not push the expiry on.
	if got := h.tr.status().Pending[0].Expires; !got.Equal(expires) {
		t.Errorf("expires %s after the tries, want %s as at the first", got, expires)
	}
	env.sim.ClearFaults()
	clock.add(33 * time.Second)
	h.tr.wakePending()
	waitForWithin(t, 5*time.Second, func() bool { return env.vspcCalls(p.InstanceUID, "start") == 1 })
	h.wait(t, 10*time.Second)
}

// TestPendingKeptWhenNotificationMeetsKillSwitch: a notification that meets
// the kill switch leaves the decision kept for a token as it is.
func TestPendingKeptWhenNotificationMeetsKillSwitch(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 23})
	ps := env.readyPlans(t, 2)
	cfg := baseConfig(t.TempDir(),
		newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(ps[0].InstanceUID)),
		newRule("b", config.ActionVSPCPlanStart, "vspc", planStart(ps[1].InstanceUID)))
	cfg.RateLimit = config.RateLimit{Actions: 1, Per: modelDuration(time.Hour)}
	h := newHarness(t, cfg, env.actors, Options{})
	body := amtest.Notification("g", alertFor("a", time.Now().Add(-time.Hour)), alertFor("b", time.Now().Add(-time.Hour))).JSON()
	h.post(t, body)
	before := h.tr.status().Pending
	if len(before) != 1 {
		t.Fatalf("pending %+v", before)
	}
	if err := os.WriteFile(cfg.KillSwitchFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if d := only(t, h.post(t, body), "b"); d.Guard != guardKillSwitch {
		t.Fatalf("b with the kill switch: %s", verdict(d))
	}
	after := h.tr.status().Pending
	if len(after) != 1 || !after[0].Since.Equal(before[0].Since) {
		t.Fatalf("pending after a notification met the kill switch: %+v, want %+v", after, before)
	}
	if n := auditCount(t, h, `"event":"pending"`, `"state":"dropped"`); n != 0 {
		t.Fatalf("%d pending decisions dropped", n)
	}
}

// TestPendingKeptWhileBeingDecided: a notification that stops because the
// same alerts are being decided for another one leaves the kept decision to
// that one.
func TestPendingKeptWhileBeingDecided(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 24})
	ps := env.readyPlans(t, 2)
	cfg := baseConfig(t.TempDir(),
		newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(ps[0].InstanceUID)),
		newRule("b", config.ActionVSPCPlanStart, "vspc", planStart(ps[1].InstanceUID)))
	cfg.RateLimit = config.RateLimit{Actions: 1, Per: modelDuration(time.Hour)}
	h := newHarness(t, cfg, env.actors, Options{})
	at := time.Now().Add(-time.Hour)
	h.post(t, amtest.Notification("g", alertFor("a", at), alertFor("b", at)).JSON())
	before := h.tr.status().Pending
	if len(before) != 1 {
		t.Fatalf("pending %+v", before)
	}
	// While b's target is read slowly for one notification, the same one
	// arrives again and stops at dedup ("being decided").
	env.sim.SetFault(simulator.APIVSPC, simulator.Fault{Latency: time.Second, Count: 1,
		PathPrefix: "/api/v3/infrastructure/backupServers/failoverplans/" + lower(ps[1].InstanceUID)})
	body := amtest.Notification("g", alertFor("b", at)).JSON()
	done := make(chan webhookAnswer, 1)
	go func() { done <- h.post(t, body) }()
	time.Sleep(300 * time.Millisecond)
	if d := only(t, h.post(t, body), "b"); d.Guard != guardDedup || !strings.Contains(d.Reason, "being decided") {
		t.Fatalf("concurrent notification: %s %s, want dedup (being decided)", verdict(d), d.Reason)
	}
	if d := only(t, <-done, "b"); d.Guard != guardRateLimit {
		t.Fatalf("slow notification: %s", verdict(d))
	}
	after := h.tr.status().Pending
	if len(after) != 1 || !after[0].Since.Equal(before[0].Since) {
		t.Fatalf("pending after a concurrent evaluation: %+v, want since %s", after, before[0].Since)
	}
	if n := auditCount(t, h, `"event":"pending"`, `"state":"dropped"`); n != 0 {
		t.Fatalf("%d pending decisions dropped", n)
	}
}

// TestQuorumByLeavesOutAlertsWithoutTheLabels: an alert that has none of
// the quorum_by labels is no vantage point.
func TestQuorumByLeavesOutAlertsWithoutTheLabels(t *testing.T) {
	at := testNow.Add(-time.Hour)
	for _, tc := range []struct {
		name   string
		alerts []amtest.Alert
		ok     bool
	}{
		{"one prober and one without", []amtest.Alert{
			amtest.Firing(at, "alertname", "SiteDown", "prober", "berlin"),
			amtest.Firing(at, "alertname", "SiteDown", "instance", "x")}, false},
		{"two without", []amtest.Alert{
			amtest.Firing(at, "alertname", "SiteDown", "instance", "x"),
			amtest.Firing(at, "alertname", "SiteDown", "instance", "y")}, false},
		{"two probers", []amtest.Alert{
			amtest.Firing(at, "alertname", "SiteDown", "prober", "berlin"),
			amtest.Firing(at, "alertname", "SiteDown", "prober", "frankfurt"),
			amtest.Firing(at, "alertname", "SiteDown", "instance", "x")}, true},
		{"one of two labels names a vantage point", []amtest.Alert{
			amtest.Firing(at, "alertname", "SiteDown", "prober", "berlin"),
			amtest.Firing(at, "alertname", "SiteDown", "region", "eu")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			by := []string{"prober"}
			if strings.Contains(tc.name, "two labels") {
				by = []string{"prober", "region"}
			}
			cfg := config.TriggerConfig{Rules: []config.Rule{{Name: "a", Matchers: []string{`alertname="SiteDown"`}, MinAlerts: 2, QuorumBy: by,
				Action: config.Action{Type: config.ActionVSPCPlanStart, Target: "vspc", Plan: "Plan A"}}}}
			rules, err := compileRules(&cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := parsePayload(amtest.Notification("gk", tc.alerts...).JSON(), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if ok, reason := classify(p, rules, testNow, false, "")[0].quorum(); ok != tc.ok {
				t.Fatalf("quorum %v (%s), want %v", ok, reason, tc.ok)
			}
		})
	}
}

// TestManualActionCoordinationUnavailable: a manual action that cannot use
// the shared store answers 503, as an approval does, and calls nothing.
func TestManualActionCoordinationUnavailable(t *testing.T) {
	cluster := etcdtest.Start(t)
	env := startSim(t, simulator.Options{Seed: 25})
	p := env.readyPlans(t, 1)[0]
	cfg := coordConfig(t, cluster, "/manual503/", newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	cfg.ApproverToken = testApproverToken
	h := replica(t, env, cfg, "a")
	cluster.Stop(0)
	cluster.Stop(1)
	waitForWithin(t, 15*time.Second, func() bool { return h.tr.coordReady() != nil })
	code, res := h.approver(t, "/trigger/actions", testApproverToken, map[string]any{"rule": "r", "by": "alice", "reason": "drill"})
	if code != http.StatusServiceUnavailable {
		t.Errorf("manual action without the shared store: %d %+v, want 503", code, res)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 0 {
		t.Errorf("%d starts", n)
	}
	// Quorum back before the replica closes (it revokes its lease).
	cluster.Restart(0)
	cluster.Restart(1)
	cluster.WaitHealthy(20 * time.Second)
	closeHarness(t, h)
}

// TestPendingAlertsNotRacing: the pending loop evaluates a kept decision
// again while Alertmanager's notifications change its alerts (run with
// -race: the loop works on a copy taken under the mutex). The log line the
// loop writes before evaluating is slowed down, which leaves time for the
// notifications to land in the middle.
func TestPendingAlertsNotRacing(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 26})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("u", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	clock := &offsetClock{}
	o := clock.options()
	o.Logger = slog.New(slowLine{msg: "evaluating a pending decision again", pause: 20 * time.Millisecond})
	h := newHarness(t, cfg, env.actors, o)
	env.sim.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: "/api/v3/infrastructure/backupServers/failoverplans/" + lower(p.InstanceUID), Status: http.StatusServiceUnavailable})
	body := amtest.Notification("g", alertFor("u", time.Now().Add(-time.Hour))).JSON()
	h.post(t, body)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			clock.add(40 * time.Second)
			h.tr.wakePending()
		}
	}()
	for range 25 {
		h.post(t, body)
	}
	close(stop)
	<-done
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 0 {
		t.Fatalf("%d starts while the target is unreadable", n)
	}
}

// slowLine is a log handler that discards, pausing on one message.
type slowLine struct {
	msg   string
	pause time.Duration
}

func (s slowLine) Enabled(context.Context, slog.Level) bool { return true }
func (s slowLine) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s slowLine) WithGroup(string) slog.Handler            { return s }
func (s slowLine) Handle(_ context.Context, r slog.Record) error {
	if r.Message == s.msg {
		time.Sleep(s.pause)
	}
	return nil
}
