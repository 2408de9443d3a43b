package collector

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// blockCollector serves a block through the prometheus.Collector path.
type blockCollector struct{ b *block }

func (c blockCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.b.f.desc }
func (c blockCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.b.metrics(nil, newBuilder()) {
		ch <- m
	}
}

// TestBlockText compares the text a block renders with what expfmt writes
// for the same samples: escaping, invalid UTF-8, special values, HELP, with
// every state and with only the current one.
func TestBlockText(t *testing.T) {
	values := []float64{0, 1, -1, 0.25, 1.7e9 + 0.5, math.Inf(1), math.Inf(-1), math.NaN(), 1e-300}
	labels := []string{`plain`, `quote"d`, `back\slash`, "line\nfeed", "bad\xffutf8", "ünïcödé", ""}
	for i := range 6 {
		kind, all := []familyKind{kindGauge, kindStateset, kindCounts}[i%3], i >= 3
		var states []string
		names := []string{"target", "plan"}
		if kind != kindGauge {
			states = []string{"Ready", "Failed", stateUnknown}
			names = append(names, "status")
		}
		f := newFamily("veeam_test", "Help with a \\ and\na line feed.", kind, names, states, all)
		b := newBlock(f, 4)
		for i, l := range labels {
			switch kind {
			case kindGauge:
				b.add(values[i%len(values)], "t", l)
			case kindStateset:
				b.add(float64(i%len(states)), "t", l)
			default:
				b.addCounts([]int{i, 0, 1}, "t", l)
			}
		}
		var got bytes.Buffer
		tw := newTextWriter(&got)
		tw.buf = append(tw.buf, f.header...)
		b.appendText(tw)
		if err := tw.close(); err != nil {
			t.Fatal(err)
		}

		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(blockCollector{b})
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&want, mf); err != nil {
				t.Fatal(err)
			}
		}
		sorted := func(s string) []string {
			lines := strings.Split(strings.TrimSpace(s), "\n")
			slices.Sort(lines)
			return lines
		}
		// Per row: a stateset's current state alone, the non-zero counts
		// alone; with all, every state.
		var lines, zeros int
		for _, l := range strings.Split(strings.TrimSpace(got.String()), "\n") {
			if !strings.HasPrefix(l, "#") {
				lines++
				if strings.HasSuffix(l, " 0") {
					zeros++
				}
			}
		}
		wantLines := map[familyKind]int{kindGauge: len(labels), kindStateset: len(labels), kindCounts: 2*len(labels) - 1}[kind]
		if all && kind != kindGauge {
			wantLines = len(labels) * len(states)
		}
		if lines != wantLines || (!all && kind != kindGauge && zeros > 0) {
			t.Errorf("kind %d, all %v: %d samples (%d at 0), want %d", kind, all, lines, zeros, wantLines)
		}
		if g, w := sorted(got.String()), sorted(want.String()); !slices.Equal(g, w) {
			t.Errorf("kind %d, all %v:\n got %q\nwant %q", kind, all, g, w)
		}
	}
}
