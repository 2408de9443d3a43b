package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

const webhookToken = "bench-webhook-token"

// vbrFailoverOp is what a restore point must allow for vbr_failover.
const vbrFailoverOp = "StartViVMSnapshotReplicaFailover"

// whObject is one thing a rule acts on: alerts named alertname with
// label=value pick it.
type whObject struct {
	rule, alertname, label, value string
}

// whRun is figure 4.
type whRun struct {
	// Store is where the trigger keeps its memory: "local file" or
	// "etcd (N members)".
	Store         string         `json:"store"`
	Notifications int            `json:"notifications"`
	Clients       int            `json:"clients"`
	WallMS        float64        `json:"wall_ms"`
	PerSecond     float64        `json:"per_second"`
	P50MS         float64        `json:"p50_ms"`
	P90MS         float64        `json:"p90_ms"`
	P99MS         float64        `json:"p99_ms"`
	MaxMS         float64        `json:"max_ms"`
	Codes         map[int]int    `json:"codes"`
	Outcomes      map[string]int `json:"decisions_by_guard_or_outcome"`
	ExpectedCalls int            `json:"expected_calls"`
	Calls         map[string]int `json:"calls_by_rule"`
	TotalCalls    int            `json:"calls"`
	AuditLines    int            `json:"audit_lines"`
	// P99BlockedMS is the p99 of the notifications whose decisions were
	// all blocked (no live read of Veeam); ActingMaxMS the slowest of
	// those that acted (their target_state guard reads Veeam live).
	P99BlockedMS float64 `json:"p99_blocked_ms"`
	ActingMinMS  float64 `json:"acting_min_ms"`
	ActingMaxMS  float64 `json:"acting_max_ms"`
	// CPU used during the storm by the exporter and by this process (the
	// 50 clients and the simulator).
	ExporterCPUMS float64 `json:"exporter_cpu_ms"`
	BenchCPUMS    float64 `json:"bench_cpu_ms"`
	// Slowest lists the decisions of the slowest answers, to see what
	// they waited for.
	Slowest []string `json:"slowest,omitempty"`
}

// pickObjects chooses what the rules may act on: VSPC plans that are
// Ready, EM plans, and VBR replicas with a point that allows failover.
func pickObjects(est simulator.Estate, n int) ([]whObject, error) {
	var out []whObject
	k := 0
	for _, p := range est.VSPC.Plans {
		if p.Status == "Ready" && k < n {
			out = append(out, whObject{"vspc-site-down", "SiteDown", "plan", strings.ToLower(p.InstanceUID)})
			k++
		}
	}
	k = 0
	for _, p := range est.EM.Plans {
		if k < n {
			out = append(out, whObject{"em-site-down", "EMSiteDown", "plan", strings.ToLower(p.UID)})
			k++
		}
	}
	allows := map[string]bool{}
	for _, p := range est.VBR.Points {
		if slices.Contains(p.AllowedOperations, vbrFailoverOp) {
			allows[strings.ToLower(p.ReplicaID)] = true
		}
	}
	names := map[string]int{}
	for _, r := range est.VBR.Replicas {
		names[r.Name]++
	}
	k = 0
	for _, r := range est.VBR.Replicas {
		if allows[strings.ToLower(r.ID)] && names[r.Name] == 1 && k < n {
			out = append(out, whObject{"vm-down", "VMDown", "replica", r.Name})
			k++
		}
	}
	if len(out) < 3*n {
		return nil, fmt.Errorf("estate has only %d objects the rules can act on, want %d", len(out), 3*n)
	}
	return out, nil
}

func allowList(objs []whObject, rule string) string {
	var vs []string
	for _, o := range objs {
		if o.rule == rule {
			vs = append(vs, fmt.Sprintf("%q", o.value))
		}
	}
	return "[" + strings.Join(vs, ", ") + "]"
}

// webhookConfig is the storm's config; with etcd endpoints the trigger's
// memory is in etcd instead of the local state file.
func webhookConfig(u urls, objs []whObject, etcd []string) string {
	store := "  state_file: state.json\n"
	if len(etcd) > 0 {
		store = fmt.Sprintf("  coordination:\n    etcd: {endpoints: [%s], prefix: /bench/}\n", strings.Join(etcd, ", "))
	}
	return targetsYAML(u) + `
trigger:
  dry_run: false
  webhook_bearer_token_file: token
` + store + fmt.Sprintf(`  audit_log: audit.jsonl
  kill_switch_file: disarm
  max_concurrent: 100
  rate_limit: {actions: 1000, per: 1h}
  rules:
    - name: vspc-site-down
      matchers: ['alertname="SiteDown"']
      cooldown: 24h
      action: {type: vspc_plan_start, target: %s, plan_label: plan, allow: %s}
    - name: em-site-down
      matchers: ['alertname="EMSiteDown"']
      cooldown: 24h
      action: {type: em_plan_start, target: %s, plan_label: plan, allow: %s}
    - name: vm-down
      matchers: ['alertname="VMDown"']
      cooldown: 24h
      action: {type: vbr_failover, target: %s, replica_label: replica, allow: %s, reason: bench}
`, vspcTarget, allowList(objs, "vspc-site-down"), emTarget, allowList(objs, "em-site-down"), vbrTarget, allowList(objs, "vm-down"))
}

