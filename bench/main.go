// Command bench measures veeam_failover_exporter at service-provider scale
// against the simulator with injected latency and prints the report of the
// performance issue (make bench): scrape wall time against the ideal,
// memory, exposition from the cache (text against protobuf), the webhook
// under an alert storm, scaling, and (figure 6, bench/SCALE.md) what the
// estate costs the user's Prometheus: series, body bytes and a real
// Prometheus' RSS for the default and the richest settings, and /probe of
// one target. The table goes to stdout and, as JSON, to bench/report.json.
//
// The exporter runs as its own process (the binary is built first), so that
// its peak RSS is its own; the simulator runs in this process. Only the
// allocation figure runs the exporter's code in this process, against a
// simulator in a child process. Figure 6 also runs the prometheus binary
// in PATH as a child process.
//
//	go run ./bench            # the full report, a few minutes
//	go run ./bench -quick     # a small estate, a smoke run
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

func main() {
	if spec := os.Getenv(simServerEnv); spec != "" {
		os.Exit(simServerMain(spec))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		quick    = fs.Bool("quick", false, "small estate and fewer notifications: a smoke run")
		out      = fs.String("out", "", "report JSON file (default bench/report.json in the module)")
		benchfmt = fs.String("benchfmt", "", "also write the figures in Go benchmark format to this file (for benchstat)")
		bin      = fs.String("exporter", "", "exporter binary to measure (default: go build of the module)")
		verbose  = fs.Bool("v", true, "log progress to stderr")
		baseline = fs.String("baseline-rev", oldRevision, "git revision built as figure 6's \"old\" setting (its defaults: the per-VM stateset on); empty: none")
		only     = fs.String("only", "", "measure only these figures, e.g. 1,4 (figure 2's RSS and 3 need 1; 6 is the cost to Prometheus and /probe)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	s := defaultSettings(*quick)
	s.BaselineRev = *baseline
	if *only != "" {
		s.Only = map[string]bool{}
		for f := range strings.SplitSeq(*only, ",") {
			s.Only[strings.TrimSpace(f)] = true
		}
	}
	logf := func(format string, args ...any) {
		if *verbose {
			fmt.Fprintf(stderr, "bench: "+format+"\n", args...)
		}
	}
	rep, err := runBench(context.Background(), s, *bin, logf)
	if rep == nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	rep.printTable(stdout)
	path := *out
	if path == "" {
		if root, err := moduleRoot(); err == nil {
			path = filepath.Join(root, "bench", "report.json")
		} else {
			path = "report.json"
		}
	}
	if err := rep.writeJSON(path); err != nil {
		fmt.Fprintln(stderr, "bench: writing report:", err)
		return 1
	}
	fmt.Fprintln(stdout, "report written to", path)
	if *benchfmt != "" {
		if err := rep.writeBenchfmt(*benchfmt); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

// runBench measures every figure. A figure that cannot be measured is an
// error in the report; the others are still measured.
func runBench(ctx context.Context, s settings, bin string, logf func(string, ...any)) (*report, error) {
	began := time.Now()
	rep := &report{Time: began.UTC(), Machine: currentMachine(), Settings: s, Details: map[string]any{}}
	tmp, err := os.MkdirTemp("", "vfe-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		logf("building the exporter")
		if bin, err = buildExporter(root, tmp); err != nil {
			return nil, err
		}
	}
	e := &env{s: s, bin: bin, tmp: tmp, buf: make([]byte, 1<<20), logf: logf}
	if s.measure("6") && s.BaselineRev != "" {
		logf("building the exporter of revision %s (figure 6's old setting)", s.BaselineRev)
		if e.oldBin, err = buildRevision(s.BaselineRev, tmp); err != nil {
			e.oldErr = err
			logf("%v", err)
		}
	}
	fail := func(what string, err error) {
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", what, err))
		logf("%s: %v", what, err)
	}

	skipped := errors.New("not measured (-only)")
	var (
		c8, c1           scrapeRun
		cached           cachedRun
		alloc            allocResult
		wh, whEtcd       whRun
		errEtcd          error
		cost             costRun
		err8, err1, errc = skipped, skipped, skipped
		erra, errw, err6 = skipped, skipped, skipped
	)
	if s.measure("1", "2", "3", "5", "6") {
		logf("starting the simulator (%d plan objects)", s.Estate.planObjects())
		sim, err := simulator.Start(s.Estate.simOptions(s.Latency))
		if err != nil {
			return nil, err
		}
		if s.measure("1", "2", "3", "5") {
			if c8, err8 = e.runScrapes(ctx, sim, s.Estate, s.Concurrency, true); err8 != nil {
				fail("scrape at concurrency "+fmt.Sprint(s.Concurrency), err8)
			}
		}
		if s.measure("1") {
			if c1, err1 = e.runScrapes(ctx, sim, s.Estate, 1, false); err1 != nil {
				fail("scrape at concurrency 1", err1)
			}
		}
		if s.measure("3") {
			if cached, errc = e.runCached(ctx, sim, s.Concurrency, s.CachedRenders); errc != nil {
				fail("cached exposition", errc)
			}
		}
		if s.measure("6") {
			logf("cost to Prometheus: default, richest and old settings, %d Prometheus runs of %d scrapes every %s each; /probe", s.PromRuns, s.PromScrapes, s.PromInterval)
			if cost, err6 = e.runScaleCost(ctx, sim); err6 != nil {
				fail("cost to Prometheus", err6)
			}
		}
		_ = sim.Close()
	}

	if s.measure("2") {
		logf("allocation benchmark")
		if alloc, erra = e.runAlloc(); erra != nil {
			fail("allocations", erra)
		}
	}

	scales := []scaleRun{{Scale: 1, Estate: s.Estate, Run: c8}}
	var small []scaleRun
	var errs error
	for _, k := range append(slices.Clone(s.SmallScales), s.Scales...) {
		if k == 1 || !s.measure("5") {
			continue
		}
		logf("scaling: %gx estate", k)
		r, err := e.runScale(ctx, k)
		if err != nil {
			fail(fmt.Sprintf("scaling %gx", k), err)
			errs = err
			continue
		}
		if slices.Contains(s.SmallScales, k) {
			small = append(small, r)
		} else {
			scales = append(scales, r)
		}
	}

	if s.measure("4") {
		logf("webhook: %d notifications from %d clients", s.Notifications, s.Clients)
		if wh, errw = e.runWebhook(ctx, nil); errw != nil {
			fail("webhook", errw)
		}
		// The same storm with the trigger's memory in a three-member etcd
		// (trigger.coordination), as two or three replicas run it.
		logf("webhook with etcd coordination: starting a 3-member etcd")
		errEtcd = e.withEtcd(3, func(eps []string) error {
			var err error
			whEtcd, err = e.runWebhook(ctx, eps)
			return err
		})
		if errEtcd != nil {
			fail("webhook with etcd coordination", errEtcd)
		}
	}

	rep.Details["scrape"] = map[string]any{"concurrency_8": c8, "concurrency_1": c1}
	rep.Details["cached"] = cached
	rep.Details["alloc"] = alloc
	rep.Details["scaling"] = scales
	rep.Details["scaling_small"] = small
	rep.Details["webhook"] = wh
	rep.Details["webhook_etcd"] = whEtcd
	rep.Details["prometheus_cost"] = cost
	rep.Details["ideal_definition"] = idealDefinition
	if err8 == nil && err1 == nil {
		scrapeFigures(rep, s, c8, c1)
	}
	if err8 == nil && s.measure("2") {
		rep.add(row("2.peak_rss", "2", "peak RSS (exporter, VmHWM)", float64(c8.PeakRSS)/(1<<20), "MiB").
			target("<= 200 MiB", c8.PeakRSS <= 200<<20).
			note(fmt.Sprintf("exporter process after a cold and a warm full scrape at concurrency %d; %d series, %.1f MiB exposition", s.Concurrency, c8.Series, float64(c8.Bytes)/(1<<20))))
	}
	if erra == nil {
		allocFigures(rep, alloc)
	}
	if errc == nil {
		rep.add(row("3.cached_render", "3", "render /metrics from cache (median)", cached.Median, "ms").
			target("<= 300 ms", cached.Median <= 300 && cached.Requests == 0).
			note(fmt.Sprintf("scrape.min_interval 1h; %d renders %v ms, %d series, %d Veeam requests during them; the filling scrape took %.0f ms", len(cached.RenderMS), roundAll(cached.RenderMS), cached.Series, cached.Requests, cached.FillMS)))
	}
	if errw == nil {
		webhookFigures(rep, wh)
	}
	if errw == nil && errEtcd == nil && s.measure("4") {
		webhookEtcdFigures(rep, wh, whEtcd)
	}
	if err8 == nil && s.measure("5") {
		scalingFigures(rep, scales)
	}
	if len(small) == 2 {
		smallScalingFigures(rep, small[0], small[1])
	}
	if err6 != skipped {
		// Rows whose measure failed show as MISSED with the error below.
		scaleCostFigures(rep, cost)
	}
	rep.Duration = time.Since(began).Round(time.Second).String()
	rep.Machine.LoadAvg = append(rep.Machine.LoadAvg, loadAvg())
	var errsAll []error
	for _, err := range []error{err8, err1, errc, erra, errs, errw, err6, errEtcd} {
		if err != skipped {
			errsAll = append(errsAll, err)
		}
	}
	return rep, errors.Join(errsAll...)
}

func roundAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x + 0.5))
	}
	return out
}

