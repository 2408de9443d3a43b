package simulator

// VSPC collection queries: limit/offset paging and the filter, sort and
// select JSON expressions of veeam-api.md §3.3, evaluated against typed
// property getters rather than generic maps so that filtering 200,000
// objects stays cheap.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// vkind is the JSON type of a VSPC model property.
type vkind int

const (
	kString vkind = iota // strings and enums
	kUID                 // uuids: compared case-insensitively whatever the collation
	kInt
	kBool
	kTime
	kObject // a nested object: only comparable with null
)

// vval is a property value; null marks JSON null.
type vval struct {
	null bool
	s    string
	n    float64
	b    bool
	t    time.Time
	u    [16]byte
}

// propDef describes one filterable, sortable and selectable property.
type propDef[T any] struct {
	path string // canonical dotted path, e.g. "lastSession.status"
	kind vkind
	get  func(T) vval
}

// propTable indexes property definitions by lower-cased path.
type propTable[T any] map[string]propDef[T]

func newPropTable[T any](defs ...propDef[T]) propTable[T] {
	t := make(propTable[T], len(defs))
	for _, d := range defs {
		t[strings.ToLower(d.path)] = d
	}
	return t
}

func (t propTable[T]) lookup(path string) (propDef[T], bool) {
	d, ok := t[strings.ToLower(strings.TrimSpace(path))]
	return d, ok
}

// queryError is a 400 on a query parameter.
type queryError struct {
	param, msg string
}

func (e *queryError) Error() string { return e.msg }

func badParam(param, format string, args ...any) error {
	return &queryError{param: param, msg: fmt.Sprintf(format, args...)}
}

// queryValues are the query parameters by lower-cased name: ASP.NET binds
// them case-insensitively.
type queryValues map[string][]string

func newQueryValues(q url.Values) queryValues {
	out := make(queryValues, len(q))
	for k, v := range q {
		lk := strings.ToLower(k)
		out[lk] = append(out[lk], v...)
	}
	return out
}

func (q queryValues) get(name string) (string, bool) {
	v, ok := q[strings.ToLower(name)]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// listQuery is a parsed collection query.
type listQuery[T any] struct {
	limit, offset int
	filter        func(T) bool // nil = all
	sort          func(a, b T) int
	sel           *selection
}

const (
	vspcDefaultLimit = 100
	vspcMaxLimit     = 500
)

func parseListQuery[T any](q queryValues, props propTable[T]) (listQuery[T], error) {
	lq := listQuery[T]{limit: vspcDefaultLimit}
	if v, ok := q.get("limit"); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		switch {
		case err != nil:
			return lq, badParam("limit", "The value '%s' is not valid.", v)
		case n < 1:
			return lq, badParam("limit", "Property value must be larger or equal to 1.")
		case n > vspcMaxLimit:
			return lq, badParam("limit", "Property value must be less or equal to %d.", vspcMaxLimit)
		}
		lq.limit = int(n)
	}
	if v, ok := q.get("offset"); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		switch {
		case err != nil:
			return lq, badParam("offset", "The value '%s' is not valid.", v)
		case n < 0:
			return lq, badParam("offset", "Property value must be larger or equal to 0.")
		}
		lq.offset = int(n)
	}
	if v, ok := q.get("filter"); ok && strings.TrimSpace(v) != "" {
		var exprs []filterExpr
		if err := json.Unmarshal([]byte(v), &exprs); err != nil {
			return lq, badParam("filter", "The filter expression is not a valid JSON array: %v", err)
		}
		f, err := compileFilters(exprs, props)
		if err != nil {
			return lq, err
		}
		lq.filter = f
	}
	if v, ok := q.get("sort"); ok && strings.TrimSpace(v) != "" {
		var exprs []sortExpr
		if err := json.Unmarshal([]byte(v), &exprs); err != nil {
			return lq, badParam("sort", "The sort expression is not a valid JSON array: %v", err)
		}
		s, err := compileSort(exprs, props)
		if err != nil {
			return lq, err
		}
		lq.sort = s
	}
	sel, err := parseSelect(q, props)
	if err != nil {
		return lq, err
	}
	lq.sel = sel
	return lq, nil
}

