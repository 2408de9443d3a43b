package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/demo"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"github.com/veeam-failover/veeam_failover_exporter/internal/targets"
	"github.com/veeam-failover/veeam_failover_exporter/trigger"
)

// toolEnv is the demo estate (simulator over TLS), its config, and a
// trigger built from that config served over HTTPS as the exporter serves
// it.
type toolEnv struct {
	env    *demo.Env
	srv    *httptest.Server
	caFile string
	tr     *trigger.Trigger
}

func startToolEnv(t *testing.T) *toolEnv {
	t.Helper()
	env, err := demo.Start(demo.Options{Seed: 5, Dir: t.TempDir(), ActionTime: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	cfg, err := config.Load(env.ConfigFile, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]any{}
	for _, tg := range cfg.Targets {
		c, err := targets.New(tg, 4, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { targets.Close(c) })
		clients[tg.Name] = c
	}
	tr, err := trigger.New(cfg.Trigger, clients, trigger.Options{PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tr.Close(ctx)
	})
	mux := http.NewServeMux()
	mux.Handle("/webhook", tr.WebhookHandler())
	mux.Handle("/trigger", tr.StatusHandler())
	mux.Handle("/trigger/approvals/", tr.ApprovalsHandler())
	mux.Handle("/trigger/actions", tr.ActionsHandler())
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &toolEnv{env: env, srv: srv, caFile: caFile, tr: tr}
}

// tool runs the command line; it returns the exit code and what it wrote.
func (e *toolEnv) tool(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	base := []string{"--exporter.url=" + e.srv.URL, "--tls.ca-file=" + e.caFile}
	code := run(append(base, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestToolApprovesOverTLS(t *testing.T) {
	e := startToolEnv(t)
	plan := e.env.ApprovalPlan()
	body := amtest.Notification("site-b", amtest.Firing(time.Now().Add(-time.Hour), "alertname", "SiteDown", "site", "b")).JSON()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+demo.WebhookToken)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook: %s", resp.Status)
	}

	code, out, errOut := e.tool(t, "approvals", "-o", "json")
	if code != 0 {
		t.Fatalf("approvals: %d %s", code, errOut)
	}
	var aps []struct{ ID, Rule string }
	if err := json.Unmarshal([]byte(out), &aps); err != nil || len(aps) != 1 || aps[0].Rule != demo.ApprovalRule {
		t.Fatalf("approvals: %v %s", err, out)
	}
	if code, _, _ := e.tool(t, "approvals"); code != 0 {
		t.Fatal("approvals in a table failed")
	}
	if code, _, errOut := (&toolEnv{srv: e.srv, caFile: ""}).tool(t, "status"); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("without the CA the TLS certificate must not verify: %d %s", code, errOut)
	}

	webhookToken := filepath.Join(e.env.Dir, "webhook.token")
	approverToken := filepath.Join(e.env.Dir, "approver.token")
	if code, _, errOut := e.tool(t, "--approver-token-file="+webhookToken, "approve", aps[0].ID, "--by=mallory"); code != 1 || !strings.Contains(errOut, "401") {
		t.Fatalf("approve with the webhook's token: %d %s", code, errOut)
	}
	if plans := e.env.Sim.VSPCPlanStarts(plan.InstanceUID); plans != 0 {
		t.Fatalf("plan started %d times before the approval", plans)
	}
	code, out, errOut = e.tool(t, "--approver-token-file="+approverToken, "approve", aps[0].ID, "--by=carol", "--reason=site B is gone")
	if code != 0 || !strings.Contains(out, "action decided") {
		t.Fatalf("approve: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := e.tool(t, "--approver-token-file="+approverToken, "approve", aps[0].ID, "--by=carol"); code != 1 || !strings.Contains(errOut, "409") {
		t.Fatalf("replayed approve: %d %s", code, errOut)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.env.Sim.VSPCPlanStarts(plan.InstanceUID) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the approved plan was not started")
		}
		time.Sleep(20 * time.Millisecond)
	}

	code, out, _ = e.tool(t, "status")
	if code != 0 || !strings.Contains(out, "armed") || !strings.Contains(out, "kill_switch") || !strings.Contains(out, "last_heartbeat") {
		t.Fatalf("status: %d %s", code, out)
	}
	code, out, _ = e.tool(t, "decisions")
	if code != 0 || !strings.Contains(out, demo.ApprovalRule) || !strings.Contains(out, "awaiting_approval") {
		t.Fatalf("decisions: %d %s", code, out)
	}
	// A manual action on the demo rule site-a-down (its plan is Ready):
	// through the guards, once; again, the cooldown stops it.
	code, out, errOut = e.tool(t, "--approver-token-file="+approverToken, "action", "site-a-down", "--by=carol", "--reason=drill")
	if code != 0 || !strings.Contains(out, "action decided") {
		t.Fatalf("action: %d %s %s", code, out, errOut)
	}
	code, out, _ = e.tool(t, "--approver-token-file="+approverToken, "action", "site-a-down", "--by=carol", "--reason=again")
	if code != 0 || !strings.Contains(out, "blocked by cooldown") {
		t.Fatalf("second action: %d %s", code, out)
	}
}

func TestToolOffline(t *testing.T) {
	env, err := demo.Start(demo.Options{Seed: 6, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	run1 := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append(args, "--config.file="+env.ConfigFile), &out, &errOut); code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut.String())
		}
		return out.String()
	}
	plan := env.DemoPlan()
	if out := run1("plans"); !strings.Contains(out, plan.Name) || !strings.Contains(out, "vspc-demo") || !strings.Contains(out, "em-demo") {
		t.Fatalf("plans:\n%s", out)
	}
	vms := 0
	for _, o := range env.Sim.Estate().VSPC.Objects {
		if strings.EqualFold(o.PlanUID, plan.InstanceUID) {
			vms++
		}
	}
	out := run1("plan-vms", "--target=vspc-demo", plan.Name)
	if n := strings.Count(out, "\n") - 1; n != vms || vms == 0 {
		t.Fatalf("plan-vms: %d rows:\n%s", n, out)
	}
	replica := env.Sim.Estate().VBR.Replicas[0]
	if out := run1("replicas"); !strings.Contains(out, replica.Name) {
		t.Fatalf("replicas:\n%s", out)
	}
	var errOut bytes.Buffer
	if code := run([]string{"plan-vms", "--config.file=" + env.ConfigFile, "no such plan"}, &bytes.Buffer{}, &errOut); code != 1 || !strings.Contains(errOut.String(), "no plan named") {
		t.Fatalf("unknown plan: %d %s", code, errOut.String())
	}
}