const idealDefinition = "ideal = latency x max over targets of (1 login round trip + max(ceil(F/c) + ceil((P-F)/c), max over lists of (1 + ceil((p-1)/c)))), " +
	"where P is the target's pages (ceil(items/page size) per list, at least 1), F its number of lists, p one list's pages and c scrape.concurrency: " +
	"the first page of each list is read before its other pages, all of a target's reads share its concurrency bound, targets run in parallel. " +
	"It counts no CPU time: decoding, merging, the collectors and the exposition of the whole body are all overhead against it. The warm ideal omits the login."

func scrapeFigures(rep *report, s settings, c8, c1 scrapeRun) {
	c := s.Concurrency
	last := 0.0
	for _, sp := range c8.Timeline {
		if sp.API == c8.Ideal.Critical {
			last = sp.LastMS
		}
	}
	rep.add(row("1.wall_c8", "1", fmt.Sprintf("scrape wall, cold, c=%d", c), c8.ColdMS, "ms").
		base("ideal", c8.IdealMS).
		target("ratio <= 1.3", c8.ColdMS/c8.IdealMS <= 1.3).
		note(fmt.Sprintf("first scrape of a fresh exporter (logins, new TLS connections) through GET /metrics, body read in full (%d series, %.1f MiB); "+
			"critical target %s with %d rounds of %s: its last page was requested at %.0f ms (ideal %.0f ms), the remaining %.0f ms are that request, "+
			"merging, the collectors and the exposition; CPU during the scrape: exporter %.0f ms, simulator and bench client %.0f ms, on %d cores",
			c8.Series, float64(c8.Bytes)/(1<<20), c8.Ideal.Critical, c8.Ideal.Rounds[c8.Ideal.Critical], s.Latency,
			last, c8.IdealMS-ms(s.Latency), c8.ColdMS-last, c8.ExporterCPUMS, c8.SimCPUMS, rep.Machine.CPUs)))
	rep.add(row("1.wall_c8_warm", "1", fmt.Sprintf("scrape wall, warm, c=%d", c), c8.WarmMS, "ms").
		base("ideal w/o login", c8.IdealWarmMS).
		target("ratio <= 1.3", c8.WarmMS/c8.IdealWarmMS <= 1.3))
	rep.add(row("1.wall_c1", "1", "scrape wall, cold, c=1", c1.ColdMS, "ms").
		base("ideal", c1.IdealMS))
	speedup := c1.ColdMS / c8.ColdMS
	rep.add(row("1.speedup", "1", fmt.Sprintf("speed-up c=%d vs c=1", c), speedup, "x").
		base("ideal speed-up", c1.IdealMS/c8.IdealMS).
		target(">= 6x", speedup >= 6))
	reqs, pages := float64(c8.ColdReqs.Reads), float64(c8.ExpPages)
	rep.add(row("1.requests", "1", "API requests (excl. logins)", reqs, "").
		base("pages", pages).
		target("within 5% of pages", reqs <= pages*1.05 && reqs >= pages*0.95).
		note(fmt.Sprintf("GETs in the simulator's log during the cold scrape; plus %d logins (%v); %d answers with an error status; pages by target %v",
			c8.ColdReqs.Logins, c8.ColdReqs.LoginsByAPI, c8.ColdReqs.Errors, c8.Ideal.Pages)))
}

