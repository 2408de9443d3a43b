package reliability

import (
	"context"
	"fmt"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/trigger"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// soakFaults are toggled in turn, on one API after the other, every 50
// scrapes; Count keeps each one short so that the run stays fast.
var soakFaults = []simulator.Fault{
	{Status: 500, Count: 2},
	{Status: http.StatusTooManyRequests, Count: 2},
	{ExpireAuth: true},
	{Truncate: true, Count: 2},
	{NonJSON: true, Count: 1},
	{Reset: true, Count: 2},
	{Latency: 1200 * time.Millisecond, Count: 1},
}

// TestSoak scrapes a small estate 1,000 times (100 with -short) with faults
// coming and going, while webhooks hit a dry-run trigger that reads the same
// targets. Afterwards no goroutine may be left and the heap must not have
// grown beyond a small bound.
func TestSoak(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	scrapes := 1000
	if testing.Short() {
		scrapes = 100
	}
	before, after := soak(t, scrapes)
	t.Logf("heap after warm-up: %.1f MiB; after %d scrapes: %.1f MiB", mib(before), scrapes, mib(after))
	if limit := 2*before + 8<<20; after > limit {
		t.Errorf("heap grew from %.1f MiB to %.1f MiB (limit %.1f MiB)", mib(before), mib(after), mib(limit))
	}
	goleak.VerifyNone(t, ignore)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func heapAlloc(sim *simulator.Simulator) uint64 {
	// The simulator's request log lives in this process too.
	sim.ResetRequests()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// soak runs the scrapes and webhooks, closes everything it started and
// returns the heap after warm-up and at the end.
func soak(t *testing.T, scrapes int) (before, after uint64) {
	o := smallEstate(11)
	o.ActionDuration = 100 * time.Millisecond
	sim, err := simulator.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	quiet := slog.New(slog.DiscardHandler)
	var clients []*targetClient
	var targets []collector.Target
	for _, api := range apis {
		c := newClient(t, string(api), targetName(api), simURL(sim, api), sim.CACertPEM(), simulator.DefaultPassword, quiet)
		clients = append(clients, c)
		targets = append(targets, c.collectorTarget())
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	e := collector.New(targets, collector.Options{PerObject: true, SessionsPerPlan: 1, Logger: quiet})
	defer e.Close()

	est := sim.Estate()
	var plan, emPlan string
	for _, p := range est.VSPC.Plans {
		if p.Status == "Ready" {
			plan = p.Name
			break
		}
	}
	if plan == "" {
		t.Fatal("no Ready VSPC plan in the estate")
	}
	emPlan = est.EM.Plans[0].Name
	var replicas []string
	for _, r := range est.VBR.Replicas {
		replicas = append(replicas, r.Name)
	}
	dir := t.TempDir()
	cfg := config.Default().Trigger // trigger.New takes a loaded config
	cfg.StateFile = filepath.Join(dir, "state.json")
	cfg.AuditLog = filepath.Join(dir, "audit.jsonl")
	cfg.RateLimit = config.RateLimit{Actions: 1000, Per: model.Duration(time.Hour)}
	cfg.Rules = []config.Rule{
		{Name: "site-a", Matchers: []string{`alertname="SiteDown"`, `site="a"`}, MinAlerts: 1,
			Action: config.Action{Type: config.ActionVSPCPlanStart, Target: targetName(simulator.APIVSPC), Plan: plan}},
		{Name: "em-down", Matchers: []string{`alertname="EMDown"`}, MinAlerts: 1,
			Action: config.Action{Type: config.ActionEMPlanStart, Target: targetName(simulator.APIEM), Plan: emPlan}},
		{Name: "vm-down", Matchers: []string{`alertname="VMDown"`}, MinAlerts: 1,
			Action: config.Action{Type: config.ActionVBRFailover, Target: targetName(simulator.APIVBR), ReplicaLabel: "replica", Allow: replicas}},
	}
	tr, err := trigger.New(cfg, actorsFor(clients...), trigger.Options{
		Logger: quiet, Registerer: prometheus.NewRegistry(), PollInterval: 100 * time.Millisecond, CheckTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatalf("trigger: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tr.Close(ctx); err != nil {
			t.Errorf("trigger close: %v", err)
		}
	}()
	srv := httptest.NewServer(tr.WebhookHandler())
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()

	// Webhooks, concurrently with the scrapes.
	var (
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		codes sync.Map // int -> *atomic.Int64
		sent  atomic.Int64
	)
	count := func(code int) {
		v, _ := codes.LoadOrStore(code, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				n := sent.Add(1)
				start := time.Now().Add(-time.Minute)
				gk := fmt.Sprintf(`{}:{w="%d",n="%d"}`, w, n)
				var body []byte
				switch n % 4 {
				case 0:
					body = notification(gk, nil, amtest.Firing(start, "alertname", "SiteDown", "site", "a", "n", fmt.Sprint(n)))
				case 1:
					body = notification(gk, nil, amtest.Firing(start, "alertname", "VMDown", "replica", replicas[int(n)%len(replicas)]))
				case 2:
					body = notification(gk, nil, amtest.Firing(start, "alertname", "EMDown", "n", fmt.Sprint(n)))
				default:
					body = notification(gk, func(p map[string]any) { p["version"] = "3" }, amtest.Firing(start, "alertname", "SiteDown", "site", "a"))
				}
				code, _, err := httpDo(hc, http.MethodPost, srv.URL, jsonHeader(""), body)
				if err != nil {
					count(-1)
					continue
				}
				count(code)
			}
		})
	}

	down := 0
	for i := range scrapes {
		if i == 50 || (scrapes < 100 && i == scrapes/2) {
			before = heapAlloc(sim)
		}
		switch i % 50 {
		case 10:
			k := i / 50
			sim.SetFault(apis[k%len(apis)], soakFaults[k%len(soakFaults)])
		case 35:
			sim.ClearFaults()
		}
		r := scrape(e, time.Second)
		if r.err != nil {
			t.Fatalf("scrape %d: %v", i, r.err)
		}
		for _, v := range values(r.families, "veeam_up", "target") {
			if v == 0 {
				down++
			}
		}
	}
	close(stop)
	wg.Wait()
	sim.ClearFaults()
	checkUp(t, "after the soak", scrape(e, 2*time.Second), map[string]float64{
		targetName(simulator.APIVSPC): 1, targetName(simulator.APIEM): 1, targetName(simulator.APIVBR): 1,
	})
	after = heapAlloc(sim)

	summary := map[int]int64{}
	codes.Range(func(k, v any) bool { summary[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("%d scrapes, %d target scrapes down; webhooks by status: %v", scrapes, down, summary)
	if summary[http.StatusOK] == 0 || summary[http.StatusBadRequest] == 0 {
		t.Errorf("webhooks: want both 200s and 400s, got %v", summary)
	}
	for code, n := range summary {
		if code != http.StatusOK && code != http.StatusBadRequest {
			t.Errorf("%d webhooks answered %d (-1: no answer)", n, code)
		}
	}
	for _, p := range est.VSPC.Plans {
		if n := sim.VSPCPlanStarts(p.InstanceUID); n != 0 {
			t.Errorf("dry-run trigger started VSPC plan %s %d times", p.Name, n)
		}
	}
	for _, p := range est.EM.Plans {
		if n := sim.EMPlanStarts(p.UID); n != 0 {
			t.Errorf("dry-run trigger started EM plan %s %d times", p.Name, n)
		}
	}
	if n := len(sim.VBRFailoverCalls()); n != 0 {
		t.Errorf("dry-run trigger made %d VBR failover calls", n)
	}
	return before, after
}
