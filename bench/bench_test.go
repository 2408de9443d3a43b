package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
)

func TestMain(m *testing.M) {
	// The allocation figure runs the simulator as a child process: this
	// test binary, in its simulator mode.
	if spec := os.Getenv(simServerEnv); spec != "" {
		os.Exit(simServerMain(spec))
	}
	os.Exit(m.Run())
}

// quickFigures are the rows a quick run must produce.
var quickFigures = []string{
	"1.wall_c8", "1.wall_c8_warm", "1.wall_c1", "1.speedup", "1.requests",
	"2.peak_rss", "2.alloc_per_object", "2.alloc_client", "2.alloc_collector",
	"3.cached_render",
	"4.webhook_rate", "4.webhook_p50", "4.webhook_p99", "4.webhook_calls",
	"5.requests_2x", "5.wall_2x",
}

// TestQuick runs the bench on a small estate so that the harness cannot
// rot: every figure is measured and the report is written. Timings are not
// asserted; the report is the judge.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the exporter")
	}
	dir := t.TempDir()
	var out, errs bytes.Buffer
	if code := run([]string{"-quick", "-out", filepath.Join(dir, "report.json"), "-benchfmt", filepath.Join(dir, "report.txt")}, &out, &errs); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errs.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]figure{}
	for _, f := range rep.Figures {
		got[f.ID] = f
	}
	for _, id := range quickFigures {
		f, ok := got[id]
		switch {
		case !ok:
			t.Errorf("figure %s missing", id)
		case f.Value <= 0:
			t.Errorf("figure %s is %v", id, f.Value)
		case f.Target != "" && f.OK == nil:
			t.Errorf("figure %s has a target but no verdict", id)
		}
	}
	if len(rep.Errors) > 0 {
		t.Errorf("errors: %v", rep.Errors)
	}
	for _, want := range []string{"figure", "scrape wall, cold", "webhook p99", "report written to"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if bf, err := os.ReadFile(filepath.Join(dir, "report.txt")); err != nil || !bytes.Contains(bf, []byte("Benchmark1_wall_c8-")) {
		t.Errorf("benchfmt output: %v\n%s", err, bf)
	}
}

// benchEstate is the full estate, or the quick one with -short.
func benchEstate() estate {
	if testing.Short() {
		return quickEstate
	}
	return fullEstate
}

// BenchmarkVSPCScrape is one scrape of a VSPC target through the exporter's
// code (client over HTTPS, both collectors, exposition as GET /metrics
// renders it) against a simulator in a child process with 20 ms latency:
// B/op and B/object count only the exporter's allocations.
func BenchmarkVSPCScrape(b *testing.B) {
	est := benchEstate()
	sim, err := startChildSim(est, 20*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	defer sim.close()
	p, err := newVSPCPath(sim.VSPC, sim.CA, 8)
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	b.Run("whole", func(b *testing.B) { benchWhole(b, p, est.planObjects()) })
	b.Run("client", func(b *testing.B) { benchClient(b, p.client, est.planObjects()) })
	var f fixedVSPC
	if f.plans, err = p.client.ListFailoverPlans(b.Context()); err != nil {
		b.Fatal(err)
	}
	if f.objects, err = p.client.ListFailoverPlanObjects(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Run("collector", func(b *testing.B) { benchCollector(b, &f) })
}

// BenchmarkCachedExposition renders GET /metrics of a VSPC target from the
// cache (scrape.min_interval).
func BenchmarkCachedExposition(b *testing.B) {
	est := benchEstate()
	sim, err := startChildSim(est, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer sim.close()
	p, err := newVSPCPath(sim.VSPC, sim.CA, 8)
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	exp := collector.New([]collector.Target{vspcCollectorTarget(p.client)}, collector.Options{PerObject: true, MinInterval: time.Hour})
	defer exp.Close()
	if _, err := serve(exp); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := serve(exp); err != nil {
			b.Fatal(err)
		}
	}
}
