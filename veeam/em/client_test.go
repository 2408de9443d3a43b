package em

import (
	"errors"
	"net/http"
	"net/url"
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

const target = "em-hq"

var formats = []Format{JSON, XML}

func clientOptions(s *simulator.Simulator) veeam.ClientOptions {
	return simtest.ClientOptions(s, target, s.EMURL())
}

func newTestClient(t *testing.T, o veeam.ClientOptions, now func() time.Time, f Format) *Client {
	t.Helper()
	return simtest.NewClient(t, now, func(now func() time.Time) (*Client, error) { return newClient(o, now, WithFormat(f)) })
}

func count(s *simulator.Simulator, method, path, query string) int {
	return simtest.Count(s, simulator.APIEM, func(r simulator.Request) bool {
		return r.Method == method && strings.EqualFold(r.Path, path) && strings.Contains(r.RawQuery, query)
	})
}

func logons(s *simulator.Simulator) int { return count(s, http.MethodPost, "/api/sessionMngr/", "") }

func TestListsMatchEstate(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			s := simtest.Start(t, simulator.Options{Seed: 4, EM: simulator.EMOptions{Plans: 401, VMsPerPlan: 3, CloudSessions: 450}})
			c := newTestClient(t, clientOptions(s), nil, f)
			ctx := t.Context()
			est := s.Estate().EM

			plans, err := c.ListFailoverPlans(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(plans) != len(est.Plans) {
				t.Fatalf("%d plans, want %d", len(plans), len(est.Plans))
			}
			want := map[string]simulator.EMPlan{}
			for _, p := range est.Plans {
				want[p.UID] = p
			}
			for _, p := range plans {
				w, ok := want[p.ID]
				if !ok || p.Name != w.Name || p.Description != w.Description || p.ObjectsCount != len(w.VMs) ||
					p.BackupServerID != strings.ToLower(w.BackupServerUID) || p.Status != "" {
					t.Fatalf("plan %+v, want %+v", p, w)
				}
			}
			if n := count(s, http.MethodGet, "/api/query", "type=FailoverPlan"); n != 3 {
				t.Errorf("%d query pages for 401 plans, want 3", n)
			}
			objs, err := c.ListFailoverPlanObjects(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 3*len(est.Plans) || objs[0].PlanID == "" || objs[0].Name == "" || objs[0].BackupServerID == "" {
				t.Fatalf("%d objects (%+v)", len(objs), objs[0])
			}
			p, err := c.GetFailoverPlan(ctx, est.Plans[3].UID)
			if err != nil || p.ID != est.Plans[3].UID || p.ObjectsCount != 3 {
				t.Fatalf("GetFailoverPlan %+v %v", p, err)
			}

			sessions, err := c.ListCloudFailoverSessions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantS := map[string]simulator.EMCloudSession{}
			recent := 0
			for _, cs := range est.CloudSessions {
				wantS[cs.UID] = cs
				if time.Since(cs.CreationTimeUTC) < 30*24*time.Hour-time.Minute {
					recent++
				}
			}
			if len(sessions) < recent || len(sessions) == 0 {
				t.Fatalf("%d sessions, want %d of the last 30 days", len(sessions), recent)
			}
			for _, cs := range sessions {
				w, ok := wantS[cs.ID]
				if !ok || cs.Name != w.Name || cs.State != w.State || cs.Result != w.Result || cs.Progress != w.Progress ||
					!cs.CreationTime.Equal(w.CreationTimeUTC) || cs.FailureMessage != w.FailureMessage ||
					cs.BackupServerID != strings.ToLower(w.BackupServerUID) || cs.JobType != "FailoverPlan" {
					t.Fatalf("session %+v, want %+v", cs, w)
				}
				if (w.EndTimeUTC == nil) != cs.EndTime.IsZero() || (w.EndTimeUTC != nil && !cs.EndTime.Equal(*w.EndTimeUTC)) {
					t.Fatalf("session %s end %v, want %v", cs.ID, cs.EndTime, w.EndTimeUTC)
				}
			}
			pages := (len(sessions) + PageSize - 1) / PageSize
			if n := count(s, http.MethodGet, "/api/query", "type=CloudFailoverSession"); n != pages {
				t.Errorf("%d requests for %d sessions, want %d (one per page)", n, len(sessions), pages)
			}
			if n := logons(s); n != 1 {
				t.Errorf("%d logons, want 1", n)
			}
			for _, r := range s.Requests(simulator.APIEM) {
				accept := r.Header.Get("Accept")
				if (f == XML) == strings.Contains(accept, "json") {
					t.Errorf("%s %s: Accept %q in %s mode", r.Method, r.Path, accept, f)
				}
				if r.Path != "/api/sessionMngr/" && r.Header.Get("X-RestSvcSessionId") == "" {
					t.Errorf("%s %s without the session header", r.Method, r.Path)
				}
			}
			if err := c.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if n := count(s, http.MethodDelete, "/api/logonSessions/", ""); n != 0 {
				t.Errorf("DELETE without a session id: %d", n)
			}
			var deleted int
			for _, r := range s.Requests(simulator.APIEM) {
				if r.Method == http.MethodDelete && strings.HasPrefix(r.Path, "/api/logonSessions/") && r.Status == http.StatusNoContent {
					deleted++
				}
			}
			if deleted != 1 {
				t.Errorf("%d logon sessions ended, want 1", deleted)
			}
		})
	}
}

