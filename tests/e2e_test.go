package tests

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/veeam-failover/veeam_failover_exporter/demo"
	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// The job names of examples/prometheus.yml, which the example rules select
// (job=~"veeam_failover.*"): the exporter's /metrics, and one job per Veeam
// server through /probe?target=NAME. The test probes the demo's VSPC target,
// which /metrics serves too (the exporter keeps its default
// --web.targets-on-metrics): the job label tells the two apart.
const (
	exporterJob = "veeam_failover"
	probeJob    = "veeam_failover_" + vspcTarget
)

// waitFor bounds each step of the end-to-end test; the steps together take
// well under the two minutes the whole test may use.
const waitFor = 45 * time.Second

// TestEndToEnd runs the built exporter on the simulator, scraped every second
// by a real Prometheus with the example rules and a test rule, which sends
// alerts to a real Alertmanager configured from alertmanager-example.yml,
// whose webhook reaches the exporter's trigger. It follows a failure in the
// simulator through the whole chain and checks the dashboards' queries and
// the rules against that Prometheus.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	progs := lookPrograms(t, []string{"prometheus"}, []string{"prometheus-alertmanager", "alertmanager"})
	prometheusBin, alertmanagerBin := progs[0], progs[1]
	start := time.Now()

	e := startExporter(t, proctest.BuildExporter(t))
	sim := e.env.Sim
	estate := sim.Estate()
	demoPlan := e.env.DemoPlan()         // the plan the demo rule site-a-down starts
	approvalPlan := e.env.ApprovalPlan() // the plan the demo rule site-b-down-approval starts once approved
	sentinel, ok := pickSentinelPlan(estate.VSPC.Plans, demoPlan.InstanceUID, approvalPlan.InstanceUID)
	if !ok {
		t.Fatal("the demo estate has no third Ready VSPC plan to fail")
	}
	sentinelB, ok := pickSentinelPlan(estate.VSPC.Plans, demoPlan.InstanceUID, approvalPlan.InstanceUID, sentinel.InstanceUID)
	if !ok {
		t.Fatal("the demo estate has no fourth Ready VSPC plan to fail")
	}
	sentinelID := strings.ToLower(sentinel.InstanceUID)
	sentinelBID := strings.ToLower(sentinelB.InstanceUID)
	demoPlanID := strings.ToLower(demoPlan.InstanceUID)
	t.Logf("demo plan %q (%s); the test fails plan %q (%s) to raise SiteDown{site=a}, plan %q (%s) for SiteDown{site=b}",
		demoPlan.Name, demoPlanID, sentinel.Name, sentinelID, sentinelB.Name, sentinelBID)
	tool := buildTool(t)

	humans := newNotificationSink(t)

	// Alertmanager, from alertmanager-example.yml.
	amAddr := proctest.FreeAddr(t)
	amDir := t.TempDir()
	amConfig := writeAlertmanagerConfig(t, amDir, e.url+"/webhook", filepath.Join(e.env.Dir, "webhook.token"), humans.url)
	am := proctest.Start(t, "alertmanager", alertmanagerBin,
		"--config.file="+amConfig,
		"--storage.path="+filepath.Join(amDir, "data"),
		"--web.listen-address="+amAddr,
		"--cluster.listen-address=",
		"--log.level=debug",
	)

	// Prometheus with the example rules and the test's SiteDown rule.
	promAddr := proctest.FreeAddr(t)
	promDir := t.TempDir()
	promConfig := writePrometheusConfig(t, promDir, strings.TrimPrefix(e.url, "http://"), amAddr, sentinelID, sentinelBID)
	prom := proctest.Start(t, "prometheus", prometheusBin,
		"--config.file="+promConfig,
		"--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+promAddr,
		// An alert evaluated before Prometheus knows its Alertmanager (the
		// always-firing VeeamTriggerWatchdog) is sent again only after the
		// resend delay, a minute by default.
		"--rules.alert.resend-delay=1s",
	)
	procs := []*proctest.Process{e.proc, am, prom}
	eventually(t, waitFor, "alertmanager ready", httpOK("http://"+amAddr+"/-/ready"), procs...)
	eventually(t, waitFor, "prometheus ready", httpOK("http://"+promAddr+"/-/ready"), procs...)
	pc := promClient{base: "http://" + promAddr}

	// veeam_up is 1 for every target of the demo config.
	eventually(t, waitFor, "veeam_up == 1 for every target", func() (bool, string) {
		s, err := pc.query(`veeam_up{job="` + exporterJob + `"} == 1`)
		if err != nil {
			return false, err.Error()
		}
		got := labelValuesOf(s, "target")
		return equalStrings(got, []string{emTarget, vbrTarget, vspcTarget}), fmt.Sprintf("targets up: %v", got)
	}, procs...)
	// The /probe job reads the VSPC target alone.
	eventually(t, waitFor, "veeam_up == 1 for the VSPC target alone through /probe", func() (bool, string) {
		s, err := pc.query(`veeam_up{job="` + probeJob + `"} == 1`)
		if err != nil {
			return false, err.Error()
		}
		got := labelValuesOf(s, "target")
		return equalStrings(got, []string{vspcTarget}), fmt.Sprintf("targets up through /probe: %v", got)
	}, procs...)

	// The plan, object and replica metrics match the simulator's truth.
	checkEstate(t, pc, estate, procs)

	// Nothing has asked for a failover yet.
	if n := sim.VSPCPlanStarts(demoPlan.InstanceUID); n != 0 {
		t.Fatalf("demo plan started %d times before any alert", n)
	}
	if a, err := findAlert(pc, "SiteDown", ""); err != nil || a != nil {
		t.Fatalf("SiteDown before the plan failed: %+v %v", a, err)
	}

	// A plan fails: the example rule VeeamFailoverPlanFailed fires, and so does
	// the test's SiteDown rule, which is routed to the trigger.
	if err := sim.SetVSPCPlanStatus(sentinel.InstanceUID, "Failed"); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, "VeeamFailoverPlanFailed fires for the failed plan", alertFiring(pc, "VeeamFailoverPlanFailed", sentinelID), procs...)
	eventually(t, waitFor, "SiteDown fires", alertFiring(pc, "SiteDown", sentinelID), procs...)
	eventually(t, waitFor, "Alertmanager holds SiteDown", func() (bool, string) {
		b, err := getBody(t.Context(), "http://"+amAddr+"/api/v2/alerts?filter="+`alertname%3D%22SiteDown%22`)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(b), `"SiteDown"`), string(b)
	}, procs...)

	// Alertmanager → /webhook → the trigger starts the demo plan, once.
	eventually(t, waitFor, "the trigger starts the demo plan in the simulator", func() (bool, string) {
		n := sim.VSPCPlanStarts(demoPlan.InstanceUID)
		return n >= 1, fmt.Sprintf("demo plan starts: %d", n)
	}, procs...)
	eventually(t, waitFor, "Prometheus sees the action's success outcome", func() (bool, string) {
		v, ok, msg := pc.scalarOf(`sum(veeam_trigger_action_outcomes_total{rule="` + siteDownRule + `", outcome="success"})`)
		return ok && v > 0, fmt.Sprintf("value %v %s", v, msg)
	}, procs...)

	// People get the Veeam alerts, the failover request itself (the failover
	// route continues to them) and the news that a failover was executed.
	for _, name := range []string{"VeeamFailoverPlanFailed", "SiteDown", "VeeamAutomaticFailoverExecuted"} {
		eventually(t, waitFor, "the humans receiver gets "+name, func() (bool, string) {
			return humans.received(name, "firing"), fmt.Sprintf("received: %v", humans.names())
		}, procs...)
	}

	// The heartbeat of the alert path reaches the trigger (heartbeat_matchers).
	eventually(t, waitFor, "the trigger records the VeeamTriggerWatchdog heartbeat", func() (bool, string) {
		v, ok, msg := pc.scalarOf(`max(veeam_trigger_last_heartbeat_timestamp_seconds)`)
		return ok && v > float64(start.Unix()-1), fmt.Sprintf("value %v %s", v, msg)
	}, procs...)

	// Site B asks a person first: the rule site-b-down-approval waits, the
	// alert VeeamFailoverAwaitingApproval pages the humans, the command line
	// approves, and the plan starts once.
	if err := sim.SetVSPCPlanStatus(sentinelB.InstanceUID, "Failed"); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, "the humans receiver gets VeeamFailoverAwaitingApproval", func() (bool, string) {
		return humans.received("VeeamFailoverAwaitingApproval", "firing"), fmt.Sprintf("received: %v", humans.names())
	}, procs...)
	if n := sim.VSPCPlanStarts(approvalPlan.InstanceUID); n != 0 {
		t.Fatalf("the approval plan started %d times before anyone approved", n)
	}
	var approvals []struct{ ID, Rule string }
	runTool(t, tool, &approvals, "--exporter.url="+e.url, "approvals", "-o", "json")
	if len(approvals) != 1 || approvals[0].Rule != demo.ApprovalRule {
		t.Fatalf("approvals waiting: %+v, want one of rule %s", approvals, demo.ApprovalRule)
	}
	runTool(t, tool, nil, "--exporter.url="+e.url, "--approver-token-file="+filepath.Join(e.env.Dir, "approver.token"),
		"approve", approvals[0].ID, "--by=e2e", "--reason=site B confirmed down")
	eventually(t, waitFor, "the approved plan starts", func() (bool, string) {
		n := sim.VSPCPlanStarts(approvalPlan.InstanceUID)
		return n >= 1, fmt.Sprintf("approval plan starts: %d", n)
	}, procs...)
	eventually(t, waitFor, "Prometheus sees no approval waiting", promValue(pc, `sum(veeam_trigger_approvals_pending)`, 0), procs...)
	if err := sim.SetVSPCPlanStatus(sentinelB.InstanceUID, "Ready"); err != nil {
		t.Fatal(err)
	}

	// The incident ends: SiteDown resolves and Alertmanager tells the trigger
	// (send_resolved), which must not act on it.
	if err := sim.SetVSPCPlanStatus(sentinel.InstanceUID, "Ready"); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, "the trigger receives the resolved SiteDown", func() (bool, string) {
		v, ok, msg := pc.scalarOf(`sum(veeam_trigger_alerts_received_total{status="resolved"})`)
		return ok && v > 0, fmt.Sprintf("resolved alerts received %v %s", v, msg)
	}, procs...)
	eventually(t, waitFor, "the resolved guard stops the resolved SiteDown", func() (bool, string) {
		v, ok, msg := pc.scalarOf(`sum(veeam_trigger_blocked_total{rule="` + siteDownRule + `", guard="resolved"})`)
		return ok && v > 0, fmt.Sprintf("blocked by resolved %v %s", v, msg)
	}, procs...)
	if n := sim.VSPCPlanStarts(demoPlan.InstanceUID); n != 1 {
		t.Errorf("demo plan started %d times, want exactly 1", n)
	}
	if n := sim.VSPCPlanStarts(approvalPlan.InstanceUID); n != 1 {
		t.Errorf("approval plan started %d times, want exactly 1", n)
	}
	// Instant queries, retried only to ride out a scrape that timed out (its
	// series are stale for a moment).
	eventually(t, 10*time.Second, "two calls made in all", promValue(pc, `sum(veeam_trigger_actions_total)`, 2), procs...)
	eventually(t, 10*time.Second, "no alert without a rule reached the webhook",
		promValue(pc, `sum(veeam_trigger_blocked_total{guard="match"})`, 0), procs...)

	checkDashboardQueries(t, pc, procs)
	checkRules(t, pc)
	checkProbeJob(t, pc, procs)
	if v, ok, _ := pc.scalarOf(`max(max_over_time(scrape_duration_seconds{job="` + exporterJob + `"}[10m]))`); ok {
		t.Logf("slowest scrape of the exporter: %.3fs (timeout 1s)", v)
	}
	t.Logf("end-to-end chain checked in %s", time.Since(start).Round(time.Second))
}

