package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// The tests of issue 17 ("Trigger safety"), decision and memory half, run
// against the simulator over HTTPS.

func emPlan(p string) func(*config.Rule) { return func(r *config.Rule) { r.Action.Plan = p } }

func matchRule(name string) func(*config.Rule) {
	return func(r *config.Rule) { r.Matchers = []string{`alertname="SiteDown"`, `rule="` + name + `"`} }
}

func closeHarness(t *testing.T, h *harness) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestObjectIsTheKey (items 2 and 3): dedup, cooldown and the in-flight
// check are keyed on the object Veeam identifies and the action, not on the
// rule or the label spelling, and an object is acted on by one action at a
// time across rules, also after action_timeout gave up on it.
func TestObjectIsTheKey(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 17})
	plans := env.sim.Estate().EM.Plans
	now := time.Now()

	t.Run("rename and reload", func(t *testing.T) {
		p := plans[0]
		cfg := baseConfig(t.TempDir(), newRule("a", config.ActionEMPlanStart, "em", emPlan(p.UID)))
		h := newHarness(t, cfg, env.actors, Options{})
		n1 := amtest.Notification("g1", alertFor("a", now.Add(-time.Hour))).JSON()
		if d := only(t, h.post(t, n1), "a"); d.Outcome != verdictDecided {
			t.Fatalf("first: %s (%s)", verdict(d), d.Reason)
		}
		h.wait(t, 10*time.Second)
		renamed := baseConfig(cfg.StateFile[:len(cfg.StateFile)-len("/state.json")],
			newRule("a-renamed", config.ActionEMPlanStart, "em", emPlan(p.Name), matchRule("a")))
		if err := h.tr.Reload(renamed, env.actors); err != nil {
			t.Fatal(err)
		}
		if d := only(t, h.post(t, n1), "a-renamed"); d.Guard != guardDedup {
			t.Fatalf("repeat after the rename: %s (%s)", verdict(d), d.Reason)
		}
		n2 := amtest.Notification("g2", alertFor("a", now.Add(-time.Minute))).JSON()
		if d := only(t, h.post(t, n2), "a-renamed"); d.Guard != guardCooldown {
			t.Fatalf("new alert after the rename: %s (%s)", verdict(d), d.Reason)
		}
		h.wait(t, 10*time.Second)
		if got := env.sim.EMPlanStarts(p.UID); got != 1 {
			t.Fatalf("%d EM plan starts, want 1", got)
		}
	})

	t.Run("name and id are one plan", func(t *testing.T) {
		p := plans[1]
		cfg := baseConfig(t.TempDir(), newRule("l", config.ActionEMPlanStart, "em", func(r *config.Rule) {
			r.Action.PlanLabel, r.Action.Allow = "plan", []string{p.Name, p.UID}
		}))
		h := newHarness(t, cfg, env.actors, Options{})
		byName := amtest.Notification("g1", alertFor("l", now.Add(-time.Hour), "plan", p.Name)).JSON()
		if d := only(t, h.post(t, byName), "l"); d.Outcome != verdictDecided {
			t.Fatalf("by name: %s (%s)", verdict(d), d.Reason)
		}
		h.wait(t, 10*time.Second)
		byID := amtest.Notification("g2", alertFor("l", now.Add(-time.Minute), "plan", p.UID)).JSON()
		if d := only(t, h.post(t, byID), "l"); d.Guard != guardCooldown {
			t.Fatalf("by id: %s (%s)", verdict(d), d.Reason)
		}
		if got := env.sim.EMPlanStarts(p.UID); got != 1 {
			t.Fatalf("%d EM plan starts, want 1", got)
		}
	})

	slow := startSimTLS(t, simulator.Options{Seed: 18, ActionDuration: 4 * time.Second})
	splans := slow.sim.Estate().EM.Plans

	t.Run("two rules while the first is still running", func(t *testing.T) {
		p := splans[0]
		cfg := baseConfig(t.TempDir(),
			newRule("x", config.ActionEMPlanStart, "em", emPlan(p.UID)),
			newRule("y", config.ActionEMPlanStart, "em", emPlan(p.Name), func(r *config.Rule) { r.Cooldown = 0 }))
		cfg.ActionTimeout = modelDuration(500 * time.Millisecond)
		h := newHarness(t, cfg, slow.actors, Options{})
		if d := only(t, h.post(t, amtest.Notification("gx", alertFor("x", now.Add(-time.Hour))).JSON()), "x"); d.Outcome != verdictDecided {
			t.Fatalf("x: %s (%s)", verdict(d), d.Reason)
		}
		outs := h.wait(t, 5*time.Second) // action_timeout gives up; the task still runs
		if len(outs) != 1 || outs[0].Outcome != outcomeTimeout {
			t.Fatalf("outcomes %+v", outs)
		}
		d := only(t, h.post(t, amtest.Notification("gy", alertFor("y", now.Add(-time.Minute))).JSON()), "y")
		if d.Guard != guardTargetState || !strings.Contains(d.Reason, "locked") {
			t.Fatalf("y: %s (%s), want target_state: the object is locked", verdict(d), d.Reason)
		}
		if locks := h.tr.status().ObjectLocks; len(locks) != 1 || locks[0].Object != "em/plan/"+strings.ToLower(p.UID) {
			t.Fatalf("object locks %+v", locks)
		}
		if got := slow.sim.EMPlanStarts(p.UID); got != 1 {
			t.Fatalf("%d EM plan starts, want 1", got)
		}
	})

	t.Run("cooldown 0s and four re-fires", func(t *testing.T) {
		p := splans[1]
		cfg := baseConfig(t.TempDir(), newRule("z", config.ActionEMPlanStart, "em", emPlan(p.UID), func(r *config.Rule) { r.Cooldown = 0 }))
		h := newHarness(t, cfg, slow.actors, Options{})
		var verdicts []string
		for i := range 4 {
			n := amtest.Notification(fmt.Sprintf("refire-%d", i), alertFor("z", now.Add(-time.Duration(10-i)*time.Minute))).JSON()
			verdicts = append(verdicts, verdict(only(t, h.post(t, n), "z")))
		}
		if want := []string{verdictDecided, guardTargetState, guardTargetState, guardTargetState}; strings.Join(verdicts, ",") != strings.Join(want, ",") {
			t.Fatalf("verdicts %v, want %v", verdicts, want)
		}
		h.wait(t, 10*time.Second)
		if got := slow.sim.EMPlanStarts(p.UID); got != 1 {
			t.Fatalf("%d EM plan starts, want 1", got)
		}
	})
}

