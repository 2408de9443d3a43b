package trigger

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
)

// The tests of this file run against the simulator over HTTPS, with
// clients that trust only its CA: how an action ends once the call is made
// (issue 13 points 2-5, issue 17 items 4, 6, 8-11).

// startSimTLS is startSim over HTTPS.
func startSimTLS(t *testing.T, o simulator.Options) *simEnv {
	t.Helper()
	o.TLS = true
	env := startSim(t, o)
	if !strings.HasPrefix(env.sim.VSPCURL(), "https://") {
		t.Fatalf("simulator not on HTTPS: %s", env.sim.VSPCURL())
	}
	return env
}

// cloudPlan returns a Ready VSPC plan of type Cloud or Tenant, not one of
// exclude.
func (e *simEnv) cloudPlan(t *testing.T, exclude ...string) simulator.VSPCPlan {
	t.Helper()
	for _, p := range e.sim.Estate().VSPC.Plans {
		if p.Status == "Ready" && (p.Type == "Cloud" || p.Type == "Tenant") && !slices.Contains(exclude, p.InstanceUID) {
			return p
		}
	}
	t.Fatal("no Ready cloud plan")
	return simulator.VSPCPlan{}
}

// localPlan returns a Ready VSPC plan of type Local.
func (e *simEnv) localPlan(t *testing.T) simulator.VSPCPlan {
	t.Helper()
	for _, p := range e.sim.Estate().VSPC.Plans {
		if p.Status == "Ready" && p.Type == "Local" {
			return p
		}
	}
	t.Fatal("no Ready Local plan")
	return simulator.VSPCPlan{}
}

// act posts one firing alert for the rule and returns its decision.
func act(t *testing.T, h *harness, rule string) decision {
	t.Helper()
	return only(t, h.post(t, amtest.Notification("g-"+rule, alertFor(rule, time.Now().Add(-time.Hour))).JSON()), rule)
}

// actAndWait acts and waits for the one outcome.
func actAndWait(t *testing.T, h *harness, rule string, within time.Duration) outcomeLine {
	t.Helper()
	if d := act(t, h, rule); verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	outs := h.wait(t, within)
	if len(outs) != 1 {
		t.Fatalf("outcomes %+v", outs)
	}
	t.Logf("%s: %s", outs[0].Outcome, outs[0].Message)
	return outs[0]
}

// posts counts the POSTs an API received on paths containing part.
func (e *simEnv) posts(api simulator.API, part string) int {
	n := 0
	for _, r := range e.sim.Requests(api) {
		if r.Method == http.MethodPost && strings.Contains(strings.ToLower(r.Path), strings.ToLower(part)) {
			n++
		}
	}
	return n
}

func withPlan(p string) func(*config.Rule) { return func(r *config.Rule) { r.Action.Plan = p } }

