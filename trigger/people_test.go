package trigger

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

const testApproverToken = "test-approver-token"

func withApproval(within time.Duration) func(*config.Rule) {
	return func(r *config.Rule) { r.Approval = config.Approval{Within: modelDuration(within)} }
}

// peopleConfig is baseConfig with the approver's token.
func peopleConfig(dir string, rules ...config.Rule) config.TriggerConfig {
	cfg := baseConfig(dir, rules...)
	cfg.ApproverToken = testApproverToken
	return cfg
}

// approver posts body to one of the approver's endpoints with token.
func (h *harness) approver(t *testing.T, path, token string, body any) (int, answerResult) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	handler := h.tr.ActionsHandler()
	if strings.HasPrefix(path, "/trigger/approvals/") {
		handler = h.tr.ApprovalsHandler()
	}
	handler.ServeHTTP(rec, req)
	var res answerResult
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatalf("answer %d is not JSON: %s", rec.Code, rec.Body)
	}
	return rec.Code, res
}

func (h *harness) answer(t *testing.T, id string, approve bool, token string) (int, answerResult) {
	t.Helper()
	return h.approver(t, "/trigger/approvals/"+id, token, map[string]any{"approve": approve, "by": "alice", "reason": "checked the site"})
}

// awaiting posts the notification and returns the id of the approval it
// asks for; nothing may be called.
func (h *harness) awaiting(t *testing.T, env *simEnv, body []byte, plan string) approvalJSON {
	t.Helper()
	d := only(t, h.post(t, body), "r")
	if d.Outcome != verdictAwaiting || d.Guard != guardApproval {
		t.Fatalf("decision %+v, want awaiting_approval", d)
	}
	aps := h.tr.status().Approvals
	if len(aps) != 1 || !strings.Contains(d.Reason, aps[0].ID) {
		t.Fatalf("approvals %+v for decision %+v", aps, d)
	}
	if n := env.vspcCalls(plan, "start"); n != 0 {
		t.Fatalf("%d start calls before any approval", n)
	}
	return aps[0]
}

