package simulator

// The EM query service: GET /api/query?type=...&format=...&sortAsc|sortDesc=
// &pageSize=&page=&filter= (veeam-api.md §2.10).
//
// Filter syntax [C: helpcenter query_comparison, query_and_or,
// query_grouping]: comparisons <property><op><value> with ==, !=, <, >, <=,
// >=; AND is ';' and OR is ',' (also accepted: '&' sent as %26 and '|');
// parentheses group; values with spaces are double-quoted, a quote inside
// is doubled. Properties and enum values match case-insensitively
// ("Result==failed"); enums compare by their index in the documented order;
// strings compare case-insensitively [I].

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

type emKind int

const (
	emKindString emKind = iota
	emKindUID
	emKindTime
	emKindEnum
)

type emProp struct {
	name string
	kind emKind
	enum []string
}

// emVal is one property value of a row.
type emVal struct {
	s    string
	t    time.Time
	n    int
	null bool
}

var (
	// Documented order Starting, Stopping, Working, Stopped [C]; None, the
	// result of a running session [C: example], sorts before Success [I].
	emSessionStates  = []string{"Starting", "Stopping", "Working", "Stopped"}
	emSessionResults = []string{"None", "Success", "Warning", "Failed"}
	emTaskStates     = []string{"Running", "OperationFinished", "Finished"}

	emSessionProps = []emProp{
		{"UID", emKindUID, nil}, {"Name", emKindString, nil}, {"Type", emKindString, nil},
		{"CreationTime", emKindTime, nil}, {"EndTime", emKindTime, nil},
		{"State", emKindEnum, emSessionStates}, {"Result", emKindEnum, emSessionResults},
		{"FailureMessage", emKindString, nil}, {"BackupServerUid", emKindUID, nil}, {"BackupServerName", emKindString, nil},
	}
	emPlanProps = []emProp{
		{"UID", emKindUID, nil}, {"Name", emKindString, nil}, {"Description", emKindString, nil},
		{"BackupServerUid", emKindUID, nil}, {"BackupServerName", emKindString, nil},
	}
	emTaskProps = []emProp{
		{"TaskId", emKindString, nil}, {"State", emKindEnum, emTaskStates}, {"Operation", emKindString, nil},
	}
)

func emFindProp(props []emProp, name string) (emProp, bool) {
	for _, p := range props {
		if strings.EqualFold(p.name, name) {
			return p, true
		}
	}
	return emProp{}, false
}

func emEnumIndex(enum []string, v string) int {
	for i, e := range enum {
		if strings.EqualFold(e, v) {
			return i
		}
	}
	return -1
}

func emCompare(kind emKind, a, b emVal) int {
	switch kind {
	case emKindTime:
		return a.t.Compare(b.t)
	case emKindEnum:
		return cmp.Compare(a.n, b.n)
	case emKindUID:
		return strings.Compare(a.s, b.s)
	}
	return strings.Compare(strings.ToLower(a.s), strings.ToLower(b.s))
}

// emFilter is a parsed filter expression.
type emFilter interface {
	match(get func(prop string) emVal) bool
}

type emCmp struct {
	prop emProp
	op   string
	lit  emVal
}

func (c emCmp) match(get func(string) emVal) bool {
	v := get(c.prop.name)
	if v.null {
		return c.op == "!="
	}
	r := emCompare(c.prop.kind, v, c.lit)
	switch c.op {
	case "==":
		return r == 0
	case "!=":
		return r != 0
	case "<":
		return r < 0
	case ">":
		return r > 0
	case "<=":
		return r <= 0
	}
	return r >= 0
}

type emAnd []emFilter

func (f emAnd) match(get func(string) emVal) bool {
	for _, x := range f {
		if !x.match(get) {
			return false
		}
	}
	return true
}

type emOr []emFilter

func (f emOr) match(get func(string) emVal) bool {
	for _, x := range f {
		if x.match(get) {
			return true
		}
	}
	return false
}

type emParser struct {
	s     string
	i     int
	props []emProp
}

// emParseFilter parses a filter for rows with the given properties.
func emParseFilter(s string, props []emProp) (emFilter, error) {
	p := &emParser{s: s, props: props}
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) {
		return nil, fmt.Errorf("unexpected %q at position %d", p.s[p.i:], p.i+1)
	}
	return f, nil
}

