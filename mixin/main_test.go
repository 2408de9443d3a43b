package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	rulesFile = "../examples/rules/veeam_failover.rules.yml"
	testsFile = "../examples/rules/tests.yml"
	runbooks  = "../docs/runbooks.md"
)

// alwaysFiring are alerts that fire by design, so no test can show them silent.
var alwaysFiring = map[string]bool{"VeeamTriggerWatchdog": true}

// TestGeneratedFileUpToDate is the CI check that the shipped rules are what
// config.yml and the template make.
func TestGeneratedFileUpToDate(t *testing.T) {
	if err := run("config.yml", "rules.yml.tmpl", rulesFile, true); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFindsStaleFile(t *testing.T) {
	stale := filepath.Join(t.TempDir(), "rules.yml")
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "> 86400", "> 3600", 1)
	if edited == string(b) {
		t.Fatal("the generated file has no plan RPO threshold to edit")
	}
	if err := os.WriteFile(stale, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run("config.yml", "rules.yml.tmpl", stale, true); !errors.Is(err, errStale) {
		t.Fatalf("check of an edited file: %v, want %v", err, errStale)
	}
}

func TestConfigErrors(t *testing.T) {
	good, err := os.ReadFile("config.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown key", "plan_rpo:", "plan_rpos:", "field plan_rpos not found"},
		{"zero duration", "kill_switch_for: 1h", "kill_switch_for: 0s", "missing or zero: kill_switch_for"},
		{"bad duration", "rpo_for: 15m", "rpo_for: soon", "soon"},
		{"no selector", `selector: 'job=~"veeam_failover.*"'`, `selector: ""`, "missing or zero: selector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.old, tc.new, 1)
			if bad == string(good) {
				t.Fatalf("config.yml has no %q", tc.old)
			}
			path := filepath.Join(t.TempDir(), "config.yml")
			if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWithSelector(t *testing.T) {
	for in, want := range map[string]string{
		"m":             `m{job="x"}`,
		`m{code="401"}`: `m{job="x", code="401"}`,
	} {
		if got := withSelector(in, `job="x"`); got != want {
			t.Errorf("withSelector(%q) = %q, want %q", in, got, want)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type testFile struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestEveryAlertHasRunbookAndTests wants each alert to link to a section of
// docs/runbooks.md and to be shown by tests.yml both firing and silent, and
// each recording rule to be checked by a promql_expr_test.
func TestEveryAlertHasRunbookAndTests(t *testing.T) {
	var rules ruleFile
	readYAML(t, rulesFile, &rules)
	var tests testFile
	readYAML(t, testsFile, &tests)
	md, err := os.ReadFile(runbooks)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## +(\S+)\s*$`).FindAllStringSubmatch(string(md), -1) {
		anchors[strings.ToLower(m[1])] = true
	}

	firing, silent, exprs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, tg := range tests.Tests {
		for _, a := range tg.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
		for _, e := range tg.PromQLExprTest {
			exprs[strings.TrimSpace(e.Expr)] = true
		}
	}

	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				if !exprs[r.Record] {
					t.Errorf("recording rule %s: no promql_expr_test evaluates it", r.Record)
				}
				continue
			}
			alerts++
			url := r.Annotations["runbook_url"]
			_, anchor, ok := strings.Cut(url, "#")
			switch {
			case !ok:
				t.Errorf("%s: runbook_url %q has no anchor", r.Alert, url)
			case anchor != strings.ToLower(r.Alert):
				t.Errorf("%s: runbook_url anchor %q, want %q", r.Alert, anchor, strings.ToLower(r.Alert))
			case !anchors[anchor]:
				t.Errorf("%s: docs/runbooks.md has no section \"## %s\"", r.Alert, r.Alert)
			}
			if !firing[r.Alert] {
				t.Errorf("%s: no test in tests.yml shows it firing", r.Alert)
			}
			if !silent[r.Alert] && !alwaysFiring[r.Alert] {
				t.Errorf("%s: no test in tests.yml shows it silent", r.Alert)
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts found")
	}
}
