// Package demo runs the exporter against its embedded simulator: it starts the
// three simulated Veeam APIs with TLS and writes a config file (with its CA and
// password files) that points one target of each type at them, with the trigger
// armed against the simulator. The config goes through the same loader as a
// real one, so --demo shows exactly what a user's deployment would.
package demo

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
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

// configText is the demo's config file, a text/template filled with the
// simulator's addresses and the estate's names.
//
//go:embed config.yml.tmpl
var configText string

var configTemplate = template.Must(template.New("demo config").Parse(configText))

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
	var cfg bytes.Buffer
	err := configTemplate.Execute(&cfg, struct {
		VSPCURL, EMURL, VBRURL, Username, Plan, AllowedReplicas, ApprovalRule, ApprovalPlan string
	}{e.Sim.VSPCURL(), e.Sim.EMURL(), e.Sim.VBRURL(), so.Username, plan.Name, e.allowedReplicas(), ApprovalRule, e.ApprovalPlan().Name})
	if err != nil {
		return fmt.Errorf("demo: config: %w", err)
	}
	if err := os.WriteFile(e.ConfigFile, cfg.Bytes(), 0o600); err != nil {
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