func (p *emParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *emParser) or() (emFilter, error) {
	terms, err := p.list(p.and, ",|")
	if err != nil || len(terms) == 1 {
		return emFirst(terms), err
	}
	return emOr(terms), nil
}

func (p *emParser) and() (emFilter, error) {
	terms, err := p.list(p.primary, ";&")
	if err != nil || len(terms) == 1 {
		return emFirst(terms), err
	}
	return emAnd(terms), nil
}

func emFirst(fs []emFilter) emFilter {
	if len(fs) == 0 {
		return nil
	}
	return fs[0]
}

// list parses item (sep item)*.
func (p *emParser) list(item func() (emFilter, error), seps string) ([]emFilter, error) {
	var out []emFilter
	for {
		f, err := item()
		if err != nil {
			return nil, err
		}
		out = append(out, f)
		p.space()
		if p.i >= len(p.s) || !strings.ContainsRune(seps, rune(p.s[p.i])) {
			return out, nil
		}
		p.i++
	}
}

func (p *emParser) primary() (emFilter, error) {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '(' {
		p.i++
		f, err := p.or()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return nil, fmt.Errorf("missing ')' at position %d", p.i+1)
		}
		p.i++
		return f, nil
	}
	return p.comparison()
}

func (p *emParser) comparison() (emFilter, error) {
	start := p.i
	for p.i < len(p.s) && (emIsAlnum(p.s[p.i]) || p.s[p.i] == '_') {
		p.i++
	}
	name := p.s[start:p.i]
	if name == "" {
		return nil, fmt.Errorf("property name expected at position %d", start+1)
	}
	prop, ok := emFindProp(p.props, name)
	if !ok {
		return nil, fmt.Errorf("unknown property %q", name)
	}
	p.space()
	var op string
	for _, o := range []string{"==", "!=", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(p.s[p.i:], o) {
			op = o
			break
		}
	}
	if op == "" {
		return nil, fmt.Errorf("comparison operator expected after %q", name)
	}
	p.i += len(op)
	p.space()
	raw, err := p.value()
	if err != nil {
		return nil, err
	}
	lit, err := emLiteral(prop, raw)
	if err != nil {
		return nil, err
	}
	return emCmp{prop: prop, op: op, lit: lit}, nil
}

func emIsAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// value reads a quoted ("" escapes a quote) or bare value.
func (p *emParser) value() (string, error) {
	if p.i < len(p.s) && p.s[p.i] == '"' {
		var b strings.Builder
		for p.i++; p.i < len(p.s); p.i++ {
			if p.s[p.i] == '"' {
				if p.i+1 < len(p.s) && p.s[p.i+1] == '"' {
					b.WriteByte('"')
					p.i++
					continue
				}
				p.i++
				return b.String(), nil
			}
			b.WriteByte(p.s[p.i])
		}
		return "", fmt.Errorf("unterminated quoted value")
	}
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune(",;&|()", rune(p.s[p.i])) {
		p.i++
	}
	v := strings.TrimSpace(p.s[start:p.i])
	if v == "" {
		return "", fmt.Errorf("value expected at position %d", start+1)
	}
	return v, nil
}

func emLiteral(prop emProp, raw string) (emVal, error) {
	switch prop.kind {
	case emKindUID:
		return emVal{s: emBareID(raw)}, nil
	case emKindTime:
		t, err := emParseTime(raw)
		if err != nil {
			return emVal{}, fmt.Errorf("%s: %w", prop.name, err)
		}
		return emVal{t: t}, nil
	case emKindEnum:
		n := emEnumIndex(prop.enum, raw)
		if n < 0 {
			return emVal{}, fmt.Errorf("invalid value %q for %s (one of %s)", raw, prop.name, strings.Join(prop.enum, ", "))
		}
		return emVal{n: n}, nil
	}
	return emVal{s: raw}, nil
}

// emQueryRows is what a query type contributes: its properties, its rows
// (in their natural order) and a getter.
type emQueryRows struct {
	props []emProp
	n     int
	get   func(i int, prop string) emVal
}

