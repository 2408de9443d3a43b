package trigger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

// Options are the run-time settings of a Trigger that do not come from the
// config file.
type Options struct {
	// Logger receives decisions and outcomes; nil discards them.
	Logger *slog.Logger
	// Registerer receives the trigger's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// WebhookBasicAuth says that the web config enforces basic auth in front
	// of the webhook, so that dry_run: false without a bearer token is
	// acceptable.
	WebhookBasicAuth bool
	// PollInterval is how often an action's task, session or plan is read
	// while tracking it; default 2s.
	PollInterval time.Duration
	// CheckTimeout bounds the live reads of the target_state guard; default
	// 15s.
	CheckTimeout time.Duration
	// CallTimeout bounds one failover call; default 2m.
	CallTimeout time.Duration
}

const (
	defaultPollInterval  = 2 * time.Second
	defaultCheckTimeout  = 15 * time.Second
	defaultCallTimeout   = 2 * time.Minute
	defaultActionTimeout = 30 * time.Minute
	// minDedupTTL is how long a handled alert group is remembered at least
	// (longer when the rule's cooldown is longer): an alert instance acts
	// once, however long it fires.
	minDedupTTL = 90 * 24 * time.Hour
	// keepCooldownMin is how long cooldown entries are kept at least, so a
	// rule removed and added back by a reload keeps its cooldown.
	keepCooldownMin = 30 * 24 * time.Hour
	recentMax       = 100
)

// Trigger is the webhook receiver with its guard pipeline, durable state and
// action trackers. Create it with New; stop it with Close.
type Trigger struct {
	logger       *slog.Logger
	now          func() time.Time
	poll         time.Duration
	checkTimeout time.Duration
	callTimeout  time.Duration
	basicAuth    bool
	m            *metrics

	// ctx is cancelled by Close and stops the trackers.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	cfg     config.TriggerConfig
	rules   []*rule
	actors  Actors
	audit   *auditLog
	st      *state
	limiter *rate.Limiter
	// disarmed says why the state file could not be used; while set the
	// trigger acts as in dry-run mode and never writes the state file.
	disarmed string
	corrupt  corruptCopy
	// dry-run decisions have their own dedup and cooldown memory (not
	// persisted) so dry-run shows what armed mode would do without
	// affecting it once armed.
	dryDedup     map[string]time.Time
	dryCooldowns map[cooldownKey]time.Time
	// pending holds dedup and cooldown keys of decisions between their
	// first and second look at the state (while target_state reads Veeam),
	// so concurrent identical notifications stop at dedup.
	pending        map[string]bool
	recent         []decision
	recentOutcomes []outcomeLine
	closed         bool
}

