package trigger

import (
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// ruleSeries counts the series labelled rule=name in h's registry, by
// metric name.
func ruleSeries(t *testing.T, h *harness, name string) map[string]int {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "rule" && l.GetValue() == name {
					out[mf.GetName()]++
				}
			}
		}
	}
	return out
}

// TestReloadDropsSeriesOfRemovedRules: a reload without a rule removes
// every series of it at once; the rules kept keep their counters. A rule
// removed while its action is in flight keeps its series until the action
// ended (its outcome is counted and scraped) and retiredKeep more.
func TestReloadDropsSeriesOfRemovedRules(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 12, ActionDuration: 1500 * time.Millisecond})
	plans := env.readyPlans(t, 3)
	keep := newRule("keep", config.ActionVSPCPlanStart, "vspc", planStart(plans[0].InstanceUID))
	gone := newRule("gone", config.ActionVSPCPlanStart, "vspc", planStart(plans[1].InstanceUID))
	slow := newRule("slow", config.ActionVSPCPlanStart, "vspc", planStart(plans[2].InstanceUID))
	cfg := baseConfig(t.TempDir(), keep, gone, slow)
	h := newHarness(t, cfg, env.actors, Options{})
	h.tr.m.retiredKeep = time.Second

	for _, r := range []string{"keep", "gone"} {
		body := amtest.Notification("g-"+r, alertFor(r, time.Now().Add(-time.Hour))).JSON()
		if d := only(t, h.post(t, body), r); d.Outcome != verdictDecided {
			t.Fatalf("%s: %+v", r, d)
		}
	}
	h.wait(t, 10*time.Second)
	repeat := only(t, h.post(t, amtest.Notification("g-keep", alertFor("keep", time.Now().Add(-time.Hour))).JSON()), "keep")
	if repeat.Outcome != verdictBlocked {
		t.Fatalf("repeat: %+v", repeat)
	}
	if n := ruleSeries(t, h, "gone"); n["veeam_trigger_action_outcomes_total"] == 0 || n["veeam_trigger_blocked_total"] == 0 {
		t.Fatalf("series of gone before the reload: %v", n)
	}
	before := map[string]float64{
		"actions": h.counter(h.tr.m.actions, "keep", config.ActionVSPCPlanStart),
		"success": h.counter(h.tr.m.outcomes, "keep", config.ActionVSPCPlanStart, outcomeSuccess),
		"blocked": h.counter(h.tr.m.blocked, "keep", repeat.Guard),
	}
	if before["actions"] != 1 || before["success"] != 1 || before["blocked"] != 1 {
		t.Fatalf("keep's counters before the reload: %v", before)
	}

	// slow is in flight when a reload removes it and gone.
	if d := only(t, h.post(t, amtest.Notification("g-slow", alertFor("slow", time.Now().Add(-time.Hour))).JSON()), "slow"); d.Outcome != verdictDecided {
		t.Fatalf("slow: %+v", d)
	}
	if err := h.tr.Reload(baseConfig(t.TempDir(), keep), env.actors); err != nil {
		t.Fatal(err)
	}
	if n := ruleSeries(t, h, "gone"); len(n) != 0 {
		t.Fatalf("series of the removed rule gone after the reload: %v", n)
	}
	if n := ruleSeries(t, h, "slow"); n["veeam_trigger_actions_total"] != 1 {
		t.Fatalf("series of slow (in flight) right after the reload: %v, want kept", n)
	}
	h.wait(t, 10*time.Second)
	if got := h.counter(h.tr.m.outcomes, "slow", config.ActionVSPCPlanStart, outcomeSuccess); got != 1 {
		t.Fatalf("slow's outcome after the reload: success = %v, want 1", got)
	}
	waitForWithin(t, 5*time.Second, func() bool { return len(ruleSeries(t, h, "slow")) == 0 })

	after := map[string]float64{
		"actions": h.counter(h.tr.m.actions, "keep", config.ActionVSPCPlanStart),
		"success": h.counter(h.tr.m.outcomes, "keep", config.ActionVSPCPlanStart, outcomeSuccess),
		"blocked": h.counter(h.tr.m.blocked, "keep", repeat.Guard),
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("keep's %s after the reload = %v, want %v", k, after[k], v)
		}
	}
	if n := ruleSeries(t, h, "keep"); n["veeam_trigger_last_action_timestamp_seconds"] != 1 || n["veeam_trigger_approvals_pending"] != 1 {
		t.Errorf("keep's series after the reload: %v", n)
	}
}
