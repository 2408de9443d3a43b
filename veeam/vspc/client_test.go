package vspc

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	promconfig "github.com/prometheus/common/config"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/simtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

const target = "vspc-main"

func clientOptions(s *simulator.Simulator) veeam.ClientOptions {
	return simtest.ClientOptions(s, target, s.VSPCURL())
}

func newTestClient(t *testing.T, o veeam.ClientOptions, now func() time.Time) *Client {
	t.Helper()
	return simtest.NewClient(t, now, func(now func() time.Time) (*Client, error) { return newClient(o, now) })
}

// count counts logged requests matching method and path (suffix after
// /api/v3).
func count(s *simulator.Simulator, method, path string) int {
	return simtest.Count(s, simulator.APIVSPC, func(r simulator.Request) bool {
		return r.Method == method && strings.EqualFold(r.Path, APIRoot+path)
	})
}

func logins(s *simulator.Simulator) int { return count(s, http.MethodPost, "/token") }

func TestListsMatchEstate(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 7, VSPC: simulator.VSPCOptions{Plans: 1001, ObjectsPerPlan: 2, BackupServers: 3}})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()
	est := s.Estate().VSPC

	plans, err := c.ListFailoverPlans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != len(est.Plans) {
		t.Fatalf("%d plans, want %d", len(plans), len(est.Plans))
	}
	byID := map[string]veeam.FailoverPlan{}
	for _, p := range plans {
		byID[p.ID] = p
	}
	for _, want := range est.Plans {
		got, ok := byID[strings.ToLower(want.InstanceUID)]
		if !ok {
			t.Fatalf("plan %s missing", want.InstanceUID)
		}
		if got.Name != want.Name || got.Status != want.Status || got.Type != want.Type ||
			got.BackupServerID != strings.ToLower(want.BackupServerUID) || got.TenantID != strings.ToLower(want.TenantUID) ||
			got.ObjectsCount != want.ObjectsCount {
			t.Fatalf("plan %s: got %+v, want %+v", want.InstanceUID, got, want)
		}
		if (got.LastSession == nil) != (want.LastSession == nil) {
			t.Fatalf("plan %s: last session %v, want %v", want.InstanceUID, got.LastSession, want.LastSession)
		}
		if ls := want.LastSession; ls != nil {
			if got.LastSession.Status != ls.Status || got.LastSession.ID != strings.ToLower(ls.InstanceUID) ||
				(ls.EndTime != nil && !got.LastSession.EndTime.Equal(*ls.EndTime)) {
				t.Fatalf("plan %s: last session %+v, want %+v", want.InstanceUID, got.LastSession, ls)
			}
		}
		if got.ID != strings.ToLower(got.ID) {
			t.Fatalf("id %q not lower-case", got.ID)
		}
	}
	if n := count(s, http.MethodGet, "/infrastructure/backupServers/failoverplans"); n != 3 {
		t.Errorf("%d page requests for 1001 plans, want 3", n)
	}

	objs, err := c.ListFailoverPlanObjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(est.Objects) {
		t.Fatalf("%d objects, want %d", len(objs), len(est.Objects))
	}
	wantObj := map[string]simulator.VSPCPlanObject{}
	for _, o := range est.Objects {
		wantObj[strings.ToLower(o.PlanUID+"/"+o.InstanceUID)] = o
	}
	for _, o := range objs {
		w, ok := wantObj[o.PlanID+"/"+o.ID]
		if !ok {
			t.Fatalf("unexpected object %+v", o)
		}
		if o.Name != w.Name || o.HostName != w.HostName {
			t.Fatalf("object %+v, want %+v", o, w)
		}
		if rs := w.RestoreSession; rs != nil {
			if o.RestoreStatus != rs.BackupStatus || !o.RestoreStartTime.Equal(rs.StartDateTime) ||
				(rs.RestorePointDateTime != nil && !o.RestorePointTime.Equal(*rs.RestorePointDateTime)) ||
				(rs.RestorePointUID != nil && o.RestorePointID != strings.ToLower(*rs.RestorePointUID)) {
				t.Fatalf("object restore %+v, want %+v", o, rs)
			}
		} else if o.RestoreStatus != "" {
			t.Fatalf("object %s has restore status %q without a session", o.ID, o.RestoreStatus)
		}
	}

	// By server and by plan.
	server := est.Plans[0].BackupServerUID
	byServer, err := c.ListFailoverPlansByServer(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	wantN := 0
	for _, p := range est.Plans {
		if p.BackupServerUID == server {
			wantN++
		}
	}
	if len(byServer) != wantN || wantN == 0 {
		t.Errorf("%d plans of server %s, want %d", len(byServer), server, wantN)
	}
	objsByServer, err := c.ListFailoverPlanObjectsByServer(ctx, server)
	if err != nil || len(objsByServer) != 2*wantN {
		t.Errorf("%d objects of server, want %d (%v)", len(objsByServer), 2*wantN, err)
	}
	planObjs, err := c.ListPlanObjects(ctx, est.Plans[5].InstanceUID)
	if err != nil || len(planObjs) != 2 || planObjs[0].PlanID != strings.ToLower(est.Plans[5].InstanceUID) {
		t.Errorf("plan objects %+v %v", planObjs, err)
	}
	p, err := c.GetFailoverPlan(ctx, est.Plans[3].InstanceUID)
	if err != nil || p.Name != est.Plans[3].Name {
		t.Errorf("GetFailoverPlan = %+v, %v", p, err)
	}
	if n := logins(s); n != 1 {
		t.Errorf("%d logins across the reads, want 1", n)
	}
}

