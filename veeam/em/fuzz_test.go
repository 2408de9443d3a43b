package em

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/simtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// decodeAll runs every EM decoder on body and checks what they return. It
// must never panic, whatever the input.
func decodeAll(t *testing.T, body []byte) {
	if p, err := DecodePlanQuery(body); err == nil {
		for _, pl := range p.Items {
			checkID(t, pl.ID)
			if pl.ObjectsCount < 0 {
				t.Fatalf("negative objects count %d", pl.ObjectsCount)
			}
		}
		if p.Pages < 0 {
			t.Fatalf("negative page count %d", p.Pages)
		}
	}
	if p, err := DecodeSessionQuery(body); err == nil {
		for _, s := range p.Items {
			checkID(t, s.ID)
			if s.Progress < 0 || s.Progress > 100 {
				t.Fatalf("progress %d", s.Progress)
			}
		}
	}
	if ents, _, err := decodePlanEntities(body); err == nil {
		for i := range ents {
			for _, o := range ents[i].objects() {
				checkID(t, o.ID)
			}
		}
	}
	if p, err := DecodePlan(body); err == nil {
		checkID(t, p.ID)
		if p.ID == "" {
			t.Fatal("plan without id decoded")
		}
	}
	if tk, err := DecodeTask(body); err == nil && tk.ID == "" {
		t.Fatal("task without id decoded")
	}
	_, _ = DecodeTasks(body)
	_, _, _ = DecodeError(body)
	_, _ = decodeLogon(body)
	_ = parseError("t", "GET", "/api/x", &veeam.Response{Status: 500, Header: http.Header{}, Body: body})
}

func checkID(t *testing.T, id string) {
	if id != strings.ToLower(id) || strings.HasPrefix(id, "urn:veeam:") {
		t.Fatalf("id %q not normalised", id)
	}
}

