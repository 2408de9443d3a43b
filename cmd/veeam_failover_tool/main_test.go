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
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
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

// TestToolOfflineRecoveryPoints: `replicas` lists each VM of a replication
// job's replica with its newest point, and gives the replica the oldest of
// those; `plan-vms` gives each VM the replica of its plan's own backup
// server, not a fresher one of another server, and of two jobs the older
// newest point. The truth is computed here from the simulator's estate.
func TestToolOfflineRecoveryPoints(t *testing.T) {
	// A clock fixed to the second: the APIs' dates are not finer.
	now := time.Now().UTC().Truncate(time.Second)
	so := simulator.Options{Seed: 9, Now: func() time.Time { return now }, VSPC: simulator.VSPCOptions{Plans: 30, ObjectsPerPlan: 6, BackupServers: 3},
		VBR: simulator.VBROptions{Replicas: 12, PointsPerReplica: 3, MultiVMReplicas: true}}
	env, err := demo.Start(demo.Options{Dir: t.TempDir(), SimulatorOpts: &so})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	runJSON := func(v any, args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append(args, "--config.file="+env.ConfigFile, "-o", "json"), &out, &errOut); code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut.String())
		}
		if err := json.Unmarshal(out.Bytes(), v); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
	}
	est := env.Sim.Estate()
	low := strings.ToLower

	// VBR: per replica and VM the newest point; the replica's is the oldest.
	newest := map[[2]string]time.Time{}
	for _, p := range est.VBR.Points {
		k := [2]string{low(p.ReplicaID), p.Name}
		if p.CreationTime.After(newest[k]) {
			newest[k] = p.CreationTime
		}
	}
	var reps []struct {
		ID            string     `json:"id"`
		RecoveryPoint *time.Time `json:"recovery_point"`
		VMs           []struct {
			VM          string    `json:"vm"`
			NewestPoint time.Time `json:"newest_point"`
		} `json:"vms"`
	}
	runJSON(&reps, "replicas")
	if len(reps) != len(est.VBR.Replicas) {
		t.Fatalf("%d replicas listed, estate has %d", len(reps), len(est.VBR.Replicas))
	}
	var vmRows, multiVM, spread int
	for _, r := range reps {
		var oldest, youngest time.Time
		for _, v := range r.VMs {
			want, ok := newest[[2]string{low(r.ID), v.VM}]
			if !ok || !v.NewestPoint.Equal(want) {
				t.Errorf("replica %s VM %s: newest %v, want %v", r.ID, v.VM, v.NewestPoint, want)
			}
			if oldest.IsZero() || want.Before(oldest) {
				oldest = want
			}
			if want.After(youngest) {
				youngest = want
			}
			vmRows++
		}
		if len(r.VMs) > 1 {
			multiVM++
		}
		if !oldest.Equal(youngest) {
			spread++
		}
		if r.RecoveryPoint == nil || !r.RecoveryPoint.Equal(oldest) {
			t.Errorf("replica %s: recovery point %v, want %v (the oldest of its VMs' newest points)", r.ID, r.RecoveryPoint, oldest)
		}
	}
	if vmRows != len(newest) || multiVM == 0 || spread == 0 {
		t.Errorf("%d VM rows (estate %d), %d replicas of several VMs, %d whose VMs differ: the test checks too little", vmRows, len(newest), multiVM, spread)
	}

	// VSPC: per backup server and VM, the newest point of each
	// replication job, the oldest over jobs.
	perJob := map[[3]string]time.Time{}
	for _, b := range est.VSPC.Backups {
		if b.BackupType == "Replication" && b.LatestRestorePointDate != nil {
			k := [3]string{low(b.BackupServerUID), low(b.VirtualMachineUID), low(b.JobUID)}
			if b.LatestRestorePointDate.After(perJob[k]) {
				perJob[k] = *b.LatestRestorePointDate
			}
		}
	}
	truth, anywhere := map[[2]string]time.Time{}, map[string]time.Time{}
	for k, ts := range perJob {
		if cur, ok := truth[[2]string{k[0], k[1]}]; !ok || ts.Before(cur) {
			truth[[2]string{k[0], k[1]}] = ts
		}
		if ts.After(anywhere[k[1]]) {
			anywhere[k[1]] = ts
		}
	}
	// The plan with the most VMs whose replica elsewhere is fresher.
	planOf := map[string]string{}
	tricky := map[string]int{}
	for _, o := range est.VSPC.Objects {
		planOf[low(o.InstanceUID)] = o.PlanUID
		if a := anywhere[low(o.InstanceUID)]; !a.IsZero() && !a.Equal(truth[[2]string{low(o.BackupServerUID), low(o.InstanceUID)}]) {
			tricky[o.PlanUID]++
		}
	}
	var plan string
	for p, n := range tricky {
		if plan == "" || n > tricky[plan] || n == tricky[plan] && p < plan {
			plan = p
		}
	}
	if plan == "" {
		t.Fatal("no VM with a fresher replica on another server: the test could not catch a join by VM alone")
	}
	var vms []struct {
		VMID         string    `json:"vm_id"`
		RestorePoint time.Time `json:"restore_point"`
	}
	runJSON(&vms, "plan-vms", "--target=vspc-demo", plan)
	server := map[string]string{}
	for _, o := range est.VSPC.Objects {
		server[low(o.InstanceUID)] = low(o.BackupServerUID)
	}
	for _, v := range vms {
		want := truth[[2]string{server[low(v.VMID)], low(v.VMID)}]
		if !v.RestorePoint.Equal(want) {
			t.Errorf("plan %s VM %s: restore point %v, want %v (its own backup server's replica)", plan, v.VMID, v.RestorePoint, want)
		}
	}
	if len(vms) == 0 || tricky[plan] == 0 {
		t.Fatalf("plan %s: %d VMs listed", plan, len(vms))
	}
}
