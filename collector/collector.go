package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sync/singleflight"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

// Target is one Veeam server to scrape.
type Target struct {
	// Name is the config name, exported as the target label.
	Name string
	// Type is veeam.TypeVSPC, TypeEM or TypeVBR.
	Type string
	// Collectors to run; empty means every collector registered for Type
	// (config.CollectorsFor).
	Collectors []string
	// Client is the target's one client. Each collector asserts the small
	// reader interface it needs (its file declares it); a collector whose
	// reader the client does not implement fails on every scrape.
	Client any
}

// Options tune all targets of an Exporter.
type Options struct {
	// MinInterval > 0 serves a collector's successful run from memory
	// until it is this old; HELP texts then say "(cached up to …)".
	MinInterval time.Duration
	// PerObject exports per-VM series of failover plan objects (info and
	// recovery point); false keeps only the per-plan series.
	PerObject bool
	// LastSessionStatus adds, with PerObject, each VM's last failover
	// session: its status stateset and the restore point it used.
	LastSessionStatus bool
	// AllStates exports every state of a stateset, 0 for all but the
	// current, and every count per state, zeros included
	// (collectors.statesets: all); false exports only the current state and
	// the non-zero counts, which is what alerts and dashboards read.
	AllStates bool
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
	b       *builder
	fams    map[*familySpec]*family
	sorted  []*family // every family, by name, for the expositions
	targets []*target
	flights singleflight.Group
	texts   sync.Pool // *[]byte, text exposition buffers

	// ctx bounds the fetches, which outlive the scrape that started them
	// so that a slow API still fills the next scrape or the cache.
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	closed  bool           // Close began: no new holds
	stopped bool           // the holds ended and ctx is cancelled: no new fetches
	runs    sync.WaitGroup // fetches under way
	holds   sync.WaitGroup // Hold calls not yet released
}

type target struct {
	Target
	pair       *dto.LabelPair // target="name"
	typePair   *dto.LabelPair
	collectors []*collector
}

// collector is one registered collector bound to one target.
type collector struct {
	name       string
	target     string
	targetType string
	key        string // singleflight key
	pair       *dto.LabelPair
	opts       *Options
	fams       map[*familySpec]*family
	fetch      fetchFunc

	mu     sync.Mutex
	cached *run // newest successful run, for MinInterval
}

// block starts a block of family s for about rows rows.
func (c *collector) block(s *familySpec, rows int) *block { return newBlock(c.fams[s], rows) }

// run is one execution of one collector on one target and what it read.
// A run is shared by every scrape that waited for it or reads it from the
// cache, and never modified once it ended, except for the samples built
// once, on demand, for the prometheus.Collector path. A scrape whose
// deadline came first gets a run of its own with errDeadline and the time
// it waited.
type run struct {
	blocks   []*block
	err      error
	start    time.Time
	duration time.Duration

	once    sync.Once
	metrics []prometheus.Metric
}

func (r *run) ok() bool { return r.err == nil }

// samples returns the run's blocks as prometheus.Metrics, built on the
// first call.
func (r *run) samples(b *builder) []prometheus.Metric {
	r.once.Do(func() {
		n := 0
		for _, bl := range r.blocks {
			n += bl.samples()
		}
		r.metrics = make([]prometheus.Metric, 0, n)
		for _, bl := range r.blocks {
			r.metrics = bl.metrics(r.metrics, b)
		}
	})
	return r.metrics
}

var (
	errClosed   = errors.New("exporter closed")
	errDeadline = errors.New("the scrape deadline came first")
)

