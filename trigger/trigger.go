package trigger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	// ReplicaName names this replica in the shared store (coordination);
	// default the host name.
	ReplicaName string
}

const (
	defaultPollInterval = 2 * time.Second
	defaultCheckTimeout = 15 * time.Second
	defaultCallTimeout  = 2 * time.Minute
	// minDedupTTL is how long a handled alert group is remembered at least
	// (longer when the rule's cooldown is longer): an alert instance acts
	// once, however long it fires.
	minDedupTTL = 90 * 24 * time.Hour
	// keepCooldownMin is how long cooldown entries are kept at least, so a
	// rule removed and added back by a reload keeps its cooldown.
	keepCooldownMin = 30 * 24 * time.Hour
	recentMax       = 100
	// defaultMaxDecisions is max_decisions_per_notification when a config
	// built in code leaves it 0 (config.Load sets the same default).
	defaultMaxDecisions = 200
)

// Trigger is the webhook receiver: config, rules, the targets' clients,
// the guard pipeline and the HTTP handlers. What it remembers is in its
// store. Create it with New; stop it with Close.
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

	mu    sync.Mutex
	cfg   config.TriggerConfig
	rules []*rule
	// clients holds each target's client by target name; a kind runs on
	// it if the client has the kind's interface.
	clients        map[string]any
	audit          *auditLog
	store          *store
	recent         []decision
	recentOutcomes []outcomeLine
	closed         bool
	// auditErr says why the audit log cannot be opened; while set the
	// trigger is disarmed (an action must be audited before it is called).
	auditErr string
	// wake tells the pending loop to look at the pending decisions.
	wake chan struct{}
	// coord is the shared store of several replicas (coord.go); nil
	// without trigger.coordination.
	coord *coordinator
}

// New takes a loaded config (config.Load applied the defaults and checked
// it) and one client per target, by target name: a *vspc.Client,
// *em.Client or *vbr.Client, or anything with the interface of the kinds
// that act on the target. It opens the audit log and loads the state file
// (one that cannot be used, an audit log that cannot be opened, or a
// missing state file whose history in the audit log cannot be read disarm
// the trigger instead of failing: the exporter's metrics keep serving),
// registers the metrics, resumes tracking of actions that were sent before
// a restart and starts the loop that evaluates pending decisions again.
func New(cfg config.TriggerConfig, clients map[string]any, o Options) (*Trigger, error) {
	rules, err := checkConfig(&cfg, clients, o.WebhookBasicAuth)
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
		clients:      clients,
		wake:         make(chan struct{}, 1),
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
	t.openAuditLocked(cfg.AuditLog)
	if cfg.Coordination.Enabled() {
		if t.coord, err = openCoordinator(cfg.Coordination.Etcd, o.ReplicaName, t.logger); err != nil {
			_ = t.audit.close()
			return nil, err
		}
	}
	t.m = newMetrics(t)
	err = t.m.register(o.Registerer)
	if err == nil && t.coord != nil && o.Registerer != nil {
		err = o.Registerer.Register(t.coord.upGauge)
	}
	if err != nil {
		_ = t.audit.close()
		_ = t.coordClose()
		return nil, fmt.Errorf("registering trigger metrics: %w", err)
	}
	t.m.initRules(rules)
	t.ctx, t.cancel = context.WithCancel(context.Background())

	t.mu.Lock()
	defer t.mu.Unlock()
	t.store = newStore(nil)
	switch {
	case t.coord != nil:
		t.store.backend = &coordBackend{t}
	case cfg.StateFile != "":
		t.store.backend = newFileBackend(cfg.StateFile)
	}
	t.loadStateLocked()
	t.logger.Info("trigger started", "rules", len(rules), "dry_run", cfg.DryRun,
		"armed", t.armedLocked(), "actions_in_flight", len(t.store.actions), "pending_decisions", len(t.store.pending))
	t.wg.Add(2)
	go t.pendingLoop()
	go t.approvalLoop() // approvals.go
	if t.coord != nil {
		t.wg.Add(1)
		go t.coordLoop()
	}
	return t, nil
}

// openAuditLocked opens the audit log; when it cannot be opened the trigger
// is disarmed with the reason, and a log that writes nothing is used.
func (t *Trigger) openAuditLocked(path string) {
	a, err := openAudit(path)
	if err != nil {
		t.audit = &auditLog{path: path}
		t.auditErr = err.Error() + "; fix the audit_log path or its permissions and reload"
		t.logger.Error("trigger DISARMED: the audit log cannot be opened, and no action is called without being audited", "audit_log", path, "err", err)
		return
	}
	t.audit, t.auditErr = a, ""
}

