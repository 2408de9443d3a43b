package simulator

// B&R resource endpoints: JSON models per revision, collection queries
// (filter, order, skip, limit) and the failover POSTs.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// --- JSON models --------------------------------------------------------------

// vbrPagination is PaginationResult. Skip and Limit are null in the 201
// failover answer [C: FailoverSessionsResultExample].
type vbrPagination struct {
	Total int  `json:"total"`
	Count int  `json:"count"`
	Skip  *int `json:"skip"`
	Limit *int `json:"limit"`
}

type vbrCollection[T any] struct {
	Data       []T           `json:"data"`
	Pagination vbrPagination `json:"pagination"`
}

type vbrReplicaJSON struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	JobID          string `json:"jobId"`
	PolicyUniqueID string `json:"policyUniqueId,omitempty"`
	Name           string `json:"name"`
	PlatformName   string `json:"platformName"`
	PlatformID     string `json:"platformId"`
	CreationTime   string `json:"creationTime"`
	State          string `json:"state"`
}

type vbrPointJSON struct {
	PlatformName      string   `json:"platformName"`
	State             string   `json:"state"`
	MalwareStatus     string   `json:"malwareStatus"`
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	PlatformID        string   `json:"platformId"`
	CreationTime      string   `json:"creationTime"`
	ReplicaID         string   `json:"replicaId"`
	AllowedOperations []string `json:"allowedOperations"`
}

type vbrResultJSON struct {
	Result     string `json:"result"`
	Message    string `json:"message"`
	IsCanceled bool   `json:"isCanceled"`
}

var vbrNull = json.RawMessage("null")

// vbrSessionJSON is SessionModel. Unset optional members are sent as null,
// as the product's serializer does (1.2-rev1…1.3-rev1 examples, and the
// 201 example: "endTime": null, "result": null, "resourceId": null …) [C],
// although the OpenAPI documents do not declare them nullable. Members a
// revision does not have are left out (RawMessage nil + omitempty).
type vbrSessionJSON struct {
	SessionType       string          `json:"sessionType"`
	State             string          `json:"state"`
	ID                string          `json:"id"`
	Name              string          `json:"name"`
	JobID             string          `json:"jobId"`
	CreationTime      string          `json:"creationTime"`
	EndTime           *string         `json:"endTime"`
	ProgressPercent   int             `json:"progressPercent"`
	Result            *vbrResultJSON  `json:"result"`
	ResourceID        *string         `json:"resourceId"`
	ResourceReference *string         `json:"resourceReference"`
	ParentSessionID   *string         `json:"parentSessionId"`
	USN               int64           `json:"usn"`
	PlatformName      string          `json:"platformName"`
	PlatformID        string          `json:"platformId"`
	InitiatedBy       *string         `json:"initiatedBy,omitempty"`       // 1.3-rev0+
	RelatedSessionID  json.RawMessage `json:"relatedSessionId,omitempty"`  // 1.3-rev1+
	Algorithm         string          `json:"algorithm,omitempty"`         // 1.3-rev2
	Progress          json.RawMessage `json:"progress,omitempty"`          // 1.3-rev2
	OriginalSessionID string          `json:"originalSessionId,omitempty"` // 1.3-rev2
	RetryInfo         json.RawMessage `json:"retryInfo,omitempty"`         // 1.3-rev2
}

// vbrTime formats like the product: local time with offset, fractions of a
// second when present [C: examples].
func vbrTime(t time.Time) string {
	return t.In(vbrZone).Format("2006-01-02T15:04:05.999999Z07:00")
}

func vbrReplicaToJSON(r *VBRReplica, ver int) vbrReplicaJSON {
	typ := r.Type
	if typ == "Regular" && ver >= vbrV13r2 {
		typ = "Snapshot" // EReplicaType renamed in 1.3-rev2 [C]
	}
	return vbrReplicaJSON{
		Type: typ, ID: r.ID, JobID: r.JobID, PolicyUniqueID: r.PolicyUniqueID, Name: r.Name,
		PlatformName: r.PlatformName, PlatformID: r.PlatformID,
		CreationTime: vbrTime(r.CreationTime), State: r.State,
	}
}

func vbrPointToJSON(p *VBRReplicaPoint) vbrPointJSON {
	return vbrPointJSON{
		PlatformName: p.PlatformName, State: p.State, MalwareStatus: p.MalwareStatus,
		ID: p.ID, Name: p.Name, PlatformID: p.PlatformID, CreationTime: vbrTime(p.CreationTime),
		ReplicaID: p.ReplicaID, AllowedOperations: slices.Clone(p.AllowedOperations),
	}
}