func allocFigures(rep *report, a allocResult) {
	rep.add(row("2.alloc_per_object", "2", "heap allocated per plan object", a.Whole.BytesPerObj, "B").
		target("<= 2048 B", a.Whole.BytesPerObj <= 2048).
		note(fmt.Sprintf("testing.Benchmark with ReportAllocs, N=%d, of one scrape of a VSPC target (both collectors: %d plans, %d objects) in this process: "+
			"client reads over HTTPS from a simulator in a child process, collectors, and the text exposition of GET /metrics (collector.ServeMetrics); %.1f allocs/object, %.0f ms/op",
			a.Whole.N, rep.Settings.Estate.VSPCPlans, a.Objects, a.Whole.AllocsPerObj, a.Whole.MSPerOp)))
	rep.add(row("2.alloc_client", "2", "  of which client reads", a.Client.BytesPerObj, "B").
		note(fmt.Sprintf("both VSPC list reads alone: %.1f allocs/object", a.Client.AllocsPerObj)))
	rep.add(row("2.alloc_collector", "2", "  of which collector+exposition", a.Collector.BytesPerObj, "B").
		note(fmt.Sprintf("collectors and exposition over lists already read: %.2f allocs/object", a.Collector.AllocsPerObj)))
	x := a.Exposition
	rep.add(row("2.exposition_text", "2", "GET /metrics text, from cache", x.TextMS, "ms").
		note(fmt.Sprintf("testing.Benchmark of one uncompressed exposition of the VSPC target (%d objects, per-object series) from runs already read: %.1f MiB text, %.1f MiB protobuf",
			x.Objects, float64(x.TextBytes)/(1<<20), float64(x.ProtoBytes)/(1<<20))))
	rep.add(row("2.exposition_proto", "2", "GET /metrics protobuf, from cache", x.ProtoMS, "ms").
		base("text", x.TextMS).
		target("ratio <= 3", x.ProtoMS <= 3*x.TextMS))
	rep.add(row("2.exposition_proto_generic", "2", "  protobuf via promhttp (OpenMetrics, name[] path)", x.GenericProtoMS, "ms").
		base("text", x.TextMS))
}

