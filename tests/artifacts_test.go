package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The shipped artifacts, relative to the repository root.
var (
	dashboardGlob  = filepath.Join(repoRoot, "dashboards", "*.json")
	rulesGlob      = filepath.Join(repoRoot, "examples", "rules", "*.yml")
	exampleRules   = filepath.Join(repoRoot, "examples", "rules", "veeam_failover.rules.yml")
	ruleTests      = filepath.Join(repoRoot, "examples", "rules", "tests.yml")
	examplePromCfg = filepath.Join(repoRoot, "examples", "prometheus.yml")
	exampleAMCfg   = filepath.Join(repoRoot, "alertmanager-example.yml")
	readme         = filepath.Join(repoRoot, "README.md")
)

// dashboard is the part of a Grafana dashboard the tests look at.
type dashboard struct {
	file          string
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	SchemaVersion int              `json:"schemaVersion"`
	Inputs        []any            `json:"__inputs"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardPanel struct {
	ID         int              `json:"id"`
	Title      string           `json:"title"`
	Type       string           `json:"type"`
	Datasource *datasourceRef   `json:"datasource"`
	Targets    []panelTarget    `json:"targets"`
	Panels     []dashboardPanel `json:"panels"` // collapsed rows
}

type panelTarget struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
}

// panelQuery is one PromQL expression of a dashboard panel.
type panelQuery struct {
	where string // file, panel and refId, for messages
	expr  string
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(dashboardGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no dashboards match %s", dashboardGlob)
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		out = append(out, d)
	}
	return out
}

func (d dashboard) panels() []dashboardPanel {
	var out []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func (d dashboard) queries() []panelQuery {
	var out []panelQuery
	for _, p := range d.panels() {
		for _, tg := range p.Targets {
			out = append(out, panelQuery{where: d.file + ": panel " + strconvQuote(p.Title) + " query " + tg.RefID, expr: tg.Expr})
		}
	}
	return out
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// dashboardVars are the values the tests give the dashboards' variables:
// regexes that select everything, Grafana's interval macros for a 1s-scrape
// Prometheus, and an RPO threshold of 0 so that every VM is "over" it.
var dashboardVars = []struct{ name, value string }{
	{"${datasource}", ""},
	{"$__rate_interval", "1m"},
	{"$__interval", "15s"},
	{"$__range", "1h"},
	{"$rpo_threshold", "0"},
	{"$job", ".*"},
	{"$instance", ".*"},
	{"$target", ".*"},
}

var leftoverVarRE = regexp.MustCompile(`\$\{?[A-Za-z_]\w*`)

// substitute replaces the dashboard variables in expr.
func substitute(expr string) string {
	for _, v := range dashboardVars {
		expr = strings.ReplaceAll(expr, v.name, v.value)
	}
	return expr
}

// TestDashboards checks that the dashboards import as they are: no
// __inputs, a Prometheus datasource variable used by every panel, the job,
// instance and target variables, unique ids, and no variable the tests do not
// know how to fill.
func TestDashboards(t *testing.T) {
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			if d.UID == "" || d.Title == "" {
				t.Errorf("uid %q, title %q: both are required", d.UID, d.Title)
			}
			if prev, ok := uids[d.UID]; ok {
				t.Errorf("uid %q also used by %s", d.UID, prev)
			}
			uids[d.UID] = d.file
			if d.SchemaVersion < 36 {
				t.Errorf("schemaVersion %d, want >= 36", d.SchemaVersion)
			}
			if d.Inputs != nil {
				t.Errorf("has __inputs: dashboards must import as they are")
			}
			vars := map[string]bool{}
			for _, v := range d.Templating.List {
				vars[v.Name] = true
				switch v.Name {
				case "datasource":
					var q string
					_ = json.Unmarshal(v.Query, &q)
					if v.Type != "datasource" || q != "prometheus" {
						t.Errorf("variable datasource: type %q query %q, want datasource/prometheus", v.Type, q)
					}
				default:
					if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
						t.Errorf("variable %s does not use ${datasource}", v.Name)
					}
				}
			}
			for _, want := range []string{"datasource", "job", "instance"} {
				if !vars[want] {
					t.Errorf("no %s variable", want)
				}
			}
			ids := map[int]bool{}
			queries := 0
			for _, p := range d.panels() {
				if ids[p.ID] {
					t.Errorf("panel id %d used twice", p.ID)
				}
				ids[p.ID] = true
				if p.Type == "row" {
					continue
				}
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
					t.Errorf("panel %q: datasource %+v, want prometheus ${datasource}", p.Title, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no queries", p.Title)
				}
				for _, tg := range p.Targets {
					queries++
					if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
						t.Errorf("panel %q query %s: datasource %+v, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
					}
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("panel %q query %s: empty expression", p.Title, tg.RefID)
					}
					if left := leftoverVarRE.FindString(substitute(tg.Expr)); left != "" {
						t.Errorf("panel %q query %s: variable %s is unknown to the tests", p.Title, tg.RefID, left)
					}
				}
			}
			if queries == 0 {
				t.Error("no queries")
			}
		})
	}
}

// TestExampleChecks runs the checks users run on the examples: promtool on
// the Prometheus config and the rules (with their unit tests) and amtool on
// the Alertmanager example.
func TestExampleChecks(t *testing.T) {
	progs := lookPrograms(t, []string{"promtool"}, []string{"amtool"})
	promtool, amtool := progs[0], progs[1]
	rulesDir := filepath.Dir(exampleRules)
	for _, c := range []struct {
		name string
		dir  string
		cmd  []string
	}{
		{"promtool check config", "", []string{promtool, "check", "config", examplePromCfg}}, // with its rule files
		{"promtool check rules", "", []string{promtool, "check", "rules", exampleRules}},
		{"promtool test rules", rulesDir, []string{promtool, "test", "rules", filepath.Base(ruleTests)}},
		{"amtool check-config", "", []string{amtool, "check-config", exampleAMCfg}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(c.cmd[0], c.cmd[1:]...)
			cmd.Dir = c.dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: %v\n%s", strings.Join(c.cmd, " "), err, out)
			}
		})
	}
}

// usedMetricNames collects the exporter metric names that the dashboards, the
// rule files (with their unit tests) and the README's code use, each with the
// files that use it.
func usedMetricNames(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where, text string) {
		for _, n := range metricNames(text) {
			if len(used[n]) == 0 || used[n][len(used[n])-1] != where {
				used[n] = append(used[n], where)
			}
		}
	}
	for _, d := range loadDashboards(t) {
		for _, q := range d.queries() {
			add("dashboards/"+d.file, q.expr)
		}
		for _, v := range d.Templating.List {
			add("dashboards/"+d.file, v.Definition)
		}
	}
	files, err := filepath.Glob(rulesGlob)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		add("examples/rules/"+filepath.Base(f), string(b))
	}
	if b, err := os.ReadFile(readme); err == nil {
		add("README.md", markdownCode(string(b)))
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return used
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