// TestEMOutcomes (issue 13.2): an EM CDP failover ends with its restore
// session's Result, not with the task that only took the request; an EM
// plan start or undo, which has no completion signal, ends submitted.
func TestEMOutcomes(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 41, EM: simulator.EMOptions{Plans: 3, VMsPerPlan: 2, CloudSessions: 1,
		CdpReplicas: 1, VMsPerCdpReplica: 3, TasksFinishAtSubmission: true}})
	est := env.sim.Estate().EM
	cdp := est.CdpReplicas[0]
	cdpRule := func(vm string) config.Rule {
		return newRule("cdp", config.ActionEMCdpFailover, "em", func(r *config.Rule) { r.Action.CdpReplica, r.Action.VM = cdp.UID, vm })
	}
	for _, tc := range []struct {
		name, result, want string
	}{
		{"task success, session failed", "Failed", outcomeFailed},
		{"task success, session warning", "Warning", outcomeWarning},
		{"task success, session success", "Success", outcomeSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.sim.SetEMTaskOutcome(true)
			env.sim.SetEMRestoreSessionResult(tc.result)
			vm := cdp.VMs[slices.IndexFunc([]string{"Failed", "Warning", "Success"}, func(s string) bool { return s == tc.result })]
			h := newHarness(t, baseConfig(t.TempDir(), cdpRule(vm.UID)), env.actors, Options{})
			o := actAndWait(t, h, "cdp", 5*time.Second)
			if o.Outcome != tc.want || !strings.Contains(o.Message, "restore session") {
				t.Fatalf("outcome %s (%s), want %s from the restore session", o.Outcome, o.Message, tc.want)
			}
			if n := env.sim.EMCdpFailovers(vm.UID); n != 1 {
				t.Fatalf("%d CDP failovers", n)
			}
		})
	}
	for _, kind := range []string{config.ActionEMPlanStart, config.ActionEMPlanUndo} {
		t.Run(kind, func(t *testing.T) {
			env.sim.SetEMTaskOutcome(true)
			h := newHarness(t, baseConfig(t.TempDir(), newRule("plan", kind, "em", withPlan(est.Plans[0].UID))), env.actors, Options{})
			o := actAndWait(t, h, "plan", 5*time.Second)
			if o.Outcome != outcomeSubmitted || !strings.Contains(o.Message, "no completion") {
				t.Fatalf("outcome %s (%s), want submitted", o.Outcome, o.Message)
			}
			if got := h.counter(h.tr.m.outcomes, "plan", kind, outcomeSuccess); got != 0 {
				t.Fatalf("counted as success %v times", got)
			}
		})
	}
}

// TestEMReloginAbandons (issue 13.2): EM shows a task only to the logon
// session that created it; after a re-login of the client an unfinished
// action ends abandoned at once, not timeout at action_timeout.
func TestEMReloginAbandons(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 42, ActionDuration: 20 * time.Second})
	plan := env.sim.Estate().EM.Plans[0]
	cfg := baseConfig(t.TempDir(), newRule("plan", config.ActionEMPlanStart, "em", withPlan(plan.UID)))
	cfg.ActionTimeout = modelDuration(time.Minute)
	h := newHarness(t, cfg, env.actors, Options{})
	if d := act(t, h, "plan"); verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	waitFor(t, func() bool {
		st := h.tr.status()
		return len(st.InFlight) == 1 && st.InFlight[0].TaskID != ""
	})
	logons := env.sim.EMLogons()
	// The session expires: the next task read gets 401, the client logs on
	// again, and the task is gone with the old session.
	env.sim.SetFault(simulator.APIEM, simulator.Fault{ExpireAuth: true})
	start := time.Now()
	outs := h.wait(t, 5*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeAbandoned || !strings.Contains(outs[0].Message, "logon session") {
		t.Fatalf("outcomes %+v", outs)
	}
	if env.sim.EMLogons() <= logons {
		t.Fatal("no re-login happened")
	}
	t.Logf("abandoned %s after the re-login: %s", time.Since(start).Round(time.Millisecond), outs[0].Message)
	if n := env.sim.EMPlanStarts(plan.UID); n != 1 {
		t.Fatalf("%d plan starts", n)
	}
}