// New builds an Exporter. Collectors a target's type does not support, or
// whose reader its client does not implement, fail on every scrape with an
// error in the log.
func New(targets []Target, o Options) *Exporter {
	e := &Exporter{opts: o, logger: o.Logger, now: o.Now, b: newBuilder(), fams: map[*familySpec]*family{}}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.opts.SessionsPerPlan = max(e.opts.SessionsPerPlan, 0)
	suffix := helpSuffix(o.MinInterval)
	for _, s := range allFamilies() {
		f := s.build(suffix, o.AllStates)
		e.fams[s] = f
		e.sorted = append(e.sorted, f)
	}
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
			names = config.CollectorsFor(t.Type)
		}
		tt := &target{Target: t, pair: e.b.pair(labelTarget, t.Name), typePair: e.b.pair(labelTargetType, t.Type)}
		for _, name := range names {
			if slices.ContainsFunc(tt.collectors, func(c *collector) bool { return c.name == name }) {
				continue
			}
			c := &collector{name: name, target: t.Name, targetType: t.Type, key: t.Name + "\x00" + name,
				pair: e.b.pair(labelCollector, name), opts: &e.opts, fams: e.fams}
			c.fetch = e.bind(t, name)
			tt.collectors = append(tt.collectors, c)
		}
		e.targets = append(e.targets, tt)
	}
	return e
}

// bind returns the fetch of collector name for t, or one that fails with
// the reason it cannot run.
func (e *Exporter) bind(t Target, name string) fetchFunc {
	fail := func(err error) fetchFunc {
		e.logger.Error("invalid collector", "target", t.Name, "collector", name, "err", err)
		return func(context.Context, *collector) ([]*block, error) { return nil, err }
	}
	d := lookup(name)
	switch {
	case d == nil:
		return fail(fmt.Errorf("unknown collector %q", name))
	case !slices.Contains(d.targetTypes, t.Type):
		return fail(fmt.Errorf("collector %q does not support target type %q", name, t.Type))
	case t.Client == nil:
		return fail(fmt.Errorf("target %s: no %s client", t.Name, t.Type))
	}
	fetch, ok := d.bind(t.Client)
	if !ok {
		return fail(fmt.Errorf("target %s: its client (%T) cannot serve collector %q", t.Name, t.Client, name))
	}
	return fetch
}

// Targets lists the target names, in config order.
func (e *Exporter) Targets() []string {
	out := make([]string, len(e.targets))
	for i, t := range e.targets {
		out[i] = t.Name
	}
	return out
}

// Hold keeps the Exporter open until release is called: Close waits for
// every hold, so that a scrape that started on this Exporter finishes on it
// across a reload. It reports false once Close has begun.
func (e *Exporter) Hold() (release func(), ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, false
	}
	e.holds.Add(1)
	return sync.OnceFunc(e.holds.Done), true
}

// Close waits for the holds, then stops fetches still running in the
// background and waits for them.
func (e *Exporter) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.holds.Wait()
	e.mu.Lock()
	e.stopped = true
	e.cancel()
	e.mu.Unlock()
	e.runs.Wait()
}

// Scrape is what one scrape read: for each of its targets, the run of each
// collector.
type Scrape struct {
	e       *Exporter
	targets []*target
	runs    [][]*run
}

// Scrape runs the collectors of the named targets (every target when none
// is named; unknown names are skipped) in parallel. It returns by the time
// ctx ends: collectors that have not finished by then report
// veeam_scrape_collector_success 0, and their fetch goes on in the
// background for the next scrape to join or, with MinInterval, to read.
func (e *Exporter) Scrape(ctx context.Context, names ...string) *Scrape {
	s := &Scrape{e: e}
	for _, t := range e.targets {
		if len(names) == 0 || slices.Contains(names, t.Name) {
			s.targets = append(s.targets, t)
		}
	}
	s.runs = make([][]*run, len(s.targets))
	var wg sync.WaitGroup
	for i, t := range s.targets {
		s.runs[i] = make([]*run, len(t.collectors))
		for k, c := range t.collectors {
			wg.Go(func() { s.runs[i][k] = e.get(ctx, c) })
		}
	}
	wg.Wait()
	return s
}

