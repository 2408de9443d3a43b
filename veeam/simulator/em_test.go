package simulator

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// emTestClock is a settable clock for Options.Now.
type emTestClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *emTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *emTestClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// emEnv is a running simulator with a fake clock and an EM client.
type emEnv struct {
	t     *testing.T
	s     *Simulator
	clock *emTestClock
	base  string // .../api
}

const emTestDur = 10 * time.Second

func newEMEnv(t *testing.T, o EMOptions) *emEnv {
	t.Helper()
	clock := &emTestClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	s, err := Start(Options{Seed: 7, Now: clock.Now, ActionDuration: emTestDur, EM: o})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &emEnv{t: t, s: s, clock: clock, base: s.EMURL() + "/api"}
}

// emSmall is a small estate for unit tests.
var emSmall = EMOptions{Plans: 3, VMsPerPlan: 2, CloudSessions: 60, CdpReplicas: 1, VMsPerCdpReplica: 2}

type emReq struct {
	method, path  string
	token, cookie string
	accept, ctype string
	body          string
	user, pass    string
	basic         bool
}

type emResp struct {
	status int
	header http.Header
	body   []byte
}

func (e *emEnv) do(q emReq) emResp {
	e.t.Helper()
	if q.method == "" {
		q.method = http.MethodGet
	}
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	req, err := http.NewRequest(q.method, e.base+q.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if q.token != "" {
		req.Header.Set("X-RestSvcSessionId", q.token)
	}
	if q.cookie != "" {
		req.Header.Set("Cookie", "X-RestSvcSessionId="+q.cookie)
	}
	if q.accept != "" {
		req.Header.Set("Accept", q.accept)
	}
	if q.ctype != "" {
		req.Header.Set("Content-Type", q.ctype)
	}
	if q.basic {
		req.SetBasicAuth(q.user, q.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return emResp{status: resp.StatusCode, header: resp.Header, body: b}
}

// login creates a logon session and returns its token.
func (e *emEnv) login() string {
	e.t.Helper()
	r := e.do(emReq{method: "POST", path: "/sessionMngr/?v=latest", basic: true, user: DefaultUsername, pass: DefaultPassword})
	if r.status != 201 {
		e.t.Fatalf("logon: %d %s", r.status, r.body)
	}
	return r.header.Get("X-RestSvcSessionId")
}

// get is an authenticated GET expecting status want.
func (e *emEnv) get(tok, path, accept string, want int) emResp {
	e.t.Helper()
	r := e.do(emReq{path: path, token: tok, accept: accept})
	if r.status != want {
		e.t.Fatalf("GET %s: %d, want %d: %s", path, r.status, want, r.body)
	}
	return r
}

func emXML(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := xml.Unmarshal(b, v); err != nil {
		t.Fatalf("XML %s: %v", b, err)
	}
}

func emJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JSON %s: %v", b, err)
	}
	return m
}

// emInWindow is the estate's cloud sessions the API returns (last 30 days).
func (e *emEnv) emInWindow() []EMCloudSession {
	var out []EMCloudSession
	for _, s := range e.s.Estate().EM.CloudSessions {
		if !s.CreationTimeUTC.Before(e.clock.Now().Add(-30 * 24 * time.Hour)) {
			out = append(out, s)
		}
	}
	return out
}

func TestEMRoot(t *testing.T) {
	e := newEMEnv(t, emSmall)
	r := e.do(emReq{path: "/"})
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/xml") {
		t.Fatalf("GET /api/: %d %s", r.status, r.header.Get("Content-Type"))
	}
	if !strings.Contains(string(r.body), `<EnterpriseManager xmlns="http://www.veeam.com/ent/v1.0">`) {
		t.Errorf("root element: %s", r.body)
	}
	var em emEnterpriseManager
	emXML(t, r.body, &em)
	var names []string
	for _, v := range em.SupportedVersions.SupportedVersions {
		names = append(names, v.Name)
	}
	if !reflect.DeepEqual(names, []string{"v1_5", "v1_6", "v1_7"}) || len(em.XLinks) != 2 || em.XLinks[1].Rel != "Create" {
		t.Errorf("versions %v, links %+v", names, em.XLinks)
	}
	j := emJSON(t, e.do(emReq{path: "/", accept: "application/json"}).body)
	if vs := j["SupportedVersions"].(map[string]any)["SupportedVersions"].([]any); len(vs) != 3 {
		t.Errorf("JSON versions %v", vs)
	}
}