// TestVBRJobReplica (issue 13.3): a replica made by a replication job of
// several VMs fails over with one call holding each VM's newest eligible
// point; a rule naming one VM fails over that VM's point only.
func TestVBRJobReplica(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 2, VBR: simulator.VBROptions{Replicas: 12, PointsPerReplica: 3, MultiVMReplicas: true}})
	est := env.sim.Estate().VBR
	var job simulator.VBRReplica
	var vms map[string][]simulator.VBRReplicaPoint
	for _, r := range est.Replicas {
		byVM := map[string][]simulator.VBRReplicaPoint{}
		for _, p := range est.Points {
			if p.ReplicaID == r.ID {
				byVM[p.Name] = append(byVM[p.Name], p)
			}
		}
		if r.State == "Ready" && len(byVM) == 2 {
			job, vms = r, byVM
			break
		}
	}
	if job.ID == "" {
		t.Fatal("no Ready two-VM replica")
	}
	newest := func(points []simulator.VBRReplicaPoint) string {
		var best simulator.VBRReplicaPoint
		for _, p := range points {
			if slices.Contains(p.AllowedOperations, vbr.FailoverNow.Operation()) && p.CreationTime.After(best.CreationTime) {
				best = p
			}
		}
		return strings.ToLower(best.ID)
	}
	var want []string
	for _, ps := range vms {
		want = append(want, newest(ps))
	}
	slices.Sort(want)

	h := newHarness(t, baseConfig(t.TempDir(), newRule("job", config.ActionVBRFailover, "vbr",
		func(r *config.Rule) { r.Action.Replicas = []string{job.Name} })), env.actors, Options{})
	o := actAndWait(t, h, "job", 5*time.Second)
	calls := env.sim.VBRFailoverCalls()
	if len(calls) != 1 {
		t.Fatalf("%d failover calls, want one", len(calls))
	}
	got := slices.Sorted(slices.Values(calls[0].PointIDs))
	if !slices.Equal(got, want) {
		t.Fatalf("points sent %v, want each VM's newest eligible %v", got, want)
	}
	if o.Outcome != outcomeSuccess || len(calls[0].SessionIDs) != 2 {
		t.Fatalf("outcome %s (%s), sessions %v", o.Outcome, o.Message, calls[0].SessionIDs)
	}
	for _, s := range calls[0].SessionIDs {
		if !strings.Contains(strings.ToLower(o.Message), strings.ToLower(s)+"=success") {
			t.Fatalf("outcome %q does not cover session %s", o.Message, s)
		}
	}

	// One VM by name: its point only. The first call failed the job over,
	// so undo names the VM.
	var vm string
	for name := range vms {
		vm = name
		break
	}
	h2 := newHarness(t, baseConfig(t.TempDir(), newRule("vm", config.ActionVBRUndoFailover, "vbr",
		func(r *config.Rule) { r.Action.Replicas = []string{vm} })), env.actors, Options{})
	o = actAndWait(t, h2, "vm", 5*time.Second)
	calls = env.sim.VBRFailoverCalls()
	if len(calls) != 2 || len(calls[1].PointIDs) != 1 {
		t.Fatalf("calls %+v", calls)
	}
	var sentVM string
	for _, p := range env.sim.Estate().VBR.Points {
		if strings.EqualFold(p.ID, calls[1].PointIDs[0]) {
			sentVM = p.Name
		}
	}
	if sentVM != vm || o.Outcome != outcomeSuccess {
		t.Fatalf("undo sent a point of %q (want %q), outcome %s (%s)", sentVM, vm, o.Outcome, o.Message)
	}
}

// TestVSPCAsyncResultExpired (issue 13.4): VSPC keeps an async action's
// result for minutes only; an exporter that comes back after that follows
// the plan's status and reports the real outcome, not timeout.
func TestVSPCAsyncResultExpired(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 44, ActionDuration: 2100 * time.Millisecond,
		VSPC: simulator.VSPCOptions{Plans: 10, ObjectsPerPlan: 1, BackupServers: 1, AsyncSuccessRetention: 200 * time.Millisecond}})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(p.InstanceUID)))
	cfg.ActionTimeout = modelDuration(8 * time.Second)
	h1 := newHarness(t, cfg, env.actors, Options{})
	if d := act(t, h1, "r"); verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	waitFor(t, func() bool {
		st := h1.tr.status()
		return len(st.InFlight) == 1 && st.InFlight[0].AsyncID != ""
	})
	if err := h1.tr.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The exporter is down while the start finishes and VSPC forgets its
	// async action.
	time.Sleep(2500 * time.Millisecond)
	h2 := newHarness(t, cfg, newActors(t, env.sim), Options{})
	outs := h2.wait(t, 7*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeSuccess {
		t.Fatalf("outcomes %+v", outs)
	}
	var expired bool
	for _, r := range env.sim.Requests(simulator.APIVSPC) {
		expired = expired || (strings.Contains(r.Path, "/asyncActions/") && r.Status == http.StatusNotFound)
	}
	if !expired {
		t.Fatal("the async action never answered 404: the test did not test expiry")
	}
}

