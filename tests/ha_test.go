package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"github.com/veeam-failover/veeam_failover_exporter/internal/etcdtest"
	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
	// The action types are declared by the trigger package.
	_ "github.com/veeam-failover/veeam_failover_exporter/trigger"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// Issue 18 with the built binary: replicas of the exporter share their
// trigger memory in a real three-member etcd cluster and act on the
// simulator exactly once, through a kill -9 of the replica that owns an
// action and through the loss of etcd members.

const haToken = "ha-webhook-token"

// haEnv is the simulator, the etcd cluster and the config every replica
// shares (each has its own directory and audit log).
type haEnv struct {
	sim     *simulator.Simulator
	etcd    *etcdtest.Cluster
	bin     string
	plans   []simulator.VSPCPlan
	dir     string
	replica map[string]*haReplica
}

type haReplica struct {
	name string
	dir  string
	url  string
	proc *proctest.Process
}

func startHA(t *testing.T, plans int, action time.Duration) *haEnv {
	t.Helper()
	bin := proctest.SharedExporter(t)
	c := etcdtest.Start(t)
	sim, err := simulator.Start(simulator.Options{Seed: 18, TLS: true, ActionDuration: action,
		Username: "monitor", Password: "sim-password",
		VSPC: simulator.VSPCOptions{Plans: plans, ObjectsPerPlan: 1, BackupServers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	e := &haEnv{sim: sim, etcd: c, bin: bin, dir: t.TempDir(), replica: map[string]*haReplica{}}
	for _, p := range sim.Estate().VSPC.Plans {
		if p.Status == "Ready" {
			e.plans = append(e.plans, p)
		}
	}
	return e
}

// config writes a replica's config into dir.
func (e *haEnv) config(t *testing.T, dir string) string {
	t.Helper()
	var allow, eps []string
	for _, p := range e.plans {
		allow = append(allow, fmt.Sprintf("%q", p.InstanceUID))
	}
	for _, ep := range e.etcd.Endpoints() {
		eps = append(eps, fmt.Sprintf("%q", ep))
	}
	files := map[string]string{
		"ca.pem":        string(e.sim.CACertPEM()),
		"password":      "sim-password\n",
		"webhook.token": haToken + "\n",
		"config.yml": fmt.Sprintf(`targets:
  - {name: vspc, type: vspc, url: %q, username: monitor, password_file: password, tls_config: {ca_file: ca.pem}}
trigger:
  dry_run: false
  webhook_bearer_token_file: webhook.token
  audit_log: audit.jsonl
  max_concurrent: 20
  rate_limit: {actions: 100, per: 1h}
  action_timeout: 30s
  coordination:
    etcd:
      endpoints: [%s]
      prefix: /ha/
      lease_ttl: 2s
  rules:
    - name: site-down
      matchers: ['alertname="SiteDown"']
      cooldown: 1h
      action: {type: vspc_plan_start, target: vspc, plan_label: plan, allow: [%s]}
`, e.sim.VSPCURL(), strings.Join(eps, ", "), strings.Join(allow, ", ")),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "config.yml")
}

// start runs (or runs again) the replica name; its directory and audit log
// are kept across restarts.
func (e *haEnv) start(t *testing.T, name string) *haReplica {
	t.Helper()
	r := e.replica[name]
	if r == nil {
		r = &haReplica{name: name, dir: filepath.Join(e.dir, name)}
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		e.replica[name] = r
	}
	cfg := e.config(t, r.dir)
	addr := proctest.FreeAddr(t)
	r.url = "http://" + addr
	r.proc = proctest.Start(t, name, e.bin, "--config.file="+cfg, "--web.listen-address="+addr, "--log.level=debug")
	eventually(t, 30*time.Second, name+" ready", httpOK(r.url+"/-/ready"), r.proc)
	return r
}

// post sends a notification for plan's alert and returns the status code
// and the answer.
func (r *haReplica) post(plan, groupKey string, startsAt time.Time) (int, haAnswer, error) {
	body := amtest.Notification(groupKey, amtest.Firing(startsAt, "alertname", "SiteDown", "plan", plan)).JSON()
	req, err := http.NewRequest(http.MethodPost, r.url+"/webhook", bytes.NewReader(body))
	if err != nil {
		return 0, haAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+haToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, haAnswer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a haAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return resp.StatusCode, a, fmt.Errorf("answer %d: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, a, nil
}

type haAnswer struct {
	Error     string `json:"error"`
	Decisions []struct {
		Outcome   string `json:"outcome"`
		Guard     string `json:"guard"`
		Reason    string `json:"reason"`
		RequestID string `json:"request_id"`
	} `json:"decisions"`
}

// status reads /trigger.
func (r *haReplica) status() (haStatus, error) {
	var s haStatus
	b, err := getBody(context.Background(), r.url+"/trigger")
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	return s, err
}

type haStatus struct {
	Armed          bool   `json:"armed"`
	DisarmedReason string `json:"disarmed_reason"`
	InFlight       []struct {
		RequestID string `json:"request_id"`
		Status    string `json:"status"`
	} `json:"in_flight"`
	Coordination *struct {
		Up      bool   `json:"up"`
		Reason  string `json:"reason"`
		Replica string `json:"replica"`
		Actions []struct {
			RequestID string `json:"request_id"`
			Owner     string `json:"owner"`
		} `json:"actions"`
	} `json:"coordination"`
}

// auditEvent returns the first audit line of r with this event and request
// id (nil when none).
func (r *haReplica) auditEvent(t *testing.T, event, requestID string) map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(r.dir, "audit.jsonl"))
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil && l["event"] == event && l["request_id"] == requestID {
			return l
		}
	}
	return nil
}

// coordinationUp reads veeam_trigger_coordination_up from /metrics.
func (r *haReplica) coordinationUp() (string, error) {
	b, err := getBody(context.Background(), r.url+"/metrics")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "veeam_trigger_coordination_up "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no veeam_trigger_coordination_up in /metrics")
}

// startPosts counts the start POSTs on a plan in the simulator's request
// log, refused ones included.
func startPosts(sim *simulator.Simulator, planUID string) int {
	n := 0
	for _, r := range sim.Requests(simulator.APIVSPC) {
		if r.Method == http.MethodPost && strings.EqualFold(r.Path, "/api/v3/infrastructure/backupServers/failoverplans/"+planUID+"/start") {
			n++
		}
	}
	return n
}

// TestHAKillOwner: 20 seeded rounds. The replica that decided a plan start
// is killed with SIGKILL while the action runs; the other replica adopts
// it, follows it to its real end (success) and writes that outcome, and
// Veeam receives the start once. The killed replica comes back for the
// next round.
func TestHAKillOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("runs exporter binaries and etcd")
	}
	const rounds = 20
	e := startHA(t, 2*rounds+10, 1500*time.Millisecond)
	if len(e.plans) < rounds {
		t.Fatalf("%d Ready plans", len(e.plans))
	}
	names := []string{"a", "b"}
	for _, n := range names {
		e.start(t, n)
	}
	rng := rand.New(rand.NewSource(18))
	begin := time.Now()
	t0 := begin.Add(-time.Minute)
	for round := range rounds {
		plan := e.plans[round]
		owner := e.replica[names[rng.Intn(2)]]
		other := e.replica["a"]
		if owner == other {
			other = e.replica["b"]
		}
		code, ans, err := owner.post(plan.InstanceUID, fmt.Sprintf("round-%d", round), t0)
		if err != nil || code != http.StatusOK || len(ans.Decisions) != 1 || ans.Decisions[0].Outcome != "decided" {
			t.Fatalf("round %d: %d %+v %v", round, code, ans, err)
		}
		rid := ans.Decisions[0].RequestID
		eventually(t, 10*time.Second, "action sent", func() (bool, string) {
			st, err := owner.status()
			if err != nil {
				return false, err.Error()
			}
			for _, a := range st.InFlight {
				if a.RequestID == rid && a.Status == "sent" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("in flight: %+v", st.InFlight)
		}, owner.proc)
		time.Sleep(time.Duration(rng.Intn(300)) * time.Millisecond)
		owner.proc.Kill()
		var outcome map[string]any
		eventually(t, 20*time.Second, fmt.Sprintf("round %d: outcome on %s", round, other.name), func() (bool, string) {
			outcome = other.auditEvent(t, "outcome", rid)
			return outcome != nil, ""
		}, other.proc)
		if outcome["outcome"] != "success" {
			t.Fatalf("round %d: adopted outcome %v (%v), want success", round, outcome["outcome"], outcome["message"])
		}
		if other.auditEvent(t, "adopted", rid) == nil {
			t.Fatalf("round %d: %s's audit log has no adopted line for %s", round, other.name, rid)
		}
		if n := startPosts(e.sim, plan.InstanceUID); n != 1 {
			t.Fatalf("round %d: %d starts of %s, want 1", round, n, plan.Name)
		}
		e.start(t, owner.name)
	}
	t.Logf("%d kill -9 rounds in %s", rounds, time.Since(begin).Round(time.Millisecond))
	// Alertmanager repeats every round's notification to both replicas:
	// the shared memory refuses them all.
	for round := range rounds {
		for _, n := range names {
			code, ans, err := e.replica[n].post(e.plans[round].InstanceUID, fmt.Sprintf("round-%d", round), t0)
			if err != nil || code != http.StatusOK || len(ans.Decisions) != 1 || ans.Decisions[0].Outcome == "decided" {
				t.Fatalf("repeat of round %d on %s: %d %+v %v", round, n, code, ans, err)
			}
		}
	}
	for round := range rounds {
		if n := startPosts(e.sim, e.plans[round].InstanceUID); n != 1 {
			t.Fatalf("round %d: %d starts after the repeats, want 1", round, n)
		}
	}
}

// TestHAQuorum: with one etcd member stopped two replicas still act once;
// with two stopped no replica acts, the webhook answers 503, /trigger says
// why and veeam_trigger_coordination_up is 0 while /metrics answers; once
// the members are back, the alert (still firing, resent by Alertmanager)
// acts once.
func TestHAQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("runs exporter binaries and etcd")
	}
	e := startHA(t, 12, 300*time.Millisecond)
	a, b := e.start(t, "a"), e.start(t, "b")
	both := []*haReplica{a, b}
	t0 := time.Now().Add(-time.Minute)
	postAll := func(plan string, want int) {
		t.Helper()
		for _, r := range both {
			code, ans, err := r.post(plan, "g-"+plan, t0)
			if err != nil || code != want {
				t.Fatalf("%s answered %d, want %d: %+v %v", r.name, code, want, ans, err)
			}
		}
	}

	e.etcd.Stop(0)
	postAll(e.plans[0].InstanceUID, http.StatusOK)
	eventually(t, 10*time.Second, "one start", func() (bool, string) {
		n := startPosts(e.sim, e.plans[0].InstanceUID)
		return n == 1, fmt.Sprintf("%d starts", n)
	})

	e.etcd.Stop(1)
	for _, r := range both {
		eventually(t, 15*time.Second, r.name+" coordination down", func() (bool, string) {
			v, err := r.coordinationUp()
			if err != nil {
				return false, err.Error()
			}
			return v == "0", "veeam_trigger_coordination_up " + v
		}, r.proc)
	}
	postAll(e.plans[1].InstanceUID, http.StatusServiceUnavailable)
	for _, r := range both {
		st, err := r.status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Armed || !strings.Contains(st.DisarmedReason, "etcd") || st.Coordination == nil || st.Coordination.Up || st.Coordination.Reason == "" {
			t.Fatalf("%s /trigger does not say why: %+v", r.name, st)
		}
	}
	if n := startPosts(e.sim, e.plans[1].InstanceUID); n != 0 {
		t.Fatalf("quorum lost: %d starts, want 0", n)
	}

	e.etcd.Restart(0)
	e.etcd.Restart(1)
	e.etcd.WaitHealthy(20 * time.Second)
	for _, r := range both {
		eventually(t, 20*time.Second, r.name+" answers again", func() (bool, string) {
			code, ans, err := r.post(e.plans[1].InstanceUID, "g-"+e.plans[1].InstanceUID, t0)
			if err != nil {
				return false, err.Error()
			}
			return code == http.StatusOK, fmt.Sprintf("%d %+v", code, ans)
		}, r.proc)
	}
	eventually(t, 10*time.Second, "one start after quorum came back", func() (bool, string) {
		n := startPosts(e.sim, e.plans[1].InstanceUID)
		return n == 1, fmt.Sprintf("%d starts", n)
	})
	time.Sleep(time.Second)
	if n := startPosts(e.sim, e.plans[1].InstanceUID); n != 1 {
		t.Fatalf("%d starts, want 1", n)
	}
}

