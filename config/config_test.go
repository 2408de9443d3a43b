package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// Secret values planted in testdata; no message may ever contain them.
var sentinels = []string{"s3cr3t-SENTINEL", "SENTINEL", "tok3n"}

func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	for _, sent := range sentinels {
		if strings.Contains(s, sent) {
			t.Errorf("output contains secret %q:\n%s", sent, s)
		}
	}
}

func problems(t *testing.T, err error) Errors {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got none")
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not config.Errors: %v", err, err)
	}
	return errs
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		line int
		key  string
		msg  string
	}{
		{"unknown_key.yml", 5, "targets[0].usernme", `unknown key (did you mean "username"?)`},
		{"duplicate_key.yml", 7, "targets[0].url", "duplicate key (first set on line 4)"},
		{"wrong_kind.yml", 2, "targets", "expected a list, got a mapping"},
		{"bad_bool.yml", 2, "trigger.dry_run", `expected true or false, got "nope"`},
		{"syntax_error.yml", 6, "password", "invalid YAML"},
		{"syntax_error_indent.yml", 5, "url", "invalid YAML"},
		{"duplicate_target.yml", 7, "targets[1].name", `duplicate target name "main" (first used on line 2)`},
		{"bad_type.yml", 3, "targets[0].type", `unknown target type "vone"`},
		{"bad_url.yml", 4, "targets[0].url", "must be only scheme://host:port"},
		{"bad_url_scheme.yml", 4, "targets[0].url", "scheme must be http or https"},
		{"url_credentials.yml", 4, "targets[0].url", "must not contain credentials"},
		{"bad_duration.yml", 7, "targets[0].timeout", `invalid value "5 minutes": expected a duration`},
		{"unknown_collector.yml", 9, "targets[0].collectors[1]", `unknown collector "backups"`},
		{"unsupported_collector.yml", 7, "targets[0].collectors[1]", `collector "replicas" is not supported by vspc targets`},
		{"api_key_not_vspc.yml", 5, "targets[0].api_key", "only supported by vspc targets"},
		{"api_key_and_password.yml", 7, "targets[0].api_key_file", "not both"},
		{"password_both.yml", 7, "targets[0].password_file", "password and password_file are both set"},
		{"no_credentials.yml", 2, "targets[0].username", "missing credentials"},
		{"missing_password_file.yml", 6, "targets[0].password_file", "/testdata/secrets/does-not-exist.pass: no such file or directory"},
		{"empty_password_file.yml", 6, "targets[0].password_file", "the file is empty"},
		{"secret_not_string.yml", 6, "targets[0].password", "expected a string, got a list"},
		{"missing_token_file.yml", 18, "trigger.webhook_bearer_token_file", "/testdata/secrets/nope.token: no such file or directory"},
		{"scrape_concurrency.yml", 3, "scrape.concurrency", "must be at least 1, got 0"},
		{"max_concurrent.yml", 18, "trigger.max_concurrent", "must be at least 1, got 0"},
		{"rate_limit_actions.yml", 18, "trigger.rate_limit.actions", "must be at least 1, got 0"},
		{"rate_limit_per.yml", 19, "trigger.rate_limit.per", "must be more than 0s"},
		{"armed_unauthenticated.yml", 18, "trigger.dry_run", "webhook_bearer_token_file"},
		{"armed_no_state.yml", 17, "trigger.state_file", "durable state file"},
		{"duplicate_rule.yml", 22, "trigger.rules[1].name", `duplicate rule name "site-down" (first used on line 19)`},
		{"unknown_action.yml", 22, "trigger.rules[0].action.type", `unknown action type "vspc_plan_explode"`},
		{"missing_target.yml", 23, "trigger.rules[0].action.target", `no target named "vspc-other"`},
		{"wrong_target_type.yml", 23, "trigger.rules[0].action.target", `em_plan_start needs a target of type em, but "vspc-main" is of type vspc`},
		{"plan_both.yml", 25, "trigger.rules[0].action.plan_label", "plan and plan_label are both set"},
		{"plan_neither.yml", 21, "trigger.rules[0].action.plan", "needs plan (name or id) or plan_label"},
		{"plan_label_no_allow.yml", 21, "trigger.rules[0].action.allow", "allow must list"},
		{"replica_label_no_allow.yml", 21, "trigger.rules[0].action.allow", "allow must list"},
		{"vbr_no_replicas.yml", 21, "trigger.rules[0].action.replicas", "needs replicas, replica_label or replica_point_ids"},
		{"vbr_two_ways.yml", 25, "trigger.rules[0].action.replica_point_ids", "use exactly one"},
		{"cdp_missing.yml", 21, "trigger.rules[0].action.vm", "em_cdp_failover needs the VM"},
		{"key_not_used.yml", 25, "trigger.rules[0].action.test", "not used by em_plan_start"},
		{"bad_matcher.yml", 22, "trigger.rules[0].matchers[1]", "invalid matcher"},
		{"no_matchers.yml", 19, "trigger.rules[0].matchers", "at least one matcher"},
		{"min_alerts.yml", 21, "trigger.rules[0].min_alerts", "must be at least 1, got 0"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := "testdata/" + tc.file
			cfg, err := Load(path, LoadOptions{})
			if cfg != nil {
				t.Errorf("got a config along with the error")
			}
			errs := problems(t, err)
			assertNoSecret(t, err.Error())
			want := fmt.Sprintf("%s:%d: %s: ", path, tc.line, tc.key)
			found := false
			for _, p := range errs {
				if p.File != path || p.Line < 1 || p.Key == "" || p.Msg == "" {
					t.Errorf("incomplete problem %#v", p)
				}
				if s := p.String(); strings.HasPrefix(s, want) && strings.Contains(p.Msg, tc.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem %q...%q in:\n%v", want, tc.msg, err)
			}
		})
	}
}

