package reliability

import (
	"encoding/json"
	"fmt"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// The user and password of testdata/web.yml.
const (
	webUser = "prom"
	webPass = "reliability-web-pass"
)

// TestAccess checks who may talk to the exporter and whom the exporter
// trusts: with basic_auth_users in --web.config.file every endpoint refuses
// missing or wrong credentials and accepts the right ones (and the armed
// trigger needs no bearer token then); TLS to Veeam verifies certificates
// unless told otherwise, and a target with an unknown CA is down with an
// error that names it and the certificate.
func TestAccess(t *testing.T) {
	sim := startSim(t, smallEstate(41))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ca.pem"), string(sim.CACertPEM()))
	writeFile(t, filepath.Join(dir, "password"), simulator.DefaultPassword+"\n")
	cfg := filepath.Join(dir, "config.yml")
	writeFile(t, cfg, fmt.Sprintf(`targets:
  - {name: vspc-ca, type: vspc, url: %[1]s, username: monitor, password_file: password, tls_config: {ca_file: ca.pem}}
  - {name: vspc-noca, type: vspc, url: %[1]s, username: monitor, password_file: password}
  - {name: em-noca, type: em, url: %[2]s, username: monitor, password_file: password}
  - {name: vbr-noca, type: vbr, url: %[3]s, username: monitor, password_file: password, tls_config: {insecure_skip_verify: false}}
trigger:
  dry_run: false
  state_file: state.json
  audit_log: audit.jsonl
  rules:
    - {name: never, matchers: ['alertname="NeverFires"'], action: {type: vspc_plan_start, target: vspc-ca, plan: %[4]q}}
`, sim.VSPCURL(), sim.EMURL(), sim.VBRURL(), sim.Estate().VSPC.Plans[0].Name))
	webCfg, err := filepath.Abs("testdata/web.yml")
	if err != nil {
		t.Fatal(err)
	}

	addr := proctest.FreeAddr(t)
	base := "http://" + addr
	p := startExporter(t, "--config.file="+cfg, "--web.config.file="+webCfg, "--log.level=debug", "--web.listen-address="+addr)
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	auth := func(user, pass string) http.Header {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(user, pass)
		return r.Header
	}
	waitReady(t, p, hc, base, auth(webUser, webPass))

	payload := notification("{}:{alertname=\"Other\"}", nil, amtest.Firing(time.Now().Add(-time.Minute), "alertname", "Other"))
	endpoints := []struct {
		method, path string
		body         []byte
	}{
		{http.MethodGet, "/metrics", nil},
		{http.MethodGet, "/trigger", nil},
		{http.MethodPost, "/webhook", payload},
		{http.MethodGet, "/", nil},
		{http.MethodPost, "/-/reload", nil},
	}
	creds := []struct {
		name string
		h    http.Header
		want int
	}{
		{"no credentials", http.Header{}, http.StatusUnauthorized},
		{"wrong password", auth(webUser, webPass+"x"), http.StatusUnauthorized},
		{"wrong user", auth("admin", webPass), http.StatusUnauthorized},
		{"bearer instead of basic", http.Header{"Authorization": {"Bearer " + webPass}}, http.StatusUnauthorized},
		{"right credentials", auth(webUser, webPass), http.StatusOK},
	}
	var metrics []byte
	for _, ep := range endpoints {
		for _, c := range creds {
			h := c.h.Clone()
			h.Set("Content-Type", "application/json")
			h.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
			code, body, err := httpDo(hc, ep.method, base+ep.path, h, ep.body)
			if err != nil {
				t.Fatalf("%s %s: %v", ep.method, ep.path, err)
			}
			if code != c.want {
				t.Errorf("%s %s with %s: %d, want %d", ep.method, ep.path, c.name, code, c.want)
			}
			if code == http.StatusOK && ep.path == "/metrics" {
				metrics = body
			}
			if code == http.StatusOK && ep.path == "/trigger" {
				var st struct {
					Armed       bool     `json:"armed"`
					WebhookAuth []string `json:"webhook_auth"`
				}
				if err := json.Unmarshal(body, &st); err != nil || !st.Armed || !slices.Contains(st.WebhookAuth, "basic_auth") {
					t.Errorf("/trigger: armed %v, webhook_auth %v (%v); want armed behind basic_auth", st.Armed, st.WebhookAuth, err)
				}
			}
		}
	}

	up := values(parseMetrics(t, metrics), "veeam_up", "target")
	want := map[string]float64{"vspc-ca": 1, "vspc-noca": 0, "em-noca": 0, "vbr-noca": 0}
	for target, w := range want {
		if got, ok := up[target]; !ok || got != w {
			t.Errorf("veeam_up{target=%q} = %v (present %v), want %v", target, got, ok, w)
		}
	}
	p.Stop()
	logs := p.Logs()
	for _, target := range []string{"vspc-noca", "em-noca", "vbr-noca"} {
		found := false
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "target="+target) && strings.Contains(line, "certificate") {
				found = true
				t.Logf("%s: %s", target, line)
				break
			}
		}
		if !found {
			t.Errorf("no log line names target %s and the certificate problem", target)
		}
		// An untrusted certificate does not become trusted by asking again.
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "retrying request") && strings.Contains(line, "target="+target) {
				t.Errorf("a certificate error was retried: %s", line)
				break
			}
		}
	}
}

// TestArmedWithoutWebhookAuthRefusesToStart: dry_run false with neither a
// bearer token nor basic auth in front of /webhook is refused by
// --config.check and by the exporter itself, with a message that says why.
func TestArmedWithoutWebhookAuthRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "password"), "pw\n")
	cfg := filepath.Join(dir, "config.yml")
	writeFile(t, cfg, `targets:
  - {name: vspc, type: vspc, url: "https://127.0.0.1:1", username: monitor, password_file: password}
trigger:
  dry_run: false
  state_file: state.json
  rules:
    - {name: r, matchers: ['alertname="SiteDown"'], action: {type: vspc_plan_start, target: vspc, plan: "p"}}
`)
	explains := func(what, out string) {
		t.Helper()
		low := strings.ToLower(out)
		if !strings.Contains(low, "webhook") || !strings.Contains(low, "authentication") || !strings.Contains(low, "dry_run") {
			t.Errorf("%s does not explain the refusal (want dry_run, webhook, authentication):\n%s", what, out)
		}
	}
	out, err := exec.Command(proctest.SharedExporter(t), "--config.check", "--config.file="+cfg).CombinedOutput()
	if err == nil {
		t.Errorf("--config.check accepted an armed trigger without webhook authentication:\n%s", out)
	}
	explains("--config.check", string(out))

	p := startExporter(t, "--config.file="+cfg, "--web.listen-address="+proctest.FreeAddr(t))
	if code := p.Wait(t, 20*time.Second); code == 0 {
		t.Error("the exporter exited 0")
	}
	explains("the exporter's log", p.Logs())

	// The explicit opt-out starts.
	writeFile(t, cfg, strings.Replace(string(readFileOrEmpty(t, cfg)), "dry_run: false", "dry_run: false\n  allow_unauthenticated_webhook: true", 1))
	addr := proctest.FreeAddr(t)
	q := startExporter(t, "--config.file="+cfg, "--web.listen-address="+addr)
	waitReady(t, q, &http.Client{Timeout: 5 * time.Second}, "http://"+addr, nil)
}
