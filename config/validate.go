package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
)

// labelNameRE is Prometheus' label name syntax.
var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// validate checks the decoded config and records every problem; it goes on
// after each one so that a single --config.check run shows them all.
func (p *parser) validate(cfg *Config, opts LoadOptions) {
	p.validateTargets(cfg)
	if o := cfg.Collectors.FailoverPlanObjects; o.LastSessionStatus && !o.PerObject {
		p.errorf("collectors.failover_plan_objects.last_session_status", "needs per_object: true (per_object: false exports no per-VM series)")
	}
	if s := cfg.Collectors.Statesets; s != StatesetsCurrent && s != StatesetsAll {
		p.errorf("collectors.statesets", "must be %s or %s, got %q", StatesetsCurrent, StatesetsAll, s)
	}
	if n := cfg.Collectors.CloudFailoverSessions.SessionsPerPlan; n < 0 {
		p.errorf("collectors.cloud_failover_sessions.sessions_per_plan", "must be 0 or more, got %d", n)
	}
	if n := cfg.Scrape.Concurrency; n < 1 {
		p.errorf("scrape.concurrency", "must be at least 1, got %d", n)
	}
	p.validateTrigger(cfg, opts)
}

func (p *parser) validateTargets(cfg *Config) {
	names := map[string]string{} // name -> key of its first use
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		key := fmt.Sprintf("targets[%d]", i)
		if t.Name == "" {
			p.errorf(key+".name", "missing: every target needs a name (it becomes the target label)")
		} else if first, dup := names[t.Name]; dup {
			p.errorf(key+".name", "duplicate target name %q (first used on line %d)", t.Name, p.lineOf(first))
		} else {
			names[t.Name] = key + ".name"
		}

		typeOK := knownTargetType(t.Type)
		switch {
		case t.Type == "":
			p.errorf(key+".type", "missing: one of vspc, em or vbr")
		case !typeOK:
			p.errorf(key+".type", "unknown target type %q: want vspc, em or vbr", t.Type)
		}

		if u, msg := checkURL(t.URL); msg != "" {
			p.errorf(key+".url", "%s", msg)
		} else {
			t.URL = u
		}
		p.validateCredentials(t, key, typeOK)

		if t.Timeout <= 0 {
			p.errorf(key+".timeout", "must be more than 0s")
		}
		p.validateCollectors(t, key, typeOK)

		tls := &t.TLSConfig
		for _, f := range []struct{ key, val string }{{"ca_ref", tls.CARef}, {"cert_ref", tls.CertRef}, {"key_ref", tls.KeyRef}} {
			if f.val != "" {
				p.errorf(key+".tls_config."+f.key, "secret references are not supported; use %s_file", strings.TrimSuffix(f.key, "_ref"))
			}
		}
		for _, f := range []struct{ key, path string }{{"ca_file", tls.CAFile}, {"cert_file", tls.CertFile}, {"key_file", tls.KeyFile}} {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				p.errorf(key+".tls_config."+f.key, "cannot read %s: %v", f.path, pathErrorCause(err))
			}
		}
		if err := t.ProxyConfig.Validate(); err != nil {
			p.errorf(key+".proxy_url", "%v", err)
		}
		if u := t.ProxyConfig.ProxyURL.URL; u != nil {
			if pw, ok := u.User.Password(); ok {
				p.addSecret(pw)
			}
			if u.Scheme == "" || u.Host == "" {
				p.errorf(key+".proxy_url", "invalid URL: want scheme://host:port")
			}
		}
	}
}

// checkURL returns the base URL as scheme://host[:port], or why it is not one.
// Messages never quote the URL: it might carry a password.
func checkURL(raw string) (string, string) {
	if raw == "" {
		return "", "missing: the server's base URL, e.g. https://vspc.example.com:1280"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "not a valid URL; want scheme://host:port"
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "the scheme must be http or https"
	case u.User != nil:
		return "", "must not contain credentials; use username and password_file"
	case u.Host == "" || u.Hostname() == "":
		return "", "missing host; want scheme://host:port"
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.Opaque != "":
		return "", "must be only scheme://host:port; the client adds the API path itself"
	}
	return u.Scheme + "://" + u.Host, ""
}