// TestLostStateRebuiltFromAudit (item 1): a state file lost while the
// audit log holds the decisions is rebuilt from the log, so Alertmanager's
// next repeat does not start the EM plan or the CDP failover again.
func TestLostStateRebuiltFromAudit(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 19})
	est := env.sim.Estate().EM
	p, cdp := est.Plans[0], est.CdpReplicas[0]
	vm := cdp.VMs[0]
	dir := t.TempDir()
	cfg := baseConfig(dir,
		newRule("plan", config.ActionEMPlanStart, "em", emPlan(p.UID)),
		newRule("cdp", config.ActionEMCdpFailover, "em", func(r *config.Rule) { r.Action.CdpReplica, r.Action.VM = cdp.UID, vm.UID }))
	body := amtest.Notification("g", alertFor("plan", time.Now().Add(-time.Hour)), alertFor("cdp", time.Now().Add(-time.Hour))).JSON()
	h1 := newHarness(t, cfg, env.actors, Options{})
	ans := h1.post(t, body)
	for _, r := range []string{"plan", "cdp"} {
		if d := only(t, ans, r); d.Outcome != verdictDecided {
			t.Fatalf("%s: %s (%s)", r, verdict(d), d.Reason)
		}
	}
	h1.wait(t, 10*time.Second)
	closeHarness(t, h1)
	if err := os.Remove(cfg.StateFile); err != nil {
		t.Fatal(err)
	}

	h2 := newHarness(t, cfg, newActors(t, env.sim), Options{})
	st := h2.tr.status()
	if !st.Armed {
		t.Fatalf("not armed after the rebuild: %s", st.DisarmedReason)
	}
	if len(st.Cooldowns) != 2 {
		t.Fatalf("cooldowns after the rebuild: %+v", st.Cooldowns)
	}
	ans = h2.post(t, body)
	for _, r := range []string{"plan", "cdp"} {
		if d := only(t, ans, r); d.Guard != guardDedup {
			t.Fatalf("%s after the rebuild: %s (%s)", r, verdict(d), d.Reason)
		}
	}
	h2.wait(t, 5*time.Second)
	if got := env.sim.EMPlanStarts(p.UID); got != 1 {
		t.Errorf("%d EM plan starts, want 1", got)
	}
	if got := env.sim.EMCdpFailovers(vm.UID); got != 1 {
		t.Errorf("%d CDP failovers, want 1", got)
	}
	if _, err := os.Stat(cfg.StateFile); err != nil {
		t.Errorf("the rebuilt state was not written: %v", err)
	}
}