func TestEMLogon(t *testing.T) {
	e := newEMEnv(t, emSmall)
	r := e.do(emReq{method: "POST", path: "/sessionMngr/?v=v1_7", basic: true, user: DefaultUsername, pass: DefaultPassword})
	tok := r.header.Get("X-RestSvcSessionId")
	if raw, err := base64.StdEncoding.DecodeString(tok); r.status != 201 || err != nil || len(raw) != 16 {
		t.Fatalf("logon %d, token %q (%v)", r.status, tok, err)
	}
	if c := r.header.Get("Set-Cookie"); c != "X-RestSvcSessionId="+tok+"; Path=/api;" {
		t.Errorf("Set-Cookie %q", c)
	}
	var ls emLogonSession
	emXML(t, r.body, &ls)
	if ls.UserName != DefaultUsername || ls.Type != "LogonSession" || !strings.HasSuffix(ls.Href, "/api/logonSessions/"+ls.SessionID) ||
		!slices.ContainsFunc(ls.XLinks, func(l emLink) bool { return l.Type == "FailoverPlanReferenceList" }) {
		t.Errorf("LogonSession %+v", ls)
	}
	j := emJSON(t, e.do(emReq{method: "POST", path: "/sessionMngr/?v=latest", accept: "application/json", basic: true, user: DefaultUsername, pass: DefaultPassword}).body)
	for _, k := range []string{"UserName", "SessionId", "Links", "Href", "Type"} {
		if j[k] == nil {
			t.Errorf("JSON LogonSession lacks %s: %v", k, j)
		}
	}

	for _, tc := range []struct {
		name   string
		q      emReq
		status int
	}{
		{"bad password", emReq{method: "POST", path: "/sessionMngr/?v=latest", basic: true, user: DefaultUsername, pass: "nope"}, 401},
		{"no credentials", emReq{method: "POST", path: "/sessionMngr/?v=latest"}, 401},
		{"old version", emReq{method: "POST", path: "/sessionMngr/?v=v1_4", basic: true, user: DefaultUsername, pass: DefaultPassword}, 400},
		{"GET", emReq{path: "/sessionMngr/?v=latest", basic: true, user: DefaultUsername, pass: DefaultPassword}, 405},
		{"no session", emReq{path: "/failoverPlans"}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.q)
			var er emError
			emXML(t, r.body, &er)
			if r.status != tc.status || er.StatusCode != tc.status || er.Message == "" {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if tc.status == 401 && r.header.Get("WWW-Authenticate") != "Basic Realm=RestSvc" {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(r.body), DefaultPassword) {
				t.Error("password in error body")
			}
		})
	}
}

func TestEMIdleExpiry(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok := e.login()
	for range 3 { // each request restarts the 15 idle minutes
		e.clock.Advance(14 * time.Minute)
		e.get(tok, "/failoverPlans", "", 200)
	}
	e.clock.Advance(15 * time.Minute)
	r := e.get(tok, "/failoverPlans", "application/json", 401)
	if string(r.body) != `{"FirstChanceExceptionMessage":null,"Message":"The logon session has expired or does not exist. Log on again.","StackTrace":null,"Status":null,"StatusCode":401}` {
		t.Errorf("401 body %s", r.body)
	}
	// The ExpireAuth fault ends all sessions at once.
	tok = e.login()
	e.s.SetFault(APIEM, Fault{ExpireAuth: true})
	e.get(tok, "/failoverPlans", "", 401)
}

func TestEMCookieWins(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok := e.login()
	if r := e.do(emReq{path: "/failoverPlans", token: tok, cookie: "bogus"}); r.status != 401 {
		t.Errorf("valid header, bad cookie: %d", r.status)
	}
	if r := e.do(emReq{path: "/failoverPlans", token: "bogus", cookie: tok}); r.status != 200 {
		t.Errorf("bad header, valid cookie: %d", r.status)
	}
}

func TestEMLogoff(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok, other := e.login(), e.login()
	j := emJSON(t, e.get(tok, "/logonSessions", "application/json", 200).body)
	list := j["LogonSessions"].([]any)
	if len(list) != 1 {
		t.Fatalf("LogonSessions %v", list)
	}
	id := list[0].(map[string]any)["SessionId"].(string)
	var ls emLogonSession
	emXML(t, e.get(tok, "/logonSessions/"+id, "", 200).body, &ls)
	if ls.SessionID != id {
		t.Errorf("GET own session %+v", ls)
	}
	if r := e.do(emReq{method: "DELETE", path: "/logonSessions/" + id, token: other}); r.status != 404 {
		t.Errorf("deleting another's session: %d", r.status)
	}
	if r := e.do(emReq{method: "DELETE", path: "/logonSessions/" + id, token: tok}); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("logoff %d %s", r.status, r.body)
	}
	e.get(tok, "/failoverPlans", "", 401)
	e.get(other, "/failoverPlans", "", 200)
}

