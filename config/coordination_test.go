package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCoordination: trigger.coordination.etcd replaces the state file of an
// armed trigger, gets its defaults, reads its password from a file and
// refuses what cannot work, naming the key and never the password.
func TestCoordination(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "t0ken\n")
	writeFile(t, filepath.Join(dir, "etcd.pass"), "s3cret-etcd\n")
	parse := func(etcd string) (*Config, error) {
		yaml := "trigger:\n  dry_run: false\n  webhook_bearer_token_file: token\n  coordination:\n    etcd: " + etcd + "\n"
		return Parse([]byte(yaml), filepath.Join(dir, "c.yml"), LoadOptions{})
	}

	cfg, err := parse(`{endpoints: ["https://etcd-0:2379", "https://etcd-1:2379"], username: exporter, password_file: etcd.pass, tls_config: {insecure_skip_verify: false}}`)
	if err != nil {
		t.Fatalf("armed with coordination and no state_file: %v", err)
	}
	e := cfg.Trigger.Coordination.Etcd
	if !cfg.Trigger.Coordination.Enabled() || e.Prefix != "/veeam_failover_exporter/" || time.Duration(e.LeaseTTL) != 15*time.Second {
		t.Fatalf("defaults: %+v", e)
	}
	if string(e.Password) != "s3cret-etcd" || e.PasswordFile != filepath.Join(dir, "etcd.pass") {
		t.Fatalf("password not read from %s", e.PasswordFile)
	}
	if cfg, err := Parse([]byte("trigger: {}\n"), "c.yml", LoadOptions{}); err != nil || cfg.Trigger.Coordination.Enabled() {
		t.Fatalf("no coordination by default: %v", err)
	}

	for _, tc := range []struct{ name, etcd, problem string }{
		{"no endpoints", `{prefix: /x/}`, "trigger.coordination.etcd.endpoints: missing"},
		{"endpoint without scheme", `{endpoints: ["etcd-0:2379"]}`, `trigger.coordination.etcd.endpoints[0]: want a client URL such as https://etcd-0:2379, got "etcd-0:2379"`},
		{"credentials in the URL", `{endpoints: ["http://u:p@etcd-0:2379"]}`, "must not carry credentials"},
		{"prefix", `{endpoints: ["http://etcd-0:2379"], prefix: "x/"}`, "trigger.coordination.etcd.prefix: must start with /"},
		{"lease too short", `{endpoints: ["http://etcd-0:2379"], lease_ttl: 1500ms}`, "trigger.coordination.etcd.lease_ttl: must be whole seconds, at least 2s"},
		{"password without user", `{endpoints: ["http://etcd-0:2379"], password_file: etcd.pass}`, "trigger.coordination.etcd.username: missing"},
		{"user without password", `{endpoints: ["http://etcd-0:2379"], username: exporter}`, "trigger.coordination.etcd.password_file: missing"},
		{"password file missing", `{endpoints: ["http://etcd-0:2379"], username: u, password_file: nope}`, "trigger.coordination.etcd.password_file: cannot read"},
		{"unknown key", `{endpoints: ["http://etcd-0:2379"], ttl: 5s}`, "trigger.coordination.etcd.ttl: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.etcd)
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("want %q, got: %v", tc.problem, err)
			}
			if strings.Contains(err.Error(), "s3cret-etcd") {
				t.Fatalf("password in the error: %v", err)
			}
		})
	}

	// Without coordination an armed trigger still needs its state file.
	_, err = Parse([]byte("trigger: {dry_run: false, webhook_bearer_token_file: token}\n"), filepath.Join(dir, "c.yml"), LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "trigger.state_file: missing") {
		t.Fatalf("armed without state_file nor coordination: %v", err)
	}
}
