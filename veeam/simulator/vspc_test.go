package simulator

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

type vtEnvelope[T any] struct {
	Data T
	Meta *struct {
		PagingInfo struct{ Total, Count, Offset int }
	}
	Errors []vtError
}

type vtError struct {
	Message         string
	Type            string
	Code            int
	ParameterName   string
	RetryAfter      int
	FailedJSONPatch *struct {
		Value any
		Path  string
		Op    string
	}
}

type vtPlan struct {
	InstanceUID, OriginalUID, BackupServerUID, Name, Type, Status string
	TenantUID                                                     *string
	ObjectsCount                                                  int
	PreFailoverCommand, PostFailoverCommand                       *string
	PreFailoverScriptEnabled, PostFailoverScriptEnabled           *bool
	LastSession                                                   *struct {
		InstanceUID, Status string
		EndTime             *time.Time
		Message             *string
	}
}

type vtObject struct {
	InstanceUID, PlanUID, Name, HostName, FolderName, Path, BackupServerUID string
	RestoreSession                                                          *struct {
		InstanceUID, BackupStatus string
		RestorePointUID           *string
		RestorePointDateTime      *time.Time
		StartDateTime             time.Time
		EndDateTime               *time.Time
	}
}

func vtQuery(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func vtStart(t *testing.T, o Options) (*Simulator, *vtClient) {
	t.Helper()
	s := startSim(t, o)
	c := newVT(t, s)
	c.login()
	return s, c
}

func (c *vtClient) plan(uid string, hdr ...string) vtPlan {
	c.t.Helper()
	r := c.do("GET", vtPlansPath+"/"+uid, nil, "", hdr...)
	if r.status != 200 {
		c.t.Fatalf("get plan: %d %s", r.status, r.body)
	}
	var e vtEnvelope[vtPlan]
	r.json(c.t, &e)
	return e.Data
}

func (c *vtClient) planObjects(uid string) []vtObject {
	c.t.Helper()
	r := c.do("GET", vtPlansPath+"/"+uid+"/objects", nil, "")
	var e vtEnvelope[[]vtObject]
	r.json(c.t, &e)
	return e.Data
}

func vtErr(t *testing.T, r vtResp, status int) vtError {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var e vtEnvelope[any]
	r.json(t, &e)
	if len(e.Errors) != 1 {
		t.Fatalf("errors = %s", r.body)
	}
	return e.Errors[0]
}

func TestVSPCToken(t *testing.T) {
	clock := newCoreClock()
	s := startSim(t, Options{Now: clock.Now, Username: "alice", Password: "pw"})
	c := newVT(t, s)
	pw := func(user, pass string) url.Values {
		return url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}
	}

	for _, tc := range []struct {
		name string
		form url.Values
		err  string
	}{
		{"bad password", pw("alice", "nope"), "invalid_request"},
		{"bad user", pw("bob", "pw"), "invalid_request"},
		{"no grant", url.Values{"username": {"alice"}}, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"client_credentials"}}, "unsupported_grant_type"},
		{"bad refresh", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, "invalid_grant"},
	} {
		r := c.tokenReq(tc.form)
		var raw map[string]any
		r.json(t, &raw)
		if r.status != 400 || raw["error"] != tc.err || raw["error_description"] == "" {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
		if _, ok := raw["error_uri"]; !ok {
			t.Errorf("%s: no error_uri in %s", tc.name, r.body)
		}
	}

	r := c.tokenReq(pw("alice", "pw"))
	var raw map[string]any
	r.json(t, &raw)
	if _, enveloped := raw["data"]; r.status != 200 || enveloped || raw["expires_in"] != float64(3600) || raw["token_type"] != "bearer" {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	var tok vtToken
	r.json(t, &tok)
	c.token = tok.AccessToken
	if r := c.do("GET", "/about", nil, ""); r.status != 200 {
		t.Fatalf("with token: %d", r.status)
	}

	// Refresh tokens are single-use.
	refresh := func(rt string) vtResp {
		return c.tokenReq(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	r = refresh(tok.RefreshToken)
	var tok2 vtToken
	r.json(t, &tok2)
	if r.status != 200 || tok2.AccessToken == "" || tok2.AccessToken == tok.AccessToken || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if r := refresh(tok.RefreshToken); r.status != 400 || !strings.Contains(string(r.body), "invalid_grant") {
		t.Errorf("refresh token reused: %d %s", r.status, r.body)
	}
	// The old access token stays valid until it expires.
	if r := c.do("GET", "/about", nil, ""); r.status != 200 {
		t.Errorf("old token after refresh: %d", r.status)
	}

	// Access tokens live one hour.
	clock.Advance(59 * time.Minute)
	if r := c.do("GET", "/about", nil, ""); r.status != 200 {
		t.Errorf("after 59m: %d", r.status)
	}
	clock.Advance(2 * time.Minute)
	e := vtErr(t, c.do("GET", "/about", nil, ""), 401)
	if e.Type != "security" || e.Code != 401 {
		t.Errorf("expired token error %+v", e)
	}
	c.token = tok2.AccessToken
	if r := c.do("GET", "/about", nil, ""); r.status != 401 {
		t.Errorf("refreshed token issued at the same time: %d", r.status)
	}

	// Unknown and missing bearers.
	c.token = "garbage"
	vtErr(t, c.do("GET", vtPlansPath, nil, ""), 401)
	c.token = ""
	vtErr(t, c.do("GET", vtPlansPath, nil, ""), 401)

	// The API key is a bearer too, and survives ExpireAuth.
	c.token = DefaultVSPCAPIKey
	if r := c.do("GET", vtPlansPath, nil, ""); r.status != 200 {
		t.Errorf("API key: %d %s", r.status, r.body)
	}
	s.SetFault(APIVSPC, Fault{ExpireAuth: true})
	if r := c.do("GET", vtPlansPath, nil, ""); r.status != 200 {
		t.Errorf("API key after ExpireAuth: %d", r.status)
	}
	// ExpireAuth also kills refresh tokens.
	if r := refresh(tok2.RefreshToken); r.status != 400 {
		t.Errorf("refresh after ExpireAuth: %d", r.status)
	}
	// GET /token is not allowed.
	c.token = ""
	if r := c.do("GET", "/token", nil, ""); r.status != 405 {
		t.Errorf("GET /token: %d", r.status)
	}
}

func TestVSPCAPIKeyOption(t *testing.T) {
	s := startSim(t, Options{VSPCAPIKey: "k1"})
	c := newVT(t, s)
	c.token = "k1"
	if r := c.do("GET", "/about", nil, ""); r.status != 200 {
		t.Errorf("custom key: %d", r.status)
	}
	c.token = DefaultVSPCAPIKey
	if r := c.do("GET", "/about", nil, ""); r.status != 401 {
		t.Errorf("default key with custom key set: %d", r.status)
	}
}

func TestVSPCPaging(t *testing.T) {
	s, c := vtStart(t, Options{VSPC: VSPCOptions{Plans: 23, ObjectsPerPlan: 3}})
	est := s.Estate().VSPC
	var uids []string
	var counts []int
	for off := 0; off < 30; off += 5 {
		r := c.do("GET", vtPlansPath, vtQuery("limit", "5", "offset", fmt.Sprint(off)), "")
		var e vtEnvelope[[]vtPlan]
		r.json(t, &e)
		if e.Meta == nil || e.Meta.PagingInfo.Total != 23 || e.Meta.PagingInfo.Offset != off || e.Meta.PagingInfo.Count != len(e.Data) {
			t.Fatalf("offset %d: meta %s", off, r.body[len(r.body)-80:])
		}
		if !strings.HasSuffix(string(r.body), `"errors":null}`) {
			t.Errorf("envelope %s", r.body[len(r.body)-40:])
		}
		counts = append(counts, len(e.Data))
		for _, p := range e.Data {
			uids = append(uids, p.InstanceUID)
		}
	}
	if want := []int{5, 5, 5, 5, 3, 0}; !equalInts(counts, want) {
		t.Errorf("page sizes %v, want %v", counts, want)
	}
	for i, p := range est.Plans {
		if uids[i] != p.InstanceUID {
			t.Fatalf("plan %d = %s, estate %s: order not stable", i, uids[i], p.InstanceUID)
		}
	}
	// Default limit is 100.
	r := c.do("GET", vtPlansPath+"/objects", nil, "")
	var e vtEnvelope[[]vtObject]
	r.json(t, &e)
	if e.Meta.PagingInfo.Total != 69 || len(e.Data) != 69 {
		t.Errorf("objects: total %d count %d", e.Meta.PagingInfo.Total, len(e.Data))
	}
	s2, c2 := vtStart(t, Options{VSPC: VSPCOptions{Plans: 150, ObjectsPerPlan: 1}})
	_ = s2
	r = c2.do("GET", vtPlansPath, nil, "")
	var e2 vtEnvelope[[]vtPlan]
	r.json(t, &e2)
	if len(e2.Data) != 100 || e2.Meta.PagingInfo.Total != 150 {
		t.Errorf("default limit: %d of %d", len(e2.Data), e2.Meta.PagingInfo.Total)
	}
	r = c2.do("GET", vtPlansPath, vtQuery("limit", "500"), "")
	r.json(t, &e2)
	if len(e2.Data) != 150 {
		t.Errorf("limit 500: %d", len(e2.Data))
	}

	for _, tc := range []struct{ k, v, param string }{
		{"limit", "0", "limit"}, {"limit", "501", "limit"}, {"limit", "-1", "limit"}, {"limit", "x", "limit"},
		{"offset", "-1", "offset"}, {"offset", "1.5", "offset"},
		{"filter", "{", "filter"}, {"sort", "[1]", "sort"}, {"select", `[{"propertyPath":"nope"}]`, "select"},
		{"filter", `[{"property":"nope","operation":"equals","value":1}]`, "filter"},
		{"filter", `[{"property":"name","operation":"frobnicate","value":1}]`, "filter"},
		{"filter", `[{"property":"objectsCount","operation":"equals","value":"x"}]`, "filter"},
		{"filter", `[{"property":"name","operation":"and"}]`, "filter"},
	} {
		e := vtErr(t, c.do("GET", vtPlansPath, vtQuery(tc.k, tc.v), ""), 400)
		if e.ParameterName != tc.param || e.Type != "logical" || e.Code != 400 || e.Message == "" {
			t.Errorf("%s=%s: %+v", tc.k, tc.v, e)
		}
	}
	// Parameter names bind case-insensitively.
	r = c.do("GET", vtPlansPath, vtQuery("Limit", "2"), "")
	var e3 vtEnvelope[[]vtPlan]
	r.json(t, &e3)
	if len(e3.Data) != 2 {
		t.Errorf("Limit=2: %d", len(e3.Data))
	}
}

func TestVSPCFilterSortSelect(t *testing.T) {
	s, c := vtStart(t, Options{Seed: 7, VSPC: VSPCOptions{Plans: 60, ObjectsPerPlan: 4}})
	est := s.Estate().VSPC
	count := func(f func(VSPCPlan) bool) int {
		n := 0
		for _, p := range est.Plans {
			if f(p) {
				n++
			}
		}
		return n
	}
	countObj := func(f func(VSPCPlanObject) bool) int {
		n := 0
		for _, o := range est.Objects {
			if f(o) {
				n++
			}
		}
		return n
	}
	listPlans := func(filter string) []vtPlan {
		t.Helper()
		r := c.do("GET", vtPlansPath, vtQuery("filter", filter, "limit", "500"), "")
		if r.status != 200 {
			t.Fatalf("filter %s: %d %s", filter, r.status, r.body)
		}
		var e vtEnvelope[[]vtPlan]
		r.json(t, &e)
		if e.Meta.PagingInfo.Total != len(e.Data) {
			t.Fatalf("total %d, count %d", e.Meta.PagingInfo.Total, len(e.Data))
		}
		return e.Data
	}
	server := est.Plans[0].BackupServerUID
	first := est.Plans[0]
	for _, tc := range []struct {
		name, filter string
		want         int
	}{
		{"equals", `[{"property":"status","operation":"equals","value":"Ready"}]`, count(func(p VSPCPlan) bool { return p.Status == "Ready" })},
		{"notEquals", `[{"property":"status","operation":"notEquals","value":"Ready"}]`, count(func(p VSPCPlan) bool { return p.Status != "Ready" })},
		{"ordinal is case-sensitive", `[{"property":"status","operation":"equals","value":"ready"}]`, 0},
		{"ignorecase", `[{"property":"status","operation":"equals","value":"ready","collation":"ignorecase"}]`, count(func(p VSPCPlan) bool { return p.Status == "Ready" })},
		{"uid any case", `[{"property":"backupServerUid","operation":"equals","value":"` + strings.ToUpper(server) + `"}]`, count(func(p VSPCPlan) bool { return p.BackupServerUID == server })},
		{"contains", `[{"property":"name","operation":"contains","value":"sql cluster","collation":"ignorecase"}]`, count(func(p VSPCPlan) bool { return strings.Contains(p.Name, "SQL cluster") })},
		{"in", `[{"property":"status","operation":"in","value":["Failed","UndoFailed"]}]`, count(func(p VSPCPlan) bool { return p.Status == "Failed" || p.Status == "UndoFailed" })},
		{"nested", `[{"property":"lastSession.status","operation":"equals","value":"Failed"}]`, count(func(p VSPCPlan) bool { return p.LastSession != nil && p.LastSession.Status == "Failed" })},
		{"null object", `[{"property":"lastSession","operation":"equals","value":null}]`, count(func(p VSPCPlan) bool { return p.LastSession == nil })},
		{"and array", `[{"property":"status","operation":"equals","value":"Ready"},{"property":"type","operation":"equals","value":"Local"}]`,
			count(func(p VSPCPlan) bool { return p.Status == "Ready" && p.Type == "Local" })},
		{"or", `[{"operation":"or","items":[{"property":"status","operation":"equals","value":"Success"},{"property":"type","operation":"equals","value":"Cloud"}]}]`,
			count(func(p VSPCPlan) bool { return p.Status == "Success" || p.Type == "Cloud" })},
		{"not", `[{"operation":"not","items":[{"property":"status","operation":"equals","value":"Ready"}]}]`,
			count(func(p VSPCPlan) bool { return p.Status != "Ready" })},
		{"and nested", `[{"operation":"and","items":[{"property":"instanceUid","operation":"equals","value":"` + first.InstanceUID + `"},{"property":"name","operation":"equals","value":"` + first.Name + `"}]}]`, 1},
		{"objectsCount", `[{"property":"objectsCount","operation":"greaterThanOrEqual","value":4}]`, 60},
		{"lessThan time", `[{"property":"lastSession.endTime","operation":"lessThan","value":"2100-01-01T00:00:00Z"}]`,
			count(func(p VSPCPlan) bool { return p.LastSession != nil && p.LastSession.EndTime != nil })},
	} {
		if got := len(listPlans(tc.filter)); got != tc.want {
			t.Errorf("%s: %d plans, want %d", tc.name, got, tc.want)
		}
	}
	if n := count(func(p VSPCPlan) bool { return p.Status == "Ready" }); n == 0 || n == len(est.Plans) {
		t.Errorf("status mix: %d Ready of %d", n, len(est.Plans))
	}

	// Nested object properties.
	r := c.do("GET", vtPlansPath+"/objects", vtQuery("limit", "500", "filter", `[{"property":"restoreSession.backupStatus","operation":"equals","value":"Failed"}]`), "")
	var oe vtEnvelope[[]vtObject]
	r.json(t, &oe)
	want := countObj(func(o VSPCPlanObject) bool {
		return o.RestoreSession != nil && o.RestoreSession.BackupStatus == "Failed"
	})
	if len(oe.Data) != want || want == 0 {
		t.Errorf("objects with Failed restore sessions: %d, want %d (>0)", len(oe.Data), want)
	}
	for _, o := range oe.Data {
		if o.RestoreSession.BackupStatus != "Failed" {
			t.Errorf("object %s: %s", o.Name, o.RestoreSession.BackupStatus)
		}
	}

	// Sort, with a filter and paging.
	r = c.do("GET", vtPlansPath, vtQuery("limit", "500", "sort", `[{"property":"name","direction":"descending"}]`), "")
	var pe vtEnvelope[[]vtPlan]
	r.json(t, &pe)
	names := make([]string, len(pe.Data))
	for i, p := range pe.Data {
		names[i] = p.Name
	}
	if !slices.IsSortedFunc(names, func(a, b string) int { return strings.Compare(b, a) }) || len(names) != 60 {
		t.Errorf("not sorted descending: %v", names)
	}
	r = c.do("GET", vtPlansPath, vtQuery("limit", "3", "offset", "2", "sort", `[{"property":"status"},{"property":"name"}]`,
		"filter", `[{"property":"type","operation":"equals","value":"Local"}]`), "")
	r.json(t, &pe)
	var local []VSPCPlan
	for _, p := range est.Plans {
		if p.Type == "Local" {
			local = append(local, p)
		}
	}
	slices.SortStableFunc(local, func(a, b VSPCPlan) int {
		if c := strings.Compare(a.Status, b.Status); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	if pe.Meta.PagingInfo.Total != len(local) || len(pe.Data) != 3 {
		t.Fatalf("sorted page: total %d count %d", pe.Meta.PagingInfo.Total, len(pe.Data))
	}
	for i, p := range pe.Data {
		if p.InstanceUID != local[2+i].InstanceUID {
			t.Errorf("sorted page item %d = %s, want %s", i, p.Name, local[2+i].Name)
		}
	}

	// Select keeps only the chosen properties, nested ones inside their parent.
	r = c.do("GET", vtPlansPath, vtQuery("limit", "1", "select", `[{"propertyPath":"name"},{"propertyPath":"lastSession.status"}]`), "")
	var sel vtEnvelope[[]map[string]any]
	r.json(t, &sel)
	item := sel.Data[0]
	if _, ok := item["name"]; !ok || len(item) != 2 {
		t.Errorf("select: %v", item)
	}
	if ls, ok := item["lastSession"].(map[string]any); ok && len(ls) != 1 {
		t.Errorf("select lastSession.status: %v", item["lastSession"])
	}
	r = c.do("GET", vtPlansPath+"/"+first.InstanceUID, vtQuery("select", `[{"propertyPath":"status"}]`), "")
	var one vtEnvelope[map[string]any]
	r.json(t, &one)
	if len(one.Data) != 1 || one.Data["status"] != first.Status {
		t.Errorf("select on get: %s", r.body)
	}
	r = c.do("GET", vtPlansPath+"/objects", vtQuery("limit", "50", "select", `[{"propertyPath":"restoreSession"}]`), "")
	var objSel vtEnvelope[[]map[string]any]
	r.json(t, &objSel)
	var withSession int
	for _, it := range objSel.Data {
		if len(it) != 1 {
			t.Errorf("select restoreSession: %v", it)
		}
		if rs, ok := it["restoreSession"].(map[string]any); ok {
			withSession++
			if len(rs) != 6 {
				t.Errorf("select restoreSession: %v", rs)
			}
		}
	}
	if withSession == 0 {
		t.Errorf("select restoreSession: none has a session: %s", r.body)
	}
}

func TestVSPCEndpoints(t *testing.T) {
	s, c := vtStart(t, Options{VSPC: VSPCOptions{Plans: 20, ObjectsPerPlan: 2, BackupServers: 2}})
	est := s.Estate().VSPC
	p := est.Plans[0]

	var about vtEnvelope[struct{ ServerVersion, InstallationID string }]
	c.do("GET", "/about", nil, "").json(t, &about)
	if about.Data.ServerVersion == "" || about.Data.InstallationID == "" {
		t.Errorf("about %+v", about)
	}

	got := c.plan(p.InstanceUID)
	if got.InstanceUID != p.InstanceUID || got.Name != p.Name || got.Status != p.Status || got.ObjectsCount != 2 || got.OriginalUID != p.OriginalUID {
		t.Errorf("get plan %+v, estate %+v", got, p)
	}
	// UIDs in paths are matched in any case.
	if got := c.plan(strings.ToUpper(p.InstanceUID)); got.InstanceUID != p.InstanceUID {
		t.Errorf("upper-case uid: %+v", got)
	}
	r := c.do("GET", vtPlansPath+"/"+p.InstanceUID, nil, "")
	if r.header.Get("Content-Type") != "application/json; charset=utf-8" || !strings.HasSuffix(string(r.body), `"meta":null,"errors":null}`) {
		t.Errorf("single envelope: %v %s", r.header, r.body)
	}

	const missing = "0b7e0f52-4a15-4fd9-a2f3-5d5e2b9b0001"
	e := vtErr(t, c.do("GET", vtPlansPath+"/"+missing, nil, ""), 404)
	if !strings.Contains(e.Message, missing) || e.Type != "logical" {
		t.Errorf("404 %+v", e)
	}
	for _, path := range []string{"/" + missing + "/objects", "/" + missing + "/start", "/" + missing + "/undo"} {
		method := "GET"
		if !strings.HasSuffix(path, "objects") {
			method = "POST"
		}
		vtErr(t, c.do(method, vtPlansPath+path, nil, ""), 404)
	}
	if e := vtErr(t, c.do("GET", vtPlansPath+"/not-a-uid", nil, ""), 400); e.ParameterName != "planUid" {
		t.Errorf("bad uid %+v", e)
	}
	vtErr(t, c.do("DELETE", vtPlansPath+"/"+p.InstanceUID, nil, ""), 405)
	vtErr(t, c.do("GET", vtPlansPath+"/"+p.InstanceUID+"/start", nil, ""), 405)

	// Unknown routes get ASP.NET's versioning error, not the envelope.
	r = c.do("GET", "/infrastructure/backupServers/failoverplans/"+p.InstanceUID+"/frobnicate", nil, "")
	var unsup struct {
		Error struct{ Code, Message string }
	}
	r.json(t, &unsup)
	if r.status != 400 || unsup.Error.Code != "UnsupportedApiVersion" || !strings.Contains(unsup.Error.Message, "/frobnicate") {
		t.Errorf("unsupported route: %d %s", r.status, r.body)
	}

	// Per server and per plan.
	servers := map[string]int{}
	serverObjs := map[string]int{}
	for _, p := range est.Plans {
		servers[p.BackupServerUID]++
	}
	for _, o := range est.Objects {
		serverObjs[o.BackupServerUID]++
	}
	if len(servers) < 2 {
		t.Fatalf("plans on %d servers", len(servers))
	}
	for srv, n := range servers {
		var pe vtEnvelope[[]vtPlan]
		c.do("GET", "/infrastructure/backupServers/"+srv+"/failoverplans", nil, "").json(t, &pe)
		if pe.Meta.PagingInfo.Total != n {
			t.Errorf("server %s: %d plans, want %d", srv, pe.Meta.PagingInfo.Total, n)
		}
		for _, p := range pe.Data {
			if p.BackupServerUID != srv {
				t.Errorf("plan of server %s in list of %s", p.BackupServerUID, srv)
			}
		}
		var oe vtEnvelope[[]vtObject]
		c.do("GET", "/infrastructure/backupServers/"+strings.ToUpper(srv)+"/failoverplans/objects", nil, "").json(t, &oe)
		if oe.Meta.PagingInfo.Total != serverObjs[srv] {
			t.Errorf("server %s: %d objects, want %d", srv, oe.Meta.PagingInfo.Total, serverObjs[srv])
		}
	}
	if e := vtErr(t, c.do("GET", "/infrastructure/backupServers/"+missing+"/failoverplans", nil, ""), 404); !strings.Contains(e.Message, missing) {
		t.Errorf("unknown server: %+v", e)
	}
	objs := c.planObjects(p.InstanceUID)
	if len(objs) != 2 || objs[0].PlanUID != p.InstanceUID || objs[0].InstanceUID != est.Objects[0].InstanceUID {
		t.Errorf("plan objects %+v", objs)
	}
	o := est.Objects[0]
	if objs[0].Name != o.Name || objs[0].HostName != o.HostName || objs[0].Path != o.Path || objs[0].FolderName != o.FolderName {
		t.Errorf("object %+v, estate %+v", objs[0], o)
	}

	// Estate mix: upper-case UIDs exist, restore points of various ages.
	upper := 0
	for _, p := range est.Plans {
		if p.InstanceUID == strings.ToUpper(p.InstanceUID) {
			upper++
		}
	}
	if upper == 0 {
		t.Error("no upper-case plan UIDs")
	}
}

func TestVSPCStartUndo(t *testing.T) {
	clock := newCoreClock()
	s, c := vtStart(t, Options{Now: clock.Now, ActionDuration: time.Minute})
	est := s.Estate().VSPC
	var ready []string
	for _, p := range est.Plans {
		if p.Status == "Ready" {
			ready = append(ready, p.InstanceUID)
		}
	}
	uid := ready[0]
	startPath := vtPlansPath + "/" + uid + "/start"
	undoPath := vtPlansPath + "/" + uid + "/undo"

	// Undo is refused from Ready.
	if e := vtErr(t, c.do("POST", undoPath, nil, ""), 409); e.Type != "logical" || !strings.Contains(e.Message, "Ready") {
		t.Errorf("undo from Ready: %+v", e)
	}
	if e := vtErr(t, c.do("POST", startPath, vtQuery("test", "maybe"), ""), 400); e.ParameterName != "test" {
		t.Errorf("bad test: %+v", e)
	}
	if e := vtErr(t, c.do("POST", startPath, vtQuery("dateTime", "yesterday"), ""), 400); e.ParameterName != "dateTime" {
		t.Errorf("bad dateTime: %+v", e)
	}
	r := c.do("POST", startPath, vtQuery("test", "false"), "")
	if r.status != 200 || string(r.body) != `{"data":{},"errors":[]}` {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	p := c.plan(uid)
	if p.Status != "InProgress" || p.LastSession == nil || p.LastSession.Status != "None" || p.LastSession.EndTime != nil {
		t.Fatalf("after start: %+v %+v", p, p.LastSession)
	}
	sess := p.LastSession.InstanceUID
	for _, o := range c.planObjects(uid) {
		if o.RestoreSession == nil || o.RestoreSession.BackupStatus != "Running" || o.RestoreSession.EndDateTime != nil ||
			!o.RestoreSession.StartDateTime.Equal(clock.Now()) {
			t.Errorf("object after start: %+v", o.RestoreSession)
		}
	}
	vtErr(t, c.do("POST", startPath, nil, ""), 409)
	vtErr(t, c.do("POST", undoPath, nil, ""), 409)

	clock.Advance(time.Minute)
	p = c.plan(uid)
	if p.Status != "Success" || p.LastSession.Status != "Success" || p.LastSession.InstanceUID != sess ||
		p.LastSession.EndTime == nil || !p.LastSession.EndTime.Equal(clock.Now()) {
		t.Fatalf("after the action: %+v %+v", p, p.LastSession)
	}
	for _, o := range c.planObjects(uid) {
		if o.RestoreSession.BackupStatus != "Success" || o.RestoreSession.EndDateTime == nil {
			t.Errorf("object after the action: %+v", o.RestoreSession)
		}
	}
	if n := s.VSPCPlanStarts(uid); n != 1 {
		t.Errorf("starts = %d", n)
	}

	// Undo back to Ready.
	if r := c.do("POST", undoPath, nil, ""); r.status != 200 || string(r.body) != `{"data":{},"errors":[]}` {
		t.Fatalf("undo: %d %s", r.status, r.body)
	}
	if p := c.plan(uid); p.Status != "InUndoProgress" {
		t.Fatalf("after undo: %s", p.Status)
	}
	clock.Advance(time.Minute)
	if p := c.plan(uid); p.Status != "Ready" || p.LastSession.Status != "Success" || p.LastSession.InstanceUID == sess {
		t.Fatalf("after the undo: %+v", p)
	}
	if n := s.VSPCPlanUndos(uid); n != 1 {
		t.Errorf("undos = %d", n)
	}

	// Failed outcomes: start -> Failed, undo -> UndoFailed, undo again -> Ready.
	s.SetVSPCActionOutcome("Failed")
	old := c.planObjects(uid)[0].RestoreSession.RestorePointDateTime
	at := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	c.do("POST", startPath, vtQuery("dateTime", at.Format(time.RFC3339), "test", "true"), "")
	clock.Advance(time.Minute)
	p = c.plan(uid)
	if p.Status != "Failed" || p.LastSession.Status != "Failed" || p.LastSession.Message == nil {
		t.Fatalf("failed start: %+v", p)
	}
	objs := c.planObjects(uid)
	if objs[0].RestoreSession.BackupStatus != "Failed" {
		t.Errorf("first object after failed start: %+v", objs[0].RestoreSession)
	}
	if rp := objs[0].RestoreSession.RestorePointDateTime; rp == nil || !rp.Before(at) || (old != nil && rp.Equal(*old)) {
		t.Errorf("restore point with dateTime %v: %v (was %v)", at, rp, old)
	}
	c.do("POST", undoPath, nil, "")
	clock.Advance(time.Minute)
	if p := c.plan(uid); p.Status != "UndoFailed" {
		t.Fatalf("failed undo: %s", p.Status)
	}
	s.SetVSPCActionOutcome("Warning")
	c.do("POST", undoPath, nil, "")
	clock.Advance(time.Minute)
	if p := c.plan(uid); p.Status != "Ready" {
		t.Fatalf("undo retry: %s", p.Status)
	}
	c.do("POST", startPath, nil, "")
	clock.Advance(time.Minute)
	if p := c.plan(uid); p.Status != "Completed" || p.LastSession.Status != "Warning" {
		t.Fatalf("warning start: %+v", p)
	}
	if s.VSPCPlanStarts(uid) != 3 || s.VSPCPlanUndos(uid) != 3 {
		t.Errorf("counts %d %d", s.VSPCPlanStarts(uid), s.VSPCPlanUndos(uid))
	}

	// The estate follows.
	for _, ep := range s.Estate().VSPC.Plans {
		if ep.InstanceUID == uid && ep.Status != "Completed" {
			t.Errorf("estate status %s", ep.Status)
		}
	}

	// SetVSPCPlanStatus forces a status and ends a running action.
	c.do("POST", undoPath, nil, "")
	if err := s.SetVSPCPlanStatus(uid, "Ready"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	c.login()
	if p := c.plan(uid); p.Status != "Ready" {
		t.Errorf("after SetVSPCPlanStatus: %s", p.Status)
	}
	if err := s.SetVSPCPlanStatus(uid, "Bogus"); err == nil {
		t.Error("bogus status accepted")
	}
	if err := s.SetVSPCPlanStatus("0b7e0f52-4a15-4fd9-a2f3-5d5e2b9b0001", "Ready"); err == nil {
		t.Error("unknown plan accepted")
	}
}

func TestVSPCRequestIDReplay(t *testing.T) {
	clock := newCoreClock()
	s, c := vtStart(t, Options{Now: clock.Now, ActionDuration: time.Second})
	var uid string
	for _, p := range s.Estate().VSPC.Plans {
		if p.Status == "Ready" {
			uid = p.InstanceUID
			break
		}
	}
	const id = "6f1f4c8e-6c9b-4a43-9a5a-0d3e8f1b2c01"
	start := func(reqID string) vtResp {
		return c.do("POST", vtPlansPath+"/"+uid+"/start", nil, "", "X-Request-id", reqID)
	}
	r1 := start(id)
	clock.Advance(2 * time.Second) // the start is over: a second start would be refused
	r2 := start(strings.ToUpper(id))
	if r1.status != 200 || r2.status != 200 || string(r1.body) != string(r2.body) {
		t.Fatalf("replay: %d %s / %d %s", r1.status, r1.body, r2.status, r2.body)
	}
	if n := s.VSPCPlanStarts(uid); n != 1 {
		t.Fatalf("started %d times", n)
	}
	// The action is tracked under the id.
	var info vtEnvelope[struct {
		ID, InitiatorUID, ActionName, Status string
		QueryParameters                      map[string][]string
	}]
	c.do("GET", "/asyncActions/"+id, nil, "").json(t, &info)
	if info.Data.ID != id || info.Data.Status != "succeed" || info.Data.ActionName != "StartBackupFailoverPlan" || info.Data.InitiatorUID == "" {
		t.Errorf("async action %+v", info.Data)
	}
	// The same id on another path is another request.
	if r := c.do("POST", vtPlansPath+"/"+uid+"/undo", nil, "", "X-Request-id", id); r.status != 200 {
		t.Errorf("undo with the same id: %d %s", r.status, r.body)
	}
	clock.Advance(2 * time.Second)
	// After five minutes the id is forgotten: the start runs again.
	clock.Advance(5 * time.Minute)
	if r := start(id); r.status != 200 || s.VSPCPlanStarts(uid) != 2 {
		t.Errorf("after 5m: %d, %d starts", r.status, s.VSPCPlanStarts(uid))
	}
	// Errors are replayed as well, without running again.
	clock.Advance(2 * time.Second)
	if err := s.SetVSPCPlanStatus(uid, "Ready"); err != nil {
		t.Fatal(err)
	}
	const id2 = "6f1f4c8e-6c9b-4a43-9a5a-0d3e8f1b2c02"
	undo := func() vtResp { return c.do("POST", vtPlansPath+"/"+uid+"/undo", nil, "", "X-Request-id", id2) }
	vtErr(t, undo(), 409)
	if err := s.SetVSPCPlanStatus(uid, "Success"); err != nil {
		t.Fatal(err)
	}
	vtErr(t, undo(), 409)
	if n := s.VSPCPlanUndos(uid); n != 1 {
		t.Errorf("undos = %d, want 1", n)
	}
	var info2 vtEnvelope[struct{ Status string }]
	c.do("GET", "/asyncActions/"+id2, nil, "").json(t, &info2)
	if info2.Data.Status != "failed" {
		t.Errorf("refused action status %q", info2.Data.Status)
	}
	if e := vtErr(t, start("not-a-uuid"), 400); e.ParameterName != "X-Request-id" {
		t.Errorf("bad id %+v", e)
	}
}

func TestVSPCAsyncActions(t *testing.T) {
	clock := newCoreClock()
	s, c := vtStart(t, Options{Now: clock.Now, ActionDuration: 30 * time.Second})
	var uid string
	for _, p := range s.Estate().VSPC.Plans {
		if p.Status == "Ready" {
			uid = p.InstanceUID
			break
		}
	}
	const id = "0f8b6d3a-1c1e-4f7e-9d7a-3b2a1c0d9e01"
	r := c.do("POST", vtPlansPath+"/"+uid+"/start", vtQuery("test", "true"), "", "X-Request-id", id)
	if r.status != 202 || r.header.Get("Location") != s.VSPCURL()+"/api/v3/asyncActions/"+id {
		t.Fatalf("long start: %d %v", r.status, r.header)
	}
	type info struct {
		ID, ActionName, Status string
		QueryParameters        map[string][]string
		RequestBody            *string
	}
	var e vtEnvelope[info]
	c.do("GET", "/asyncActions/"+id, nil, "").json(t, &e)
	if e.Data.Status != "running" || e.Data.QueryParameters["test"][0] != "true" || e.Data.RequestBody != nil {
		t.Errorf("running action %+v", e.Data)
	}
	var list vtEnvelope[[]info]
	c.do("GET", "/asyncActions", nil, "").json(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != id {
		t.Errorf("active actions %+v", list.Data)
	}
	vtErr(t, c.do("GET", "/asyncActions/"+id+"/result", nil, ""), 409)
	// Replayed while running: 202 again, no second start.
	if r := c.do("POST", vtPlansPath+"/"+uid+"/start", nil, "", "X-Request-id", id); r.status != 202 || s.VSPCPlanStarts(uid) != 1 {
		t.Errorf("replay of 202: %d, %d starts", r.status, s.VSPCPlanStarts(uid))
	}
	clock.Advance(30 * time.Second)
	c.do("GET", "/asyncActions/"+id, nil, "").json(t, &e)
	if e.Data.Status != "succeed" {
		t.Errorf("finished action %+v", e.Data)
	}
	if r := c.do("GET", "/asyncActions/"+id+"/result", nil, ""); r.status != 200 || string(r.body) != `{"data":{},"errors":[]}` {
		t.Errorf("result: %d %s", r.status, r.body)
	}
	if p := c.plan(uid); p.Status != "Success" {
		t.Errorf("plan %s", p.Status)
	}
	// A failing undo fails its action.
	s.SetVSPCActionOutcome("Failed")
	const id2 = "0f8b6d3a-1c1e-4f7e-9d7a-3b2a1c0d9e02"
	if r := c.do("POST", vtPlansPath+"/"+uid+"/undo", nil, "", "X-Request-id", id2); r.status != 202 {
		t.Fatalf("long undo: %d", r.status)
	}
	clock.Advance(30 * time.Second)
	c.do("GET", "/asyncActions/"+id2, nil, "").json(t, &e)
	if e.Data.Status != "failed" || e.Data.ActionName != "UndoBackupFailoverPlan" {
		t.Errorf("failed action %+v", e.Data)
	}
	vtErr(t, c.do("GET", "/asyncActions/"+id2+"/result", nil, ""), 520)
	// Without X-Request-id a long action is still a plain 200.
	if err := s.SetVSPCPlanStatus(uid, "Ready"); err != nil {
		t.Fatal(err)
	}
	if r := c.do("POST", vtPlansPath+"/"+uid+"/start", nil, ""); r.status != 200 {
		t.Errorf("start without id: %d", r.status)
	}
	vtErr(t, c.do("GET", "/asyncActions/0f8b6d3a-1c1e-4f7e-9d7a-3b2a1c0d9eff", nil, ""), 404)
	var cfg vtEnvelope[struct{ ResultRetentionTime int }]
	c.do("GET", "/asyncActions/config", nil, "").json(t, &cfg)
	if cfg.Data.ResultRetentionTime != 5 {
		t.Errorf("config %+v", cfg.Data)
	}
}

func TestVSPCPatch(t *testing.T) {
	s, c := vtStart(t, Options{})
	uid := s.Estate().VSPC.Plans[0].InstanceUID
	path := vtPlansPath + "/" + uid
	r := c.do("PATCH", path, nil, `[
		{"op":"replace","path":"/preFailoverCommand","value":"C:\\pre.cmd"},
		{"op":"add","path":"/PREFAILOVERSCRIPTENABLED","value":true},
		{"op":"replace","path":"/name","value":"Renamed"},
		{"op":"remove","path":"/postFailoverCommand"},
		{"op":"test","path":"/name","value":"Renamed"}]`)
	var e vtEnvelope[vtPlan]
	r.json(t, &e)
	if r.status != 200 || e.Data.Name != "Renamed" || *e.Data.PreFailoverCommand != `C:\pre.cmd` || !*e.Data.PreFailoverScriptEnabled || e.Data.PostFailoverCommand != nil {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if p := c.plan(uid); p.Name != "Renamed" {
		t.Errorf("patch not kept: %+v", p)
	}
	for _, tc := range []struct{ name, body string }{
		{"read-only", `[{"op":"replace","path":"/status","value":"Ready"}]`},
		{"wrong type", `[{"op":"replace","path":"/preFailoverScriptEnabled","value":"yes"}]`},
		{"remove name", `[{"op":"remove","path":"/name"}]`},
		{"test fails", `[{"op":"test","path":"/name","value":"Other"}]`},
		{"move", `[{"op":"move","from":"/name","path":"/preFailoverCommand"}]`},
	} {
		e := vtErr(t, c.do("PATCH", path, nil, tc.body), 400)
		if e.Code != 1001 || e.FailedJSONPatch == nil || e.FailedJSONPatch.Op == "" || e.FailedJSONPatch.Path == "" {
			t.Errorf("%s: %+v", tc.name, e)
		}
	}
	// All or nothing.
	vtErr(t, c.do("PATCH", path, nil, `[{"op":"replace","path":"/name","value":"X"},{"op":"replace","path":"/status","value":"Y"}]`), 400)
	if p := c.plan(uid); p.Name != "Renamed" {
		t.Errorf("partial patch applied: %s", p.Name)
	}
	vtErr(t, c.do("PATCH", path, nil, `{"op":"replace"}`), 400)
	vtErr(t, c.do("PATCH", path, nil, `[]`, "Content-Type", "text/plain"), 415)
	// PATCH with X-Request-id is replayed.
	const id = "5b0c4b1e-2b7a-4d7e-8e61-0d4c2a9b7f01"
	c.do("PATCH", path, nil, `[{"op":"replace","path":"/name","value":"A"}]`, "X-Request-id", id)
	c.do("PATCH", path, nil, `[{"op":"replace","path":"/name","value":"B"}]`, "X-Request-id", id)
	if p := c.plan(uid); p.Name != "A" {
		t.Errorf("replayed patch ran again: %s", p.Name)
	}
}

func TestVSPCClientVersion(t *testing.T) {
	s, c := vtStart(t, Options{})
	var uid string
	for _, p := range s.Estate().VSPC.Plans {
		if p.LastSession != nil && p.Status == "Ready" {
			uid = p.InstanceUID
			break
		}
	}
	for _, tc := range []struct {
		version string
		last    bool
	}{{"", true}, {"3.6.1", true}, {"3.7", true}, {"3.6", false}, {"3.5.1", false}, {"junk", true}} {
		r := c.do("GET", vtPlansPath+"/"+uid, nil, "", "X-Client-Version", tc.version)
		var e vtEnvelope[map[string]json.RawMessage]
		r.json(t, &e)
		if _, ok := e.Data["lastSession"]; ok != tc.last {
			t.Errorf("version %q: lastSession present %v, want %v", tc.version, ok, tc.last)
		}
	}
	// 3.5.1 calls the start parameter date-time.
	if e := vtErr(t, c.do("POST", vtPlansPath+"/"+uid+"/start", vtQuery("date-time", "x"), "", "X-Client-Version", "3.5.1"), 400); e.ParameterName != "date-time" {
		t.Errorf("3.5.1 date-time: %+v", e)
	}
	if r := c.do("POST", vtPlansPath+"/"+uid+"/start", vtQuery("date-time", "x"), "", "X-Client-Version", "3.6.1"); r.status != 200 {
		t.Errorf("3.6.1 ignores date-time: %d %s", r.status, r.body)
	}
}

func TestVSPCLargeEstate(t *testing.T) {
	if testing.Short() {
		t.Skip("large estate")
	}
	begin := time.Now()
	s, c := vtStart(t, Options{VSPC: VSPCOptions{Plans: 10000, ObjectsPerPlan: 20, BackupServers: 25}})
	built := time.Since(begin)
	pageStart := time.Now()
	var e vtEnvelope[[]vtObject]
	for _, off := range []string{"0", "100000", "199500"} {
		c.do("GET", vtPlansPath+"/objects", vtQuery("limit", "500", "offset", off), "").json(t, &e)
		if e.Meta.PagingInfo.Total != 200000 || len(e.Data) != 500 {
			t.Fatalf("offset %s: total %d count %d", off, e.Meta.PagingInfo.Total, len(e.Data))
		}
	}
	paged := time.Since(pageStart)
	filterStart := time.Now()
	c.do("GET", vtPlansPath+"/objects", vtQuery("limit", "500", "filter",
		`[{"property":"restoreSession.backupStatus","operation":"equals","value":"Failed"}]`), "").json(t, &e)
	if e.Meta.PagingInfo.Total == 0 {
		t.Error("no failed objects in 200,000")
	}
	var pe vtEnvelope[[]vtPlan]
	c.do("GET", vtPlansPath, vtQuery("limit", "500", "sort", `[{"property":"name","direction":"descending"}]`), "").json(t, &pe)
	if pe.Meta.PagingInfo.Total != 10000 {
		t.Errorf("plans total %d", pe.Meta.PagingInfo.Total)
	}
	filtered := time.Since(filterStart)
	estStart := time.Now()
	est := s.Estate().VSPC
	if len(est.Plans) != 10000 || len(est.Objects) != 200000 {
		t.Errorf("estate %d plans %d objects", len(est.Plans), len(est.Objects))
	}
	t.Logf("build %v, 3 pages %v, filter+sort %v, Estate %v", built, paged, filtered, time.Since(estStart))
	if built > 10*time.Second || paged > 2*time.Second {
		t.Errorf("too slow: build %v, paging %v", built, paged)
	}
}

// The generated estate is internally consistent and has a realistic spread.
func TestVSPCEstateShape(t *testing.T) {
	clock := newCoreClock()
	s := startSim(t, Options{Seed: 3, Now: clock.Now, VSPC: VSPCOptions{Plans: 200, ObjectsPerPlan: 5}})
	est := s.Estate().VSPC
	now := clock.Now()
	plans := map[string]VSPCPlan{}
	statuses := map[string]int{}
	for _, p := range est.Plans {
		plans[p.InstanceUID] = p
		statuses[p.Status]++
		if (p.Type == "Local") != (p.TenantUID == "") {
			t.Errorf("plan %s: type %s tenant %q", p.Name, p.Type, p.TenantUID)
		}
	}
	for _, st := range []string{"Ready", "InProgress", "InUndoProgress", "Completed", "Success", "Failed", "UndoFailed"} {
		if statuses[st] == 0 {
			t.Errorf("no %s plans: %v", st, statuses)
		}
	}
	var minAge, maxAge time.Duration = 1 << 62, 0
	for _, o := range est.Objects {
		rs := o.RestoreSession
		if rs == nil {
			continue
		}
		p := plans[o.PlanUID]
		if rs.RestorePointDateTime != nil {
			age := now.Sub(*rs.RestorePointDateTime)
			minAge, maxAge = min(minAge, age), max(maxAge, age)
			if rs.RestorePointDateTime.After(rs.StartDateTime) {
				t.Errorf("%s: restore point after the session start", o.Name)
			}
		}
		if rs.StartDateTime.After(now) || (rs.EndDateTime != nil && (rs.EndDateTime.Before(rs.StartDateTime) || rs.EndDateTime.After(now))) {
			t.Errorf("%s: session %v..%v", o.Name, rs.StartDateTime, rs.EndDateTime)
		}
		if (rs.BackupStatus == "Running") != (rs.EndDateTime == nil) {
			t.Errorf("%s: %s with end %v", o.Name, rs.BackupStatus, rs.EndDateTime)
		}
		if p.Status != "Ready" && p.LastSession != nil && p.LastSession.EndTime != nil && rs.EndDateTime.After(*p.LastSession.EndTime) {
			t.Errorf("%s: restore session ends after its plan's session", o.Name)
		}
	}
	if minAge > time.Hour || maxAge < 24*time.Hour {
		t.Errorf("restore point ages %v..%v, want minutes to days", minAge, maxAge)
	}
}