func TestTokenSharedAcrossCallers(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 1})
	c := newTestClient(t, clientOptions(s), nil)
	est := s.Estate().VSPC
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if _, err := c.GetFailoverPlan(t.Context(), est.Plans[i%len(est.Plans)].InstanceUID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for range 5 {
		if _, err := c.ListFailoverPlanObjects(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := logins(s); n != 1 {
		t.Errorf("%d logins for 45 calls, want 1", n)
	}
	for _, r := range s.Requests(simulator.APIVSPC) {
		if r.Path != APIRoot+"/token" && r.Header.Get("Authorization") == "" {
			t.Errorf("%s %s without Authorization", r.Method, r.Path)
		}
	}
}

func TestExpiryInTheMiddleOfAPagedRead(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 2, VSPC: simulator.VSPCOptions{Plans: 1700, ObjectsPerPlan: 1}})
	o := clientOptions(s)
	o.PageConcurrency = 1 // pages in order, so the expiry hits the middle
	var expired atomic.Bool
	o.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return simtest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Query().Get("offset") == "1000" && expired.CompareAndSwap(false, true) {
				s.SetFault(simulator.APIVSPC, simulator.Fault{ExpireAuth: true})
			}
			return rt.RoundTrip(r)
		})
	}
	c := newTestClient(t, o, nil)
	plans, err := c.ListFailoverPlans(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 1700 {
		t.Errorf("%d plans, want 1700", len(plans))
	}
	if n := logins(s); n != 2 {
		t.Errorf("%d logins, want 2 (one re-login after the expiry)", n)
	}
	var unauthorized int
	for _, r := range s.Requests(simulator.APIVSPC) {
		if r.Status == http.StatusUnauthorized {
			unauthorized++
		}
	}
	if unauthorized != 1 {
		t.Errorf("%d 401s, want 1", unauthorized)
	}
}

