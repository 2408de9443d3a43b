// Package exposition serves the collectors' scrapes over HTTP: GET /metrics
// (every target, or only the exporter's own metrics) and GET /probe?target=
// (one target), in every format Prometheus negotiates.
//
// The text format, which Prometheus asks for, is written straight from the
// collectors' compact blocks (collector.Scrape.WriteText). Every other format
// (protobuf, OpenMetrics, name[] filters, the dots escaping scheme) is served
// by promhttp.HandlerForTransactional from the same blocks, built into metric
// families once per request without a registry.
package exposition

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
)

const (
	// timeoutOffset leaves time to render the answer before Prometheus
	// gives up.
	timeoutOffset = 500 * time.Millisecond
	// defaultTimeout applies when Prometheus sends no timeout header.
	defaultTimeout = 30 * time.Second
)

// Exporters gives the Exporter to serve a request with, held open until
// release is called (collector.Exporter.Hold), or false when there is none.
type Exporters func() (e *collector.Exporter, release func(), ok bool)

// Options configure the handlers.
type Options struct {
	// Gatherer gathers the exporter's own metrics, served on /metrics.
	Gatherer prometheus.Gatherer
	// Registerer receives promhttp_metric_handler_requests_total and
	// _in_flight, which count /metrics and /probe together (both are
	// scrapes); nil leaves the handlers uninstrumented.
	Registerer prometheus.Registerer
	// MaxRequests > 0 answers 503 to requests beyond this many at once,
	// /metrics and /probe together (node_exporter's --web.max-requests).
	MaxRequests int
	// OwnOnly makes /metrics serve only the exporter's own metrics; the
	// targets are then scraped through /probe only.
	OwnOnly bool
	// Logger receives serving errors; nil discards them.
	Logger *slog.Logger
}

// Handlers serve /metrics and /probe.
type Handlers struct {
	exporters Exporters
	o         Options
	errorLog  promhttp.Logger
	inFlight  chan struct{}
	metrics   http.Handler
	probe     http.Handler
}

// New builds the handlers.
func New(exporters Exporters, o Options) *Handlers {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	h := &Handlers{exporters: exporters, o: o, errorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelError)}
	if o.MaxRequests > 0 {
		h.inFlight = make(chan struct{}, o.MaxRequests)
	}
	h.metrics = h.limit(http.HandlerFunc(h.serveMetrics))
	h.probe = h.limit(http.HandlerFunc(h.serveProbe))
	if o.Registerer != nil {
		// The second call finds the first's collectors registered and
		// shares them (promhttp handles AlreadyRegisteredError).
		h.metrics = promhttp.InstrumentMetricHandler(o.Registerer, h.metrics)
		h.probe = promhttp.InstrumentMetricHandler(o.Registerer, h.probe)
	}
	return h
}

// Metrics serves GET /metrics: the exporter's own metrics and, unless
// Options.OwnOnly, one scrape of every target.
func (h *Handlers) Metrics() http.Handler { return h.metrics }

// Probe serves GET /probe?target=NAME: one scrape of that target alone,
// with its veeam_up and collector metrics. An unknown or missing target is
// answered 400 with the known names, and nothing is called.
func (h *Handlers) Probe() http.Handler { return h.probe }

// limit answers 503 beyond Options.MaxRequests requests in flight, as
// promhttp does.
func (h *Handlers) limit(next http.Handler) http.Handler {
	if h.inFlight == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.inFlight <- struct{}{}:
			defer func() { <-h.inFlight }()
			next.ServeHTTP(w, r)
		default:
			http.Error(w, fmt.Sprintf("Limit of concurrent requests reached (%d), try again later.", cap(h.inFlight)), http.StatusServiceUnavailable)
		}
	})
}

func (h *Handlers) opts() promhttp.HandlerOpts {
	return promhttp.HandlerOpts{ErrorLog: h.errorLog, ErrorHandling: promhttp.ContinueOnError}
}

