package trigger

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WebhookHandler serves POST /webhook: an Alertmanager notification
// (payload version 4) is parsed, run through the guards, and answered once
// its decisions are durable.
//
//   - 200 with {"status":"ok","decisions":[...]}: every decision recorded,
//     blocked ones included.
//   - 400 (malformed JSON, a key twice in one object or in another case
//     than Alertmanager writes it, wrong version, missing fields, an alert
//     without labels or with an absurd startsAt, more decisions than
//     max_decisions_per_notification), 401 (bearer token), 405, 413 (more
//     than 1 MiB), 415 (not application/json): Alertmanager does not retry,
//     and nothing changed.
//   - 500: a decision could not be made durable, so it called nothing;
//     Alertmanager retries. 503 while shutting down.
//
// Unknown JSON fields are accepted (Alertmanager adds fields in minor
// releases, and refusing them would disable the failover on an upgrade),
// but not a known one spelled in another case: {"status":"resolved",
// "Status":"firing"} must not be read as either.
func (t *Trigger) WebhookHandler() http.Handler {
	return http.HandlerFunc(t.serveWebhook)
}

type webhookAnswer struct {
	Status    string     `json:"status"`
	Error     string     `json:"error,omitempty"`
	Decisions []decision `json:"decisions,omitempty"`
	// Heartbeat counts the heartbeat alerts recognised (heartbeat_matchers).
	Heartbeat int `json:"heartbeat,omitempty"`
}

func (t *Trigger) serveWebhook(w http.ResponseWriter, r *http.Request) {
	code, ans := t.webhook(w, r)
	t.m.webhookRequests.WithLabelValues(strconv.Itoa(code)).Inc()
	if code >= 400 {
		ans.Status = "error"
		t.logger.Warn("webhook request refused", "code", code, "err", ans.Error, "remote", r.RemoteAddr)
	} else {
		ans.Status = "ok"
	}
	writeJSON(w, code, ans)
}