func (p *parser) validateCredentials(t *Target, key string, typeOK bool) {
	hasPassword := t.Password != "" || t.PasswordFile != ""
	hasAPIKey := t.APIKey != "" || t.APIKeyFile != ""
	if t.Password != "" && t.PasswordFile != "" {
		p.errorf(key+".password_file", "password and password_file are both set; keep one (password_file is preferred)")
	}
	if t.APIKey != "" && t.APIKeyFile != "" {
		p.errorf(key+".api_key_file", "api_key and api_key_file are both set; keep one (api_key_file is preferred)")
	}
	apiKeyKey := key + ".api_key_file"
	if t.APIKeyFile == "" {
		apiKeyKey = key + ".api_key"
	}
	switch {
	case hasAPIKey && typeOK && t.Type != TypeVSPC:
		p.errorf(apiKeyKey, "API keys are only supported by vspc targets; use username and password_file")
	case hasAPIKey && (hasPassword || t.Username != ""):
		p.errorf(apiKeyKey, "set either an API key or username with password_file, not both")
	case hasAPIKey:
	case t.Username == "" && !hasPassword:
		alt := ""
		if t.Type == TypeVSPC {
			alt = " (or api_key_file)"
		}
		p.errorf(key+".username", "missing credentials: set username and password_file%s", alt)
	case t.Username == "":
		p.errorf(key+".username", "missing: a password needs a username")
	case !hasPassword:
		p.errorf(key+".password_file", "missing: username %q needs password_file (or password)", t.Username)
	}
}

func (p *parser) validateCollectors(t *Target, key string, typeOK bool) {
	supported := SupportedCollectors(t.Type)
	seen := map[string]bool{}
	for j, c := range t.Collectors {
		ck := fmt.Sprintf("%s.collectors[%d]", key, j)
		switch {
		case !slices.Contains(allCollectors(), c):
			p.errorf(ck, "unknown collector %q (known: %s)", c, strings.Join(allCollectors(), ", "))
		case seen[c]:
			p.errorf(ck, "collector %q is listed twice", c)
		case typeOK && !slices.Contains(supported, c):
			p.errorf(ck, "collector %q is not supported by %s targets (supported: %s)", c, t.Type, strings.Join(supported, ", "))
		}
		seen[c] = true
	}
}

