package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

func TestStateRoundTrip(t *testing.T) {
	s := newState()
	s.dedup["k1"] = testNow.Add(time.Hour)
	s.cooldowns[cooldownKey{config.ActionVBRFailover, "vbr/points/p1"}] = testNow
	s.cooldowns[legacyCooldownKey("old-rule", "Plan A")] = testNow
	s.holds["em/plan/x"] = objectHold{Object: "em/plan/x", RequestID: "id0", Rule: "r", Action: config.ActionEMPlanStart, Outcome: outcomeTimeout, Until: testNow}
	s.pending = []*pendingDecision{{ID: "p1", Rule: "r", Action: config.ActionVBRFailover, Target: "vbr", Object: "rep",
		GroupKey: "g", Guard: guardFor, Since: testNow, Next: testNow, Expires: testNow,
		Alerts: []alert{{Status: statusFiring, Labels: map[string]string{"a": "b"}, StartsAt: testNow}}}}
	s.rateUses = []time.Time{testNow.Add(-time.Minute)}
	s.lastAction["r"] = testNow
	s.actions = []*actionRecord{{RequestID: "id1", Rule: "r", Action: config.ActionVBRFailover, Target: "vbr",
		Status: statusSent, DecidedAt: testNow, SentAt: testNow, PointIDs: []string{"p1"},
		Sessions: []sessionHandle{{ID: "s1"}, {ID: "s2", Result: "Success"}}}}
	data, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := writeFileAtomic(path, data); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v %v", fi.Mode(), err)
	}
	got, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	data2, _ := got.marshal()
	if !bytes.Equal(data, data2) {
		t.Fatalf("round trip differs:\n%s\n%s", data, data2)
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries", len(entries))
	}
}

func TestLoadStateMissingIsNotStored(t *testing.T) {
	s, err := loadState(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, errNotStored) || s != nil {
		t.Fatalf("%v %v", s, err)
	}
}

