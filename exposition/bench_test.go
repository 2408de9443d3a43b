package exposition_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/exposition"
	"github.com/veeam-failover/veeam_failover_exporter/internal/vspcfixed"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// newEstate is a VSPC estate in memory, so that the benchmark measures the
// exposition alone.
func newEstate(plans, perPlan int) *vspcfixed.Reader {
	e := &vspcfixed.Reader{Points: map[string]veeam.RecoveryPoint{}}
	statuses := []string{"Success", "Warning", "Failed", "", "Running"}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for p := range plans {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", p)
		e.Plans = append(e.Plans, veeam.FailoverPlan{ID: id, Name: fmt.Sprintf("plan-%d", p), BackupServerID: "b0000000-0000-4000-8000-000000000001",
			TenantID: "c0000000-0000-4000-8000-000000000001", Type: "Cloud", Status: "Ready", ObjectsCount: perPlan,
			LastSession: &veeam.PlanSession{EndTime: t0, Status: "Success"}})
		for o := range perPlan {
			e.Objects = append(e.Objects, veeam.FailoverPlanObject{ID: fmt.Sprintf("10000000-0000-4000-8000-%06d%06d", p, o), PlanID: id,
				Name: fmt.Sprintf("vm-%d-%d", p, o), HostName: "esx-01.example.com", RestoreStatus: statuses[(p+o)%len(statuses)],
				RestorePointTime: t0.Add(time.Duration(p*perPlan+o) * time.Second)})
			vm := e.Objects[len(e.Objects)-1].ID
			e.Points[vm] = veeam.RecoveryPoint{VMID: vm, Time: t0.Add(time.Duration(p*perPlan+o) * time.Minute), RestorePoints: 3}
		}
	}
	return e
}

// discard counts and drops the body.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// BenchmarkExposition serves one scrape of a 50,000-VM VSPC estate (10,000
// plans of 5; 2,000 VMs with -short) from runs already read (MinInterval),
// in the text format and in protobuf, without compression.
func BenchmarkExposition(b *testing.B) {
	plans := 10000
	if testing.Short() {
		plans = 400
	}
	e := collector.New([]collector.Target{{Name: "vspc", Type: veeam.TypeVSPC, Client: newEstate(plans, 5)}},
		collector.Options{PerObject: true, MinInterval: time.Hour})
	defer e.Close()
	e.Scrape(context.Background()) // fills the cache
	for _, f := range []struct {
		name   string
		accept expfmt.Format
	}{
		{"text", expfmt.NewFormat(expfmt.TypeTextPlain)},
		{"protobuf", expfmt.NewFormat(expfmt.TypeProtoDelim)},
	} {
		b.Run(f.name, func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept", string(f.accept))
			b.ReportAllocs()
			var n int
			for b.Loop() {
				w := &discard{h: http.Header{}}
				exposition.Serve(w, req, e.Scrape(req.Context()), prometheus.NewRegistry(), promhttp.HandlerOpts{DisableCompression: true})
				n = w.n
			}
			b.ReportMetric(float64(n), "bytes")
		})
	}
	// The generic path every other format takes, for comparison: the
	// same protobuf through promhttp.HandlerForTransactional.
	b.Run("protobuf-transactional", func(b *testing.B) {
		req, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
		b.ReportAllocs()
		var n int
		for b.Loop() {
			w := &discard{h: http.Header{}}
			h := promhttp.HandlerForTransactional(exposition.Gatherer(e.Scrape(req.Context()), prometheus.NewRegistry()), promhttp.HandlerOpts{DisableCompression: true})
			h.ServeHTTP(w, req)
			n = w.n
		}
		b.ReportMetric(float64(n), "bytes")
	})
}