func TestConcurrentCallersHittingExpiryLogInOnce(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 3})
	c := newTestClient(t, clientOptions(s), nil)
	est := s.Estate().VSPC
	if _, err := c.ListFailoverPlans(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.SetFault(simulator.APIVSPC, simulator.Fault{ExpireAuth: true, PathPrefix: APIRoot + "/infrastructure"})
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if _, err := c.GetFailoverPlan(t.Context(), est.Plans[i%len(est.Plans)].InstanceUID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := logins(s); n != 2 {
		t.Errorf("%d logins, want 2 (the first and one after the expiry)", n)
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	clk := simtest.NewClock()
	s := simtest.Start(t, simulator.Options{Seed: 4, Now: clk.Now})
	c := newTestClient(t, clientOptions(s), clk.Now)
	read := func() {
		t.Helper()
		if _, err := c.ListFailoverPlans(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	grants := func() (pw, rt int) {
		for _, r := range s.Requests(simulator.APIVSPC) {
			if r.Path != APIRoot+"/token" {
				continue
			}
			q, _ := url.ParseQuery(r.Body)
			switch q.Get("grant_type") {
			case "password":
				pw++
			case "refresh_token":
				rt++
			}
		}
		return pw, rt
	}
	read()
	clk.Add(50 * time.Minute) // past 3/4 of the hour
	read()
	clk.Add(50 * time.Minute)
	read() // a second refresh: the first refresh token was single-use
	if pw, rt := grants(); pw != 1 || rt != 2 {
		t.Fatalf("%d password and %d refresh grants, want 1 and 2", pw, rt)
	}
	// The server forgets every token: the refresh fails, a login follows.
	s.SetFault(simulator.APIVSPC, simulator.Fault{ExpireAuth: true, PathPrefix: APIRoot + "/infrastructure"})
	clk.Add(50 * time.Minute)
	read()
	if pw, rt := grants(); pw != 2 || rt != 3 {
		t.Fatalf("%d password and %d refresh grants, want 2 and 3", pw, rt)
	}
}

func TestAPIKey(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 5})
	o := clientOptions(s)
	o.Username, o.Password = "", ""
	o.APIKey = promconfig.Secret(simulator.DefaultVSPCAPIKey)
	o.APIVersion = "3.6.1"
	// The CA from a file this time (tls_config.ca_file).
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, s.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	o.HTTPClientConfig.TLSConfig = promconfig.TLSConfig{CAFile: caFile}
	c := newTestClient(t, o, nil)
	if _, err := c.ListFailoverPlans(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := logins(s); n != 0 {
		t.Errorf("%d token requests with an API key", n)
	}
	for _, r := range s.Requests(simulator.APIVSPC) {
		if r.Header.Get("X-Client-Version") != "3.6.1" {
			t.Errorf("X-Client-Version %q", r.Header.Get("X-Client-Version"))
		}
	}
	o.APIKey = "wrong-key"
	bad := newTestClient(t, o, nil)
	_, err := bad.ListFailoverPlans(t.Context())
	var e *veeam.APIError
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || !veeam.IsUnauthorized(err) {
		t.Fatalf("bad key: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-key") {
		t.Errorf("error leaks the key: %v", err)
	}
}

func TestBadCredentials(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 5})
	o := clientOptions(s)
	o.Password = "not-the-password"
	c := newTestClient(t, o, nil)
	_, err := c.ListFailoverPlans(t.Context())
	var e *veeam.APIError
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *veeam.APIError", err)
	}
	if e.Status != 400 || e.Kind != "invalid_request" || e.Target != target || e.Path != APIRoot+"/token" {
		t.Errorf("error %+v", e)
	}
	if strings.Contains(err.Error(), "not-the-password") || !strings.Contains(err.Error(), `target "vspc-main"`) {
		t.Errorf("message %q", err)
	}
	if n := logins(s); n != 1 {
		t.Errorf("a refused login was retried: %d", n)
	}
}

func TestRetries(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 6})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()
	if _, err := c.ListFailoverPlans(ctx); err != nil {
		t.Fatal(err)
	}
	const path = "/infrastructure/backupServers/failoverplans"

	s.ResetRequests()
	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: APIRoot + path, Status: 500, Count: 2})
	if _, err := c.ListFailoverPlans(ctx); err != nil {
		t.Fatalf("two 520s then success: %v", err)
	}
	if n := count(s, http.MethodGet, path); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}

	s.ResetRequests()
	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: APIRoot + path, Status: 500})
	_, err := c.ListFailoverPlans(ctx)
	var e *veeam.APIError
	if !errors.As(err, &e) || e.Status != 520 || e.Code != "500" || e.Kind != "unspecified" {
		t.Fatalf("persistent 520: %v", err)
	}
	if n := count(s, http.MethodGet, path); n != veeam.DefaultRetryAttempts {
		t.Errorf("%d requests, want %d", n, veeam.DefaultRetryAttempts)
	}
	if !strings.HasPrefix(err.Error(), `target "vspc-main": GET /api/v3/infrastructure/backupServers/failoverplans: 520 `) {
		t.Errorf("message %q", err)
	}

	// Connection resets are retried too.
	s.ResetRequests()
	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: APIRoot + path, Reset: true, Count: 1})
	if _, err := c.ListFailoverPlans(ctx); err != nil {
		t.Fatalf("reset then success: %v", err)
	}
	s.ClearFaults()
}