func TestEMFailoverPlans(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok := e.login()
	plans := e.s.Estate().EM.Plans
	if len(plans) != 3 || len(plans[0].VMs) != 2 {
		t.Fatalf("estate plans %+v", plans)
	}

	var refs emRefList
	emXML(t, e.get(tok, "/failoverPlans", "", 200).body, &refs)
	if len(refs.Refs) != 3 {
		t.Fatalf("refs %+v", refs)
	}
	ref := refs.Refs[0]
	if ref.Type != "FailoverPlanReference" || ref.UID != "urn:veeam:FailoverPlan:"+plans[0].UID || ref.Name != plans[0].Name ||
		len(ref.Links) != 2 || ref.Links[0].Rel != "Up" || ref.Links[0].Type != "BackupServerReference" ||
		!strings.HasSuffix(ref.Links[0].Href, "/backupServers/"+plans[0].BackupServerUID) ||
		ref.Links[1].Rel != "Alternate" || !strings.HasSuffix(ref.Links[1].Href, "?format=Entity") {
		t.Errorf("ref %+v", ref)
	}

	r := e.get(tok, "/failoverPlans/"+plans[1].UID+"?format=Entity", "", 200)
	body := string(r.body)
	if i, j, k := strings.Index(body, "<Links>"), strings.Index(body, "<Description>"), strings.Index(body, "<FailoverPlanInfo>"); !(i >= 0 && i < j && j < k) {
		t.Errorf("element order: %s", body)
	}
	var p emFailoverPlan
	emXML(t, r.body, &p)
	vms := p.FailoverPlanInfo.Includes.FailoveredVms
	if p.Name != plans[1].Name || p.Description != plans[1].Description || len(vms) != 2 ||
		vms[0].FailoveredVMID != plans[1].VMs[0].ID || vms[0].Name != plans[1].VMs[0].Name || vms[1].Order != 2 ||
		!strings.HasPrefix(vms[0].HierarchyObjRef, "urn:VMware:Vm:") {
		t.Errorf("entity %+v", p)
	}
	rels := map[string]string{}
	for _, l := range p.XLinks {
		rels[l.Rel] = l.Href
	}
	if !strings.HasSuffix(rels["Start"], "?action=start") || !strings.HasSuffix(rels["Undo"], "?action=undo") {
		t.Errorf("links %v", rels)
	}

	var list emFailoverPlanList
	emXML(t, e.get(tok, "/failoverPlans?format=Entity", "", 200).body, &list)
	if len(list.FailoverPlans) != 3 {
		t.Errorf("entity list %d", len(list.FailoverPlans))
	}

	jb := e.get(tok, "/failoverPlans/"+plans[1].UID+"?format=Entity", "application/json", 200).body
	j := emJSON(t, jb)
	inc := j["FailoverPlanInfo"].(map[string]any)["Includes"].(map[string]any)["FailoveredVms"].([]any)
	if len(inc) != 2 || inc[0].(map[string]any)["FailoveredVmId"] != plans[1].VMs[0].ID || j["Type"] != "FailoverPlan" {
		t.Errorf("JSON entity %s", jb)
	}
	if s := string(jb); strings.Index(s, `"Description"`) > strings.Index(s, `"UID"`) || strings.Index(s, `"UID"`) > strings.LastIndex(s, `"Links"`) {
		t.Errorf("JSON key order %s", s)
	}
	jr := emJSON(t, e.get(tok, "/failoverPlans", "application/json", 200).body)
	if refs := jr["Refs"].([]any); len(refs) != 3 {
		t.Errorf("JSON refs %v", jr)
	}
	jl := emJSON(t, e.get(tok, "/failoverPlans?format=Entity", "application/json", 200).body)
	if l := jl["FailoverPlans"].([]any); len(l) != 3 {
		t.Errorf("JSON entity list %v", jl)
	}

	e.get(tok, "/failoverPlans/00000000-0000-4000-8000-000000000000", "", 404)
	nf := e.get(tok, "/failoverPlans/nope", "application/json", 404)
	if string(nf.body) != `{"FirstChanceExceptionMessage":null,"Message":"Failover plan with ID nope is not found.","StackTrace":null,"Status":null,"StatusCode":404}` {
		t.Errorf("JSON 404 %s", nf.body)
	}
	x := e.get(tok, "/failoverPlans/nope", "", 404)
	var er emError
	emXML(t, x.body, &er)
	if !strings.Contains(string(x.body), `<Error xmlns="http://www.veeam.com/ent/v1.0"`) || er.Message != "Failover plan with ID nope is not found." || er.StatusCode != 404 {
		t.Errorf("XML 404 %s", x.body)
	}
}

func TestEMQuirkNodeRoot(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok := e.login()
	plan := e.s.Estate().EM.Plans[0].UID
	r := e.do(emReq{method: "POST", path: "/failoverPlans/" + plan + "?action=start", token: tok,
		accept: "application/xml, text/xml, application/json", ctype: "application/xml",
		body: `<FailoverPlanManagementSpec xmlns="http://www.veeam.com/ent/v1.0"><StartNow>true</StartNow></FailoverPlanManagementSpec>`})
	if r.status != 400 || string(r.body) != `{"FirstChanceExceptionMessage":null,"Message":"Node [root] does not exist.","StackTrace":null,"Status":null,"StatusCode":400}` {
		t.Errorf("%d %s", r.status, r.body)
	}
	// A JSON body without the JSON Accept is read as XML and fails too.
	r = e.do(emReq{method: "POST", path: "/failoverPlans/" + plan + "?action=start", token: tok, ctype: "application/json", body: `{"StartNow":true}`})
	if r.status != 400 {
		t.Errorf("JSON body, XML Accept: %d %s", r.status, r.body)
	}
	if n := e.s.EMPlanStarts(plan); n != 0 {
		t.Errorf("failed requests counted: %d", n)
	}
}