// promValue is a check for eventually: expr has one sample, of value want.
func promValue(pc promClient, expr string, want float64) func() (bool, string) {
	return func() (bool, string) {
		v, ok, msg := pc.scalarOf(expr)
		return ok && v == want, fmt.Sprintf("%s = %v, want %v %s", expr, v, want, msg)
	}
}

// pickSentinelPlan chooses a Ready VSPC plan other than the demo plan.
func pickSentinelPlan(plans []simulator.VSPCPlan, exclude ...string) (simulator.VSPCPlan, bool) {
	for _, p := range plans {
		if p.Status == "Ready" && !slices.ContainsFunc(exclude, func(uid string) bool { return strings.EqualFold(p.InstanceUID, uid) }) {
			return p, true
		}
	}
	return simulator.VSPCPlan{}, false
}

// checkEstate compares the plan, object and replica metrics that Prometheus
// scraped from /metrics with the simulator's estate.
func checkEstate(t *testing.T, pc promClient, est simulator.Estate, procs []*proctest.Process) {
	t.Helper()
	statuses := map[string]float64{}
	objects := 0
	for _, p := range est.VSPC.Plans {
		statuses[p.Status]++
		objects += p.ObjectsCount
	}
	emVMs := 0
	for _, p := range est.EM.Plans {
		emVMs += len(p.VMs)
	}
	replicaStates := map[string]float64{}
	for _, r := range est.VBR.Replicas {
		replicaStates[r.State]++
	}
	checks := []struct {
		what, expr, by string
		want           map[string]float64
	}{
		{"VSPC plans by status", `count by (status) (veeam_failover_plan_status{job="` + exporterJob + `", target="` + vspcTarget + `"} == 1)`, "status", statuses},
		{"plans per target", `count by (target) (veeam_failover_plan_info{job="` + exporterJob + `"})`, "target",
			map[string]float64{vspcTarget: float64(len(est.VSPC.Plans)), emTarget: float64(len(est.EM.Plans))}},
		{"VMs in plans per target", `sum by (target) (veeam_failover_plan_objects{job="` + exporterJob + `"})`, "target",
			map[string]float64{vspcTarget: float64(objects), emTarget: float64(emVMs)}},
		{"VSPC VMs with an object series", `count by (target) (veeam_failover_plan_object_info{job="` + exporterJob + `", target="` + vspcTarget + `"})`, "target",
			map[string]float64{vspcTarget: float64(len(est.VSPC.Objects))}},
		{"replicas by state", `count by (state) (veeam_replica_state{job="` + exporterJob + `", target="` + vbrTarget + `"} == 1)`, "state", replicaStates},
	}
	for _, c := range checks {
		eventually(t, waitFor, c.what+" match the simulator", func() (bool, string) {
			s, err := pc.query(c.expr)
			if err != nil {
				return false, err.Error()
			}
			got := map[string]float64{}
			for _, x := range s {
				got[x.Metric[c.by]] = x.Value
			}
			return fmt.Sprint(got) == fmt.Sprint(c.want), fmt.Sprintf("%s: got %v, want %v", c.expr, got, c.want)
		}, procs...)
	}
}