// emSelect filters and sorts rows; the result holds row indexes.
func emSelect(rows emQueryRows, f emFilter, sortBy *emProp, desc bool) []int {
	idx := make([]int, 0, rows.n)
	for i := range rows.n {
		if f == nil || f.match(func(p string) emVal { return rows.get(i, p) }) {
			idx = append(idx, i)
		}
	}
	if sortBy != nil {
		cmp := func(x, y int) int {
			a, b := rows.get(x, sortBy.name), rows.get(y, sortBy.name)
			var c int
			switch {
			case a.null && b.null:
			case a.null:
				c = -1
			case b.null:
				c = 1
			default:
				c = emCompare(sortBy.kind, a, b)
			}
			if desc {
				c = -c
			}
			return c
		}
		// Every page of a list read sorts the whole result: skip the sort
		// when it would change nothing (sessions are kept by creation time).
		if !slices.IsSortedFunc(idx, cmp) {
			slices.SortStableFunc(idx, cmp)
		}
	}
	return idx
}

// query serves GET /api/query.
func (a *emAPI) query(w http.ResponseWriter, r *http.Request, lg *emLogon) {
	bad := func(msg string) { a.writeErrorFor(w, r, http.StatusBadRequest, msg) }
	typ, _ := emParam(r, "type")
	var props []emProp
	switch strings.ToLower(typ) {
	case "cloudfailoversession":
		props = emSessionProps
	case "failoverplan":
		props = emPlanProps
	case "task":
		props = emTaskProps
	case "":
		bad("The type query parameter is required.")
		return
	default:
		bad("Query type " + typ + " is not supported by the simulator (CloudFailoverSession, FailoverPlan, Task).")
		return
	}
	entities := false
	switch f, _ := emParam(r, "format"); strings.ToLower(f) {
	case "", "references":
	case "entities":
		entities = true
	default:
		bad("Format " + f + " is not supported: use Entities or References.")
		return
	}
	pageSize, page := 0, 1
	if v, ok := emParam(r, "pageSize"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad("pageSize must be a number greater than 0.")
			return
		}
		pageSize = n
	}
	if v, ok := emParam(r, "page"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			bad("page must be a number greater than 0.")
			return
		}
		page = n
	}
	var sortBy *emProp
	desc := false
	for _, key := range []string{"sortAsc", "sortDesc"} {
		v, ok := emParam(r, key)
		if !ok || sortBy != nil {
			continue
		}
		p, found := emFindProp(props, v)
		if !found {
			bad("Cannot sort by unknown property " + v + ".")
			return
		}
		sortBy, desc = &p, key == "sortDesc"
	}
	var filter emFilter
	if v, ok := emParam(r, "filter"); ok && strings.TrimSpace(v) != "" {
		f, err := emParseFilter(v, props)
		if err != nil {
			bad("Invalid filter: " + err.Error() + ".")
			return
		}
		filter = f
	}

	base := emBase(r)
	a.mu.Lock()
	now := a.now()
	var (
		rows   emQueryRows
		render func(idx []int) emQueryResult
	)
	switch strings.ToLower(typ) {
	case "cloudfailoversession":
		// The query service also sees only the last 30 days [C].
		ss := a.sessions[a.windowStart(now):]
		rows = emQueryRows{props: props, n: len(ss), get: func(i int, prop string) emVal {
			s := ss[i]
			switch prop {
			case "UID":
				return emVal{s: s.uid}
			case "Name":
				return emVal{s: s.name}
			case "Type":
				return emVal{s: "FailoverPlan"}
			case "CreationTime":
				return emVal{t: s.created}
			case "EndTime":
				if s.end == nil {
					return emVal{null: true}
				}
				return emVal{t: *s.end}
			case "State":
				return emVal{n: emEnumIndex(emSessionStates, s.state)}
			case "Result":
				return emVal{n: emEnumIndex(emSessionResults, s.result)}
			case "FailureMessage":
				return emVal{s: s.failure}
			case "BackupServerUid":
				return emVal{s: a.servers[s.server].uid}
			}
			return emVal{s: a.servers[s.server].name}
		}}
		render = func(idx []int) emQueryResult {
			if !entities {
				l := &emRefList{}
				for _, i := range idx {
					l.Refs = append(l.Refs, a.sessionRef(base, ss[i]))
				}
				return emQueryResult{Refs: l}
			}
			l := &emCloudFailoverSessionList{}
			for _, i := range idx {
				l.CloudFailoverSessions = append(l.CloudFailoverSessions, a.sessionEntity(base, ss[i], now))
			}
			return emQueryResult{Entities: &emEntities{CloudFailoverSessions: l}}
		}
	case "failoverplan":
		rows = emQueryRows{props: props, n: len(a.plans), get: func(i int, prop string) emVal {
			p := a.plans[i]
			switch prop {
			case "UID":
				return emVal{s: p.uid}
			case "Name":
				return emVal{s: p.name}
			case "Description":
				return emVal{s: p.desc}
			case "BackupServerUid":
				return emVal{s: a.servers[p.server].uid}
			}
			return emVal{s: a.servers[p.server].name}
		}}
		render = func(idx []int) emQueryResult {
			if !entities {
				l := &emRefList{}
				for _, i := range idx {
					l.Refs = append(l.Refs, a.planRef(base, a.plans[i]))
				}
				return emQueryResult{Refs: l}
			}
			l := &emFailoverPlanList{}
			for _, i := range idx {
				l.FailoverPlans = append(l.FailoverPlans, a.planEntity(base, a.plans[i]))
			}
			return emQueryResult{Entities: &emEntities{FailoverPlans: l}}
		}
	default:
		// Tasks of this logon session only [C].
		var ts []*emTaskRec
		for _, num := range a.taskOrder() {
			if t := a.tasks[num-1]; t.logon == lg.id {
				ts = append(ts, t)
			}
		}
		rows = emQueryRows{props: props, n: len(ts), get: func(i int, prop string) emVal {
			t := ts[i]
			switch prop {
			case "TaskId":
				return emVal{s: t.id()}
			case "State":
				st, _ := t.at(now)
				return emVal{n: emEnumIndex(emTaskStates, st)}
			}
			return emVal{s: t.op}
		}}
		render = func(idx []int) emQueryResult {
			l := &emTaskList{}
			for _, i := range idx {
				l.Tasks = append(l.Tasks, a.taskView(base, ts[i], now, false))
			}
			return emQueryResult{Resources: &emResources{Tasks: l}}
		}
	}
	idx := emSelect(rows, filter, sortBy, desc)
	info := emPaging(base, r.URL.RawQuery, len(idx), pageSize, page)
	lo := min((page-1)*info.PageSize, len(idx))
	hi := min(lo+info.PageSize, len(idx))
	res := render(idx[lo:hi])
	a.mu.Unlock()
	res.PagingInfo = info
	a.write(w, r, http.StatusOK, "QueryResult", res)
}