func (p *parser) validateTrigger(cfg *Config, opts LoadOptions) {
	tr := &cfg.Trigger
	if tr.MaxConcurrent < 1 {
		p.errorf("trigger.max_concurrent", "must be at least 1, got %d", tr.MaxConcurrent)
	}
	if tr.RateLimit.Actions < 1 {
		p.errorf("trigger.rate_limit.actions", "must be at least 1, got %d", tr.RateLimit.Actions)
	}
	if tr.RateLimit.Per <= 0 {
		p.errorf("trigger.rate_limit.per", "must be more than 0s")
	}
	if tr.ActionTimeout <= 0 {
		p.errorf("trigger.action_timeout", "must be more than 0s")
	}
	if tr.MaxDecisionsPerNotification < 1 {
		p.errorf("trigger.max_decisions_per_notification", "must be at least 1, got %d", tr.MaxDecisionsPerNotification)
	}
	if tr.StateFile != "" && !tr.DryRun {
		if err := writableDir(filepath.Dir(tr.StateFile)); err != nil {
			p.errorf("trigger.state_file", "the state file's directory cannot hold it: %v; create the directory (or mount its volume) and make it writable by the exporter", err)
		}
	}
	if tr.WebhookBearerTokenFile != "" && opts.WebhookBasicAuth {
		p.errorf("trigger.webhook_bearer_token_file", "cannot be combined with basic_auth_users in --web.config.file: "+
			"both use the Authorization header and Alertmanager sends only one; keep one of them")
	}
	if !tr.DryRun {
		if tr.WebhookBearerTokenFile == "" && !opts.WebhookBasicAuth && !tr.AllowUnauthenticatedWebhook {
			p.errorf("trigger.dry_run", "dry_run is false but the webhook has no authentication: "+
				"set trigger.webhook_bearer_token_file (and send it from Alertmanager's http_config.authorization), "+
				"or basic_auth_users in --web.config.file, or, if the network alone protects /webhook, "+
				"allow_unauthenticated_webhook: true")
		}
		if tr.StateFile == "" && !tr.Coordination.Enabled() {
			p.errorf("trigger.state_file", "missing: dry_run is false, and decisions must be recorded in a durable state file (or, with several replicas, in trigger.coordination.etcd) before any call is made")
		}
	}
	p.validateCoordination(&tr.Coordination)
	for j, m := range tr.HeartbeatMatchers {
		if _, err := labels.ParseMatcher(m); err != nil {
			p.errorf(fmt.Sprintf("trigger.heartbeat_matchers[%d]", j), "invalid matcher: %v", err)
		}
	}
	names := map[string]string{}
	for i := range tr.Rules {
		r := &tr.Rules[i]
		key := fmt.Sprintf("trigger.rules[%d]", i)
		if r.Name == "" {
			p.errorf(key+".name", "missing: every rule needs a name")
		} else if first, dup := names[r.Name]; dup {
			p.errorf(key+".name", "duplicate rule name %q (first used on line %d)", r.Name, p.lineOf(first))
		} else {
			names[r.Name] = key + ".name"
		}
		if len(r.Matchers) == 0 {
			p.errorf(key+".matchers", `missing: a rule needs at least one matcher, e.g. 'alertname="SiteDown"'`)
		}
		r.ParsedMatchers = nil
		for j, m := range r.Matchers {
			pm, err := labels.ParseMatcher(m)
			if err != nil {
				p.errorf(fmt.Sprintf("%s.matchers[%d]", key, j), "invalid matcher: %v", err)
				continue
			}
			r.ParsedMatchers = append(r.ParsedMatchers, pm)
		}
		if r.MinAlerts < 1 {
			p.errorf(key+".min_alerts", "must be at least 1, got %d", r.MinAlerts)
		}
		for j, l := range r.QuorumBy {
			if !labelNameRE.MatchString(l) || slices.Contains(r.QuorumBy[:j], l) {
				p.errorf(fmt.Sprintf("%s.quorum_by[%d]", key, j), "%q is not a label name, or is listed twice", l)
			}
		}
		switch {
		case r.Approval.Within < 0:
			p.errorf(key+".approval.within", "must be more than 0s: how long a person has to approve")
		case r.Approval.Asks() && tr.ApproverTokenFile == "":
			p.errorf(key+".approval", "needs trigger.approver_token_file: nobody could approve without it")
		}
		p.validateAction(cfg, &r.Action, key+".action")
	}
}