// page applies the query to items, which are in the stable default order.
// Without filter and sort it costs O(limit).
func (lq listQuery[T]) page(items []T) (page []T, total int) {
	if lq.filter == nil && lq.sort == nil {
		total = len(items)
		lo := min(lq.offset, total)
		hi := min(lo+lq.limit, total)
		return items[lo:hi], total
	}
	var matched []T
	if lq.sort == nil {
		// Count everything but keep only the page.
		for _, it := range items {
			if lq.filter(it) {
				if total >= lq.offset && total < lq.offset+lq.limit {
					matched = append(matched, it)
				}
				total++
			}
		}
		return matched, total
	}
	if lq.filter == nil {
		matched = slices.Clone(items)
	} else {
		for _, it := range items {
			if lq.filter(it) {
				matched = append(matched, it)
			}
		}
	}
	slices.SortStableFunc(matched, lq.sort)
	total = len(matched)
	lo := min(lq.offset, total)
	hi := min(lo+lq.limit, total)
	return matched[lo:hi], total
}

// filterExpr is VSPC's FilterExpression.
type filterExpr struct {
	Property  string          `json:"property"`
	Operation string          `json:"operation"`
	Collation string          `json:"collation"`
	Value     json.RawMessage `json:"value"`
	Items     []filterExpr    `json:"items"`
}

// compileFilters ANDs the top-level expressions [I].
func compileFilters[T any](exprs []filterExpr, props propTable[T]) (func(T) bool, error) {
	preds := make([]func(T) bool, 0, len(exprs))
	for _, e := range exprs {
		p, err := compileFilter(e, props)
		if err != nil {
			return nil, err
		}
		preds = append(preds, p)
	}
	return func(t T) bool {
		for _, p := range preds {
			if !p(t) {
				return false
			}
		}
		return true
	}, nil
}

func compileFilter[T any](e filterExpr, props propTable[T]) (func(T) bool, error) {
	op := strings.ToLower(e.Operation)
	switch op {
	case "and", "or", "not", "exclusiveor":
		if len(e.Items) == 0 {
			return nil, badParam("filter", "Operation '%s' requires items.", e.Operation)
		}
		preds := make([]func(T) bool, 0, len(e.Items))
		for _, it := range e.Items {
			p, err := compileFilter(it, props)
			if err != nil {
				return nil, err
			}
			preds = append(preds, p)
		}
		switch op {
		case "and":
			return func(t T) bool {
				for _, p := range preds {
					if !p(t) {
						return false
					}
				}
				return true
			}, nil
		case "or":
			return func(t T) bool {
				for _, p := range preds {
					if p(t) {
						return true
					}
				}
				return false
			}, nil
		case "not":
			// not negates the conjunction of its items [I].
			return func(t T) bool {
				for _, p := range preds {
					if !p(t) {
						return true
					}
				}
				return false
			}, nil
		default:
			return func(t T) bool {
				n := 0
				for _, p := range preds {
					if p(t) {
						n++
					}
				}
				return n%2 == 1
			}, nil
		}
	}

	def, ok := props.lookup(e.Property)
	if !ok {
		return nil, badParam("filter", "Property '%s' does not exist or cannot be used in a filter.", e.Property)
	}
	var fold bool
	switch strings.ToLower(e.Collation) {
	case "", "ordinal", "lexicographic":
	case "ignorecase":
		fold = true
	default:
		return nil, badParam("filter", "Unknown collation '%s'.", e.Collation)
	}
	get := def.get
	switch op {
	case "equals", "notequals":
		want, err := parseFilterValue(def, e.Value)
		if err != nil {
			return nil, err
		}
		eq := func(t T) bool { return valEqual(def.kind, get(t), want, fold) }
		if op == "notequals" {
			return func(t T) bool { return !eq(t) }, nil
		}
		return eq, nil
	case "in":
		var raws []json.RawMessage
		if err := json.Unmarshal(e.Value, &raws); err != nil {
			return nil, badParam("filter", "Operation 'in' on '%s' needs an array value.", def.path)
		}
		wants := make([]vval, 0, len(raws))
		for _, r := range raws {
			w, err := parseFilterValue(def, r)
			if err != nil {
				return nil, err
			}
			wants = append(wants, w)
		}
		return func(t T) bool {
			v := get(t)
			for _, w := range wants {
				if valEqual(def.kind, v, w, fold) {
					return true
				}
			}
			return false
		}, nil
	case "lessthan", "lessthanorequal", "greaterthan", "greaterthanorequal":
		if def.kind == kObject || def.kind == kBool {
			return nil, badParam("filter", "Operation '%s' is not supported for property '%s'.", e.Operation, def.path)
		}
		want, err := parseFilterValue(def, e.Value)
		if err != nil {
			return nil, err
		}
		if want.null {
			return nil, badParam("filter", "Operation '%s' needs a value.", e.Operation)
		}
		test := map[string]func(int) bool{
			"lessthan":           func(c int) bool { return c < 0 },
			"lessthanorequal":    func(c int) bool { return c <= 0 },
			"greaterthan":        func(c int) bool { return c > 0 },
			"greaterthanorequal": func(c int) bool { return c >= 0 },
		}[op]
		return func(t T) bool {
			v := get(t)
			if v.null {
				return false
			}
			return test(valCompare(def.kind, v, want, fold))
		}, nil
	case "contains":
		if def.kind != kString && def.kind != kUID {
			return nil, badParam("filter", "Operation 'contains' is not supported for property '%s'.", def.path)
		}
		var sub string
		if err := json.Unmarshal(e.Value, &sub); err != nil {
			return nil, badParam("filter", "Operation 'contains' on '%s' needs a string value.", def.path)
		}
		if fold || def.kind == kUID {
			sub = strings.ToLower(sub)
		}
		return func(t T) bool {
			v := get(t)
			if v.null {
				return false
			}
			s := v.s
			if def.kind == kUID {
				s = formatUUID(v.u, false)
			} else if fold {
				s = strings.ToLower(s)
			}
			return strings.Contains(s, sub)
		}, nil
	case "subset", "superset":
		return nil, badParam("filter", "Operation '%s' is not supported for property '%s'.", e.Operation, def.path)
	default:
		return nil, badParam("filter", "Unknown filter operation '%s'.", e.Operation)
	}
}