// FuzzDecodeXML fuzzes the decoders with EM's XML; the seeds under
// testdata/fuzz/FuzzDecodeXML are simulator answers (see
// TestWriteFuzzSeeds).
func FuzzDecodeXML(f *testing.F) {
	for _, s := range []string{
		`<?xml version="1.0" encoding="utf-8"?><QueryResult xmlns="http://www.veeam.com/ent/v1.0"><Entities><FailoverPlans><FailoverPlan UID="urn:veeam:FailoverPlan:AE01E36F-0000-4000-8000-000000000001" Name="p"><Links><Link Rel="Up" Href="https://em/api/backupServers/11111111-2222-4333-8444-555555555555" Type="BackupServerReference"/></Links><Description>d</Description><FailoverPlanInfo><Includes><FailoveredVm><FailoveredVmId>x</FailoveredVmId><Order></Order></FailoveredVm></Includes></FailoverPlanInfo></FailoverPlan></FailoverPlans></Entities><PagingInfo PageNum="1" PageSize="2" PagesCount="1"/></QueryResult>`,
		"\xef\xbb\xbf<Task><TaskId>task-1</TaskId><State>Finished</State><Result Success=\"True\"><Message>Ok</Message></Result></Task>",
		`<Error Message="Access denied" StatusCode="403" xmlns="http://www.veeam.com/ent/v1.0"/>`,
		`<html><body>502</body></html>`,
		`<QueryResult><PagingInfo PagesCount="-3"/></QueryResult><x/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { decodeAll(t, body) })
}

// FuzzDecodeJSON fuzzes the decoders with EM's JSON, nested and flat list
// forms.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"Refs":null,"Entities":{"FailoverPlans":{"FailoverPlans":[{"Description":"d","FailoverPlanInfo":{"Includes":{"FailoveredVms":[{"FailoveredVmId":"a","Order":"1"}]}},"Name":"p","UID":"urn:veeam:FailoverPlan:AE01E36F-0000-4000-8000-000000000001","Links":[]}]},"CloudFailoverSessions":null},"PagingInfo":{"PageNum":1,"PageSize":200,"PagesCount":1}}`,
		`{"Entities":{"CloudFailoverSessions":[{"UID":"urn:veeam:CloudFailoverSession:x","Progress":250,"CreationTimeUTC":"2015-12-07T17:38:16Z","EndTimeUTC":null}]}}`,
		`{"TaskId":"task-9","State":"Running","Operation":"StartFailoverPlan","Result":{"Success":"false","Message":"m"}}`,
		`{"Tasks":[{"TaskId":"task-1"}]}`,
		`{"FirstChanceExceptionMessage":null,"Message":"Node [root] does not exist.","StackTrace":null,"Status":null,"StatusCode":400}`,
		`{"Entities":{"FailoverPlans":{"FailoverPlans":{"FailoverPlans":{"FailoverPlans":[]}}}}}`,
		`[]`, `null`, `{"PagingInfo":{"PagesCount":1e99}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { decodeAll(t, body) })
}

func TestDecodeListForms(t *testing.T) {
	for name, body := range map[string]string{
		"nested": `{"Entities":{"FailoverPlans":{"FailoverPlans":[{"UID":"urn:veeam:FailoverPlan:A"},{"UID":"b"}]}},"PagingInfo":{"PagesCount":2}}`,
		"flat":   `{"Entities":{"FailoverPlans":[{"UID":"urn:veeam:FailoverPlan:A"},{"UID":"b"}]},"PagingInfo":{"PagesCount":2}}`,
		"xml":    `<QueryResult><Entities><FailoverPlans><FailoverPlan UID="urn:veeam:FailoverPlan:A"/><FailoverPlan UID="b"/></FailoverPlans></Entities><PagingInfo PagesCount="2"/></QueryResult>`,
	} {
		p, err := DecodePlanQuery([]byte(body))
		if err != nil || len(p.Items) != 2 || p.Items[0].ID != "a" || p.Pages != 2 {
			t.Errorf("%s: %+v %v", name, p, err)
		}
	}
	for name, body := range map[string]string{
		"html":       `<html><body>502 Bad Gateway</body></html>`,
		"truncated":  `<QueryResult><Entities><FailoverPlans><FailoverPlan UID="a"`,
		"not query":  `{"foo":1}`,
		"bad list":   `{"Entities":{"FailoverPlans":"x"},"PagingInfo":{}}`,
		"trailing":   `<QueryResult/><QueryResult/>`,
		"empty":      ``,
		"json trunc": `{"Entities":{"FailoverPlans":[{"UID":"a"}`,
	} {
		if _, err := DecodePlanQuery([]byte(body)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestWriteFuzzSeeds regenerates the committed fuzz seeds from simulator
// answers when VEEAM_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	simtest.SkipUnlessWritingSeeds(t)
	s := simtest.Start(t, simulator.Options{Seed: 1, EM: simulator.EMOptions{Plans: 2, VMsPerPlan: 2, CloudSessions: 3, CdpReplicas: 1, VMsPerCdpReplica: 1}})
	for _, f := range formats {
		rec := &simtest.SeedRecorder{Name: func(r *http.Request, status int) string {
			return r.Method + r.URL.Path + "_" + r.URL.Query().Get("type") + r.URL.Query().Get("action") + "_" + strconv.Itoa(status)
		}}
		o := clientOptions(s)
		o.WrapTransport = rec.Wrap
		c := newTestClient(t, o, nil, f)
		ctx := t.Context()
		est := s.Estate().EM
		_, _ = c.ListFailoverPlans(ctx)
		_, _ = c.ListCloudFailoverSessions(ctx)
		_, _ = c.GetFailoverPlan(ctx, est.Plans[0].UID)
		task, _ := c.StartFailoverPlan(ctx, est.Plans[0].UID, nil)
		_, _ = c.GetTask(ctx, task.ID)
		_, _ = c.ListTasks(ctx)
		_, _ = c.GetTask(ctx, "task-999")
		// Tokens and session ids are not in bodies; the logon body holds
		// only the user name and a random session id.
		rec.Write(t, filepath.Join("testdata", "fuzz", "FuzzDecode"+strings.ToUpper(f.String())))
	}
}
