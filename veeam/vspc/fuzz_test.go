package vspc

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/simtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// FuzzDecodeJSON runs every VSPC decoder on arbitrary bodies: no panics,
// normalised ids, no negative totals. Seeds under testdata/fuzz are
// simulator answers (TestWriteFuzzSeeds).
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"data":[{"instanceUid":"27A8BAF5-179E-4EAE-81D5-772AA2331562","name":"Media","backupServerUid":"DF997BD3-4AE9-4841-8152-8FF5CC703EAB","type":"Local","objectsCount":5,"status":"InProgress","tenantUid":null,"lastSession":{"instanceUid":"x","endTime":"2024-01-01T00:00:00Z","status":"Success","message":null}}],"meta":{"pagingInfo":{"total":1,"count":1,"offset":0}}}`,
		`{"data":[{"instanceUid":"a","planUid":"B","restoreSession":{"backupStatus":"Running","restorePointUid":null,"restorePointDateTime":"bogus","startDateTime":"2024-01-01T00:00:00+02:00","endDateTime":null}}],"meta":null}`,
		`{"data":{"id":"A","status":"Running"}}`,
		`{"errors":[{"message":"Property value must be larger or equal to 0.","type":"logical","code":400,"parameterName":"offset"}]}`,
		`{"errors":[{"type":"transport","code":429,"retryAfter":25}]}`,
		`{"error":{"code":"UnsupportedApiVersion","message":"no","innerError":null}}`,
		`{"error":"invalid_grant","error_description":"bad","error_uri":null}`,
		`{"data":[],"meta":{"pagingInfo":{"total":-1}}}`,
		`{"data":null}`, `<html>garbage</html>`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if plans, total, err := DecodePlans(body); err == nil {
			if total < 0 {
				t.Fatalf("total %d", total)
			}
			for _, p := range plans {
				simtest.LowerID(t, p.ID)
				simtest.LowerID(t, p.BackupServerID)
			}
		}
		if objs, _, err := DecodePlanObjects(body); err == nil {
			for _, o := range objs {
				simtest.LowerID(t, o.ID)
				simtest.LowerID(t, o.PlanID)
			}
		}
		if p, err := DecodePlan(body); err == nil {
			simtest.LowerID(t, p.ID)
		}
		if a, err := DecodeAsyncAction(body); err == nil {
			simtest.LowerID(t, a.ID)
		}
		for _, st := range []int{400, 429, 520} {
			e := parseError("t", "GET", "/p", &veeam.Response{Status: st, Header: http.Header{}, Body: body})
			if e.Message == "" || e.RetryAfter < 0 {
				t.Fatalf("error %+v", e)
			}
		}
		_, _ = classify(&veeam.Response{Status: 429, Header: http.Header{}, Body: body})
		_ = asyncActionID(string(body))
	})
}

func TestAsyncActionID(t *testing.T) {
	id := uuid.NewString()
	for loc, want := range map[string]string{
		"https://vspc:1280/api/v3/asyncActions/" + strings.ToUpper(id): id,
		"/api/v3/asyncActions/" + id + "/result":                       id,
		"https://vspc:1280/api/v3/other/" + id:                         "",
		"":                                                             "",
	} {
		if got := asyncActionID(loc); got != want {
			t.Errorf("asyncActionID(%q) = %q, want %q", loc, got, want)
		}
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz from simulator answers when
// VEEAM_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	simtest.SkipUnlessWritingSeeds(t)
	clk := simtest.NewClock()
	s := simtest.Start(t, simulator.Options{Seed: 1, Now: clk.Now, ActionDuration: 5e9, VSPC: simulator.VSPCOptions{Plans: 3, ObjectsPerPlan: 2, BackupServers: 1}})
	rec := &simtest.SeedRecorder{Name: func(r *http.Request, status int) string {
		if r.URL.Path == APIRoot+"/token" { // token answers hold tokens
			return ""
		}
		return simtest.SeedName(r, status)
	}}
	o := clientOptions(s)
	o.WrapTransport = rec.Wrap
	c := newTestClient(t, o, clk.Now)
	ctx := t.Context()
	plan := readyPlan(t, s)
	_, _ = c.ListFailoverPlans(ctx)
	_, _ = c.ListFailoverPlanObjects(ctx)
	_, _ = c.GetFailoverPlan(ctx, plan)
	act, _ := c.StartFailoverPlan(ctx, plan, StartOptions{}, uuid.NewString())
	if act != nil {
		_, _ = c.GetAsyncAction(ctx, act.ID)
	}
	_, _ = c.StartFailoverPlan(ctx, plan, StartOptions{}, uuid.NewString()) // 409
	_, _ = c.GetFailoverPlan(ctx, uuid.NewString())                         // 404
	s.SetFault(simulator.APIVSPC, simulator.Fault{Status: 429, RetryAfter: 3})
	_, _ = c.GetAsyncAction(ctx, uuid.NewString())
	s.ClearFaults()
	rec.Write(t, filepath.Join("testdata", "fuzz", "FuzzDecodeJSON"))
}
