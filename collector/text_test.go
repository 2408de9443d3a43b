package collector_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	expo "github.com/veeam-failover/veeam_failover_exporter/exposition"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// textExporter is an Exporter over the three APIs with a failing target,
// serving cached results so that two scrapes give the same samples; all is
// Options.AllStates.
func textExporter(t *testing.T, all bool) *collector.Exporter {
	t.Helper()
	sim := startSim(t, simulator.Options{Seed: 23, Now: fixedClock,
		VSPC: simulator.VSPCOptions{Plans: 7, ObjectsPerPlan: 3, BackupServers: 2},
		EM:   simulator.EMOptions{Plans: 3, VMsPerPlan: 2, CloudSessions: 9},
		VBR:  simulator.VBROptions{Replicas: 5, PointsPerReplica: 2},
	})
	e := newExporter(t, []collector.Target{
		target(t, sim, veeam.TypeVSPC, "vspc", simulator.DefaultPassword),
		target(t, sim, veeam.TypeEM, "em", simulator.DefaultPassword),
		target(t, sim, veeam.TypeVBR, "vbr", simulator.DefaultPassword),
		target(t, sim, veeam.TypeVBR, "vbr-bad-password", "wrong"),
	}, collector.Options{PerObject: true, LastSessionStatus: true, SessionsPerPlan: 2, MinInterval: time.Hour, Now: fixedClock, AllStates: all})
	return e
}

// own is a registry standing for main's: families before, between and
// after the collector's by name.
func own() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	for _, name := range []string{"aaa_first", "veeam_api_requests_total", "zzz_last"} {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "Help of " + name + " with a \\ and\na line feed."})
		c.Add(3)
		reg.MustRegister(c)
	}
	return reg
}

func serveMetrics(t *testing.T, e *collector.Exporter, g prometheus.Gatherer, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	maps.Copy(req.Header, header)
	rec := httptest.NewRecorder()
	expo.Serve(rec, req, e.Scrape(req.Context()), g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return rec.Result()
}

// parse reads an exposition in any format into families.
func parse(t *testing.T, resp *http.Response) []*dto.MetricFamily {
	t.Helper()
	body := io.Reader(resp.Body)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body = zr
	}
	dec := expfmt.NewDecoder(body, expfmt.ResponseFormat(resp.Header))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("decoding the %s exposition: %v", resp.Header.Get("Content-Type"), err)
		}
		out = append(out, mf)
	}
}

// families maps name to HELP and TYPE.
func families(mfs []*dto.MetricFamily) map[string]string {
	out := map[string]string{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetType().String() + " " + mf.GetHelp()
	}
	return out
}

// TestServeMetricsText checks that the text exposition Scrape.WriteText writes
// from the compact results holds exactly what the registry path gives.
func TestServeMetricsText(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("all_states=%v", all), func(t *testing.T) { testServeMetricsText(t, all) })
	}
}

func testServeMetricsText(t *testing.T, all bool) {
	e := textExporter(t, all)
	g := own()
	want := gather(t, e, context.Background())
	extra, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, extra...)

	for _, accept := range []string{"", "text/plain;version=0.0.4", "text/plain;version=1.0.0;escaping=allow-utf-8", "*/*"} {
		resp := serveMetrics(t, e, g, http.Header{"Accept": {accept}})
		if ct := resp.Header.Get("Content-Type"); expfmt.ResponseFormat(resp.Header).FormatType() != expfmt.TypeTextPlain {
			t.Fatalf("Accept %q: Content-Type %q", accept, ct)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		got := parse(t, resp)
		var names []string
		for line := range strings.Lines(string(body)) {
			if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
				names = append(names, strings.Fields(rest)[0])
			}
		}
		if len(names) != len(got) || !slices.IsSorted(names) {
			t.Errorf("Accept %q: families not once each and sorted by name: %v", accept, names)
		}
		if s, w := series(got), series(want); !maps.Equal(s, w) {
			t.Errorf("Accept %q: text exposition differs from the registry's:\n got %d series\nwant %d series", accept, len(s), len(w))
			for k, v := range w {
				if gv, ok := s[k]; !ok || gv != v {
					t.Errorf("  %s = %v (present %v), want %v", k, gv, ok, v)
				}
			}
		}
		if f, w := families(got), families(want); !maps.Equal(f, w) {
			t.Errorf("Accept %q: families differ:\n got %v\nwant %v", accept, f, w)
		}
	}
}

// TestServeMetricsFormats checks gzip and the formats that go through
// promhttp.
func TestServeMetricsFormats(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("all_states=%v", all), func(t *testing.T) { testServeMetricsFormats(t, all) })
	}
}

func testServeMetricsFormats(t *testing.T, all bool) {
	e := textExporter(t, all)
	g := own()
	plain := series(parse(t, serveMetrics(t, e, g, nil)))

	resp := serveMetrics(t, e, g, http.Header{"Accept-Encoding": {"gzip, deflate"}})
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", resp.Header)
	}
	if got := series(parse(t, resp)); !maps.Equal(got, plain) {
		t.Errorf("gzip exposition differs")
	}
	resp = serveMetrics(t, e, g, http.Header{"Accept-Encoding": {"gzip;q=0"}})
	if resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 answered with %q", resp.Header.Get("Content-Encoding"))
	}

	resp = serveMetrics(t, e, g, http.Header{"Accept": {string(expfmt.NewFormat(expfmt.TypeProtoDelim))}})
	if expfmt.ResponseFormat(resp.Header).FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("protobuf asked, %q answered", resp.Header.Get("Content-Type"))
	}
	if got := series(parse(t, resp)); !maps.Equal(got, plain) {
		t.Errorf("protobuf exposition differs from the text one")
	}

	// name[] filters go through promhttp too.
	req := httptest.NewRequest(http.MethodGet, "/metrics?name[]=veeam_up", nil)
	rec := httptest.NewRecorder()
	expo.Serve(rec, req, e.Scrape(req.Context()), g, promhttp.HandlerOpts{})
	if f := families(parse(t, rec.Result())); len(f) != 1 {
		t.Errorf("name[]=veeam_up gave families %v", f)
	}
}

// TestServeMetricsPromtool runs promtool check metrics on the text path.
func TestServeMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found; CI needs it")
		}
		t.Skip("promtool not found")
	}
	resp := serveMetrics(t, textExporter(t, false), prometheus.NewRegistry(), nil)
	body, _ := io.ReadAll(resp.Body)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if res, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(res)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, res)
	}
}