func TestRetryAfter(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 6})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()
	if _, err := c.ListFailoverPlans(ctx); err != nil {
		t.Fatal(err)
	}
	const path = APIRoot + "/infrastructure/backupServers/failoverplans"
	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: path, Status: 429, RetryAfter: 1, Count: 1})
	start := time.Now()
	if _, err := c.ListFailoverPlans(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %s, before retryAfter", d)
	}

	// A deadline before the retryAfter: the 429 comes back at once.
	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: path, Status: 429, RetryAfter: 30})
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start = time.Now()
	_, err := c.ListFailoverPlans(short)
	var e *veeam.APIError
	if !errors.As(err, &e) || e.Status != 429 || e.RetryAfter != 30*time.Second {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("waited %s", d)
	}
	s.ClearFaults()
}

func TestStartTrackedToTheEnd(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 8})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()
	plan := readyPlan(t, s)
	rid := uuid.NewSHA1(uuid.NameSpaceOID, []byte("rule/plan/group")).String()
	when := time.Now().Add(-time.Hour)
	act, err := c.StartFailoverPlan(ctx, plan, StartOptions{DateTime: &when}, rid)
	if err != nil {
		t.Fatal(err)
	}
	if act != nil {
		t.Fatalf("short action answered async: %+v", act)
	}
	p := waitStatus(t, c, plan, "Success")
	if p.LastSession == nil || p.LastSession.Status != "Success" {
		t.Errorf("last session %+v", p.LastSession)
	}
	// The request carried the key and the parameters.
	var found bool
	for _, r := range s.Requests(simulator.APIVSPC) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/start") {
			found = true
			q, _ := url.ParseQuery(r.RawQuery)
			if r.Header.Get("X-Request-id") != rid || q.Get("test") != "false" || q.Get("dateTime") != when.UTC().Format(time.RFC3339) {
				t.Errorf("start request %s %v %v", r.RawQuery, r.Header.Get("X-Request-id"), q)
			}
		}
	}
	if !found {
		t.Fatal("no start request logged")
	}
	// Resending the same key within five minutes does not start again.
	if _, err := c.StartFailoverPlan(ctx, plan, StartOptions{DateTime: &when}, rid); err != nil {
		t.Fatal(err)
	}
	if n := s.VSPCPlanStarts(plan); n != 1 {
		t.Errorf("%d starts, want 1", n)
	}

	// Undo, tracked back to Ready.
	undoID := uuid.NewString()
	if _, err := c.UndoFailoverPlan(ctx, plan, undoID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, plan, "Ready")

	// A start the plan refuses (not Ready) is a 409 error, not retried.
	if err := s.SetVSPCPlanStatus(plan, "Failed"); err != nil {
		t.Fatal(err)
	}
	_, err = c.StartFailoverPlan(ctx, plan, StartOptions{Test: true}, uuid.NewString())
	var e *veeam.APIError
	if !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("start of a failed plan: %v", err)
	}
}