func TestEveryTestdataFileIsChecked(t *testing.T) {
	// Each broken file is in the table above; this catches a new file that
	// is not, and a good one that stopped loading.
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		_, err := Load(f, LoadOptions{})
		if good := filepath.Base(f) == "good.yml"; good != (err == nil) {
			t.Errorf("%s: good=%v but err=%v", f, good, err)
		}
		if err != nil {
			assertNoSecret(t, err.Error())
		}
	}
}

func TestMultipleErrors(t *testing.T) {
	errs := problems(t, func() error { _, err := Load("testdata/multi_error.yml", LoadOptions{}); return err }())
	assertNoSecret(t, errs.Error())
	wantKeys := []string{
		"targets[0].url",
		"targets[0].colectors",
		"targets[1].name",
		"targets[1].api_key",
		"scrape.concurrency",
		"trigger.dry_run",
		"trigger.state_file",
		"trigger.rules[0].matchers[0]",
		"trigger.rules[0].for",
		"trigger.rules[0].action.replicas",
		"trigger.rules[0].action.target",
	}
	var keys []string
	for _, p := range errs {
		keys = append(keys, p.Key)
	}
	for _, k := range wantKeys {
		if !slices.Contains(keys, k) {
			t.Errorf("missing a problem for %s in:\n%v", k, errs)
		}
	}
	if !slices.IsSortedFunc(errs, func(a, b Problem) int { return a.Line - b.Line }) {
		t.Errorf("problems not sorted by line:\n%v", errs)
	}
	if n := strings.Count(errs.Error(), "\n") + 1; n != len(errs) {
		t.Errorf("Error() has %d lines for %d problems", n, len(errs))
	}
}