// New checks the config, opens the audit log, loads the state file (an
// unreadable one disarms the trigger instead of failing), registers the
// metrics and resumes tracking of actions that were sent before a restart.
func New(cfg config.TriggerConfig, actors Actors, o Options) (*Trigger, error) {
	applyDefaults(&cfg)
	rules, err := checkConfig(&cfg, &actors, o.WebhookBasicAuth)
	if err != nil {
		return nil, err
	}
	t := &Trigger{
		logger:       o.Logger,
		now:          o.Now,
		poll:         o.PollInterval,
		checkTimeout: o.CheckTimeout,
		callTimeout:  o.CallTimeout,
		basicAuth:    o.WebhookBasicAuth,
		cfg:          cfg,
		rules:        rules,
		actors:       actors,
		dryDedup:     map[string]time.Time{},
		dryCooldowns: map[cooldownKey]time.Time{},
		pending:      map[string]bool{},
	}
	if t.logger == nil {
		t.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.poll <= 0 {
		t.poll = defaultPollInterval
	}
	if t.checkTimeout <= 0 {
		t.checkTimeout = defaultCheckTimeout
	}
	if t.callTimeout <= 0 {
		t.callTimeout = defaultCallTimeout
	}
	t.audit, err = openAudit(cfg.AuditLog)
	if err != nil {
		return nil, err
	}
	t.m = newMetrics(t)
	if err := t.m.register(o.Registerer); err != nil {
		_ = t.audit.close()
		return nil, fmt.Errorf("registering trigger metrics: %w", err)
	}
	t.m.initRules(rules)
	t.ctx, t.cancel = context.WithCancel(context.Background())

	t.mu.Lock()
	defer t.mu.Unlock()
	t.st = newState()
	if cfg.StateFile != "" {
		removeStaleTemps(cfg.StateFile)
		st, err := loadState(cfg.StateFile)
		if err != nil {
			t.disarmLocked(err)
		} else {
			t.st = st
		}
	}
	t.rebuildLimiterLocked()
	t.resumeLocked()
	if err := t.reconcileAuditLocked(); err != nil {
		t.logger.Error("decisions in the audit log could not be checked against the state file", "err", err)
	}
	t.logger.Info("trigger started", "rules", len(rules), "dry_run", cfg.DryRun,
		"armed", t.armedLocked(), "actions_in_flight", len(t.st.actions))
	return t, nil
}

func applyDefaults(cfg *config.TriggerConfig) {
	if cfg.MaxConcurrent < 1 {
		cfg.MaxConcurrent = 1
	}
	if cfg.RateLimit.Actions < 1 {
		cfg.RateLimit.Actions = 2
	}
	if cfg.RateLimit.Per <= 0 {
		cfg.RateLimit.Per = model.Duration(time.Hour)
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = model.Duration(defaultActionTimeout)
	}
}

// checkConfig refuses what would make the trigger unsafe; the config loader
// checks the same, this is the last line.
func checkConfig(cfg *config.TriggerConfig, actors *Actors, basicAuth bool) ([]*rule, error) {
	rules, err := compileRules(cfg, actors)
	if err != nil {
		return nil, err
	}
	if !cfg.DryRun {
		if cfg.WebhookBearerToken == "" && !basicAuth && !cfg.AllowUnauthenticatedWebhook {
			return nil, errors.New("dry_run is false but the webhook has no authentication (webhook_bearer_token_file or basic_auth_users); set allow_unauthenticated_webhook: true to accept that")
		}
		if cfg.StateFile == "" {
			return nil, errors.New("dry_run is false but no state_file is set: decisions could not survive a restart")
		}
	}
	return rules, nil
}

// disarmLocked records that the state file cannot be used: a copy is kept,
// the reason is logged and shown, and the trigger acts as in dry-run mode.
func (t *Trigger) disarmLocked(err error) {
	reason := err.Error()
	path := t.cfg.StateFile
	if _, statErr := os.Stat(path); statErr == nil {
		if cp, cpErr := keepCorruptCopy(path, t.now(), &t.corrupt); cpErr != nil {
			reason += fmt.Sprintf("; could not keep a copy: %v", cpErr)
		} else {
			reason += "; a copy is kept at " + cp
		}
	}
	t.disarmed = reason + "; fix or remove the state file and reload"
	t.logger.Error("trigger DISARMED: the state file cannot be used, acting as in dry-run mode until it is fixed or removed and the configuration reloaded",
		"state_file", path, "reason", t.disarmed)
}

// resumeLocked ends or resumes the actions found in the state: decided
// ones were never sent and never will be; sending ones may or may not have
// reached Veeam and are never repeated; sent ones are tracked again.
func (t *Trigger) resumeLocked() {
	var changed bool
	for _, a := range slices.Clone(t.st.actions) {
		switch a.Status {
		case statusDecided:
			t.finishLocked(a, outcomeAbandoned, "decided but not sent before the exporter stopped; never sent after a restart", false)
			changed = true
		case statusSending:
			t.finishLocked(a, outcomeAbandoned, "the exporter stopped while sending the call; whether "+a.Target+" received it is unknown and it is not repeated: check the target", false)
			changed = true
		case statusSent:
			t.logger.Info("resuming tracking of an action sent before the restart", "rule", a.Rule, "object", a.Object, "request_id", a.RequestID)
			t.startLocked(a, true)
		}
	}
	for rule, at := range t.st.lastAction {
		t.m.lastAction.WithLabelValues(rule).Set(float64(at.UnixNano()) / 1e9)
	}
	if changed {
		t.saveLocked()
	}
}

// rebuildLimiterLocked makes the token bucket from the configured rate and
// the persisted uses, so a restart does not refill it.
func (t *Trigger) rebuildLimiterLocked() {
	per := time.Duration(t.cfg.RateLimit.Per)
	n := t.cfg.RateLimit.Actions
	lim := rate.NewLimiter(rate.Limit(float64(n)/per.Seconds()), n)
	now := t.now()
	for _, u := range t.st.rateUses {
		if u.Add(per).After(now) && !u.After(now) {
			lim.AllowN(u, 1)
		}
	}
	t.limiter = lim
}

// Reload applies a new trigger config and actors, keeping the state. A
// disarmed trigger tries its state file again, so that an operator who
// fixed or removed it gets an armed trigger back. On error nothing changes.
func (t *Trigger) Reload(cfg config.TriggerConfig, actors Actors) error {
	applyDefaults(&cfg)
	rules, err := checkConfig(&cfg, &actors, t.basicAuth)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("trigger is closed")
	}
	audit := t.audit
	if cfg.AuditLog != t.cfg.AuditLog {
		if audit, err = openAudit(cfg.AuditLog); err != nil {
			return err
		}
	}
	oldPath := t.cfg.StateFile
	if t.disarmed == "" && cfg.StateFile != oldPath && cfg.StateFile != "" {
		// Move the state to the new file now; if it cannot be written the
		// reload fails and the old file stays in use. An existing file is
		// not overwritten: it may hold another process's actions.
		if _, err := os.Stat(cfg.StateFile); !errors.Is(err, fs.ErrNotExist) {
			if audit != t.audit {
				_ = audit.close()
			}
			return fmt.Errorf("state_file changed to %s, which exists (or cannot be checked): restart the exporter to use it, or remove it", cfg.StateFile)
		}
		data, err := t.st.marshal()
		if err == nil {
			err = writeFileAtomic(cfg.StateFile, data)
		}
		if err != nil {
			if audit != t.audit {
				_ = audit.close()
			}
			return fmt.Errorf("writing state file %s: %w", cfg.StateFile, err)
		}
	}
	if audit != t.audit {
		_ = t.audit.close()
		t.audit = audit
	}
	t.cfg, t.rules, t.actors = cfg, rules, actors
	t.m.initRules(rules)
	if t.disarmed != "" {
		t.retryStateLocked()
	}
	t.rebuildLimiterLocked()
	t.logger.Info("trigger reloaded", "rules", len(rules), "dry_run", cfg.DryRun, "armed", t.armedLocked())
	return nil
}

