package reliability

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

var (
	flagRuns     = flag.Int("reliability.runs", 0, "kill/restart rounds of TestRestarts (0: 50, or 6 with -short)")
	flagParallel = flag.Int("reliability.parallel", 4, "rounds of TestRestarts run at once (each has its own simulator and exporter)")
	flagBudget   = flag.Duration("reliability.budget", 6*time.Minute, "no round of TestRestarts starts after this; fewer rounds than asked fails the test")
	flagSeed     = flag.Int64("reliability.seed", 0, "seed of the kill points of TestRestarts (0: from the clock)")
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveShared()
	os.Exit(code)
}

var apis = []simulator.API{simulator.APIVSPC, simulator.APIEM, simulator.APIVBR}

// loginPath is where each API issues its tokens or logon sessions.
var loginPath = map[simulator.API]string{
	simulator.APIVSPC: "/api/v3/token",
	simulator.APIEM:   "/api/sessionMngr/",
	simulator.APIVBR:  "/api/oauth2/token",
}

// dataPrefix is the path prefix of the reads the collectors make.
var dataPrefix = map[simulator.API]string{
	simulator.APIVSPC: "/api/v3/infrastructure",
	simulator.APIEM:   "/api/query",
	simulator.APIVBR:  "/api/v1/replica",
}

// smallEstate is a TLS simulator whose collections all fit on one page.
func smallEstate(seed int64) simulator.Options {
	return simulator.Options{
		Seed: seed,
		TLS:  true,
		VSPC: simulator.VSPCOptions{Plans: 4, ObjectsPerPlan: 2, BackupServers: 2},
		EM:   simulator.EMOptions{Plans: 3, VMsPerPlan: 2, CloudSessions: 6, CdpReplicas: 1, VMsPerCdpReplica: 2},
		VBR:  simulator.VBROptions{Replicas: 4, PointsPerReplica: 2},
	}
}

func startSim(t testing.TB, o simulator.Options) *simulator.Simulator {
	t.Helper()
	sim, err := simulator.Start(o)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func simURL(sim *simulator.Simulator, api simulator.API) string {
	switch api {
	case simulator.APIVSPC:
		return sim.VSPCURL()
	case simulator.APIEM:
		return sim.EMURL()
	}
	return sim.VBRURL()
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// targetClient is one target's client, as main builds it.
type targetClient struct {
	name, typ string
	vspc      *vspc.Client
	em        *em.Client
	vbr       *vbr.Client
}

// newClient builds the client of one target that trusts ca (nil: the
// system roots only).
func newClient(t testing.TB, typ, name, rawURL string, ca []byte, password string, logger *slog.Logger) *targetClient {
	t.Helper()
	o := veeam.ClientOptions{
		Name:             name,
		URL:              rawURL,
		Username:         simulator.DefaultUsername,
		Password:         promconfig.Secret(password),
		HTTPClientConfig: promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CA: string(ca)}},
		Timeout:          10 * time.Second,
		PageConcurrency:  4,
		Logger:           logger,
	}
	c := &targetClient{name: name, typ: typ}
	var err error
	switch typ {
	case veeam.TypeVSPC:
		c.vspc, err = vspc.New(o)
	case veeam.TypeEM:
		c.em, err = em.New(o)
	case veeam.TypeVBR:
		c.vbr, err = vbr.New(o)
	default:
		err = fmt.Errorf("unknown type %q", typ)
	}
	if err != nil {
		t.Fatalf("client %s: %v", name, err)
	}
	t.Cleanup(c.close)
	return c
}

func (c *targetClient) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch {
	case c.vspc != nil:
		_ = c.vspc.Close(ctx)
	case c.em != nil:
		_ = c.em.Close(ctx)
	case c.vbr != nil:
		_ = c.vbr.Close(ctx)
	}
}

func (c *targetClient) collectorTarget() collector.Target {
	ct := collector.Target{Name: c.name, Type: c.typ}
	switch {
	case c.vspc != nil:
		ct.Client = c.vspc
	case c.em != nil:
		ct.Client = c.em
	case c.vbr != nil:
		ct.Client = c.vbr
	}
	return ct
}

// actorsFor gives the trigger the clients, one per target.
func actorsFor(cs ...*targetClient) map[string]any {
	a := map[string]any{}
	for _, c := range cs {
		switch {
		case c.vspc != nil:
			a[c.name] = c.vspc
		case c.em != nil:
			a[c.name] = c.em
		case c.vbr != nil:
			a[c.name] = c.vbr
		}
	}
	return a
}

