package collector

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ServeMetrics serves one GET /metrics: the families g gathers (the
// exporter's own metrics) and one scrape of every target, bounded by r's
// context, as promhttp.HandlerFor(prometheus.Gatherers{g, registry of
// Collector(ctx)}, o) would.
//
// In the Prometheus text format, which is what Prometheus asks for, the
// scrape's samples are written straight from the collectors' compact
// results: a scrape of 50,000 plan objects is ~500,000 series, and building
// a sample object for each, checking, hashing and sorting them in the
// registry and encoding them one by one costs seconds. Series are written
// grouped by family, families sorted by name, series in the collectors'
// order (sorted by id). Protobuf, OpenMetrics (when o enables it), name[]
// filters and the dots escaping scheme go through promhttp. Of o,
// ErrorLog, ErrorHandling, DisableCompression, OfferedCompressions (gzip
// or not), AcceptedFormats, EnableOpenMetrics and ProcessStartTime are
// honoured on the text path.
func (e *Exporter) ServeMetrics(w http.ResponseWriter, r *http.Request, g prometheus.Gatherer, o promhttp.HandlerOpts) {
	accepted := o.AcceptedFormats
	if len(accepted) == 0 {
		accepted = expfmt.DefaultAcceptedFormats()
		if o.EnableOpenMetrics {
			accepted = expfmt.DefaultOpenMetricsAcceptedFormats()
		}
	}
	format := expfmt.NegotiateAccept(r.Header, accepted...)
	if format.FormatType() != expfmt.TypeTextPlain || format.ToEscapingScheme() == model.DotsEscaping ||
		(r.URL != nil && r.URL.Query().Has("name[]")) {
		e.servePromhttp(w, r, g, o)
		return
	}

	scraped := e.scrapeAll(r.Context())
	mfs, err := g.Gather()
	if err != nil {
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

	h := w.Header()
	if !o.ProcessStartTime.IsZero() {
		h.Set("Process-Start-Time-Unix", strconv.FormatInt(o.ProcessStartTime.Unix(), 10))
	}
	h.Add("Vary", "Accept")
	var out io.Writer = w
	if !o.DisableCompression {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) && (len(o.OfferedCompressions) == 0 || slices.Contains(o.OfferedCompressions, promhttp.Gzip)) {
			h.Set("Content-Encoding", "gzip")
			gz := e.gzips.Get().(*gzip.Writer)
			gz.Reset(w)
			defer func() {
				_ = gz.Close()
				e.gzips.Put(gz)
			}()
			out = gz
		}
	}
	h.Set("Content-Type", string(format))

	var tw *textWriter
	if b, ok := e.texts.Get().(*[]byte); ok {
		tw = &textWriter{w: out, buf: (*b)[:0]}
	} else {
		tw = newTextWriter(out)
	}
	defer func() {
		b := tw.buf[:0]
		e.texts.Put(&b)
	}()
	e.writeText(tw, expfmt.NewEncoder(tw, format), mfs, scraped)
	if err := tw.close(); err != nil && o.ErrorLog != nil {
		o.ErrorLog.Println("error writing metrics:", err)
	}
}

// servePromhttp is the generic path: a registry of Collector(ctx) served
// with g by promhttp.
func (e *Exporter) servePromhttp(w http.ResponseWriter, r *http.Request, g prometheus.Gatherer, o promhttp.HandlerOpts) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(e.Collector(r.Context())); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	promhttp.HandlerFor(prometheus.Gatherers{g, reg}, o).ServeHTTP(w, r)
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

// textChunk is how much text is buffered before it is written out: large
// writes, as the body of a big estate is tens of megabytes.
const textChunk = 512 << 10

// textWriter buffers the exposition and hands it on in large writes; the
// first write error sticks and stops rendering.
type textWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func newTextWriter(w io.Writer) *textWriter {
	return &textWriter{w: w, buf: make([]byte, 0, textChunk+16<<10)}
}

// Write lets expfmt's encoder write into the same buffer.
func (t *textWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	t.flushIfFull()
	return len(p), t.err
}

func (t *textWriter) flushIfFull() {
	if len(t.buf) >= textChunk {
		t.flush()
	}
}

func (t *textWriter) flush() {
	if t.err == nil && len(t.buf) > 0 {
		_, t.err = t.w.Write(t.buf)
	}
	t.buf = t.buf[:0]
}

// close writes what is left and returns the first error.
func (t *textWriter) close() error {
	t.flush()
	return t.err
}

// scraped is what one scrape got from one target, job by job.
type scraped struct {
	t    *target
	jobs []outcome
}

// scrapeAll runs every job of every target in parallel for one scrape.
func (e *Exporter) scrapeAll(ctx context.Context) []scraped {
	out := make([]scraped, len(e.targets))
	var wg sync.WaitGroup
	for i, t := range e.targets {
		out[i] = scraped{t: t, jobs: make([]outcome, len(t.jobs))}
		for k, j := range t.jobs {
			wg.Go(func() { out[i].jobs[k] = e.outcome(ctx, t, j) })
		}
	}
	wg.Wait()
	return out
}

// statusBlocks are veeam_up and the per-collector success and duration of
// one scrape.
func (e *Exporter) statusBlocks(sc []scraped) []*block {
	up := newBlock(e.m.up, len(sc))
	success, duration := newBlock(e.m.success, 2*len(sc)), newBlock(e.m.duration, 2*len(sc))
	for _, s := range sc {
		all := len(s.jobs) > 0
		for k, o := range s.jobs {
			name := s.t.jobs[k].name
			success.add(boolValue(o.ok()), s.t.Name, name)
			duration.add(o.d.Seconds(), s.t.Name, name)
			all = all && o.ok()
		}
		up.add(boolValue(all), s.t.Name, s.t.Type)
	}
	return []*block{up, success, duration}
}

// writeText writes the registry's families (mfs, sorted by name, through
// enc) and the scrape's, merged by name. A family the registry has too is
// taken from the scrape, as collector and main never share names.
func (e *Exporter) writeText(tw *textWriter, enc expfmt.Encoder, mfs []*dto.MetricFamily, sc []scraped) {
	blocks := e.statusBlocks(sc)
	for _, s := range sc {
		for _, o := range s.jobs {
			if o.r != nil {
				blocks = append(blocks, o.r.blocks...)
			}
		}
	}
	i := 0
	for _, f := range e.sorted {
		has := false
		for _, b := range blocks {
			if b.f == f && len(b.nums) > 0 {
				has = true
				break
			}
		}
		if !has {
			continue
		}
		for ; i < len(mfs) && mfs[i].GetName() < f.name; i++ {
			if err := enc.Encode(mfs[i]); err != nil && tw.err == nil {
				tw.err = err
			}
		}
		if i < len(mfs) && mfs[i].GetName() == f.name {
			e.logger.Error("metric family collected twice; serving the scrape's", "family", f.name)
			i++
		}
		tw.buf = append(tw.buf, f.header...)
		for _, b := range blocks {
			if b.f == f {
				b.appendText(tw)
			}
		}
	}
	for ; i < len(mfs); i++ {
		if err := enc.Encode(mfs[i]); err != nil && tw.err == nil {
			tw.err = err
		}
	}
}