// findAlert returns the Prometheus alert with this name (and plan_id, when
// given), pending or firing.
func findAlert(pc promClient, name, planID string) (*promAlert, error) {
	alerts, err := pc.alerts()
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	for _, a := range alerts {
		if a.Labels["alertname"] == name && (planID == "" || a.Labels["plan_id"] == planID) {
			return &a, nil
		}
	}
	return nil, nil
}

func alertFiring(pc promClient, name, planID string) func() (bool, string) {
	return func() (bool, string) {
		a, err := findAlert(pc, name, planID)
		if err != nil {
			return false, err.Error()
		}
		if a == nil {
			return false, "no such alert"
		}
		return a.State == "firing", "state " + a.State
	}
}

// checkDashboardQueries runs every panel query of every dashboard, with the
// variables substituted, and wants data from each; and every query variable
// must offer values.
func checkDashboardQueries(t *testing.T, pc promClient, procs []*proctest.Process) {
	t.Helper()
	dashboards := loadDashboards(t)
	var pending []panelQuery
	for _, d := range dashboards {
		pending = append(pending, d.queries()...)
	}
	total := len(pending)
	// A scrape that times out briefly leaves stale series; retry what returned
	// nothing for a little while before calling it a failure.
	failures := map[string]string{}
	eventually(t, waitFor, "every dashboard query returns data", func() (bool, string) {
		var still []panelQuery
		for _, q := range pending {
			s, err := pc.query(substitute(q.expr))
			switch {
			case err != nil:
				failures[q.where] = err.Error()
			case len(s) == 0:
				failures[q.where] = "no data: " + substitute(q.expr)
			default:
				delete(failures, q.where)
				continue
			}
			still = append(still, q)
		}
		pending = still
		return len(pending) == 0, fmt.Sprintf("%d of %d queries without data:\n%s", len(pending), total, joinMap(failures))
	}, procs...)

	defRE := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, d := range dashboards {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := defRE.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("%s: variable %s: definition %q is not label_values(metric, label)", d.file, v.Name, v.Definition)
				continue
			}
			vals, err := pc.labelValues(m[2], substitute(m[1]))
			if err != nil || len(vals) == 0 {
				t.Errorf("%s: variable %s (%s) offers no values: %v", d.file, v.Name, v.Definition, err)
			}
		}
	}
	t.Logf("%d dashboard queries returned data", total)
}

