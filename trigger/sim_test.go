package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	promconfig "github.com/prometheus/common/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

const testToken = "test-bearer-token"

type simEnv struct {
	sim    *simulator.Simulator
	actors map[string]any
}

func startSim(t *testing.T, o simulator.Options) *simEnv {
	t.Helper()
	if o.ActionDuration == 0 {
		o.ActionDuration = 100 * time.Millisecond
	}
	if o.VSPC.Plans == 0 {
		o.VSPC = simulator.VSPCOptions{Plans: 20, ObjectsPerPlan: 2, BackupServers: 1}
	}
	if o.EM.Plans == 0 {
		o.EM = simulator.EMOptions{Plans: 4, VMsPerPlan: 2, CloudSessions: 2, CdpReplicas: 1, VMsPerCdpReplica: 2}
	}
	if o.VBR.Replicas == 0 {
		o.VBR = simulator.VBROptions{Replicas: 8, PointsPerReplica: 2}
	}
	sim, err := simulator.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return &simEnv{sim: sim, actors: newActors(t, sim)}
}

// newActors makes a fresh set of clients (a second exporter process has its
// own); over HTTPS they trust the simulator's CA and nothing else.
func newActors(t *testing.T, sim *simulator.Simulator) map[string]any {
	t.Helper()
	opts := func(name, url string) veeam.ClientOptions {
		return veeam.ClientOptions{Name: name, URL: url, Username: simulator.DefaultUsername,
			Password: simulator.DefaultPassword, Timeout: 5 * time.Second,
			HTTPClientConfig: promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CA: string(sim.CACertPEM())}}}
	}
	vc, err := vspc.New(opts("vspc", sim.VSPCURL()))
	if err != nil {
		t.Fatal(err)
	}
	ec, err := em.New(opts("em", sim.EMURL()))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := vbr.New(opts("vbr", sim.VBRURL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = vc.Close(ctx)
		_ = ec.Close(ctx)
		_ = bc.Close(ctx)
	})
	return map[string]any{"vspc": vc, "em": ec, "vbr": bc}
}

// readyPlans returns VSPC plans in status Ready.
func (e *simEnv) readyPlans(t *testing.T, n int) []simulator.VSPCPlan {
	t.Helper()
	var out []simulator.VSPCPlan
	for _, p := range e.sim.Estate().VSPC.Plans {
		if p.Status == "Ready" {
			out = append(out, p)
		}
	}
	if len(out) < n {
		t.Fatalf("only %d Ready plans", len(out))
	}
	return out[:n]
}

// readyReplicas returns VBR replicas in state Ready.
func (e *simEnv) readyReplicas(t *testing.T, n int) []simulator.VBRReplica {
	t.Helper()
	var out []simulator.VBRReplica
	for _, r := range e.sim.Estate().VBR.Replicas {
		if r.State == "Ready" {
			out = append(out, r)
		}
	}
	if len(out) < n {
		t.Fatalf("only %d Ready replicas", len(out))
	}
	return out[:n]
}

// vspcCalls counts the start and undo POSTs VSPC received for a plan.
func (e *simEnv) vspcCalls(planUID, verb string) int {
	n := 0
	for _, r := range e.sim.Requests(simulator.APIVSPC) {
		if r.Method == http.MethodPost && strings.EqualFold(r.Path, "/api/v3/infrastructure/backupServers/failoverplans/"+planUID+"/"+verb) {
			n++
		}
	}
	return n
}

// actionPosts counts every POST that could change anything on any API
// (everything but logons).
func (e *simEnv) actionPosts() int {
	n := 0
	for _, api := range []simulator.API{simulator.APIVSPC, simulator.APIEM, simulator.APIVBR} {
		for _, r := range e.sim.Requests(api) {
			p := strings.ToLower(r.Path)
			if r.Method == http.MethodPost && !strings.Contains(p, "token") && !strings.Contains(p, "sessionmngr") {
				n++
			}
		}
	}
	return n
}

// baseConfig is an armed trigger config with generous limits; tests narrow
// what they exercise.
func baseConfig(dir string, rules ...config.Rule) config.TriggerConfig {
	return config.TriggerConfig{
		DryRun:             false,
		WebhookBearerToken: testToken,
		StateFile:          filepath.Join(dir, "state.json"),
		AuditLog:           filepath.Join(dir, "audit.jsonl"),
		KillSwitchFile:     filepath.Join(dir, "disarm"),
		MaxConcurrent:      10,
		RateLimit:          config.RateLimit{Actions: 100, Per: model.Duration(time.Hour)},
		ActionTimeout:      model.Duration(10 * time.Second),
		Rules:              rules,
	}
}

func newRule(name, actionType, target string, edit ...func(*config.Rule)) config.Rule {
	r := config.Rule{
		Name:      name,
		Matchers:  []string{`alertname="SiteDown"`, `rule="` + name + `"`},
		MinAlerts: 1,
		Cooldown:  model.Duration(time.Hour),
		Action:    config.Action{Type: actionType, Target: target},
	}
	for _, f := range edit {
		f(&r)
	}
	return r
}

type harness struct {
	tr  *Trigger
	reg *prometheus.Registry
	cfg config.TriggerConfig
}

func newHarness(t *testing.T, cfg config.TriggerConfig, actors map[string]any, o Options) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	if o.PollInterval == 0 {
		o.PollInterval = 20 * time.Millisecond
	}
	tr, err := New(cfg, actors, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tr.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return &harness{tr: tr, reg: reg, cfg: cfg}
}

func (h *harness) post(t *testing.T, body []byte) webhookAnswer {
	t.Helper()
	code, ans := h.postCode(t, body)
	if code != http.StatusOK {
		t.Fatalf("webhook answered %d: %+v", code, ans)
	}
	return ans
}

func (h *harness) postCode(t *testing.T, body []byte) (int, webhookAnswer) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.tr.WebhookHandler().ServeHTTP(rec, req)
	var ans webhookAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
		t.Fatalf("answer %d is not JSON: %s", rec.Code, rec.Body)
	}
	return rec.Code, ans
}

// wait waits until no action is in flight and returns the outcomes seen.
func (h *harness) wait(t *testing.T, timeout time.Duration) []outcomeLine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for h.tr.inFlightCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("actions still in flight after %s: %+v", timeout, h.tr.status().InFlight)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return h.tr.status().RecentOutcomes
}

func (h *harness) counter(c *prometheus.CounterVec, labels ...string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(labels...))
}

// only returns the single decision for rule, failing otherwise.
func only(t *testing.T, ans webhookAnswer, rule string) decision {
	t.Helper()
	var out []decision
	for _, d := range ans.Decisions {
		if d.Rule == rule {
			out = append(out, d)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d decisions for rule %s: %+v", len(out), rule, ans.Decisions)
	}
	return out[0]
}

// verdict is a decision in short: the guard that stopped it or its outcome.
func verdict(d decision) string {
	if d.Outcome == verdictBlocked {
		return d.Guard
	}
	return d.Outcome
}

func alertFor(ruleName string, startsAt time.Time, kv ...string) amtest.Alert {
	return amtest.Firing(startsAt, append([]string{"alertname", "SiteDown", "rule", ruleName}, kv...)...)
}

func lower(s string) string { return strings.ToLower(s) }

func modelDuration(d time.Duration) model.Duration { return model.Duration(d) }