// TestVSPCTestModeCloudOnly (issue 13.5): test: true is refused at
// target_state for a Local plan, with the reason; a cloud plan is tested.
func TestVSPCTestModeCloudOnly(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 45})
	local, cloud := env.localPlan(t), env.cloudPlan(t)
	test := func(r *config.Rule) { r.Action.Test = true }
	h := newHarness(t, baseConfig(t.TempDir(),
		newRule("local", config.ActionVSPCPlanStart, "vspc", withPlan(local.InstanceUID), test),
		newRule("cloud", config.ActionVSPCPlanStart, "vspc", withPlan(cloud.InstanceUID), test)), env.actors, Options{})
	d := act(t, h, "local")
	if verdict(d) != guardTargetState || !strings.Contains(d.Reason, "only for cloud failover plans") || !strings.Contains(d.Reason, "Local") {
		t.Fatalf("local plan: %s (%s)", verdict(d), d.Reason)
	}
	if n := env.sim.VSPCPlanStarts(local.InstanceUID); n != 0 {
		t.Fatalf("%d starts of the Local plan", n)
	}
	if d := act(t, h, "cloud"); verdict(d) != verdictDecided {
		t.Fatalf("cloud plan: %s (%s)", verdict(d), d.Reason)
	}
	if outs := h.wait(t, 5*time.Second); len(outs) != 1 || outs[0].Outcome != outcomeSuccess {
		t.Fatalf("outcomes %+v", outs)
	}
}

// Action paths, for faults on the action POSTs only.
const (
	vspcPlansPath = "/api/v3/infrastructure/backupServers/failoverplans"
	emPlansPath   = "/api/failoverPlans"
	emCdpPath     = "/api/cdpReplicas"
	vbrFailover   = "/api/v1/failover"
)