func TestApprovalGranted(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 21})
	p := env.readyPlans(t, 1)[0]
	cfg := peopleConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID), withApproval(time.Minute)))
	h := newHarness(t, cfg, env.actors, Options{})
	if got := pendingApprovals(t, h, "r"); got != 0 {
		t.Fatalf("approvals_pending before any alert = %v, want a series at 0", got)
	}
	body := amtest.Notification("g1", alertFor("r", time.Now().Add(-time.Hour))).JSON()
	ap := h.awaiting(t, env, body, p.InstanceUID)
	if got := pendingApprovals(t, h, "r"); got != 1 {
		t.Fatalf("approvals_pending = %v, want 1", got)
	}
	// The page can name the object: one info series per waiting approval.
	if got := infoLabels(t, h, "veeam_trigger_approval_info"); len(got) != 1 || got[0]["object"] != ap.Object || got[0]["approval_id"] != ap.ID || got[0]["rule"] != "r" {
		t.Fatalf("veeam_trigger_approval_info = %v, want one series for %s (%s)", got, ap.Object, ap.ID)
	}
	// Alertmanager's repeat asks nothing new.
	if d := only(t, h.post(t, body), "r"); d.Outcome != verdictAwaiting || !strings.Contains(d.Reason, ap.ID) {
		t.Fatalf("repeat: %+v", d)
	}
	if n := len(h.tr.status().Approvals); n != 1 {
		t.Fatalf("%d approvals after a repeat, want 1", n)
	}

	// Neither the webhook's token, nor no token, nor a forged id approves.
	for _, tc := range []struct {
		name, id, token string
		code            int
	}{
		{"webhook token", ap.ID, testToken, http.StatusUnauthorized},
		{"no token", ap.ID, "", http.StatusUnauthorized},
		{"forged id", "AAAAAAAAAAAAAAAAAAAAAAAAAA", testApproverToken, http.StatusNotFound},
	} {
		if code, res := h.answer(t, tc.id, true, tc.token); code != tc.code {
			t.Errorf("%s: %d %+v, want %d", tc.name, code, res, tc.code)
		}
	}
	// The refusals are counted, so that someone trying tokens shows.
	if got := testutil.ToFloat64(h.tr.m.approverRequests.WithLabelValues("401")); got != 2 {
		t.Errorf("veeam_trigger_approver_requests_total{code=\"401\"} = %g after two refused tokens, want 2", got)
	}
	if code, res := h.approver(t, "/trigger/approvals/"+ap.ID, testApproverToken, map[string]any{"approve": true}); code != http.StatusBadRequest {
		t.Errorf("approval without by: %d %+v, want 400", code, res)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 0 {
		t.Fatalf("%d start calls before the approval", n)
	}

	code, res := h.answer(t, ap.ID, true, testApproverToken)
	if code != http.StatusOK || res.Decision == nil || res.Decision.Outcome != verdictDecided || res.Decision.RequestID != ap.RequestID {
		t.Fatalf("approval: %d %+v", code, res)
	}
	outs := h.wait(t, 10*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeSuccess {
		t.Fatalf("outcomes %+v", outs)
	}
	if got := infoLabels(t, h, "veeam_trigger_approval_info"); len(got) != 0 {
		t.Fatalf("veeam_trigger_approval_info after the answer = %v, want none", got)
	}
	if got := infoLabels(t, h, "veeam_trigger_last_action_info"); len(got) != 1 || got[0]["object"] != ap.Object || got[0]["rule"] != "r" || got[0]["action"] != config.ActionVSPCPlanStart {
		t.Fatalf("veeam_trigger_last_action_info = %v, want the approved call on %s", got, ap.Object)
	}
	// One id, one use.
	if code, res := h.answer(t, ap.ID, true, testApproverToken); code != http.StatusConflict {
		t.Fatalf("replayed approval: %d %+v, want 409", code, res)
	}
	if d := only(t, h.post(t, body), "r"); d.Guard != guardDedup {
		t.Fatalf("repeat after the action: %+v, want dedup", d)
	}
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
		t.Fatalf("%d start calls, want exactly 1", n)
	}
	if got := pendingApprovals(t, h, "r"); got != 0 {
		t.Fatalf("approvals_pending after the answer = %v", got)
	}
	if got := h.counter(h.tr.m.blocked, "r", guardApproval); got != 2 {
		t.Fatalf("blocked_total{guard=approval} = %v, want 2 (asked, repeat)", got)
	}
	audit, _ := os.ReadFile(cfg.AuditLog)
	if !strings.Contains(string(audit), `"state":"approved"`) || !strings.Contains(string(audit), `"by":"alice"`) {
		t.Fatalf("audit log lacks the approval and who gave it:\n%s", audit)
	}
}