// loadStateLocked loads the state (disarming when it cannot be used),
// rebuilds it from the audit log when the state file is gone but the audit
// log has decisions, and ends or resumes the actions found in it.
func (t *Trigger) loadStateLocked() {
	if err := t.store.load(t.now()); err != nil {
		t.logDisarmedLocked()
		t.store.rebuildLimiter(t.cfg.RateLimit, t.now())
		return
	}
	rebuilt := false
	if t.store.notStored && t.cfg.AuditLog != "" {
		var err error
		if rebuilt, err = t.rebuildFromAuditLocked(); err != nil {
			t.store.disarmed = "the state file " + t.cfg.StateFile + " is missing and the audit log, which holds the decisions it would remember, cannot be read to rebuild it: " +
				err.Error() + "; restore the state file (or make the audit log readable) and reload"
			t.logDisarmedLocked()
			t.store.rebuildLimiter(t.cfg.RateLimit, t.now())
			return
		}
	}
	t.store.rebuildLimiter(t.cfg.RateLimit, t.now())
	t.resumeLocked()
	if !rebuilt {
		if err := t.reconcileAuditLocked(); err != nil {
			t.logger.Error("decisions in the audit log could not be checked against the state file", "err", err)
		}
	}
	t.m.setPendingLocked(t.rules, t.store.pending)
}

// checkConfig compiles the rules against the clients. It refuses an armed
// trigger whose webhook has no authentication, whatever built the config:
// that one mistake would let anyone who can reach /webhook fail sites over.
func checkConfig(cfg *config.TriggerConfig, clients map[string]any, basicAuth bool) ([]*rule, error) {
	rules, err := compileRules(cfg, clients)
	if err != nil {
		return nil, err
	}
	if !cfg.DryRun {
		if cfg.WebhookBearerToken == "" && !basicAuth && !cfg.AllowUnauthenticatedWebhook {
			return nil, errors.New("dry_run is false but the webhook has no authentication (webhook_bearer_token_file or basic_auth_users); set allow_unauthenticated_webhook: true to accept that")
		}
		if cfg.StateFile == "" && !cfg.Coordination.Enabled() {
			return nil, errors.New("dry_run is false but no state_file (nor coordination) is set: decisions could not survive a restart")
		}
	}
	if cfg.MaxDecisionsPerNotification <= 0 {
		cfg.MaxDecisionsPerNotification = defaultMaxDecisions
	}
	return rules, nil
}

func (t *Trigger) logDisarmedLocked() {
	t.logger.Error("trigger DISARMED: the state file cannot be used, acting as in dry-run mode until it is fixed or removed and the configuration reloaded",
		"state_file", t.cfg.StateFile, "reason", t.store.disarmed)
}

// resumeLocked ends or resumes the actions found in the state: decided
// ones were never sent and never will be; sending ones may or may not have
// reached Veeam and are never repeated; sent ones are tracked again.
func (t *Trigger) resumeLocked() {
	var changed bool
	for _, a := range slices.Clone(t.store.actions) {
		switch a.Status {
		case statusDecided:
			t.finishLocked(a, outcomeAbandoned, "decided but not sent before the exporter stopped; never sent after a restart", false)
			changed = true
		case statusSending:
			// Maybe sent: it keeps its cooldown, dedup keys and rate token,
			// and its object stays locked (release.go).
			t.finishLocked(a, outcomeUncertain, "the exporter stopped while sending the call; whether "+a.Target+" received it is unknown and it is not repeated: check the target", false)
			changed = true
		case statusSent:
			t.logger.Info("resuming tracking of an action sent before the restart", "rule", a.Rule, "object", a.Object, "request_id", a.RequestID)
			t.startLocked(a, true)
		}
	}
	for rule, at := range t.store.lastAction {
		if t.ruleLocked(rule) != nil { // a removed rule has no series
			t.m.lastAction.WithLabelValues(rule).Set(float64(at.UnixNano()) / 1e9)
		}
	}
	if changed {
		_ = t.saveLocked()
	}
}