func vbrSessionToJSON(s *vbrSession, ver int) vbrSessionJSON {
	j := vbrSessionJSON{
		SessionType: s.SessionType, State: s.State, ID: s.ID, Name: s.Name, JobID: s.JobID,
		CreationTime: vbrTime(s.CreationTime), ProgressPercent: s.ProgressPercent,
		USN: s.USN, PlatformName: "VMware", PlatformID: vbrZeroUUID,
	}
	if s.EndTime != nil {
		e := vbrTime(*s.EndTime)
		j.EndTime = &e
	}
	if s.Result != "" {
		j.Result = &vbrResultJSON{Result: s.Result, Message: s.Message}
	}
	if s.resourceID != "" {
		j.ResourceID = &s.resourceID
	}
	if ver >= vbrV13r0 {
		by := s.InitiatedBy
		j.InitiatedBy = &by
	}
	if ver >= vbrV13r1 {
		j.RelatedSessionID = vbrNull
	}
	if ver >= vbrV13r2 {
		j.Algorithm = "None"
		if s.SessionType == "ReplicaJob" {
			j.Algorithm = "Increment"
		}
		j.OriginalSessionID = s.ID
		j.Progress, j.RetryInfo = vbrNull, vbrNull
	}
	return j
}

// --- collection queries -------------------------------------------------------

// vbrQuery holds the parsed common parameters. Query parameter names are
// case-sensitive [C]; enum values are matched case-insensitively like
// ASP.NET model binding [I]. Unknown parameters are ignored.
type vbrQuery struct {
	q           url.Values
	skip, limit int
	orderColumn string
	orderAsc    bool
	err         string
}

func parseVBRQuery(q url.Values, columns []string) *vbrQuery {
	v := &vbrQuery{q: q, limit: vbrDefaultLimit, orderAsc: true}
	v.skip = v.int("skip", 0, 0)
	v.limit = v.int("limit", vbrDefaultLimit, 1)
	if c := q.Get("orderColumn"); c != "" {
		v.orderColumn = v.enum("orderColumn", c, columns)
	}
	// [I]: orderAsc defaults to true when an orderColumn is given.
	if s := q.Get("orderAsc"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			v.fail("orderAsc", s)
		}
		v.orderAsc = b
	}
	return v
}

func (v *vbrQuery) fail(name, val string) {
	if v.err == "" {
		v.err = fmt.Sprintf("The value '%s' is not valid for %s.", val, name)
	}
}