func TestApprovalRejectedOrExpired(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 22})
	plans := env.readyPlans(t, 2)
	cfg := peopleConfig(t.TempDir(),
		newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(plans[0].InstanceUID), withApproval(time.Minute)),
		newRule("fast", config.ActionVSPCPlanStart, "vspc", planStart(plans[1].InstanceUID), withApproval(300*time.Millisecond)))
	h := newHarness(t, cfg, env.actors, Options{})

	body := amtest.Notification("g1", alertFor("r", time.Now().Add(-time.Hour))).JSON()
	ap := h.awaiting(t, env, body, plans[0].InstanceUID)
	if code, res := h.answer(t, ap.ID, false, testApproverToken); code != http.StatusOK || res.State != approvalRejected {
		t.Fatalf("rejection: %d %+v", code, res)
	}
	if code, _ := h.answer(t, ap.ID, true, testApproverToken); code != http.StatusConflict {
		t.Fatalf("approving a rejected approval: %d, want 409", code)
	}
	if d := only(t, h.post(t, body), "r"); d.Guard != guardDedup {
		t.Fatalf("the same alerts after a rejection: %+v, want dedup (not asked again)", d)
	}
	if got := h.counter(h.tr.m.outcomes, "r", config.ActionVSPCPlanStart, outcomeRejected); got != 1 {
		t.Fatalf("rejected outcomes = %v", got)
	}

	fast := amtest.Notification("g2", alertFor("fast", time.Now().Add(-time.Hour))).JSON()
	d := only(t, h.post(t, fast), "fast")
	if d.Outcome != verdictAwaiting {
		t.Fatalf("fast: %+v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.counter(h.tr.m.outcomes, "fast", config.ActionVSPCPlanStart, outcomeExpired) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("approval not expired: %+v", h.tr.status().Approvals)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(h.tr.status().Approvals); n != 0 {
		t.Fatalf("%d approvals still waiting", n)
	}
	if n := env.actionPosts(); n != 0 {
		t.Fatalf("%d calls after a rejection and an expiry, want none", n)
	}
	audit, _ := os.ReadFile(cfg.AuditLog)
	for _, want := range []string{`"outcome":"rejected"`, `"outcome":"expired"`, `rejected by alice: checked the site`} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

func TestApprovalAfterPlanLeftReady(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 23})
	p := env.readyPlans(t, 1)[0]
	cfg := peopleConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID), withApproval(time.Minute)))
	h := newHarness(t, cfg, env.actors, Options{})
	ap := h.awaiting(t, env, amtest.Notification("g1", alertFor("r", time.Now().Add(-time.Hour))).JSON(), p.InstanceUID)
	if err := env.sim.SetVSPCPlanStatus(p.InstanceUID, "Failed"); err != nil {
		t.Fatal(err)
	}
	code, res := h.answer(t, ap.ID, true, testApproverToken)
	if code != http.StatusOK || res.Decision == nil || verdict(*res.Decision) != guardTargetState {
		t.Fatalf("approval of a plan no longer Ready: %d %+v, want blocked by target_state", code, res)
	}
	if n := env.actionPosts(); n != 0 {
		t.Fatalf("%d calls", n)
	}
}

func TestApprovalSurvivesRestart(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 24})
	p := env.readyPlans(t, 1)[0]
	cfg := peopleConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID), withApproval(time.Hour)))
	h1 := newHarness(t, cfg, env.actors, Options{})
	ap := h1.awaiting(t, env, amtest.Notification("g1", alertFor("r", time.Now().Add(-time.Hour))).JSON(), p.InstanceUID)
	if err := h1.tr.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	h2 := newHarness(t, cfg, newActors(t, env.sim), Options{})
	aps := h2.tr.status().Approvals
	if len(aps) != 1 || aps[0].ID != ap.ID || !aps[0].Deadline.Equal(ap.Deadline) {
		t.Fatalf("after a restart: %+v, want %+v", aps, ap)
	}
	if got := pendingApprovals(t, h2, "r"); got != 1 {
		t.Fatalf("approvals_pending after restart = %v", got)
	}
	if code, res := h2.answer(t, ap.ID, true, testApproverToken); code != http.StatusOK || res.Decision.Outcome != verdictDecided {
		t.Fatalf("approval after restart: %d %+v", code, res)
	}
	h2.wait(t, 10*time.Second)
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
		t.Fatalf("%d start calls, want 1", n)
	}
}

