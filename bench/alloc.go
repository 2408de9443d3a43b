package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	promconfig "github.com/prometheus/common/config"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/exposition"
	"github.com/veeam-failover/veeam_failover_exporter/internal/vspcfixed"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// simServerEnv, when set in the environment, makes the bench binary (or
// its test binary) run only a simulator: the value is the JSON of
// simServerRequest, the URLs and CA go to stdout as one JSON line, and the
// simulator stops when stdin closes. The allocation figure runs the
// exporter's code in the bench process, so the simulator must not share
// its heap.
const simServerEnv = "VFE_BENCH_SIMSERVER"

// simProfileEnv names a file for a CPU profile of the simulator child.
const simProfileEnv = "VFE_BENCH_SIMPROFILE"

type simServerRequest struct {
	Estate  estate        `json:"estate"`
	Latency time.Duration `json:"latency"`
}

type simServerAnswer struct {
	VSPC string `json:"vspc"`
	EM   string `json:"em"`
	VBR  string `json:"vbr"`
	CA   []byte `json:"ca"`
}

// simServerMain is the child's main.
func simServerMain(spec string) int {
	var req simServerRequest
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		fmt.Fprintln(os.Stderr, "simserver:", err)
		return 2
	}
	sim, err := simulator.Start(req.Estate.simOptions(req.Latency))
	if err != nil {
		fmt.Fprintln(os.Stderr, "simserver:", err)
		return 1
	}
	defer sim.Close()
	if path := os.Getenv(simProfileEnv); path != "" {
		// Where the simulator's own CPU goes, for tuning the bench.
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(simServerAnswer{sim.VSPCURL(), sim.EMURL(), sim.VBRURL(), sim.CACertPEM()}); err != nil {
		return 1
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// childSim is a simulator in a child process.
type childSim struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	simServerAnswer
}

func startChildSim(est estate, latency time.Duration) (*childSim, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	spec, _ := json.Marshal(simServerRequest{Estate: est, Latency: latency})
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), simServerEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &childSim{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &c.simServerAnswer)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("simulator child: %w", err)
	}
	return c, nil
}

func (c *childSim) close() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// vspcPath is the exporter's code for one VSPC target, wired as main wires
// it: the client, a collector.Exporter with both VSPC collectors and, per
// scrape, a registry served by promhttp like GET /metrics.
type vspcPath struct {
	client *vspc.Client
	exp    *collector.Exporter
}

func newVSPCPath(url string, ca []byte, concurrency int) (*vspcPath, error) {
	c, err := vspc.New(veeam.ClientOptions{
		Name:             vspcTarget,
		URL:              url,
		Username:         simulator.DefaultUsername,
		Password:         simulator.DefaultPassword,
		HTTPClientConfig: promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CA: string(ca)}},
		Timeout:          2 * time.Minute,
		PageConcurrency:  concurrency,
	})
	if err != nil {
		return nil, err
	}
	exp := collector.New([]collector.Target{vspcCollectorTarget(c)}, collector.Options{PerObject: true, SessionsPerPlan: 1})
	return &vspcPath{client: c, exp: exp}, nil
}

// vspcCollectorTarget is the VSPC target with both of its collectors.
func vspcCollectorTarget(r any) collector.Target {
	return collector.Target{Name: vspcTarget, Type: veeam.TypeVSPC, Client: r,
		Collectors: []string{collector.FailoverPlans, collector.FailoverPlanObjects}}
}

func (p *vspcPath) close() {
	p.exp.Close()
	_ = p.client.Close(context.Background())
}

// discard is a ResponseWriter that counts and drops the body.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

var metricsRequest = func() *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
	r.Header.Set("Accept", "text/plain;version=0.0.4")
	return r
}()