// checkRules wants every rule of every loaded rule file to evaluate without
// error, and every rule of the example file loaded.
func checkRules(t *testing.T, pc promClient) {
	t.Helper()
	rules, err := pc.rules()
	if err != nil {
		t.Fatalf("rules: %v", err)
	}
	loaded := map[string]bool{}
	for _, r := range rules {
		loaded[r.Name] = true
		if r.Health != "ok" {
			t.Errorf("rule %s (%s, group %s): health %q, error %q", r.Name, filepath.Base(r.File), r.Group, r.Health, r.LastError)
		}
	}
	b, err := os.ReadFile(exampleRules)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(string(b), -1) {
		if !loaded[m[1]] {
			t.Errorf("example rule %s is not loaded by Prometheus", m[1])
		}
	}
	t.Logf("%d rules evaluated without error", len(rules))
}

// writePrometheusConfig writes a Prometheus config that scrapes the exporter
// every second, on /metrics and, relabelled as in examples/prometheus.yml, on
// /probe for the VSPC target; evaluates the example rules (with every `for` cut to 0s, so
// that they fire at once) and a test rule that asks for a failover of site A
// when the sentinel plan has status Failed, and sends to Alertmanager.
func writePrometheusConfig(t *testing.T, dir, exporterAddr, amAddr, sentinelID, sentinelBID string) string {
	t.Helper()
	b, err := os.ReadFile(exampleRules)
	if err != nil {
		t.Fatal(err)
	}
	rules := regexp.MustCompile(`(?m)^(\s+)for: *\S+ *$`).ReplaceAll(b, []byte("${1}for: 0s"))
	rulesFile := filepath.Join(dir, "veeam_failover.rules.yml")
	siteDownFile := filepath.Join(dir, "e2e.rules.yml")
	siteDown := fmt.Sprintf(`groups:
  - name: e2e-site-down
    rules:
      - alert: SiteDown
        expr: veeam_failover_plan_status{job=%[1]q, target=%[2]q, plan_id=%[3]q, status="Failed"} == 1
        labels:
          severity: critical
          site: a
          failover: "true"
        annotations:
          summary: Site A is down (end-to-end test).
      - alert: SiteDown
        expr: veeam_failover_plan_status{job=%[1]q, target=%[2]q, plan_id=%[4]q, status="Failed"} == 1
        labels:
          severity: critical
          site: b
          failover: "true"
        annotations:
          summary: Site B is down (end-to-end test).
`, exporterJob, vspcTarget, sentinelID, sentinelBID)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
  - %q
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
scrape_configs:
  - job_name: %[4]q
    static_configs:
      - targets: [%[5]q]
  - job_name: %[6]q
    metrics_path: /probe
    static_configs:
      - targets: [%[7]q]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: %[5]q
`, rulesFile, siteDownFile, amAddr, exporterJob, exporterAddr, probeJob, vspcTarget)
	configFile := filepath.Join(dir, "prometheus.yml")
	for name, content := range map[string][]byte{rulesFile: rules, siteDownFile: []byte(siteDown), configFile: []byte(config)} {
		if err := os.WriteFile(name, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return configFile
}

// writeAlertmanagerConfig derives the test's Alertmanager config from
// alertmanager-example.yml: the trigger receiver posts to the exporter under
// test with the demo's token file, the humans receiver posts to the test's
// sink, and the group timers are cut to a second.
func writeAlertmanagerConfig(t *testing.T, dir, webhookURL, tokenFile, humansURL string) string {
	t.Helper()
	b, err := os.ReadFile(exampleAMCfg)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", exampleAMCfg, err)
	}
	route := asMap(t, cfg["route"], "route")
	fast := func(r map[string]any) {
		r["group_wait"] = "1s"
		r["group_interval"] = "1s"
	}
	fast(route)
	trigger := false
	for _, r := range asSlice(t, route["routes"], "route.routes") {
		child := asMap(t, r, "route.routes[]")
		fast(child)
		// The test runs at any hour, maintenance windows included.
		delete(child, "mute_time_intervals")
		if child["receiver"] == "veeam-failover-trigger" {
			trigger = true
		}
	}
	if !trigger {
		t.Fatal("alertmanager-example.yml: no child route to receiver veeam-failover-trigger")
	}
	found := map[string]bool{}
	for _, r := range asSlice(t, cfg["receivers"], "receivers") {
		rcv := asMap(t, r, "receivers[]")
		switch name := rcv["name"]; name {
		case "veeam-failover-trigger":
			hooks := asSlice(t, rcv["webhook_configs"], "veeam-failover-trigger.webhook_configs")
			if len(hooks) != 1 {
				t.Fatalf("receiver veeam-failover-trigger: %d webhook_configs, want 1", len(hooks))
			}
			hook := asMap(t, hooks[0], "webhook_configs[0]")
			hook["url"] = webhookURL
			auth := asMap(t, asMap(t, hook["http_config"], "http_config")["authorization"], "http_config.authorization")
			auth["credentials_file"] = tokenFile
			found["veeam-failover-trigger"] = true
		case "humans":
			for k := range rcv {
				if strings.HasSuffix(k, "_configs") {
					delete(rcv, k)
				}
			}
			rcv["webhook_configs"] = []any{map[string]any{"url": humansURL, "send_resolved": true}}
			found["humans"] = true
		}
	}
	if !found["humans"] || !found["veeam-failover-trigger"] {
		t.Fatalf("alertmanager-example.yml: receivers found %v, want humans and veeam-failover-trigger", found)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func asMap(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("alertmanager-example.yml: %s is %T, want a mapping", what, v)
	}
	return m
}

func asSlice(t *testing.T, v any, what string) []any {
	t.Helper()
	s, ok := v.([]any)
	if !ok {
		t.Fatalf("alertmanager-example.yml: %s is %T, want a list", what, v)
	}
	return s
}

// notificationSink is the "humans" receiver: it records the alerts
// Alertmanager sends it.
type notificationSink struct {
	url  string
	mu   sync.Mutex
	seen map[string]bool // alertname + "/" + status
}

func newNotificationSink(t *testing.T) *notificationSink {
	t.Helper()
	s := &notificationSink{seen: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n struct {
			Alerts []struct {
				Status string            `json:"status"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		for _, a := range n.Alerts {
			s.seen[a.Labels["alertname"]+"/"+a.Status] = true
		}
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// received reports whether an alert of this name (and status, when given)
// arrived.
func (s *notificationSink) received(name, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status != "" {
		return s.seen[name+"/"+status]
	}
	return s.seen[name+"/firing"] || s.seen[name+"/resolved"]
}

func (s *notificationSink) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.seen)
}