func TestAsyncAction(t *testing.T) {
	clk := simtest.NewClock()
	s := simtest.Start(t, simulator.Options{Seed: 9, Now: clk.Now, ActionDuration: 10 * time.Second})
	c := newTestClient(t, clientOptions(s), clk.Now)
	ctx := t.Context()
	plan := readyPlan(t, s)
	rid := uuid.NewString()
	act, err := c.StartFailoverPlan(ctx, plan, StartOptions{}, rid)
	if err != nil {
		t.Fatal(err)
	}
	if act == nil || act.ID != rid || act.Status != "running" {
		t.Fatalf("action %+v, want running %s", act, rid)
	}
	got, err := c.GetAsyncAction(ctx, act.ID)
	if err != nil || got.Status != "running" {
		t.Fatalf("%+v %v", got, err)
	}
	clk.Add(11 * time.Second)
	got, err = c.GetAsyncAction(ctx, act.ID)
	if err != nil || got.Status != "succeed" || got.ID != rid {
		t.Fatalf("%+v %v", got, err)
	}
	p, err := c.GetFailoverPlan(ctx, plan)
	if err != nil || p.Status != "Success" {
		t.Fatalf("%+v %v", p, err)
	}
	// Undo that ends failed: the async action says so.
	s.SetVSPCActionOutcome("Failed")
	act, err = c.UndoFailoverPlan(ctx, plan, uuid.NewString())
	if err != nil || act == nil {
		t.Fatalf("%+v %v", act, err)
	}
	clk.Add(11 * time.Second)
	got, err = c.GetAsyncAction(ctx, act.ID)
	if err != nil || got.Status != "failed" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := c.GetAsyncAction(ctx, uuid.NewString()); !veeam.IsNotFound(err) {
		t.Errorf("unknown action: %v", err)
	}
}

func TestPostsAreNotRetriedBlindly(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 10})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()
	plan := readyPlan(t, s)
	startPath := APIRoot + "/infrastructure/backupServers/failoverplans/" + plan + "/start"
	if _, err := c.ListFailoverPlans(ctx); err != nil { // log in first
		t.Fatal(err)
	}

	// A 520 on a POST is final.
	s.ResetRequests()
	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: startPath, Status: 500})
	_, err := c.StartFailoverPlan(ctx, plan, StartOptions{}, uuid.NewString())
	var e *veeam.APIError
	if !errors.As(err, &e) || e.Status != 520 {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.Requests(simulator.APIVSPC)); n != 1 {
		t.Errorf("%d requests for a failed POST, want 1", n)
	}

	// A reset before any answer: resent once with the same X-Request-id.
	s.ResetRequests()
	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: startPath, Reset: true, Count: 1})
	rid := uuid.NewString()
	if _, err := c.StartFailoverPlan(ctx, plan, StartOptions{}, rid); err != nil {
		t.Fatal(err)
	}
	simtest.Settle(s, simulator.APIVSPC)
	reqs := s.Requests(simulator.APIVSPC)
	if len(reqs) != 2 || reqs[0].Header.Get("X-Request-id") != rid || reqs[1].Header.Get("X-Request-id") != rid {
		t.Fatalf("requests %+v", reqs)
	}
	if n := s.VSPCPlanStarts(plan); n != 1 {
		t.Errorf("%d starts, want 1", n)
	}

	// Two resets: the client gives up after one resend.
	s.ResetRequests()
	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: APIRoot + "/infrastructure/backupServers/failoverplans/" + plan + "/undo", Reset: true})
	_, err = c.UndoFailoverPlan(ctx, plan, uuid.NewString())
	var re *veeam.RequestError
	if !errors.As(err, &re) || re.Target != target {
		t.Fatalf("err = %v", err)
	}
	simtest.Settle(s, simulator.APIVSPC)
	if n := len(s.Requests(simulator.APIVSPC)); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	s.ClearFaults()

	// A 401 means not executed: one new login and one resend, same key.
	s.ResetRequests()
	s.SetFault(simulator.APIVSPC, simulator.Fault{ExpireAuth: true, PathPrefix: APIRoot + "/infrastructure"})
	if err := s.SetVSPCPlanStatus(plan, "Success"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UndoFailoverPlan(ctx, plan, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	if n := s.VSPCPlanUndos(plan); n != 1 {
		t.Errorf("%d undos, want 1", n)
	}
	if n := logins(s); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
}

func TestPatch(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 11})
	c := newTestClient(t, clientOptions(s), nil)
	plan := s.Estate().VSPC.Plans[0].InstanceUID
	ops := []PatchOp{
		{Op: "replace", Path: "/preFailoverCommand", Value: `C:\pre.ps1`},
		{Op: "replace", Path: "/preFailoverScriptEnabled", Value: false},
	}
	p, err := c.PatchFailoverPlan(t.Context(), plan, ops, uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != strings.ToLower(plan) {
		t.Errorf("patched plan %+v", p)
	}
	est := s.Estate().VSPC.Plans[0]
	if est.PreFailoverCommand == nil || *est.PreFailoverCommand != `C:\pre.ps1` || est.PreFailoverScriptEnabled == nil || *est.PreFailoverScriptEnabled {
		t.Errorf("estate after patch: %+v", est)
	}
	_, err = c.PatchFailoverPlan(t.Context(), plan, []PatchOp{{Op: "replace", Path: "/nonexistent", Value: 1}}, uuid.NewString())
	var e *veeam.APIError
	if !errors.As(err, &e) || e.Status != 400 || e.Code != "1001" {
		t.Errorf("bad patch: %v", err)
	}
}