// TestAnswerAfterAction (issue 17.4, 17.9): Veeam carries the call out and
// then answers 401 or 5xx. Nothing is sent twice, except VSPC's call with
// its X-Request-id within the replay window (VSPC replays, it does not run
// it again); the action is followed through state that does not depend on
// the answer and ends with what that state shows, or uncertain.
func TestAnswerAfterAction(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 46})
	vspcPlans := env.readyPlans(t, 2)
	emEst := env.sim.Estate().EM
	reps := env.readyReplicas(t, 2)
	cdp := emEst.CdpReplicas[0]
	for i, tc := range []struct {
		name   string
		api    simulator.API
		prefix string
		status int
		rule   config.Rule
		want   string
		calls  func() int // actions Veeam carried out
		posts  int        // action POSTs Veeam received
	}{
		{"vspc 520", simulator.APIVSPC, vspcPlansPath, 520,
			newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(vspcPlans[0].InstanceUID)), outcomeSuccess,
			func() int { return env.sim.VSPCPlanStarts(vspcPlans[0].InstanceUID) }, 2},
		{"vspc 401", simulator.APIVSPC, vspcPlansPath, 401,
			newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(vspcPlans[1].InstanceUID)), outcomeSuccess,
			func() int { return env.sim.VSPCPlanStarts(vspcPlans[1].InstanceUID) }, 2},
		{"em cdp 500", simulator.APIEM, emCdpPath, 500,
			newRule("r", config.ActionEMCdpFailover, "em", func(r *config.Rule) { r.Action.CdpReplica, r.Action.VM = cdp.UID, cdp.VMs[0].UID }), outcomeSuccess,
			func() int { return env.sim.EMCdpFailovers(cdp.VMs[0].UID) }, 1},
		{"em plan 500", simulator.APIEM, emPlansPath, 500,
			newRule("r", config.ActionEMPlanStart, "em", withPlan(emEst.Plans[0].UID)), outcomeSubmitted,
			func() int { return env.sim.EMPlanStarts(emEst.Plans[0].UID) }, 1},
		{"em plan 401", simulator.APIEM, emPlansPath, 401,
			newRule("r", config.ActionEMPlanStart, "em", withPlan(emEst.Plans[1].UID)), outcomeUncertain,
			func() int { return env.sim.EMPlanStarts(emEst.Plans[1].UID) }, 1},
		{"vbr 500", simulator.APIVBR, vbrFailover, 500,
			newRule("r", config.ActionVBRFailover, "vbr", func(r *config.Rule) { r.Action.Replicas = []string{reps[0].ID} }), outcomeSuccess,
			func() int { return len(env.sim.VBRFailoverCalls()) - 0 }, 1},
		{"vbr 401", simulator.APIVBR, vbrFailover, 401,
			newRule("r", config.ActionVBRFailover, "vbr", func(r *config.Rule) { r.Action.Replicas = []string{reps[1].ID} }), outcomeSuccess,
			func() int { return len(env.sim.VBRFailoverCalls()) - 1 }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(t.TempDir(), tc.rule)
			cfg.ActionTimeout = modelDuration(5 * time.Second)
			h := newHarness(t, cfg, env.actors, Options{})
			before := env.posts(tc.api, tc.prefix)
			env.sim.SetFault(tc.api, simulator.Fault{Method: http.MethodPost, PathPrefix: tc.prefix, Status: tc.status, AfterAction: true, Count: 1})
			defer env.sim.ClearFaults()
			o := actAndWait(t, h, "r", 8*time.Second)
			if o.Outcome != tc.want {
				t.Fatalf("case %d: outcome %s (%s), want %s", i, o.Outcome, o.Message, tc.want)
			}
			if strings.Contains(o.Message, "refused") {
				t.Fatalf("a call carried out is reported refused: %s", o.Message)
			}
			if n := tc.calls(); n != 1 {
				t.Fatalf("carried out %d times", n)
			}
			if n := env.posts(tc.api, tc.prefix) - before; n != tc.posts {
				t.Fatalf("%d action POSTs, want %d", n, tc.posts)
			}
		})
	}
}

// TestThrottled (issue 17.6): a 429 is retried once after its
// retry-after when that is short; a refusal that persists, or asks for a
// longer wait, ends abandoned as not sent (nothing was done).
func TestThrottled(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 47})
	plans := env.readyPlans(t, 2)
	reps := env.readyReplicas(t, 1)
	for _, tc := range []struct {
		name       string
		api        simulator.API
		prefix     string
		fault      simulator.Fault
		rule       config.Rule
		want       string
		posts      int
		carriedOut func() int
	}{
		{"vspc once", simulator.APIVSPC, vspcPlansPath, simulator.Fault{Status: 429, RetryAfter: 1, Count: 1},
			newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(plans[0].InstanceUID)), outcomeSuccess, 2,
			func() int { return env.sim.VSPCPlanStarts(plans[0].InstanceUID) }},
		{"vspc long retry-after", simulator.APIVSPC, vspcPlansPath, simulator.Fault{Status: 429, RetryAfter: 120},
			newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(plans[1].InstanceUID)), outcomeAbandoned, 1,
			func() int { return 1 - env.sim.VSPCPlanStarts(plans[1].InstanceUID) }},
		{"vbr persists", simulator.APIVBR, vbrFailover, simulator.Fault{Status: 429, RetryAfter: 1},
			newRule("r", config.ActionVBRFailover, "vbr", func(r *config.Rule) { r.Action.Replicas = []string{reps[0].ID} }), outcomeAbandoned, 2,
			func() int { return 1 - len(env.sim.VBRFailoverCalls()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, baseConfig(t.TempDir(), tc.rule), env.actors, Options{})
			before := env.posts(tc.api, tc.prefix)
			f := tc.fault
			f.Method, f.PathPrefix = http.MethodPost, tc.prefix
			env.sim.SetFault(tc.api, f)
			defer env.sim.ClearFaults()
			o := actAndWait(t, h, "r", 8*time.Second)
			if o.Outcome != tc.want || (tc.want == outcomeAbandoned && !strings.Contains(o.Message, "not sent")) {
				t.Fatalf("outcome %s (%s), want %s", o.Outcome, o.Message, tc.want)
			}
			if n := env.posts(tc.api, tc.prefix) - before; n != tc.posts {
				t.Fatalf("%d action POSTs, want %d", n, tc.posts)
			}
			if n := tc.carriedOut(); n != 1 {
				t.Fatalf("carried out check %d, want 1", n)
			}
		})
	}
}

