package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// env is what the figures share within one run.
type env struct {
	s   settings
	bin string
	// oldBin is the binary of settings.BaselineRev, or oldErr why not.
	oldBin string
	oldErr error
	tmp    string
	buf    []byte
	logf   func(format string, args ...any)
}

// scrapeRun is one exporter process scraped once cold (first scrape:
// logins, new connections) and optionally once warm.
type scrapeRun struct {
	Concurrency int          `json:"concurrency"`
	ColdMS      float64      `json:"cold_ms"`
	WarmMS      float64      `json:"warm_ms,omitempty"`
	Bytes       int          `json:"bytes"`
	Series      int          `json:"series"`
	ColdReqs    requestCount `json:"cold_requests"`
	Timeline    []apiSpan    `json:"cold_timeline"`
	// CPU time used during the cold scrape by the exporter and by the
	// bench process (simulator and the client reading /metrics).
	ExporterCPUMS float64      `json:"cold_exporter_cpu_ms"`
	SimCPUMS      float64      `json:"cold_simulator_cpu_ms"`
	WarmReqs      requestCount `json:"warm_requests"`
	PeakRSS       int64        `json:"peak_rss_bytes"`
	RSS           int64        `json:"rss_bytes"`
	Ideal         ideal        `json:"ideal"`
	IdealMS       float64      `json:"ideal_ms"`
	IdealWarmMS   float64      `json:"ideal_warm_ms"`
	ExpPages      int          `json:"expected_pages"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// newDir makes a fresh directory for one exporter's config and files.
func (e *env) newDir(name string) (string, error) {
	return os.MkdirTemp(e.tmp, name+"-")
}

// runScrapes starts an exporter with the given concurrency against sim and
// scrapes it once cold and, with warm, once more.
func (e *env) runScrapes(ctx context.Context, sim *simulator.Simulator, est estate, concurrency int, warm bool) (scrapeRun, error) {
	r := scrapeRun{Concurrency: concurrency}
	dir, err := e.newDir(fmt.Sprintf("scrape-c%d", concurrency))
	if err != nil {
		return r, err
	}
	if err := writeSecrets(dir, sim.CACertPEM()); err != nil {
		return r, err
	}
	x, err := startExporter(e.bin, dir, scrapeConfig(simURLs(sim), concurrency, 0))
	if err != nil {
		return r, err
	}
	defer x.stop()

	lists := est.lists(sim.Estate(), time.Now())
	r.Ideal = idealScrape(lists, concurrency, e.s.Latency)
	r.IdealMS = ms(r.Ideal.Time)
	r.IdealWarmMS = r.IdealMS - authRoundTrips*ms(e.s.Latency)
	for _, l := range lists {
		r.ExpPages += l.pages()
	}

	sim.ResetRequests()
	began, xcpu, scpu := time.Now(), x.cpu(), selfCPU()
	st, err := x.scrape(ctx, e.buf)
	r.ExporterCPUMS, r.SimCPUMS = ms(x.cpu()-xcpu), ms(selfCPU()-scpu)
	if err == nil {
		err = st.ok(3)
	}
	if err != nil {
		return r, fmt.Errorf("cold scrape at concurrency %d: %w (exporter log: %s)", concurrency, err, x.logTail())
	}
	r.ColdMS, r.Bytes, r.Series = ms(st.Wall), st.Bytes, st.Series
	r.ColdReqs = countRequests(sim)
	r.Timeline = timeline(sim, began)
	for _, sp := range r.Timeline {
		e.logf("  %s: %d requests, first at %.0f ms, last at %.0f ms", sp.API, sp.Requests, sp.FirstMS, sp.LastMS)
	}
	e.logf("scrape c=%d cold: %s, %d series, %d bytes, %d reads + %d logins (ideal %s); CPU: exporter %.0f ms, simulator+client %.0f ms",
		concurrency, st.Wall.Round(time.Millisecond), st.Series, st.Bytes, r.ColdReqs.Reads, r.ColdReqs.Logins, r.Ideal.Time, r.ExporterCPUMS, r.SimCPUMS)
	if warm {
		sim.ResetRequests()
		xcpu, scpu := x.cpu(), selfCPU()
		st, err := x.scrape(ctx, e.buf)
		if err == nil {
			err = st.ok(3)
		}
		if err != nil {
			return r, fmt.Errorf("warm scrape at concurrency %d: %w", concurrency, err)
		}
		r.WarmMS = ms(st.Wall)
		r.WarmReqs = countRequests(sim)
		e.logf("scrape c=%d warm: %s; CPU: exporter %.0f ms, simulator+client %.0f ms", concurrency, st.Wall.Round(time.Millisecond), ms(x.cpu()-xcpu), ms(selfCPU()-scpu))
	}
	if r.PeakRSS, r.RSS, err = x.memory(); err != nil {
		return r, err
	}
	return r, nil
}

// cachedRun is figure 3: /metrics rendered from the collector cache
// (scrape.min_interval), so no Veeam request is made.
type cachedRun struct {
	FillMS   float64   `json:"fill_ms"`
	RenderMS []float64 `json:"render_ms"`
	Median   float64   `json:"median_ms"`
	Requests int       `json:"requests_during_renders"`
	Series   int       `json:"series"`
	PeakRSS  int64     `json:"peak_rss_bytes"`
}

func (e *env) runCached(ctx context.Context, sim *simulator.Simulator, concurrency, renders int) (cachedRun, error) {
	var r cachedRun
	dir, err := e.newDir("cached")
	if err != nil {
		return r, err
	}
	if err := writeSecrets(dir, sim.CACertPEM()); err != nil {
		return r, err
	}
	x, err := startExporter(e.bin, dir, scrapeConfig(simURLs(sim), concurrency, time.Hour))
	if err != nil {
		return r, err
	}
	defer x.stop()
	st, err := x.scrape(ctx, e.buf)
	if err == nil {
		err = st.ok(3)
	}
	if err != nil {
		return r, fmt.Errorf("filling the cache: %w", err)
	}
	r.FillMS = ms(st.Wall)
	sim.ResetRequests()
	for range renders {
		st, err := x.scrape(ctx, e.buf)
		if err == nil {
			err = st.ok(3)
		}
		if err != nil {
			return r, fmt.Errorf("cached scrape: %w", err)
		}
		r.RenderMS = append(r.RenderMS, ms(st.Wall))
		r.Series = st.Series
	}
	r.Requests = countRequests(sim).Total
	r.Median = median(r.RenderMS)
	r.PeakRSS, _, _ = x.memory()
	e.logf("cached renders: %v ms (median %.0f), %d requests to Veeam meanwhile", r.RenderMS, r.Median, r.Requests)
	return r, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// scaleRun is one estate size of figure 5.
type scaleRun struct {
	Scale   float64   `json:"scale"`
	Estate  estate    `json:"estate"`
	Run     scrapeRun `json:"run"`
	SetupMS float64   `json:"simulator_setup_ms"`
}

func (e *env) runScale(ctx context.Context, k float64) (scaleRun, error) {
	est := e.s.Estate.scaled(k)
	r := scaleRun{Scale: k, Estate: est}
	start := time.Now()
	sim, err := simulator.Start(est.simOptions(e.s.Latency))
	if err != nil {
		return r, err
	}
	defer sim.Close()
	r.SetupMS = ms(time.Since(start))
	r.Run, err = e.runScrapes(ctx, sim, est, e.s.Concurrency, false)
	return r, err
}
