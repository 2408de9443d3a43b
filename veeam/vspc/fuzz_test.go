package vspc

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

func lowerID(t *testing.T, id string) {
	if id != strings.ToLower(id) {
		t.Fatalf("id %q not lower-case", id)
	}
}

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
				lowerID(t, p.ID)
				lowerID(t, p.BackupServerID)
			}
		}
		if objs, _, err := DecodePlanObjects(body); err == nil {
			for _, o := range objs {
				lowerID(t, o.ID)
				lowerID(t, o.PlanID)
			}
		}
		if p, err := DecodePlan(body); err == nil {
			lowerID(t, p.ID)
		}
		if a, err := DecodeAsyncAction(body); err == nil {
			lowerID(t, a.ID)
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
	if os.Getenv("VEEAM_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set VEEAM_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	clk := newFakeClock()
	s := startSim(t, simulator.Options{Seed: 1, Now: clk.Now, ActionDuration: 5e9, VSPC: simulator.VSPCOptions{Plans: 3, ObjectsPerPlan: 2, BackupServers: 1}})
	var mu sync.Mutex
	bodies := map[string][]byte{}
	o := clientOptions(s)
	o.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return rtFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if err != nil || r.URL.Path == APIRoot+"/token" { // token answers hold tokens
				return resp, err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(b))
			mu.Lock()
			bodies[r.Method+r.URL.Path+"_"+strconv.Itoa(resp.StatusCode)] = b
			mu.Unlock()
			return resp, nil
		})
	}
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
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeJSON")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	clean := regexp.MustCompile(`[^A-Za-z0-9_]+`)
	uuidRe := regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	for name, b := range bodies {
		if len(b) == 0 {
			continue
		}
		name = uuidRe.ReplaceAllString(name, "id")
		file := filepath.Join(dir, "sim_"+strings.Trim(clean.ReplaceAllString(name, "_"), "_"))
		if err := os.WriteFile(file, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
