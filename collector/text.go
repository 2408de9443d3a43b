package collector

import (
	"fmt"
	"io"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Write writes the scrape in format, the Prometheus text format or the
// delimited protobuf format (TypeTextPlain, TypeProtoDelim), merged by name
// with own (the exporter's own families, sorted by name, encoded by
// expfmt). A family own has too is taken from the scrape. It returns an
// error for any other format; the caller must not ask for the dots escaping
// scheme, which renames metrics.
//
// The samples are written straight from the compact blocks: a scrape of
// 50,000 plan objects is ~500,000 series, and building a sample object for
// each, checking, hashing and sorting them in a registry and encoding them
// one by one costs seconds. Series are written grouped by family, families
// sorted by name, series in the collectors' order (sorted by id).
func (s *Scrape) Write(w io.Writer, format expfmt.Format, own []*dto.MetricFamily) error {
	var writeFamily func(tw *textWriter, f *family, blocks []*block)
	switch format.FormatType() {
	case expfmt.TypeTextPlain:
		writeFamily = appendTextFamily
	case expfmt.TypeProtoDelim:
		writeFamily = appendProtoFamily
	default:
		return fmt.Errorf("cannot write format %q", format)
	}
	e := s.e
	var tw *textWriter
	if b, ok := e.texts.Get().(*[]byte); ok {
		tw = &textWriter{w: w, buf: (*b)[:0]}
	} else {
		tw = newTextWriter(w)
	}
	defer func() {
		b := tw.buf[:0]
		e.texts.Put(&b)
	}()
	enc := expfmt.NewEncoder(tw, format)
	encode := func(mf *dto.MetricFamily) {
		if err := enc.Encode(mf); err != nil && tw.err == nil {
			tw.err = err
		}
	}
	blocks := s.blocks()
	i := 0
	for _, f := range e.sorted {
		if !hasSamples(blocks, f) {
			continue
		}
		for ; i < len(own) && own[i].GetName() < f.name; i++ {
			encode(own[i])
		}
		if i < len(own) && own[i].GetName() == f.name {
			e.logger.Error("metric family collected twice; serving the scrape's", "family", f.name)
			i++
		}
		writeFamily(tw, f, blocks)
	}
	for ; i < len(own); i++ {
		encode(own[i])
	}
	return tw.close()
}

func appendTextFamily(tw *textWriter, f *family, blocks []*block) {
	tw.buf = append(tw.buf, f.header...)
	for _, b := range blocks {
		if b.f == f {
			b.appendText(tw)
		}
	}
}

func hasSamples(blocks []*block, f *family) bool {
	for _, b := range blocks {
		if b.f == f && !b.empty() {
			return true
		}
	}
	return false
}

// MetricFamilies is the scrape as metric families sorted by name, for every
// other exposition format. They are built from the blocks directly, sharing
// label pairs between samples, without a registry.
func (s *Scrape) MetricFamilies() []*dto.MetricFamily {
	blocks := s.blocks()
	var out []*dto.MetricFamily
	for _, f := range s.e.sorted {
		if !hasSamples(blocks, f) {
			continue
		}
		mf := &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: dto.MetricType_GAUGE.Enum()}
		for _, b := range blocks {
			if b.f == f {
				mf.Metric = b.appendDTO(mf.Metric, s.e.b)
			}
		}
		out = append(out, mf)
	}
	return out
}

// appendDTO appends the block's samples as dto.Metrics, allocated in
// slabs; consecutive rows share the label pairs of equal values.
func (b *block) appendDTO(dst []*dto.Metric, bu *builder) []*dto.Metric {
	f, w := b.f, b.f.width
	n := b.samples()
	if n == 0 {
		return dst
	}
	nl := len(f.labels)
	ms := make([]dto.Metric, n)
	lbls := make([]*dto.LabelPair, n*nl)
	var gauges []dto.Gauge
	var values []float64
	gauge := func(v float64) *dto.Gauge {
		switch v {
		case 0:
			return bu.zero
		case 1:
			return bu.one
		}
		if gauges == nil {
			gauges, values = make([]dto.Gauge, 0, n), make([]float64, 0, n)
		}
		values = append(values, v)
		gauges = append(gauges, dto.Gauge{Value: &values[len(values)-1]})
		return &gauges[len(gauges)-1]
	}
	if cap(dst)-len(dst) < n {
		dst = append(make([]*dto.Metric, 0, len(dst)+n), dst...)
	}
	pairs := make([]*dto.LabelPair, w)
	k := 0
	emit := func(state int, v float64) {
		m, l := &ms[k], lbls[k*nl:(k+1)*nl:(k+1)*nl]
		k++
		for i, p := range pairs {
			l[f.order[i]] = p
		}
		if state >= 0 {
			l[f.order[nl-1]] = f.statePairs[state]
		}
		m.Label, m.Gauge = l, gauge(v)
		dst = append(dst, m)
	}
	for r := range b.rows() {
		for c, v := range b.labels[r*w : (r+1)*w] {
			if pairs[c] == nil || pairs[c].GetValue() != v {
				pairs[c] = bu.pair(f.labels[c], v)
			}
		}
		for st, v := range b.rowSamples(r) {
			emit(st, v)
		}
	}
	return dst
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