func (h *Handlers) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if h.o.OwnOnly {
		promhttp.HandlerFor(h.o.Gatherer, h.opts()).ServeHTTP(w, r)
		return
	}
	e, release, ok := h.exporters()
	if !ok {
		http.Error(w, "the exporter is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout(r))
	defer cancel()
	Serve(w, r, e.Scrape(ctx), h.o.Gatherer, h.opts())
}

func (h *Handlers) serveProbe(w http.ResponseWriter, r *http.Request) {
	e, release, ok := h.exporters()
	if !ok {
		http.Error(w, "the exporter is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer release()
	name := r.URL.Query().Get("target")
	known := e.Targets()
	if !slices.Contains(known, name) {
		msg := fmt.Sprintf("unknown target %q", name)
		if name == "" {
			msg = "missing target parameter"
		}
		http.Error(w, fmt.Sprintf("%s; known targets: %s", msg, strings.Join(known, ", ")), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout(r))
	defer cancel()
	Serve(w, r, e.Scrape(ctx, name), nil, h.opts())
}

// ScrapeTimeout is how long a scrape may take: Prometheus' own timeout
// (X-Prometheus-Scrape-Timeout-Seconds) less a margin to render the answer,
// or 30s without the header.
func ScrapeTimeout(r *http.Request) time.Duration {
	timeout := defaultTimeout
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			timeout = time.Duration(s * float64(time.Second))
		}
	}
	if timeout > 2*timeoutOffset {
		timeout -= timeoutOffset
	}
	return timeout
}

var gzips = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// Serve answers one request with scrape s and the families own gathers (nil
// for none), as promhttp.HandlerFor(o) would. In the two formats Prometheus
// asks for, text and delimited protobuf, it writes straight from the
// scrape's blocks (collector.Scrape.Write); of o, ErrorLog, ErrorHandling,
// DisableCompression, OfferedCompressions (gzip or not), AcceptedFormats,
// EnableOpenMetrics and ProcessStartTime are honoured there. Every other
// format, name[] filters and the dots escaping scheme go through
// promhttp.HandlerForTransactional over Gatherer(s, own).
func Serve(w http.ResponseWriter, r *http.Request, s *collector.Scrape, own prometheus.Gatherer, o promhttp.HandlerOpts) {
	accepted := o.AcceptedFormats
	if len(accepted) == 0 {
		accepted = expfmt.DefaultAcceptedFormats()
		if o.EnableOpenMetrics {
			accepted = expfmt.DefaultOpenMetricsAcceptedFormats()
		}
	}
	format := expfmt.NegotiateAccept(r.Header, accepted...)
	if (format.FormatType() != expfmt.TypeTextPlain && format.FormatType() != expfmt.TypeProtoDelim) ||
		format.ToEscapingScheme() == model.DotsEscaping || (r.URL != nil && r.URL.Query().Has("name[]")) {
		promhttp.HandlerForTransactional(Gatherer(s, own), o).ServeHTTP(w, r)
		return
	}

	var mfs []*dto.MetricFamily
	if own != nil {
		var err error
		if mfs, err = own.Gather(); err != nil {
			if o.ErrorLog != nil {
				o.ErrorLog.Println("error gathering metrics:", err)
			}
			switch o.ErrorHandling {
			case promhttp.PanicOnError:
				panic(err)
			case promhttp.HTTPErrorOnError:
				http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
				return
			}
		}
	}

	hd := w.Header()
	if !o.ProcessStartTime.IsZero() {
		hd.Set("Process-Start-Time-Unix", strconv.FormatInt(o.ProcessStartTime.Unix(), 10))
	}
	hd.Add("Vary", "Accept")
	var out io.Writer = w
	if !o.DisableCompression {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) && (len(o.OfferedCompressions) == 0 || slices.Contains(o.OfferedCompressions, promhttp.Gzip)) {
			hd.Set("Content-Encoding", "gzip")
			gz := gzips.Get().(*gzip.Writer)
			gz.Reset(w)
			defer func() {
				_ = gz.Close()
				gzips.Put(gz)
			}()
			out = gz
		}
	}
	hd.Set("Content-Type", string(format))
	if err := s.Write(out, format, mfs); err != nil && o.ErrorLog != nil {
		o.ErrorLog.Println("error writing metrics:", err)
	}
}

// Gatherer is a prometheus.TransactionalGatherer over one scrape and the
// families own gathers (nil for none), merged by name; a family both have
// is taken from the scrape. The scrape's families are built from its blocks
// on each Gather, without a registry.
func Gatherer(s *collector.Scrape, own prometheus.Gatherer) prometheus.TransactionalGatherer {
	return &gatherer{s: s, own: own}
}

type gatherer struct {
	s   *collector.Scrape
	own prometheus.Gatherer
}

func (g *gatherer) Gather() ([]*dto.MetricFamily, func(), error) {
	var own []*dto.MetricFamily
	var err error
	if g.own != nil {
		own, err = g.own.Gather()
	}
	scraped := g.s.MetricFamilies()
	out := make([]*dto.MetricFamily, 0, len(own)+len(scraped))
	i := 0
	for _, mf := range scraped {
		for ; i < len(own) && own[i].GetName() < mf.GetName(); i++ {
			out = append(out, own[i])
		}
		if i < len(own) && own[i].GetName() == mf.GetName() {
			i++
		}
		out = append(out, mf)
	}
	out = append(out, own[i:]...)
	return out, func() {}, err
}

// acceptsGzip reports whether the request accepts a gzip body (q > 0).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			k, q, ok := strings.Cut(strings.TrimSpace(params), "=")
			if !ok || strings.TrimSpace(k) != "q" {
				return true
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(q), 64)
			return err == nil && f > 0
		}
	}
	return false
}