func TestActionsTrackedToTheEnd(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			s := simtest.Start(t, simulator.Options{Seed: 5})
			c := newTestClient(t, clientOptions(s), nil, f)
			ctx := t.Context()
			est := s.Estate().EM
			plan := est.Plans[0].UID

			task, err := c.StartFailoverPlan(ctx, plan, nil)
			if err != nil {
				t.Fatal(err)
			}
			if task.State != "Running" || task.Operation != "StartFailoverPlan" || !strings.HasPrefix(task.ID, "task-") || task.HasResult {
				t.Fatalf("task %+v", task)
			}
			if end := waitTask(t, c, task.ID); !end.Success || end.Message != "Ok" {
				t.Errorf("start ended %+v", end)
			}
			when := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
			task, err = c.StartFailoverPlan(ctx, plan, &when)
			if err != nil {
				t.Fatal(err)
			}
			waitTask(t, c, task.ID)
			task, err = c.UndoFailoverPlan(ctx, plan)
			if err != nil || task.Operation != "UndoFailoverPlan" {
				t.Fatalf("undo %+v %v", task, err)
			}
			waitTask(t, c, task.ID)
			if n := s.EMPlanStarts(plan); n != 2 {
				t.Errorf("%d starts, want 2", n)
			}
			if n := s.EMPlanUndos(plan); n != 1 {
				t.Errorf("%d undos, want 1", n)
			}

			cdp := est.CdpReplicas[0]
			s.SetEMTaskOutcome(false)
			task, err = c.CdpFailover(ctx, cdp.UID, cdp.VMs[0].UID, CdpFailoverSpec{RestoreAtPointInTime: &when})
			if err != nil || task.Operation != "StartFailover" {
				t.Fatalf("cdp %+v %v", task, err)
			}
			if end := waitTask(t, c, task.ID); end.Success || end.Message == "" {
				t.Errorf("failed cdp task ended %+v", end)
			}
			if n := s.EMCdpFailovers(cdp.VMs[0].UID); n != 1 {
				t.Errorf("%d cdp failovers", n)
			}
			tasks, err := c.ListTasks(ctx)
			if err != nil || len(tasks) != 4 {
				t.Fatalf("tasks %+v %v", tasks, err)
			}

			// The bodies went out in the client's format.
			for _, r := range s.Requests(simulator.APIEM) {
				if r.Method != http.MethodPost || r.Body == "" {
					continue
				}
				ct := r.Header.Get("Content-Type")
				switch f {
				case XML:
					if ct != "application/xml" || !strings.Contains(r.Body, `xmlns="`+Namespace+`"`) {
						t.Errorf("XML body %q (%s)", r.Body, ct)
					}
				case JSON:
					if ct != "application/json" || !strings.HasPrefix(r.Body, "{") {
						t.Errorf("JSON body %q (%s)", r.Body, ct)
					}
				}
				if q, _ := url.ParseQuery(r.RawQuery); q.Get("action") == "start" && strings.Contains(r.Body, "StartDate") &&
					!strings.Contains(r.Body, "2024-05-01T12:00:00Z") {
					t.Errorf("StartDate body %q", r.Body)
				}
			}

			// Input the client refuses before sending.
			for _, spec := range []CdpFailoverSpec{{}, {RestoreCurrent: true, RestoreCurrentVss: true}} {
				if _, err := c.CdpFailover(ctx, cdp.UID, cdp.VMs[0].UID, spec); err == nil {
					t.Errorf("CdpFailover(%+v) accepted", spec)
				}
			}
			if _, err := c.GetTask(ctx, "../logonSessions"); err == nil {
				t.Error("invalid task id accepted")
			}
			if _, err := c.StartFailoverPlan(ctx, "urn:veeam:FailoverPlan:"+strings.ToUpper(plan), nil); err != nil {
				t.Errorf("urn plan id: %v", err)
			}
		})
	}
}