// retryStateLocked loads the state file again after an operator's repair.
func (t *Trigger) retryStateLocked() {
	st := newState()
	if t.cfg.StateFile != "" {
		var err error
		if st, err = loadState(t.cfg.StateFile); err != nil {
			t.disarmLocked(err)
			return
		}
	}
	t.logger.Warn("state file readable again: trigger re-armed as configured", "state_file", t.cfg.StateFile, "dry_run", t.cfg.DryRun)
	t.disarmed = ""
	t.st = st
	t.resumeLocked()
}

// Close stops tracking (actions still running are tracked again after a
// restart), waits for calls under way to be answered, and closes the audit
// log. ctx bounds the wait.
func (t *Trigger) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("waiting for trigger actions: %w", ctx.Err())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.audit.close()
}

// Armed reports whether the trigger would make calls now: not dry-run, state
// file usable, no kill switch file, not closed.
func (t *Trigger) Armed() bool {
	kill, _ := killSwitch(t.killSwitchPath())
	if kill {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.armedLocked()
}

// stateError reports whether the trigger is disarmed because its state file
// could not be used, which an alert should page for (dry-run is a choice).
func (t *Trigger) stateError() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.disarmed != ""
}

func (t *Trigger) armedLocked() bool {
	return !t.cfg.DryRun && t.disarmed == "" && !t.closed
}

// dryRunLocked reports whether decisions are dry-run ones now, and why.
func (t *Trigger) dryRunLocked() (bool, string) {
	switch {
	case t.disarmed != "":
		return true, "disarmed: " + t.disarmed
	case t.cfg.DryRun:
		return true, "dry_run is true"
	}
	return false, ""
}

func (t *Trigger) killSwitchPath() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cfg.KillSwitchFile
}

// killSwitch reports whether the kill switch file exists. A file that
// cannot be checked counts as present: when in doubt, do not fail over.
func killSwitch(path string) (bool, string) {
	if path == "" {
		return false, ""
	}
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, "kill switch file " + path + " exists"
	case errors.Is(err, fs.ErrNotExist):
		return false, ""
	}
	return true, fmt.Sprintf("kill switch file cannot be checked: %v", err)
}

func (t *Trigger) inFlightCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.st.actions)
}

func (t *Trigger) tokens() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.limiter.TokensAt(t.now())
}

// saveLocked writes the state file. It never writes while disarmed: the
// unreadable file stays as it is for the operator.
func (t *Trigger) saveLocked() error {
	if t.cfg.StateFile == "" || t.disarmed != "" {
		return nil
	}
	now := t.now()
	t.st.prune(now, t.keepCooldownLocked, time.Duration(t.cfg.RateLimit.Per))
	data, err := t.st.marshal()
	if err == nil {
		err = writeFileAtomic(t.cfg.StateFile, data)
	}
	if err != nil {
		err = fmt.Errorf("writing state file %s: %w", t.cfg.StateFile, err)
		t.logger.Error("state file not written", "err", err)
		return err
	}
	return nil
}

func (t *Trigger) keepCooldownLocked(ruleName string) time.Duration {
	keep := keepCooldownMin
	for _, r := range t.rules {
		if r.name == ruleName && r.cooldown > keep {
			keep = r.cooldown
		}
	}
	return keep
}

func (t *Trigger) ruleLocked(name string) *rule {
	for _, r := range t.rules {
		if r.name == name {
			return r
		}
	}
	return nil
}
