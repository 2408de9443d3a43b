package trigger

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ruleNone is the rule label of alerts no rule matches.
const ruleNone = "none"

// metrics are owned by one Trigger and registered on its Registerer.
type metrics struct {
	webhookRequests *prometheus.CounterVec
	// approverRequests counts the approver endpoints' answers: a run of
	// 401s is someone without the approver token trying to act.
	approverRequests *prometheus.CounterVec
	alertsReceived   *prometheus.CounterVec
	blocked          *prometheus.CounterVec
	actions          *prometheus.CounterVec
	dryRunActions    *prometheus.CounterVec
	failures         *prometheus.CounterVec
	outcomes         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	lastAction       *prometheus.GaugeVec
	lastActionInfo   *prometheus.GaugeVec
	pending          *prometheus.GaugeVec
	approvals        prometheus.Collector
	heartbeat        prometheus.Collector
	armed            prometheus.GaugeFunc
	dryRun           prometheus.GaugeFunc
	killSwitch       prometheus.GaugeFunc
	stateError       prometheus.GaugeFunc
	inFlight         prometheus.GaugeFunc
	tokens           prometheus.GaugeFunc

	// retired: rules removed by a reload whose series are not deleted yet
	// (metrics_rules.go); guarded by the Trigger's mutex.
	retired     map[string]*retiredRule
	retiredKeep time.Duration
}

func newMetrics(t *Trigger) *metrics {
	return &metrics{
		retired:     map[string]*retiredRule{},
		retiredKeep: defaultRetiredKeep,
		webhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veeam_trigger_webhook_requests_total",
			Help: "Alertmanager webhook requests received, by HTTP status code answered.",
		}, []string{"code"}),
		approverRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veeam_trigger_approver_requests_total",
			Help: "Requests to the approver endpoints (POST /trigger/approvals/{id}, POST /trigger/actions), by HTTP status code answered; 401: a missing or wrong approver token.",
		}, []string{"code"}),
		alertsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veeam_trigger_alerts_received_total",
			Help: "Alerts received in accepted webhook notifications, by alert status.",
		}, []string{"status"}),
		blocked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veeam_trigger_blocked_total",
			Help: "Decisions stopped by a guard, by rule and guard (one per rule, object and guard per notification; dry_run counts actions not made in dry-run mode).",
		}, []string{"rule", "guard"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veeam_trigger_actions_total",
			Help: "Failover calls made to Veeam, by rule and action type.",
		}, []string{"rule", "action"}),
		dryRunActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veeam_trigger_dry_run_actions_total",
			Help: "Failover calls every guard agreed to but that were not made because the trigger is in dry-run mode.",
		}, []string{"rule", "action"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veeam_trigger_action_failures_total",
			Help: "Failover calls refused by Veeam or whose task or session ended failed.",
		}, []string{"rule", "action"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veeam_trigger_action_outcomes_total",
			Help: "Decided actions by how they ended: success, warning, failed, timeout, abandoned, submitted, uncertain (maybe done: alert on it), expired or rejected.",
		}, []string{"rule", "action", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "veeam_trigger_action_duration_seconds",
			Help:    "Time from the failover call to its tracked end.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400},
		}, []string{"rule", "action"}),
		lastAction: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veeam_trigger_last_action_timestamp_seconds",
			Help: "When the rule last made a failover call, in seconds since the epoch.",
		}, []string{"rule"}),
		lastActionInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veeam_trigger_last_action_info",
			Help: "What the rule's last failover call (since the exporter started) acted on, always 1: one series per rule, replaced at each call, so that alerts can name the object.",
		}, []string{"rule", "action", "target", "object"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veeam_trigger_pending_decisions",
			Help: "Decisions kept to be evaluated again by the trigger itself, by rule and the guard they wait on (for, target_state: target unreadable, rate_limit, concurrency).",
		}, []string{"rule", "guard"}),
		approvals: newApprovalsCollector(t),
		heartbeat: newHeartbeatCollector(t),
		dryRun: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veeam_trigger_dry_run",
			Help: "1 when the configuration sets dry_run: true (decisions are shown, never called).",
		}, func() float64 { return boolFloat(t.dryRunConfigured()) }),
		killSwitch: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veeam_trigger_kill_switch_active",
			Help: "1 while the kill switch file exists (or cannot be checked): no action is called.",
		}, func() float64 { kill, _ := killSwitch(t.killSwitchPath()); return boolFloat(kill) }),
		armed: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veeam_trigger_armed",
			Help: "1 when the trigger would make failover calls: not in dry-run mode, no kill switch file, state file readable.",
		}, func() float64 { return boolFloat(t.Armed()) }),
		stateError: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veeam_trigger_state_error",
			Help: "1 while the trigger is disarmed because its state file could not be used (unreadable, or missing with a history it cannot rebuild) or its audit log cannot be opened (see /trigger).",
		}, func() float64 { return boolFloat(t.stateError()) }),
		inFlight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veeam_trigger_actions_in_flight",
			Help: "Decided actions not finished yet (decided, being sent, or sent and being tracked).",
		}, func() float64 { return float64(t.inFlightCount()) }),
		tokens: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veeam_trigger_rate_limit_tokens",
			Help: "Tokens left in the global rate-limit bucket; an action needs one.",
		}, func() float64 { return t.tokens() }),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		m.webhookRequests, m.approverRequests, m.alertsReceived, m.blocked, m.actions, m.dryRunActions,
		m.failures, m.outcomes, m.duration, m.lastAction, m.lastActionInfo, m.pending, m.approvals, m.heartbeat, m.armed, m.dryRun, m.killSwitch, m.stateError, m.inFlight, m.tokens,
	} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// initRules creates the series of every rule at 0 so that rate() and
// absent() work from the first scrape.
func (m *metrics) initRules(rules []*rule) {
	for _, s := range pipeline {
		if s.noRule {
			m.blocked.WithLabelValues(ruleNone, s.name)
		}
	}
	for _, r := range rules {
		for _, s := range pipeline {
			m.blocked.WithLabelValues(r.name, s.name)
		}
		a := r.action.Type
		m.actions.WithLabelValues(r.name, a)
		m.dryRunActions.WithLabelValues(r.name, a)
		m.failures.WithLabelValues(r.name, a)
		for _, o := range outcomes {
			m.outcomes.WithLabelValues(r.name, a, o)
		}
	}
	for _, r := range rules {
		for _, g := range pendingGuards {
			m.pending.WithLabelValues(r.name, g)
		}
	}
	for _, s := range []string{statusFiring, statusResolved} {
		m.alertsReceived.WithLabelValues(s)
	}
	for _, c := range []int{200, 400, 401, 405, 413, 415, 500, 503} {
		m.webhookRequests.WithLabelValues(strconv.Itoa(c))
	}
	for _, c := range []int{200, 401, 403} {
		m.approverRequests.WithLabelValues(strconv.Itoa(c))
	}
}

// setPendingLocked sets veeam_trigger_pending_decisions from the pending
// decisions: every rule's series exist, at 0 when nothing waits.
func (m *metrics) setPendingLocked(rules []*rule, pending []*pendingDecision) {
	m.pending.Reset()
	for _, r := range rules {
		for _, g := range pendingGuards {
			m.pending.WithLabelValues(r.name, g).Set(0)
		}
	}
	for _, p := range pending {
		m.pending.WithLabelValues(p.Rule, p.Guard).Inc()
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