func TestGoodConfigDefaults(t *testing.T) {
	cfg, err := Load("testdata/good.yml", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Targets) != 3 {
		t.Fatalf("got %d targets", len(cfg.Targets))
	}
	v, em, vbr := cfg.Targets[0], cfg.Targets[1], cfg.Targets[2]
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"vspc url (trailing slash dropped)", v.URL, "https://vspc.example.com:1280"},
		{"vspc timeout", v.Timeout, model.Duration(30 * time.Second)},
		{"vspc collectors", v.Collectors, []string{CollectorFailoverPlanObjects, CollectorFailoverPlans}},
		{"em collectors", em.Collectors, []string{CollectorCloudFailoverSessions, CollectorFailoverPlans}},
		{"vbr collectors", vbr.Collectors, []string{CollectorReplicas}},
		{"vspc password from file", string(v.Password), "s3cr3t-SENTINEL-FILE"},
		{"vspc password file", v.PasswordFile, filepath.Join(wd(t), "testdata", "secrets", "sentinel.pass")},
		{"em inline password", string(em.Password), "s3cr3t-SENTINEL"},
		{"per_object", cfg.Collectors.FailoverPlanObjects.PerObject, true},
		{"last_session_status", cfg.Collectors.FailoverPlanObjects.LastSessionStatus, false},
		{"statesets", cfg.Collectors.Statesets, StatesetsCurrent},
		{"sessions_per_plan", cfg.Collectors.CloudFailoverSessions.SessionsPerPlan, 1},
		{"scrape.concurrency", cfg.Scrape.Concurrency, 8},
		{"scrape.min_interval", cfg.Scrape.MinInterval, model.Duration(0)},
		{"dry_run", cfg.Trigger.DryRun, true},
		{"webhook token", string(cfg.Trigger.WebhookBearerToken), "tok3n-SENTINEL-FILE"},
		{"max_concurrent", cfg.Trigger.MaxConcurrent, 1},
		{"rate_limit", cfg.Trigger.RateLimit, RateLimit{Actions: 2, Per: model.Duration(time.Hour)}},
		{"action_timeout", cfg.Trigger.ActionTimeout, model.Duration(30 * time.Minute)},
		{"min_alerts", cfg.Trigger.Rules[0].MinAlerts, 1},
		{"cooldown", cfg.Trigger.Rules[0].Cooldown, model.Duration(24 * time.Hour)},
		{"for", cfg.Trigger.Rules[0].For, model.Duration(0)},
		{"matchers", cfg.Trigger.Rules[0].ParsedMatchers.String(), `{alertname="SiteDown",site=~"a|b"}`},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	out := cfg.String()
	assertNoSecret(t, out)
	if !strings.Contains(out, "password: <secret>") {
		t.Errorf("inline password not shown as <secret>:\n%s", out)
	}
	if strings.Count(out, "password: ") != 1 {
		t.Errorf("passwords read from files should be left out of String():\n%s", out)
	}
}

func TestExplicitValuesWinOverDefaults(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "t0ken\n")
	cfg, err := Parse([]byte(`
collectors:
  statesets: all
  failover_plan_objects: {per_object: false}
  cloud_failover_sessions: {sessions_per_plan: 0}
scrape: {concurrency: 2, min_interval: 30s}
trigger:
  dry_run: false
  webhook_bearer_token_file: token
  state_file: state.json
  rate_limit: {actions: 5}
  rules:
    - name: r
      matchers: [alertname=X]
      cooldown: 0s
      min_alerts: 3
      for: 2m
      action: {type: vspc_plan_undo, target: v, plan: P}
targets:
  - {name: v, type: vspc, url: "http://127.0.0.1:1280", api_key: k3y-value, timeout: 5s}
`), filepath.Join(dir, "c.yml"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Trigger.Rules[0]
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"statesets", cfg.Collectors.Statesets, StatesetsAll},
		{"per_object", cfg.Collectors.FailoverPlanObjects.PerObject, false},
		{"sessions_per_plan", cfg.Collectors.CloudFailoverSessions.SessionsPerPlan, 0},
		{"concurrency", cfg.Scrape.Concurrency, 2},
		{"min_interval", cfg.Scrape.MinInterval, model.Duration(30 * time.Second)},
		{"dry_run", cfg.Trigger.DryRun, false},
		{"state_file", cfg.Trigger.StateFile, filepath.Join(dir, "state.json")},
		{"token", string(cfg.Trigger.WebhookBearerToken), "t0ken"},
		{"rate_limit", cfg.Trigger.RateLimit, RateLimit{Actions: 5, Per: model.Duration(time.Hour)}},
		{"cooldown", r.Cooldown, model.Duration(0)},
		{"min_alerts", r.MinAlerts, 3},
		{"for", r.For, model.Duration(2 * time.Minute)},
		{"timeout", cfg.Targets[0].Timeout, model.Duration(5 * time.Second)},
		{"api_key", string(cfg.Targets[0].APIKey), "k3y-value"},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if strings.Contains(cfg.String(), "k3y-value") {
		t.Errorf("String() shows the API key")
	}
}