// TestPendingFor (item 5): a decision blocked only by `for` is kept and
// acts at its deadline, with no further notification.
func TestPendingFor(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 20})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("f", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID), func(r *config.Rule) {
		r.For = modelDuration(2 * time.Second)
	}))
	h := newHarness(t, cfg, env.actors, Options{})
	start := time.Now()
	d := only(t, h.post(t, amtest.Notification("g", alertFor("f", start)).JSON()), "f")
	if d.Guard != guardFor {
		t.Fatalf("first: %s (%s)", verdict(d), d.Reason)
	}
	if got := testutil.ToFloat64(h.tr.m.pending.WithLabelValues("f", guardFor)); got != 1 {
		t.Fatalf("veeam_trigger_pending_decisions{rule=f,guard=for} = %v, want 1", got)
	}
	if ps := h.tr.status().Pending; len(ps) != 1 || ps[0].Guard != guardFor {
		t.Fatalf("/trigger pending_decisions %+v", ps)
	}
	waitForWithin(t, 4*time.Second, func() bool { return env.vspcCalls(p.InstanceUID, "start") == 1 })
	took := time.Since(start)
	t.Logf("acted %s after the alert started (for: 2s)", took.Round(time.Millisecond))
	if took > 3500*time.Millisecond {
		t.Errorf("acted after %s, want within ~3s", took)
	}
	h.wait(t, 10*time.Second)
	if got := testutil.ToFloat64(h.tr.m.pending.WithLabelValues("f", guardFor)); got != 0 {
		t.Errorf("pending after acting = %v", got)
	}
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 1 {
		t.Errorf("%d starts", got)
	}
}

// TestPendingDroppedWhenResolved: a later notification resolving the alert
// ends the pending decision; nothing acts.
func TestPendingDroppedWhenResolved(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 21})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("f", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID), func(r *config.Rule) {
		r.For = modelDuration(1500 * time.Millisecond)
	}))
	h := newHarness(t, cfg, env.actors, Options{})
	startsAt := time.Now()
	h.post(t, amtest.Notification("g", alertFor("f", startsAt)).JSON())
	resolved := amtest.Resolved(startsAt, "alertname", "SiteDown", "rule", "f")
	h.post(t, amtest.Notification("g", resolved).JSON())
	if ps := h.tr.status().Pending; len(ps) != 0 {
		t.Fatalf("pending after the resolution: %+v", ps)
	}
	time.Sleep(2500 * time.Millisecond)
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 0 {
		t.Fatalf("%d starts for a resolved alert", got)
	}
}

// TestPendingUnreadableTarget: a decision stopped because Veeam could not
// be read is tried again with backoff and acts once Veeam answers.
func TestPendingUnreadableTarget(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 22})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("u", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	h := newHarness(t, cfg, env.actors, Options{})
	env.sim.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: "/api/v3/infrastructure/backupServers/failoverplans/" + lower(p.InstanceUID), Status: http.StatusServiceUnavailable})
	d := only(t, h.post(t, amtest.Notification("g", alertFor("u", time.Now().Add(-time.Hour))).JSON()), "u")
	if d.Guard != guardTargetState {
		t.Fatalf("with VSPC unreadable: %s (%s)", verdict(d), d.Reason)
	}
	if got := testutil.ToFloat64(h.tr.m.pending.WithLabelValues("u", guardTargetState)); got != 1 {
		t.Fatalf("pending{u,target_state} = %v (%s)", got, d.Reason)
	}
	env.sim.ClearFaults()
	waitForWithin(t, 15*time.Second, func() bool { return env.vspcCalls(p.InstanceUID, "start") == 1 })
	h.wait(t, 10*time.Second)
}