func waitTask(t *testing.T, c *Client, id string) veeam.Task {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		task, err := c.GetTask(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if task.State == "Finished" {
			if !task.HasResult || !task.Finished() {
				t.Fatalf("finished task without a result: %+v", task)
			}
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s", id, task.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSessionAuth(t *testing.T) {
	clk := simtest.NewClock()
	s := simtest.Start(t, simulator.Options{Seed: 6, Now: clk.Now, EM: simulator.EMOptions{CloudSessions: 700}})
	o := clientOptions(s)
	o.PageConcurrency = 1
	var expire atomic.Bool
	o.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return simtest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Query().Get("page") == "3" && expire.CompareAndSwap(true, false) {
				s.SetFault(simulator.APIEM, simulator.Fault{ExpireAuth: true})
			}
			return rt.RoundTrip(r)
		})
	}
	c := newTestClient(t, o, clk.Now, JSON)
	ctx := t.Context()

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.ListFailoverPlans(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := logons(s); n != 1 {
		t.Fatalf("%d logons for 20 reads, want 1", n)
	}

	// Used every 10 minutes the session lives on; 15 idle minutes end it,
	// and the client logs on again without waiting for the 401.
	for range 3 {
		clk.Add(10 * time.Minute)
		if _, err := c.ListFailoverPlans(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := logons(s); n != 1 {
		t.Fatalf("%d logons while in use, want 1", n)
	}
	clk.Add(15 * time.Minute)
	if _, err := c.ListFailoverPlans(ctx); err != nil {
		t.Fatal(err)
	}
	if n := logons(s); n != 2 {
		t.Fatalf("%d logons after idle expiry, want 2", n)
	}

	// Expiry in the middle of a paged read: one 401, one new logon.
	expire.Store(true)
	sessions, err := c.ListCloudFailoverSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) < 600 {
		t.Errorf("%d sessions", len(sessions))
	}
	if n := logons(s); n != 3 {
		t.Fatalf("%d logons, want 3", n)
	}

	// Concurrent callers hitting the expiry: one logon.
	s.SetFault(simulator.APIEM, simulator.Fault{ExpireAuth: true, PathPrefix: "/api/failoverPlans"})
	plan := s.Estate().EM.Plans[0].UID
	for range 20 {
		wg.Go(func() {
			if _, err := c.GetFailoverPlan(ctx, plan); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := logons(s); n != 4 {
		t.Fatalf("%d logons, want 4", n)
	}

	// Close ends the session with DELETE /api/logonSessions/{id}.
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var deleted bool
	for _, r := range s.Requests(simulator.APIEM) {
		if r.Method == http.MethodDelete && strings.HasPrefix(r.Path, "/api/logonSessions/") {
			deleted = r.Status == http.StatusNoContent
		}
	}
	if !deleted {
		t.Error("no DELETE of the logon session answered 204")
	}
	if _, err := c.ListFailoverPlans(ctx); !errors.Is(err, veeam.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestErrorsAndRetries(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			s := simtest.Start(t, simulator.Options{Seed: 7})
			ctx := t.Context()
			o := clientOptions(s)
			o.Password = "wrong"
			_, err := newTestClient(t, o, nil, f).ListFailoverPlans(ctx)
			var e *veeam.APIError
			if !errors.As(err, &e) || e.Status != 401 || e.Target != target || e.Path != "/api/sessionMngr/" || e.Message == "" {
				t.Fatalf("bad password: %v", err)
			}
			if strings.Contains(err.Error(), "wrong") || !veeam.IsUnauthorized(err) {
				t.Errorf("bad password error %q", err)
			}

			c := newTestClient(t, clientOptions(s), nil, f)
			_, err = c.GetFailoverPlan(ctx, uuid.NewString())
			if !errors.As(err, &e) || e.Status != 404 || !veeam.IsNotFound(err) || !strings.Contains(e.Message, "not found") {
				t.Errorf("unknown plan: %v", err)
			}

			s.ResetRequests()
			s.SetFault(simulator.APIEM, simulator.Fault{PathPrefix: "/api/query", Status: 500, Count: 2})
			if _, err := c.ListFailoverPlans(ctx); err != nil {
				t.Fatal(err)
			}
			if n := count(s, http.MethodGet, "/api/query", ""); n != 3 {
				t.Errorf("%d requests, want 3", n)
			}
			s.ResetRequests()
			s.SetFault(simulator.APIEM, simulator.Fault{PathPrefix: "/api/query", Status: 503})
			_, err = c.ListCloudFailoverSessions(ctx)
			if !errors.As(err, &e) || e.Status != 503 || !strings.Contains(e.Message, "Simulated fault") {
				t.Errorf("persistent 503: %v", err)
			}
			if n := count(s, http.MethodGet, "/api/query", ""); n != 3 {
				t.Errorf("%d requests, want 3", n)
			}
			if !strings.HasPrefix(err.Error(), `target "em-hq": GET /api/query: 503 `) {
				t.Errorf("message %q", err)
			}

			s.SetFault(simulator.APIEM, simulator.Fault{PathPrefix: "/api/query", NonJSON: true})
			_, err = c.ListFailoverPlans(ctx)
			var de *veeam.DecodeError
			if !errors.As(err, &de) || de.Path != "/api/query" || de.Target != target {
				t.Errorf("garbage: %v", err)
			}
			s.SetFault(simulator.APIEM, simulator.Fault{PathPrefix: "/api/query", Truncate: true})
			if _, err := c.ListFailoverPlans(ctx); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
				t.Errorf("truncated: %v", err)
			}

			// Actions are sent once whatever goes wrong, except a 401.
			plan := s.Estate().EM.Plans[1].UID
			path := "/api/failoverPlans/" + plan
			for _, fault := range []simulator.Fault{{PathPrefix: path, Status: 500}, {PathPrefix: path, Reset: true}} {
				s.ResetRequests()
				s.SetFault(simulator.APIEM, fault)
				if _, err := c.StartFailoverPlan(ctx, plan, nil); err == nil {
					t.Errorf("fault %+v: no error", fault)
				}
				simtest.Settle(s, simulator.APIEM)
				if n := count(s, http.MethodPost, path, "action=start"); n != 1 {
					t.Errorf("fault %+v: %d requests, want 1", fault, n)
				}
			}
			if n := s.EMPlanStarts(plan); n != 0 {
				t.Errorf("%d starts executed", n)
			}
			// A 401 on the action is returned, not resent: it may come
			// after EM acted (issue 17). Here EM did not act; the next
			// call logs on again and works.
			s.ResetRequests()
			s.SetFault(simulator.APIEM, simulator.Fault{PathPrefix: path, ExpireAuth: true})
			if _, err := c.StartFailoverPlan(ctx, plan, nil); !veeam.IsUnauthorized(err) {
				t.Fatalf("401 on the action: %v", err)
			}
			simtest.Settle(s, simulator.APIEM)
			if n := count(s, http.MethodPost, path, "action=start"); n != 1 || s.EMPlanStarts(plan) != 0 {
				t.Errorf("%d requests and %d starts after a 401, want 1 and 0", n, s.EMPlanStarts(plan))
			}
			if _, err := c.StartFailoverPlan(ctx, plan, nil); err != nil {
				t.Fatal(err)
			}
			if n := s.EMPlanStarts(plan); n != 1 {
				t.Errorf("%d starts, want 1", n)
			}
			s.ClearFaults()
		})
	}
}

func TestUnknownCA(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 8})
	o := clientOptions(s)
	o.HTTPClientConfig = promconfig.HTTPClientConfig{}
	_, err := newTestClient(t, o, nil, JSON).ListFailoverPlans(t.Context())
	if err == nil || !strings.Contains(err.Error(), `target "em-hq"`) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v", err)
	}
}
