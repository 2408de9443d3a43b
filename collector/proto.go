package collector

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The delimited protobuf exposition, written by hand from the blocks as the
// text one is: each family is a varint length and an io.prometheus.client
// MetricFamily message {1 name, 2 help, 3 type, 4 metric}; each metric is
// {1 label {1 name, 2 value}, 2 gauge {1 value (double)}}. Sizes are
// computed in a first pass, as a message's length precedes it.

const (
	tagFamilyName   = 1<<3 | 2
	tagFamilyHelp   = 2<<3 | 2
	tagFamilyType   = 3 << 3 // varint
	tagFamilyMetric = 4<<3 | 2
	tagMetricLabel  = 1<<3 | 2
	tagMetricGauge  = 2<<3 | 2
	tagPairName     = 1<<3 | 2
	tagPairValue    = 2<<3 | 2
	tagGaugeValue   = 1<<3 | 1
	typeGauge       = 1 // io.prometheus.client.MetricType GAUGE
	// gaugeSize is the gauge field: tag, length, value tag, double.
	gaugeSize = 1 + 1 + 1 + 8
)

// initProto encodes what does not change between samples.
func (f *family) initProto(sorted []string) {
	f.protoNames = make([][]byte, len(sorted))
	for j, name := range sorted {
		b := append([]byte{tagPairName}, protowire.AppendString(nil, name)...)
		f.protoNames[j] = append(b, tagPairValue)
	}
	if f.states == nil {
		return
	}
	j := f.order[len(f.labels)-1]
	for _, st := range f.states {
		f.stateFields = append(f.stateFields, appendPair(nil, f.protoNames[j], st))
	}
}

// appendPair appends one label field: its tag, length, and the pair.
func appendPair(buf, namePart []byte, value string) []byte {
	buf = append(buf, tagMetricLabel)
	buf = protowire.AppendVarint(buf, uint64(len(namePart)+protowire.SizeVarint(uint64(len(value)))+len(value)))
	buf = append(buf, namePart...)
	return protowire.AppendString(buf, value)
}

// rowSize is the size of one row's metric message, the state label left
// out.
func (f *family) rowSize(row []string) int {
	n := gaugeSize
	for j, l := range f.text {
		if l.src >= 0 {
			v := len(row[l.src])
			inner := len(f.protoNames[j]) + protowire.SizeVarint(uint64(v)) + v
			n += 1 + protowire.SizeVarint(uint64(inner)) + inner
		}
	}
	return n
}

// stateSize is the size of state s's label field, 0 for no state (-1).
func (f *family) stateSize(s int) int {
	if s < 0 {
		return 0
	}
	return len(f.stateFields[s])
}

// fieldSize is the size of a metric field whose message is n bytes.
func fieldSize(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

// protoSize is the size of the block's metric fields.
func (b *block) protoSize() int {
	f, w := b.f, b.f.width
	total := 0
	for r := range b.rows() {
		base := f.rowSize(b.labels[r*w : (r+1)*w])
		for s := range b.rowSamples(r) {
			total += fieldSize(base + f.stateSize(s))
		}
	}
	return total
}

func appendProtoFamily(tw *textWriter, f *family, blocks []*block) {
	size := 1 + len(protowire.AppendString(nil, f.name)) + 1 + len(protowire.AppendString(nil, f.help)) + 2
	for _, b := range blocks {
		if b.f == f {
			size += b.protoSize()
		}
	}
	buf := protowire.AppendVarint(tw.buf, uint64(size))
	buf = append(buf, tagFamilyName)
	buf = protowire.AppendString(buf, f.name)
	buf = append(buf, tagFamilyHelp)
	buf = protowire.AppendString(buf, f.help)
	tw.buf = append(buf, tagFamilyType, typeGauge)
	for _, b := range blocks {
		if b.f == f {
			b.appendProto(tw)
		}
	}
}

// appendProto writes the block's metric fields.
func (b *block) appendProto(tw *textWriter) {
	f, w := b.f, b.f.width
	for r := range b.rows() {
		row := b.labels[r*w : (r+1)*w]
		base := f.rowSize(row)
		for s, v := range b.rowSamples(r) {
			tw.buf = f.appendProtoSample(tw.buf, row, base+f.stateSize(s), s, v)
		}
		tw.flushIfFull()
		if tw.err != nil {
			return
		}
	}
}

// appendProtoSample writes one metric field whose message is n bytes;
// state is the state label's index, or -1.
func (f *family) appendProtoSample(buf []byte, row []string, n, state int, v float64) []byte {
	buf = append(buf, tagFamilyMetric)
	buf = protowire.AppendVarint(buf, uint64(n))
	for j, l := range f.text {
		if l.src < 0 {
			buf = append(buf, f.stateFields[state]...)
		} else {
			buf = appendPair(buf, f.protoNames[j], row[l.src])
		}
	}
	buf = append(buf, tagMetricGauge, 9, tagGaugeValue)
	return binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
}
