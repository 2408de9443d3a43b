package reliability

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// Sentinels: secrets that must never show anywhere.
const (
	sentinelPass      = "SENTINEL-pass-1f3a5b"
	sentinelWrongPass = "SENTINEL-wrong-4d6f8e"
	sentinelKey       = "SENTINEL-key-9c2e7a"
	sentinelToken     = "SENTINEL-token-0b7c3d"
	sentinelInline    = "SENTINEL-inline-77aa01"
	sentinelTypo      = "SENTINEL-typo-55bb02"
	sentinelURL       = "SENTINEL-url-33cc03"
	sentinelInlineKey = "SENTINEL-inlinekey-11dd04"
)

// vbrJWTHeader starts every token the VBR simulator issues (base64url of
// {"alg":"RS512","typ":"JWT"}).
var vbrJWTHeader = regexp.MustCompile(`eyJhbGciOiJSUzUxMiIsInR5cCI6IkpXVCJ9\.[A-Za-z0-9_-]+`)

// tokenRecorder is a reverse proxy in front of one simulated API that notes
// every credential crossing it: headers both ways and tokens in bodies.
// The simulator's own request log redacts them, so this is how the test
// learns the tokens it must not find anywhere.
type tokenRecorder struct {
	mu   sync.Mutex
	seen map[string]bool
	apis map[string]int
}

func (r *tokenRecorder) add(api, s string) {
	s = strings.TrimSpace(s)
	if len(s) < 8 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen[s] {
		r.seen[s] = true
		r.apis[api]++
	}
}

