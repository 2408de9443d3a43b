package exposition_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/exposition"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// setup starts a simulator of the three APIs and an Exporter with one target
// of each type, named after the type.
func setup(t *testing.T, o collector.Options) (*simulator.Simulator, *collector.Exporter) {
	t.Helper()
	sim, err := simulator.Start(simulator.Options{Seed: 5,
		VSPC: simulator.VSPCOptions{Plans: 4, ObjectsPerPlan: 3, BackupServers: 2},
		EM:   simulator.EMOptions{Plans: 2, VMsPerPlan: 2, CloudSessions: 5},
		VBR:  simulator.VBROptions{Replicas: 3, PointsPerReplica: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	opts := func(name, url string) veeam.ClientOptions {
		return veeam.ClientOptions{Name: name, URL: url, Username: simulator.DefaultUsername,
			Password: promconfig.Secret(simulator.DefaultPassword), Timeout: 10 * time.Second, PageConcurrency: 2}
	}
	vc, err := vspc.New(opts("vspc", sim.VSPCURL()))
	if err != nil {
		t.Fatal(err)
	}
	ec, err := em.New(opts("em", sim.EMURL()))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := vbr.New(opts("vbr", sim.VBRURL()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []interface{ Close(context.Context) error }{vc, ec, bc} {
		t.Cleanup(func() { _ = c.Close(context.Background()) })
	}
	e := collector.New([]collector.Target{
		{Name: "vspc", Type: veeam.TypeVSPC, Client: vc},
		{Name: "em", Type: veeam.TypeEM, Client: ec},
		{Name: "vbr", Type: veeam.TypeVBR, Client: bc},
	}, o)
	t.Cleanup(e.Close)
	return sim, e
}

// fixed serves always the same Exporter.
func fixed(e *collector.Exporter) exposition.Exporters {
	return func() (*collector.Exporter, func(), bool) {
		release, ok := e.Hold()
		return e, release, ok
	}
}

func get(t *testing.T, h http.Handler, url string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func decode(t *testing.T, resp *http.Response) []*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("decoding %s: %v", resp.Header.Get("Content-Type"), err)
		}
		out = append(out, mf)
	}
}

// upOf maps target to veeam_up.
func upOf(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "veeam_up" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// TestProtobufMatchesTransactional: the protobuf written from the blocks
// is, family by family and byte for byte once decoded, what promhttp's
// generic path encodes from the same scrape, own families merged in.
func TestProtobufMatchesTransactional(t *testing.T) {
	_, e := setup(t, collector.Options{PerObject: true, SessionsPerPlan: 2, MinInterval: time.Hour})
	own := prometheus.NewRegistry()
	own.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "veeam_api_requests_total", Help: "Own."}))
	ctx := context.Background()
	e.Scrape(ctx) // fills the cache: both paths see the same runs

	accept := http.Header{"Accept": {string(expfmt.NewFormat(expfmt.TypeProtoDelim))}}
	fast := get(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exposition.Serve(w, r, e.Scrape(ctx), own, promhttp.HandlerOpts{})
	}), "/metrics", accept)
	generic := get(t, promhttp.HandlerForTransactional(exposition.Gatherer(e.Scrape(ctx), own), promhttp.HandlerOpts{}), "/metrics", accept)
	got, want := decode(t, fast), decode(t, generic)
	if len(got) != len(want) || len(got) < 20 {
		t.Fatalf("%d families written from the blocks, %d through promhttp", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("family %s differs:\n got %v\nwant %v", want[i].GetName(), got[i], want[i])
		}
	}

	// OpenMetrics goes through promhttp and carries the same families.
	om := get(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exposition.Serve(w, r, e.Scrape(ctx), own, promhttp.HandlerOpts{EnableOpenMetrics: true})
	}), "/metrics", http.Header{"Accept": {"application/openmetrics-text;version=1.0.0"}})
	body, _ := io.ReadAll(om.Body)
	if expfmt.ResponseFormat(om.Header).FormatType() != expfmt.TypeOpenMetrics || !strings.HasSuffix(string(body), "# EOF\n") ||
		!strings.Contains(string(body), `veeam_up{target="vbr",type="vbr"} 1`) {
		t.Errorf("OpenMetrics answer %q:\n%.300s", om.Header.Get("Content-Type"), body)
	}
}