func TestNullKeepsDefaults(t *testing.T) {
	// `dry_run:` with no value must not arm the trigger.
	cfg, err := Parse([]byte("scrape:\n  concurrency:\ntrigger:\n  dry_run:\n  rate_limit:\n"), "c.yml", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Trigger.DryRun || cfg.Scrape.Concurrency != 8 || cfg.Trigger.RateLimit.Actions != 2 {
		t.Errorf("null values changed defaults: %+v", cfg)
	}
}

func TestDecoding(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		problem    string // "" = loads
	}{
		{"empty file", "", ""},
		{"only comments", "# nothing\n", ""},
		{"empty mapping", "{}\n", ""},
		{"anchors and merge keys", `
targets:
  - &base {name: a, type: vbr, url: "https://a:9419", username: u, password: p4ssword, timeout: 10s}
  - <<: *base
    name: b
`, ""},
		{"two documents", "scrape: {}\n---\nscrape: {}\n", "c.yml:2: yaml: only one YAML document is allowed"},
		{"top level list", "- a\n- b\n", "c.yml:1: yaml: expected a mapping of settings at the top level, got a list"},
		{"nested unknown key", "targets:\n  - name: a\n    tls_config: {ca_fle: x}\n", `c.yml:3: targets[0].tls_config.ca_fle: unknown key (did you mean "ca_file"?)`},
		{"tls validation", "targets:\n  - name: a\n    tls_config: {cert_file: x}\n", "c.yml:3: targets[0].tls_config: exactly one of key or key_file"},
		{"tls ref", "targets:\n  - name: a\n    tls_config: {ca_ref: x}\n", "targets[0].tls_config.ca_ref: secret references are not supported"},
		{"tls file missing", "targets:\n  - name: a\n    tls_config:\n      ca_file: nope.pem\n", "c.yml:4: targets[0].tls_config.ca_file: cannot read " + filepath.Join(wd(t), "nope.pem") + ": no such file or directory"},
		{"bad tls version", "targets:\n  - name: a\n    tls_config: {min_version: TLS9}\n", `targets[0].tls_config.min_version: invalid value "TLS9"`},
		{"proxy validation", "targets:\n  - name: a\n    no_proxy: x\n", "targets[0].proxy_url: if no_proxy is configured, proxy_url must also be configured"},
		{"int for string list", "targets:\n  - collectors: 3\n", "c.yml:2: targets[0].collectors: expected a list, got a single value"},
		{"mapping key not a name", "scrape:\n  [a]: 1\n", "c.yml:2: scrape: keys must be plain names"},
		{"negative duration", "scrape: {min_interval: -1s}\n", `scrape.min_interval: invalid value "-1s"`},
		{"sessions_per_plan", "collectors: {cloud_failover_sessions: {sessions_per_plan: -1}}\n", "sessions_per_plan: must be 0 or more"},
		{"last_session_status without per_object", "collectors:\n  failover_plan_objects: {per_object: false, last_session_status: true}\n",
			"c.yml:2: collectors.failover_plan_objects.last_session_status: needs per_object: true"},
		{"last_session_status", "collectors: {failover_plan_objects: {last_session_status: true}}\n", ""},
		{"statesets", "collectors: {statesets: every}\n", `c.yml:1: collectors.statesets: must be current or all, got "every"`},
		{"statesets empty", "collectors: {statesets: \"\"}\n", `collectors.statesets: must be current or all, got ""`},
		{"action_timeout", "trigger: {action_timeout: 0s}\n", "trigger.action_timeout: must be more than 0s"},
		{"allow without label", `
targets: [{name: v, type: vspc, url: "https://v", api_key: k3y-value}]
trigger:
  rules:
    - {name: r, matchers: [a=b], action: {type: vspc_plan_start, target: v, plan: P, allow: [P]}}
`, "c.yml:5: trigger.rules[0].action.allow: allow only applies with plan_label or replica_label"},
		{"armed with allow_unauthenticated_webhook", "trigger: {dry_run: false, allow_unauthenticated_webhook: true, state_file: s.json}\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "c.yml", LoadOptions{})
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("want %q, got: %v", tc.problem, err)
			}
		})
	}
}

