package config

import (
	"github.com/prometheus/alertmanager/pkg/labels"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Action types, as written in a rule's `action.type`. Each is declared (its
// keys, validation and behaviour) by its file in package trigger, which
// registers it with RegisterAction.
const (
	ActionVSPCPlanStart        = "vspc_plan_start"
	ActionVSPCPlanUndo         = "vspc_plan_undo"
	ActionEMPlanStart          = "em_plan_start"
	ActionEMPlanUndo           = "em_plan_undo"
	ActionEMCdpFailover        = "em_cdp_failover"
	ActionVBRFailover          = "vbr_failover"
	ActionVBRPlannedFailover   = "vbr_planned_failover"
	ActionVBRPermanentFailover = "vbr_permanent_failover"
	ActionVBRUndoFailover      = "vbr_undo_failover"
)

// Config is the whole exporter configuration file.
type Config struct {
	Targets    []Target         `yaml:"targets"`
	Collectors CollectorsConfig `yaml:"collectors"`
	Scrape     ScrapeConfig     `yaml:"scrape"`
	Trigger    TriggerConfig    `yaml:"trigger"`
}

// Target is one Veeam server; its name becomes the `target` label.
type Target struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"` // vspc | em | vbr
	URL  string `yaml:"url"`

	Username     string            `yaml:"username"`
	Password     promconfig.Secret `yaml:"password,omitempty"`
	PasswordFile string            `yaml:"password_file,omitempty"`
	APIKey       promconfig.Secret `yaml:"api_key,omitempty"`
	APIKeyFile   string            `yaml:"api_key_file,omitempty"`
	APIVersion   string            `yaml:"api_version,omitempty"`

	TLSConfig   promconfig.TLSConfig   `yaml:"tls_config,omitempty"`
	ProxyConfig promconfig.ProxyConfig `yaml:",inline"`

	Timeout    model.Duration `yaml:"timeout"`    // default 30s
	Collectors []string       `yaml:"collectors"` // default: CollectorsFor(Type)
}

// CollectorsConfig holds per-collector settings shared by all targets.
type CollectorsConfig struct {
	// Statesets is StatesetsCurrent (default): of an enum, only the current
	// value's series, and of a count per value, only the non-zero ones; or
	// StatesetsAll: every value, 0 included (OpenMetrics statesets).
	Statesets             string                      `yaml:"statesets"`
	FailoverPlanObjects   FailoverPlanObjectsConfig   `yaml:"failover_plan_objects"`
	CloudFailoverSessions CloudFailoverSessionsConfig `yaml:"cloud_failover_sessions"`
}

// The values of collectors.statesets.
const (
	StatesetsCurrent = "current"
	StatesetsAll     = "all"
)

// FailoverPlanObjectsConfig controls per-VM series.
type FailoverPlanObjectsConfig struct {
	PerObject bool `yaml:"per_object"` // default true; false: no per-VM series at all
	// LastSessionStatus adds, per VM, the status and restore point of its
	// last failover session (up to 6 more series per VM; default false). Needs
	// PerObject.
	LastSessionStatus bool `yaml:"last_session_status"`
}

// CloudFailoverSessionsConfig controls per-session series.
type CloudFailoverSessionsConfig struct {
	SessionsPerPlan int `yaml:"sessions_per_plan"` // default 1; 0 = counts only
}

// ScrapeConfig controls how hard a scrape may press on each Veeam server.
type ScrapeConfig struct {
	Concurrency int            `yaml:"concurrency"`  // default 8
	MinInterval model.Duration `yaml:"min_interval"` // default 0: always fetch
}

// TriggerConfig is the Alertmanager webhook receiver.
type TriggerConfig struct {
	DryRun                      bool              `yaml:"dry_run"` // default true
	AllowUnauthenticatedWebhook bool              `yaml:"allow_unauthenticated_webhook,omitempty"`
	WebhookBearerTokenFile      string            `yaml:"webhook_bearer_token_file,omitempty"`
	WebhookBearerToken          promconfig.Secret `yaml:"-"` // read from the file
	// ApproverTokenFile holds the bearer token that answers approvals
	// (POST /trigger/approvals/{id}) and runs manual actions (POST
	// /trigger/actions). It must differ from the webhook's token: whoever can
	// send alerts must not also be able to approve them.
	ApproverTokenFile string            `yaml:"approver_token_file,omitempty"`
	ApproverToken     promconfig.Secret `yaml:"-"` // read from the file
	// HeartbeatMatchers recognise a Watchdog-style alert that proves the
	// Alertmanager -> webhook path works; it is recorded, never acted on.
	HeartbeatMatchers []string  `yaml:"heartbeat_matchers,omitempty"`
	StateFile         string    `yaml:"state_file,omitempty"`
	AuditLog          string    `yaml:"audit_log,omitempty"`
	KillSwitchFile    string    `yaml:"kill_switch_file,omitempty"`
	MaxConcurrent     int       `yaml:"max_concurrent"` // default 1
	RateLimit         RateLimit `yaml:"rate_limit"`
	// ActionTimeout bounds how long an action is tracked before it ends as
	// `timeout` (default 30m).
	ActionTimeout model.Duration `yaml:"action_timeout"`
	// MaxDecisionsPerNotification bounds the decisions one webhook
	// notification may make (default 200); a larger one is refused with 400
	// before anything is decided.
	MaxDecisionsPerNotification int    `yaml:"max_decisions_per_notification"`
	Rules                       []Rule `yaml:"rules,omitempty"`
	// Coordination keeps the decision-making memory in a shared store so
	// that two or three replicas act exactly once; without it the local
	// state_file is used (one replica).
	Coordination Coordination `yaml:"coordination,omitempty"`
}