func TestDecodeAndTransportErrors(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 12})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()
	const path = APIRoot + "/infrastructure/backupServers/failoverplans"
	if _, err := c.ListFailoverPlans(ctx); err != nil {
		t.Fatal(err)
	}

	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: path, NonJSON: true})
	_, err := c.ListFailoverPlans(ctx)
	var de *veeam.DecodeError
	if !errors.As(err, &de) || de.Target != target || de.Path != path {
		t.Errorf("garbage: %v", err)
	}

	s.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: path, Truncate: true})
	_, err = c.ListFailoverPlans(ctx)
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF") || !strings.Contains(err.Error(), `target "vspc-main"`) {
		t.Errorf("truncated: %v", err)
	}
	s.ClearFaults()

	// Invalid ids and keys never reach the server.
	s.ResetRequests()
	for _, err := range []error{
		func() error { _, err := c.GetFailoverPlan(ctx, "../../about"); return err }(),
		func() error {
			_, err := c.StartFailoverPlan(ctx, uuid.NewString(), StartOptions{}, "not-a-uuid")
			return err
		}(),
		func() error { _, err := c.UndoFailoverPlan(ctx, uuid.NewString(), ""); return err }(),
	} {
		if err == nil {
			t.Error("invalid input accepted")
		}
	}
	if n := len(s.Requests(simulator.APIVSPC)); n != 0 {
		t.Errorf("%d requests for invalid input", n)
	}
	if _, err := c.GetFailoverPlan(ctx, uuid.NewString()); !veeam.IsNotFound(err) {
		t.Errorf("unknown plan: %v", err)
	}

	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListFailoverPlans(ctx); !errors.Is(err, veeam.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestUnknownCA(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 13})
	o := clientOptions(s)
	o.HTTPClientConfig = promconfig.HTTPClientConfig{}
	c := newTestClient(t, o, nil)
	_, err := c.ListFailoverPlans(t.Context())
	if err == nil || !strings.Contains(err.Error(), `target "vspc-main"`) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.Requests(simulator.APIVSPC)); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}

func readyPlan(t *testing.T, s *simulator.Simulator) string {
	t.Helper()
	for _, p := range s.Estate().VSPC.Plans {
		if p.Status == "Ready" {
			return p.InstanceUID
		}
	}
	t.Fatal("no Ready plan")
	return ""
}

func waitStatus(t *testing.T, c *Client, plan, status string) veeam.FailoverPlan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := c.GetFailoverPlan(t.Context(), plan)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status == status {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("plan status %s, want %s", p.Status, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