// taskAt GETs a task as XML.
func (e *emEnv) taskAt(tok, id string) emTask {
	e.t.Helper()
	var task emTask
	emXML(e.t, e.get(tok, "/tasks/"+id, "", 200).body, &task)
	return task
}

func TestEMPlanStartUndo(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok := e.login()
	plan := e.s.Estate().EM.Plans[0].UID
	start := func(accept, ctype, body string) emTask {
		t.Helper()
		r := e.do(emReq{method: "POST", path: "/failoverPlans/" + plan + "?action=start", token: tok, accept: accept, ctype: ctype, body: body})
		if r.status != 202 {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
		var task emTask
		if accept == "" {
			emXML(t, r.body, &task)
		} else if err := json.Unmarshal(r.body, &task); err != nil {
			t.Fatal(err)
		}
		return task
	}
	task := start("", "application/xml", `<?xml version="1.0" encoding="utf-8"?><FailoverPlanManagementSpec xmlns="http://www.veeam.com/ent/v1.0"><StartNow>true</StartNow></FailoverPlanManagementSpec>`)
	if task.TaskID != "task-1" || task.State != "Running" || task.Operation != "StartFailoverPlan" || task.Result != nil ||
		len(task.XLinks) != 1 || task.XLinks[0].Rel != "Delete" || !strings.HasSuffix(task.Href, "/api/tasks/task-1") {
		t.Fatalf("202 task %+v", task)
	}
	// Starting again while the first runs is accepted and counted.
	start("", "application/xml", `<FailoverPlanManagementSpec><StartNow>true</StartNow></FailoverPlanManagementSpec>`)
	if n := e.s.EMPlanStarts(plan); n != 2 {
		t.Errorf("EMPlanStarts = %d", n)
	}
	if got := e.taskAt(tok, "task-1"); got.State != "Running" {
		t.Errorf("at 0s: %+v", got)
	}
	e.clock.Advance(emTestDur)
	if got := e.taskAt(tok, "task-1"); got.State != "OperationFinished" || got.Result == nil || !got.Result.Success || got.Result.Message != "OperationFinished" {
		t.Errorf("after ActionDuration: %+v", got)
	}
	e.clock.Advance(emTestDur / 2)
	got := e.taskAt(tok, "task-1")
	if got.State != "Finished" || got.Result == nil || !got.Result.Success || got.Result.Message != "Ok" {
		t.Errorf("finished: %+v", got)
	}
	if s := string(e.get(tok, "/tasks/task-1", "", 200).body); !strings.Contains(s, `<Result Success="true"><Message>Ok</Message></Result>`) {
		t.Errorf("Result XML %s", s)
	}

	r := e.do(emReq{method: "POST", path: "/failoverPlans/" + plan + "?action=undo", token: tok})
	var undo emTask
	emXML(t, r.body, &undo)
	if r.status != 202 || undo.Operation != "UndoFailoverPlan" || undo.TaskID != "task-3" || e.s.EMPlanUndos(plan) != 1 {
		t.Errorf("undo %d %+v", r.status, undo)
	}

	e.s.SetEMTaskOutcome(false)
	fail := start("application/json", "application/json", `{"StartNow":false,"StartDate":"2025-05-31T19:04:35.8385611Z"}`)
	e.clock.Advance(2 * emTestDur)
	j := emJSON(t, e.get(tok, "/tasks/"+fail.TaskID, "application/json", 200).body)
	res := j["Result"].(map[string]any)
	if j["State"] != "Finished" || res["Success"] != false || res["Message"] == "" || j["TaskId"] != fail.TaskID {
		t.Errorf("failed task JSON %v", j)
	}
	var tasks []EMTask
	for _, et := range e.s.Estate().EM.Tasks {
		if et.PlanUID == plan {
			tasks = append(tasks, et)
		}
	}
	if len(tasks) != 4 || tasks[3].Success == nil || *tasks[3].Success || tasks[0].State != "Finished" || !*tasks[0].Success {
		t.Errorf("estate tasks %+v", tasks)
	}
}

func TestEMPlanActionErrors(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok := e.login()
	plan := "/failoverPlans/" + e.s.Estate().EM.Plans[0].UID
	const spec = `<FailoverPlanManagementSpec><StartNow>true</StartNow></FailoverPlanManagementSpec>`
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
	}{
		{"no content type", plan + "?action=start", "", spec, 415},
		{"text/plain", plan + "?action=start", "text/plain", spec, 415},
		{"empty body", plan + "?action=start", "application/xml", "", 400},
		{"no option", plan + "?action=start", "application/xml", `<FailoverPlanManagementSpec><StartNow>false</StartNow></FailoverPlanManagementSpec>`, 400},
		{"bad date", plan + "?action=start", "application/xml", `<FailoverPlanManagementSpec><StartDate>yesterday</StartDate></FailoverPlanManagementSpec>`, 400},
		{"wrong root", plan + "?action=start", "application/xml", `<JobManagementSpec><StartNow>true</StartNow></JobManagementSpec>`, 400},
		{"not XML", plan + "?action=start", "application/xml", `StartNow=true`, 400},
		{"unknown action", plan + "?action=test", "application/xml", spec, 400},
		{"no action", plan, "application/xml", spec, 400},
		{"unknown plan", "/failoverPlans/4b4c7a4e-0000-4000-8000-000000000000?action=start", "application/xml", spec, 404},
		{"PUT", plan, "application/xml", spec, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if tc.name == "PUT" {
				method = "PUT"
			}
			r := e.do(emReq{method: method, path: tc.path, token: tok, ctype: tc.ctype, body: tc.body})
			var er emError
			emXML(t, r.body, &er)
			if r.status != tc.status || er.StatusCode != tc.status {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
	if n := e.s.EMPlanStarts(e.s.Estate().EM.Plans[0].UID); n != 0 {
		t.Errorf("rejected starts counted: %d", n)
	}
}

func TestEMTaskScoping(t *testing.T) {
	e := newEMEnv(t, emSmall)
	a, b := e.login(), e.login()
	plan := e.s.Estate().EM.Plans[0].UID
	if r := e.do(emReq{method: "POST", path: "/failoverPlans/" + plan + "?action=undo", token: a}); r.status != 202 {
		t.Fatalf("undo %d", r.status)
	}
	e.get(b, "/tasks/task-1", "", 404)
	var tl emTaskList
	emXML(t, e.get(b, "/tasks", "", 200).body, &tl)
	if len(tl.Tasks) != 0 {
		t.Errorf("B sees %+v", tl)
	}
	j := emJSON(t, e.get(a, "/tasks", "application/json", 200).body)
	if l := j["Tasks"].([]any); len(l) != 1 {
		t.Errorf("A's tasks %v", j)
	}
	var q emQueryResult
	emXML(t, e.get(a, "/query?type=Task&filter=Operation==UndoFailoverPlan;State==Running", "", 200).body, &q)
	if q.Resources == nil || q.Resources.Tasks == nil || len(q.Resources.Tasks.Tasks) != 1 {
		t.Errorf("task query %+v", q)
	}
	if r := e.do(emReq{method: "DELETE", path: "/tasks/task-1", token: b}); r.status != 404 {
		t.Errorf("B deletes A's task: %d", r.status)
	}
	if r := e.do(emReq{method: "DELETE", path: "/tasks/task-1", token: a}); r.status != 204 {
		t.Errorf("delete %d", r.status)
	}
	e.get(a, "/tasks/task-1", "", 404)
}

func TestEMCdpFailover(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok := e.login()
	cdp := e.s.Estate().EM.CdpReplicas[0]
	var refs emRefList
	emXML(t, e.get(tok, "/cdpReplicas", "", 200).body, &refs)
	if len(refs.Refs) != 1 || refs.Refs[0].UID != "urn:veeam:CdpReplica:"+cdp.UID || refs.Refs[0].Type != "CdpReplicaReference" {
		t.Fatalf("cdp refs %+v", refs)
	}
	var vmRefs emRefList
	emXML(t, e.get(tok, "/cdpReplicas/"+cdp.UID+"/vms", "", 200).body, &vmRefs)
	if len(vmRefs.Refs) != 2 || vmRefs.Refs[1].Type != "CdpReplicaVmReference" || vmRefs.Refs[1].Name != cdp.VMs[1].Name {
		t.Fatalf("vm refs %+v", vmRefs)
	}
	vmPath := "/cdpReplicas/" + cdp.UID + "/vms/" + cdp.VMs[0].UID
	var vm emCdpReplicaVM
	emXML(t, e.get(tok, vmPath+"?format=Entity", "", 200).body, &vm)
	if vm.UID != "urn:veeam:CdpReplicaVm:"+cdp.VMs[0].UID || vm.ReplicaUID != cdp.UID || vm.PolicyName != cdp.Name ||
		!strings.HasPrefix(vm.VMRef, "urn:VMware:Vm:") || vm.XLinks[1].Rel != "Failover" {
		t.Errorf("vm entity %+v", vm)
	}
	var c emCdpReplica
	emXML(t, e.get(tok, "/cdpReplicas/"+cdp.UID+"?format=Entity", "", 200).body, &c)
	if c.Name != cdp.Name || c.Type != "CdpReplica" {
		t.Errorf("cdp entity %+v", c)
	}

	r := e.do(emReq{method: "POST", path: vmPath + "?action=failover", token: tok, ctype: "application/xml",
		body: `<CdpFailoverStartSpec xmlns="http://www.veeam.com/ent/v1.0"><RestoreCurrent>true</RestoreCurrent><RestoreCurrentVss>false</RestoreCurrentVss><RestoreAtInterval>2025-02-17T15:31:40</RestoreAtInterval></CdpFailoverStartSpec>`})
	var task emTask
	emXML(t, r.body, &task)
	if r.status != 202 || task.Operation != "StartFailover" || task.State != "Running" {
		t.Fatalf("failover %d %s", r.status, r.body)
	}
	e.clock.Advance(2 * emTestDur)
	done := e.taskAt(tok, task.TaskID)
	if done.State != "Finished" || len(done.XLinks) != 2 || done.XLinks[1].Rel != "Related" || done.XLinks[1].Type != "RestoreSession" ||
		!strings.Contains(done.XLinks[1].Href, "/api/restoreSessions/") {
		t.Errorf("finished CDP task %+v", done)
	}

	r = e.do(emReq{method: "POST", path: vmPath + "?action=failover", token: tok, accept: "application/json", ctype: "application/json",
		body: `{"RestoreCurrent":false,"RestoreCurrentVss":false,"RestoreAtPointInTime":"2025-02-17T15:31:40"}`})
	if r.status != 202 {
		t.Errorf("JSON RestoreAtPointInTime: %d %s", r.status, r.body)
	}
	r = e.do(emReq{method: "POST", path: vmPath + "?action=failover", token: tok, accept: "application/json", ctype: "application/json",
		body: `{"RestoreCurrent":true}`})
	if r.status != 400 {
		t.Errorf("without RestoreCurrentVss: %d", r.status)
	}
	if n := e.s.EMCdpFailovers(cdp.VMs[0].UID); n != 2 {
		t.Errorf("EMCdpFailovers = %d", n)
	}
	e.get(tok, "/cdpReplicas/"+cdp.UID+"/vms/nope", "", 404)
}

func TestEMCloudSessions(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok := e.login()
	all, win := e.s.Estate().EM.CloudSessions, e.emInWindow()
	if len(all) != 60 || len(win) == len(all) || len(win) == 0 {
		t.Fatalf("estate: %d sessions, %d in 30 days", len(all), len(win))
	}
	results := map[string]int{}
	for _, s := range all {
		results[s.State+"/"+s.Result]++
	}
	if results["Stopped/Success"] < len(all)/2 || results["Stopped/Failed"] == 0 {
		t.Errorf("unrealistic mix %v", results)
	}

	var refs emRefList
	emXML(t, e.get(tok, "/cloud/failoverSessions", "", 200).body, &refs)
	if len(refs.Refs) != len(win) || refs.Refs[0].Type != "CloudFailoverSessionReference" || refs.Refs[0].UID != "urn:veeam:CloudFailoverSession:"+win[0].UID {
		t.Fatalf("refs %d, want %d: %+v", len(refs.Refs), len(win), refs.Refs[0])
	}
	e.get(tok, "/cloud/failoverSessions/"+all[0].UID+"?format=Entity", "", 404) // older than 30 days

	var failed EMCloudSession
	for _, s := range win {
		if s.Result == "Failed" {
			failed = s
		}
	}
	r := e.get(tok, "/cloud/failoverSessions/"+failed.UID+"?format=Entity", "", 200)
	var cs emCloudFailoverSession
	emXML(t, r.body, &cs)
	if cs.JobType != "FailoverPlan" || cs.State != "Stopped" || cs.Result != "Failed" || cs.Progress != 100 ||
		!cs.CreationTimeUTC.Equal(failed.CreationTimeUTC) || cs.EndTimeUTC == nil || string(cs.FailureMessage) != failed.FailureMessage ||
		len(cs.CloudFailoverTasks.Tasks) == 0 || cs.CloudFailoverTasks.Tasks[0].VMName == "" {
		t.Errorf("entity %+v", cs)
	}
	if !strings.Contains(string(r.body), "<CloudFailoverTasks><CloudFailoverTasks VmName=") {
		t.Errorf("task list XML %s", r.body)
	}

	// Tests can add a running session and make it fail.
	uid := e.s.AddEMCloudSession(EMCloudSession{Name: "Test Failover Plan", State: "Working", Progress: 10})
	j := emJSON(t, e.get(tok, "/cloud/failoverSessions/"+uid+"?format=Entity", "application/json", 200).body)
	if j["State"] != "Working" || j["Result"] != "None" || j["EndTimeUTC"] != nil || j["FailureMessage"] != nil ||
		j["CloudFailoverTasks"].(map[string]any)["CloudFailoverTasks"] == nil {
		t.Errorf("added session JSON %v", j)
	}
	if !e.s.SetEMCloudSessionResult(uid, "Stopped", "Failed") || e.s.SetEMCloudSessionResult("nope", "Stopped", "Failed") {
		t.Fatal("SetEMCloudSessionResult")
	}
	cs = emCloudFailoverSession{}
	emXML(t, e.get(tok, "/cloud/failoverSessions/"+uid+"?format=Entity", "", 200).body, &cs)
	if cs.State != "Stopped" || cs.Result != "Failed" || cs.EndTimeUTC == nil || cs.FailureMessage == "" || cs.Progress != 100 {
		t.Errorf("failed session %+v", cs)
	}
	var after emRefList
	emXML(t, e.get(tok, "/cloud/failoverSessions", "", 200).body, &after)
	if len(after.Refs) != len(win)+1 || after.Refs[len(after.Refs)-1].Name != "Test Failover Plan" {
		t.Errorf("refs after add: %d", len(after.Refs))
	}
}

// emQuery runs a query as XML.
func (e *emEnv) emQuery(tok, q string, want int) emQueryResult {
	e.t.Helper()
	var res emQueryResult
	r := e.get(tok, "/query?"+q, "", want)
	if want == 200 {
		emXML(e.t, r.body, &res)
	}
	return res
}

func TestEMQuery(t *testing.T) {
	e := newEMEnv(t, emSmall)
	tok := e.login()
	win := e.emInWindow()
	count := func(f func(EMCloudSession) bool) int {
		n := 0
		for _, s := range win {
			if f(s) {
				n++
			}
		}
		return n
	}
	servers := map[string]string{}
	var srv emRefList
	emXML(t, e.get(tok, "/backupServers", "", 200).body, &srv)
	for _, r := range srv.Refs {
		servers[emBareID(r.UID)] = r.Name
	}
	for _, tc := range []struct {
		name, filter string
		want         int
	}{
		{"all", "", len(win)},
		{"failed, lower case", "Result==failed", count(func(s EMCloudSession) bool { return s.Result == "Failed" })},
		{"enum order", "Result>=Warning", count(func(s EMCloudSession) bool { return s.Result == "Warning" || s.Result == "Failed" })},
		{"not stopped", "State!=Stopped", count(func(s EMCloudSession) bool { return s.State != "Stopped" })},
		{"and, or, parentheses", `(Result==Failed,Result==Warning);BackupServerName=="vbr01.sim.local"`, count(func(s EMCloudSession) bool {
			return (s.Result == "Failed" || s.Result == "Warning") && servers[s.BackupServerUID] == "vbr01.sim.local"
		})},
		{"& and |", `Result==Success&(State==Stopped|State==Working)`, count(func(s EMCloudSession) bool { return s.Result == "Success" })},
		{"quoted name", `Name=="` + win[0].Name + `"`, count(func(s EMCloudSession) bool { return s.Name == win[0].Name })},
		{"time", "CreationTime>=" + win[len(win)/2].CreationTimeUTC.Format(time.RFC3339Nano), count(func(s EMCloudSession) bool {
			return !s.CreationTimeUTC.Before(win[len(win)/2].CreationTimeUTC)
		})},
		{"uid", "UID==urn:veeam:CloudFailoverSession:" + win[3].UID, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"type": {"CloudFailoverSession"}}
			if tc.filter != "" {
				q.Set("filter", tc.filter)
			}
			res := e.emQuery(tok, q.Encode(), 200)
			if res.Refs == nil || len(res.Refs.Refs) != tc.want || res.PagingInfo.PageNum != 1 || res.PagingInfo.PagesCount != 1 {
				t.Errorf("got %d refs (%+v), want %d", len(res.Refs.Refs), res.PagingInfo, tc.want)
			}
		})
	}

	// Paging: pages of 7 cover the window exactly once, with the documented links.
	pages := (len(win) + 6) / 7
	var seen []string
	for p := 1; p <= pages; p++ {
		res := e.emQuery(tok, "type=CloudFailoverSession&pageSize=7&page="+strconv.Itoa(p), 200)
		for _, r := range res.Refs.Refs {
			seen = append(seen, emBareID(r.UID))
		}
		pi := res.PagingInfo
		var rels []string
		for _, l := range pi.Links {
			rels = append(rels, l.Rel)
		}
		want := []string{"First", "Previous", "Next", "Last"}
		if p == 1 {
			want = []string{"First", "Next", "Last"}
		} else if p == pages {
			want = []string{"First", "Previous", "Last"}
		}
		if pi.PageNum != p || pi.PageSize != 7 || pi.PagesCount != pages || !reflect.DeepEqual(rels, want) ||
			!strings.HasSuffix(pi.Links[len(pi.Links)-1].Href, "/api/query?type=CloudFailoverSession&pageSize=7&page="+strconv.Itoa(pages)) {
			t.Errorf("page %d: %+v", p, pi)
		}
	}
	var want []string
	for _, s := range win {
		want = append(want, s.UID)
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("paged UIDs differ from the window")
	}

	// Sorting, entities, JSON shape.
	res := e.emQuery(tok, "type=CloudFailoverSession&format=Entities&sortDesc=CreationTime&pageSize=5", 200)
	ss := res.Entities.CloudFailoverSessions.CloudFailoverSessions
	if len(ss) != 5 || !ss[0].CreationTimeUTC.Equal(win[len(win)-1].CreationTimeUTC) || ss[1].CreationTimeUTC.After(ss[0].CreationTimeUTC) {
		t.Errorf("sortDesc: %v, newest %v", ss[0].CreationTimeUTC, win[len(win)-1].CreationTimeUTC)
	}
	j := emJSON(t, e.get(tok, "/query?type=CloudFailoverSession&format=Entities&pageSize=2&page=2", "application/json", 200).body)
	ents := j["Entities"].(map[string]any)
	if j["Refs"] != nil || ents["FailoverPlans"] != nil || len(ents["CloudFailoverSessions"].(map[string]any)["CloudFailoverSessions"].([]any)) != 2 {
		t.Errorf("JSON entities %v", j)
	}
	if pi := j["PagingInfo"].(map[string]any); pi["PageNum"] != 2.0 || pi["PageSize"] != 2.0 || len(pi["Links"].([]any)) != 4 {
		t.Errorf("JSON paging %v", pi)
	}
	jr := emJSON(t, e.get(tok, "/query?type=FailoverPlan&sortAsc=name", "application/json", 200).body)
	if refs := jr["Refs"].(map[string]any)["Refs"].([]any); len(refs) != 3 {
		t.Errorf("JSON refs %v", jr)
	}

	plans := e.s.Estate().EM.Plans
	fp := e.emQuery(tok, "type=FailoverPlan&format=Entities&filter="+url.QueryEscape("UID==urn:veeam:FailoverPlan:"+plans[2].UID), 200)
	if l := fp.Entities.FailoverPlans.FailoverPlans; len(l) != 1 || l[0].Name != plans[2].Name {
		t.Errorf("plan by UID %+v", fp.Entities)
	}
	fp = e.emQuery(tok, "type=FailoverPlan&filter="+url.QueryEscape(`BackupServerUid==`+plans[0].BackupServerUID), 200)
	if len(fp.Refs.Refs) == 0 {
		t.Error("plans by backup server: none")
	}

	for _, q := range []string{
		"", "type=Job", "type=CloudFailoverSession&format=Bogus", "type=CloudFailoverSession&pageSize=x",
		"type=CloudFailoverSession&page=0", "type=CloudFailoverSession&sortAsc=Bogus",
		"type=CloudFailoverSession&filter=Bogus==1", "type=CloudFailoverSession&filter=Result==Meh",
		"type=CloudFailoverSession&filter=Result=Failed", "type=CloudFailoverSession&filter=(Result==Failed",
		"type=CloudFailoverSession&filter=" + url.QueryEscape(`Name=="open`),
	} {
		e.emQuery(tok, q, 400)
	}
}

func TestEMLargeEstate(t *testing.T) {
	e := newEMEnv(t, EMOptions{Plans: 2000, VMsPerPlan: 5, CloudSessions: 10000})
	tok := e.login()
	win := e.emInWindow()
	res := e.emQuery(tok, "type=CloudFailoverSession&format=Entities&pageSize=100&page=20&sortDesc=CreationTime", 200)
	if n := len(res.Entities.CloudFailoverSessions.CloudFailoverSessions); n != 100 || res.PagingInfo.PagesCount != (len(win)+99)/100 {
		t.Errorf("page of %d, PagesCount %d", n, res.PagingInfo.PagesCount)
	}
	fp := e.emQuery(tok, "type=FailoverPlan&pageSize=500&page=4", 200)
	if len(fp.Refs.Refs) != 500 || fp.PagingInfo.PagesCount != 4 {
		t.Errorf("plans page %d of %d", len(fp.Refs.Refs), fp.PagingInfo.PagesCount)
	}
}

func TestEMDeterministicEstate(t *testing.T) {
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	o := Options{Seed: 3, Now: func() time.Time { return now }, ActionDuration: time.Second}
	a, b := newEM(&o), newEM(&o)
	if !reflect.DeepEqual(a.estate(), b.estate()) {
		t.Error("same seed, different estates")
	}
	o.Seed = 4
	if c := newEM(&o); reflect.DeepEqual(a.estate().Plans, c.estate().Plans) {
		t.Error("different seeds, same plans")
	}
	e := a.estate()
	if len(e.Plans) != 10 || len(e.Plans[0].VMs) != 4 || len(e.CloudSessions) != 40 || len(e.CdpReplicas) != 2 || len(e.CdpReplicas[0].VMs) != 3 {
		t.Errorf("defaults: %d plans, %d sessions, %d CDP replicas", len(e.Plans), len(e.CloudSessions), len(e.CdpReplicas))
	}
}

func TestEMFaultErrorBody(t *testing.T) {
	e := newEMEnv(t, emSmall)
	e.s.SetFault(APIEM, Fault{Status: 503, Count: 1})
	r := e.do(emReq{path: "/"})
	var er emError
	emXML(t, r.body, &er)
	if r.status != 503 || er.StatusCode != 503 {
		t.Errorf("%d %s", r.status, r.body)
	}
}