func (t *Trigger) webhook(w http.ResponseWriter, r *http.Request) (int, webhookAnswer) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return http.StatusMethodNotAllowed, webhookAnswer{Error: "use POST"}
	}
	t.mu.Lock()
	token := string(t.cfg.WebhookBearerToken)
	t.mu.Unlock()
	if token != "" && !bearerOK(r.Header.Get("Authorization"), token) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="webhook"`)
		return http.StatusUnauthorized, webhookAnswer{Error: "missing or wrong bearer token"}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return http.StatusUnsupportedMediaType, webhookAnswer{Error: "Content-Type must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, webhookAnswer{Error: "body larger than 1 MiB"}
		}
		return http.StatusBadRequest, webhookAnswer{Error: "reading body: " + err.Error()}
	}
	p, err := parsePayload(body, t.now())
	if err != nil {
		return http.StatusBadRequest, webhookAnswer{Error: err.Error()}
	}
	for i := range p.Alerts {
		t.m.alertsReceived.WithLabelValues(p.Alerts[i].Status).Inc()
	}
	if n := t.takeHeartbeats(p); n > 0 && len(p.Alerts) == 0 {
		return http.StatusOK, webhookAnswer{Heartbeat: n}
	}
	if p.TruncatedAlerts > 0 {
		t.logger.Warn("Alertmanager truncated the notification; only the alerts received count for the quorum",
			"group_key", p.GroupKey, "truncated_alerts", p.TruncatedAlerts)
	}
	ds, err := t.evaluate(r.Context(), p)
	var bad *payloadError
	if errors.As(err, &bad) {
		return http.StatusBadRequest, webhookAnswer{Error: err.Error()}
	}
	if errors.Is(err, errClosed) || errors.Is(err, errCoordination) {
		return http.StatusServiceUnavailable, webhookAnswer{Error: err.Error(), Decisions: ds}
	}
	if err != nil {
		return http.StatusInternalServerError, webhookAnswer{Error: err.Error(), Decisions: ds}
	}
	return http.StatusOK, webhookAnswer{Decisions: ds}
}

// bearerOK compares the Authorization header with the token in constant
// time (hashes of equal length, so not even the length leaks).
func bearerOK(header, token string) bool {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	want := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// StatusHandler serves GET /trigger: the trigger's state as JSON (armed,
// dry-run, kill switch, rules, cooldowns, rate-limit tokens, actions in
// flight, the last 100 decisions and outcomes). It contains no secret.
func (t *Trigger) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		writeJSON(w, http.StatusOK, t.status())
	})
}

type statusJSON struct {
	Armed          bool       `json:"armed"`
	DryRun         bool       `json:"dry_run"`
	DisarmedReason string     `json:"disarmed_reason,omitempty"`
	KillSwitch     killJSON   `json:"kill_switch"`
	WebhookAuth    []string   `json:"webhook_auth"`
	StateFile      string     `json:"state_file"`
	AuditLog       string     `json:"audit_log"`
	MaxConcurrent  int        `json:"max_concurrent"`
	ActionTimeout  string     `json:"action_timeout"`
	RateLimit      rateJSON   `json:"rate_limit"`
	Rules          []ruleInfo `json:"rules"`
	Cooldowns      []coolJSON `json:"cooldowns"`
	InFlight       []inFlight `json:"in_flight"`
	// ObjectLocks are objects held after an action ended without a known
	// result (timeout, uncertain).
	ObjectLocks []objectHold `json:"object_locks"`
	// Pending are decisions the trigger evaluates again itself.
	Pending []pendingJSON `json:"pending_decisions"`
	// Approvals wait for a person (POST /trigger/approvals/{id}).
	Approvals []approvalJSON `json:"approvals"`
	// ApproverAuth says whether approvals and manual actions are enabled.
	ApproverAuth bool `json:"approver_auth"`
	// LastHeartbeat is when the heartbeat alert last arrived (heartbeat_matchers set).
	LastHeartbeat  *time.Time    `json:"last_heartbeat,omitempty"`
	Recent         []decision    `json:"recent_decisions"`
	RecentOutcomes []outcomeLine `json:"recent_outcomes"`
	// Coordination is the shared state of several replicas (coord.go).
	Coordination *coordStatus `json:"coordination,omitempty"`
}

type killJSON struct {
	Path   string `json:"path,omitempty"`
	Active bool   `json:"active"`
	Reason string `json:"reason,omitempty"`
}

type rateJSON struct {
	Actions int     `json:"actions"`
	Per     string  `json:"per"`
	Tokens  float64 `json:"tokens"`
}

type coolJSON struct {
	Action           string    `json:"action,omitempty"`
	Rule             string    `json:"rule,omitempty"` // entries of an older state file
	Object           string    `json:"object"`
	LastAction       time.Time `json:"last_action"`
	Until            time.Time `json:"until"`
	RemainingSeconds float64   `json:"remaining_seconds"`
	DryRun           bool      `json:"dry_run,omitempty"`
}

type pendingJSON struct {
	Rule     string    `json:"rule"`
	Object   string    `json:"object"`
	GroupKey string    `json:"group_key"`
	Guard    string    `json:"guard"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
	Next     time.Time `json:"next"`
	Expires  time.Time `json:"expires"`
	Attempts int       `json:"attempts,omitempty"`
	Alerts   []string  `json:"alerts"`
}

type inFlight struct {
	*actionRecord
	Handle string `json:"handle,omitempty"`
}