// validateAction checks a rule's action against its kind's declaration
// (RegisterAction): the type, the target and its type, the kind's own keys,
// and that no key the kind does not read is set, so that a misplaced key
// does not silently do nothing.
func (p *parser) validateAction(cfg *Config, a *Action, key string) {
	spec, known := LookupAction(a.Type)
	switch {
	case a.Type == "":
		p.errorf(key+".type", "missing: one of %s", strings.Join(ActionTypes(), ", "))
	case !known:
		p.errorf(key+".type", "unknown action type %q (known: %s)", a.Type, strings.Join(ActionTypes(), ", "))
	}
	if a.Target == "" {
		p.errorf(key+".target", "missing: the name of the target to act on")
	} else if t := cfg.TargetByName(a.Target); t == nil {
		p.errorf(key+".target", "no target named %q", a.Target)
	} else if known && knownTargetType(t.Type) && t.Type != spec.TargetType {
		p.errorf(key+".target", "%s needs a target of type %s, but %q is of type %s", a.Type, spec.TargetType, a.Target, t.Type)
	}
	if !known {
		return
	}
	if spec.Check != nil {
		spec.Check(a, func(k, format string, args ...any) { p.errorf(key+"."+k, format, args...) })
	}
	used := map[string]bool{}
	for _, k := range spec.Keys {
		used[k] = true
	}
	// allow is read only with the label that lets the alert choose.
	labelKeys := used["plan_label"] || used["replica_label"]
	used["allow"] = used["allow"] && ((used["plan_label"] && a.PlanLabel != "") || (used["replica_label"] && a.ReplicaLabel != ""))
	for _, f := range []struct {
		key string
		set bool
	}{
		{"plan", a.Plan != ""}, {"plan_label", a.PlanLabel != ""}, {"allow", len(a.Allow) > 0}, {"test", a.Test},
		{"replicas", len(a.Replicas) > 0}, {"replica_label", a.ReplicaLabel != ""}, {"replica_point_ids", len(a.ReplicaPointIDs) > 0},
		{"reason", a.Reason != ""}, {"cdp_replica", a.CdpReplica != ""}, {"vm", a.VM != ""},
	} {
		switch {
		case !f.set || used[f.key]:
		case f.key == "allow" && labelKeys:
			p.errorf(key+".allow", "allow only applies with plan_label or replica_label")
		default:
			p.errorf(key+"."+f.key, "not used by %s", a.Type)
		}
	}
}

func knownTargetType(s string) bool {
	return s == TypeVSPC || s == TypeEM || s == TypeVBR
}

// writableDir checks that dir exists, is a directory and accepts a new file,
// by creating and removing one: a state file in a missing or read-only
// directory would pass every other check and fail on the first decision.
func writableDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".veeam-failover-exporter-check-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// validateCoordination checks trigger.coordination.etcd when it is written.
func (p *parser) validateCoordination(c *Coordination) {
	const key = "trigger.coordination.etcd"
	_, written := p.lines[key]
	if !written && !c.Enabled() {
		return
	}
	e := &c.Etcd
	if len(e.Endpoints) == 0 {
		p.errorf(key+".endpoints", "missing: list the client URLs of the etcd members (http://host:2379 or https://host:2379)")
	}
	for i, ep := range e.Endpoints {
		k := fmt.Sprintf("%s.endpoints[%d]", key, i)
		u, err := url.Parse(ep)
		switch {
		case strings.TrimSpace(ep) == "":
			p.errorf(k, "empty endpoint")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			p.errorf(k, "want a client URL such as https://etcd-0:2379, got %q", ep)
		case u.User != nil:
			p.errorf(k, "must not carry credentials: use username and password_file")
		case u.Scheme == "http" && (e.TLSConfig.CAFile != "" || e.TLSConfig.CertFile != "" || e.TLSConfig.CA != ""):
			p.errorf(k, "is http:// but tls_config is set: use https://")
		}
	}
	if e.Prefix == "" || !strings.HasPrefix(e.Prefix, "/") || strings.ContainsRune(e.Prefix, 0) {
		p.errorf(key+".prefix", "must start with / (default %s), got %q", defaultEtcdPrefix, e.Prefix)
	}
	ttl := time.Duration(e.LeaseTTL)
	if ttl < 2*time.Second || ttl%time.Second != 0 {
		p.errorf(key+".lease_ttl", "must be whole seconds, at least 2s (default %s), got %s", defaultEtcdLeaseTTL, ttl)
	}
	if e.PasswordFile != "" && e.Username == "" {
		p.errorf(key+".username", "missing: password_file is set")
	}
	if e.Username != "" && e.PasswordFile == "" {
		p.errorf(key+".password_file", "missing: username %s needs a password", e.Username)
	}
}
