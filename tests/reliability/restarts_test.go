package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// restartOutcomes are the ends an action may have (DESIGN.md's outcome
// label values, second revision).
var restartOutcomes = []string{"success", "warning", "failed", "timeout", "abandoned", "submitted", "uncertain"}

// TestRestarts kills the exporter with SIGKILL at a random point of a storm
// of webhooks against slow Veeam servers, restarts it on the same state
// file, sends the storm again (Alertmanager retries what was not answered,
// and repeats what is still firing) and lets it finish. Every round: the
// state file is readable JSON at every point, the restarted exporter is
// armed, no action reached Veeam twice or without a durable decision, every
// decided action ends with exactly one of the outcomes (none lost), and
// every rule's failover happened, unless its action ended uncertain (the
// kill hit the call itself: reported, alerted on, never repeated).
//
// 50 rounds by default, a few at a time, within -reliability.budget; the
// seed is logged to replay a failing round.
func TestRestarts(t *testing.T) {
	runs := *flagRuns
	if runs <= 0 {
		runs = 50
		if testing.Short() {
			runs = 6
		}
	}
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	par := max(*flagParallel, 1)
	t.Logf("%d rounds, %d at a time, seed %d (rerun with -reliability.seed=%d)", runs, par, seed, seed)
	start := time.Now()
	deadline := start.Add(*flagBudget)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done, uncertain := 0, 0
	for i := range runs {
		sem <- struct{}{}
		if time.Now().After(deadline) {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			t.Run(fmt.Sprintf("round_%d", i), func(t *testing.T) {
				u := restartRound(t, rand.New(rand.NewPCG(uint64(seed), uint64(i))))
				mu.Lock()
				done++
				uncertain += u
				mu.Unlock()
			})
		})
	}
	wg.Wait()
	t.Logf("%d rounds in %s (%d actions ended uncertain: killed while sending)", done, time.Since(start).Round(time.Second), uncertain)
	if done < runs {
		t.Errorf("only %d of %d rounds ran within -reliability.budget=%s", done, runs, *flagBudget)
	}
}

// restartRule is one rule of the round and what it acts on.
type restartRule struct {
	name, action, target, object string
}