func (r *tokenRecorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for s := range r.seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (r *tokenRecorder) count(api string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apis[api]
}

func (r *tokenRecorder) header(api string, h http.Header) {
	for _, v := range h.Values("Authorization") {
		r.add(api, v)
		if _, cred, ok := strings.Cut(v, " "); ok {
			r.add(api, cred)
		}
	}
	for _, v := range h.Values("X-RestSvcSessionId") {
		r.add(api, v)
	}
	for _, v := range h.Values("Set-Cookie") {
		if _, val, ok := strings.Cut(v, "="); ok {
			val, _, _ = strings.Cut(val, ";")
			r.add(api, val)
		}
	}
}

// proxy starts the recording proxy for one API (plain HTTP in front of the
// simulator's HTTPS) and returns its URL.
func (r *tokenRecorder) proxy(t *testing.T, api simulator.API, backend string, ca []byte) string {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			r.header(string(api), pr.In.Header)
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		ModifyResponse: func(resp *http.Response) error {
			r.header(string(api), resp.Header)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(b))
			var tok map[string]any
			if json.Unmarshal(b, &tok) == nil {
				for _, k := range []string{"access_token", "refresh_token"} {
					if s, ok := tok[k].(string); ok {
						r.add(string(api), s)
					}
				}
			}
			return nil
		},
		ErrorLog: nil,
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestSecretsNeverShow runs the binary at debug level with sentinel secrets
// in every secret file and greps everything it produces — /metrics,
// /trigger, the landing page, webhook answers (good, refused and bad), its
// logs, --config.check of a good and a bad config, the audit log and the
// state file — for the sentinels and for every token the simulators issued.
func TestSecretsNeverShow(t *testing.T) {
	o := smallEstate(31)
	o.Password, o.VSPCAPIKey = sentinelPass, sentinelKey
	o.ActionDuration = 500 * time.Millisecond
	sim := startSim(t, o)
	rec := &tokenRecorder{seen: map[string]bool{}, apis: map[string]int{}}
	proxies := map[simulator.API]string{}
	for _, api := range apis {
		proxies[api] = rec.proxy(t, api, simURL(sim, api), sim.CACertPEM())
	}
	est := sim.Estate()
	var ready []string
	for _, p := range est.VSPC.Plans {
		if p.Status == "Ready" {
			ready = append(ready, p.Name)
		}
	}
	if len(ready) < 2 {
		t.Fatalf("want 2 Ready plans, have %d", len(ready))
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "vspc.key"), sentinelKey+"\n")
	writeFile(t, filepath.Join(dir, "password"), sentinelPass+"\n")
	writeFile(t, filepath.Join(dir, "wrong.password"), sentinelWrongPass+"\n")
	writeFile(t, filepath.Join(dir, "webhook.token"), sentinelToken+"\n")
	targets := fmt.Sprintf(`targets:
  - {name: vspc-key, type: vspc, url: %[1]s, api_key_file: vspc.key}
  - {name: vspc-pass, type: vspc, url: %[1]s, username: monitor, password_file: password}
  - {name: em, type: em, url: %[2]s, username: monitor, password_file: password}
  - {name: vbr, type: vbr, url: %[3]s, username: monitor, password_file: password}
  - {name: vspc-bad, type: vspc, url: %[1]s, username: monitor, password_file: wrong.password}
  - {name: em-bad, type: em, url: %[2]s, username: monitor, password_file: wrong.password}
  - {name: vbr-bad, type: vbr, url: %[3]s, username: monitor, password_file: wrong.password}
`, proxies[simulator.APIVSPC], proxies[simulator.APIEM], proxies[simulator.APIVBR])
	cfgText := targets + fmt.Sprintf(`trigger:
  dry_run: false
  webhook_bearer_token_file: webhook.token
  state_file: state.json
  audit_log: audit.jsonl
  max_concurrent: 4
  rate_limit: {actions: 10, per: 1h}
  rules:
    - {name: vspc-site, matchers: ['alertname="SiteDown"'], cooldown: 1h, action: {type: vspc_plan_start, target: vspc-key, plan: %[1]q}}
    - {name: em-site, matchers: ['alertname="SiteDown"'], cooldown: 1h, action: {type: em_plan_start, target: em, plan: %[2]q}}
    - {name: vbr-vm, matchers: ['alertname="SiteDown"'], cooldown: 1h, action: {type: vbr_failover, target: vbr, replicas: [%[3]q]}}
    - {name: bad-site, matchers: ['alertname="SiteDown"'], cooldown: 1h, action: {type: vspc_plan_start, target: vspc-bad, plan: %[4]q}}
    - {name: bad-em, matchers: ['alertname="SiteDown"'], cooldown: 1h, action: {type: em_plan_undo, target: em-bad, plan: %[2]q}}
    - {name: bad-vbr, matchers: ['alertname="SiteDown"'], cooldown: 1h, action: {type: vbr_failover, target: vbr-bad, replicas: [%[3]q]}}
`, ready[0], est.EM.Plans[0].Name, est.VBR.Replicas[0].Name, ready[1])
	cfgFile := filepath.Join(dir, "good.yml")
	writeFile(t, cfgFile, cfgText)
	badFile := filepath.Join(dir, "bad.yml")
	writeFile(t, badFile, fmt.Sprintf(`targets:
  - {name: inline, type: vspc, url: %[1]s, username: monitor, password: %[2]s, password_file: password}
  - {name: typo, type: vbr, url: %[3]s, username: monitor, pasword: %[4]s}
  - {name: in-url, type: em, url: "https://monitor:%[5]s@127.0.0.1:1", username: monitor, password_file: password}
  - {name: em-key, type: em, url: %[6]s, username: monitor, password_file: password, api_key: %[7]s}
  - {name: no-file, type: vbr, url: %[3]s, username: monitor, password_file: missing.password}
trigger:
  dry_run: false
  state_file: state.json
`, proxies[simulator.APIVSPC], sentinelInline, proxies[simulator.APIVBR], sentinelTypo, sentinelURL, proxies[simulator.APIEM], sentinelInlineKey))

	artifacts := map[string]string{}
	bin := proctest.SharedExporter(t)
	check := func(name, file string, wantCode int) {
		cmd := exec.Command(bin, "--config.check", "--config.file="+file, "--log.level=debug")
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d:\n%s", name, code, wantCode, out)
		}
		artifacts[name] = string(out)
	}
	check("--config.check (good config)", cfgFile, 0)
	check("--config.check (bad config)", badFile, 1)
	if !strings.Contains(artifacts["--config.check (bad config)"], "password") {
		t.Errorf("--config.check of the bad config does not explain its problems:\n%s", artifacts["--config.check (bad config)"])
	}
	// The bad config, run for real, must fail the same way.
	bad := startExporter(t, "--config.file="+badFile, "--log.level=debug", "--web.listen-address="+proctest.FreeAddr(t))
	if code := bad.Wait(t, 20*time.Second); code == 0 {
		t.Error("the exporter started with the bad config")
	}
	artifacts["exporter logs (bad config)"] = bad.Logs()

	addr := proctest.FreeAddr(t)
	base := "http://" + addr
	p := startExporter(t, "--config.file="+cfgFile, "--log.level=debug", "--web.listen-address="+addr)
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	waitReady(t, p, hc, base, nil)

	get := func(name, path string) []byte {
		h := http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"10"}}
		code, body, err := httpDo(hc, http.MethodGet, base+path, h, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, code, err)
		}
		artifacts[name] = string(body)
		return body
	}
	post := func(name string, h http.Header, body []byte, want int) {
		code, b, err := httpDo(hc, http.MethodPost, base+"/webhook", h, body)
		if err != nil || code != want {
			t.Errorf("POST /webhook (%s): %d %v, want %d: %s", name, code, err, want, b)
		}
		artifacts["webhook answer: "+name] = string(b)
	}
	get("landing page", "/")
	get("/metrics (first)", "/metrics")
	get("/trigger (before)", "/trigger")
	alert := amtest.Firing(time.Now().Add(-time.Minute), "alertname", "SiteDown", "site", "a")
	good := notification("{}:{alertname=\"SiteDown\"}", nil, alert)
	post("no token", jsonHeader(""), good, http.StatusUnauthorized)
	post("wrong token", jsonHeader("not-the-token"), good, http.StatusUnauthorized)
	post("token as prefix", jsonHeader(sentinelToken+"x"), good, http.StatusUnauthorized)
	post("token in basic auth", http.Header{"Content-Type": {"application/json"},
		"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("am:"+sentinelToken))}}, good, http.StatusUnauthorized)
	post("bad payload", jsonHeader(sentinelToken), []byte(`{"version":"4","alerts":[`), http.StatusBadRequest)
	post("good", jsonHeader(sentinelToken), good, http.StatusOK)
	if a := artifacts["webhook answer: good"]; !strings.Contains(a, `"decided"`) {
		t.Errorf("the good notification decided nothing: %s", a)
	}
	post("repeat", jsonHeader(sentinelToken), good, http.StatusOK)

	eventually(t, 30*time.Second, "actions end", func() string {
		_, body, err := httpDo(hc, http.MethodGet, base+"/trigger", nil, nil)
		if err != nil {
			return err.Error()
		}
		var st struct {
			InFlight []json.RawMessage `json:"in_flight"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			return err.Error()
		}
		if len(st.InFlight) > 0 {
			return fmt.Sprintf("%d actions in flight", len(st.InFlight))
		}
		return ""
	})
	metrics := get("/metrics (after actions)", "/metrics")
	get("/trigger (after)", "/trigger")
	if code, b, err := httpDo(hc, http.MethodPost, base+"/-/reload", nil, nil); err != nil || code != http.StatusOK {
		t.Errorf("reload: %d %v %s", code, err, b)
	}
	get("/metrics (after reload)", "/metrics")
	p.Stop()
	artifacts["exporter logs"] = p.Logs()
	artifacts["audit log"] = string(readFileOrEmpty(t, filepath.Join(dir, "audit.jsonl")))
	artifacts["state file"] = string(readFileOrEmpty(t, filepath.Join(dir, "state.json")))
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*.corrupt-*")); len(leftovers) > 0 {
		t.Errorf("state file copies left: %v", leftovers)
	}

	// The test must have teeth: the sentinels were used, the failing targets
	// failed and said so, and every API issued tokens.
	up := values(parseMetrics(t, metrics), "veeam_up", "target")
	for target, want := range map[string]float64{"vspc-key": 1, "vspc-pass": 1, "em": 1, "vbr": 1, "vspc-bad": 0, "em-bad": 0, "vbr-bad": 0} {
		if up[target] != want {
			t.Errorf("veeam_up{target=%q} = %v, want %v", target, up[target], want)
		}
	}
	for _, target := range []string{"vspc-bad", "em-bad", "vbr-bad"} {
		if !strings.Contains(artifacts["exporter logs"], "target="+target) {
			t.Errorf("no log line names the failing target %s", target)
		}
	}
	if !strings.Contains(artifacts["audit log"], `"outcome":"decided"`) {
		t.Errorf("nothing decided in the audit log:\n%s", artifacts["audit log"])
	}
	for _, api := range apis {
		if rec.count(string(api)) == 0 {
			t.Errorf("no credential of %s crossed the recording proxy", api)
		}
	}

	needles := []string{
		sentinelPass, sentinelWrongPass, sentinelKey, sentinelToken,
		sentinelInline, sentinelTypo, sentinelURL, sentinelInlineKey,
		base64.StdEncoding.EncodeToString([]byte("monitor:" + sentinelPass)),
		base64.StdEncoding.EncodeToString([]byte("monitor:" + sentinelWrongPass)),
		url.QueryEscape(sentinelPass), url.QueryEscape(sentinelWrongPass),
	}
	needles = append(needles, rec.list()...)
	t.Logf("looking for %d secrets (%d issued by the simulators) in %d artifacts", len(needles), len(rec.list()), len(artifacts))
	names := make([]string, 0, len(artifacts))
	for name := range artifacts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		text := artifacts[name]
		if found := contains(text, needles); len(found) > 0 {
			t.Errorf("%s contains secrets %q:\n%s", name, found, proctest.Tail(text, 4<<10))
		}
		if m := vbrJWTHeader.FindString(text); m != "" {
			t.Errorf("%s contains a VBR access token %.40s…", name, m)
		}
	}
}
