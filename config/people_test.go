package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// peopleConfig is a config with the keys of issue 14; edit replaces parts
// of its trigger section.
func peopleConfig(trigger string) string {
	return `
targets:
  - {name: v, type: vspc, url: "http://127.0.0.1:1280", api_key: k3y}
trigger:
  webhook_bearer_token_file: webhook.token
` + trigger
}

func TestPeopleKeys(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "webhook.token"), "w3bhook\n")
	writeFile(t, filepath.Join(dir, "approver.token"), "appr0ver\n")
	writeFile(t, filepath.Join(dir, "same.token"), "w3bhook\n")
	cfg, err := Parse([]byte(peopleConfig(`  approver_token_file: approver.token
  heartbeat_matchers: ['alertname="VeeamTriggerWatchdog"']
  rules:
    - name: r
      matchers: [alertname=SiteDown]
      min_alerts: 2
      quorum_by: [prober, region]
      approval: {within: 15m}
      action: {type: vspc_plan_start, target: v, plan: P}
`)), filepath.Join(dir, "c.yml"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Trigger.Rules[0]
	if string(cfg.Trigger.ApproverToken) != "appr0ver" || cfg.Trigger.ApproverTokenFile != filepath.Join(dir, "approver.token") {
		t.Errorf("approver token %q from %q", cfg.Trigger.ApproverToken, cfg.Trigger.ApproverTokenFile)
	}
	if r.Approval.Within != model.Duration(15*time.Minute) || !r.Approval.Asks() {
		t.Errorf("approval %+v", r.Approval)
	}
	if strings.Join(r.QuorumBy, ",") != "prober,region" || len(cfg.Trigger.HeartbeatMatchers) != 1 {
		t.Errorf("quorum_by %v, heartbeat_matchers %v", r.QuorumBy, cfg.Trigger.HeartbeatMatchers)
	}

	for _, tc := range []struct {
		name, trigger, key, msg string
	}{
		{"approval without approver token", `  rules:
    - {name: r, matchers: [a=b], approval: {within: 5m}, action: {type: vspc_plan_start, target: v, plan: P}}
`, "trigger.rules[0].approval", "approver_token_file"},
		{"approver token is the webhook's", `  approver_token_file: same.token
`, "trigger.approver_token_file", "same token"},
		{"missing approver token file", `  approver_token_file: nope.token
`, "trigger.approver_token_file", "no such file"},
		{"bad heartbeat matcher", `  heartbeat_matchers: ['alertname=~"(']
`, "trigger.heartbeat_matchers[0]", "invalid matcher"},
		{"bad quorum_by", `  rules:
    - {name: r, matchers: [a=b], quorum_by: [prober, "not a label"], action: {type: vspc_plan_start, target: v, plan: P}}
`, "trigger.rules[0].quorum_by[1]", "not a label name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(peopleConfig(tc.trigger)), filepath.Join(dir, "c.yml"), LoadOptions{})
			var problems Errors
			if !errors.As(err, &problems) {
				t.Fatalf("want problems, got %v", err)
			}
			for _, p := range problems {
				if p.Key == tc.key && strings.Contains(p.Msg, tc.msg) {
					if strings.Contains(p.String(), "w3bhook") {
						t.Errorf("the token leaks into %q", p)
					}
					return
				}
			}
			t.Fatalf("no problem at %s with %q in %v", tc.key, tc.msg, problems)
		})
	}
}
