package collector

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sync/singleflight"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// VSPCReader is what the collectors read from a Veeam Service Provider
// Console; *vspc.Client implements it. As with the other readers, the
// returned slices belong to the caller: the collectors sort them in place.
type VSPCReader interface {
	ListFailoverPlans(ctx context.Context) ([]veeam.FailoverPlan, error)
	ListFailoverPlanObjects(ctx context.Context) ([]veeam.FailoverPlanObject, error)
}

// EMReader is what the collectors read from Veeam Backup Enterprise Manager;
// *em.Client implements it.
type EMReader interface {
	ListFailoverPlans(ctx context.Context) ([]veeam.FailoverPlan, error)
	ListCloudFailoverSessions(ctx context.Context) ([]veeam.CloudFailoverSession, error)
}

// VBRReader is what the collectors read from Veeam Backup & Replication;
// *vbr.Client implements it.
type VBRReader interface {
	ListReplicas(ctx context.Context) ([]veeam.Replica, error)
	ListReplicaPoints(ctx context.Context) ([]veeam.ReplicaPoint, error)
}

// Target is one Veeam server to scrape. The reader matching Type must be set.
type Target struct {
	// Name is the config name, exported as the target label.
	Name string
	// Type is veeam.TypeVSPC, TypeEM or TypeVBR.
	Type string
	// Collectors to run; empty means every collector Type supports
	// (config.SupportedCollectors).
	Collectors []string

	VSPC VSPCReader
	EM   EMReader
	VBR  VBRReader
}

// Options tune all targets of an Exporter.
type Options struct {
	// MinInterval > 0 serves a collector's successful result from memory
	// until it is this old; HELP texts then say "(cached up to …)".
	MinInterval time.Duration
	// PerObject exports per-VM series of failover plan objects; false keeps
	// only the per-plan counts.
	PerObject bool
	// SessionsPerPlan is how many of the newest cloud failover sessions of
	// each plan get their own series; 0 exports only the counts.
	SessionsPerPlan int
	// Logger receives collector errors; nil discards them.
	Logger *slog.Logger
	// Now is the clock for durations and cache ages; nil means time.Now.
	Now func() time.Time
}