// int parses a non-negative integer; skip < 0 and limit < 1 are refused
// (the 1.3-rev2 minimums) [I].
func (v *vbrQuery) int(name string, def, minimum int) int {
	s := v.q.Get(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < minimum || n > 1<<31-1 {
		v.fail(name, s)
		return def
	}
	return n
}

func (v *vbrQuery) enum(name, val string, allowed []string) string {
	for _, a := range allowed {
		if strings.EqualFold(a, val) {
			return a
		}
	}
	v.fail(name, val)
	return ""
}

// list returns the values of a possibly repeated parameter. Since 1.3-rev0
// typeFilter and resultFilter are arrays sent as repeated parameters [C/I];
// comma-separated values are accepted too, and 1.2-rev1 is not stricter [I].
func (v *vbrQuery) list(name string) []string {
	var out []string
	for _, s := range v.q[name] {
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (v *vbrQuery) enums(name string, allowed []string) []string {
	vals := v.list(name)
	for i, s := range vals {
		vals[i] = v.enum(name, s, allowed)
	}
	return vals
}

func (v *vbrQuery) time(name string) (time.Time, bool) {
	s := v.q.Get(name)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		loc := vbrZone // without an offset, the server's local time [I]
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	v.fail(name, s)
	return time.Time{}, false
}

func (v *vbrQuery) uuid(name string) string {
	s := v.q.Get(name)
	if s == "" {
		return ""
	}
	if _, err := uuid.Parse(s); err != nil {
		v.fail(name, s)
		return ""
	}
	return strings.ToLower(s)
}

// vbrNameMatch implements nameFilter: '*' at the start and/or end is a
// wildcard [C]; matching is case-insensitive and without a '*' it is exact
// [I].
func vbrNameMatch(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	p, n := strings.ToLower(pattern), strings.ToLower(name)
	pre, suf := strings.HasPrefix(p, "*"), strings.HasSuffix(p, "*") && len(p) > 1
	core := strings.TrimSuffix(strings.TrimPrefix(p, "*"), "*")
	switch {
	case pre && suf:
		return strings.Contains(n, core)
	case pre:
		return strings.HasSuffix(n, core)
	case suf:
		return strings.HasPrefix(n, core)
	default:
		return n == p
	}
}

type vbrTimeRange struct {
	after, before       time.Time
	hasAfter, hasBefore bool
}

func (v *vbrQuery) timeRange(after, before string) vbrTimeRange {
	var r vbrTimeRange
	r.after, r.hasAfter = v.time(after)
	r.before, r.hasBefore = v.time(before)
	return r
}

func (r vbrTimeRange) match(t time.Time) bool {
	return (!r.hasAfter || t.After(r.after)) && (!r.hasBefore || t.Before(r.before))
}

// vbrPage applies order (stable; the default order is the estate's), then
// skip, then limit [C: filter and sort first, then skip, then limit].
func vbrPage[T any](items []T, v *vbrQuery, less map[string]func(a, b T) int) ([]T, vbrPagination) {
	if f := less[v.orderColumn]; f != nil {
		cmp := func(a, b T) int {
			if v.orderAsc {
				return f(a, b)
			}
			return f(b, a)
		}
		if !slices.IsSortedFunc(items, cmp) { // a stable sort of sorted items changes nothing
			slices.SortStableFunc(items, cmp)
		}
	}
	total := len(items)
	lo := min(v.skip, total)
	hi := min(lo+v.limit, total)
	skip, limit := v.skip, v.limit
	return items[lo:hi], vbrPagination{Total: total, Count: hi - lo, Skip: &skip, Limit: &limit}
}

func (a *vbrAPI) badQuery(w http.ResponseWriter, v *vbrQuery) bool {
	if v.err == "" {
		return false
	}
	// [I]: the specs declare no 400 for the GET collections, but ASP.NET
	// model binding refuses values it cannot bind with 400.
	a.writeError(w, http.StatusBadRequest, v.err)
	return true
}

var (
	vbrReplicaColumns = []string{"Name", "CreationTime", "PlatformId", "JobId", "PolicyTag", "State"}
	vbrPointColumns   = []string{"CreationTime", "PlatformId", "ReplicaId", "Name"}
	vbrSessionStates  = []string{"Stopped", "Starting", "Stopping", "Working", "Pausing", "Resuming", "WaitingTape", "Idle", "Postprocessing", "WaitingRepository", "WaitingSlot"}
	vbrSessionResults = []string{"None", "Success", "Warning", "Failed"}
	vbrMalwareStatus  = []string{"Clean", "Suspicious", "Infected", "Informative"}
)

func (a *vbrAPI) listReplicas(w http.ResponseWriter, r *http.Request, ver int) {
	v := parseVBRQuery(r.URL.Query(), vbrReplicaColumns)
	name := v.q.Get("nameFilter")
	created := v.timeRange("createdAfterFilter", "createdBeforeFilter")
	platformID, jobID := v.uuid("platformIdFilter"), v.uuid("jobIdFilter")
	var state string
	if s := v.q.Get("stateFilter"); s != "" {
		state = v.enum("stateFilter", s, vbrReplicaStates)
	}
	// policyTagFilter was renamed policyUniqueIdFilter in 1.3-rev2 [C].
	policy := v.q.Get("policyTagFilter")
	if ver >= vbrV13r2 {
		policy = v.q.Get("policyUniqueIdFilter")
	}
	if a.badQuery(w, v) {
		return
	}
	a.mu.Lock()
	a.advanceLocked(a.now())
	// Pointers are filtered and sorted, and only the page is copied, under
	// the lock: a list read asks for every page, and copying and sorting
	// the whole collection by value for each made reading it quadratic.
	var items []*VBRReplica
	for _, rp := range a.replicas {
		x := &rp.VBRReplica
		if vbrNameMatch(name, x.Name) && created.match(x.CreationTime) &&
			(platformID == "" || x.PlatformID == platformID) && (jobID == "" || x.JobID == jobID) &&
			(state == "" || x.State == state) && (policy == "" || strings.EqualFold(x.PolicyUniqueID, policy)) {
			items = append(items, x)
		}
	}
	ptrs, pg := vbrPage(items, v, map[string]func(a, b *VBRReplica) int{
		"Name":         func(a, b *VBRReplica) int { return strings.Compare(a.Name, b.Name) },
		"CreationTime": func(a, b *VBRReplica) int { return a.CreationTime.Compare(b.CreationTime) },
		"PlatformId":   func(a, b *VBRReplica) int { return strings.Compare(a.PlatformID, b.PlatformID) },
		"JobId":        func(a, b *VBRReplica) int { return strings.Compare(a.JobID, b.JobID) },
		"PolicyTag":    func(a, b *VBRReplica) int { return strings.Compare(a.PolicyUniqueID, b.PolicyUniqueID) },
		"State":        func(a, b *VBRReplica) int { return strings.Compare(a.State, b.State) },
	})
	page := make([]VBRReplica, len(ptrs))
	for i, x := range ptrs {
		page[i] = *x
	}
	a.mu.Unlock()
	out := vbrCollection[vbrReplicaJSON]{Data: make([]vbrReplicaJSON, len(page)), Pagination: pg}
	for i := range page {
		out.Data[i] = vbrReplicaToJSON(&page[i], ver)
	}
	writeVBRJSON(w, http.StatusOK, out)
}

func (a *vbrAPI) getReplica(w http.ResponseWriter, id string, ver int) {
	a.mu.Lock()
	a.advanceLocked(a.now())
	rp, ok := a.replicaBy[strings.ToLower(id)]
	var x VBRReplica
	if ok {
		x = rp.VBRReplica
	}
	a.mu.Unlock()
	if !ok {
		writeVBRError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Replica %s was not found.", id), id)
		return
	}
	writeVBRJSON(w, http.StatusOK, vbrReplicaToJSON(&x, ver))
}

// listPoints serves /replicaPoints (all) and /replicas/{id}/replicaPoints.
// For an unknown replica id the latter answers 200 with no data: its
// OpenAPI operation declares no 404 [I].
func (a *vbrAPI) listPoints(w http.ResponseWriter, r *http.Request, replicaID string, all bool) {
	v := parseVBRQuery(r.URL.Query(), vbrPointColumns)
	name := v.q.Get("nameFilter")
	created := v.timeRange("createdAfterFilter", "createdBeforeFilter")
	platformID, filterReplica := v.uuid("platformIdFilter"), v.uuid("replicaIdFilter")
	var platform, malware string
	if s := v.q.Get("platformNameFilter"); s != "" {
		platform = v.enum("platformNameFilter", s, []string{"VMware", "HyperV", "CloudDirector", "WindowsPhysical", "LinuxPhysical", "Tape", "CustomPlatform", "EntraID", "UnstructuredData", "Test"})
	}
	if s := v.q.Get("malwareStatusFilter"); s != "" && all {
		malware = v.enum("malwareStatusFilter", s, vbrMalwareStatus)
	}
	if a.badQuery(w, v) {
		return
	}
	match := func(p *VBRReplicaPoint) bool {
		return vbrNameMatch(name, p.Name) && created.match(p.CreationTime) &&
			(platformID == "" || p.PlatformID == platformID) && (filterReplica == "" || p.ReplicaID == filterReplica) &&
			(platform == "" || p.PlatformName == platform) && (malware == "" || p.MalwareStatus == malware)
	}
	order := map[string]func(a, b *VBRReplicaPoint) int{
		"CreationTime": func(a, b *VBRReplicaPoint) int { return a.CreationTime.Compare(b.CreationTime) },
		"PlatformId":   func(a, b *VBRReplicaPoint) int { return strings.Compare(a.PlatformID, b.PlatformID) },
		"ReplicaId":    func(a, b *VBRReplicaPoint) int { return strings.Compare(a.ReplicaID, b.ReplicaID) },
		"Name":         func(a, b *VBRReplicaPoint) int { return strings.Compare(a.Name, b.Name) },
	}
	a.mu.Lock()
	a.advanceLocked(a.now())
	src := a.points
	if !all {
		src = nil
		if rp, ok := a.replicaBy[strings.ToLower(replicaID)]; ok {
			src = rp.points
		}
	} else if f := order[v.orderColumn]; f != nil {
		// Already in the order asked for; filtering keeps it, so vbrPage
		// finds the items sorted.
		src = a.pointsBy(v.orderColumn, v.orderAsc, f)
	}
	// As in listReplicas: pointers sorted, only the page copied.
	var items []*VBRReplicaPoint
	for _, p := range src {
		if match(p) {
			items = append(items, p)
		}
	}
	ptrs, pg := vbrPage(items, v, order)
	page := make([]VBRReplicaPoint, len(ptrs))
	for i, p := range ptrs {
		page[i] = *p
	}
	a.mu.Unlock()
	out := vbrCollection[vbrPointJSON]{Data: make([]vbrPointJSON, len(page)), Pagination: pg}
	for i := range page {
		out.Data[i] = vbrPointToJSON(&page[i])
	}
	writeVBRJSON(w, http.StatusOK, out)
}

// pointsBy returns every point stably sorted by f, ascending or not,
// computed once per order; a.mu held.
func (a *vbrAPI) pointsBy(column string, asc bool, f func(a, b *VBRReplicaPoint) int) []*VBRReplicaPoint {
	key := column + "/desc"
	if asc {
		key = column + "/asc"
	}
	if s, ok := a.pointOrder[key]; ok && len(s) == len(a.points) {
		return s
	}
	s := slices.Clone(a.points)
	slices.SortStableFunc(s, func(x, y *VBRReplicaPoint) int {
		if asc {
			return f(x, y)
		}
		return f(y, x)
	})
	if a.pointOrder == nil {
		a.pointOrder = map[string][]*VBRReplicaPoint{}
	}
	a.pointOrder[key] = s
	return s
}

func (a *vbrAPI) getPoint(w http.ResponseWriter, id string) {
	a.mu.Lock()
	a.advanceLocked(a.now())
	p, ok := a.pointBy[strings.ToLower(id)]
	var j vbrPointJSON
	if ok {
		j = vbrPointToJSON(p)
	}
	a.mu.Unlock()
	if !ok {
		writeVBRError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Restore point %s was not found.", id), id)
		return
	}
	writeVBRJSON(w, http.StatusOK, j)
}

func (a *vbrAPI) listSessions(w http.ResponseWriter, r *http.Request, ver int) {
	cols := []string{"Name", "SessionType", "CreationTime", "EndTime", "State", "Result"}
	states := vbrSessionStates
	if ver >= vbrV13r0 {
		cols = append(cols, "InitiatedBy")
	}
	if ver >= vbrV13r2 {
		states = append(slices.Clone(states), "ActionRequired") // [C]
	}
	v := parseVBRQuery(r.URL.Query(), cols)
	name := v.q.Get("nameFilter")
	created := v.timeRange("createdAfterFilter", "createdBeforeFilter")
	endedR := v.timeRange("endedAfterFilter", "endedBeforeFilter")
	jobID := v.uuid("jobIdFilter")
	var state string
	if s := v.q.Get("stateFilter"); s != "" {
		state = v.enum("stateFilter", s, states)
	}
	results := v.enums("resultFilter", vbrSessionResults)
	// ESessionType has up to 109 values; any identifier is accepted and an
	// unknown one simply matches nothing [I].
	types := v.list("typeFilter")
	if a.badQuery(w, v) {
		return
	}
	a.mu.Lock()
	a.advanceLocked(a.now())
	var items []*vbrSession
	for _, s := range a.sessions {
		res := cmp.Or(s.Result, "None") // a running session has no result yet
		if vbrNameMatch(name, s.Name) && created.match(s.CreationTime) &&
			(!endedR.hasAfter && !endedR.hasBefore || s.EndTime != nil && endedR.match(*s.EndTime)) &&
			(jobID == "" || s.JobID == jobID) && (state == "" || s.State == state) &&
			(len(results) == 0 || slices.Contains(results, res)) &&
			(len(types) == 0 || slices.ContainsFunc(types, func(t string) bool { return strings.EqualFold(t, s.SessionType) })) {
			c := *s
			if s.EndTime != nil {
				e := *s.EndTime
				c.EndTime = &e
			}
			items = append(items, &c)
		}
	}
	a.mu.Unlock()
	endOf := func(s *vbrSession) time.Time {
		if s.EndTime == nil {
			return time.Time{}
		}
		return *s.EndTime
	}
	page, pg := vbrPage(items, v, map[string]func(a, b *vbrSession) int{
		"Name":         func(a, b *vbrSession) int { return strings.Compare(a.Name, b.Name) },
		"SessionType":  func(a, b *vbrSession) int { return strings.Compare(a.SessionType, b.SessionType) },
		"CreationTime": func(a, b *vbrSession) int { return a.CreationTime.Compare(b.CreationTime) },
		"EndTime":      func(a, b *vbrSession) int { return endOf(a).Compare(endOf(b)) },
		"State":        func(a, b *vbrSession) int { return strings.Compare(a.State, b.State) },
		"Result":       func(a, b *vbrSession) int { return strings.Compare(a.Result, b.Result) },
		"InitiatedBy":  func(a, b *vbrSession) int { return strings.Compare(a.InitiatedBy, b.InitiatedBy) },
	})
	out := vbrCollection[vbrSessionJSON]{Data: make([]vbrSessionJSON, len(page)), Pagination: pg}
	for i, s := range page {
		out.Data[i] = vbrSessionToJSON(s, ver)
	}
	writeVBRJSON(w, http.StatusOK, out)
}

func (a *vbrAPI) getSession(w http.ResponseWriter, id string, ver int) {
	a.mu.Lock()
	a.advanceLocked(a.now())
	s, ok := a.sessionBy[strings.ToLower(id)]
	var j vbrSessionJSON
	if ok {
		j = vbrSessionToJSON(s, ver)
	}
	a.mu.Unlock()
	if !ok {
		writeVBRError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Session %s was not found.", id), id)
		return
	}
	writeVBRJSON(w, http.StatusOK, j)
}

// --- failover -------------------------------------------------------------------

type vbrFailoverSpec struct {
	ReplicaPointIDs []string `json:"replicaPointIds"`
	Reason          string   `json:"reason"`
}

// failover serves the four POST /api/v1/failover/{kind}/vSphere/snapshot
// operations [C: §1.5]. The whole request is refused when any point is
// unknown (404 NotFound) or does not allow the operation (400
// UnexpectedContent, [I]); otherwise one session per point is started and
// 201 SessionsResult returns them in state Starting.
func (a *vbrAPI) failover(w http.ResponseWriter, r *http.Request, ver int, k vbrKind) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		a.writeError(w, http.StatusBadRequest, "The request body must be application/json.")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var spec vbrFailoverSpec
	if err == nil {
		err = json.Unmarshal(body, &spec)
	}
	if err != nil {
		a.writeError(w, http.StatusBadRequest, "The request body is malformed or incomplete.")
		return
	}
	if len(spec.ReplicaPointIDs) == 0 {
		a.writeError(w, http.StatusBadRequest, "The replicaPointIds field is required and must contain at least one restore point ID.")
		return
	}
	ids := make([]string, len(spec.ReplicaPointIDs))
	for i, id := range spec.ReplicaPointIDs {
		if _, err := uuid.Parse(id); err != nil {
			a.writeError(w, http.StatusBadRequest, fmt.Sprintf("The value '%s' is not a valid restore point ID.", id))
			return
		}
		ids[i] = strings.ToLower(id)
	}
	now := a.now()
	a.mu.Lock()
	a.advanceLocked(now)
	points := make([]*VBRReplicaPoint, len(ids))
	for i, id := range ids {
		p, ok := a.pointBy[id]
		if !ok {
			a.mu.Unlock()
			writeVBRError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Restore point %s was not found.", id), id)
			return
		}
		if !slices.Contains(p.AllowedOperations, k.operation) {
			a.mu.Unlock()
			writeVBRError(w, http.StatusBadRequest, "UnexpectedContent",
				fmt.Sprintf("The %s operation is not allowed for restore point %s of %s: the replica is in the %s state.", k.operation, id, p.Name, p.State), id)
			return
		}
		points[i] = p
	}
	sessions := make([]vbrSessionJSON, len(points))
	call := VBRFailoverCall{Kind: k.path, PointIDs: ids, Reason: spec.Reason, Time: now}
	started := make([]*vbrSession, len(points))
	for i, p := range points {
		started[i] = a.startLocked(k, p, now)
	}
	for i, s := range started {
		a.setReplicaStateLocked(s.replica, "Processing")
		sessions[i] = vbrSessionToJSON(s, ver)
		call.SessionIDs = append(call.SessionIDs, s.ID)
	}
	a.calls = append(a.calls, call)
	a.mu.Unlock()
	writeVBRJSON(w, http.StatusCreated, vbrCollection[vbrSessionJSON]{
		Data:       sessions,
		Pagination: vbrPagination{Total: len(sessions), Count: len(sessions)},
	})
}