// TestKillSwitchDuringDecisionReleases (item 7): a kill switch created while
// the decision reads Veeam stops the call; the action is abandoned and
// releases its cooldown, dedup keys and rate token, so a later notification
// acts once the kill switch is gone.
func TestKillSwitchDuringDecisionReleases(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 23})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("k", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	cfg.RateLimit.Actions = 1
	h := newHarness(t, cfg, env.actors, Options{})
	env.sim.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: "/api/v3/infrastructure/backupServers/failoverplans/" + lower(p.InstanceUID), Latency: 600 * time.Millisecond, Count: 1})
	body := amtest.Notification("g", alertFor("k", time.Now().Add(-time.Hour))).JSON()
	done := make(chan decision, 1)
	go func() {
		code, ans := h.postCode(t, body)
		if code != http.StatusOK || len(ans.Decisions) != 1 {
			t.Errorf("webhook %d %+v", code, ans)
			done <- decision{}
			return
		}
		done <- ans.Decisions[0]
	}()
	time.Sleep(200 * time.Millisecond)
	if err := os.WriteFile(cfg.KillSwitchFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := <-done
	if d.Outcome != verdictDecided {
		t.Fatalf("decision %s (%s)", verdict(d), d.Reason)
	}
	outs := h.wait(t, 5*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeAbandoned {
		t.Fatalf("outcomes %+v", outs)
	}
	checkAuditEvent(t, cfg.AuditLog, d.RequestID, eventReleased)
	if err := os.Remove(cfg.KillSwitchFile); err != nil {
		t.Fatal(err)
	}
	// Alertmanager's repeat acts now.
	if d := only(t, h.post(t, body), "k"); d.Outcome != verdictDecided {
		t.Fatalf("after the kill switch: %s (%s)", verdict(d), d.Reason)
	}
	h.wait(t, 10*time.Second)
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 1 {
		t.Fatalf("%d starts, want 1", got)
	}
}

// TestAuditLogUnopenableDisarms (item 13): an audit log that cannot be
// opened disarms the trigger, says why, and does not fail New (the
// exporter's metrics keep serving); a reload after the fix re-arms it.
func TestAuditLogUnopenableDisarms(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 24})
	p := env.readyPlans(t, 1)[0]
	dir := t.TempDir()
	cfg := baseConfig(dir, newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	cfg.AuditLog = filepath.Join(dir, "missing", "audit.jsonl")
	h := newHarness(t, cfg, env.actors, Options{})
	st := h.tr.status()
	if st.Armed || !strings.Contains(st.DisarmedReason, "audit log") {
		t.Fatalf("armed=%v reason %q", st.Armed, st.DisarmedReason)
	}
	if got := testutil.ToFloat64(h.tr.m.stateError); got != 1 {
		t.Fatalf("veeam_trigger_state_error %v", got)
	}
	if got := testutil.ToFloat64(h.tr.m.armed); got != 0 {
		t.Fatalf("veeam_trigger_armed %v", got)
	}
	if _, err := h.reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if d := only(t, h.post(t, amtest.Notification("g", alertFor("a", time.Now().Add(-time.Hour))).JSON()), "a"); d.Outcome != verdictDryRun {
		t.Fatalf("disarmed decision %s", verdict(d))
	}
	if err := os.Mkdir(filepath.Dir(cfg.AuditLog), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := h.tr.Reload(cfg, env.actors); err != nil {
		t.Fatal(err)
	}
	if !h.tr.Armed() {
		t.Fatalf("not re-armed: %s", h.tr.status().DisarmedReason)
	}
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 0 {
		t.Fatalf("%d starts while disarmed", got)
	}
}

// TestMaxDecisionsPerNotification (item 14): a notification that would
// make more decisions than the cap is refused whole, deciding nothing.
func TestMaxDecisionsPerNotification(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 25})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("a", config.ActionVSPCPlanStart, "vspc", func(r *config.Rule) {
		r.Action.PlanLabel, r.Action.Allow = "plan", []string{p.InstanceUID}
	}))
	cfg.MaxDecisionsPerNotification = 3
	h := newHarness(t, cfg, env.actors, Options{})
	// One group (and decision) per plan the alerts name.
	alerts := []amtest.Alert{alertFor("a", time.Now().Add(-time.Hour), "plan", p.InstanceUID)}
	for i := range 3 {
		alerts = append(alerts, alertFor("a", time.Now().Add(-time.Hour), "plan", fmt.Sprint("other-", i)))
	}
	code, ans := h.postCode(t, amtest.Notification("g", alerts...).JSON())
	if code != http.StatusBadRequest || !strings.Contains(ans.Error, "max_decisions_per_notification (3)") {
		t.Fatalf("%d %+v", code, ans)
	}
	if b, _ := os.ReadFile(cfg.AuditLog); len(b) != 0 {
		t.Fatalf("audit log written:\n%s", b)
	}
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 0 {
		t.Fatalf("%d starts", got)
	}
	if st := h.tr.status(); len(st.Recent) != 0 {
		t.Fatalf("decisions recorded: %+v", st.Recent)
	}
}

