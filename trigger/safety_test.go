package trigger

import (
	"bufio"
	"encoding/json"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// TestStorm: 1,000 concurrent identical notifications make exactly one call.
func TestStorm(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 11})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	h := newHarness(t, cfg, env.actors, Options{})
	body := amtest.Notification("storm", alertFor("r", time.Now().Add(-time.Hour))).JSON()

	const n = 1000
	var wg sync.WaitGroup
	var mu sync.Mutex
	verdicts := map[string]int{}
	codes := map[int]int{}
	gate := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			code, ans := h.postCode(t, body)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			for _, d := range ans.Decisions {
				verdicts[verdict(d)]++
			}
		}()
	}
	close(gate)
	wg.Wait()
	h.wait(t, 10*time.Second)
	if codes[http.StatusOK] != n {
		t.Fatalf("codes %v", codes)
	}
	if verdicts[verdictDecided] != 1 || verdicts[guardDedup] != n-1 {
		t.Fatalf("verdicts %v", verdicts)
	}
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 1 {
		t.Fatalf("%d start requests in the simulator's log", got)
	}
	if got := env.sim.VSPCPlanStarts(p.InstanceUID); got != 1 {
		t.Fatalf("plan started %d times", got)
	}
	if got := h.counter(h.tr.m.blocked, "r", guardDedup); got != n-1 {
		t.Fatalf("blocked{r,dedup} = %v", got)
	}
}

// TestTwoReplicas: two exporters that share nothing receive the same
// notification; both decide and call, and VSPC starts the plan once thanks
// to the shared X-Request-id.
func TestTwoReplicas(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 12})
	p := env.readyPlans(t, 1)[0]
	r := newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID))
	h1 := newHarness(t, baseConfig(t.TempDir(), r), env.actors, Options{})
	h2 := newHarness(t, baseConfig(t.TempDir(), r), newActors(t, env.sim), Options{})
	// Hold the start requests so that both replicas read the plan as Ready
	// and both send.
	env.sim.SetFault(simulator.APIVSPC, simulator.Fault{
		PathPrefix: "/api/v3/infrastructure/backupServers/failoverplans/" + lower(p.InstanceUID) + "/start",
		Latency:    600 * time.Millisecond})
	defer env.sim.ClearFaults()
	body := amtest.Notification("ha", alertFor("r", time.Now().Add(-time.Hour))).JSON()
	var wg sync.WaitGroup
	ds := make([]decision, 2)
	for i, h := range []*harness{h1, h2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ans := h.postCode(t, body)
			if len(ans.Decisions) == 1 {
				ds[i] = ans.Decisions[0]
			}
		}()
	}
	wg.Wait()
	h1.wait(t, 5*time.Second)
	h2.wait(t, 5*time.Second)
	if verdict(ds[0]) != verdictDecided || verdict(ds[1]) != verdictDecided {
		t.Fatalf("decisions %+v", ds)
	}
	if ds[0].RequestID != ds[1].RequestID {
		t.Fatalf("request ids differ: %s %s", ds[0].RequestID, ds[1].RequestID)
	}
	var ids []string
	for _, req := range env.sim.Requests(simulator.APIVSPC) {
		if req.Method == http.MethodPost && strings.HasSuffix(req.Path, "/start") {
			ids = append(ids, req.Header.Get("X-Request-id"))
		}
	}
	if len(ids) != 2 || ids[0] != ds[0].RequestID || ids[1] != ds[0].RequestID {
		t.Fatalf("start requests carried X-Request-id %v, want twice %s", ids, ds[0].RequestID)
	}
	if got := env.sim.VSPCPlanStarts(p.InstanceUID); got != 1 {
		t.Fatalf("plan started %d times", got)
	}
	// Both track the one start to its end.
	for _, h := range []*harness{h1, h2} {
		if got := h.counter(h.tr.m.outcomes, "r", config.ActionVSPCPlanStart, outcomeSuccess); got != 1 {
			t.Fatalf("success outcomes %v: %+v", got, h.tr.status().RecentOutcomes)
		}
	}
}

