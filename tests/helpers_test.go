package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
)

// repoRoot is the module root, one level up from this package.
const repoRoot = ".."

// installHint says how to get the programs the end-to-end tests need.
const installHint = "apt-get install prometheus prometheus-alertmanager"

// lookPrograms finds each program on PATH; for each name, the first of its
// alternatives found wins. A missing program fails the test when CI=true and
// skips it otherwise.
func lookPrograms(t *testing.T, names ...[]string) []string {
	t.Helper()
	paths := make([]string, len(names))
	var missing []string
	for i, alts := range names {
		for _, n := range alts {
			if p, err := exec.LookPath(n); err == nil {
				paths[i] = p
				break
			}
		}
		if paths[i] == "" {
			missing = append(missing, strings.Join(alts, " or "))
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s not found on PATH; install with: %s", strings.Join(missing, ", "), installHint)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return paths
}

// eventually calls check every 250ms until it returns true or timeout passes;
// then the test fails with the last message check returned. Processes that
// exited in the meantime are reported at once.
func eventually(t *testing.T, timeout time.Duration, what string, check func() (bool, string), procs ...*proctest.Process) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for {
		var ok bool
		ok, msg = check()
		if ok {
			return
		}
		for _, p := range procs {
			if done, err := p.Exited(); done {
				t.Fatalf("%s: %s exited (%v) while waiting; last state: %s", what, p.Name(), err, msg)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last state: %s", what, timeout, msg)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// getBody GETs url and returns the body of a 2xx answer.
func getBody(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// httpOK is a readiness check for eventually.
func httpOK(u string) func() (bool, string) {
	return func() (bool, string) {
		if _, err := getBody(context.Background(), u); err != nil {
			return false, err.Error()
		}
		return true, ""
	}
}

// promClient talks to Prometheus' HTTP API.
type promClient struct{ base string }

type promSample struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant query. A scalar or string result is one sample
// without labels.
func (c promClient) query(expr string) ([]promSample, error) {
	b, err := getBody(context.Background(), c.base+"/api/v1/query?query="+url.QueryEscape(expr))
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, r.Error)
	}
	switch r.Data.ResultType {
	case "vector":
		var v []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, err
		}
		out := make([]promSample, 0, len(v))
		for _, s := range v {
			f, err := parseValue(s.Value[1])
			if err != nil {
				return nil, err
			}
			out = append(out, promSample{Metric: s.Metric, Value: f})
		}
		return out, nil
	case "scalar", "string":
		var v [2]any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, err
		}
		f, _ := parseValue(v[1])
		return []promSample{{Metric: map[string]string{}, Value: f}}, nil
	default:
		return nil, fmt.Errorf("query %q: unexpected result type %q", expr, r.Data.ResultType)
	}
}

func parseValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// scalarOf runs expr and returns its single value, or ok=false with a reason.
func (c promClient) scalarOf(expr string) (float64, bool, string) {
	s, err := c.query(expr)
	if err != nil {
		return 0, false, err.Error()
	}
	if len(s) != 1 {
		return 0, false, fmt.Sprintf("%s: %d samples, want 1", expr, len(s))
	}
	return s[0].Value, true, ""
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (c promClient) alerts() ([]promAlert, error) {
	b, err := getBody(context.Background(), c.base+"/api/v1/alerts")
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return r.Data.Alerts, nil
}

type promRule struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	File      string
	Group     string
}

func (c promClient) rules() ([]promRule, error) {
	b, err := getBody(context.Background(), c.base+"/api/v1/rules")
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			Groups []struct {
				Name  string     `json:"name"`
				File  string     `json:"file"`
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	var out []promRule
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			rule.File, rule.Group = g.File, g.Name
			out = append(out, rule)
		}
	}
	return out, nil
}

// labelValues is what a Grafana label_values(metric, label) variable offers.
func (c promClient) labelValues(label, match string) ([]string, error) {
	b, err := getBody(context.Background(), c.base+"/api/v1/label/"+url.PathEscape(label)+"/values?match[]="+url.QueryEscape(match))
	if err != nil {
		return nil, err
	}
	var r struct {
		Data []string `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// metricLine is one sample of the text exposition format.
type metricLine struct {
	name   string
	labels string // the raw {…} part, "" when none
	value  float64
}

// parseExposition reads the text format: family names from # TYPE lines and
// every sample. It is enough for the tests' needs (no escaping of '}' in
// label values is relied on).
func parseExposition(b []byte) (families map[string]string, samples []metricLine, err error) {
	families = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			if len(f) >= 4 {
				families[f[2]] = f[3]
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var m metricLine
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			j := strings.LastIndex(line, "}")
			if j < i {
				return nil, nil, fmt.Errorf("bad sample line %q", line)
			}
			m.name, m.labels, rest = line[:i], line[i:j+1], strings.TrimSpace(line[j+1:])
		} else if i >= 0 {
			m.name, rest = line[:i], strings.TrimSpace(line[i:])
		}
		fields := strings.Fields(rest)
		if m.name == "" || len(fields) == 0 {
			return nil, nil, fmt.Errorf("bad sample line %q", line)
		}
		if m.value, err = strconv.ParseFloat(fields[0], 64); err != nil {
			return nil, nil, fmt.Errorf("bad sample line %q: %w", line, err)
		}
		samples = append(samples, m)
	}
	return families, samples, sc.Err()
}

// sumSamples adds the samples of name whose labels contain every one of the
// given `key="value"` pairs.
func sumSamples(samples []metricLine, name string, pairs ...string) (float64, bool) {
	var sum float64
	found := false
	for _, s := range samples {
		if s.name != name {
			continue
		}
		match := true
		for _, p := range pairs {
			if !strings.Contains(s.labels, p) {
				match = false
				break
			}
		}
		if match {
			sum += s.value
			found = true
		}
	}
	return sum, found
}

// metricNameRE finds the names of the exporter's metric families in PromQL,
// YAML or Markdown. Only the exporter's own prefixes count, so that file
// names, job names and config keys that start with veeam_ do not.
var metricNameRE = regexp.MustCompile(`\bveeam_(?:up\b|scrape_|api_|failover_plan|cloud_failover_|replica_|trigger_|exporter_|failover_exporter_build_info)[a-z0-9_]*`)

// metricNames returns the sorted distinct metric names in text.
func metricNames(text string) []string {
	seen := map[string]bool{}
	for _, m := range metricNameRE.FindAllString(text, -1) {
		seen[m] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// markdownCode returns the fenced code blocks and inline code spans of a
// Markdown document.
func markdownCode(md string) string {
	var b strings.Builder
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			b.WriteString(line)
			b.WriteByte('\n')
			continue
		}
		for _, m := range inlineCodeRE.FindAllStringSubmatch(line, -1) {
			b.WriteString(m[1])
			b.WriteByte('\n')
		}
	}
	return b.String()
}

var inlineCodeRE = regexp.MustCompile("`([^`]+)`")

// buildTool builds cmd/veeam_failover_tool into a temporary directory.
func buildTool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "veeam_failover_tool")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/veeam_failover_tool")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/veeam_failover_tool: %v\n%s", err, out)
	}
	return bin
}

// runTool runs veeam_failover_tool; with v non-nil its output is JSON
// decoded into v. A failing command fails the test with its output.
func runTool(t *testing.T, bin string, v any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("veeam_failover_tool %v: %v\n%s%s", args, err, stdout.String(), stderr.String())
	}
	if v != nil {
		if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
			t.Fatalf("veeam_failover_tool %v: output is not JSON: %v\n%s", args, err, stdout.String())
		}
	}
	t.Logf("veeam_failover_tool %v:\n%s", args, stdout.String())
}