// restartRound runs one round and returns how many actions ended uncertain.
func restartRound(t *testing.T, rng *rand.Rand) int {
	o := smallEstate(51)
	o.VSPC = simulator.VSPCOptions{Plans: 10, ObjectsPerPlan: 2, BackupServers: 2}
	o.Latency = 200 * time.Millisecond
	o.ActionDuration = time.Second
	sim := startSim(t, o)
	est := sim.Estate()

	var rules []restartRule
	for _, p := range est.VSPC.Plans {
		if p.Status == "Ready" && len(rules) < 3 {
			rules = append(rules, restartRule{name: fmt.Sprintf("vspc-%d", len(rules)), action: "vspc_plan_start", target: "vspc", object: strings.ToLower(p.InstanceUID)})
		}
	}
	if len(rules) < 3 {
		t.Fatalf("want 3 Ready VSPC plans, have %d", len(rules))
	}
	rules = append(rules, restartRule{name: "em-0", action: "em_plan_start", target: "em", object: est.EM.Plans[0].UID})
	var replica string
	for _, p := range est.VBR.Points {
		if slices.Contains(p.AllowedOperations, "StartViVMSnapshotReplicaFailover") {
			for _, r := range est.VBR.Replicas {
				if r.ID == p.ReplicaID {
					replica = r.Name
				}
			}
			break
		}
	}
	if replica == "" {
		t.Fatal("no VBR replica with a point that allows failover")
	}
	rules = append(rules, restartRule{name: "vbr-0", action: "vbr_failover", target: "vbr", object: replica})

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ca.pem"), string(sim.CACertPEM()))
	writeFile(t, filepath.Join(dir, "password"), simulator.DefaultPassword+"\n")
	const token = "restart-token"
	writeFile(t, filepath.Join(dir, "webhook.token"), token+"\n")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `targets:
  - {name: vspc, type: vspc, url: %s, username: monitor, password_file: password, tls_config: {ca_file: ca.pem}}
  - {name: em, type: em, url: %s, username: monitor, password_file: password, tls_config: {ca_file: ca.pem}}
  - {name: vbr, type: vbr, url: %s, username: monitor, password_file: password, tls_config: {ca_file: ca.pem}}
trigger:
  dry_run: false
  webhook_bearer_token_file: webhook.token
  state_file: state.json
  audit_log: audit.jsonl
  max_concurrent: 6
  rate_limit: {actions: 50, per: 1h}
  action_timeout: 1m
  rules:
`, sim.VSPCURL(), sim.EMURL(), sim.VBRURL())
	for _, r := range rules {
		key := "plan"
		value := fmt.Sprintf("%q", r.object)
		if r.target == "vbr" {
			key, value = "replicas", fmt.Sprintf("[%q]", r.object)
		}
		fmt.Fprintf(&cfg, "    - {name: %s, matchers: ['alertname=\"Storm\"', 'rule=\"%s\"'], cooldown: 1h, action: {type: %s, target: %s, %s: %s}}\n",
			r.name, r.name, r.action, r.target, key, value)
	}
	cfgFile := filepath.Join(dir, "config.yml")
	writeFile(t, cfgFile, cfg.String())
	stateFile, auditLog := filepath.Join(dir, "state.json"), filepath.Join(dir, "audit.jsonl")

	// The storm: three alert groups per rule.
	startsAt := time.Now().Add(-time.Minute).Truncate(time.Second)
	var payloads [][]byte
	for _, r := range rules {
		for g := range 3 {
			payloads = append(payloads, notification(fmt.Sprintf(`{}:{rule=%q,g="%d"}`, r.name, g), nil,
				amtest.Firing(startsAt, "alertname", "Storm", "rule", r.name, "g", fmt.Sprint(g))))
		}
	}
	delays := make([]time.Duration, len(payloads))
	for i := range delays {
		delays[i] = time.Duration(rng.IntN(800)) * time.Millisecond
	}
	killAfter := time.Duration(rng.IntN(1500)) * time.Millisecond
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()

	addr := proctest.FreeAddr(t)
	p1 := startExporter(t, "--config.file="+cfgFile, "--web.listen-address="+addr)
	waitReady(t, p1, hc, "http://"+addr, nil)
	var wg sync.WaitGroup
	for i, body := range payloads {
		wg.Go(func() {
			time.Sleep(delays[i])
			_, _, _ = httpDo(hc, http.MethodPost, "http://"+addr+"/webhook", jsonHeader(token), body)
		})
	}
	time.Sleep(killAfter)
	p1.Kill()
	wg.Wait()
	hc.CloseIdleConnections()
	afterKill := checkStateFile(t, stateFile, "after kill -9")
	t.Logf("killed after %s with %d actions in the state file (%s)", killAfter, len(afterKill.Actions), afterKill.statuses())

	addr = proctest.FreeAddr(t)
	p2 := startExporter(t, "--config.file="+cfgFile, "--web.listen-address="+addr)
	base := "http://" + addr
	waitReady(t, p2, hc, base, nil)
	var st triggerStatus
	getStatus := func() string {
		code, body, err := httpDo(hc, http.MethodGet, base+"/trigger", nil, nil)
		if err != nil || code != http.StatusOK {
			return fmt.Sprintf("GET /trigger: %d %v", code, err)
		}
		st = triggerStatus{}
		if err := json.Unmarshal(body, &st); err != nil {
			return err.Error()
		}
		return ""
	}
	if msg := getStatus(); msg != "" {
		t.Fatal(msg)
	}
	if !st.Armed || st.DisarmedReason != "" {
		t.Fatalf("restarted exporter not armed: %q", st.DisarmedReason)
	}
	// What the kill left undone is pending or released, not forgotten:
	// Alertmanager's next notification of the still firing alerts acts.
	// Alertmanager sends again what was not answered.
	for _, body := range payloads {
		code, ans, err := httpDo(hc, http.MethodPost, base+"/webhook", jsonHeader(token), body)
		if err != nil || code != http.StatusOK {
			t.Errorf("webhook after restart: %d %v %s", code, err, ans)
		}
	}
	eventually(t, 40*time.Second, "every action ends", func() string {
		if msg := getStatus(); msg != "" {
			return msg
		}
		if len(st.InFlight) > 0 {
			return fmt.Sprintf("%d in flight", len(st.InFlight))
		}
		return ""
	})
	p2.Stop()
	final := checkStateFile(t, stateFile, "at the end")
	if len(final.Actions) != 0 {
		t.Errorf("state file still holds %d actions (%s)", len(final.Actions), final.statuses())
	}
	return checkRestartAudit(t, sim, rules, auditLog)
}