// TestCrashBetweenDecisionAndCall: a state file holding a decided action
// (the process died after making it durable, before sending) never leads
// to the call, also with the target ready to accept it.
// TestCrashInDecidedReleases (issue 17 item 7): an action found "decided"
// after a crash was never sent: it ends abandoned, gives back its cooldown,
// dedup keys and rate token (audited as released), and Alertmanager's next
// notification of the still firing alert acts.
func TestCrashInDecidedReleases(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 13})
	p := env.readyPlans(t, 1)[0]
	dir := t.TempDir()
	r := newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID))
	cfg := baseConfig(dir, r)
	cfg.RateLimit.Actions = 1
	body := amtest.Notification("crash", alertFor("r", time.Now().Add(-time.Hour))).JSON()

	// The state file of an exporter that crashed after deciding, before
	// sending: the action is still decided, with what commit added.
	s := newState()
	st := newStore(nil)
	st.state = s
	pl, _ := parsePayload(body, time.Now())
	object := "vspc/plan/" + lower(p.InstanceUID)
	at := time.Now().Add(-time.Minute)
	keys := dedupKeys(config.ActionVSPCPlanStart, object, "crash", pl.Alerts[0].StartsAt, []*alert{&pl.Alerts[0]})
	rid := requestID(config.ActionVSPCPlanStart, object, "crash", pl.Alerts[0].StartsAt)
	rec := &actionRecord{RequestID: rid, Rule: "r", Action: config.ActionVSPCPlanStart, Target: "vspc",
		Object: p.InstanceUID, ObjectKey: object, GroupKey: "crash", StartsAt: pl.Alerts[0].StartsAt, Status: statusDecided,
		DecidedAt: at, PlanID: lower(p.InstanceUID)}
	st.commit(rec, keys, []cooldownKey{{config.ActionVSPCPlanStart, object}}, at.Add(time.Hour), at)
	data, _ := s.marshal()
	if err := writeFileAtomic(cfg.StateFile, data); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, cfg, newActors(t, env.sim), Options{})
	if got := h.counter(h.tr.m.outcomes, "r", config.ActionVSPCPlanStart, outcomeAbandoned); got != 1 {
		t.Fatalf("abandoned %v", got)
	}
	if got := h.tr.tokens(); got < 0.99 {
		t.Fatalf("rate-limit token not given back: %.2f tokens", got)
	}
	// Alertmanager's next notification of the firing alert acts, once.
	if d := only(t, h.post(t, body), "r"); d.Outcome != verdictDecided || d.RequestID != rid {
		t.Fatalf("notification after restart: %s %s, want decided %s", verdict(d), d.RequestID, rid)
	}
	h.wait(t, 10*time.Second)
	if d := only(t, h.post(t, body), "r"); d.Guard != guardDedup {
		t.Fatalf("repeat after the action: %s", verdict(d))
	}
	if got := env.vspcCalls(p.InstanceUID, "start"); got != 1 {
		t.Fatalf("%d start calls, want 1", got)
	}
	checkAuditEvent(t, cfg.AuditLog, rid, eventReleased)
}