// Coordination is the trigger's shared store.
type Coordination struct {
	Etcd EtcdCoordination `yaml:"etcd,omitempty"`
}

// Enabled reports whether a shared store is configured.
func (c *Coordination) Enabled() bool { return len(c.Etcd.Endpoints) > 0 }

// EtcdCoordination says how to reach etcd and how long a replica's claims
// outlive it.
type EtcdCoordination struct {
	Endpoints    []string             `yaml:"endpoints"`
	Prefix       string               `yaml:"prefix,omitempty"` // default /veeam_failover_exporter/
	TLSConfig    promconfig.TLSConfig `yaml:"tls_config,omitempty"`
	Username     string               `yaml:"username,omitempty"`
	PasswordFile string               `yaml:"password_file,omitempty"`
	Password     promconfig.Secret    `yaml:"-"` // read from the file
	// LeaseTTL is how long a replica's claims outlive it after a crash
	// (whole seconds, default 15s): the hand-over delay.
	LeaseTTL model.Duration `yaml:"lease_ttl,omitempty"`
}

// RateLimit is the global token bucket across all rules.
type RateLimit struct {
	Actions int            `yaml:"actions"` // default 2
	Per     model.Duration `yaml:"per"`     // default 1h
}

// Rule maps matching firing alerts to one action.
type Rule struct {
	Name     string   `yaml:"name"`
	Matchers []string `yaml:"matchers"`
	// ParsedMatchers is Matchers parsed with Alertmanager's matcher syntax.
	ParsedMatchers labels.Matchers `yaml:"-"`
	For            model.Duration  `yaml:"for,omitempty"`
	MinAlerts      int             `yaml:"min_alerts"` // default 1
	// QuorumBy makes the quorum count distinct values of these labels among
	// the matching firing alerts (e.g. the prober), not distinct label sets.
	QuorumBy []string       `yaml:"quorum_by,omitempty"`
	Cooldown model.Duration `yaml:"cooldown"` // default 24h
	Action   Action         `yaml:"action"`
	// Approval, with a within, makes a decision wait for a person.
	Approval Approval `yaml:"approval,omitempty"`
}

// Approval asks a person before the call: a decision that passed every
// guard up to target_state waits until approved, rejected or Within passes
// (outcome expired).
type Approval struct {
	Within model.Duration `yaml:"within"` // 0: no approval asked
}

// Asks reports whether the rule asks a person first.
func (a Approval) Asks() bool { return a.Within > 0 }

// Action is what a rule does once every guard agrees.
type Action struct {
	Type   string `yaml:"type"`
	Target string `yaml:"target"`

	// Plan (name or id) for vspc_plan_* and em_plan_*; or PlanLabel names the
	// alert label that carries it, and Allow lists the plans it may name.
	Plan      string   `yaml:"plan,omitempty"`
	PlanLabel string   `yaml:"plan_label,omitempty"`
	Allow     []string `yaml:"allow,omitempty"`
	// Test starts a VSPC plan in test mode.
	Test bool `yaml:"test,omitempty"`

	// Replicas (names or ids) for vbr_*; or ReplicaLabel names the alert label
	// that carries one replica, checked against Allow. ReplicaPointIDs are
	// used as given instead of resolving replicas.
	Replicas        []string `yaml:"replicas,omitempty"`
	ReplicaLabel    string   `yaml:"replica_label,omitempty"`
	ReplicaPointIDs []string `yaml:"replica_point_ids,omitempty"`
	Reason          string   `yaml:"reason,omitempty"`

	// CdpReplica and VM identify the CDP replica VM for em_cdp_failover.
	CdpReplica string `yaml:"cdp_replica,omitempty"`
	VM         string `yaml:"vm,omitempty"`
}
