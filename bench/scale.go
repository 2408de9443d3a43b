package main

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// Figure 6 is what the estate costs the user's Prometheus: series and body
// bytes per scrape and a real Prometheus' RSS for the default and the
// richest settings, and /probe of one target against /metrics.

// The keys of the richest setting: the opt-in per-VM last-session stateset,
// and every value of every stateset and count. When the exporter measured
// rejects either, the richest setting falls back to the defaults of the
// binary, and the report says so.
const (
	lastSessionKey = "last_session_status"
	statesetsKey   = "statesets"
)

// recoveryPointNames must be in the default body: the recovery point per
// VM and per plan.
var recoveryPointNames = []string{
	"veeam_failover_plan_object_latest_restore_point_timestamp_seconds",
	"veeam_failover_plan_recovery_point_timestamp_seconds",
}

// scaleSetting is one exporter configuration of figure 6, as its
// collectors section.
type scaleSetting struct {
	Name       string `json:"name"`
	Collectors string `json:"collectors_yaml"`
	// Revision is the git revision of the binary, when not the tree's.
	Revision string `json:"revision,omitempty"`
	// Fallback says the exporter rejected the setting and what was
	// measured instead.
	Fallback string `json:"fallback,omitempty"`
}

var (
	defaultSetting = scaleSetting{Name: "default"}
	// oldSetting is the binary of settings.BaselineRev with its defaults.
	oldSetting     = scaleSetting{Name: "old"}
	richestSetting = scaleSetting{Name: "richest", Collectors: `collectors:
  ` + statesetsKey + `: all
  failover_plan_objects: {per_object: true, ` + lastSessionKey + `: true}
`}
)

// scaleResult is one setting measured.
type scaleResult struct {
	Setting     scaleSetting   `json:"setting"`
	FillMS      float64        `json:"first_scrape_ms"`
	Series      int            `json:"series"`
	SeriesPerVM float64        `json:"series_per_vm"`
	Bytes       int            `json:"bytes"`
	GzipBytes   int            `json:"gzip_bytes"`
	Families    map[string]int `json:"series_by_family"`
	// Missing are the recovery point names absent from the body.
	Missing     []string `json:"missing_names,omitempty"`
	ExporterRSS int64    `json:"exporter_peak_rss_bytes"`
	Prom        promRun  `json:"prometheus"`
}

// promRun is a real Prometheus scraping the exporter a fixed number of
// times.
type promRun struct {
	IntervalS float64 `json:"scrape_interval_seconds"`
	// Scrapes is the fixed number of successful scrapes waited for;
	// Attempts counts the failed ones too (a scrape that overran the
	// interval on a loaded machine).
	Scrapes  int `json:"scrapes"`
	Attempts int `json:"attempts"`
	// SamplesScraped is Prometheus' scrape_samples_scraped of the last
	// scrape; HeadSeries its prometheus_tsdb_head_series.
	SamplesScraped   float64 `json:"samples_scraped"`
	HeadSeries       float64 `json:"head_series"`
	ScrapeDurationMS float64 `json:"median_scrape_duration_ms"`
	PeakRSS          int64   `json:"peak_rss_bytes"`
	// PeakRSSRuns are the peaks of every run of the setting, in order;
	// the fields above are those of the run with the median peak.
	PeakRSSRuns []int64 `json:"peak_rss_bytes_runs"`
	RSS         int64   `json:"rss_bytes"`
	WallMS      float64 `json:"wall_ms"`
}

// probeRun compares GET /probe?target=<VSPC> on an exporter with all three
// targets against GET /metrics on an exporter with only that target, both
// reading Veeam on every scrape (no min_interval), warm (logged in).
type probeRun struct {
	ProbeMS   []float64 `json:"probe_ms"`
	MetricsMS []float64 `json:"metrics_vspc_only_ms"`
	Probe     float64   `json:"probe_median_ms"`
	Metrics   float64   `json:"metrics_median_ms"`
	// Requests are the simulator's requests by API during the probes.
	Requests     map[simulator.API]int `json:"requests_during_probes"`
	ProbeSeries  int                   `json:"probe_series"`
	MetricSeries int                   `json:"metrics_series"`
}