// checkAuditEvent fails unless the audit log has a line of event for the
// request id.
func checkAuditEvent(t *testing.T, path, requestID, event string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Event     string `json:"event"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.RequestID == requestID && l.Event == event {
			return
		}
	}
	t.Fatalf("no %s audit line for %s in:\n%s", event, requestID, b)
}

// TestSentActionTrackedAfterRestart: an action sent before a restart is
// tracked to its end by the next process, not sent again.
func TestSentActionTrackedAfterRestart(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 14})
	rep := env.readyReplicas(t, 1)[0]
	dir := t.TempDir()
	r := newRule("r", config.ActionVBRFailover, "vbr", func(r *config.Rule) { r.Action.Replicas = []string{rep.ID} })
	cfg := baseConfig(dir, r)
	env.sim.SetVBRActionHang(true)
	h1 := newHarness(t, cfg, env.actors, Options{})
	if d := only(t, h1.post(t, amtest.Notification("g", alertFor("r", time.Now().Add(-time.Hour))).JSON()), "r"); verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	waitFor(t, func() bool {
		st := h1.tr.status()
		return len(st.InFlight) == 1 && st.InFlight[0].Status == statusSent
	})
	if err := h1.tr.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, cfg, newActors(t, env.sim), Options{})
	if n := h2.tr.inFlightCount(); n != 1 {
		t.Fatalf("%d in flight after restart", n)
	}
	env.sim.SetVBRActionHang(false)
	outs := h2.wait(t, 5*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeSuccess {
		t.Fatalf("outcomes %+v", outs)
	}
	if calls := env.sim.VBRFailoverCalls(); len(calls) != 1 {
		t.Fatalf("%d failover calls", len(calls))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestActionTypes runs every action type to its tracked end, including
// failures and a timeout, and checks the outcome metrics and audit lines.
func TestActionTypes(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 15})
	est := env.sim.Estate()
	plans := env.readyPlans(t, 6)
	reps := env.readyReplicas(t, 5)
	emPlan := est.EM.Plans
	cdp := est.EM.CdpReplicas[0]
	now := time.Now()
	// Test mode is for cloud failover plans.
	cloud := env.cloudPlan(t, plans[0].InstanceUID, plans[2].InstanceUID, plans[3].InstanceUID)

	type step struct {
		name    string
		rule    config.Rule
		setup   func()
		timeout time.Duration // action_timeout when not 0
		outcome string
	}
	plan := func(p string) func(*config.Rule) { return func(r *config.Rule) { r.Action.Plan = p } }
	replicas := func(ids ...string) func(*config.Rule) { return func(r *config.Rule) { r.Action.Replicas = ids } }
	steps := []step{
		{name: "vspc start", rule: newRule("vspc-start", config.ActionVSPCPlanStart, "vspc", plan(plans[0].Name)), outcome: outcomeSuccess},
		{name: "vspc start test mode", rule: newRule("vspc-test", config.ActionVSPCPlanStart, "vspc", plan(cloud.InstanceUID),
			func(r *config.Rule) { r.Action.Test = true }), outcome: outcomeSuccess},
		{name: "vspc start warning", rule: newRule("vspc-warn", config.ActionVSPCPlanStart, "vspc", plan(plans[2].InstanceUID)),
			setup: func() { env.sim.SetVSPCActionOutcome("Warning") }, outcome: outcomeWarning},
		{name: "vspc start failed", rule: newRule("vspc-fail", config.ActionVSPCPlanStart, "vspc", plan(plans[3].InstanceUID)),
			setup: func() { env.sim.SetVSPCActionOutcome("Failed") }, outcome: outcomeFailed},
		{name: "vspc undo", rule: newRule("vspc-undo", config.ActionVSPCPlanUndo, "vspc", plan(plans[0].Name)),
			setup: func() { env.sim.SetVSPCActionOutcome("Success") }, outcome: outcomeSuccess},
		{name: "vspc undo failed", rule: newRule("vspc-undo-fail", config.ActionVSPCPlanUndo, "vspc", plan(cloud.InstanceUID)),
			setup: func() { env.sim.SetVSPCActionOutcome("Failed") }, outcome: outcomeFailed},
		// EM's finished plan task only says EM took the request.
		{name: "em start", rule: newRule("em-start", config.ActionEMPlanStart, "em", plan(emPlan[0].Name)), outcome: outcomeSubmitted},
		{name: "em undo", rule: newRule("em-undo", config.ActionEMPlanUndo, "em", plan(emPlan[0].UID)), outcome: outcomeSubmitted},
		{name: "em start failed", rule: newRule("em-fail", config.ActionEMPlanStart, "em", plan(emPlan[1].UID)),
			setup: func() { env.sim.SetEMTaskOutcome(false) }, outcome: outcomeFailed},
		{name: "em cdp failover", rule: newRule("em-cdp", config.ActionEMCdpFailover, "em", func(r *config.Rule) {
			r.Action.CdpReplica, r.Action.VM = cdp.UID, cdp.VMs[0].UID
		}), setup: func() { env.sim.SetEMTaskOutcome(true) }, outcome: outcomeSuccess},
		{name: "vbr failover", rule: newRule("vbr-failover", config.ActionVBRFailover, "vbr", replicas(reps[0].ID, reps[1].Name)), outcome: outcomeSuccess},
		{name: "vbr permanent", rule: newRule("vbr-permanent", config.ActionVBRPermanentFailover, "vbr", replicas(reps[0].ID)), outcome: outcomeSuccess},
		{name: "vbr undo", rule: newRule("vbr-undo", config.ActionVBRUndoFailover, "vbr", replicas(reps[1].ID)), outcome: outcomeSuccess},
		{name: "vbr planned", rule: newRule("vbr-planned", config.ActionVBRPlannedFailover, "vbr", replicas(reps[2].ID)), outcome: outcomeSuccess},
		{name: "vbr failed", rule: newRule("vbr-fail", config.ActionVBRFailover, "vbr", replicas(reps[3].ID)),
			setup: func() { env.sim.SetVBRSessionOutcome("Failed") }, outcome: outcomeFailed},
		{name: "vbr timeout", rule: newRule("vbr-timeout", config.ActionVBRFailover, "vbr", replicas(reps[4].ID)),
			setup:   func() { env.sim.SetVBRSessionOutcome("Success"); env.sim.SetVBRActionHang(true) },
			timeout: 300 * time.Millisecond, outcome: outcomeTimeout},
	}
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.setup != nil {
				s.setup()
			}
			cfg := baseConfig(t.TempDir(), s.rule)
			if s.timeout > 0 {
				cfg.ActionTimeout = modelDuration(s.timeout)
			}
			h := newHarness(t, cfg, env.actors, Options{})
			d := only(t, h.post(t, amtest.Notification("g"+s.name, alertFor(s.rule.Name, now.Add(-time.Hour))).JSON()), s.rule.Name)
			if verdict(d) != verdictDecided {
				t.Fatalf("step %d: %s (%s)", i, verdict(d), d.Reason)
			}
			outs := h.wait(t, 5*time.Second)
			if len(outs) != 1 || outs[0].Outcome != s.outcome {
				t.Fatalf("outcomes %+v, want %s", outs, s.outcome)
			}
			t.Logf("%s: %s", outs[0].Outcome, outs[0].Message)
			a := s.rule.Action.Type
			if got := h.counter(h.tr.m.actions, s.rule.Name, a); got != 1 {
				t.Errorf("actions_total %v", got)
			}
			if got := h.counter(h.tr.m.outcomes, s.rule.Name, a, s.outcome); got != 1 {
				t.Errorf("outcomes{%s} %v", s.outcome, got)
			}
			wantFail := 0.0
			if s.outcome == outcomeFailed {
				wantFail = 1
			}
			if got := h.counter(h.tr.m.failures, s.rule.Name, a); got != wantFail {
				t.Errorf("failures %v", got)
			}
			checkAudit(t, h.cfg.AuditLog, d.RequestID, s.outcome)
		})
	}
	env.sim.SetVBRActionHang(false)
}

// checkAudit finds the decision and the outcome line of a request id.
func checkAudit(t *testing.T, path, requestID, outcome string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var decided, ended bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit line is not JSON: %s", sc.Text())
		}
		if l["request_id"] != requestID {
			continue
		}
		switch l["event"] {
		case eventDecision:
			decided = l["outcome"] == verdictDecided && l["time"] != nil && l["alerts"] != nil && l["group_key"] != nil
		case eventOutcome:
			ended = l["outcome"] == outcome
		}
	}
	if !decided || !ended {
		t.Fatalf("audit log lacks the decision (%v) or the %s outcome (%v) of %s", decided, outcome, ended, requestID)
	}
}