// serve renders /metrics for exp once, as main's handler does, and
// returns the body size.
func serve(exp *collector.Exporter) (int, error) {
	w := &discard{h: http.Header{}}
	exposition.Serve(w, metricsRequest, exp.Scrape(metricsRequest.Context()), prometheus.NewRegistry(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	if w.n == 0 {
		return 0, errors.New("empty exposition")
	}
	return w.n, nil
}

// allocResult is figure 2b.
type allocResult struct {
	Objects int `json:"plan_objects"`
	// Whole is client read of both VSPC lists, collector and exposition.
	Whole allocStat `json:"whole_path"`
	// Client is the two client list reads alone.
	Client allocStat `json:"client_only"`
	// Collector is collector, Gather and exposition over lists already
	// read (the copies handed to the collector are not counted).
	Collector allocStat `json:"collector_and_exposition"`
	// Exposition is GET /metrics from runs already read, text against
	// protobuf.
	Exposition expositionResult `json:"exposition"`
}

type allocStat struct {
	N             int     `json:"n"`
	BytesPerOp    int64   `json:"bytes_per_op"`
	AllocsPerOp   int64   `json:"allocs_per_op"`
	BytesPerObj   float64 `json:"bytes_per_object"`
	AllocsPerObj  float64 `json:"allocs_per_object"`
	MSPerOp       float64 `json:"ms_per_op"`
	ExpositionLen int     `json:"exposition_bytes,omitempty"`
}

func statOf(r testing.BenchmarkResult, objects int) allocStat {
	return allocStat{
		N:            r.N,
		BytesPerOp:   r.AllocedBytesPerOp(),
		AllocsPerOp:  r.AllocsPerOp(),
		BytesPerObj:  float64(r.AllocedBytesPerOp()) / float64(objects),
		AllocsPerObj: float64(r.AllocsPerOp()) / float64(objects),
		MSPerOp:      float64(r.NsPerOp()) / 1e6,
	}
}

// loop runs op b.N times and also reports the bytes allocated per plan
// object (objects > 0) over the loop alone.
func loop(b *testing.B, objects int, op func() error) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if objects > 0 {
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(objects), "B/object")
	}
}

// benchWhole measures one VSPC scrape: client, collector and exposition.
func benchWhole(b *testing.B, p *vspcPath, objects int) {
	if _, err := serve(p.exp); err != nil { // logs in, warms the connections
		b.Fatal(err)
	}
	loop(b, objects, func() error { _, err := serve(p.exp); return err })
}

// benchClient measures the two list reads of the VSPC client.
func benchClient(b *testing.B, c *vspc.Client, objects int) {
	ctx := context.Background()
	if _, err := c.ListFailoverPlans(ctx); err != nil { // logs in
		b.Fatal(err)
	}
	loop(b, objects, func() error {
		if _, err := c.ListFailoverPlans(ctx); err != nil {
			return err
		}
		_, err := c.ListFailoverPlanObjects(ctx)
		return err
	})
}

// benchCollector measures collector, Gather and exposition over fixed
// lists; the copies of the lists are made with the timer stopped.
func benchCollector(b *testing.B, f *vspcfixed.Reader) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		exp := collector.New([]collector.Target{vspcCollectorTarget(f.Clone())}, collector.Options{PerObject: true, SessionsPerPlan: 1})
		b.StartTimer()
		if _, err := serve(exp); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		exp.Close()
		b.StartTimer()
	}
}

// runAlloc is figure 2b against a simulator in a child process.
func (e *env) runAlloc() (allocResult, error) {
	est := e.s.Estate
	r := allocResult{Objects: est.planObjects()}
	sim, err := startChildSim(est, e.s.Latency)
	if err != nil {
		return r, err
	}
	defer sim.close()
	p, err := newVSPCPath(sim.VSPC, sim.CA, e.s.Concurrency)
	if err != nil {
		return r, err
	}
	defer p.close()

	var failed error
	bench := func(f func(b *testing.B)) testing.BenchmarkResult {
		return testing.Benchmark(func(b *testing.B) {
			defer func() {
				if b.Failed() && failed == nil {
					failed = errors.New("allocation benchmark failed (see output)")
				}
			}()
			f(b)
		})
	}
	r.Whole = statOf(bench(func(b *testing.B) { benchWhole(b, p, 0) }), r.Objects)
	r.Client = statOf(bench(func(b *testing.B) { benchClient(b, p.client, 0) }), r.Objects)

	ctx := context.Background()
	f, err := vspcfixed.Read(ctx, p.client)
	if err != nil {
		return r, err
	}
	r.Collector = statOf(bench(func(b *testing.B) { benchCollector(b, f) }), r.Objects)
	if r.Exposition, err = measureExposition(f); err != nil {
		return r, fmt.Errorf("exposition: %w", err)
	}
	e.logf("exposition of %d objects: text %.1f ms, protobuf %.1f ms (generic path %.1f ms)",
		r.Exposition.Objects, r.Exposition.TextMS, r.Exposition.ProtoMS, r.Exposition.GenericProtoMS)
	if n, err := serve(p.exp); err == nil {
		r.Whole.ExpositionLen = n
	}
	e.logf("allocations per plan object: whole %.0f B (%.1f allocs), client %.0f B, collector+exposition %.0f B",
		r.Whole.BytesPerObj, r.Whole.AllocsPerObj, r.Client.BytesPerObj, r.Collector.BytesPerObj)
	return r, failed
}