// Exporter scrapes a fixed set of targets. Build a new one when the config
// changes and Close the old one.
type Exporter struct {
	opts    Options
	logger  *slog.Logger
	now     func() time.Time
	m       *metrics
	b       *builder
	targets []*target
	sorted  []*family // every family, by name, for the text exposition
	flights singleflight.Group
	gzips   sync.Pool // *gzip.Writer
	texts   sync.Pool // *[]byte, text exposition buffers

	// ctx bounds the fetches, which outlive the scrape that started them
	// so that a slow API still fills the next scrape or the cache.
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

type target struct {
	Target
	pair     *dto.LabelPair // target="name"
	typePair *dto.LabelPair
	jobs     []*job
}

// job is one collector of one target.
type job struct {
	key    string // singleflight key
	target string
	name   string
	pair   *dto.LabelPair // collector="name"
	fetch  func(ctx context.Context) ([]*block, error)

	mu     sync.Mutex
	cached *result // newest successful result, for MinInterval
}

// result is what one fetch produced. It is shared by every scrape that
// waited for the fetch or reads it from the cache, and never modified
// after run returns, except for the samples built once, on demand, for the
// prometheus.Collector path.
type result struct {
	blocks   []*block
	err      error
	start    time.Time
	duration time.Duration

	once    sync.Once
	metrics []prometheus.Metric
}

// samples returns the result's blocks as prometheus.Metrics, built on the
// first call.
func (r *result) samples(b *builder) []prometheus.Metric {
	r.once.Do(func() {
		n := 0
		for _, bl := range r.blocks {
			n += bl.rows() * bl.f.perRow()
		}
		r.metrics = make([]prometheus.Metric, 0, n)
		for _, bl := range r.blocks {
			r.metrics = bl.metrics(r.metrics, b)
		}
	})
	return r.metrics
}

var errClosed = errors.New("exporter closed")

// New builds an Exporter. Collectors a target's type does not support, or
// whose reader is missing, fail on every scrape with an error in the log.
func New(targets []Target, o Options) *Exporter {
	e := &Exporter{opts: o, logger: o.Logger, now: o.Now, b: newBuilder(), m: newMetrics(o.MinInterval)}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.opts.SessionsPerPlan < 0 {
		e.opts.SessionsPerPlan = 0
	}
	e.sorted = slices.SortedFunc(slices.Values(e.m.all()), func(a, b *family) int { return strings.Compare(a.name, b.name) })
	e.gzips.New = func() any { return gzip.NewWriter(nil) }
	e.ctx, e.cancel = context.WithCancel(context.Background())
	seen := map[string]bool{}
	for _, t := range targets {
		if seen[t.Name] {
			e.logger.Error("duplicate target name, ignoring all but the first", "target", t.Name)
			continue
		}
		seen[t.Name] = true
		names := t.Collectors
		if len(names) == 0 {
			names = config.SupportedCollectors(t.Type)
		}
		tt := &target{Target: t, pair: e.b.pair(labelTarget, t.Name), typePair: e.b.pair(labelTargetType, t.Type)}
		for _, name := range names {
			if slices.ContainsFunc(tt.jobs, func(j *job) bool { return j.name == name }) {
				continue
			}
			j := &job{key: t.Name + "\x00" + name, target: t.Name, name: name, pair: e.b.pair(labelCollector, name)}
			j.fetch = e.fetcher(tt, name)
			tt.jobs = append(tt.jobs, j)
		}
		e.targets = append(e.targets, tt)
	}
	return e
}

// fetcher returns the function that reads collector name of t.
func (e *Exporter) fetcher(t *target, name string) func(context.Context) ([]*block, error) {
	if !slices.Contains(config.SupportedCollectors(t.Type), name) {
		err := fmt.Errorf("collector %q does not support target type %q", name, t.Type)
		e.logger.Error("invalid collector", "target", t.Name, "collector", name, "err", err)
		return func(context.Context) ([]*block, error) { return nil, err }
	}
	missing := func(api string) func(context.Context) ([]*block, error) {
		err := fmt.Errorf("target %s: no %s client", t.Name, api)
		e.logger.Error("invalid target", "target", t.Name, "collector", name, "err", err)
		return func(context.Context) ([]*block, error) { return nil, err }
	}
	switch t.Type {
	case veeam.TypeVSPC:
		if t.VSPC == nil {
			return missing("VSPC")
		}
		if name == config.CollectorFailoverPlanObjects {
			return func(ctx context.Context) ([]*block, error) { return e.planObjects(ctx, t) }
		}
		return func(ctx context.Context) ([]*block, error) {
			return e.plans(ctx, t, t.VSPC.ListFailoverPlans)
		}
	case veeam.TypeEM:
		if t.EM == nil {
			return missing("EM")
		}
		if name == config.CollectorCloudFailoverSessions {
			return func(ctx context.Context) ([]*block, error) { return e.cloudSessions(ctx, t) }
		}
		return func(ctx context.Context) ([]*block, error) { return e.plans(ctx, t, t.EM.ListFailoverPlans) }
	default: // veeam.TypeVBR, the only other type SupportedCollectors knows
		if t.VBR == nil {
			return missing("VBR")
		}
		return func(ctx context.Context) ([]*block, error) { return e.replicas(ctx, t) }
	}
}

// Close stops fetches still running in the background and waits for them.
func (e *Exporter) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
}

// Collector returns the prometheus.Collector for one scrape. Its Collect
// returns by the time ctx ends: collectors that have not finished by then
// report veeam_scrape_collector_success 0, and their fetch goes on in the
// background for the next scrape to join or, with MinInterval, to read.
func (e *Exporter) Collector(ctx context.Context) prometheus.Collector {
	return &scrape{e: e, ctx: ctx}
}