// TestStrictJSONWebhook (item 14): keys in another case, or twice, are a
// 400 and decide nothing.
func TestStrictJSONWebhook(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 26})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	h := newHarness(t, cfg, env.actors, Options{})
	var m map[string]any
	if err := json.Unmarshal(amtest.Notification("g", amtest.Resolved(time.Now().Add(-time.Hour), "alertname", "SiteDown", "rule", "a")).JSON(), &m); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	// {"status":"resolved","Status":"firing"} on the alert.
	sneaky := strings.Replace(string(b), `"status":"resolved","`, `"status":"resolved","Status":"firing","`, 1)
	sneaky = strings.Replace(sneaky, `"labels":`, `"Status":"firing","labels":`, 1)
	code, ans := h.postCode(t, []byte(sneaky))
	if code != http.StatusBadRequest || !strings.Contains(ans.Error, `key "Status"`) {
		t.Fatalf("%d %+v", code, ans)
	}
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 0 {
		t.Fatalf("%d starts", got)
	}
}

// TestModeGauges (item 6): veeam_trigger_dry_run and
// veeam_trigger_kill_switch_active are always there, 0 or 1.
func TestModeGauges(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir)
	cfg.DryRun = true
	h := newHarness(t, cfg, map[string]any{}, Options{})
	if got := testutil.ToFloat64(h.tr.m.dryRun); got != 1 {
		t.Errorf("veeam_trigger_dry_run %v", got)
	}
	if got := testutil.ToFloat64(h.tr.m.killSwitch); got != 0 {
		t.Errorf("veeam_trigger_kill_switch_active %v", got)
	}
	if err := os.WriteFile(cfg.KillSwitchFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(h.tr.m.killSwitch); got != 1 {
		t.Errorf("veeam_trigger_kill_switch_active with the file %v", got)
	}
}