// parseFilterValue converts a JSON filter value to the property's kind.
func parseFilterValue[T any](def propDef[T], raw json.RawMessage) (vval, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return vval{null: true}, nil
	}
	bad := func() (vval, error) {
		return vval{}, badParam("filter", "The value %s is not valid for property '%s'.", raw, def.path)
	}
	switch def.kind {
	case kString:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return bad()
		}
		return vval{s: s}, nil
	case kUID:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return bad()
		}
		u, ok := parseUUID(s)
		if !ok {
			return bad()
		}
		return vval{u: u}, nil
	case kInt:
		var n float64
		if json.Unmarshal(raw, &n) != nil {
			return bad()
		}
		return vval{n: n}, nil
	case kBool:
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return bad()
		}
		return vval{b: b}, nil
	case kTime:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return bad()
		}
		t, ok := parseVSPCTime(s)
		if !ok {
			return bad()
		}
		return vval{t: t}, nil
	default: // kObject: only null is comparable
		return bad()
	}
}

func valEqual(k vkind, a, b vval, fold bool) bool {
	if a.null || b.null {
		return a.null == b.null
	}
	return valCompare(k, a, b, fold) == 0
}

// valCompare orders two non-null values.
func valCompare(k vkind, a, b vval, fold bool) int {
	switch k {
	case kString:
		if fold {
			return strings.Compare(strings.ToLower(a.s), strings.ToLower(b.s))
		}
		return strings.Compare(a.s, b.s)
	case kUID:
		return bytes.Compare(a.u[:], b.u[:])
	case kInt:
		return cmp.Compare(a.n, b.n)
	case kBool:
		switch {
		case a.b == b.b:
			return 0
		case !a.b:
			return -1
		default:
			return 1
		}
	case kTime:
		return a.t.Compare(b.t)
	default:
		return 0
	}
}

// sortExpr is VSPC's SortExpression.
type sortExpr struct {
	Property  string `json:"property"`
	Direction string `json:"direction"`
	Collation string `json:"collation"`
}

