// Command mixin writes the shipped Prometheus rules,
// examples/rules/veeam_failover.rules.yml, from rules.yml.tmpl and config.yml,
// so that the job selector and every threshold are set in one place.
//
//	go run ./mixin          # regenerate (from the repository root)
//	go run ./mixin -check   # exit 1 when the checked-in file is out of date
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/template"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// config is mixin/config.yml.
type config struct {
	Selector   string `yaml:"selector"`
	RunbookURL string `yaml:"runbook_url"`
	TriggerURL string `yaml:"trigger_url"`

	ExporterDownFor        model.Duration `yaml:"exporter_down_for"`
	TargetDownFor          model.Duration `yaml:"target_down_for"`
	PlanFailedFor          model.Duration `yaml:"plan_failed_for"`
	PlanRPO                model.Duration `yaml:"plan_rpo"`
	ReplicaRPO             model.Duration `yaml:"replica_rpo"`
	RPOFor                 model.Duration `yaml:"rpo_for"`
	WithoutRestorePointFor model.Duration `yaml:"without_restore_point_for"`
	ExecutedWindow         model.Duration `yaml:"executed_window"`
	FailureWindow          model.Duration `yaml:"failure_window"`
	UnauthorizedWindow     model.Duration `yaml:"unauthorized_window"`
	KillSwitchFor          model.Duration `yaml:"kill_switch_for"`
	DryRunLookback         model.Duration `yaml:"dry_run_lookback"`
	HeartbeatMaxAge        model.Duration `yaml:"heartbeat_max_age"`
	HeartbeatFor           model.Duration `yaml:"heartbeat_for"`
	PendingForGuard        model.Duration `yaml:"pending_for_guard"`
	PendingMargin          model.Duration `yaml:"pending_margin"`
}

// loadConfig reads the config strictly: an unknown key, a missing value or a
// zero duration is an error, so that a typo cannot silently drop a threshold.
func loadConfig(path string) (*config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var missing []string
	for name, v := range map[string]string{"selector": c.Selector, "runbook_url": c.RunbookURL, "trigger_url": c.TriggerURL} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	for name, d := range c.durations() {
		if d <= 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%s: missing or zero: %s", path, strings.Join(missing, ", "))
	}
	return &c, nil
}

func (c *config) durations() map[string]model.Duration {
	return map[string]model.Duration{
		"exporter_down_for": c.ExporterDownFor, "target_down_for": c.TargetDownFor,
		"plan_failed_for": c.PlanFailedFor, "plan_rpo": c.PlanRPO, "replica_rpo": c.ReplicaRPO,
		"rpo_for": c.RPOFor, "without_restore_point_for": c.WithoutRestorePointFor,
		"executed_window": c.ExecutedWindow, "failure_window": c.FailureWindow,
		"unauthorized_window": c.UnauthorizedWindow, "kill_switch_for": c.KillSwitchFor,
		"dry_run_lookback": c.DryRunLookback, "heartbeat_max_age": c.HeartbeatMaxAge,
		"heartbeat_for": c.HeartbeatFor, "pending_for_guard": c.PendingForGuard,
		"pending_margin": c.PendingMargin,
	}
}

// outcomeAlert is one alert on an action outcome (the template "outcome").
type outcomeAlert struct {
	Config                                  *config
	Alert, Outcome, Severity, Summary, Text string
}

// render executes the rules template with the config. The template uses [[ ]]
// so that Prometheus' own {{ }} alert templates pass through untouched.
func render(c *config, tmplPath string) ([]byte, error) {
	src, err := os.ReadFile(tmplPath)
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		"seconds": func(d model.Duration) int64 { return int64(d) / int64(1e9) },
		"window":  func(d model.Duration) string { return "[" + d.String() + "]" },
		"runbook": func(alert string) string { return c.RunbookURL + "#" + strings.ToLower(alert) },
		// increased is true for a counter that went up within w, including
		// a series whose first sample is already above 0.
		"increased": func(metric string, w model.Duration) string {
			s := withSelector(metric, c.Selector)
			return fmt.Sprintf("increase(%[1]s[%[2]s]) > 0 or (%[1]s > 0 unless %[1]s offset %[2]s)", s, w)
		},
		"outcome": func(c *config, alert, outcome, severity, summary, text string) outcomeAlert {
			return outcomeAlert{c, alert, outcome, severity, summary, text}
		},
	}
	t, err := template.New("rules").Delims("[[", "]]").Funcs(funcs).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tmplPath, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, c); err != nil {
		return nil, fmt.Errorf("%s: %w", tmplPath, err)
	}
	return out.Bytes(), nil
}

// withSelector adds sel to the matchers of a metric selector such as
// `name` or `name{a="b"}`.
func withSelector(metric, sel string) string {
	name, matchers, ok := strings.Cut(metric, "{")
	if !ok {
		return name + "{" + sel + "}"
	}
	return name + "{" + sel + ", " + matchers
}

func main() {
	configPath := flag.String("config", "mixin/config.yml", "thresholds and job selector")
	tmplPath := flag.String("template", "mixin/rules.yml.tmpl", "rules template")
	outPath := flag.String("out", "examples/rules/veeam_failover.rules.yml", "generated rules file")
	check := flag.Bool("check", false, "only check that -out is up to date")
	flag.Parse()
	if err := run(*configPath, *tmplPath, *outPath, *check); err != nil {
		fmt.Fprintln(os.Stderr, "mixin:", err)
		os.Exit(1)
	}
}

var errStale = errors.New("is out of date: run `go run ./mixin` and commit the result")

func run(configPath, tmplPath, outPath string, check bool) error {
	c, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	want, err := render(c, tmplPath)
	if err != nil {
		return err
	}
	if check {
		got, err := os.ReadFile(outPath)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s %w", outPath, errStale)
		}
		return nil
	}
	return os.WriteFile(outPath, want, 0o644)
}
