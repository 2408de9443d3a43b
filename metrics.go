package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// apiMetrics counts every HTTP request the clients send to Veeam.
type apiMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newAPIMetrics() *apiMetrics {
	return &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veeam_api_requests_total",
			Help: "HTTP requests sent to Veeam APIs, by target, method and status code.",
		}, []string{"target", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "veeam_api_request_duration_seconds",
			Help:    "Duration of HTTP requests to Veeam APIs.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"target"}),
	}
}

// wrap returns the transport hook for one target.
func (m *apiMetrics) wrap(target string) func(http.RoundTripper) http.RoundTripper {
	labels := prometheus.Labels{"target": target}
	counter := m.requests.MustCurryWith(labels)
	duration := m.duration.MustCurryWith(labels)
	return func(next http.RoundTripper) http.RoundTripper {
		return promhttp.InstrumentRoundTripperCounter(counter,
			promhttp.InstrumentRoundTripperDuration(duration, next))
	}
}