// TestHAKubernetesConfig: the HA overlay's config, with the base's and the
// overlay's secrets laid out as the StatefulSet mounts them, passes the
// exporter's config check, keeps no state file and names etcd.
func TestHAKubernetesConfig(t *testing.T) {
	dir := filepath.Join(repoRoot, "examples", "kubernetes-ha")
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	var base, overlay struct {
		StringData map[string]string `yaml:"stringData"`
	}
	for file, v := range map[string]any{
		filepath.Join(dir, "configmap.yaml"):                             &cm,
		filepath.Join(dir, "secret.yaml"):                                &overlay,
		filepath.Join(repoRoot, "examples", "kubernetes", "secret.yaml"): &base,
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]string{base.StringData, overlay.StringData} {
		for k, v := range m {
			if err := os.WriteFile(filepath.Join(root, "secrets", k), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The CA is a placeholder in the example; the check reads the file only.
	cfg, err := config.Parse([]byte(cm.Data["veeam_failover_exporter.yml"]), filepath.Join(root, "veeam_failover_exporter.yml"), config.LoadOptions{})
	if err != nil {
		t.Fatalf("examples/kubernetes-ha/configmap.yaml: %v", err)
	}
	tr := cfg.Trigger
	if tr.StateFile != "" || !tr.Coordination.Enabled() || len(tr.Coordination.Etcd.Endpoints) != 3 || tr.Coordination.Etcd.Password == "" {
		t.Fatalf("want coordination on three etcd members with a password and no state file: %+v", tr.Coordination.Etcd.Endpoints)
	}
}