// Reload applies a new loaded config and clients, keeping the state. A
// disarmed trigger tries its state file again, so that an operator who
// fixed or removed it gets an armed trigger back. The audit log is opened
// again, so that a log rotated away (logrotate's create) is left. The
// metric series of rules it removes are deleted (metrics_rules.go). On
// error nothing changes.
func (t *Trigger) Reload(cfg config.TriggerConfig, clients map[string]any) error {
	rules, err := checkConfig(&cfg, clients, t.basicAuth)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("trigger is closed")
	}
	if !reflect.DeepEqual(cfg.Coordination, t.cfg.Coordination) {
		return errors.New("trigger.coordination changed: restart the exporter to use the new shared store")
	}
	audit, err := openAudit(cfg.AuditLog)
	auditErr := ""
	if err != nil {
		// Disarmed until the audit log can be opened; the reload itself
		// goes on so the rest of the config applies.
		audit, auditErr = &auditLog{path: cfg.AuditLog}, err.Error()+"; fix the audit_log path or its permissions and reload"
		t.logger.Error("trigger DISARMED: the audit log cannot be opened", "audit_log", cfg.AuditLog, "err", err)
	}
	b := t.store.backend
	if cfg.StateFile != t.cfg.StateFile && t.coord == nil {
		b = nil
		if cfg.StateFile != "" {
			b = newFileBackend(cfg.StateFile)
		}
	}
	if t.store.disarmed == "" && b != t.store.backend && b != nil {
		// Move the state to the new file now; if it cannot be written the
		// reload fails and the old file stays in use. An existing file is
		// not overwritten: it may hold another process's actions.
		if _, err := os.Stat(cfg.StateFile); !errors.Is(err, fs.ErrNotExist) {
			_ = audit.close()
			return fmt.Errorf("state_file changed to %s, which exists (or cannot be checked): restart the exporter to use it, or remove it", cfg.StateFile)
		}
		if err := b.Save(t.store.state); err != nil {
			_ = audit.close()
			return err
		}
	}
	_ = t.audit.close()
	t.audit, t.auditErr = audit, auditErr
	t.store.backend = b
	old := t.rules
	t.cfg, t.rules, t.clients = cfg, rules, clients
	t.retireRulesLocked(old, rules) // metrics_rules.go
	t.m.initRules(rules)
	if t.store.disarmed != "" {
		t.retryStateLocked()
	}
	t.store.rebuildLimiter(cfg.RateLimit, t.now())
	t.m.setPendingLocked(rules, t.store.pending)
	t.wakePending()
	t.logger.Info("trigger reloaded", "rules", len(rules), "dry_run", cfg.DryRun, "armed", t.armedLocked())
	return nil
}

// retryStateLocked loads the state file again after an operator's repair.
func (t *Trigger) retryStateLocked() {
	t.loadStateLocked()
	if t.store.disarmed == "" {
		t.logger.Warn("state file usable again: trigger re-armed as configured", "state_file", t.cfg.StateFile, "dry_run", t.cfg.DryRun)
	}
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
	cerr := t.coordClose()
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.audit.close(), cerr)
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
// or audit log could not be used, which an alert should page for (dry-run is
// a choice).
func (t *Trigger) stateError() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.disarmedLocked() != ""
}

// disarmedLocked says why the trigger's memory or audit log cannot be used,
// or "".
func (t *Trigger) disarmedLocked() string {
	switch {
	case t.store.disarmed != "":
		return t.store.disarmed
	case t.auditErr != "":
		return "audit log: " + t.auditErr
	case t.coordDownLocked() != "":
		return "coordination: " + t.coordDownLocked()
	}
	return ""
}

func (t *Trigger) armedLocked() bool {
	return !t.cfg.DryRun && t.disarmedLocked() == "" && !t.closed
}

// dryRunLocked reports whether decisions are dry-run ones now, and why.
func (t *Trigger) dryRunLocked() (bool, string) {
	switch {
	case t.disarmedLocked() != "":
		return true, "disarmed: " + t.disarmedLocked()
	case t.cfg.DryRun:
		return true, "dry_run is true"
	}
	return false, ""
}

// dryRunConfigured reports the dry_run setting.
func (t *Trigger) dryRunConfigured() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cfg.DryRun
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
	return len(t.store.actions)
}

func (t *Trigger) tokens() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.store.limiter.TokensAt(t.now())
}

// saveLocked writes the state; a failure is logged and returned.
func (t *Trigger) saveLocked() error {
	err := t.store.save(t.now(), t.keepCooldownLocked(), time.Duration(t.cfg.RateLimit.Per))
	if err != nil {
		t.logger.Error("state file not written", "err", err)
	}
	return err
}

// keepCooldownLocked is how long cooldown entries are kept: the longest
// cooldown of any rule, and at least keepCooldownMin (so a rule removed and
// added back by a reload keeps its cooldown).
func (t *Trigger) keepCooldownLocked() time.Duration {
	keep := keepCooldownMin
	for _, r := range t.rules {
		keep = max(keep, r.cooldown)
	}
	return keep
}

// longestCooldownLocked is the longest cooldown of the rules with this
// action type (what /trigger shows for an entry).
func (t *Trigger) longestCooldownLocked(action string) time.Duration {
	var d time.Duration
	for _, r := range t.rules {
		if r.action.Type == action {
			d = max(d, r.cooldown)
		}
	}
	return d
}

func (t *Trigger) ruleLocked(name string) *rule {
	for _, r := range t.rules {
		if r.name == name {
			return r
		}
	}
	return nil
}
