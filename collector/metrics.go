package collector

import (
	"fmt"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

const (
	stateUnknown    = "Unknown"
	stateNone       = "None"
	labelTarget     = "target"
	labelPlanID     = "plan_id"
	labelObjectID   = "object_id"
	labelSessionID  = "session_id"
	labelReplicaID  = "replica_id"
	labelStatus     = "status"
	labelState      = "state"
	labelResult     = "result"
	labelCollector  = "collector"
	labelTargetType = "type"
)

// familyKind says how a family's rows become samples.
type familyKind int

const (
	// kindGauge: one sample per row, the row's value.
	kindGauge familyKind = iota
	// kindStateset: the row's current state at 1; with every state (all),
	// also the others at 0.
	kindStateset
	// kindCounts: the row's count per state, the non-zero ones only unless
	// every state is exported (all).
	kindCounts
)

// family is one metric name: its Desc and, for each variable label, the
// position it takes in the name-sorted label slice the registry expects.
// States, for a stateset or a per-state count, holds the enum values and a
// pre-built label pair for each; the state label is then the last label name
// and is not passed to the methods below.
type family struct {
	name       string
	help       string
	kind       familyKind
	desc       *prometheus.Desc
	labels     []string // in Desc order
	width      int      // labels given per row: the state label is not
	order      []int
	states     []string
	statePairs []*dto.LabelPair
	stateIndex map[string]int
	unknown    int // index of Unknown in states, -1 when absent
	// all exports every state of a stateset or counts row, zeros included
	// (collectors.statesets: all); else only the current state and the
	// non-zero counts.
	all bool

	// For the text exposition: the HELP and TYPE lines, and the labels in
	// name order, each with what precedes its value.
	header []byte
	text   []textLabel
	// For the protobuf exposition, by label in name order: the encoded
	// name part of a label pair (name field and the value's tag); and for
	// each state, its whole encoded label field.
	protoNames  [][]byte
	stateFields [][]byte
}

// textLabel is one label of a sample line: prefix is `name{label="` for the
// first label and `",label="` for the others; src is the label's index in a
// row, or -1 for the state label.
type textLabel struct {
	prefix string
	src    int
}

func newFamily(name, help string, kind familyKind, labels []string, states []string, all bool) *family {
	f := &family{
		name:    name,
		help:    help,
		kind:    kind,
		desc:    prometheus.NewDesc(name, help, labels, nil),
		labels:  labels,
		width:   len(labels),
		order:   make([]int, len(labels)),
		states:  states,
		unknown: -1,
		all:     all,
	}
	sorted := slices.Clone(labels)
	slices.Sort(sorted)
	for i, l := range labels {
		f.order[i], _ = slices.BinarySearch(sorted, l)
	}
	if states != nil {
		f.width--
		stateLabel := &labels[len(labels)-1]
		f.stateIndex = make(map[string]int, len(states))
		for i, s := range states {
			f.statePairs = append(f.statePairs, &dto.LabelPair{Name: stateLabel, Value: &states[i]})
			f.stateIndex[s] = i
			if s == stateUnknown {
				f.unknown = i
			}
		}
	}
	f.header = fmt.Appendf(nil, "# HELP %s %s\n# TYPE %s gauge\n", name, helpEscaper.Replace(help), name)
	f.text = make([]textLabel, len(labels))
	for i := range labels {
		src := i
		if states != nil && i == len(labels)-1 {
			src = -1
		}
		f.text[f.order[i]] = textLabel{src: src}
	}
	for j := range f.text {
		sep := `",`
		if j == 0 {
			sep = name + "{"
		}
		f.text[j].prefix = sep + sorted[j] + `="`
	}
	f.initProto(sorted)
	return f
}

// helpEscaper escapes HELP texts as the text format wants.
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// numsPerRow is how many numbers a row keeps: a count per state, else one.
func (f *family) numsPerRow() int {
	if f.kind == kindCounts {
		return len(f.states)
	}
	return 1
}

// index maps an API value to its position in states: exact match first,
// then case-insensitively, else Unknown. An empty value means None where the
// enum has it.
func (f *family) index(v string) int {
	if v == "" {
		if i, ok := f.stateIndex[stateNone]; ok {
			return i
		}
		return f.unknown
	}
	if i, ok := f.stateIndex[v]; ok {
		return i
	}
	for i, s := range f.states {
		if strings.EqualFold(s, v) {
			return i
		}
	}
	return f.unknown
}

// block is the samples of one family that one fetch produced, kept compact:
// rows of label values (the family's labels in Desc order, without the
// state label) and their numbers: a gauge's value, a stateset's current
// state index, or a count per state. Blocks are built once per fetch and
// never modified afterwards; the text exposition renders them directly and
// the prometheus.Collector path turns them into samples.
type block struct {
	f      *family
	labels []string
	nums   []float64
	// escape says whether a label value has a character the text format
	// escapes (backslash, double quote, line feed); most have none.
	escape bool
}

func newBlock(f *family, rows int) *block {
	n := rows
	if f.kind == kindCounts {
		n *= len(f.states)
	}
	return &block{f: f, labels: make([]string, 0, rows*f.width), nums: make([]float64, 0, n)}
}

// add appends a row with value v (a gauge's value, a stateset's state
// index); labels are the family's labels in Desc order, state excluded.
func (b *block) add(v float64, labels ...string) {
	b.addLabels(labels)
	b.nums = append(b.nums, v)
}

// addCounts appends a row of a counts family, one count per state.
func (b *block) addCounts(counts []int, labels ...string) {
	b.addLabels(labels)
	for _, c := range counts {
		b.nums = append(b.nums, float64(c))
	}
}

func (b *block) addLabels(labels []string) {
	for _, l := range labels {
		l = validUTF8(l)
		b.escape = b.escape || needsEscape(l)
		b.labels = append(b.labels, l)
	}
}

func needsEscape(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\\' || c == '"' || c == '\n' {
			return true
		}
	}
	return false
}