// emPaging computes PagingInfo. Without pageSize everything is on one page
// [C]; its PageSize is then the larger of the result count and 100, the
// value the documented example shows for two results [I]. An empty result
// still has one (empty) page [I].
func emPaging(base, rawQuery string, total, pageSize, page int) emPagingInfo {
	if pageSize == 0 {
		pageSize = max(total, 100)
	}
	pages := max(1, (total+pageSize-1)/pageSize)
	var keep []string
	for part := range strings.SplitSeq(rawQuery, "&") {
		k, _, _ := strings.Cut(part, "=")
		if part == "" || strings.EqualFold(k, "pageSize") || strings.EqualFold(k, "page") {
			continue
		}
		keep = append(keep, part)
	}
	href := func(n int) string {
		return base + "/query?" + strings.Join(append(slices.Clone(keep), "pageSize="+strconv.Itoa(pageSize), "page="+strconv.Itoa(n)), "&")
	}
	links := []emLink{{Rel: "First", Href: href(1)}}
	if page > 1 {
		links = append(links, emLink{Rel: "Previous", Href: href(min(page-1, pages))})
	}
	if page < pages {
		links = append(links, emLink{Rel: "Next", Href: href(page + 1)})
	}
	links = append(links, emLink{Rel: "Last", Href: href(pages)})
	return emPagingInfo{Links: links, PageNum: page, PageSize: pageSize, PagesCount: pages}
}