// notifications builds n notifications, shuffled: 60% repeats of 20 alert
// groups (Alertmanager's repeat_interval and HA peers: dedup after the
// first), 20% new groups on the same objects (cooldown), 10% alerts no rule
// matches, 10% resolved. Every object is in a firing group, so each rule
// acts exactly once per object; the rest is blocked.
func notifications(objs []whObject, n int, now time.Time) (bodies [][]byte, expected map[string]int) {
	rng := rand.New(rand.NewPCG(8, 8))
	alerts := func(o whObject, status string, startsAt time.Time, count int) []amtest.Alert {
		var as []amtest.Alert
		for i := range count {
			a := amtest.Firing(startsAt, "alertname", o.alertname, o.label, o.value, "instance", fmt.Sprintf("host-%d", i), "severity", "critical")
			if status == "resolved" {
				a = amtest.Resolved(startsAt, "alertname", o.alertname, o.label, o.value, "instance", fmt.Sprintf("host-%d", i), "severity", "critical")
			}
			as = append(as, a)
		}
		return as
	}
	payload := func(groupKey string, as []amtest.Alert) []byte {
		return amtest.Notification(groupKey, as...).JSON()
	}
	const groups = 20
	templates := make([][]byte, groups)
	resolved := make([][]byte, groups)
	expected = map[string]int{}
	for i := range groups {
		o := objs[i%len(objs)]
		gk := fmt.Sprintf(`{}/{severity="critical"}:{alertname=%q, group="%d"}`, o.alertname, i)
		start := now.Add(-time.Duration(10+i) * time.Minute)
		templates[i] = payload(gk, alerts(o, "firing", start, 1+i%3))
		resolved[i] = payload(gk, alerts(o, "resolved", start, 1+i%3))
		expected[o.rule+"/"+o.value] = 1
	}
	other := whObject{"", "DiskFull", "device", "sda"}
	for k := range n {
		switch r := k % 10; {
		case r < 6:
			bodies = append(bodies, templates[k%groups])
		case r < 8:
			o := objs[k%len(objs)]
			start := now.Add(-time.Duration(k) * time.Second)
			bodies = append(bodies, payload(fmt.Sprintf(`{}:{alertname=%q, n="%d"}`, o.alertname, k), alerts(o, "firing", start, 1+k%2)))
			expected[o.rule+"/"+o.value] = 1
		case r == 8:
			bodies = append(bodies, payload(fmt.Sprintf(`{}:{alertname="DiskFull", n="%d"}`, k), alerts(other, "firing", now.Add(-time.Hour), 1)))
		default:
			bodies = append(bodies, resolved[k%groups])
		}
	}
	rng.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
	return bodies, expected
}