func TestProxySecretsRedacted(t *testing.T) {
	cfg, err := Parse([]byte(`
targets:
  - name: a
    type: vbr
    url: https://vbr:9419
    username: u
    password: p4ssword-value
    proxy_url: http://proxyuser:pr0xy-pass@proxy.example.com:3128
    proxy_connect_header:
      Proxy-Authorization: [Basic hdr-s3cret]
    tls_config:
      key: tls-k3y-value
      cert: not-a-secret-cert
`), "c.yml", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tg := cfg.Targets[0]
	if tg.ProxyConfig.ProxyURL.Host != "proxy.example.com:3128" || string(tg.ProxyConfig.ProxyConnectHeader["Proxy-Authorization"][0]) != "Basic hdr-s3cret" {
		t.Errorf("proxy settings not decoded: %+v", tg.ProxyConfig)
	}
	out := cfg.String()
	for _, secret := range []string{"p4ssword-value", "pr0xy-pass", "hdr-s3cret", "tls-k3y-value"} {
		if strings.Contains(out, secret) {
			t.Errorf("String() shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "not-a-secret-cert") {
		t.Errorf("String() lost the certificate:\n%s", out)
	}
}

func TestArmedWithBasicAuth(t *testing.T) {
	// The web config's basic_auth_users authenticate the webhook.
	if _, err := Load("testdata/armed_unauthenticated.yml", LoadOptions{WebhookBasicAuth: true}); err != nil {
		t.Fatal(err)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const s = "s3cr3t-SENTINEL"
	for name, doc := range map[string]string{
		"unterminated quote":    "targets:\n  - name: a\n    password: \"" + s + "\n",
		"tab indentation":       "targets:\n  - name: a\n\tpassword: " + s + "\n",
		"bad mapping":           "targets:\n  - name: a\n    password: " + s + ": x\n",
		"flow syntax":           "targets: [{name: a, password: " + s + ", }\n",
		"unknown anchor":        "targets:\n  - name: a\n    password: *" + s + "\n",
		"password is a map":     "targets:\n  - name: a\n    password: {" + s + ": 1}\n",
		"api key wrong type":    "targets:\n  - {name: a, type: vbr, url: 'https://v', api_key: " + s + "}\n",
		"password in url":       "targets:\n  - {name: a, type: vbr, url: 'https://u:" + s + "@v', username: u, password: x}\n",
		"bad url with password": "targets:\n  - {name: a, type: vbr, url: 'https://u:" + s + "@v:port', username: u, password: x}\n",
		"proxy url password":    "targets:\n  - {name: a, type: vbr, url: 'https://v', username: u, password: x, proxy_url: 'http://u:" + s + "@p:bad'}\n",
		"proxy header":          "targets:\n  - {name: a, proxy_connect_header: {Authorization: " + s + "}}\n",
		"tls key":               "targets:\n  - {name: a, tls_config: {key: " + s + "}}\n",
		"tls key as list":       "targets:\n  - {name: a, tls_config: {key: [" + s + "], cert_file: x}}\n",
		"bool secret":           "targets:\n  - {name: a, password: " + s + ", type: " + s + "x}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(doc), "c.yml", LoadOptions{})
			if err == nil {
				t.Fatal("expected an error")
			}
			if strings.Contains(err.Error(), "SENTINEL") {
				t.Errorf("secret in error:\n%v", err)
			}
			for _, p := range problems(t, err) {
				if p.Line < 1 || p.Key == "" {
					t.Errorf("incomplete problem %#v", p)
				}
			}
		})
	}
}

func TestSecretFilesResolvedRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc")
	writeFile(t, filepath.Join(conf, "secrets", "vspc.pass"), "pa ss\r\n")
	writeFile(t, filepath.Join(conf, "secrets", "vspc.key"), "the-key\n")
	writeFile(t, filepath.Join(conf, "ca.pem"), "not checked here")
	abs := filepath.Join(dir, "abs.pass")
	writeFile(t, abs, "absolute\n\n")
	path := filepath.Join(conf, "exporter.yml")
	writeFile(t, path, fmt.Sprintf(`
targets:
  - {name: a, type: vspc, url: "https://a", username: u, password_file: secrets/vspc.pass, tls_config: {ca_file: ca.pem}}
  - {name: b, type: vspc, url: "https://b", api_key_file: secrets/vspc.key}
  - {name: c, type: vbr, url: "https://c", username: u, password_file: %q}
trigger:
  webhook_bearer_token_file: secrets/vspc.key
  audit_log: audit.jsonl
  kill_switch_file: disarm
`, abs))
	cfg, err := Load(path, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"password", string(cfg.Targets[0].Password), "pa ss"},
		{"password_file", cfg.Targets[0].PasswordFile, filepath.Join(conf, "secrets", "vspc.pass")},
		{"ca_file", cfg.Targets[0].TLSConfig.CAFile, filepath.Join(conf, "ca.pem")},
		{"api key", string(cfg.Targets[1].APIKey), "the-key"},
		{"absolute password_file", cfg.Targets[2].PasswordFile, abs},
		{"absolute password", string(cfg.Targets[2].Password), "absolute"},
		{"token", string(cfg.Trigger.WebhookBearerToken), "the-key"},
		{"audit_log", cfg.Trigger.AuditLog, filepath.Join(conf, "audit.jsonl")},
		{"kill_switch_file", cfg.Trigger.KillSwitchFile, filepath.Join(conf, "disarm")},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}

	// A secret file that is a directory is refused, naming file and key only.
	_, err = Parse([]byte("targets:\n  - {name: a, type: vbr, url: 'https://v', username: u, password_file: secrets}\n"), path, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "targets[0].password_file: cannot read "+filepath.Join(conf, "secrets")+": not a regular file") {
		t.Errorf("got %v", err)
	}
}