// TestVSPCTestModeEnds (issue 17.8): a test failover that leaves the plan
// Ready ends with the plan's new last session, and frees its concurrency
// slot for a real failover then.
func TestVSPCTestModeEnds(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 48})
	cloud := env.cloudPlan(t)
	other := env.cloudPlan(t, cloud.InstanceUID)
	cfg := baseConfig(t.TempDir(),
		newRule("test", config.ActionVSPCPlanStart, "vspc", withPlan(cloud.InstanceUID), func(r *config.Rule) { r.Action.Test = true }),
		newRule("real", config.ActionVSPCPlanStart, "vspc", withPlan(other.InstanceUID)))
	cfg.MaxConcurrent = 1
	cfg.ActionTimeout = modelDuration(20 * time.Second)
	h := newHarness(t, cfg, env.actors, Options{PollInterval: 2 * time.Second})
	if d := act(t, h, "test"); verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	// The test failover ends and the plan is Ready again before the
	// tracker's next read.
	waitFor(t, func() bool {
		for _, p := range env.sim.Estate().VSPC.Plans {
			if p.InstanceUID == cloud.InstanceUID {
				return p.Status == "Success" && p.LastSession != nil && p.LastSession.EndTime != nil
			}
		}
		return false
	})
	if err := env.sim.SetVSPCPlanStatus(cloud.InstanceUID, "Ready"); err != nil {
		t.Fatal(err)
	}
	outs := h.wait(t, 5*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeSuccess || !strings.Contains(outs[0].Message, "last session Success") {
		t.Fatalf("outcomes %+v", outs)
	}
	if d := act(t, h, "real"); verdict(d) != verdictDecided {
		t.Fatalf("real failover after the test: %s (%s)", verdict(d), d.Reason)
	}
	h.wait(t, 10*time.Second)
}

// TestVSPCUndoOfUndoFailed (issue 17.10): an undo of an UndoFailed plan is
// not judged on the status it had before the call.
func TestVSPCUndoOfUndoFailed(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 49})
	plans := env.readyPlans(t, 2)
	for _, p := range plans {
		if err := env.sim.SetVSPCPlanStatus(p.InstanceUID, "UndoFailed"); err != nil {
			t.Fatal(err)
		}
	}
	run := func(t *testing.T, p simulator.VSPCPlan) outcomeLine {
		cfg := baseConfig(t.TempDir(), newRule("undo", config.ActionVSPCPlanUndo, "vspc", withPlan(p.InstanceUID)))
		cfg.ActionTimeout = modelDuration(2 * time.Second)
		return actAndWait(t, newHarness(t, cfg, env.actors, Options{}), "undo", 5*time.Second)
	}
	t.Run("runs to Ready", func(t *testing.T) {
		if o := run(t, plans[0]); o.Outcome != outcomeSuccess || env.sim.VSPCPlanUndos(plans[0].InstanceUID) != 1 {
			t.Fatalf("%s (%s)", o.Outcome, o.Message)
		}
	})
	t.Run("never reached VSPC", func(t *testing.T) {
		env.sim.SetFault(simulator.APIVSPC, simulator.Fault{Method: http.MethodPost, PathPrefix: vspcPlansPath, Reset: true})
		defer env.sim.ClearFaults()
		o := run(t, plans[1])
		if o.Outcome == outcomeFailed {
			t.Fatalf("judged on the old status: %s (%s)", o.Outcome, o.Message)
		}
		if o.Outcome != outcomeAbandoned || !strings.Contains(o.Message, "not carried out") {
			t.Fatalf("%s (%s)", o.Outcome, o.Message)
		}
	})
}