// status is veeam_up and each collector's success and duration: the one
// place veeam_up is computed.
func (s *Scrape) status() []*block {
	up := newBlock(s.e.fams[upFamily], len(s.targets))
	success, duration := newBlock(s.e.fams[successFamily], 2*len(s.targets)), newBlock(s.e.fams[durationFamily], 2*len(s.targets))
	for i, t := range s.targets {
		all := len(t.collectors) > 0
		for k, r := range s.runs[i] {
			name := t.collectors[k].name
			success.add(boolValue(r.ok()), t.Name, name)
			duration.add(r.duration.Seconds(), t.Name, name)
			all = all && r.ok()
		}
		up.add(boolValue(all), t.Name, t.Type)
	}
	return []*block{up, success, duration}
}

// blocks is every block of the scrape, status first.
func (s *Scrape) blocks() []*block {
	out := s.status()
	for _, runs := range s.runs {
		for _, r := range runs {
			out = append(out, r.blocks...)
		}
	}
	return out
}

// get returns c's run for a scrape: from the cache when younger than
// MinInterval, else from a fetch shared with concurrent scrapes, or a run
// with errDeadline when ctx ends first.
func (e *Exporter) get(ctx context.Context, c *collector) *run {
	start := e.now()
	if e.opts.MinInterval > 0 {
		c.mu.Lock()
		r := c.cached
		c.mu.Unlock()
		if r != nil && start.Sub(r.start) < e.opts.MinInterval {
			return r
		}
	}
	if ctx.Err() == nil {
		ch := e.flights.DoChan(c.key, func() (any, error) { return e.fetch(c), nil })
		select {
		case res := <-ch:
			return res.Val.(*run)
		case <-ctx.Done():
		}
	}
	d := e.now().Sub(start)
	e.logger.Warn("collector did not finish before the scrape deadline", "target", c.target, "collector", c.name, "waited", d)
	return &run{err: errDeadline, start: start, duration: d}
}

// fetch runs c once, under the Exporter's context rather than a scrape's.
func (e *Exporter) fetch(c *collector) (r *run) {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return &run{err: errClosed, start: e.now()}
	}
	e.runs.Add(1)
	e.mu.Unlock()
	defer e.runs.Done()

	start := e.now()
	defer func() {
		if p := recover(); p != nil {
			r = &run{err: fmt.Errorf("collector %s panicked: %v", c.name, p), start: start, duration: e.now().Sub(start)}
			e.logger.Error("collector failed", "target", c.target, "collector", c.name, "err", r.err)
		}
	}()
	blocks, err := c.fetch(e.ctx, c)
	r = &run{blocks: blocks, err: err, start: start, duration: e.now().Sub(start)}
	if err != nil {
		r.blocks = nil
		e.logger.Error("collector failed", "target", c.target, "collector", c.name, "err", err)
		return r
	}
	// Stored before singleflight forgets the flight, so that a scrape
	// arriving in between finds the cache instead of fetching again.
	if e.opts.MinInterval > 0 {
		c.mu.Lock()
		c.cached = r
		c.mu.Unlock()
	}
	return r
}

// Collector returns the prometheus.Collector for one scrape of every
// target, bounded by ctx as Scrape is.
func (e *Exporter) Collector(ctx context.Context) prometheus.Collector {
	return &registryCollector{e: e, ctx: ctx}
}

type registryCollector struct {
	e   *Exporter
	ctx context.Context
}

// Describe sends every descriptor the Exporter can emit.
func (c *registryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.e.sorted {
		ch <- f.desc
	}
}

// Collect scrapes all targets and their collectors in parallel.
func (c *registryCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Scrape(c.ctx)
	for _, b := range s.status() {
		for _, m := range b.metrics(nil, c.e.b) {
			ch <- m
		}
	}
	for _, runs := range s.runs {
		for _, r := range runs {
			for _, m := range r.samples(c.e.b) {
				ch <- m
			}
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
