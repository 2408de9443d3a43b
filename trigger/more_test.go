package trigger

import (
	"bytes"
	"encoding/json"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// TestVSPCAsyncAction: a long start is answered 202 with an async action,
// which is followed before the plan's status.
func TestVSPCAsyncAction(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 21, ActionDuration: 2100 * time.Millisecond})
	p := env.readyPlans(t, 1)[0]
	h := newHarness(t, baseConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID))), env.actors, Options{})
	d := only(t, h.post(t, amtest.Notification("g", alertFor("r", time.Now().Add(-time.Hour))).JSON()), "r")
	if verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	waitFor(t, func() bool {
		st := h.tr.status()
		return len(st.InFlight) == 1 && st.InFlight[0].AsyncID != ""
	})
	if got := h.tr.status().InFlight[0].AsyncID; got != d.RequestID {
		t.Fatalf("async action %s, want the request id %s", got, d.RequestID)
	}
	outs := h.wait(t, 5*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeSuccess || !strings.Contains(outs[0].Handle, "async action") {
		t.Fatalf("outcomes %+v", outs)
	}
	var polled bool
	for _, r := range env.sim.Requests(simulator.APIVSPC) {
		polled = polled || strings.Contains(r.Path, "/asyncActions/"+d.RequestID)
	}
	if !polled {
		t.Fatal("async action never read")
	}
}

// TestEMTaskAfterRestart: EM tasks belong to the logon session that started
// them, so a task sent before a restart ends as abandoned, not as a
// timeout half an hour later.
func TestEMTaskAfterRestart(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 22, ActionDuration: 3 * time.Second})
	planID := env.sim.Estate().EM.Plans[0].UID
	cfg := baseConfig(t.TempDir(), newRule("r", config.ActionEMPlanStart, "em", planStart(planID)))
	h1 := newHarness(t, cfg, env.actors, Options{})
	if d := only(t, h1.post(t, amtest.Notification("g", alertFor("r", time.Now().Add(-time.Hour))).JSON()), "r"); verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	waitFor(t, func() bool {
		st := h1.tr.status()
		return len(st.InFlight) == 1 && st.InFlight[0].TaskID != ""
	})
	if err := h1.tr.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, cfg, newActors(t, env.sim), Options{})
	outs := h2.wait(t, 5*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeAbandoned {
		t.Fatalf("outcomes %+v", outs)
	}
	if got := env.sim.EMPlanStarts(planID); got != 1 {
		t.Fatalf("%d starts", got)
	}
}