// startCalls counts the acting calls in the simulator's log by rule.
func startCalls(sim *simulator.Simulator) map[string]int {
	out := map[string]int{}
	for _, r := range sim.Requests(simulator.APIVSPC) {
		if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.Path), "/start") {
			out["vspc-site-down"]++
		}
	}
	for _, r := range sim.Requests(simulator.APIEM) {
		if r.Method == http.MethodPost && strings.HasPrefix(strings.ToLower(r.Path), "/api/failoverplans/") && strings.Contains(r.RawQuery, "action=start") {
			out["em-site-down"]++
		}
	}
	for _, r := range sim.Requests(simulator.APIVBR) {
		if r.Method == http.MethodPost && strings.HasPrefix(strings.ToLower(r.Path), "/api/v1/failover/") {
			out["vm-down"]++
		}
	}
	return out
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// runWebhook is the storm on one exporter; with etcd endpoints its memory
// is in that etcd (coordination), else in its local state file.
func (e *env) runWebhook(ctx context.Context, etcd []string) (whRun, error) {
	r := whRun{Store: "local file", Notifications: e.s.Notifications, Clients: e.s.Clients, Codes: map[int]int{}, Outcomes: map[string]int{}}
	name := "webhook"
	if len(etcd) > 0 {
		r.Store, name = fmt.Sprintf("etcd (%d members)", len(etcd)), "webhook-etcd"
	}
	sim, err := simulator.Start(simulator.Options{
		Seed: 1, TLS: true, Latency: e.s.Latency, ActionDuration: 2 * time.Second,
		VSPC: simulator.VSPCOptions{Plans: 40, ObjectsPerPlan: 4, BackupServers: 2},
		VBR:  simulator.VBROptions{Replicas: 30, PointsPerReplica: 3},
	})
	if err != nil {
		return r, err
	}
	defer sim.Close()
	objs, err := pickObjects(sim.Estate(), 4)
	if err != nil {
		return r, err
	}
	dir, err := e.newDir(name)
	if err != nil {
		return r, err
	}
	if err := writeSecrets(dir, sim.CACertPEM()); err != nil {
		return r, err
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(webhookToken+"\n"), 0o600); err != nil {
		return r, err
	}
	x, err := startExporter(e.bin, dir, webhookConfig(simURLs(sim), objs, etcd))
	if err != nil {
		return r, err
	}
	defer x.stop()

	// A running exporter has logged in to its targets (scrapes keep the
	// sessions alive); so does this one before the storm.
	if st, err := x.scrape(ctx, e.buf); err != nil || st.ok(3) != nil {
		return r, fmt.Errorf("warm-up scrape: %v %v", err, st.ok(3))
	}

	bodies, expected := notifications(objs, e.s.Notifications, time.Now())
	r.ExpectedCalls = total(expected)
	sim.ResetRequests()

	type answer struct {
		d    time.Duration
		code int
		body []byte
	}
	answers := make([]answer, len(bodies))
	work := make(chan int)
	var wg sync.WaitGroup
	xcpu, bcpu := x.cpu(), selfCPU()
	start := time.Now()
	for range e.s.Clients {
		wg.Go(func() {
			for i := range work {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, x.base+"/webhook", bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+webhookToken)
				t0 := time.Now()
				resp, err := x.http.Do(req)
				if err != nil {
					answers[i] = answer{d: time.Since(t0), body: []byte(err.Error())}
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answers[i] = answer{d: time.Since(t0), code: resp.StatusCode, body: b}
			}
		})
	}
	for i := range bodies {
		work <- i
	}
	close(work)
	wg.Wait()
	wall := time.Since(start)
	r.ExporterCPUMS, r.BenchCPUMS = ms(x.cpu()-xcpu), ms(selfCPU()-bcpu)

	r.WallMS = ms(wall)
	r.PerSecond = float64(len(bodies)) / wall.Seconds()
	lat := make([]time.Duration, len(answers))
	var blocked []time.Duration
	r.ActingMinMS = math.Inf(1)
	for i, a := range answers {
		lat[i] = a.d
		r.Codes[a.code]++
		var ans struct {
			Decisions []struct {
				Rule, Guard, Outcome string
			} `json:"decisions"`
		}
		acted := false
		if err := json.Unmarshal(a.body, &ans); err == nil {
			for _, d := range ans.Decisions {
				k := d.Outcome
				if d.Guard != "" {
					k += ":" + d.Guard
				}
				r.Outcomes[k]++
				acted = acted || d.Outcome == "decided"
			}
		}
		if acted {
			r.ActingMinMS, r.ActingMaxMS = min(r.ActingMinMS, ms(a.d)), max(r.ActingMaxMS, ms(a.d))
		} else {
			blocked = append(blocked, a.d)
		}
	}
	slices.Sort(blocked)
	r.P99BlockedMS = ms(percentile(blocked, .99))
	if math.IsInf(r.ActingMinMS, 1) {
		r.ActingMinMS = 0
	}
	order := make([]int, len(answers))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(answers[b].d - answers[a].d) })
	for _, i := range order[:min(5, len(order))] {
		r.Slowest = append(r.Slowest, fmt.Sprintf("%.1fms: %.300s", ms(answers[i].d), answers[i].body))
	}
	slices.Sort(lat)
	r.P50MS, r.P90MS, r.P99MS, r.MaxMS = ms(percentile(lat, .50)), ms(percentile(lat, .90)), ms(percentile(lat, .99)), ms(lat[len(lat)-1])

	// The calls go out after the answer (the decision is durable first):
	// wait for them, then a little longer for any extra.
	deadline := time.Now().Add(20 * time.Second)
	for total(startCalls(sim)) < r.ExpectedCalls && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	r.Calls = startCalls(sim)
	r.TotalCalls = total(r.Calls)
	if b, err := os.ReadFile(filepath.Join(dir, "audit.jsonl")); err == nil {
		r.AuditLines = bytes.Count(b, []byte("\n"))
	}
	e.logf("webhook (%s): %d notifications in %s (%.0f/s), p50 %.1fms p99 %.1fms, calls %d/%d expected, codes %v",
		r.Store, len(bodies), wall.Round(time.Millisecond), r.PerSecond, r.P50MS, r.P99MS, r.TotalCalls, r.ExpectedCalls, r.Codes)
	return r, nil
}