// waitForWithin waits until cond holds, failing after timeout.
func waitForWithin(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnsentReleases (item 6, release half): an action whose call Veeam's
// answer proves unprocessed (Unsent, set by execution) gives back its dedup
// keys, cooldowns and rate token when it ends, audited as released; one
// that maybe reached Veeam keeps them.
func TestUnsentReleases(t *testing.T) {
	for _, tc := range []struct {
		name    string
		unsent  bool
		outcome string
	}{
		{"refused unprocessed", true, outcomeFailed},
		{"maybe sent", false, outcomeUncertain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := armedConfig(t.TempDir())
			cfg.RateLimit.Actions = 1
			tr := newBareTrigger(t, cfg, nil)
			object := "vspc/plan/p1"
			keys := []string{"k1", "k2"}
			cks := []cooldownKey{{config.ActionVSPCPlanStart, object}}
			now := time.Now()
			rec := &actionRecord{RequestID: "55555555-5555-5555-8555-555555555555", Rule: "r", Action: config.ActionVSPCPlanStart,
				Target: "vspc", Object: "p1", ObjectKey: object, Status: statusSent, DecidedAt: now, SentAt: now, PlanID: "p1"}
			tr.mu.Lock()
			tr.store.commit(rec, keys, cks, now.Add(time.Hour), now)
			tr.store.limiter.AllowN(now, 1)
			rec.Unsent = tc.unsent
			tr.finishLocked(rec, tc.outcome, "test", true)
			dedup := tr.store.dedupReason(keys, time.Now(), false)
			cool := tr.store.cooldownReason(time.Hour, cks, time.Now(), false)
			_, held := tr.store.holds[object]
			tr.mu.Unlock()
			if tc.unsent {
				if dedup != "" || cool != "" || held || tr.tokens() < 0.99 {
					t.Fatalf("not released: dedup %q cooldown %q held %v tokens %.2f", dedup, cool, held, tr.tokens())
				}
				checkAuditEvent(t, cfg.AuditLog, rec.RequestID, eventReleased)
				return
			}
			if dedup == "" || cool == "" || !held || tr.tokens() >= 1 {
				t.Fatalf("maybe-sent action released: dedup %q cooldown %q held %v tokens %.2f", dedup, cool, held, tr.tokens())
			}
		})
	}
}

// TestPendingSurvivesRestart: a pending decision is in the state file; the
// restarted trigger acts on it at its `for` deadline.
func TestPendingSurvivesRestart(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 27})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("f", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID), func(r *config.Rule) {
		r.For = modelDuration(2 * time.Second)
	}))
	h1 := newHarness(t, cfg, env.actors, Options{})
	if d := only(t, h1.post(t, amtest.Notification("g", alertFor("f", time.Now())).JSON()), "f"); d.Guard != guardFor {
		t.Fatalf("%s", verdict(d))
	}
	closeHarness(t, h1)
	h2 := newHarness(t, cfg, newActors(t, env.sim), Options{})
	if ps := h2.tr.status().Pending; len(ps) != 1 {
		t.Fatalf("pending after restart %+v", ps)
	}
	waitForWithin(t, 5*time.Second, func() bool { return env.vspcCalls(p.InstanceUID, "start") == 1 })
	h2.wait(t, 10*time.Second)
}

// TestPendingRateLimit: a decision stopped by the rate limit acts by itself
// when the next token comes, without another notification.
func TestPendingRateLimit(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 28})
	ps := env.readyPlans(t, 2)
	cfg := baseConfig(t.TempDir(),
		newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(ps[0].InstanceUID)),
		newRule("b", config.ActionVSPCPlanStart, "vspc", planStart(ps[1].InstanceUID)))
	cfg.RateLimit = config.RateLimit{Actions: 1, Per: modelDuration(2 * time.Second)}
	h := newHarness(t, cfg, env.actors, Options{})
	ans := h.post(t, amtest.Notification("g", alertFor("a", time.Now().Add(-time.Hour)), alertFor("b", time.Now().Add(-time.Hour))).JSON())
	if a, b := only(t, ans, "a"), only(t, ans, "b"); a.Outcome != verdictDecided || b.Guard != guardRateLimit {
		t.Fatalf("a %s, b %s", verdict(a), verdict(b))
	}
	if got := testutil.ToFloat64(h.tr.m.pending.WithLabelValues("b", guardRateLimit)); got != 1 {
		t.Fatalf("pending{b,rate_limit} = %v", got)
	}
	waitForWithin(t, 5*time.Second, func() bool { return env.vspcCalls(ps[1].InstanceUID, "start") == 1 })
	h.wait(t, 10*time.Second)
	if got := env.vspcCalls(ps[0].InstanceUID, "start"); got != 1 {
		t.Fatalf("%d starts of a", got)
	}
}