// TestManualAction: a person's action is called once through the guards
// it meets; each of them can block it, and dry-run calls nothing.
func TestManualAction(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 25, ActionDuration: 2 * time.Second})
	plans := env.readyPlans(t, 8)
	dir := t.TempDir()
	rules := []config.Rule{
		newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(plans[0].InstanceUID)),
		newRule("label", config.ActionVSPCPlanStart, "vspc", func(r *config.Rule) {
			r.Action.PlanLabel, r.Action.Allow = "plan", []string{plans[1].InstanceUID}
		}),
		newRule("failed", config.ActionVSPCPlanStart, "vspc", planStart(plans[2].InstanceUID)),
		newRule("b", config.ActionVSPCPlanStart, "vspc", planStart(plans[3].InstanceUID)),
		newRule("c", config.ActionVSPCPlanStart, "vspc", planStart(plans[4].InstanceUID)),
	}
	cfg := peopleConfig(dir, rules...)
	cfg.MaxConcurrent = 1
	cfg.RateLimit.Actions = 2
	h := newHarness(t, cfg, env.actors, Options{})
	manual := func(rule, object string) (int, answerResult) {
		return h.approver(t, "/trigger/actions", testApproverToken, map[string]string{"rule": rule, "object": object, "by": "bob", "reason": "site A lost power"})
	}
	want := func(name string, code int, res answerResult, v string) {
		t.Helper()
		if code != http.StatusOK || res.Decision == nil || verdict(*res.Decision) != v {
			t.Fatalf("%s: %d %+v, want %s", name, code, res, v)
		}
	}

	if code, _ := h.approver(t, "/trigger/actions", testToken, map[string]string{"rule": "a", "by": "bob", "reason": "x"}); code != http.StatusUnauthorized {
		t.Fatalf("webhook token ran a manual action: %d", code)
	}
	if code, _ := manual("nope", ""); code != http.StatusNotFound {
		t.Fatalf("unknown rule: %d", code)
	}
	if code, _ := manual("a", plans[5].InstanceUID); code != http.StatusBadRequest {
		t.Fatalf("another object than the rule's: %d", code)
	}

	code, res := manual("a", "")
	want("first", code, res, verdictDecided)
	if !strings.HasPrefix(res.Decision.GroupKey, "manual/") || res.Decision.RequestID == "" {
		t.Fatalf("decision %+v", res.Decision)
	}
	// In flight, max_concurrent 1: another object waits.
	code, res = manual("b", "")
	want("concurrency", code, res, guardConcurrency)
	h.wait(t, 20*time.Second)
	if n := env.vspcCalls(plans[0].InstanceUID, "start"); n != 1 {
		t.Fatalf("%d start calls, want 1", n)
	}
	code, res = manual("a", "")
	want("cooldown", code, res, guardCooldown)
	code, res = manual("label", plans[6].InstanceUID)
	want("allow", code, res, guardAllow)
	if err := env.sim.SetVSPCPlanStatus(plans[2].InstanceUID, "Failed"); err != nil {
		t.Fatal(err)
	}
	code, res = manual("failed", "")
	want("target_state", code, res, guardTargetState)
	code, res = manual("b", "") // the second token
	want("second", code, res, verdictDecided)
	h.wait(t, 20*time.Second)
	code, res = manual("c", "")
	want("rate_limit", code, res, guardRateLimit)
	if err := os.WriteFile(filepath.Join(dir, "disarm"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, res = manual("c", "")
	want("kill_switch", code, res, guardKillSwitch)
	if n := env.actionPosts(); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
	if got := h.counter(h.tr.m.actions, "a", config.ActionVSPCPlanStart); got != 1 {
		t.Fatalf("actions_total{rule=a} = %v", got)
	}
	audit, _ := os.ReadFile(cfg.AuditLog)
	if !strings.Contains(string(audit), `"event":"manual"`) || !strings.Contains(string(audit), `"by":"bob"`) {
		t.Fatalf("audit log lacks the manual requests")
	}
}

func TestManualActionDryRun(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 26})
	p := env.readyPlans(t, 1)[0]
	cfg := peopleConfig(t.TempDir(), newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	cfg.DryRun = true
	h := newHarness(t, cfg, env.actors, Options{})
	code, res := h.approver(t, "/trigger/actions", testApproverToken, map[string]string{"rule": "a", "by": "bob", "reason": "drill"})
	if code != http.StatusOK || res.Decision == nil || res.Decision.Outcome != verdictDryRun || !strings.Contains(res.Decision.Reason, "dry_run") {
		t.Fatalf("%d %+v, want a dry_run verdict", code, res)
	}
	if n := env.actionPosts(); n != 0 {
		t.Fatalf("%d calls in dry-run", n)
	}

	// Without approver_token_file approvals and manual actions are off.
	cfg2 := baseConfig(t.TempDir(), newRule("a", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID)))
	h2 := newHarness(t, cfg2, env.actors, Options{})
	if code, _ := h2.approver(t, "/trigger/actions", testToken, map[string]string{"rule": "a", "by": "bob", "reason": "x"}); code != http.StatusForbidden {
		t.Fatalf("no approver token configured: %d, want 403", code)
	}
}