func TestUnmarshalStateRejects(t *testing.T) {
	for name, body := range map[string]string{
		"empty":          ``,
		"garbage":        `{"version":1,`,
		"other version":  `{"version":2}`,
		"unknown field":  `{"version":1,"extra":true}`,
		"trailing":       `{"version":1}{}`,
		"bad status":     `{"version":1,"actions":[{"request_id":"a","rule":"r","action":"vspc_plan_start","target":"t","status":"done"}]}`,
		"bad action":     `{"version":1,"actions":[{"request_id":"a","rule":"r","action":"reboot","target":"t","status":"sent"}]}`,
		"no request id":  `{"version":1,"actions":[{"rule":"r","action":"vspc_plan_start","target":"t","status":"sent"}]}`,
		"duplicate id":   `{"version":1,"actions":[{"request_id":"a","rule":"r","action":"vspc_plan_start","target":"t","status":"sent"},{"request_id":"a","rule":"r","action":"vspc_plan_start","target":"t","status":"sent"}]}`,
		"null action":    `{"version":1,"actions":[null]}`,
		"cooldown empty": `{"version":1,"cooldowns":[{"rule":"","object":"x","at":"2025-01-01T00:00:00Z"}]}`,
	} {
		if _, err := unmarshalState([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := unmarshalState([]byte(`{"version":1}`)); err != nil {
		t.Errorf("minimal state refused: %v", err)
	}
}

// newBareTrigger makes a trigger without rules (no clients needed).
func newBareTrigger(t *testing.T, cfg config.TriggerConfig, reg prometheus.Registerer) *Trigger {
	t.Helper()
	tr, err := New(cfg, map[string]any{}, Options{Registerer: reg, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	return tr
}

func armedConfig(dir string) config.TriggerConfig {
	cfg := config.Default().Trigger // New takes a loaded config
	cfg.DryRun = false
	cfg.WebhookBearerToken = "s3cret-token"
	cfg.StateFile = filepath.Join(dir, "state.json")
	cfg.AuditLog = filepath.Join(dir, "audit.jsonl")
	cfg.KillSwitchFile = filepath.Join(dir, "disarm")
	return cfg
}

func TestCorruptStateDisarms(t *testing.T) {
	dir := t.TempDir()
	cfg := armedConfig(dir)
	corrupt := []byte(`{"version":1,"actions":[{"request_id":"x"`)
	if err := os.WriteFile(cfg.StateFile, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	tr := newBareTrigger(t, cfg, reg)
	if tr.Armed() {
		t.Fatal("armed with a corrupt state file")
	}
	if got := testutil.ToFloat64(tr.m.armed); got != 0 {
		t.Fatalf("veeam_trigger_armed %v", got)
	}
	if got := testutil.ToFloat64(tr.m.stateError); got != 1 {
		t.Fatalf("veeam_trigger_state_error %v, want 1", got)
	}
	st := tr.status()
	if st.Armed || !strings.Contains(st.DisarmedReason, "state file") || !strings.Contains(st.DisarmedReason, "copy is kept") {
		t.Fatalf("status %+v", st)
	}
	copies, _ := filepath.Glob(cfg.StateFile + ".corrupt-*")
	if len(copies) != 1 {
		t.Fatalf("copies %v", copies)
	}
	if b, _ := os.ReadFile(copies[0]); !bytes.Equal(b, corrupt) {
		t.Fatal("copy differs")
	}
	// The original stays untouched until the operator acts.
	if b, _ := os.ReadFile(cfg.StateFile); !bytes.Equal(b, corrupt) {
		t.Fatal("state file was changed while disarmed")
	}
	// A reload with the file still broken stays disarmed.
	if err := tr.Reload(cfg, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if tr.Armed() {
		t.Fatal("armed after reload with a corrupt file")
	}
	if copies, _ := filepath.Glob(cfg.StateFile + ".corrupt-*"); len(copies) != 1 {
		t.Fatalf("the same content copied again: %v", copies)
	}
	// The operator removes it and reloads: armed.
	if err := os.Remove(cfg.StateFile); err != nil {
		t.Fatal(err)
	}
	if err := tr.Reload(cfg, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if !tr.Armed() || tr.status().DisarmedReason != "" {
		t.Fatalf("not re-armed: %+v", tr.status())
	}
	if got := testutil.ToFloat64(tr.m.stateError); got != 0 {
		t.Fatalf("veeam_trigger_state_error %v after the fix, want 0", got)
	}
}

func TestRestartNeverSendsUnsentActions(t *testing.T) {
	dir := t.TempDir()
	cfg := armedConfig(dir)
	s := newState()
	s.actions = []*actionRecord{
		{RequestID: "11111111-1111-5111-8111-111111111111", Rule: "r", Action: config.ActionVSPCPlanStart, Target: "vspc",
			Object: "Plan A", Status: statusDecided, DecidedAt: testNow, PlanID: "p"},
		{RequestID: "22222222-2222-5222-8222-222222222222", Rule: "r", Action: config.ActionEMPlanStart, Target: "em",
			Object: "Plan B", Status: statusSending, DecidedAt: testNow, SendingAt: testNow, PlanID: "q"},
	}
	data, _ := s.marshal()
	if err := writeFileAtomic(cfg.StateFile, data); err != nil {
		t.Fatal(err)
	}
	// A write torn by the crash.
	if err := os.WriteFile(filepath.Join(dir, ".state.json.tmp-123"), data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	// No clients at all: a send would fail loudly rather than silently.
	tr := newBareTrigger(t, cfg, prometheus.NewRegistry())
	if n := tr.inFlightCount(); n != 0 {
		t.Fatalf("%d actions still in flight", n)
	}
	// Decided: never sent (abandoned, released). Sending: maybe sent
	// (uncertain, everything kept).
	for _, o := range []struct{ action, outcome string }{{config.ActionVSPCPlanStart, outcomeAbandoned}, {config.ActionEMPlanStart, outcomeUncertain}} {
		if got := testutil.ToFloat64(tr.m.outcomes.WithLabelValues("r", o.action, o.outcome)); got != 1 {
			t.Errorf("%s %s = %v", o.action, o.outcome, got)
		}
		if got := testutil.ToFloat64(tr.m.actions.WithLabelValues("r", o.action)); got != 0 {
			t.Errorf("%s calls = %v", o.action, got)
		}
	}
	st, err := loadState(cfg.StateFile)
	if err != nil || len(st.actions) != 0 {
		t.Fatalf("state after restart: %v %v", st, err)
	}
	audit, _ := os.ReadFile(cfg.AuditLog)
	if stale, _ := filepath.Glob(filepath.Join(dir, ".state.json.tmp-*")); len(stale) != 0 {
		t.Errorf("temporary files left from the crash: %v", stale)
	}
	if strings.Count(string(audit), `"outcome":"abandoned"`) != 1 || strings.Count(string(audit), `"outcome":"uncertain"`) != 1 ||
		strings.Count(string(audit), `"event":"released"`) != 1 {
		t.Fatalf("want one abandoned and released, one uncertain; audit:\n%s", audit)
	}
}

func TestWebhookRefusals(t *testing.T) {
	dir := t.TempDir()
	cfg := armedConfig(dir)
	tr := newBareTrigger(t, cfg, prometheus.NewRegistry())
	good := amtest.Notification("gk", amtest.Firing(time.Now().Add(-time.Hour), "alertname", "SiteDown")).JSON()
	tests := []struct {
		name   string
		method string
		auth   string
		ctype  string
		body   []byte
		code   int
	}{
		{"ok", "POST", "Bearer s3cret-token", "application/json", good, 200},
		{"ok lower-case scheme", "POST", "bearer s3cret-token", "application/json; charset=utf-8", good, 200},
		{"GET", "GET", "Bearer s3cret-token", "application/json", nil, 405},
		{"no token", "POST", "", "application/json", good, 401},
		{"wrong token", "POST", "Bearer s3cret-tokem", "application/json", good, 401},
		{"basic instead", "POST", "Basic czNjcmV0LXRva2Vu", "application/json", good, 401},
		{"text/plain", "POST", "Bearer s3cret-token", "text/plain", good, 415},
		{"no content type", "POST", "Bearer s3cret-token", "", good, 415},
		{"too big", "POST", "Bearer s3cret-token", "application/json", bytes.Repeat([]byte(" "), maxBodyBytes+1), 413},
		{"bad json", "POST", "Bearer s3cret-token", "application/json", []byte(`{"version":`), 400},
		{"v3", "POST", "Bearer s3cret-token", "application/json", bytes.Replace(good, []byte(`"version":"4"`), []byte(`"version":"3"`), 1), 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/webhook", bytes.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			tr.WebhookHandler().ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("code %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), "s3cret") {
				t.Fatal("answer contains the token")
			}
			var ans webhookAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
				t.Fatalf("answer is not JSON: %v", err)
			}
			if tc.code == 200 && (ans.Status != "ok" || len(ans.Decisions) != 1 || ans.Decisions[0].Guard != guardMatch) {
				t.Fatalf("answer %+v", ans)
			}
		})
	}
	if got := testutil.ToFloat64(tr.m.webhookRequests.WithLabelValues("401")); got != 3 {
		t.Errorf("401 count %v", got)
	}
	if got := testutil.ToFloat64(tr.m.blocked.WithLabelValues(ruleNone, guardMatch)); got != 2 {
		t.Errorf("blocked{none,match} %v", got)
	}
	// Nothing was written to the state file by any of this.
	if _, err := os.Stat(cfg.StateFile); !os.IsNotExist(err) {
		t.Errorf("state file written: %v", err)
	}
	// The status page has no secret either.
	rec := httptest.NewRecorder()
	tr.StatusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/trigger", nil))
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "s3cret") {
		t.Fatalf("status %d %s", rec.Code, rec.Body)
	}
	audit, _ := os.ReadFile(cfg.AuditLog)
	if strings.Contains(string(audit), "s3cret") {
		t.Fatal("audit contains the token")
	}
}

func TestNewRefusesUnsafeConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := armedConfig(dir)
	cfg.WebhookBearerToken = ""
	if _, err := New(cfg, map[string]any{}, Options{}); err == nil || !strings.Contains(err.Error(), "no authentication") {
		t.Fatalf("armed without webhook auth: %v", err)
	}
	if tr, err := New(cfg, map[string]any{}, Options{WebhookBasicAuth: true}); err != nil {
		t.Fatalf("basic auth in front refused: %v", err)
	} else {
		_ = tr.Close(context.Background())
	}
	cfg = armedConfig(dir)
	cfg.StateFile = ""
	if _, err := New(cfg, map[string]any{}, Options{}); err == nil || !strings.Contains(err.Error(), "state_file") {
		t.Fatalf("armed without state file: %v", err)
	}
}

func TestKillSwitchUnreadableCountsAsPresent(t *testing.T) {
	if kill, _ := killSwitch(""); kill {
		t.Fatal("no path configured is active")
	}
	dir := t.TempDir()
	if kill, _ := killSwitch(filepath.Join(dir, "disarm")); kill {
		t.Fatal("missing file is active")
	}
	// A path under a regular file cannot be checked (ENOTDIR).
	f := filepath.Join(dir, "file")
	_ = os.WriteFile(f, nil, 0o600)
	if kill, reason := killSwitch(filepath.Join(f, "disarm")); !kill {
		t.Fatal("unchecked kill switch counts as absent")
	} else {
		t.Log(reason)
	}
}

// TestRestartEndsDecisionsMissingFromState covers a crash between the
// decision's audit line and its state write: the decision never reached the
// state, so it was never sent, and the restart gives it its outcome.
func TestRestartEndsDecisionsMissingFromState(t *testing.T) {
	dir := t.TempDir()
	cfg := armedConfig(dir)
	lines := []string{
		// decided, state write lost in the crash
		`{"time":"2026-11-22T10:00:00Z","event":"decision","rule":"r","object":"Plan A","alerts":["a"],"group_key":"g","action":"vspc_plan_start","target":"vspc","request_id":"33333333-3333-5333-8333-333333333333","outcome":"decided"}`,
		// decided and finished before the crash
		`{"time":"2026-11-22T10:00:01Z","event":"decision","rule":"r","object":"Plan B","alerts":["b"],"group_key":"g","action":"vspc_plan_start","target":"vspc","request_id":"44444444-4444-5444-8444-444444444444","outcome":"decided"}`,
		`{"time":"2026-11-22T10:00:09Z","event":"outcome","rule":"r","object":"Plan B","action":"vspc_plan_start","target":"vspc","request_id":"44444444-4444-5444-8444-444444444444","outcome":"success"}`,
		// blocked decisions have no outcome and need none
		`{"time":"2026-11-22T10:00:02Z","event":"decision","rule":"r","object":"Plan B","alerts":["b"],"group_key":"g","guard":"dedup","action":"vspc_plan_start","target":"vspc","request_id":"44444444-4444-5444-8444-444444444444","outcome":"blocked"}`,
		`{"time":"2026-11-22T10:00:03Z","event":"decis`, // torn by the crash
	}
	if err := os.WriteFile(cfg.AuditLog, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The state file exists (written before the lost decision).
	data, _ := newState().marshal()
	if err := writeFileAtomic(cfg.StateFile, data); err != nil {
		t.Fatal(err)
	}
	tr := newBareTrigger(t, cfg, prometheus.NewRegistry())
	if got := testutil.ToFloat64(tr.m.outcomes.WithLabelValues("r", config.ActionVSPCPlanStart, outcomeAbandoned)); got != 1 {
		t.Errorf("abandoned = %v, want 1", got)
	}
	if got := testutil.ToFloat64(tr.m.actions.WithLabelValues("r", config.ActionVSPCPlanStart)); got != 0 {
		t.Errorf("calls = %v, want 0", got)
	}
	audit, _ := os.ReadFile(cfg.AuditLog)
	if n := strings.Count(string(audit), `"request_id":"33333333-3333-5333-8333-333333333333","outcome":"abandoned"`); n != 1 {
		t.Fatalf("want one abandoned outcome for the lost decision, audit:\n%s", audit)
	}
	if n := strings.Count(string(audit), `"outcome":"abandoned"`); n != 1 {
		t.Fatalf("the finished decision got a second outcome, audit:\n%s", audit)
	}
	// A second restart adds nothing.
	tr2, err := New(cfg, map[string]any{}, Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	_ = tr2.Close(context.Background())
	if again, _ := os.ReadFile(cfg.AuditLog); !bytes.Equal(again, audit) {
		t.Fatalf("second restart changed the audit log:\n%s", again)
	}
}