func webhookFigures(rep *report, w whRun) {
	rep.add(row("4.webhook_rate", "4", "webhook notifications/s", w.PerSecond, "/s").
		target(">= 2000/s", w.PerSecond >= 2000).
		note(fmt.Sprintf("%d notifications from %d clients in %.0f ms, answers %v; decisions %v; audit lines %d",
			w.Notifications, w.Clients, w.WallMS, w.Codes, w.Outcomes, w.AuditLines)))
	rep.add(row("4.webhook_p50", "4", "webhook p50", w.P50MS, "ms"))
	rep.add(row("4.webhook_p99", "4", "webhook p99", w.P99MS, "ms").
		target("<= 50 ms", w.P99MS <= 50).
		note(fmt.Sprintf("p90 %.1f ms, max %.1f ms; p99 of the notifications that were only blocked %.1f ms; the %d that acted took %.0f to %.0f ms "+
			"(their target_state guard reads Veeam live: 1 to 2 requests of %s, before the decision is made durable); CPU during the storm: exporter %.0f ms, bench (clients, simulator) %.0f ms",
			w.P90MS, w.MaxMS, w.P99BlockedMS, w.Outcomes["decided"], w.ActingMinMS, w.ActingMaxMS, rep.Settings.Latency, w.ExporterCPUMS, w.BenchCPUMS)))
	allOK := w.Codes[200] == w.Notifications
	rep.add(row("4.webhook_calls", "4", "calls reaching the simulator", float64(w.TotalCalls), "").
		base("expected", float64(w.ExpectedCalls)).
		target("exactly expected", w.TotalCalls == w.ExpectedCalls && allOK).
		note(fmt.Sprintf("POST start/failover requests in the simulator's log by rule %v; expected one per rule and object named by a firing alert", w.Calls)))
}