func (b *block) rows() int {
	if b.f.width == 0 {
		return len(b.nums) / b.f.numsPerRow()
	}
	return len(b.labels) / b.f.width
}

// rowSamples yields the samples of row r: the state's index (-1 for a
// gauge) and the value. It is the one place that decides which states of a
// stateset or counts row are exported: every one with family.all, else the
// current state of a stateset and the non-zero counts.
func (b *block) rowSamples(r int) iter.Seq2[int, float64] {
	return func(yield func(int, float64) bool) {
		f := b.f
		switch f.kind {
		case kindGauge:
			yield(-1, b.nums[r])
		case kindStateset:
			cur := int(b.nums[r])
			if !f.all {
				if cur >= 0 {
					yield(cur, 1)
				}
				return
			}
			for s := range f.states {
				if !yield(s, boolValue(s == cur)) {
					return
				}
			}
		case kindCounts:
			n := len(f.states)
			for s, v := range b.nums[r*n : (r+1)*n] {
				if (f.all || v != 0) && !yield(s, v) {
					return
				}
			}
		}
	}
}

// samples is the number of samples the block yields.
func (b *block) samples() int {
	n := 0
	for r := range b.rows() {
		for range b.rowSamples(r) {
			n++
		}
	}
	return n
}

// empty says whether the block yields no sample.
func (b *block) empty() bool {
	for r := range b.rows() {
		for range b.rowSamples(r) {
			return false
		}
	}
	return true
}

// metrics appends the block's samples for the prometheus.Collector path.
// Label pairs are shared between consecutive rows with the same value (the
// target, a plan's id), as the registry allows.
func (b *block) metrics(dst []prometheus.Metric, bu *builder) []prometheus.Metric {
	f, w := b.f, b.f.width
	pairs := make([]*dto.LabelPair, w)
	for r := range b.rows() {
		row := b.labels[r*w : (r+1)*w]
		for c, v := range row {
			if pairs[c] == nil || pairs[c].GetValue() != v {
				pairs[c] = bu.pair(f.labels[c], v)
			}
		}
		for s, v := range b.rowSamples(r) {
			dst = append(dst, bu.sample(f, s, v, pairs))
		}
	}
	return dst
}