func (t *Trigger) status() statusJSON {
	kill, killReason := killSwitch(t.killSwitchPath())
	if t.coord != nil {
		t.coordSyncApprovals(false) // the approvals of every replica, as of now
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	cfg := &t.cfg
	s := statusJSON{
		Armed:          t.armedLocked() && !kill,
		DryRun:         cfg.DryRun,
		DisarmedReason: t.disarmedLocked(),
		KillSwitch:     killJSON{Path: cfg.KillSwitchFile, Active: kill, Reason: killReason},
		StateFile:      cfg.StateFile,
		AuditLog:       cfg.AuditLog,
		MaxConcurrent:  cfg.MaxConcurrent,
		ActionTimeout:  time.Duration(cfg.ActionTimeout).String(),
		RateLimit: rateJSON{
			Actions: cfg.RateLimit.Actions,
			Per:     time.Duration(cfg.RateLimit.Per).String(),
			Tokens:  t.store.limiter.TokensAt(now),
		},
		Rules:          make([]ruleInfo, 0, len(t.rules)),
		Cooldowns:      []coolJSON{},
		InFlight:       make([]inFlight, 0, len(t.store.actions)),
		ObjectLocks:    []objectHold{},
		Pending:        make([]pendingJSON, 0, len(t.store.pending)),
		Recent:         make([]decision, 0, len(t.recent)),
		RecentOutcomes: make([]outcomeLine, 0, len(t.recentOutcomes)),
		Coordination:   t.coordStatusLocked(),
	}
	if cfg.WebhookBearerToken != "" {
		s.WebhookAuth = append(s.WebhookAuth, "bearer_token")
	}
	if t.basicAuth {
		s.WebhookAuth = append(s.WebhookAuth, "basic_auth")
	}
	if len(s.WebhookAuth) == 0 {
		s.WebhookAuth = []string{"none"}
	}
	for _, r := range t.rules {
		s.Rules = append(s.Rules, r.info())
	}
	// A decision sets a cooldown on the object as written and as Veeam
	// identifies it; the first is shown only when it has no second.
	addCool := func(m map[cooldownKey]time.Time, dry bool) {
		resolvedAt := map[cooldownKey]bool{}
		for k, at := range m {
			if !strings.Contains(k.object, "/written/") {
				resolvedAt[cooldownKey{k.action, at.String()}] = true
			}
		}
		for k, at := range m {
			if strings.Contains(k.object, "/written/") && resolvedAt[cooldownKey{k.action, at.String()}] {
				continue
			}
			var cd time.Duration
			if k.action == legacyRuleScope {
				rule, _, _ := strings.Cut(k.object, "\x00")
				if r := t.ruleLocked(rule); r != nil {
					cd = r.cooldown
				}
			} else {
				cd = t.longestCooldownLocked(k.action)
			}
			until := at.Add(cd)
			if cd <= 0 || !until.After(now) {
				continue
			}
			j := k.json(at)
			s.Cooldowns = append(s.Cooldowns, coolJSON{Action: j.Action, Rule: j.Rule, Object: j.Object, LastAction: at, Until: until,
				RemainingSeconds: until.Sub(now).Seconds(), DryRun: dry})
		}
	}
	addCool(t.store.cooldowns, false)
	addCool(t.store.dryCooldowns, true)
	sortCooldowns(s.Cooldowns)
	for _, a := range t.store.actions {
		c := a.clone()
		s.InFlight = append(s.InFlight, inFlight{actionRecord: c, Handle: c.handle()})
	}
	for _, h := range t.store.holds {
		if h.Until.After(now) {
			s.ObjectLocks = append(s.ObjectLocks, h)
		}
	}
	slices.SortFunc(s.ObjectLocks, func(a, b objectHold) int { return strings.Compare(a.Object, b.Object) })
	for _, p := range t.store.pending {
		pj := pendingJSON{Rule: p.Rule, Object: p.Object, GroupKey: p.GroupKey, Guard: p.Guard, Reason: p.Reason,
			Since: p.Since, Next: p.Next, Expires: p.Expires, Attempts: p.Attempts}
		for i := range p.Alerts {
			pj.Alerts = append(pj.Alerts, p.Alerts[i].displayFingerprint())
		}
		s.Pending = append(s.Pending, pj)
	}
	s.Approvals = t.approvalsJSONLocked(now)
	s.ApproverAuth = cfg.ApproverToken != ""
	if len(cfg.HeartbeatMatchers) > 0 {
		hb := t.store.lastHeartbeat
		s.LastHeartbeat = &hb
	}
	for i := len(t.recent) - 1; i >= 0; i-- {
		s.Recent = append(s.Recent, t.recent[i])
	}
	for i := len(t.recentOutcomes) - 1; i >= 0; i-- {
		s.RecentOutcomes = append(s.RecentOutcomes, t.recentOutcomes[i])
	}
	return s
}

func sortCooldowns(cs []coolJSON) {
	slices.SortFunc(cs, func(a, b coolJSON) int {
		if c := strings.Compare(a.Action+a.Rule, b.Action+b.Rule); c != 0 {
			return c
		}
		return strings.Compare(a.Object, b.Object)
	})
}

// ApprovalsHandler serves POST /trigger/approvals/{id} with
// {"approve": true|false, "by": "...", "reason": "..."} and the approver's
// bearer token (approver_token_file; the webhook's token is refused):
//
//   - 200: recorded; with approve true the answer holds the decision of the
//     guards run again (decided, blocked, dry_run).
//   - 400 bad body, 401 wrong or missing token, 403 approvals disabled (no
//     approver_token_file), 404 no such approval waiting (a forged id), 409
//     already answered or expired (a replay), 500 not durable: nothing called.
func (t *Trigger) ApprovalsHandler() http.Handler {
	return t.approverEndpoint(func(r *http.Request, body []byte) (int, answerResult) {
		id := strings.TrimPrefix(r.URL.Path, "/trigger/approvals/")
		if id == "" || strings.Contains(id, "/") {
			return http.StatusNotFound, answerResult{Error: "POST /trigger/approvals/{id}"}
		}
		var ans approvalAnswer
		if err := decodeStrict(body, &ans); err != nil {
			return http.StatusBadRequest, answerResult{Error: err.Error()}
		}
		if ans.Approve == nil || strings.TrimSpace(ans.By) == "" {
			return http.StatusBadRequest, answerResult{Error: `"approve" (true or false) and "by" (who answers) are required`}
		}
		return t.answerApproval(r.Context(), id, ans)
	})
}

// ActionsHandler serves POST /trigger/actions with {"rule": "...",
// "object": "...", "by": "...", "reason": "..."} and the approver's bearer
// token: the rule's action on the object through the manual guards
// (manual.go). 200 with the decision (decided, blocked or dry_run); 400,
// 401, 403, 404 (no such rule) and 500 as for approvals.
func (t *Trigger) ActionsHandler() http.Handler {
	return t.approverEndpoint(func(r *http.Request, body []byte) (int, answerResult) {
		var req manualRequest
		if err := decodeStrict(body, &req); err != nil {
			return http.StatusBadRequest, answerResult{Error: err.Error()}
		}
		if req.Rule == "" || strings.TrimSpace(req.By) == "" || strings.TrimSpace(req.Reason) == "" {
			return http.StatusBadRequest, answerResult{Error: `"rule", "by" and "reason" are required`}
		}
		return t.manualAction(r.Context(), req)
	})
}

// approverEndpoint checks method, approver token, content type and size
// before serve, and writes its answer.
func (t *Trigger) approverEndpoint(serve func(r *http.Request, body []byte) (int, answerResult)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, res := func() (int, answerResult) {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				return http.StatusMethodNotAllowed, answerResult{Error: "use POST"}
			}
			t.mu.Lock()
			token := string(t.cfg.ApproverToken)
			t.mu.Unlock()
			if token == "" {
				return http.StatusForbidden, answerResult{Error: "approvals and manual actions are disabled: set trigger.approver_token_file"}
			}
			if !approverOK(r, token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="approver"`)
				return http.StatusUnauthorized, answerResult{Error: "missing or wrong approver token"}
			}
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				return http.StatusUnsupportedMediaType, answerResult{Error: "Content-Type must be application/json"}
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
			if err != nil {
				return http.StatusBadRequest, answerResult{Error: "reading body: " + err.Error()}
			}
			return serve(r, body)
		}()
		t.m.approverRequests.WithLabelValues(strconv.Itoa(code)).Inc()
		if code >= 400 {
			res.Status = "error"
			t.logger.Warn("approver request refused", "path", r.URL.Path, "code", code, "err", res.Error, "remote", r.RemoteAddr)
		} else {
			res.Status = "ok"
		}
		writeJSON(w, code, res)
	})
}

// approverOK checks the approver's token: Authorization: Bearer, or, when
// basic auth in --web.config.file takes the Authorization header, the
// X-Approver-Token header. Both compared in constant time.
func approverOK(r *http.Request, token string) bool {
	if h := r.Header.Get(ApproverTokenHeader); h != "" {
		return bearerOK("Bearer "+h, token)
	}
	return bearerOK(r.Header.Get("Authorization"), token)
}

// ApproverTokenHeader carries the approver's token when the Authorization
// header holds basic auth credentials for --web.config.file.
const ApproverTokenHeader = "X-Approver-Token"

// decodeStrict reads one JSON object into v: unknown keys, a key twice and
// trailing data are errors (a person's typo must not approve).
func decodeStrict(body []byte, v any) error {
	keys := json.NewDecoder(bytes.NewReader(body))
	keys.UseNumber()
	if err := walkJSON(keys, schemaOf(reflect.ValueOf(v).Elem().Interface()), ""); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: data after the object")
	}
	return nil
}