// TestStateWriteFailure: when the decision cannot be made durable the
// webhook answers 500 and nothing is called; Alertmanager's retry acts once
// the state can be written.
func TestStateWriteFailure(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 23})
	p := env.readyPlans(t, 1)[0]
	dir := t.TempDir()
	cfg := baseConfig(dir, newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	cfg.StateFile = filepath.Join(dir, "missing-dir", "state.json")
	h := newHarness(t, cfg, env.actors, Options{})
	body := amtest.Notification("g", alertFor("r", time.Now().Add(-time.Hour))).JSON()
	code, ans := h.postCode(t, body)
	if code != http.StatusInternalServerError || !strings.Contains(ans.Error, "state file") ||
		len(ans.Decisions) != 1 || ans.Decisions[0].Outcome != verdictNotRecorded {
		t.Fatalf("%d %+v", code, ans)
	}
	time.Sleep(100 * time.Millisecond)
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 0 {
		t.Fatalf("%d start calls", got)
	}
	if h.tr.inFlightCount() != 0 || h.tr.tokens() != 100 {
		t.Fatalf("state changed: in flight %d, tokens %v", h.tr.inFlightCount(), h.tr.tokens())
	}
	if err := os.Mkdir(filepath.Join(dir, "missing-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if d := only(t, h.post(t, body), "r"); verdict(d) != verdictDecided {
		t.Fatalf("retry: %s (%s)", verdict(d), d.Reason)
	}
	h.wait(t, 5*time.Second)
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 1 {
		t.Fatalf("%d start calls", got)
	}
}

// TestMetricsAndStatus checks the metric names of DESIGN.md, that they lint
// clean, and the /trigger JSON.
func TestMetricsAndStatus(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 24})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("site-a-down", config.ActionVSPCPlanStart, "vspc", planStart(p.Name)))
	h := newHarness(t, cfg, env.actors, Options{})
	h.post(t, amtest.Notification("g", alertFor("site-a-down", time.Now().Add(-time.Hour))).JSON())
	h.wait(t, 5*time.Second)

	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{
		"veeam_trigger_armed", "veeam_trigger_webhook_requests_total", "veeam_trigger_alerts_received_total",
		"veeam_trigger_blocked_total", "veeam_trigger_actions_total", "veeam_trigger_dry_run_actions_total",
		"veeam_trigger_action_failures_total", "veeam_trigger_action_outcomes_total", "veeam_trigger_action_duration_seconds",
		"veeam_trigger_actions_in_flight", "veeam_trigger_last_action_timestamp_seconds", "veeam_trigger_rate_limit_tokens",
	} {
		if !names[n] {
			t.Errorf("metric %s missing", n)
		}
	}
	problems, err := testutil.GatherAndLint(h.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
	}
	if n := testutil.CollectAndCount(h.tr.m.blocked); n != len(pipeline)+2 {
		t.Errorf("%d blocked_total series, want every guard of the rule plus none/{kill_switch,match}", n)
	}
	if got := testutil.ToFloat64(h.tr.m.armed); got != 1 {
		t.Errorf("armed %v", got)
	}
	if got := testutil.ToFloat64(h.tr.m.tokens); got < 98.9 || got > 99.1 {
		t.Errorf("tokens %v", got)
	}
	if got := testutil.ToFloat64(h.tr.m.lastAction.WithLabelValues("site-a-down")); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last action %v", got)
	}

	rec := httptest.NewRecorder()
	h.tr.StatusHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/trigger", nil))
	var st map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"armed", "dry_run", "kill_switch", "rules", "cooldowns", "rate_limit", "in_flight", "recent_decisions", "recent_outcomes"} {
		if _, ok := st[k]; !ok {
			t.Errorf("/trigger lacks %q", k)
		}
	}
	if st["armed"] != true || len(st["cooldowns"].([]any)) != 1 || len(st["recent_decisions"].([]any)) != 1 {
		t.Errorf("/trigger: %s", rec.Body)
	}
	if strings.Contains(rec.Body.String(), testToken) {
		t.Error("/trigger shows the bearer token")
	}
}

