// Package demo runs the exporter against its embedded simulator: it starts the
// three simulated Veeam APIs with TLS and writes a config file (with its CA and
// password files) that points one target of each type at them, with the trigger
// armed against the simulator. The config goes through the same loader as a
// real one, so --demo shows exactly what a user's deployment would.
package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// WebhookToken is the bearer token the demo's webhook expects; the README's
// curl example sends it.
const WebhookToken = "demo-webhook-token"

// ApproverToken answers the demo's approvals and runs its manual actions
// (trigger.approver_token_file); veeam_failover_tool sends it.
const ApproverToken = "demo-approver-token"

// ApprovalRule is the demo rule that asks a person before it starts
// ApprovalPlan (alerts SiteDown with site="b").
const ApprovalRule = "site-b-down-approval"

// Env is a running demo: the simulator and the files that describe it.
type Env struct {
	Sim        *simulator.Simulator
	Dir        string
	ConfigFile string
}

// Options size the demo estate.
type Options struct {
	Seed          int64
	Dir           string // where config, secrets and state go; a temp dir when empty
	ActionTime    time.Duration
	SimulatorOpts *simulator.Options // overrides everything else when set
}

// Start starts the simulator and writes the demo config.
func Start(o Options) (*Env, error) {
	so := simulator.Options{
		Seed:           o.Seed,
		TLS:            true,
		ActionDuration: o.ActionTime,
		VSPC:           simulator.VSPCOptions{Plans: 40, ObjectsPerPlan: 8, BackupServers: 3},
		EM:             simulator.EMOptions{Plans: 12, VMsPerPlan: 4, CloudSessions: 60, CdpReplicas: 2, VMsPerCdpReplica: 3},
		VBR:            simulator.VBROptions{Replicas: 30, PointsPerReplica: 3},
	}
	if so.ActionDuration == 0 {
		so.ActionDuration = 3 * time.Second
	}
	if o.SimulatorOpts != nil {
		so = *o.SimulatorOpts
		so.TLS = true
	}
	if so.Username == "" {
		so.Username = "monitor"
	}
	if so.Password == "" {
		so.Password = "sim-password"
	}
	sim, err := simulator.Start(so)
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	dir := o.Dir
	if dir == "" {
		dir, err = os.MkdirTemp("", "veeam_failover_exporter-demo-")
		if err != nil {
			sim.Close()
			return nil, fmt.Errorf("demo dir: %w", err)
		}
	}
	env := &Env{Sim: sim, Dir: dir, ConfigFile: filepath.Join(dir, "veeam_failover_exporter.yml")}
	if err := env.writeFiles(so); err != nil {
		sim.Close()
		return nil, err
	}
	return env, nil
}

// Close stops the simulator. The directory is left for inspection (state file, audit log).
func (e *Env) Close() error { return e.Sim.Close() }

// DemoPlan is the VSPC plan the demo's example rules act on: the first Ready plan.
func (e *Env) DemoPlan() simulator.VSPCPlan { return e.readyPlan(0) }

// ApprovalPlan is the VSPC plan of ApprovalRule: the second Ready plan.
func (e *Env) ApprovalPlan() simulator.VSPCPlan { return e.readyPlan(1) }

// readyPlan is the n-th Ready VSPC plan of the estate (the first plan when
// there are fewer).
func (e *Env) readyPlan(n int) simulator.VSPCPlan {
	plans := e.Sim.Estate().VSPC.Plans
	for _, p := range plans {
		if p.Status == "Ready" {
			if n == 0 {
				return p
			}
			n--
		}
	}
	return plans[0]
}

func (e *Env) writeFiles(so simulator.Options) error {
	files := map[string]string{
		"ca.pem":         string(e.Sim.CACertPEM()),
		"password":       so.Password + "\n",
		"webhook.token":  WebhookToken + "\n",
		"approver.token": ApproverToken + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(e.Dir, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("demo: write %s: %w", name, err)
		}
	}
	plan := e.DemoPlan()
	cfg := fmt.Sprintf(`# Written by veeam_failover_exporter --demo: three targets on the embedded simulator.
targets:
  - name: vspc-demo
    type: vspc
    url: %[1]s
    username: %[4]s
    password_file: password
    tls_config: {ca_file: ca.pem}
  - name: em-demo
    type: em
    url: %[2]s
    username: %[4]s
    password_file: password
    tls_config: {ca_file: ca.pem}
  - name: vbr-demo
    type: vbr
    url: %[3]s
    username: %[4]s
    password_file: password
    tls_config: {ca_file: ca.pem}

collectors:
  # Per VM: info and recovery point by default; the demo also shows each VM's
  # last failover session (last_session_status, off by default: up to 6 more
  # series per VM).
  failover_plan_objects: {per_object: true, last_session_status: true}
  cloud_failover_sessions: {sessions_per_plan: 1}

scrape:
  concurrency: 8

trigger:
  # Armed: the demo acts on the simulator, never on a real server.
  dry_run: false
  webhook_bearer_token_file: webhook.token
  # Approvals and manual actions (POST /trigger/approvals/{id}, /trigger/actions,
  # veeam_failover_tool): a token of their own.
  approver_token_file: approver.token
  # The always-firing VeeamTriggerWatchdog proves the Alertmanager -> webhook path.
  heartbeat_matchers: ['alertname="VeeamTriggerWatchdog"']
  state_file: trigger-state.json
  audit_log: audit.jsonl
  kill_switch_file: disarm
  max_concurrent: 2
  rate_limit: {actions: 5, per: 1h}
  rules:
    - name: site-a-down
      matchers: ['alertname="SiteDown"', 'site="a"']
      for: 0s
      min_alerts: 1
      cooldown: 1h
      action:
        type: vspc_plan_start
        target: vspc-demo
        plan: %[5]q
    # Site B fails over only when a person approves (veeam_failover_tool approve ID).
    - name: %[7]s
      matchers: ['alertname="SiteDown"', 'site="b"']
      cooldown: 1h
      approval: {within: 15m}
      action:
        type: vspc_plan_start
        target: vspc-demo
        plan: %[8]q
    - name: replica-vm-down
      matchers: ['alertname="VMDown"']
      cooldown: 1h
      action:
        type: vbr_failover
        target: vbr-demo
        replica_label: replica
        allow: [%[6]s]
        reason: "demo: VM down"
`, e.Sim.VSPCURL(), e.Sim.EMURL(), e.Sim.VBRURL(), so.Username, plan.Name, e.allowedReplicas(), ApprovalRule, e.ApprovalPlan().Name)
	if err := os.WriteFile(e.ConfigFile, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("demo: write config: %w", err)
	}
	return nil
}

func (e *Env) allowedReplicas() string {
	out := ""
	for i, r := range e.Sim.Estate().VBR.Replicas {
		if i == 3 {
			break
		}
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", r.Name)
	}
	return out
}