type triggerStatus struct {
	Armed          bool              `json:"armed"`
	DisarmedReason string            `json:"disarmed_reason"`
	InFlight       []json.RawMessage `json:"in_flight"`
}

type stateActions struct {
	Version int `json:"version"`
	Actions []struct {
		RequestID string `json:"request_id"`
		Rule      string `json:"rule"`
		Status    string `json:"status"`
	} `json:"actions"`
}

func (s stateActions) statuses() string {
	var out []string
	for _, a := range s.Actions {
		out = append(out, a.Rule+":"+a.Status)
	}
	return strings.Join(out, ", ")
}

// checkStateFile asserts that the state file is absent (nothing decided
// yet) or complete JSON of the trigger's format.
func checkStateFile(t *testing.T, path, when string) stateActions {
	t.Helper()
	var s stateActions
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s
	}
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s: the state file is not valid JSON:\n%s", when, b)
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Version != 1 {
		t.Fatalf("%s: state file version %d, %v", when, s.Version, err)
	}
	for _, a := range s.Actions {
		if a.RequestID == "" || !slices.Contains([]string{"decided", "sending", "sent"}, a.Status) {
			t.Errorf("%s: state file action %+v", when, a)
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".state.json.tmp-*")); len(tmp) > 0 && when == "at the end" {
		t.Logf("temporary state files left by the killed process: %v", tmp)
	}
	return s
}

type auditLine struct {
	Event     string `json:"event"`
	Rule      string `json:"rule"`
	RequestID string `json:"request_id"`
	Outcome   string `json:"outcome"`
	Message   string `json:"message"`
}