type scrape struct {
	e   *Exporter
	ctx context.Context
}

// Describe sends every descriptor the Exporter can emit.
func (s *scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range s.e.m.all() {
		ch <- f.desc
	}
}

// Collect scrapes all targets and their collectors in parallel.
func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for _, t := range s.e.targets {
		wg.Go(func() { s.e.collectTarget(s.ctx, t, ch) })
	}
	wg.Wait()
}

func (e *Exporter) collectTarget(ctx context.Context, t *target, ch chan<- prometheus.Metric) {
	ok := make([]bool, len(t.jobs))
	var wg sync.WaitGroup
	for i, j := range t.jobs {
		wg.Go(func() {
			o := e.outcome(ctx, t, j)
			ok[i] = o.ok()
			if o.r != nil {
				for _, m := range o.r.samples(e.b) {
					ch <- m
				}
			}
			ch <- e.b.gauge(e.m.success, boolValue(ok[i]), t.pair, j.pair)
			ch <- e.b.gauge(e.m.duration, o.d.Seconds(), t.pair, j.pair)
		})
	}
	wg.Wait()
	up := len(ok) > 0 && !slices.Contains(ok, false)
	ch <- e.b.gauge(e.m.up, boolValue(up), t.pair, t.typePair)
}

// outcome is what one scrape got from one job: its result, or nil when the
// scrape's deadline came first, and the duration to report.
type outcome struct {
	r *result
	d time.Duration
}

func (o outcome) ok() bool { return o.r != nil && o.r.err == nil }

func (e *Exporter) outcome(ctx context.Context, t *target, j *job) outcome {
	start := e.now()
	r := e.get(ctx, j)
	if r == nil {
		d := e.now().Sub(start)
		e.logger.Warn("collector did not finish before the scrape deadline",
			"target", t.Name, "collector", j.name, "waited", d)
		return outcome{d: d}
	}
	return outcome{r: r, d: r.duration}
}

// get returns j's result for a scrape: from the cache when younger than
// MinInterval, else from a fetch shared with concurrent scrapes. It returns
// nil when ctx ends first.
func (e *Exporter) get(ctx context.Context, j *job) *result {
	if e.opts.MinInterval > 0 {
		j.mu.Lock()
		r := j.cached
		j.mu.Unlock()
		if r != nil && e.now().Sub(r.start) < e.opts.MinInterval {
			return r
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	ch := e.flights.DoChan(j.key, func() (any, error) { return e.run(j), nil })
	select {
	case res := <-ch:
		return res.Val.(*result)
	case <-ctx.Done():
		return nil
	}
}

// run fetches j once, under the Exporter's context rather than a scrape's.
func (e *Exporter) run(j *job) (r *result) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return &result{err: errClosed, start: e.now()}
	}
	e.wg.Add(1)
	e.mu.Unlock()
	defer e.wg.Done()

	start := e.now()
	defer func() {
		if p := recover(); p != nil {
			r = &result{err: fmt.Errorf("collector %s panicked: %v", j.name, p), start: start, duration: e.now().Sub(start)}
			e.logger.Error("collector failed", "target", j.target, "collector", j.name, "err", r.err)
		}
	}()
	blocks, err := j.fetch(e.ctx)
	r = &result{blocks: blocks, err: err, start: start, duration: e.now().Sub(start)}
	if err != nil {
		r.blocks = nil
		e.logger.Error("collector failed", "target", j.target, "collector", j.name, "err", err)
		return r
	}
	// Stored before singleflight forgets the flight, so that a scrape
	// arriving in between finds the cache instead of fetching again.
	if e.opts.MinInterval > 0 {
		j.mu.Lock()
		j.cached = r
		j.mu.Unlock()
	}
	return r
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