// TestProbe: /probe?target= scrapes that target alone; the other targets'
// APIs get no request. An unknown or missing target is a 400 naming the
// known ones, and no API is called.
func TestProbe(t *testing.T) {
	sim, e := setup(t, collector.Options{PerObject: true})
	h := exposition.New(fixed(e), exposition.Options{})

	for _, url := range []string{"/probe?target=nosuch", "/probe"} {
		resp := get(t, h.Probe(), url, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "known targets: vspc, em, vbr") {
			t.Errorf("%s: %d %q, want 400 with the known targets", url, resp.StatusCode, body)
		}
	}
	for _, api := range []simulator.API{simulator.APIVSPC, simulator.APIEM, simulator.APIVBR} {
		if n := len(sim.Requests(api)); n != 0 {
			t.Errorf("an unknown target made %d requests to %s", n, api)
		}
	}

	resp := get(t, h.Probe(), "/probe?target=em", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/probe?target=em: %d", resp.StatusCode)
	}
	mfs := decode(t, resp)
	if up := upOf(mfs); len(up) != 1 || up["em"] != 1 {
		t.Errorf("veeam_up of /probe?target=em: %v, want em alone and 1", up)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "go_") || strings.HasPrefix(mf.GetName(), "veeam_replica") || strings.HasPrefix(mf.GetName(), "veeam_failover_plan_object_") {
			t.Errorf("/probe?target=em served %s", mf.GetName())
		}
	}
	if len(sim.Requests(simulator.APIEM)) == 0 {
		t.Error("no request reached EM")
	}
	for _, api := range []simulator.API{simulator.APIVSPC, simulator.APIVBR} {
		if n := len(sim.Requests(api)); n != 0 {
			t.Errorf("/probe?target=em made %d requests to %s", n, api)
		}
	}
}

// TestProbeTimeout: the scrape-timeout header bounds a probe; a collector
// slower than it reports success 0 in time.
func TestProbeTimeout(t *testing.T) {
	sim, e := setup(t, collector.Options{})
	sim.SetFault(simulator.APIVBR, simulator.Fault{PathPrefix: "/api/v1/replicaPoints", Latency: 3 * time.Second})
	h := exposition.New(fixed(e), exposition.Options{})
	start := time.Now()
	resp := get(t, h.Probe(), "/probe?target=vbr", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"1.5"}})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a probe with a 1.5s timeout took %v", d)
	}
	if up := upOf(decode(t, resp)); up["vbr"] != 0 {
		t.Errorf("veeam_up of a probe past its deadline: %v, want 0", up)
	}
}

// TestMetricsOwnOnly: with OwnOnly, /metrics serves the exporter's own
// metrics and calls no API.
func TestMetricsOwnOnly(t *testing.T) {
	sim, e := setup(t, collector.Options{})
	reg := prometheus.NewRegistry()
	h := exposition.New(fixed(e), exposition.Options{Gatherer: reg, Registerer: reg, OwnOnly: true})
	mfs := decode(t, get(t, h.Metrics(), "/metrics", nil))
	if up := upOf(mfs); len(up) != 0 {
		t.Errorf("exporter-only /metrics served veeam_up %v", up)
	}
	names := make([]string, 0, len(mfs))
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if !slices.Contains(names, "promhttp_metric_handler_requests_in_flight") {
		t.Errorf("exporter-only /metrics lacks the handler's own metrics: %v", names)
	}
	for _, api := range []simulator.API{simulator.APIVSPC, simulator.APIEM, simulator.APIVBR} {
		if n := len(sim.Requests(api)); n != 0 {
			t.Errorf("exporter-only /metrics made %d requests to %s", n, api)
		}
	}
	if up := upOf(decode(t, get(t, exposition.New(fixed(e), exposition.Options{}).Metrics(), "/metrics", nil))); len(up) != 3 {
		t.Errorf("/metrics served veeam_up for %v, want the three targets", up)
	}
}

// TestProbeInstrumented: probes count in promhttp_metric_handler_requests_total
// by status code, with the scrapes of /metrics, on one registry.
func TestProbeInstrumented(t *testing.T) {
	_, e := setup(t, collector.Options{})
	reg := prometheus.NewRegistry()
	h := exposition.New(fixed(e), exposition.Options{Gatherer: reg, Registerer: reg, OwnOnly: true})
	for _, c := range []struct {
		handler http.Handler
		url     string
		code    int
	}{
		{h.Probe(), "/probe?target=vbr", http.StatusOK},
		{h.Probe(), "/probe?target=vspc", http.StatusOK},
		{h.Probe(), "/probe?target=nosuch", http.StatusBadRequest},
		{h.Metrics(), "/metrics", http.StatusOK},
	} {
		if resp := get(t, c.handler, c.url, nil); resp.StatusCode != c.code {
			t.Fatalf("%s: %d, want %d", c.url, resp.StatusCode, c.code)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "promhttp_metric_handler_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && m.GetCounter().GetValue() > 0 {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if want := map[string]float64{"200": 3, "400": 1}; !maps.Equal(got, want) {
		t.Errorf("promhttp_metric_handler_requests_total by code: %v, want %v (two probes and /metrics, one unknown target)", got, want)
	}
}

// TestMaxRequests: beyond MaxRequests scrapes at once the answer is 503.
func TestMaxRequests(t *testing.T) {
	sim, e := setup(t, collector.Options{})
	sim.SetFault(simulator.APIVBR, simulator.Fault{PathPrefix: "/api/v1/replicas", Latency: time.Second})
	h := exposition.New(fixed(e), exposition.Options{MaxRequests: 1})
	var wg sync.WaitGroup
	wg.Go(func() { get(t, h.Probe(), "/probe?target=vbr", nil) })
	time.Sleep(200 * time.Millisecond)
	if resp := get(t, h.Metrics(), "/metrics", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second request while one is in flight: %d, want 503", resp.StatusCode)
	}
	wg.Wait()
	if resp := get(t, h.Metrics(), "/metrics", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("request after the first ended: %d, want 200", resp.StatusCode)
	}
}
