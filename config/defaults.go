package config

import (
	"time"

	"github.com/prometheus/common/model"
)

// Defaults that are not zero values. They are set before a file is decoded, so
// an explicit value in the file (even false or 0) always wins.
const (
	defaultTargetTimeout     = 30 * time.Second
	defaultSessionsPerPlan   = 1
	defaultScrapeConcurrency = 8
	defaultMaxConcurrent     = 1
	defaultRateLimitActions  = 2
	defaultRateLimitPer      = time.Hour
	defaultActionTimeout     = 30 * time.Minute
	defaultMinAlerts         = 1
	defaultCooldown          = 24 * time.Hour
	defaultMaxDecisions      = 200
	defaultEtcdPrefix        = "/veeam_failover_exporter/"
	defaultEtcdLeaseTTL      = 15 * time.Second
)

// Default returns a configuration with every default applied and no targets
// or rules. The trigger is in dry-run mode.
func Default() *Config {
	return &Config{
		Collectors: CollectorsConfig{
			Statesets:             StatesetsCurrent,
			FailoverPlanObjects:   FailoverPlanObjectsConfig{PerObject: true},
			CloudFailoverSessions: CloudFailoverSessionsConfig{SessionsPerPlan: defaultSessionsPerPlan},
		},
		Scrape: ScrapeConfig{Concurrency: defaultScrapeConcurrency},
		Trigger: TriggerConfig{
			DryRun:        true,
			MaxConcurrent: defaultMaxConcurrent,
			RateLimit: RateLimit{
				Actions: defaultRateLimitActions,
				Per:     model.Duration(defaultRateLimitPer),
			},
			ActionTimeout:               model.Duration(defaultActionTimeout),
			MaxDecisionsPerNotification: defaultMaxDecisions,
			Coordination: Coordination{Etcd: EtcdCoordination{
				Prefix:   defaultEtcdPrefix,
				LeaseTTL: model.Duration(defaultEtcdLeaseTTL),
			}},
		},
	}
}

// defaulter is implemented by list elements that have defaults of their own;
// the decoder calls it on each new element before decoding into it.
type defaulter interface {
	setDefaults()
}

func (t *Target) setDefaults() {
	t.Timeout = model.Duration(defaultTargetTimeout)
}

func (r *Rule) setDefaults() {
	r.MinAlerts = defaultMinAlerts
	r.Cooldown = model.Duration(defaultCooldown)
}