// appendText renders the block's samples in the text format.
func (b *block) appendText(tw *textWriter) {
	f, w := b.f, b.f.width
	for r := range b.rows() {
		row := b.labels[r*w : (r+1)*w]
		for s, v := range b.rowSamples(r) {
			tw.buf = f.appendSample(tw.buf, row, s, v, b.escape)
		}
		tw.flushIfFull()
		if tw.err != nil {
			return
		}
	}
}

// appendSample renders one sample line; state is the state label's index,
// or -1 for families without one. Without escape the values are copied as
// they are (no state value needs escaping).
func (f *family) appendSample(buf []byte, row []string, state int, v float64, escape bool) []byte {
	for _, l := range f.text {
		buf = append(buf, l.prefix...)
		switch {
		case l.src < 0:
			buf = append(buf, f.states[state]...)
		case escape:
			buf = appendLabelValue(buf, row[l.src])
		default:
			buf = append(buf, row[l.src]...)
		}
	}
	buf = append(buf, `"} `...)
	buf = appendFloat(buf, v)
	return append(buf, '\n')
}

// appendLabelValue escapes backslash, double quote and line feed, as the
// text format wants.
func appendLabelValue(buf []byte, v string) []byte {
	i := 0
	for i < len(v) && v[i] != '\\' && v[i] != '"' && v[i] != '\n' {
		i++
	}
	buf = append(buf, v[:i]...)
	for ; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			buf = append(buf, `\\`...)
		case '"':
			buf = append(buf, `\"`...)
		case '\n':
			buf = append(buf, `\n`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// appendFloat writes a value as expfmt does.
func appendFloat(buf []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(buf, '1')
	case v == 0:
		return append(buf, '0')
	case v == -1:
		return append(buf, "-1"...)
	case math.IsNaN(v):
		return append(buf, "NaN"...)
	case math.IsInf(v, +1):
		return append(buf, "+Inf"...)
	case math.IsInf(v, -1):
		return append(buf, "-Inf"...)
	}
	return strconv.AppendFloat(buf, v, 'g', -1, 64)
}

// validUTF8 replaces invalid UTF-8, which no exposition format carries.
func validUTF8(s string) string {
	if !utf8.ValidString(s) {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// sample is a gauge sample. Unlike prometheus.MustNewConstMetric it takes
// label pairs that are built once and shared by every sample of the same
// plan, object or session, which keeps a scrape of 50,000 plan objects cheap.
// Label pairs and gauges are never modified after construction, the same
// contract const metrics have.
type sample struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	gauge  *dto.Gauge
}

func (s *sample) Desc() *prometheus.Desc { return s.desc }

func (s *sample) Write(m *dto.Metric) error {
	m.Label = s.labels
	m.Gauge = s.gauge
	return nil
}

// valueSample is a sample with its own value, in one allocation.
type valueSample struct {
	sample
	g dto.Gauge
	v float64
}

// builder turns label values into shared pairs and samples. One per
// Exporter; nothing in it changes after newBuilder.
type builder struct {
	zero, one *dto.Gauge
	names     map[string]*string
}

func newBuilder() *builder {
	zero, one := 0.0, 1.0
	b := &builder{zero: &dto.Gauge{Value: &zero}, one: &dto.Gauge{Value: &one}, names: map[string]*string{}}
	for _, n := range []string{
		labelTarget, labelTargetType, labelCollector, labelPlanID, labelObjectID, labelSessionID, labelReplicaID,
		labelStatus, labelState, labelResult, "plan", "backup_server_id", "type", "tenant_id", "object", "host", "replica",
	} {
		b.names[n] = &n
	}
	return b
}

// pair builds a label pair; name must be one of the names newBuilder knows.
func (b *builder) pair(name, value string) *dto.LabelPair {
	value = validUTF8(value)
	n := b.names[name]
	if n == nil {
		n = &name
	}
	return &dto.LabelPair{Name: n, Value: &value}
}

// lower lower-cases an id; it does not allocate when the id already is.
func lower(id string) string { return strings.ToLower(id) }

// labels places pairs (in the family's label order) into a sorted slice.
func (f *family) labelPairs(dst []*dto.LabelPair, pairs []*dto.LabelPair) {
	for i, p := range pairs {
		dst[f.order[i]] = p
	}
}

// sample returns one sample of f with value v: pairs are the row's label
// pairs in the family's label order, state the state label's index or -1.
func (b *builder) sample(f *family, state int, v float64, pairs []*dto.LabelPair) prometheus.Metric {
	n := len(pairs)
	if state >= 0 {
		n++
	}
	lbls := make([]*dto.LabelPair, n)
	f.labelPairs(lbls, pairs)
	if state >= 0 {
		lbls[f.order[n-1]] = f.statePairs[state]
	}
	switch v {
	case 0:
		return &sample{desc: f.desc, labels: lbls, gauge: b.zero}
	case 1:
		return &sample{desc: f.desc, labels: lbls, gauge: b.one}
	}
	s := &valueSample{sample: sample{desc: f.desc, labels: lbls}, v: v}
	s.g.Value = &s.v
	s.gauge = &s.g
	return s
}

// unixSeconds is t as a Prometheus timestamp value.
func unixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

// familySpec declares a metric family. Each Exporter builds its family
// from it, as HELP texts name Options.MinInterval.
type familySpec struct {
	name, help string
	kind       familyKind
	labels     []string
	states     []string
}

// gaugeFamily declares a family with one sample per row.
func gaugeFamily(name, help string, labels ...string) *familySpec {
	return &familySpec{name: name, help: help, kind: kindGauge, labels: labels}
}

// statesetFamily declares a stateset: the current state at 1 and, with
// every state exported, the others at 0; the state label is the last of
// labels.
func statesetFamily(name, help string, states []string, labels ...string) *familySpec {
	return &familySpec{name: name, help: help, kind: kindStateset, labels: labels, states: states}
}

// countsFamily declares one count per state, the non-zero ones unless every
// state is exported; the state label is the last of labels.
func countsFamily(name, help string, states []string, labels ...string) *familySpec {
	return &familySpec{name: name, help: help, kind: kindCounts, labels: labels, states: states}
}

// build makes the family: all exports every state of a stateset or counts
// family (collectors.statesets: all), and its HELP text says which states
// it has and which are exported, then suffix.
func (s *familySpec) build(suffix string, all bool) *family {
	help := s.help
	if s.states != nil {
		label, values := s.labels[len(s.labels)-1], strings.Join(s.states, ", ")
		switch {
		case s.kind == kindStateset && all:
			help += " One series per " + label + " (" + values + "), 1 for the current, 0 for the others (collectors.statesets: all)."
		case s.kind == kindStateset:
			help += " Only the current " + label + "'s series, at 1 (collectors.statesets: current; all adds the others at 0); " + label + ": " + values + "."
		case all:
			help += " One series per " + label + " (" + values + "), zeros included (collectors.statesets: all)."
		default:
			help += " Only the non-zero counts (collectors.statesets: current; all adds the zeros); " + label + ": " + values + "."
		}
	}
	return newFamily(s.name, help+suffix, s.kind, s.labels, s.states, all)
}

// helpSuffix is what HELP texts say of Options.MinInterval.
func helpSuffix(minInterval time.Duration) string {
	if minInterval <= 0 {
		return ""
	}
	return " (cached up to " + model.Duration(minInterval).String() + ")"
}

// The status families: veeam_up and how each collector of a target fared,
// for every target whatever its collectors.
var (
	upFamily = gaugeFamily("veeam_up",
		"1 when the last scrape of this Veeam target authenticated and read all its collectors, else 0.",
		labelTarget, labelTargetType)
	successFamily = gaugeFamily("veeam_scrape_collector_success",
		"1 when the collector read its Veeam API before the scrape deadline, else 0.",
		labelTarget, labelCollector)
	durationFamily = gaugeFamily("veeam_scrape_collector_duration_seconds",
		"How long the collector's Veeam API reads took, or waited until the scrape deadline.",
		labelTarget, labelCollector)
	statusFamilies = []*familySpec{upFamily, successFamily, durationFamily}
)
