package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
	"github.com/veeam-failover/veeam_failover_exporter/trigger"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// TestBadWebhookInput sends an armed trigger what Alertmanager never sends:
// each gets a clear 4xx with a JSON error and changes nothing: the state
// file and the audit log keep their bytes and no request reaches Veeam. A
// good notification at the end shows that the same harness sees a change.
func TestBadWebhookInput(t *testing.T) {
	o := smallEstate(21)
	o.ActionDuration = 200 * time.Millisecond
	sim := startSim(t, o)
	vc := newClient(t, "vspc", targetName(simulator.APIVSPC), sim.VSPCURL(), sim.CACertPEM(), simulator.DefaultPassword, nil)
	var ready []string
	for _, p := range sim.Estate().VSPC.Plans {
		if p.Status == "Ready" {
			ready = append(ready, p.Name)
		}
	}
	if len(ready) < 2 {
		t.Fatalf("want 2 Ready plans in the estate, have %d", len(ready))
	}
	dir := t.TempDir()
	stateFile, auditLog := filepath.Join(dir, "state.json"), filepath.Join(dir, "audit.jsonl")
	const token = "bad-input-token"
	cfg := config.Default().Trigger // trigger.New takes a loaded config
	cfg.DryRun = false
	cfg.WebhookBearerToken = token
	cfg.StateFile, cfg.AuditLog = stateFile, auditLog
	cfg.MaxConcurrent = 2
	cfg.RateLimit = config.RateLimit{Actions: 10, Per: model.Duration(time.Hour)}
	cfg.Rules = []config.Rule{{
		Name: "site-down", Matchers: []string{`alertname="SiteDown"`}, MinAlerts: 1, Cooldown: model.Duration(time.Hour),
		Action: config.Action{Type: config.ActionVSPCPlanStart, Target: targetName(simulator.APIVSPC), PlanLabel: "plan", Allow: ready},
	}}
	tr, err := trigger.New(cfg, actorsFor(vc), trigger.Options{Registerer: prometheus.NewRegistry(), PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tr.Close(ctx)
	})
	h := tr.WebhookHandler()
	post := func(ctype string, body []byte, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	now := time.Now()
	good := func(gk, plan string) []byte {
		return notification(gk, nil, amtest.Firing(now.Add(-time.Minute), "alertname", "SiteDown", "plan", plan))
	}

	// A first action, tracked to its end, so that the state file exists and
	// holds something (cooldown, dedup, rate-limit use).
	if rec := post("application/json", good("{}:{first}", ready[0]), "Bearer "+token); rec.Code != http.StatusOK {
		t.Fatalf("first notification: %d %s", rec.Code, rec.Body)
	}
	eventually(t, 15*time.Second, "first action ends", func() string {
		if !strings.Contains(string(readFileOrEmpty(t, auditLog)), `"event":"outcome"`) {
			return "no outcome in the audit log yet"
		}
		var st struct {
			Actions []json.RawMessage `json:"actions"`
		}
		if err := json.Unmarshal(readFileOrEmpty(t, stateFile), &st); err != nil || len(st.Actions) != 0 {
			return "state file still has actions in flight"
		}
		return ""
	})
	stateBefore, auditBefore := readFileOrEmpty(t, stateFile), readFileOrEmpty(t, auditLog)
	if len(stateBefore) == 0 || len(auditBefore) == 0 {
		t.Fatal("state file or audit log empty after the first action")
	}
	sim.ResetRequests()

	valid := func(edit func(map[string]any)) []byte {
		return notification("{}:{bad}", edit, amtest.Firing(now.Add(-time.Minute), "alertname", "SiteDown", "plan", ready[1]))
	}
	setAlert := func(key string, v any) func(map[string]any) {
		return func(p map[string]any) {
			a := p["alerts"].([]amtest.Alert)
			m := map[string]any{}
			b, _ := json.Marshal(a[0])
			_ = json.Unmarshal(b, &m)
			if v == nil {
				delete(m, key)
			} else {
				m[key] = v
			}
			p["alerts"] = []any{m}
		}
	}
	huge := valid(func(p map[string]any) { p["commonAnnotations"] = map[string]string{"pad": strings.Repeat("x", 1<<20)} })
	bearer := "Bearer " + token
	cases := []struct {
		name  string
		ctype string
		auth  string
		body  []byte
		want  int
	}{
		{"oversized body", "application/json", bearer, huge, http.StatusRequestEntityTooLarge},
		{"text/plain", "text/plain", bearer, valid(nil), http.StatusUnsupportedMediaType},
		{"form content type", "application/x-www-form-urlencoded", bearer, valid(nil), http.StatusUnsupportedMediaType},
		{"no content type", "", bearer, valid(nil), http.StatusUnsupportedMediaType},
		{"version 3", "application/json", bearer, valid(func(p map[string]any) { p["version"] = "3" }), http.StatusBadRequest},
		{"no version", "application/json", bearer, valid(func(p map[string]any) { delete(p, "version") }), http.StatusBadRequest},
		{"malformed JSON", "application/json", bearer, []byte(`{"version":"4","alerts":[{"status":"firing",}]}`), http.StatusBadRequest},
		{"truncated JSON", "application/json", bearer, valid(nil)[:100], http.StatusBadRequest},
		{"empty body", "application/json", bearer, nil, http.StatusBadRequest},
		{"two objects", "application/json", bearer, append(valid(nil), valid(nil)...), http.StatusBadRequest},
		{"JSON array", "application/json", bearer, []byte(`[{"version":"4"}]`), http.StatusBadRequest},
		{"alert with empty labels", "application/json", bearer, valid(setAlert("labels", map[string]string{})), http.StatusBadRequest},
		{"alert without labels", "application/json", bearer, valid(setAlert("labels", nil)), http.StatusBadRequest},
		{"no alerts", "application/json", bearer, valid(func(p map[string]any) { p["alerts"] = []any{} }), http.StatusBadRequest},
		{"startsAt 1970", "application/json", bearer, valid(setAlert("startsAt", "1970-01-01T00:00:00Z")), http.StatusBadRequest},
		{"startsAt year 9999", "application/json", bearer, valid(setAlert("startsAt", "9999-12-31T23:59:59Z")), http.StatusBadRequest},
		{"startsAt next week", "application/json", bearer, valid(setAlert("startsAt", now.Add(7*24*time.Hour).UTC().Format(time.RFC3339))), http.StatusBadRequest},
		{"startsAt missing", "application/json", bearer, valid(setAlert("startsAt", nil)), http.StatusBadRequest},
		{"startsAt not a time", "application/json", bearer, valid(setAlert("startsAt", "yesterday")), http.StatusBadRequest},
		{"startsAt a number", "application/json", bearer, valid(setAlert("startsAt", 1700000000)), http.StatusBadRequest},
		{"labels not strings", "application/json", bearer, valid(setAlert("labels", map[string]any{"alertname": 1})), http.StatusBadRequest},
		{"alert status unknown", "application/json", bearer, valid(setAlert("status", "burning")), http.StatusBadRequest},
		{"no bearer token", "application/json", "", valid(nil), http.StatusUnauthorized},
		{"wrong bearer token", "application/json", "Bearer not-" + token, valid(nil), http.StatusUnauthorized},
		{"basic instead of bearer", "application/json", "Basic " + token, valid(nil), http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(tc.ctype, tc.body, tc.auth)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d; body %s", rec.Code, tc.want, proctest.Tail(rec.Body.String(), 300))
			}
			var ans struct {
				Status    string            `json:"status"`
				Error     string            `json:"error"`
				Decisions []json.RawMessage `json:"decisions"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
				t.Errorf("answer is not JSON: %v: %s", err, proctest.Tail(rec.Body.String(), 300))
			}
			if ans.Status != "error" || ans.Error == "" || len(ans.Decisions) != 0 {
				t.Errorf("answer %+v, want status error, an error message and no decisions", ans)
			}
			if strings.Contains(ans.Error, token) {
				t.Errorf("the error quotes the bearer token: %q", ans.Error)
			}
			t.Logf("%d %s", rec.Code, ans.Error)
			if got := readFileOrEmpty(t, stateFile); !bytes.Equal(got, stateBefore) {
				t.Errorf("state file changed:\n%s", got)
			}
			if got := readFileOrEmpty(t, auditLog); !bytes.Equal(got, auditBefore) {
				t.Errorf("audit log changed: %s", got[len(auditBefore):])
			}
			for _, api := range apis {
				if rs := sim.Requests(api); len(rs) != 0 {
					t.Errorf("%d requests reached %s, first %s %s", len(rs), api, rs[0].Method, rs[0].Path)
				}
			}
		})
	}

	// The control: the same notification, well formed, acts.
	rec := post("application/json", valid(nil), bearer)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"decided"`) {
		t.Fatalf("good notification: %d %s", rec.Code, rec.Body)
	}
	if bytes.Equal(readFileOrEmpty(t, stateFile), stateBefore) || bytes.Equal(readFileOrEmpty(t, auditLog), auditBefore) {
		t.Error("a good notification changed neither the state file nor the audit log: the checks above prove nothing")
	}
}