// scrapeResult is what one in-process scrape gave.
type scrapeResult struct {
	elapsed  time.Duration
	families map[string]*dto.MetricFamily
	err      error
}

// scrape gathers the exporter's collector for one scrape bounded by timeout,
// the way main's /metrics handler does.
func scrape(e *collector.Exporter, timeout time.Duration) scrapeResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	reg := prometheus.NewRegistry()
	start := time.Now()
	if err := reg.Register(e.Collector(ctx)); err != nil {
		return scrapeResult{err: err}
	}
	mfs, err := reg.Gather()
	res := scrapeResult{elapsed: time.Since(start), err: err, families: map[string]*dto.MetricFamily{}}
	for _, mf := range mfs {
		res.families[mf.GetName()] = mf
	}
	return res
}

// values returns the samples of a family keyed by the value of label.
func values(families map[string]*dto.MetricFamily, name, label string) map[string]float64 {
	out := map[string]float64{}
	mf := families[name]
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		var key string
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				key = lp.GetValue()
			}
		}
		switch {
		case m.GetGauge() != nil:
			out[key] = m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			out[key] += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			out[key] = m.GetUntyped().GetValue()
		}
	}
	return out
}

// parseMetrics parses the text exposition format.
func parseMetrics(t testing.TB, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	return mfs
}

// ---- Alertmanager payloads ----

// notification is a version 4 payload like Alertmanager's; edit changes the
// generic form before it is encoded.
func notification(groupKey string, edit func(map[string]any), alerts ...amtest.Alert) []byte {
	p := amtest.Notification(groupKey, alerts...)
	if edit != nil {
		edit(p)
	}
	return p.JSON()
}

// ---- HTTP ----

// httpDo sends one request and returns the status and body.
func httpDo(client *http.Client, method, u string, header http.Header, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func jsonHeader(token string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return h
}

// ---- the binary ----

// startExporter runs the exporter binary (built once per test binary) with
// args and stops it when the test ends.
func startExporter(t testing.TB, args ...string) *proctest.Process {
	t.Helper()
	return proctest.Start(t, "exporter", proctest.SharedExporter(t), args...)
}

// waitReady polls /-/ready until it answers 200.
func waitReady(t testing.TB, p *proctest.Process, client *http.Client, base string, header http.Header) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, err := httpDo(client, http.MethodGet, base+"/-/ready", header, nil)
		if err == nil && code == http.StatusOK {
			return
		}
		if done, err := p.Exited(); done {
			t.Fatalf("exporter exited before it was ready (%v):\n%s", err, proctest.Tail(p.Logs(), 8<<10))
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter not ready after 20s (last: %d %v)", code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually calls check until it returns "" or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFileOrEmpty(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b
}

// ---- a TCP gate in front of a simulator API ----

// gate forwards TCP connections from a fixed loopback port to a backend. It
// can be closed (the server is gone: listener and connections closed) and
// opened again on the same port, which a simulator cannot.
type gate struct {
	addr, backend string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// newGate makes a gate for backend (host:port); open says whether it
// listens from the start.
func newGate(t testing.TB, backend string, open bool) *gate {
	t.Helper()
	g := &gate{addr: proctest.FreeAddr(t), backend: backend, conns: map[net.Conn]bool{}}
	if open {
		if err := g.open(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(g.close)
	return g
}

func (g *gate) url() string { return "https://" + g.addr }

func (g *gate) open() error {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", g.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("gate: listen again on %s: %w", g.addr, err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				g.pipe(c)
			}()
		}
	}()
	return nil
}

func (g *gate) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return false
	}
	g.conns[c] = true
	return true
}

func (g *gate) pipe(c net.Conn) {
	b, err := net.Dial("tcp", g.backend)
	if err != nil {
		c.Close()
		return
	}
	if !g.track(c) || !g.track(b) {
		c.Close()
		b.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
	<-done
	c.Close()
	b.Close()
	<-done
	g.mu.Lock()
	delete(g.conns, c)
	delete(g.conns, b)
	g.mu.Unlock()
}

// close stops listening and cuts every connection.
func (g *gate) close() {
	g.mu.Lock()
	if g.ln != nil {
		_ = g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		_ = c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// hostPort is the host:port of a URL.
func hostPort(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// contains reports which of needles occur in haystack.
func contains(haystack string, needles []string) []string {
	var found []string
	for _, n := range needles {
		if n != "" && strings.Contains(haystack, n) {
			found = append(found, n)
		}
	}
	return found
}
