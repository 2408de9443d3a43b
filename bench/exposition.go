package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/exposition"
	"github.com/veeam-failover/veeam_failover_exporter/internal/vspcfixed"
)

// expositionResult is one GET /metrics of the VSPC estate in the text
// format against protobuf, served from runs already read (MinInterval), so
// that only the exposition is timed. GenericProtoMS is the same protobuf
// through promhttp.HandlerForTransactional, the path every other format
// (OpenMetrics, name[]) takes.
type expositionResult struct {
	Objects        int     `json:"plan_objects"`
	TextMS         float64 `json:"text_ms"`
	ProtoMS        float64 `json:"protobuf_ms"`
	GenericProtoMS float64 `json:"protobuf_generic_ms"`
	TextBytes      int     `json:"text_bytes"`
	ProtoBytes     int     `json:"protobuf_bytes"`
}

// measureExposition times the text and protobuf expositions of the lists
// in f, uncompressed.
func measureExposition(f *vspcfixed.Reader) (expositionResult, error) {
	r := expositionResult{Objects: len(f.Objects)}
	exp := collector.New([]collector.Target{vspcCollectorTarget(f)}, collector.Options{PerObject: true, SessionsPerPlan: 1, MinInterval: time.Hour})
	defer exp.Close()
	exp.Scrape(context.Background()) // fills the cache
	opts := promhttp.HandlerOpts{DisableCompression: true, ErrorHandling: promhttp.ContinueOnError}
	time1 := func(format expfmt.FormatType, generic bool) (ms float64, n int, err error) {
		req, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept", string(expfmt.NewFormat(format)))
		res := testing.Benchmark(func(b *testing.B) {
			for b.Loop() {
				w := &discard{h: http.Header{}}
				s := exp.Scrape(req.Context())
				if generic {
					promhttp.HandlerForTransactional(exposition.Gatherer(s, prometheus.NewRegistry()), opts).ServeHTTP(w, req)
				} else {
					exposition.Serve(w, req, s, prometheus.NewRegistry(), opts)
				}
				n = w.n
			}
		})
		if n == 0 {
			return 0, 0, errors.New("empty exposition")
		}
		return float64(res.NsPerOp()) / 1e6, n, nil
	}
	var err error
	if r.TextMS, r.TextBytes, err = time1(expfmt.TypeTextPlain, false); err != nil {
		return r, err
	}
	if r.ProtoMS, r.ProtoBytes, err = time1(expfmt.TypeProtoDelim, false); err != nil {
		return r, err
	}
	r.GenericProtoMS, _, err = time1(expfmt.TypeProtoDelim, true)
	return r, err
}