// costRun is figure 6.
type costRun struct {
	// VMs are the VMs of the estate, of every target: the VSPC plans' VMs,
	// the VMs in VBR's replicas and those in EM's failover plans (EM's
	// cloud failover sessions name none, so their VMs are not counted).
	VMs      int         `json:"vms"`
	VSPCVMs  int         `json:"vspc_vms"`
	VBRVMs   int         `json:"vbr_vms"`
	EMPlanVM int         `json:"em_plan_vms"`
	Default  scaleResult `json:"default"`
	Richest  scaleResult `json:"richest"`
	// Old is the binary of settings.BaselineRev with its defaults; OldErr
	// why it was not measured.
	Old    scaleResult `json:"old"`
	OldErr string      `json:"old_error,omitempty"`
	Probe  probeRun    `json:"probe"`
	Errors []string    `json:"-"`
}

// countVMs fills the VM counts of r from the simulator's estate.
func (r *costRun) countVMs(est simulator.Estate) {
	r.VSPCVMs = len(est.VSPC.Objects)
	vbr := map[[2]string]bool{}
	for _, p := range est.VBR.Points {
		vbr[[2]string{p.ReplicaID, p.Name}] = true
	}
	r.VBRVMs = len(vbr)
	for _, p := range est.EM.Plans {
		r.EMPlanVM += len(p.VMs)
	}
	r.VMs = r.VSPCVMs + r.VBRVMs + r.EMPlanVM
}

// scaleConfig is an exporter config for figure 6.
func scaleConfig(u urls, collectors string, concurrency int, minInterval time.Duration, only ...string) string {
	return targetsYAML(u, only...) + "\n" + collectors + fmt.Sprintf(`
scrape:
  concurrency: %d
  min_interval: %s
`, concurrency, minInterval)
}