func scalingFigures(rep *report, runs []scaleRun) {
	one := runs[0].Run
	for _, r := range runs[1:] {
		reqRatio := float64(r.Run.ColdReqs.Reads) / float64(one.ColdReqs.Reads)
		pageRatio := float64(r.Run.ExpPages) / float64(one.ExpPages)
		rep.add(row(fmt.Sprintf("5.requests_%gx", r.Scale), "5", fmt.Sprintf("requests at %gx", r.Scale), float64(r.Run.ColdReqs.Reads), "").
			base("1x", float64(one.ColdReqs.Reads)).
			target(fmt.Sprintf("linear (pages ratio %.2f)", pageRatio), reqRatio >= pageRatio*0.95 && reqRatio <= pageRatio*1.05))
		wallRatio := r.Run.ColdMS / one.ColdMS
		rep.add(row(fmt.Sprintf("5.wall_%gx", r.Scale), "5", fmt.Sprintf("scrape wall at %gx", r.Scale), r.Run.ColdMS, "ms").
			base("1x", one.ColdMS).
			target(fmt.Sprintf("linear (<= %.2f: pages ratio +5%%)", pageRatio*1.05), wallRatio <= pageRatio*1.05).
			note(fmt.Sprintf("ideal %.0f ms (ideal ratio %.2f), %d series, peak RSS %.0f MiB; CPU during the scrape: exporter %.0f ms, simulator and bench client %.0f ms",
				r.Run.IdealMS, r.Run.IdealMS/one.IdealMS, r.Run.Series, float64(r.Run.PeakRSS)/(1<<20), r.Run.ExporterCPUMS, r.Run.SimCPUMS)))
	}
}

// smallScalingFigures compares two estates whose lists need no more rounds
// of requests than the concurrency allows: more pages, about the same time.
func smallScalingFigures(rep *report, a, b scaleRun) {
	reqRatio := float64(b.Run.ColdReqs.Reads) / float64(a.Run.ColdReqs.Reads)
	pageRatio := float64(b.Run.ExpPages) / float64(a.Run.ExpPages)
	name := fmt.Sprintf("%gx", b.Scale)
	base := fmt.Sprintf("%gx", a.Scale)
	rep.add(row("5.requests_small", "5", "requests at "+name, float64(b.Run.ColdReqs.Reads), "").
		base(base, float64(a.Run.ColdReqs.Reads)).
		target(fmt.Sprintf("linear (pages ratio %.2f)", pageRatio), reqRatio >= pageRatio*0.95 && reqRatio <= pageRatio*1.05).
		note(fmt.Sprintf("below the concurrency limit: VSPC %d and %d plan objects (%d and %d pages in all)", a.Estate.planObjects(), b.Estate.planObjects(), a.Run.ExpPages, b.Run.ExpPages)))
	wallRatio := b.Run.ColdMS / a.Run.ColdMS
	rep.add(row("5.wall_small", "5", "scrape wall at "+name, b.Run.ColdMS, "ms").
		base(base, a.Run.ColdMS).
		target("sublinear (< requests ratio)", wallRatio < reqRatio).
		note(fmt.Sprintf("ideal %.0f and %.0f ms", a.Run.IdealMS, b.Run.IdealMS)))
}
