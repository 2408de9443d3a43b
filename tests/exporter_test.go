package tests

import (
	"bytes"
	"context"
	"fmt"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/demo"
	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
)

// The demo's target names and the rule that acts on its demo plan (demo.go).
const (
	vspcTarget   = "vspc-demo"
	emTarget     = "em-demo"
	vbrTarget    = "vbr-demo"
	siteDownRule = "site-a-down"
)

// exporter is the built binary running on a demo estate.
type exporter struct {
	env  *demo.Env
	proc *proctest.Process
	url  string // http://127.0.0.1:port
}

// startExporter starts the simulator in this process, writes the demo config
// (trigger armed against the simulator) and runs the binary on it.
func startExporter(t *testing.T, bin string) *exporter {
	t.Helper()
	env, err := demo.Start(demo.Options{Dir: t.TempDir(), ActionTime: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	t.Cleanup(func() { _ = env.Close() })
	addr := proctest.FreeAddr(t)
	e := &exporter{env: env, url: "http://" + addr}
	e.proc = proctest.Start(t, "exporter", bin,
		"--config.file="+env.ConfigFile,
		"--web.listen-address="+addr,
		"--log.level=debug",
	)
	eventually(t, 30*time.Second, "exporter ready", httpOK(e.url+"/-/ready"), e.proc)
	return e
}

// scrape reads the exporter's /metrics.
func (e *exporter) scrape() (map[string]string, []metricLine, error) {
	b, err := getBody(context.Background(), e.url+"/metrics")
	if err != nil {
		return nil, nil, err
	}
	return parseExposition(b)
}

// postWebhook sends an Alertmanager (version 4) notification with the demo's
// bearer token and returns the status code.
func (e *exporter) postWebhook(groupKey string, groupLabels map[string]string, alerts ...amtest.Alert) (int, string, error) {
	p := amtest.Notification(groupKey, alerts...)
	p["groupLabels"] = groupLabels
	body := p.JSON()
	req, err := http.NewRequest(http.MethodPost, e.url+"/webhook", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+demo.WebhookToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestMetricNamesExist checks that every exporter metric name used by the
// dashboards, the rule files and the README's examples is in the exporter's
// /metrics output: that of the demo estate, united with that after the
// trigger made a call (some families only appear after one). Only the binary
// and the simulator are needed, not Prometheus.
func TestMetricNamesExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the exporter; skipped in -short mode")
	}
	used := usedMetricNames(t)
	if len(used) == 0 {
		t.Fatal("no metric names found in dashboards, rules and README")
	}
	e := startExporter(t, proctest.BuildExporter(t))

	exported := map[string]bool{}
	var last []byte
	collect := func() []metricLine {
		t.Helper()
		b, err := getBody(context.Background(), e.url+"/metrics")
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		last = b
		fams, samples, err := parseExposition(b)
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		for f := range fams {
			exported[f] = true
		}
		for _, s := range samples {
			exported[s.name] = true
		}
		return samples
	}
	samples := collect()
	if v, ok := sumSamples(samples, "veeam_up"); !ok || v != 3 {
		t.Errorf("sum(veeam_up) = %v (present %v), want 3 (one per demo target)", v, ok)
	}

	// One call by the trigger: the demo rule site-a-down starts the demo plan.
	plan := e.env.DemoPlan()
	code, body, err := e.postWebhook(`{}/{failover="true"}:{alertname="SiteDown", site="a"}`,
		map[string]string{"alertname": "SiteDown", "site": "a"},
		amtest.Firing(time.Now().Add(-time.Minute), "alertname", "SiteDown", "site", "a", "failover", "true", "severity", "critical"))
	if err != nil || code/100 != 2 {
		t.Fatalf("POST /webhook: %d %v: %s", code, err, body)
	}
	eventually(t, 30*time.Second, "trigger action succeeded", func() (bool, string) {
		_, s, err := e.scrape()
		if err != nil {
			return false, err.Error()
		}
		v, _ := sumSamples(s, "veeam_trigger_action_outcomes_total", `rule="`+siteDownRule+`"`, `outcome="success"`)
		return v >= 1, fmt.Sprintf("success outcomes %v, plan starts %d", v, e.env.Sim.VSPCPlanStarts(plan.InstanceUID))
	}, e.proc)
	// And one decision waiting for a person: the demo's approval rule.
	code, body, err = e.postWebhook(`{}/{failover="true"}:{alertname="SiteDown", site="b"}`,
		map[string]string{"alertname": "SiteDown", "site": "b"},
		amtest.Firing(time.Now().Add(-time.Minute), "alertname", "SiteDown", "site", "b", "failover", "true", "severity", "critical"))
	if err != nil || code/100 != 2 {
		t.Fatalf("POST /webhook (approval rule): %d %v: %s", code, err, body)
	}
	eventually(t, 30*time.Second, "an approval waits", func() (bool, string) {
		_, s, err := e.scrape()
		if err != nil {
			return false, err.Error()
		}
		v, _ := sumSamples(s, "veeam_trigger_approvals_pending")
		return v >= 1, fmt.Sprintf("approvals pending %v", v)
	}, e.proc)
	collect()

	var missing []string
	for _, n := range sortedKeys(used) {
		if !exported[n] {
			missing = append(missing, fmt.Sprintf("%s (used in %s)", n, strings.Join(used[n], ", ")))
		}
	}
	if len(missing) > 0 {
		t.Errorf("metric names used but not exported by the demo (before and after a trigger action):\n  %s",
			strings.Join(missing, "\n  "))
	}
	t.Logf("%d metric names used, all checked against %d exported names", len(used), len(exported))

	t.Run("promtool check metrics", func(t *testing.T) {
		promtool := lookPrograms(t, []string{"promtool"})[0]
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(last)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics on the exporter's output: %v\n%s", err, out)
		}
	})
}