// checkConfig runs an exporter's --config.check on a config in dir.
func checkConfig(bin, dir, config string) error {
	f := filepath.Join(dir, "check.yml")
	if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
		return err
	}
	out, err := exec.Command(bin, "--config.check", "--config.file="+f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runSetting measures one setting: a cold gzip scrape of /metrics (series,
// bytes, families), then Prometheus scraping the exporter, which serves
// from its cache (scrape.min_interval 1h) so that Veeam reads do not
// compete with Prometheus for the CPU; the body is the same either way.
func (e *env) runSetting(ctx context.Context, sim *simulator.Simulator, bin string, set scaleSetting, vms int) (scaleResult, error) {
	r := scaleResult{Setting: set}
	dir, err := e.newDir("scale-" + set.Name)
	if err != nil {
		return r, err
	}
	if err := writeSecrets(dir, sim.CACertPEM()); err != nil {
		return r, err
	}
	u := simURLs(sim)
	cfg := scaleConfig(u, set.Collectors, e.s.Concurrency, time.Hour)
	if err := checkConfig(bin, dir, cfg); err != nil {
		if !strings.Contains(err.Error(), lastSessionKey) && !strings.Contains(err.Error(), statesetsKey) {
			return r, fmt.Errorf("config of setting %s: %w", set.Name, err)
		}
		r.Setting.Fallback = fmt.Sprintf("the exporter rejects %s or %s (%v); measured its defaults instead", lastSessionKey, statesetsKey, err)
		e.logf("setting %s: %s", set.Name, r.Setting.Fallback)
		cfg = scaleConfig(u, "", e.s.Concurrency, time.Hour)
	}
	x, err := startExporter(bin, dir, cfg)
	if err != nil {
		return r, err
	}
	defer x.stop()
	st, err := x.get(ctx, e.buf, scrapeOpts{gzip: true, families: true})
	if err == nil {
		err = st.ok(3)
	}
	if err != nil {
		return r, fmt.Errorf("setting %s: %w (exporter log: %s)", set.Name, err, x.logTail())
	}
	r.FillMS, r.Series, r.Bytes, r.GzipBytes, r.Families = ms(st.Wall), st.Series, st.Bytes, st.GzipBytes, st.Families
	r.SeriesPerVM = float64(st.Series) / float64(vms)
	for _, n := range recoveryPointNames {
		if st.Families[n] == 0 {
			r.Missing = append(r.Missing, n)
		}
	}
	e.logf("setting %s: %d series (%.2f per VM), %.1f MB, %.1f MB gzip; first scrape %s",
		set.Name, r.Series, r.SeriesPerVM, float64(r.Bytes)/1e6, float64(r.GzipBytes)/1e6, st.Wall.Round(time.Millisecond))

	// A Go program's peak RSS moves with when its collector ran: each
	// setting gets several fresh Prometheus processes, and the one with
	// the median peak stands for it.
	var runs []promRun
	for i := range max(e.s.PromRuns, 1) {
		d := filepath.Join(dir, fmt.Sprintf("prometheus-%d", i+1))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return r, err
		}
		p, err := e.runPrometheus(ctx, x, d)
		if err != nil {
			return r, fmt.Errorf("setting %s: %w", set.Name, err)
		}
		e.logf("setting %s: Prometheus run %d: peak RSS %.0f MiB", set.Name, i+1, float64(p.PeakRSS)/(1<<20))
		runs = append(runs, p)
	}
	r.Prom = medianRun(runs)
	if want := float64(r.Series); r.Prom.SamplesScraped < want {
		err = fmt.Errorf("setting %s: Prometheus scraped %.0f samples, the body has %d series", set.Name, r.Prom.SamplesScraped, r.Series)
	}
	r.ExporterRSS, _, _ = x.memory()
	e.logf("setting %s: Prometheus after %d successful scrapes (%d made, median %.0f ms): median peak RSS %.0f MiB of %v, %0.f head series",
		set.Name, r.Prom.Scrapes, r.Prom.Attempts, r.Prom.ScrapeDurationMS, float64(r.Prom.PeakRSS)/(1<<20), mib(r.Prom.PeakRSSRuns), r.Prom.HeadSeries)
	return r, err
}

// runPrometheus starts Prometheus scraping x's /metrics, waits for the
// fixed number of scrapes and reads its memory.
func (e *env) runPrometheus(ctx context.Context, x *exporter, dir string) (promRun, error) {
	r := promRun{IntervalS: e.s.PromInterval.Seconds(), Scrapes: e.s.PromScrapes}
	began := time.Now()
	p, err := startPrometheus(dir, strings.TrimPrefix(x.base, "http://"), "/metrics", e.s.PromInterval)
	if err != nil {
		return r, err
	}
	defer p.stop()
	timeout := time.Duration(r.Scrapes+10) * e.s.PromInterval * 2
	if r.Attempts, err = p.waitScrapes(ctx, r.Scrapes, timeout); err != nil {
		return r, err
	}
	r.WallMS = ms(time.Since(began))
	if r.PeakRSS, r.RSS, err = procMemory(p.pid()); err != nil {
		return r, err
	}
	job := fmt.Sprintf(`{job=%q}`, promJob)
	for q, v := range map[string]*float64{
		"scrape_samples_scraped" + job:                                    &r.SamplesScraped,
		"quantile_over_time(0.5, scrape_duration_seconds" + job + "[1h])": &r.ScrapeDurationMS,
	} {
		if *v, _, err = p.query(ctx, q); err != nil {
			return r, err
		}
	}
	r.ScrapeDurationMS *= 1000
	r.HeadSeries, err = p.ownMetric(ctx, "prometheus_tsdb_head_series")
	return r, err
}

// runProbe is the /probe half of figure 6.
func (e *env) runProbe(ctx context.Context, sim *simulator.Simulator) (probeRun, error) {
	r := probeRun{Requests: map[simulator.API]int{}}
	start := func(name string, only ...string) (*exporter, error) {
		dir, err := e.newDir(name)
		if err != nil {
			return nil, err
		}
		if err := writeSecrets(dir, sim.CACertPEM()); err != nil {
			return nil, err
		}
		return startExporter(e.bin, dir, scaleConfig(simURLs(sim), "", e.s.Concurrency, 0, only...))
	}
	all, err := start("probe-all")
	if err != nil {
		return r, err
	}
	defer all.stop()
	one, err := start("probe-vspc-only", vspcTarget)
	if err != nil {
		return r, err
	}
	defer one.stop()
	probe := scrapeOpts{path: "/probe?target=" + vspcTarget}
	// Warm both (logins, connections), then alternate so that the load
	// of the machine weighs on both alike.
	for i := range e.s.ProbeRounds + 1 {
		sim.ResetRequests()
		st, err := all.get(ctx, e.buf, probe)
		if err == nil {
			err = st.ok(1)
		}
		if err != nil {
			return r, fmt.Errorf("probe: %w (exporter log: %s)", err, all.logTail())
		}
		for _, api := range []simulator.API{simulator.APIVSPC, simulator.APIEM, simulator.APIVBR} {
			r.Requests[api] += len(sim.Requests(api))
		}
		r.ProbeSeries = st.Series
		mt, err := one.get(ctx, e.buf, scrapeOpts{})
		if err == nil {
			err = mt.ok(1)
		}
		if err != nil {
			return r, fmt.Errorf("metrics of the VSPC-only exporter: %w (exporter log: %s)", err, one.logTail())
		}
		r.MetricSeries = mt.Series
		if i == 0 {
			continue
		}
		r.ProbeMS = append(r.ProbeMS, ms(st.Wall))
		r.MetricsMS = append(r.MetricsMS, ms(mt.Wall))
	}
	r.Probe, r.Metrics = median(r.ProbeMS), median(r.MetricsMS)
	e.logf("probe: %v ms (median %.0f) against /metrics of the VSPC-only exporter %v ms (median %.0f); requests during the probes %v",
		roundAll(r.ProbeMS), r.Probe, roundAll(r.MetricsMS), r.Metrics, r.Requests)
	return r, nil
}

// runScaleCost measures figure 6 against sim (the full estate).
func (e *env) runScaleCost(ctx context.Context, sim *simulator.Simulator) (costRun, error) {
	var r costRun
	r.countVMs(sim.Estate())
	var errs []error
	var err error
	if r.Default, err = e.runSetting(ctx, sim, e.bin, defaultSetting, r.VMs); err != nil {
		errs = append(errs, err)
	}
	if r.Richest, err = e.runSetting(ctx, sim, e.bin, richestSetting, r.VMs); err != nil {
		errs = append(errs, err)
	}
	switch {
	case e.s.BaselineRev == "":
		r.OldErr = "not asked for (-baseline-rev empty)"
	case e.oldErr != nil:
		r.OldErr = e.oldErr.Error()
	default:
		old := oldSetting
		old.Revision = e.s.BaselineRev
		if r.Old, err = e.runSetting(ctx, sim, e.oldBin, old, r.VMs); err != nil {
			errs = append(errs, err)
		}
	}
	if r.Probe, err = e.runProbe(ctx, sim); err != nil {
		errs = append(errs, err)
	}
	for _, err := range errs {
		r.Errors = append(r.Errors, err.Error())
	}
	if len(errs) > 0 {
		return r, fmt.Errorf("%d of the measures failed: %s", len(errs), strings.Join(r.Errors, "; "))
	}
	return r, nil
}

// scaleCostFigures are the rows of figure 6.
func scaleCostFigures(rep *report, r costRun) {
	d, x := r.Default, r.Richest
	richest := "richest"
	if x.Setting.Fallback != "" {
		richest = "richest = defaults (fallback)"
	}
	est := rep.Settings.Estate
	rep.add(row("6.series_default", "6", "series per scrape, default", float64(d.Series), "").
		base(richest, float64(x.Series)).
		note(fmt.Sprintf("GET /metrics of the three targets at %d VMs (VSPC %d plans x %d VMs; EM %d cloud sessions; VBR %d replicas x %d points) with the default collectors settings; "+
			"richest = %s; the exporter's own metrics included",
			r.VMs, est.VSPCPlans, est.ObjectsPerPlan, est.EMSessions, est.VBRReplicas, est.PointsPerReplica, strings.TrimSpace(strings.ReplaceAll(richestSetting.Collectors, "\n", " ")))))
	rep.add(row("6.series_per_vm_default", "6", "series per VM, default", d.SeriesPerVM, "").
		base(richest, x.SeriesPerVM).
		target("<= 2.5", d.SeriesPerVM <= 2.5).
		note(fmt.Sprintf("all series of the scrape / the %d VMs of the estate (%d in VSPC's plans, %d in VBR's replicas, %d in EM's failover plans; the VMs of EM's cloud failover sessions are not counted); "+
			"over the VSPC VMs alone it is %.3f; largest families, default: %s; richest: %s",
			r.VMs, r.VSPCVMs, r.VBRVMs, r.EMPlanVM, float64(d.Series)/float64(max(r.VSPCVMs, 1)), topFamilies(d.Families, 4), topFamilies(x.Families, 4))))
	rep.add(row("6.series_per_vm_probe", "6", "series per VSPC VM, VSPC target alone", float64(r.Probe.ProbeSeries)/float64(max(r.VSPCVMs, 1)), "").
		base("all targets, per VM", d.SeriesPerVM).
		note(fmt.Sprintf("/probe?target=%s with the default settings: %d series for its %d VMs", vspcTarget, r.Probe.ProbeSeries, r.VSPCVMs)))
	o := r.Old
	if r.OldErr == "" {
		rep.add(row("6.series_old", "6", "series per scrape, old ("+o.Setting.Revision+")", float64(o.Series), "").
			base("default", float64(d.Series)).
			note(fmt.Sprintf("the binary of revision %s with its defaults (every VM's last-session stateset, every stateset value) against the same simulator: %.2f per VM, %.1f MB; largest families: %s",
				o.Setting.Revision, o.SeriesPerVM, float64(o.Bytes)/1e6, topFamilies(o.Families, 4))))
	}
	rep.add(row("6.bytes_default", "6", "body per scrape, default, plain", float64(d.Bytes)/1e6, "MB").
		base(richest, float64(x.Bytes)/1e6).
		target("<= 25 MB", d.Bytes <= 25e6))
	rep.add(row("6.gzip_default", "6", "body per scrape, default, gzip", float64(d.GzipBytes)/1e6, "MB").
		base(richest+" gzip", float64(x.GzipBytes)/1e6).
		note("as the exporter sends it to Prometheus, which asks for gzip"))
	present := len(recoveryPointNames) - len(d.Missing)
	rep.add(row("6.recovery_points", "6", "recovery point names in the default body", float64(present), "").
		base("wanted", float64(len(recoveryPointNames))).
		target("all present", present == len(recoveryPointNames)).
		note(fmt.Sprintf("per VM and per plan: %s; missing: %v", strings.Join(recoveryPointNames, ", "), d.Missing)))
	// The target is against the old settings the issue measured; without
	// their binary, against the richest settings of this one (which
	// emit fewer series: the per-VM stateset only for VMs whose plan ran).
	baseName, baseRSS := "old ("+o.Setting.Revision+")", o.Prom.PeakRSS
	if r.OldErr != "" {
		baseName, baseRSS = richest+" (old not measured: "+r.OldErr+")", x.Prom.PeakRSS
	}
	rep.add(row("6.prom_rss_default", "6", "Prometheus peak RSS, default", float64(d.Prom.PeakRSS)/(1<<20), "MiB").
		base(baseName, float64(baseRSS)/(1<<20)).
		target("ratio <= 0.30", d.Prom.PeakRSS > 0 && float64(d.Prom.PeakRSS) <= 0.30*float64(baseRSS)).
		note(fmt.Sprintf("Debian's prometheus %s (VmHWM) after %d successful scrapes of /metrics every %gs (exporter serving from scrape.min_interval 1h), the median of %d fresh Prometheus runs per setting; "+
			"peaks of each run, scrapes made, head series, median scrape, RSS now of the median run: %s; %s; %s",
			promVersion(), d.Prom.Scrapes, d.Prom.IntervalS, len(d.Prom.PeakRSSRuns), promSummary("default", d.Prom), promSummary("old", o.Prom), promSummary("richest", x.Prom))))
	rep.add(row("6.prom_rss_richest", "6", "Prometheus peak RSS, default against richest", float64(d.Prom.PeakRSS)/(1<<20), "MiB").
		base(richest, float64(x.Prom.PeakRSS)/(1<<20)).
		note("the same default run against the richest settings of this binary: no target, shown because richest is lighter than the old settings"))
	if x.Setting.Fallback != "" {
		rep.add(row("6.richest_fallback", "6", "richest setting measured as the defaults", 1, "").
			note(x.Setting.Fallback))
	}
	p := r.Probe
	rep.add(row("6.probe_wall", "6", "/probe?target="+vspcTarget+" (median)", p.Probe, "ms").
		base("/metrics, VSPC only", p.Metrics).
		target("ratio <= 1.10", p.Metrics > 0 && p.Probe <= 1.10*p.Metrics).
		note(fmt.Sprintf("warm scrapes reading Veeam (no min_interval), alternated: /probe on an exporter with the three targets %v ms (%d series) against /metrics on an exporter with only %s %v ms (%d series, the exporter's own metrics included)",
			roundAll(p.ProbeMS), p.ProbeSeries, vspcTarget, roundAll(p.MetricsMS), p.MetricSeries)))
	other := p.Requests[simulator.APIEM] + p.Requests[simulator.APIVBR]
	rep.add(row("6.probe_other_requests", "6", "requests to EM and VBR during /probe", float64(other), "").
		target("0", other == 0 && p.Requests[simulator.APIVSPC] > 0).
		note(fmt.Sprintf("simulator's request log over %d probes (the warm-up included): %v", len(p.ProbeMS)+1, p.Requests)))
}

// topFamilies names the n families with the most series.
func topFamilies(f map[string]int, n int) string {
	names := make([]string, 0, len(f))
	for k := range f {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if f[a] != f[b] {
			return f[b] - f[a]
		}
		return strings.Compare(a, b)
	})
	var out []string
	for _, k := range names[:min(n, len(names))] {
		out = append(out, fmt.Sprintf("%s %d", k, f[k]))
	}
	return strings.Join(out, ", ")
}

// promSummary is one setting's Prometheus run in a note.
func promSummary(name string, p promRun) string {
	return fmt.Sprintf("%s %v MiB, %d, %.0f, %.0f ms, %.0f MiB", name, mib(p.PeakRSSRuns), p.Attempts, p.HeadSeries, p.ScrapeDurationMS, float64(p.RSS)/(1<<20))
}

// medianRun is the run with the median peak RSS (the lower middle of an
// even count), carrying every run's peak.
func medianRun(runs []promRun) promRun {
	peaks := make([]int64, len(runs))
	for i, r := range runs {
		peaks[i] = r.PeakRSS
	}
	byPeak := slices.Clone(runs)
	slices.SortFunc(byPeak, func(a, b promRun) int { return cmp.Compare(a.PeakRSS, b.PeakRSS) })
	m := byPeak[(len(byPeak)-1)/2]
	m.PeakRSSRuns = peaks
	return m
}

// mib rounds byte counts to MiB for a log line or note.
func mib(b []int64) []float64 {
	out := make([]float64, len(b))
	for i, v := range b {
		out[i] = math.Round(float64(v) / (1 << 20))
	}
	return out
}