// TestReloadedAway (issue 17.11): an action whose target a reload removed
// ends at once, abandoned with the reason.
func TestReloadedAway(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 50, ActionDuration: 30 * time.Second})
	p := env.readyPlans(t, 1)[0]
	dir := t.TempDir()
	cfg := baseConfig(dir, newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(p.InstanceUID)))
	cfg.ActionTimeout = modelDuration(time.Minute)
	h := newHarness(t, cfg, env.actors, Options{})
	if d := act(t, h, "r"); verdict(d) != verdictDecided {
		t.Fatalf("%s (%s)", verdict(d), d.Reason)
	}
	waitFor(t, func() bool { st := h.tr.status(); return len(st.InFlight) == 1 && st.InFlight[0].Status == statusSent })
	cfg2 := baseConfig(dir, newRule("em", config.ActionEMPlanStart, "em", withPlan(env.sim.Estate().EM.Plans[0].UID)))
	cfg2.ActionTimeout = cfg.ActionTimeout
	if err := h.tr.Reload(cfg2, map[string]any{"em": env.actors["em"]}); err != nil {
		t.Fatal(err)
	}
	outs := h.wait(t, 3*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeAbandoned || !strings.Contains(outs[0].Message, "target removed by reload") {
		t.Fatalf("outcomes %+v", outs)
	}
}

// TestOutcomeWrittenOnce (issue 17.11): the outcome reached the audit log
// but the state file still holds the action as sent (the disk was full,
// then the exporter crashed). After a restart the action is dropped from
// the state file without a second outcome line.
func TestOutcomeWrittenOnce(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 51})
	p := env.readyPlans(t, 1)[0]
	dir := t.TempDir()
	cfg := baseConfig(dir, newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(p.InstanceUID)))
	cfg.ActionTimeout = modelDuration(500 * time.Millisecond)
	sent := time.Now().Add(-time.Second)
	rec := &actionRecord{RequestID: "44444444-4444-5444-8444-444444444444", Rule: "r", Action: config.ActionVSPCPlanStart,
		Target: "vspc", Object: p.InstanceUID, Status: statusSent, DecidedAt: sent, SendingAt: sent, SentAt: sent,
		PlanID: lower(p.InstanceUID), PrevStatus: "Ready"}
	st := newState()
	st.actions = []*actionRecord{rec}
	data, err := st.marshal()
	if err != nil {
		t.Fatal(err)
	}
	line := outcomeLine{actionAudit: actionAudit{Time: sent, Event: eventOutcome, Rule: "r", Object: rec.Object, Action: rec.Action,
		Target: "vspc", RequestID: rec.RequestID}, Outcome: outcomeSuccess, Message: "plan is Success"}
	if err := writeFileAtomic(cfg.StateFile, data); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(cfg.AuditLog, []byte(mustJSON(t, line)+"\n")); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, cfg, env.actors, Options{})
	h.wait(t, 3*time.Second)
	time.Sleep(700 * time.Millisecond) // past action_timeout: a second outcome would be written by now
	audit, err := os.ReadFile(cfg.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(audit), `"event":"outcome"`); n != 1 {
		t.Fatalf("%d outcome lines for one decision:\n%s", n, audit)
	}
	state, err := os.ReadFile(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(state), rec.RequestID) {
		t.Fatalf("the action is still in the state file:\n%s", state)
	}
}