func labelValuesOf(s []promSample, label string) []string {
	out := make([]string, 0, len(s))
	for _, x := range s {
		out = append(out, x.Metric[label])
	}
	sort.Strings(out)
	return out
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

func joinMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, "  %s: %s\n", k, m[k])
	}
	return b.String()
}

// ownMetricsRE matches the exporter's own families (its trigger, its API
// clients, its config and process), which /metrics serves and /probe does not.
var ownMetricsRE = regexp.MustCompile(`\b(?:veeam_(?:trigger|api|exporter|failover_exporter)_|process_|go_|promhttp_)`)

// checkProbeJob runs, for the VSPC target, every dashboard query about a
// Veeam target's series and every recording rule on the /probe job, and wants
// from each the series (less job and instance) and values that it gives on
// the /metrics job: the dashboards and the rules serve a provider who scrapes
// each Veeam server through /probe as they serve /metrics.
func checkProbeJob(t *testing.T, pc promClient, procs []*proctest.Process) {
	t.Helper()
	type check struct{ where, metricsExpr, probeExpr string }
	var checks []check
	forJob := func(expr, job string) string {
		expr = strings.ReplaceAll(expr, "$job", job)
		return substitute(strings.ReplaceAll(expr, "$target", vspcTarget))
	}
	for _, d := range loadDashboards(t) {
		for _, q := range d.queries() {
			if !strings.Contains(q.expr, "$target") || ownMetricsRE.MatchString(q.expr) {
				continue
			}
			checks = append(checks, check{q.where, forJob(q.expr, exporterJob), forJob(q.expr, probeJob)})
		}
	}
	queries := len(checks)
	rules, err := pc.rules()
	if err != nil {
		t.Fatalf("rules: %v", err)
	}
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Type != "recording" || seen[r.Name] {
			continue
		}
		seen[r.Name] = true
		sel := func(job string) string {
			return fmt.Sprintf(`{__name__=%q, job=%q, target=%q}`, r.Name, job, vspcTarget)
		}
		checks = append(checks, check{"recording rule " + r.Name, sel(exporterJob), sel(probeJob)})
	}
	if queries == 0 || len(seen) == 0 {
		t.Fatalf("%d dashboard queries and %d recording rules to run on the /probe job, want some of each", queries, len(seen))
	}

	var withData, empty []string
	eventually(t, waitFor, "the /probe job answers every dashboard query and recording rule as /metrics does", func() (bool, string) {
		withData, empty = nil, nil
		var diffs []string
		for _, c := range checks {
			want, err := pc.query(c.metricsExpr)
			if err != nil {
				return false, err.Error()
			}
			got, err := pc.query(c.probeExpr)
			if err != nil {
				return false, err.Error()
			}
			// A duration is the exporter's own timing of each read: the
			// series must match, their values not.
			if d := diffSeries(want, got, !strings.Contains(c.probeExpr, "_duration_seconds")); d != "" {
				diffs = append(diffs, fmt.Sprintf("  %s: %s\n    %s", c.where, d, c.probeExpr))
				continue
			}
			if len(want) == 0 {
				empty = append(empty, c.where)
			} else {
				withData = append(withData, c.where)
			}
		}
		return len(diffs) == 0, fmt.Sprintf("%d of %d differ between the jobs:\n%s", len(diffs), len(checks), strings.Join(diffs, "\n"))
	}, procs...)
	// The comparison must not pass on empty answers alone: most dashboard
	// queries and the per-plan and per-target rules have VSPC data.
	if len(withData) < len(checks)/2 {
		t.Errorf("only %d of %d queries and rules have data for %s; without data:\n  %s",
			len(withData), len(checks), vspcTarget, strings.Join(empty, "\n  "))
	}
	t.Logf("/probe job %s: %d dashboard queries and %d recording rules give the /metrics job's series; %d have no data for a VSPC target: %s",
		probeJob, queries, len(seen), len(empty), strings.Join(empty, "; "))
}

// diffSeries compares two query answers less their job and instance labels:
// the same label sets and, with values, values within 2% (the two jobs are
// scraped at slightly different times, and ages move with time()). It
// returns "" when they agree.
func diffSeries(want, got []promSample, values bool) string {
	key := func(m map[string]string) string {
		var parts []string
		for _, k := range sortedKeys(m) {
			if k != "job" && k != "instance" {
				parts = append(parts, k+"="+strconvQuote(m[k]))
			}
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	index := func(s []promSample) map[string]float64 {
		out := make(map[string]float64, len(s))
		for _, x := range s {
			out[key(x.Metric)] = x.Value
		}
		return out
	}
	w, g := index(want), index(got)
	var diffs []string
	for _, k := range sortedKeys(w) {
		gv, ok := g[k]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+k)
		case values && math.Abs(gv-w[k]) > 0.02*math.Max(math.Abs(gv), math.Abs(w[k])):
			diffs = append(diffs, fmt.Sprintf("%s = %v, /metrics job %v", k, gv, w[k]))
		}
	}
	for _, k := range sortedKeys(g) {
		if _, ok := w[k]; !ok {
			diffs = append(diffs, "extra "+k)
		}
	}
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return strings.Join(diffs, "; ")
}