func TestTestPayload(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(dir,
		newRule("a", config.ActionVSPCPlanStart, "vspc", planStart("Plan A"), func(r *config.Rule) { r.MinAlerts = 2 }),
		newRule("b", config.ActionVSPCPlanStart, "vspc", func(r *config.Rule) {
			r.Action.PlanLabel, r.Action.Allow = "plan", []string{"Plan B"}
		}),
	)
	cfg.DryRun = true
	body := amtest.Notification("g",
		alertFor("a", testNow.Add(-time.Hour)),
		alertFor("b", testNow.Add(-time.Hour), "plan", "Plan B"),
		alertFor("b", testNow.Add(-time.Hour), "plan", "Plan X"),
		amtest.Firing(testNow, "alertname", "Other"),
	).JSON()
	var out bytes.Buffer
	if err := TestPayload(cfg, body, testNow, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	t.Log("\n" + s)
	for _, want := range []string{
		`rule "a" matches`, "stopped by quorum",
		`object "Plan B"`, "not checked (offline)", "stopped by dry_run",
		`object "Plan X"`, "stopped by allow",
		"no rule: stopped by match",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if err := TestPayload(cfg, []byte(`{"version":"3"}`), testNow, &out); err == nil {
		t.Error("bad payload accepted")
	}
	if _, err := os.Stat(cfg.StateFile); !os.IsNotExist(err) {
		t.Error("offline check wrote the state file")
	}
	if _, err := os.Stat(cfg.AuditLog); !os.IsNotExist(err) {
		t.Error("offline check wrote the audit log")
	}
}

// TestCallErrors: a call without a clear answer (a 5xx, none at all) is
// never repeated by the trigger, except VSPC's within its X-Request-id
// replay window: VSPC's plan and async action then show that it never ran
// (abandoned as not carried out); EM shows nothing (uncertain).
func TestCallErrors(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 25})
	plans := env.readyPlans(t, 2)
	emPlan := env.sim.Estate().EM.Plans[2]
	startPath := func(p simulator.VSPCPlan) string {
		return "/api/v3/infrastructure/backupServers/failoverplans/" + lower(p.InstanceUID) + "/start"
	}
	run := func(t *testing.T, r config.Rule, timeout time.Duration) outcomeLine {
		t.Helper()
		cfg := baseConfig(t.TempDir(), r)
		if timeout > 0 {
			cfg.ActionTimeout = modelDuration(timeout)
		}
		h := newHarness(t, cfg, env.actors, Options{})
		if d := only(t, h.post(t, amtest.Notification("g", alertFor(r.Name, time.Now().Add(-time.Hour))).JSON()), r.Name); verdict(d) != verdictDecided {
			t.Fatalf("%s (%s)", verdict(d), d.Reason)
		}
		outs := h.wait(t, 10*time.Second)
		if len(outs) != 1 {
			t.Fatalf("outcomes %+v", outs)
		}
		t.Logf("%s: %s", outs[0].Outcome, outs[0].Message)
		return outs[0]
	}
	t.Run("refused", func(t *testing.T) {
		env.sim.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: startPath(plans[0]), Status: 500})
		defer env.sim.ClearFaults()
		o := run(t, newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(plans[0].InstanceUID)), time.Second)
		if o.Outcome != outcomeAbandoned || !strings.Contains(o.Message, "not carried out") {
			t.Fatalf("%+v", o)
		}
		if got := env.vspcCalls(lower(plans[0].InstanceUID), "start"); got != 2 {
			t.Fatalf("%d start POSTs, want the call and one resend with its X-Request-id", got)
		}
	})
	t.Run("vspc no answer", func(t *testing.T) {
		env.sim.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: startPath(plans[1]), Reset: true})
		defer env.sim.ClearFaults()
		o := run(t, newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(plans[1].InstanceUID)), 500*time.Millisecond)
		if o.Outcome != outcomeAbandoned || !strings.Contains(o.Message, "not carried out") {
			t.Fatalf("%+v", o)
		}
		if got := env.sim.VSPCPlanStarts(plans[1].InstanceUID); got != 0 {
			t.Fatalf("%d starts", got)
		}
	})
	t.Run("em no answer", func(t *testing.T) {
		// Named by name, the plan is found by a list read, so only the
		// start hits the fault.
		env.sim.SetFault(simulator.APIEM, simulator.Fault{PathPrefix: "/api/failoverPlans/" + emPlan.UID, Reset: true})
		defer env.sim.ClearFaults()
		o := run(t, newRule("r", config.ActionEMPlanStart, "em", planStart(emPlan.Name)), 500*time.Millisecond)
		if o.Outcome != outcomeUncertain || !strings.Contains(o.Message, "not repeated") {
			t.Fatalf("%+v", o)
		}
		posts := 0
		for _, r := range env.sim.Requests(simulator.APIEM) {
			if r.Method == http.MethodPost && strings.Contains(r.Path, emPlan.UID) {
				posts++
			}
		}
		if posts != 1 {
			t.Fatalf("%d start POSTs: the action was repeated", posts)
		}
	})
}

// TestFinalCheckBeforeCall: a kill switch that appears between the
// decision and the call stops the call (outcome abandoned).
func TestFinalCheckBeforeCall(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 26})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	h := newHarness(t, cfg, env.actors, Options{})
	if err := os.WriteFile(cfg.KillSwitchFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &actionRecord{RequestID: "33333333-3333-5333-8333-333333333333", Rule: "r", Action: config.ActionVSPCPlanStart,
		Target: "vspc", Object: p.InstanceUID, Status: statusDecided, DecidedAt: time.Now(), PlanID: lower(p.InstanceUID)}
	h.tr.mu.Lock()
	h.tr.store.actions = append(h.tr.store.actions, rec)
	h.tr.startLocked(rec, false)
	h.tr.mu.Unlock()
	outs := h.wait(t, 5*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeAbandoned || !strings.Contains(outs[0].Message, "kill switch") {
		t.Fatalf("outcomes %+v", outs)
	}
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 0 {
		t.Fatalf("%d start calls", got)
	}
}