func TestExampleLoads(t *testing.T) {
	cfg, err := Load("../examples/veeam_failover_exporter.yml", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, tg := range cfg.Targets {
		types = append(types, tg.Type)
	}
	if !slices.Equal(types, []string{TypeVSPC, TypeEM, TypeVBR}) {
		t.Errorf("target types %v", types)
	}
	if !cfg.Trigger.DryRun || len(cfg.Trigger.Rules) < 3 {
		t.Errorf("example trigger: dry_run=%v, %d rules", cfg.Trigger.DryRun, len(cfg.Trigger.Rules))
	}
	if s := cfg.String(); strings.Contains(s, "change-me") {
		t.Errorf("String() shows a password:\n%s", s)
	}
}

func TestHelpers(t *testing.T) {
	for _, a := range ActionTypes() {
		want := strings.SplitN(a, "_", 2)[0]
		if got := ActionTargetType(a); got != want {
			t.Errorf("ActionTargetType(%q) = %q, want %q", a, got, want)
		}
	}
	if got := ActionTargetType("nope"); got != "" {
		t.Errorf("ActionTargetType(nope) = %q", got)
	}
	if SupportedCollectors("nope") != nil {
		t.Error("SupportedCollectors(nope) is not nil")
	}
	tg := Target{Type: TypeEM}
	if got := tg.EffectiveCollectors(); !slices.Equal(got, []string{CollectorCloudFailoverSessions, CollectorFailoverPlans}) {
		t.Errorf("EffectiveCollectors() = %v", got)
	}
	tg.Collectors = []string{CollectorFailoverPlans}
	if got := tg.EffectiveCollectors(); !slices.Equal(got, tg.Collectors) {
		t.Errorf("EffectiveCollectors() = %v", got)
	}
	cfg := &Config{Targets: []Target{{Name: "a"}, {Name: "b"}}}
	if got := cfg.TargetByName("b"); got != &cfg.Targets[1] {
		t.Errorf("TargetByName(b) = %v", got)
	}
	if cfg.TargetByName("c") != nil {
		t.Error("TargetByName(c) is not nil")
	}
	p := Problem{File: "f.yml", Line: 3, Key: "targets[0].url", Msg: "bad"}
	if got := (Errors{p, p}).Error(); got != "f.yml:3: targets[0].url: bad\nf.yml:3: targets[0].url: bad" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yml", LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist.yml") {
		t.Errorf("got %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func wd(t *testing.T) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBearerTokenWithBasicAuthIsRefused(t *testing.T) {
	// Alertmanager sends one Authorization header: Basic for the web config
	// or Bearer for the trigger, never both, so the webhook could never act.
	_, err := Load("testdata/good.yml", LoadOptions{WebhookBasicAuth: true})
	var problems Errors
	if !errors.As(err, &problems) {
		t.Fatalf("want problems, got %v", err)
	}
	if len(problems) != 1 || problems[0].Key != "trigger.webhook_bearer_token_file" || !strings.Contains(problems[0].Msg, "basic_auth_users") {
		t.Fatalf("got %v", problems)
	}
	if !strings.HasPrefix(problems[0].String(), "testdata/good.yml:") {
		t.Errorf("no file:line in %q", problems[0].String())
	}
}