func checkRestartAudit(t *testing.T, sim *simulator.Simulator, rules []restartRule, auditLog string) int {
	t.Helper()
	b, err := os.ReadFile(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	// A request id is decided again only after its earlier decision was
	// released (it never reached Veeam): then Alertmanager's next
	// notification acts, with the same request id. Each attempt is checked
	// on its own.
	var attempts []*attempt
	current := map[string]*attempt{} // request id -> its latest attempt
	decidedRules := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Errorf("audit line %d is not JSON (%v): %s", n, err, sc.Text())
			continue
		}
		a := current[l.RequestID]
		switch {
		case l.Event == "decision" && l.Outcome == "decided":
			if a != nil && !a.released {
				t.Errorf("request id %s decided twice without a release in between (rules %s, %s)", l.RequestID, a.rule, l.Rule)
			}
			a = &attempt{id: l.RequestID, rule: l.Rule}
			attempts = append(attempts, a)
			current[l.RequestID] = a
			decidedRules[l.Rule]++
		case l.Event == "released":
			if a == nil {
				t.Errorf("release of request id %s that was never decided", l.RequestID)
				continue
			}
			a.released = true
		case l.Event == "outcome":
			if a == nil {
				t.Errorf("outcome for request id %s that was never decided", l.RequestID)
				continue
			}
			a.ends = append(a.ends, l.Outcome)
		}
	}
	var summary []string
	acted := map[string][]string{}
	for _, a := range attempts {
		outs := slices.Compact(slices.Sorted(slices.Values(a.ends)))
		summary = append(summary, a.rule+"="+strings.Join(a.ends, "+"))
		switch {
		case len(outs) == 0:
			t.Errorf("action %s (%s) was decided and never ended", a.id, a.rule)
		case len(outs) > 1:
			t.Errorf("action %s (%s) ended differently: %v", a.id, a.rule, a.ends)
		case !slices.Contains(restartOutcomes, outs[0]):
			t.Errorf("action %s (%s) ended %q", a.id, a.rule, outs[0])
		}
		if len(a.ends) > 1 {
			t.Errorf("action %s (%s) has %d outcome lines", a.id, a.rule, len(a.ends))
		}
		if a.released && len(outs) > 0 && outs[0] != "abandoned" {
			t.Errorf("action %s (%s) was released (never reached Veeam) but ended %v", a.id, a.rule, a.ends)
		}
		// A decision that never became durable, or was released, may be
		// decided again; one that was acted on may not, within the cooldown.
		if len(a.ends) > 0 && a.ends[0] != "abandoned" {
			acted[a.rule] = append(acted[a.rule], a.id)
		}
	}
	for rule, ids := range acted {
		if len(ids) > 1 {
			t.Errorf("rule %s acted %d times on one object within its cooldown: %v", rule, len(ids), ids)
		}
	}
	slices.Sort(summary)
	t.Logf("decided and ended: %s", strings.Join(summary, ", "))

	// What reached Veeam: nothing twice, nothing undecided.
	for _, r := range rules {
		switch r.target {
		case "vspc":
			if n := sim.VSPCPlanStarts(r.object); n > 1 {
				t.Errorf("VSPC plan %s started %d times", r.object, n)
			} else if n == 1 && decidedRules[r.name] == 0 {
				t.Errorf("VSPC plan %s started without a decision of %s in the audit log", r.object, r.name)
			}
		case "em":
			if n := sim.EMPlanStarts(r.object); n > 1 {
				t.Errorf("EM plan %s started %d times", r.object, n)
			} else if n == 1 && decidedRules[r.name] == 0 {
				t.Errorf("EM plan %s started without a decision of %s in the audit log", r.object, r.name)
			}
		}
	}
	ids := map[string]map[string]int{} // plan -> X-Request-id -> sends
	for _, req := range sim.Requests(simulator.APIVSPC) {
		if req.Method != http.MethodPost || !strings.HasSuffix(req.Path, "/start") {
			continue
		}
		plan := strings.ToLower(strings.TrimSuffix(req.Path[strings.LastIndex(strings.TrimSuffix(req.Path, "/start"), "/")+1:], "/start"))
		id := strings.ToLower(req.Header.Get("X-Request-id"))
		if _, ok := current[id]; !ok {
			t.Errorf("VSPC start of plan %s with X-Request-id %q that no audit line decided", plan, id)
		}
		if ids[plan] == nil {
			ids[plan] = map[string]int{}
		}
		ids[plan][id]++
	}
	for plan, m := range ids {
		if len(m) > 1 {
			t.Errorf("VSPC plan %s got starts with %d different request ids: %v", plan, len(m), m)
		}
		for id, n := range m {
			if n > 2 {
				t.Errorf("VSPC start %s of plan %s sent %d times (one resend after a connection error at most)", id, plan, n)
			}
		}
	}
	emStarts := 0
	for _, req := range sim.Requests(simulator.APIEM) {
		if req.Method == http.MethodPost && strings.Contains(req.RawQuery, "action=start") {
			emStarts++
		}
	}
	if emStarts > 1 {
		t.Errorf("%d EM plan start requests", emStarts)
	}
	calls := sim.VBRFailoverCalls()
	if len(calls) > 1 {
		t.Errorf("%d VBR failover calls: %+v", len(calls), calls)
	}
	for _, p := range sim.Estate().VBR.Points {
		if n := sim.VBRFailovers(p.ID); n > 1 {
			t.Errorf("VBR restore point %s failed over %d times", p.ID, n)
		}
	}
	if len(calls) == 1 && decidedRules["vbr-0"] == 0 {
		t.Errorf("VBR failover without a decision in the audit log")
	}

	// No failover that never happens while its alert keeps firing: every
	// rule's object got its call, unless the rule's action ended uncertain
	// (the kill hit the call: maybe sent, so never repeated, and alerted on).
	uncertainRules := map[string]bool{}
	for _, a := range attempts {
		if slices.Contains(a.ends, "uncertain") {
			uncertainRules[a.rule] = true
		}
	}
	for _, r := range rules {
		var n int
		switch r.target {
		case "vspc":
			n = sim.VSPCPlanStarts(r.object)
		case "em":
			n = sim.EMPlanStarts(r.object)
		case "vbr":
			n = len(calls)
		}
		if n == 0 && !uncertainRules[r.name] {
			t.Errorf("rule %s: no failover call reached %s although its alert kept firing (decisions %d, outcomes %v)",
				r.name, r.target, decidedRules[r.name], outcomesOf(attempts, r.name))
		}
	}
	return len(uncertainRules)
}

// attempt is one decision of a request id and how it ended.
type attempt struct {
	id, rule string
	ends     []string
	released bool
}

func outcomesOf(attempts []*attempt, rule string) []string {
	var out []string
	for _, a := range attempts {
		if a.rule == rule {
			out = append(out, a.ends...)
		}
	}
	return out
}
