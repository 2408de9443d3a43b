package trigger

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

func vspcRule(name, plan string, matchers ...string) config.Rule {
	return config.Rule{
		Name: name, Matchers: matchers, MinAlerts: 1, Cooldown: model.Duration(time.Hour),
		Action: config.Action{Type: config.ActionVSPCPlanStart, Target: "vspc", Plan: plan},
	}
}

func TestCompileRules(t *testing.T) {
	base := vspcRule("r", "Plan A", `alertname="SiteDown"`)
	tests := []struct {
		name    string
		edit    func(r *config.Rule)
		wantErr string
	}{
		{"ok", func(*config.Rule) {}, ""},
		{"no matchers", func(r *config.Rule) { r.Matchers = nil }, "at least one matcher"},
		{"bad matcher", func(r *config.Rule) { r.Matchers = []string{`alertname=~"("`} }, "matcher"},
		{"no name", func(r *config.Rule) { r.Name = "" }, "needs a name"},
		{"reserved name", func(r *config.Rule) { r.Name = "none" }, "needs a name"},
		{"unknown type", func(r *config.Rule) { r.Action.Type = "reboot" }, "unknown action type"},
		{"no target", func(r *config.Rule) { r.Action.Target = "" }, "target is required"},
		{"plan twice", func(r *config.Rule) { r.Action.PlanLabel = "plan" }, "exclusive"},
		{"no plan", func(r *config.Rule) { r.Action.Plan = "" }, "plan or action.plan_label"},
		{"label without allow", func(r *config.Rule) { r.Action.Plan, r.Action.PlanLabel = "", "plan" }, "needs action.allow"},
		{"label with allow", func(r *config.Rule) { r.Action.Plan, r.Action.PlanLabel, r.Action.Allow = "", "plan", []string{"A"} }, ""},
		{"negative for", func(r *config.Rule) { r.For = -1 }, "negative"},
		{"cdp without vm", func(r *config.Rule) {
			r.Action = config.Action{Type: config.ActionEMCdpFailover, Target: "vspc", CdpReplica: "x"}
		}, "cdp_replica and action.vm"},
		{"vbr two ways", func(r *config.Rule) {
			r.Action = config.Action{Type: config.ActionVBRFailover, Target: "vspc", Replicas: []string{"a"}, ReplicaPointIDs: []string{"b"}}
		}, "exactly one of"},
		{"vbr none", func(r *config.Rule) {
			r.Action = config.Action{Type: config.ActionVBRFailover, Target: "vspc"}
		}, "exactly one of"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			r.Matchers = append([]string(nil), base.Matchers...)
			tc.edit(&r)
			_, err := compileRules(&config.TriggerConfig{Rules: []config.Rule{r}}, nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
	t.Run("duplicate names", func(t *testing.T) {
		_, err := compileRules(&config.TriggerConfig{Rules: []config.Rule{base, base}}, nil)
		if err == nil || !strings.Contains(err.Error(), "duplicate") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("target must have a client of the right type", func(t *testing.T) {
		_, err := compileRules(&config.TriggerConfig{Rules: []config.Rule{base}}, map[string]any{})
		if err == nil || !strings.Contains(err.Error(), `"vspc" is not a vspc target`) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestRuleObjectAndAllow(t *testing.T) {
	c := vspcRule("r", "", `alertname="SiteDown"`)
	c.Action.PlanLabel, c.Action.Allow = "veeam_plan", []string{"Plan A", "Plan B"}
	rules, err := compileRules(&config.TriggerConfig{Rules: []config.Rule{c}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rules[0]
	for _, tc := range []struct {
		labels map[string]string
		object string
		ok     bool
	}{
		{map[string]string{"alertname": "SiteDown", "veeam_plan": "Plan A"}, "Plan A", true},
		{map[string]string{"alertname": "SiteDown", "veeam_plan": "Plan C"}, "Plan C", false},
		{map[string]string{"alertname": "SiteDown"}, "", false},
	} {
		a := &alert{Labels: tc.labels}
		if !r.matches(a) {
			t.Fatalf("%v does not match", tc.labels)
		}
		obj := r.object(a)
		if obj != tc.object {
			t.Errorf("object %q, want %q", obj, tc.object)
		}
		if ok, reason := r.allowed(obj); ok != tc.ok {
			t.Errorf("allowed(%q) = %v (%s)", obj, ok, reason)
		}
	}
	if r.matches(&alert{Labels: map[string]string{"alertname": "Other"}}) {
		t.Error("matches another alertname")
	}

	v := config.Rule{Name: "v", Matchers: []string{`a="b"`}, Action: config.Action{
		Type: config.ActionVBRFailover, Target: "vbr", Replicas: []string{"web02", "web01"}}}
	rules, err = compileRules(&config.TriggerConfig{Rules: []config.Rule{v}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rules[0].object(&alert{}); got != "web01,web02" {
		t.Errorf("vbr object %q", got)
	}
}