func compileSort[T any](exprs []sortExpr, props propTable[T]) (func(a, b T) int, error) {
	type key struct {
		get  func(T) vval
		kind vkind
		desc bool
		fold bool
	}
	keys := make([]key, 0, len(exprs))
	for _, e := range exprs {
		def, ok := props.lookup(e.Property)
		if !ok || def.kind == kObject {
			return nil, badParam("sort", "Property '%s' does not exist or cannot be used for sorting.", e.Property)
		}
		k := key{get: def.get, kind: def.kind}
		switch strings.ToLower(e.Direction) {
		case "", "ascending":
		case "descending":
			k.desc = true
		default:
			return nil, badParam("sort", "Unknown sort direction '%s'.", e.Direction)
		}
		switch strings.ToLower(e.Collation) {
		case "", "ordinal", "lexicographic":
		case "ignorecase":
			k.fold = true
		default:
			return nil, badParam("sort", "Unknown collation '%s'.", e.Collation)
		}
		keys = append(keys, k)
	}
	return func(a, b T) int {
		for _, k := range keys {
			va, vb := k.get(a), k.get(b)
			var c int
			switch {
			case va.null && vb.null:
				c = 0
			case va.null: // nulls first when ascending [I]
				c = -1
			case vb.null:
				c = 1
			default:
				c = valCompare(k.kind, va, vb, k.fold)
			}
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	}, nil
}

// selection is the set of properties a select expression keeps. A nil
// *selection keeps everything (at its level and below).
type selection struct {
	fields map[string]*selection
}

// pick reports whether a property is selected and how its children are.
func (s *selection) pick(name string) (*selection, bool) {
	if s == nil {
		return nil, true
	}
	c, ok := s.fields[strings.ToLower(name)]
	return c, ok
}

type selectExpr struct {
	PropertyPath string `json:"propertyPath"`
}

func parseSelect[T any](q queryValues, props propTable[T]) (*selection, error) {
	v, ok := q.get("select")
	if !ok || strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var exprs []selectExpr
	if err := json.Unmarshal([]byte(v), &exprs); err != nil {
		return nil, badParam("select", "The select expression is not a valid JSON array: %v", err)
	}
	if len(exprs) == 0 {
		return nil, nil
	}
	root := &selection{fields: map[string]*selection{}}
	for _, e := range exprs {
		def, ok := props.lookup(e.PropertyPath)
		if !ok {
			return nil, badParam("select", "Property '%s' does not exist.", e.PropertyPath)
		}
		parts := strings.Split(strings.ToLower(def.path), ".")
		cur := root
		for i, p := range parts {
			last := i == len(parts)-1
			child, seen := cur.fields[p]
			switch {
			case last:
				cur.fields[p] = nil // the whole property
			case seen && child == nil:
				// The whole parent is already selected.
			default:
				if !seen {
					child = &selection{fields: map[string]*selection{}}
					cur.fields[p] = child
				}
			}
			if last || child == nil {
				break
			}
			cur = child
		}
	}
	return root, nil
}

// jsonObject writes one JSON object field by field, honouring a selection.
type jsonObject struct {
	b   *bytes.Buffer
	sel *selection
	n   int
}

func openObject(b *bytes.Buffer, sel *selection) *jsonObject {
	b.WriteByte('{')
	return &jsonObject{b: b, sel: sel}
}

func (o *jsonObject) close() { o.b.WriteByte('}') }

// key writes the key of a selected field and reports whether to write it.
func (o *jsonObject) key(name string) (*selection, bool) {
	child, ok := o.sel.pick(name)
	if !ok {
		return nil, false
	}
	if o.n > 0 {
		o.b.WriteByte(',')
	}
	o.n++
	writeJSONString(o.b, name)
	o.b.WriteByte(':')
	return child, true
}

func (o *jsonObject) str(name, v string) {
	if _, ok := o.key(name); ok {
		writeJSONString(o.b, v)
	}
}

func (o *jsonObject) strp(name string, v *string) {
	if _, ok := o.key(name); ok {
		if v == nil {
			o.b.WriteString("null")
		} else {
			writeJSONString(o.b, *v)
		}
	}
}

func (o *jsonObject) uid(name string, u uid) {
	if _, ok := o.key(name); ok {
		if u.isZero() {
			o.b.WriteString("null")
		} else {
			// Straight into the buffer: list pages write six per object.
			var q [38]byte
			q[0], q[37] = '"', '"'
			putUUID(q[1:37], u.b, u.upper)
			o.b.Write(q[:])
		}
	}
}

func (o *jsonObject) int(name string, v int) {
	if _, ok := o.key(name); ok {
		o.b.WriteString(strconv.Itoa(v))
	}
}

func (o *jsonObject) boolp(name string, v *bool) {
	if _, ok := o.key(name); ok {
		if v == nil {
			o.b.WriteString("null")
		} else {
			o.b.WriteString(strconv.FormatBool(*v))
		}
	}
}

// time writes a date-time the way .NET serialises DateTimeOffset; the
// zero time is null.
func (o *jsonObject) time(name string, t time.Time) {
	if _, ok := o.key(name); ok {
		if t.IsZero() {
			o.b.WriteString("null")
		} else {
			o.b.WriteByte('"')
			o.b.Write(t.UTC().AppendFormat(o.b.AvailableBuffer(), vspcTimeLayout))
			o.b.WriteByte('"')
		}
	}
}

func (o *jsonObject) null(name string) {
	if _, ok := o.key(name); ok {
		o.b.WriteString("null")
	}
}

func writeJSONString(b *bytes.Buffer, s string) {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

const vspcTimeLayout = "2006-01-02T15:04:05.0000000-07:00"

// parseVSPCTime accepts ISO-8601 date-times with or without a zone (UTC
// assumed) and bare dates.
func parseVSPCTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// uid is a UUID with the letter case the product emits it in.
type uid struct {
	b     [16]byte
	upper bool
}

func (u uid) isZero() bool   { return u.b == [16]byte{} }
func (u uid) String() string { return formatUUID(u.b, u.upper) }

func formatUUID(b [16]byte, upper bool) string {
	var out [36]byte
	putUUID(out[:], b, upper)
	return string(out[:])
}

// putUUID writes the 36 characters of b into out.
func putUUID(out []byte, b [16]byte, upper bool) {
	const lower, capital = "0123456789abcdef", "0123456789ABCDEF"
	digits := lower
	if upper {
		digits = capital
	}
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = digits[c>>4], digits[c&0xf]
		j += 2
	}
}

// parseUUID accepts the 36-character form in either case, with or without
// braces.
func parseUUID(s string) ([16]byte, bool) {
	var b [16]byte
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, false
	}
	j := 0
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := hexVal(s[i])
		lo, ok2 := hexVal(s[i+1])
		if !ok1 || !ok2 {
			return b, false
		}
		b[j] = hi<<4 | lo
		j++
		i += 2
	}
	return b, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Helpers for property getters.
func sv(s string) vval { return vval{s: s} }

func spv(s *string) vval {
	if s == nil {
		return vval{null: true}
	}
	return vval{s: *s}
}

func uv(u uid) vval {
	if u.isZero() {
		return vval{null: true}
	}
	return vval{u: u.b}
}

func iv(n int) vval { return vval{n: float64(n)} }

func bpv(b *bool) vval {
	if b == nil {
		return vval{null: true}
	}
	return vval{b: *b}
}

func tv(t time.Time) vval {
	if t.IsZero() {
		return vval{null: true}
	}
	return vval{t: t}
}

func objv(present bool) vval { return vval{null: !present} }

// clientVersion is a parsed X-Client-Version; the zero value means the
// latest.
type clientVersion [3]int

var latestVSPCVersion = clientVersion{math.MaxInt32, 0, 0}

func parseClientVersion(s string) clientVersion {
	s = strings.TrimSpace(s)
	if s == "" {
		return latestVSPCVersion
	}
	var v clientVersion
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return latestVSPCVersion
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return latestVSPCVersion
		}
		v[i] = n
	}
	return v
}

func (v clientVersion) less(o clientVersion) bool {
	return slices.Compare(v[:], o[:]) < 0
}
