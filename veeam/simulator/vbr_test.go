package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// vbrClock is a settable clock for Options.Now.
type vbrClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *vbrClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *vbrClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// vbrTC is a tiny test client for the simulator's B&R API.
type vbrTC struct {
	t       *testing.T
	base    string
	version string
	token   string
}

type vbrResp struct {
	status int
	header http.Header
	body   []byte
}

func (r vbrResp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func (r vbrResp) errorCode(t *testing.T) string {
	t.Helper()
	var e struct{ ErrorCode, Message string }
	r.json(t, &e)
	if e.Message == "" {
		t.Errorf("error without message: %s", r.body)
	}
	return e.ErrorCode
}

func startVBRTest(t *testing.T, o Options) (*Simulator, *vbrTC, *vbrClock) {
	t.Helper()
	clk := &vbrClock{t: time.Date(2025, 6, 10, 10, 0, 0, 0, time.UTC)}
	if o.Now == nil {
		o.Now = clk.Now
	}
	if o.VBR.Replicas == 0 {
		o.VBR = VBROptions{Replicas: 12, PointsPerReplica: 3}
	}
	o.VSPC = VSPCOptions{Plans: 1, ObjectsPerPlan: 1, BackupServers: 1}
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, &vbrTC{t: t, base: s.VBRURL(), version: "1.3-rev1"}, clk
}

func (c *vbrTC) do(method, path string, body string, hdr ...string) vbrResp {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.version != "" {
		req.Header.Set("x-api-version", c.version)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		if strings.HasPrefix(path, "/api/oauth2/") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return vbrResp{res.StatusCode, res.Header, b}
}

type vbrTokenResp struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Issued       string `json:".issued"`
	Expires      string `json:".expires"`
}

func (c *vbrTC) login() vbrTokenResp {
	c.t.Helper()
	r := c.do("POST", "/api/oauth2/token", "grant_type=password&username="+DefaultUsername+"&password="+DefaultPassword)
	if r.status != 200 {
		c.t.Fatalf("login: %d %s", r.status, r.body)
	}
	var tok vbrTokenResp
	r.json(c.t, &tok)
	c.token = tok.AccessToken
	return tok
}

func (c *vbrTC) get(path string, v any) {
	c.t.Helper()
	r := c.do("GET", path, "")
	if r.status != 200 {
		c.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	r.json(c.t, v)
}

type vbrPageResp[T any] struct {
	Data       []T `json:"data"`
	Pagination struct {
		Total, Count int
		Skip, Limit  *int
	} `json:"pagination"`
}

type vbrPointResp struct {
	ID, Name, ReplicaID, State string
	AllowedOperations          []string
}

type vbrSessionResp struct {
	ID, Name, SessionType, State, JobID string
	ProgressPercent                     int
	EndTime                             *string
	Result                              *struct{ Result, Message string }
}

func TestVBRVersionHeader(t *testing.T) {
	_, c, _ := startVBRTest(t, Options{})
	for _, tc := range []struct {
		version, path string
		status        int
		code          string
	}{
		{"", "/api/oauth2/token", 400, "UnexpectedContent"},
		{"", "/api/v1/replicas", 400, "UnexpectedContent"},
		{"1.1-rev0", "/api/oauth2/token", 400, "NotImplemented"},
		{"1.0-rev1", "/api/v1/sessions", 400, "NotImplemented"},
		{"1.2-rev1", "/api/oauth2/token", 200, ""},
		{"1.3-rev0", "/api/oauth2/token", 200, ""},
		{"1.3-rev1", "/api/oauth2/token", 200, ""},
		{"1.3-rev2", "/api/oauth2/token", 200, ""},
	} {
		c.version = tc.version
		method := "GET"
		body := ""
		if strings.HasPrefix(tc.path, "/api/oauth2") {
			method, body = "POST", "grant_type=password&username=monitor&password=sim-password"
		}
		r := c.do(method, tc.path, body)
		if r.status != tc.status {
			t.Errorf("%q %s: status %d, want %d: %s", tc.version, tc.path, r.status, tc.status, r.body)
			continue
		}
		if tc.code != "" {
			if got := r.errorCode(t); got != tc.code {
				t.Errorf("%q: errorCode %s, want %s", tc.version, got, tc.code)
			}
			if !strings.Contains(string(r.body), "v1.3-rev2") {
				t.Errorf("message does not list the supported versions: %s", r.body)
			}
		}
		for h, want := range map[string]string{
			"Content-Type": "application/json; charset=utf-8", "Cache-Control": "private",
			"X-Frame-Options": "SAMEORIGIN", "X-Content-Type-Options": "nosniff",
			"Strict-Transport-Security": "max-age=31536000", "X-XSS-Protection": "1; mode=block",
		} {
			if got := r.header.Get(h); got != want {
				t.Errorf("header %s = %q, want %q", h, got, want)
			}
		}
	}
}

func TestVBRAuth(t *testing.T) {
	s, c, clk := startVBRTest(t, Options{})
	token := func(form string) vbrResp { return c.do("POST", "/api/oauth2/token", form) }

	r := token("grant_type=password&username=monitor&password=wrong")
	if r.status != 401 || string(r.body) != `{"errorCode":"AccessDenied","message":"Authentication failed","resourceId":null}` {
		t.Errorf("bad password: %d %s", r.status, r.body)
	}
	for _, form := range []string{"", "grant_type=password&username=monitor", "grant_type=authorization_code&code=x"} {
		if r := token(form); r.status != 400 {
			t.Errorf("%q: status %d", form, r.status)
		}
	}
	// grant_type is case-insensitive (1.3-rev1+ specs capitalise it).
	r = token("grant_type=Password&username=monitor&password=sim-password")
	var tok vbrTokenResp
	r.json(t, &tok)
	if r.status != 200 || tok.TokenType != "bearer" || tok.ExpiresIn != 900 || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	iss, err1 := time.Parse(time.RFC3339, tok.Issued)
	exp, err2 := time.Parse(time.RFC3339, tok.Expires)
	if err1 != nil || err2 != nil || exp.Sub(iss) != 900*time.Second || !iss.Equal(clk.Now()) {
		t.Errorf(".issued %s .expires %s", tok.Issued, tok.Expires)
	}
	if r := c.do("POST", "/api/oauth2/token", "grant_type=password&username=monitor&password=sim-password", "Content-Type", "application/json"); r.status != 400 {
		t.Errorf("JSON token request: %d", r.status)
	}

	check := func(name, bearer string, status int, code string) {
		t.Helper()
		c.token = bearer
		r := c.do("GET", "/api/v1/replicas?limit=1", "")
		if r.status != status {
			t.Fatalf("%s: status %d, want %d: %s", name, r.status, status, r.body)
		}
		if code != "" && r.errorCode(t) != code {
			t.Errorf("%s: body %s, want %s", name, r.body, code)
		}
	}
	check("valid", tok.AccessToken, 200, "")
	check("missing", "", 401, "AccessDenied")
	check("unknown", "nope", 401, "InvalidToken")
	clk.Add(900 * time.Second)
	check("expired", tok.AccessToken, 401, "ExpiredToken")

	// Refresh tokens work once.
	refresh := "grant_type=refresh_token&refresh_token=" + url.QueryEscape(tok.RefreshToken)
	r = token(refresh)
	var tok2 vbrTokenResp
	r.json(t, &tok2)
	if r.status != 200 || tok2.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if r := token(refresh); r.status != 400 || r.errorCode(t) != "InvalidToken" {
		t.Errorf("refresh reuse: %d %s", r.status, r.body)
	}
	check("refreshed", tok2.AccessToken, 200, "")

	// Logout kills both tokens.
	if r := c.do("POST", "/api/oauth2/logout", ""); r.status != 200 || string(r.body) != "{}" {
		t.Errorf("logout: %d %s", r.status, r.body)
	}
	check("after logout", tok2.AccessToken, 401, "ExpiredToken")
	if r := token("grant_type=refresh_token&refresh_token=" + url.QueryEscape(tok2.RefreshToken)); r.status != 400 {
		t.Errorf("refresh after logout: %d", r.status)
	}

	// expireAuth (the core's ExpireAuth fault) expires access and refresh tokens.
	tok3 := c.login()
	s.vbr.expireAuth()
	check("after expireAuth", tok3.AccessToken, 401, "ExpiredToken")
	if r := token("grant_type=refresh_token&refresh_token=" + url.QueryEscape(tok3.RefreshToken)); r.status != 400 {
		t.Errorf("refresh after expireAuth: %d", r.status)
	}
	c.token = tok3.AccessToken
	if r := c.do("GET", "/api/v1/replicas", ""); r.status != 401 {
		t.Errorf("status %d", r.status)
	}
	if r := c.do("DELETE", "/api/v1/replicas", ""); r.status != 405 {
		t.Errorf("DELETE: %d", r.status)
	}
	if r := c.do("GET", "/api/v1/nothing", ""); r.status != 404 || r.errorCode(t) != "NotFound" {
		t.Errorf("unknown path: %d %s", r.status, r.body)
	}
}

func TestVBRPagingAndFilters(t *testing.T) {
	s, c, _ := startVBRTest(t, Options{VBR: VBROptions{Replicas: 250, PointsPerReplica: 2}})
	c.login()
	est := s.Estate().VBR

	// Default limit 200, then skip.
	var p1, p2 vbrPageResp[struct{ ID, Name, State, Type string }]
	c.get("/api/v1/replicas", &p1)
	c.get("/api/v1/replicas?skip=200", &p2)
	if p1.Pagination.Total != 250 || p1.Pagination.Count != 200 || *p1.Pagination.Limit != 200 || *p1.Pagination.Skip != 0 ||
		p2.Pagination.Count != 50 || *p2.Pagination.Skip != 200 {
		t.Fatalf("pagination %+v %+v", p1.Pagination, p2.Pagination)
	}
	var ids []string
	for _, r := range append(p1.Data, p2.Data...) {
		ids = append(ids, r.ID)
	}
	for i, r := range est.Replicas {
		if ids[i] != r.ID {
			t.Fatalf("replica %d: %s, want %s", i, ids[i], r.ID)
		}
	}
	for _, q := range []string{"skip=-1", "limit=0", "limit=x", "orderColumn=Bogus", "stateFilter=Bogus", "orderAsc=maybe", "createdAfterFilter=yesterday"} {
		if r := c.do("GET", "/api/v1/replicas?"+q, ""); r.status != 400 || r.errorCode(t) != "UnexpectedContent" {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}

	count := func(path string) int {
		t.Helper()
		var p vbrPageResp[json.RawMessage]
		c.get(path, &p)
		return p.Pagination.Total
	}
	want := func(pred func(VBRReplica) bool) (n int) {
		for _, r := range est.Replicas {
			if pred(r) {
				n++
			}
		}
		return n
	}
	name := est.Replicas[7].Name
	for q, w := range map[string]int{
		"nameFilter=" + name:                       1,
		"nameFilter=" + strings.ToUpper(name):      1,
		"nameFilter=" + name[:3] + "*":             want(func(r VBRReplica) bool { return strings.HasPrefix(r.Name, name[:3]) }),
		"nameFilter=*_replica":                     250,
		"nameFilter=*" + name[1:len(name)-2] + "*": want(func(r VBRReplica) bool { return strings.Contains(r.Name, name[1:len(name)-2]) }),
		"stateFilter=Failover":                     want(func(r VBRReplica) bool { return r.State == "Failover" }),
		"stateFilter=ready":                        want(func(r VBRReplica) bool { return r.State == "Ready" }),
		"jobIdFilter=" + est.Replicas[0].JobID:     want(func(r VBRReplica) bool { return r.JobID == est.Replicas[0].JobID }),
		"createdAfterFilter=2100-01-01T00:00:00Z":  0,
		"createdBeforeFilter=2100-01-01T00:00:00Z": 250,
	} {
		if got := count("/api/v1/replicas?" + q); got != w {
			t.Errorf("replicas?%s: %d, want %d", q, got, w)
		}
	}
	rid := est.Replicas[3].ID
	if n := count("/api/v1/replicaPoints?replicaIdFilter=" + rid); n != 2 {
		t.Errorf("replicaIdFilter: %d", n)
	}
	if n := count("/api/v1/replicas/" + rid + "/replicaPoints"); n != 2 {
		t.Errorf("points of replica: %d", n)
	}
	if n := count("/api/v1/replicas/00000000-0000-4000-8000-000000000000/replicaPoints"); n != 0 {
		t.Errorf("points of unknown replica: %d", n)
	}
	if n := count("/api/v1/replicaPoints"); n != 500 {
		t.Errorf("all points: %d", n)
	}

	// Ordering.
	var byName vbrPageResp[struct{ Name string }]
	c.get("/api/v1/replicas?orderColumn=Name&orderAsc=false&limit=250", &byName)
	if !slices.IsSortedFunc(byName.Data, func(a, b struct{ Name string }) int { return strings.Compare(b.Name, a.Name) }) {
		t.Error("replicas not sorted by name descending")
	}

	// Sessions: typeFilter repeated (array since 1.3-rev0), resultFilter, stateFilter.
	nSess := func(pred func(VBRSession) bool) (n int) {
		for _, s := range est.Sessions {
			if pred(s) {
				n++
			}
		}
		return n
	}
	for q, w := range map[string]int{
		"typeFilter=ReplicaJob":                          nSess(func(s VBRSession) bool { return s.SessionType == "ReplicaJob" }),
		"typeFilter=Failover&typeFilter=PlannedFailover": nSess(func(s VBRSession) bool { return s.SessionType == "Failover" || s.SessionType == "PlannedFailover" }),
		"resultFilter=Failed":                            nSess(func(s VBRSession) bool { return s.Result == "Failed" }),
		"stateFilter=Working":                            nSess(func(s VBRSession) bool { return s.State == "Working" }),
	} {
		if got := count("/api/v1/sessions?" + q); got != w || w == 0 {
			t.Errorf("sessions?%s: %d, want %d (>0)", q, got, w)
		}
	}
	c.version = "1.2-rev1"
	for _, q := range []string{"orderColumn=InitiatedBy", "stateFilter=ActionRequired"} {
		if r := c.do("GET", "/api/v1/sessions?"+q, ""); r.status != 400 {
			t.Errorf("1.2-rev1 %s: %d", q, r.status)
		}
	}
	c.version = "1.3-rev2"
	if n := count("/api/v1/sessions?stateFilter=ActionRequired&orderColumn=InitiatedBy"); n != 0 {
		t.Errorf("ActionRequired: %d", n)
	}
}

// TestVBRModelsPerVersion checks the revision-dependent members.
func TestVBRModelsPerVersion(t *testing.T) {
	_, c, _ := startVBRTest(t, Options{})
	c.login()
	for _, tc := range []struct {
		version, replicaType string
		initiatedBy, related bool
	}{
		{"1.2-rev1", "Regular", false, false},
		{"1.3-rev0", "Regular", true, false},
		{"1.3-rev1", "Regular", true, true},
		{"1.3-rev2", "Snapshot", true, true},
	} {
		c.version = tc.version
		var reps vbrPageResp[struct{ Type string }]
		c.get("/api/v1/replicas?limit=1", &reps)
		if reps.Data[0].Type != tc.replicaType {
			t.Errorf("%s: replica type %s", tc.version, reps.Data[0].Type)
		}
		var sess vbrPageResp[map[string]any]
		c.get("/api/v1/sessions?limit=1", &sess)
		_, ib := sess.Data[0]["initiatedBy"]
		_, rel := sess.Data[0]["relatedSessionId"]
		_, alg := sess.Data[0]["algorithm"]
		if ib != tc.initiatedBy || rel != tc.related || alg != (tc.version == "1.3-rev2") || sess.Data[0]["jobId"] == nil {
			t.Errorf("%s: session members %v", tc.version, sess.Data[0])
		}
	}
}

func TestVBRFailoverStateMachine(t *testing.T) {
	const d = 10 * time.Second
	for _, tc := range []struct {
		name    string
		from    string
		kind    string
		outcome string
		want    string // replica state afterwards
		wantOps string // one operation the points allow afterwards
	}{
		{"failoverNow", "Ready", "failoverNow", "Success", "Failover", vbrOpUndoFailover},
		{"planned warning", "Ready", "plannedFailover", "Warning", "Failover", vbrOpPermanentFailover},
		{"failoverNow failed", "Ready", "failoverNow", "Failed", "FailedFailover", vbrOpUndoFailover},
		{"permanent", "Failover", "permanentFailover", "Success", "PermanentFailover", ""},
		{"permanent failed", "Failover", "permanentFailover", "Failed", "Failover", vbrOpUndoFailover},
		{"undo", "Failover", "undoFailover", "Success", "Ready", vbrOpFailover},
		{"undo failed failover", "FailedFailover", "undoFailover", "Success", "Ready", vbrOpPlannedFailover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, clk := startVBRTest(t, Options{ActionDuration: d})
			c.login()
			rep := s.Estate().VBR.Replicas[0]
			if err := s.SetVBRReplicaState(rep.ID, tc.from); err != nil {
				t.Fatal(err)
			}
			s.SetVBRSessionOutcome(tc.outcome)
			var pts vbrPageResp[vbrPointResp]
			c.get("/api/v1/replicas/"+rep.ID+"/replicaPoints", &pts)
			pt := pts.Data[len(pts.Data)-1] // any point of the replica will do
			r := c.do("POST", "/api/v1/failover/"+tc.kind+"/vSphere/snapshot",
				`{"replicaPointIds":["`+strings.ToUpper(pt.ID)+`"],"reason":"test"}`)
			if r.status != 201 {
				t.Fatalf("POST: %d %s", r.status, r.body)
			}
			var res vbrPageResp[vbrSessionResp]
			r.json(t, &res)
			ss := res.Data[0]
			if len(res.Data) != 1 || ss.State != "Starting" || ss.Result != nil || ss.EndTime != nil || ss.ProgressPercent != 0 ||
				ss.Name != pt.Name || res.Pagination.Skip != nil || res.Pagination.Total != 1 {
				t.Fatalf("201 body %s", r.body)
			}
			// While running the replica is Processing and allows nothing.
			var p vbrPointResp
			c.get("/api/v1/replicaPoints/"+pt.ID, &p)
			if p.State != "Processing" || len(p.AllowedOperations) != 0 {
				t.Errorf("running point %+v", p)
			}
			clk.Add(d / 2)
			var got vbrSessionResp
			c.get("/api/v1/sessions/"+ss.ID, &got)
			if got.State != "Working" || got.ProgressPercent != 50 || got.Result != nil {
				t.Errorf("mid-way session %+v", got)
			}
			clk.Add(d / 2)
			c.get("/api/v1/sessions/"+ss.ID, &got)
			if got.State != "Stopped" || got.ProgressPercent != 100 || got.Result == nil || got.Result.Result != tc.outcome || got.EndTime == nil {
				t.Errorf("final session %+v", got)
			}
			var rr struct{ State string }
			c.get("/api/v1/replicas/"+rep.ID, &rr)
			c.get("/api/v1/replicaPoints/"+pts.Data[0].ID, &p)
			if rr.State != tc.want || p.State != tc.want {
				t.Errorf("replica %s, point %s, want %s", rr.State, p.State, tc.want)
			}
			if tc.wantOps == "" && len(p.AllowedOperations) != 0 || tc.wantOps != "" && !slices.Contains(p.AllowedOperations, tc.wantOps) {
				t.Errorf("allowedOperations %v, want %q", p.AllowedOperations, tc.wantOps)
			}
			calls := s.VBRFailoverCalls()
			if len(calls) != 1 || calls[0].Kind != tc.kind || calls[0].Reason != "test" || calls[0].PointIDs[0] != pt.ID ||
				calls[0].SessionIDs[0] != ss.ID || s.VBRFailovers(pt.ID) != 1 {
				t.Errorf("calls %+v", calls)
			}
			est := s.Estate().VBR
			if i := slices.IndexFunc(est.Sessions, func(x VBRSession) bool { return x.ID == ss.ID }); i < 0 || est.Sessions[i].Result != tc.outcome {
				t.Errorf("estate session missing or wrong")
			}
		})
	}
}

func TestVBRFailoverErrors(t *testing.T) {
	s, c, _ := startVBRTest(t, Options{ActionDuration: time.Hour})
	c.login()
	rep := s.Estate().VBR.Replicas[0]
	if err := s.SetVBRReplicaState(rep.ID, "Ready"); err != nil {
		t.Fatal(err)
	}
	if s.SetVBRReplicaState(rep.ID, "Bogus") == nil || s.SetVBRReplicaState("nope", "Ready") == nil {
		t.Error("SetVBRReplicaState accepted nonsense")
	}
	var pts vbrPageResp[vbrPointResp]
	c.get("/api/v1/replicas/"+rep.ID+"/replicaPoints", &pts)
	pt := pts.Data[0].ID
	for _, tc := range []struct {
		name, kind, body string
		status           int
		code             string
	}{
		{"malformed", "failoverNow", `{"replicaPointIds":`, 400, "UnexpectedContent"},
		{"empty", "failoverNow", `{"replicaPointIds":[]}`, 400, "UnexpectedContent"},
		{"missing", "failoverNow", `{"reason":"x"}`, 400, "UnexpectedContent"},
		{"not a uuid", "failoverNow", `{"replicaPointIds":["abc"]}`, 400, "UnexpectedContent"},
		{"unknown point", "failoverNow", `{"replicaPointIds":["` + pt + `","00000000-0000-4000-8000-000000000000"]}`, 404, "NotFound"},
		{"undo on Ready", "undoFailover", `{"replicaPointIds":["` + pt + `"]}`, 400, "UnexpectedContent"},
		{"permanent on Ready", "permanentFailover", `{"replicaPointIds":["` + pt + `"]}`, 400, "UnexpectedContent"},
		{"unknown kind", "instantFailover", `{"replicaPointIds":["` + pt + `"]}`, 404, "NotFound"},
		{"ok", "failoverNow", `{"replicaPointIds":["` + pt + `"]}`, 201, ""},
		{"again while running", "failoverNow", `{"replicaPointIds":["` + pt + `"]}`, 400, "UnexpectedContent"},
	} {
		r := c.do("POST", "/api/v1/failover/"+tc.kind+"/vSphere/snapshot", tc.body)
		if r.status != tc.status || tc.code != "" && r.errorCode(t) != tc.code {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	if n := len(s.VBRFailoverCalls()); n != 1 {
		t.Errorf("%d calls recorded, want 1", n)
	}
	for _, id := range []string{"/api/v1/sessions/", "/api/v1/replicas/", "/api/v1/replicaPoints/"} {
		r := c.do("GET", id+"00000000-0000-4000-8000-000000000000", "")
		if r.status != 404 || r.errorCode(t) != "NotFound" || !strings.Contains(string(r.body), `"resourceId":"00000000-0000-4000-8000-000000000000"`) {
			t.Errorf("%s: %d %s", id, r.status, r.body)
		}
	}
}

func TestVBRActionHang(t *testing.T) {
	s, c, clk := startVBRTest(t, Options{ActionDuration: time.Second})
	c.login()
	rep := s.Estate().VBR.Replicas[1]
	_ = s.SetVBRReplicaState(rep.ID, "Ready")
	var pts vbrPageResp[vbrPointResp]
	c.get("/api/v1/replicas/"+rep.ID+"/replicaPoints", &pts)
	s.SetVBRActionHang(true)
	r := c.do("POST", "/api/v1/failover/plannedFailover/vSphere/snapshot", `{"replicaPointIds":["`+pts.Data[0].ID+`"]}`)
	var res vbrPageResp[vbrSessionResp]
	r.json(t, &res)
	clk.Add(10 * time.Minute) // well past ActionDuration, within the token's life
	var got vbrSessionResp
	c.get("/api/v1/sessions/"+res.Data[0].ID, &got)
	if got.State != "Working" || got.Result != nil {
		t.Fatalf("hung session %+v", got)
	}
	s.SetVBRActionHang(false)
	c.get("/api/v1/sessions/"+res.Data[0].ID, &got)
	if got.State != "Stopped" || got.Result == nil || got.Result.Result != "Success" {
		t.Fatalf("released session %+v", got)
	}
}

func TestVBREstate(t *testing.T) {
	o := Options{Seed: 42, VBR: VBROptions{Replicas: 10_000}}
	o = o.withDefaults()
	start := time.Now()
	a, b := newVBR(&o), newVBR(&o)
	t.Logf("two 10,000-replica estates took %v", time.Since(start))
	ea, eb := a.estate(), b.estate()
	if len(ea.Replicas) != 10_000 || len(ea.Points) != 30_000 || ea.Replicas[9999].ID != eb.Replicas[9999].ID ||
		ea.Points[123].ID != eb.Points[123].ID || len(ea.Sessions) != len(eb.Sessions) {
		t.Fatal("estate not deterministic or wrong size")
	}
	states := map[string]int{}
	ids := map[string]bool{}
	for _, r := range ea.Replicas {
		states[r.State]++
		ids[r.ID] = true
	}
	if states["Ready"] < 8000 || states["Failover"] == 0 || states["FailedFailover"] == 0 || states["Processing"] == 0 || len(ids) != 10_000 {
		t.Errorf("state mix %v, %d unique ids", states, len(ids))
	}
	for _, p := range ea.Points[:30] {
		if p.State == "Ready" && !slices.Equal(p.AllowedOperations, []string{vbrOpFailover, vbrOpPlannedFailover, vbrOpFlrRestore}) {
			t.Errorf("Ready point ops %v", p.AllowedOperations)
		}
	}
	o2 := Options{Seed: 43}
	o2 = o2.withDefaults()
	small := newVBR(&o2).estate()
	if len(small.Replicas) != 20 || len(small.Points) != 60 || small.Replicas[0].ID == ea.Replicas[0].ID {
		t.Errorf("default estate %d replicas %d points", len(small.Replicas), len(small.Points))
	}
	st := map[string]bool{}
	for _, r := range small.Replicas {
		st[r.State] = true
	}
	if !st["Processing"] || !st["Failover"] || !st["FailedFailover"] {
		t.Errorf("small estate lacks a state: %v", st)
	}
}

func TestVBRWriteError(t *testing.T) {
	s, c, _ := startVBRTest(t, Options{})
	c.login()
	s.SetFault(APIVBR, Fault{PathPrefix: "/api/v1/sessions", Status: 503, Count: 1})
	r := c.do("GET", "/api/v1/sessions", "")
	if r.status != 503 || r.errorCode(t) != "ServiceUnavailable" || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("fault answer %d %s", r.status, r.body)
	}
	for status, code := range map[int]string{400: "UnexpectedContent", 401: "AccessDenied", 403: "AccessDenied", 404: "NotFound", 500: "UnknownError"} {
		if got := vbrErrorCode(status); got != code {
			t.Errorf("%d: %s, want %s", status, got, code)
		}
	}
}