// TestQuorumBy: two alerts that differ only in a label quorum_by does not
// name count once.
func TestQuorumBy(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 27})
	p := env.readyPlans(t, 1)[0]
	cfg := baseConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", planStart(p.InstanceUID), func(r *config.Rule) {
		r.MinAlerts, r.QuorumBy = 2, []string{"prober"}
	}))
	h := newHarness(t, cfg, env.actors, Options{})
	at := time.Now().Add(-time.Hour)
	oneVantage := amtest.Notification("g1",
		alertFor("r", at, "prober", "berlin", "instance", "https://app.site-a"),
		alertFor("r", at, "prober", "berlin", "instance", "https://vcenter.site-a")).JSON()
	if d := only(t, h.post(t, oneVantage), "r"); d.Guard != guardQuorum || !strings.Contains(d.Reason, "prober") {
		t.Fatalf("one vantage point: %+v, want blocked by quorum", d)
	}
	two := amtest.Notification("g1",
		alertFor("r", at, "prober", "berlin", "instance", "https://app.site-a"),
		alertFor("r", at, "prober", "frankfurt", "instance", "https://app.site-a")).JSON()
	if d := only(t, h.post(t, two), "r"); d.Outcome != verdictDecided {
		t.Fatalf("two vantage points: %+v, want decided", d)
	}
	h.wait(t, 10*time.Second)
	if n := env.vspcCalls(p.InstanceUID, "start"); n != 1 {
		t.Fatalf("%d calls", n)
	}
}

// TestHeartbeat: the heartbeat alert is recorded, never matched or
// blocked, and its gauge exists from the start when heartbeat_matchers is
// set.
func TestHeartbeat(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 28})
	cfg := baseConfig(t.TempDir())
	cfg.HeartbeatMatchers = []string{`alertname="VeeamTriggerWatchdog"`}
	h := newHarness(t, cfg, env.actors, Options{})
	const name = "veeam_trigger_last_heartbeat_timestamp_seconds"
	if n, err := testutil.GatherAndCount(h.reg, name); err != nil || n != 1 {
		t.Fatalf("%s series before a heartbeat: %d %v, want 1 (at 0)", name, n, err)
	}
	before := time.Now()
	ans := h.post(t, amtest.Notification("hb", amtest.Firing(time.Now().Add(-time.Hour), "alertname", "VeeamTriggerWatchdog", "severity", "none")).JSON())
	if len(ans.Decisions) != 0 || ans.Heartbeat != 1 {
		t.Fatalf("answer %+v", ans)
	}
	if got := h.counter(h.tr.m.blocked, ruleNone, guardMatch); got != 0 {
		t.Fatalf("heartbeat counted as unmatched: %v", got)
	}
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			v = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if v < float64(before.Unix()) {
		t.Fatalf("%s = %v, want >= %d", name, v, before.Unix())
	}

	h2 := newHarness(t, baseConfig(t.TempDir()), env.actors, Options{})
	if n, _ := testutil.GatherAndCount(h2.reg, name); n != 0 {
		t.Fatalf("%s without heartbeat_matchers: %d series, want none", name, n)
	}
}

// pendingApprovals is veeam_trigger_approvals_pending{rule} as scraped (-1
// without the series).
func pendingApprovals(t *testing.T, h *harness, rule string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "veeam_trigger_approvals_pending" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == rule {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// infoLabels returns the label sets of the series of an info family.
func infoLabels(t *testing.T, h *harness, name string) []map[string]string {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			out = append(out, ls)
		}
	}
	return out
}
