package vspc

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/simtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// serverVM is a VM as one backup server sees it (lower-case ids).
type serverVM struct{ server, vm string }

// wantRecoveryPoints is the truth, from the simulator's estate: per backup
// server and VM, the newest Replication point of each job, and the oldest of
// those when several jobs replicate the VM.
func wantRecoveryPoints(e simulator.VSPCEstate) map[serverVM]time.Time {
	low := strings.ToLower
	perJob := map[[3]string]time.Time{}
	for _, b := range e.Backups {
		if b.BackupType != "Replication" || b.LatestRestorePointDate == nil {
			continue
		}
		k := [3]string{low(b.BackupServerUID), low(b.VirtualMachineUID), low(b.JobUID)}
		if t, ok := perJob[k]; !ok || b.LatestRestorePointDate.After(t) {
			perJob[k] = *b.LatestRestorePointDate
		}
	}
	want := map[serverVM]time.Time{}
	for k, t := range perJob {
		sv := serverVM{k[0], k[1]}
		if cur, ok := want[sv]; !ok || t.Before(cur) {
			want[sv] = t
		}
	}
	return want
}

func TestReplicationRestorePoints(t *testing.T) {
	// 400 plans of 3 VMs: about 1,500 chains, three pages of 500 even
	// after the type filter.
	s := simtest.Start(t, simulator.Options{Seed: 21, VSPC: simulator.VSPCOptions{Plans: 400, ObjectsPerPlan: 3}})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()
	e := s.Estate().VSPC

	got, err := c.ListReplicationRestorePoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := wantRecoveryPoints(e)
	if len(want) < 1000 {
		t.Fatalf("estate has %d recovery points", len(want))
	}
	for sv, wt := range want {
		if g := got[RecoveryPointKey(sv.server, sv.vm)]; !g.Time.Equal(wt) {
			t.Fatalf("VM %s on %s: recovery point %v, want %v", sv.vm, sv.server, g.Time, wt)
		}
	}
	// Every Backup chain is newer than the VM's replica: reading them as
	// recovery points would hide a stale replica.
	var newer int
	for _, b := range e.Backups {
		if b.BackupType == "Backup" {
			if wt, ok := want[serverVM{strings.ToLower(b.BackupServerUID), strings.ToLower(b.VirtualMachineUID)}]; ok && b.LatestRestorePointDate.After(wt) {
				newer++
			}
		}
	}
	if newer == 0 {
		t.Fatal("no backup chain newer than its replica: the test could not catch a missing type filter")
	}
	// One paged list, never a request per VM.
	if n := count(s, http.MethodGet, "/protectedWorkloads/virtualMachines/backups"); n < 1 || n > 5 {
		t.Errorf("%d list requests", n)
	}
	for _, r := range s.Requests(simulator.APIVSPC) {
		if strings.Contains(r.Path, "replicaRestorePoints") {
			t.Fatalf("per-VM request %s", r.Path)
		}
	}

	// The join: every plan object finds the replica of its own backup
	// server, the others are missing, and the plan's point is the oldest
	// over its VMs.
	objs, err := c.ListFailoverPlanObjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What keying by VM alone (newest over every chain) would report.
	newestAnywhere := map[string]time.Time{}
	for sv, wt := range want {
		if wt.After(newestAnywhere[sv.vm]) {
			newestAnywhere[sv.vm] = wt
		}
	}
	truth := func(o veeam.FailoverPlanObject) (time.Time, bool) {
		wt, ok := want[serverVM{o.BackupServerID, o.ID}]
		return wt, ok
	}
	byPlan := map[string][]veeam.FailoverPlanObject{}
	var missing, otherServer, otherServerOnly int
	for _, o := range objs {
		if o.BackupServerID == "" {
			t.Fatalf("object %s has no backup server", o.Name)
		}
		byPlan[o.PlanID] = append(byPlan[o.PlanID], o)
		wt, inTruth := truth(o)
		p, ok := RecoveryPointOf(o, got)
		switch {
		case !ok && inTruth:
			t.Fatalf("object %s not joined", o.Name)
		case ok && !inTruth:
			t.Fatalf("object %s joined to %+v, a replica of another backup server", o.Name, p)
		case ok && !p.Time.Equal(wt):
			t.Fatalf("object %s: %v, want %v", o.Name, p.Time, wt)
		case !ok:
			missing++
		}
		if n := newestAnywhere[o.ID]; !n.IsZero() && !n.Equal(wt) {
			otherServer++
			if !inTruth {
				otherServerOnly++
			}
		}
	}
	if missing == 0 || missing > len(objs)/5 {
		t.Errorf("%d of %d objects without a recovery point", missing, len(objs))
	}
	if otherServer == 0 || otherServerOnly == 0 {
		t.Errorf("%d VMs with a fresher replica on another server, %d with one there only: the test could not catch a join by VM alone", otherServer, otherServerOnly)
	}
	for plan, os := range byPlan {
		oldest, miss, ok := PlanRecoveryPoint(os, got)
		var w time.Time
		for _, o := range os {
			if t0, found := truth(o); found && (w.IsZero() || t0.Before(w)) {
				w = t0
			}
		}
		if ok != !w.IsZero() || !oldest.Equal(w) {
			t.Fatalf("plan %s: oldest %v %v, want %v", plan, oldest, ok, w)
		}
		for _, m := range miss {
			if _, found := truth(m); found {
				t.Fatalf("plan %s: %s reported missing", plan, m.Name)
			}
		}
	}
}

// TestRecoveryPointJoin: a VM seen by two backup servers, and replicated by
// two jobs of one of them. A plan object takes its own server's replica
// and, of two jobs, the older of their newest points (the plan may fail
// over to either); only an object without a backup server is joined by VM
// alone, and then to the oldest candidate.
func TestRecoveryPointJoin(t *testing.T) {
	const (
		vm      = "5f0c6a9e-1111-4a5b-9c3d-000000000001"
		siteA   = "aaaaaaaa-0000-4000-8000-00000000000a"
		siteB   = "bbbbbbbb-0000-4000-8000-00000000000b"
		noPoint = "5f0c6a9e-1111-4a5b-9c3d-000000000002"
	)
	at := func(h int) time.Time { return time.Date(2026, 5, 1, h, 0, 0, 0, time.UTC) }
	chain := func(server, job, id string, h int) veeam.RecoveryPoint {
		return veeam.RecoveryPoint{VMID: vm, BackupServerID: server, JobID: job, BackupID: id, Time: at(h)}
	}
	points := RecoveryPoints([]veeam.RecoveryPoint{
		chain(siteA, "job-1", "a1-old", 2),
		chain(siteA, "job-1", "a1", 9), // job 1's newest
		chain(siteA, "job-2", "a2", 6), // job 2 is behind: the honest point
		chain(siteB, "job-3", "b3", 11),
		{VMID: noPoint, BackupServerID: siteA, JobID: "job-1"}, // no restore point yet
		{BackupServerID: siteA, JobID: "job-1", Time: at(12)},  // no VM id
	})
	for _, tc := range []struct {
		name         string
		obj          veeam.FailoverPlanObject
		want         string // BackupID, "" when none
		wantHour     int
		wantNotFound bool
	}{
		{name: "site A, two jobs", obj: veeam.FailoverPlanObject{ID: vm, BackupServerID: siteA}, want: "a2", wantHour: 6},
		{name: "site B", obj: veeam.FailoverPlanObject{ID: vm, BackupServerID: siteB}, want: "b3", wantHour: 11},
		{name: "upper-case ids", obj: veeam.FailoverPlanObject{ID: strings.ToUpper(vm), BackupServerID: strings.ToUpper(siteB)}, want: "b3", wantHour: 11},
		{name: "by the session's protected VM", obj: veeam.FailoverPlanObject{ID: "other", ProtectedVMID: vm, BackupServerID: siteB}, want: "b3", wantHour: 11},
		{name: "another server has no replica", obj: veeam.FailoverPlanObject{ID: vm, BackupServerID: "cccccccc-0000-4000-8000-00000000000c"}, wantNotFound: true},
		{name: "no backup server: oldest candidate", obj: veeam.FailoverPlanObject{ID: vm}, want: "a2", wantHour: 6},
		{name: "no restore point", obj: veeam.FailoverPlanObject{ID: noPoint, BackupServerID: siteA}, wantNotFound: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := RecoveryPointOf(tc.obj, points)
			if tc.wantNotFound {
				if ok {
					t.Fatalf("joined to %+v, want none", p)
				}
				return
			}
			if !ok || p.BackupID != tc.want || !p.Time.Equal(at(tc.wantHour)) {
				t.Fatalf("joined to %+v (%v), want chain %s at %v", p, ok, tc.want, at(tc.wantHour))
			}
		})
	}
	// A plan of the VM on site A and a VM without a point: site A's
	// honest point, and one VM missing.
	oldest, missing, ok := PlanRecoveryPoint([]veeam.FailoverPlanObject{{ID: vm, BackupServerID: siteA}, {ID: noPoint, BackupServerID: siteA}}, points)
	if !ok || !oldest.Equal(at(6)) || len(missing) != 1 || missing[0].ID != noPoint {
		t.Fatalf("plan: %v %v missing %+v", oldest, ok, missing)
	}
}

func TestNeverRunPlansHaveNoRestoreSession(t *testing.T) {
	for _, fields := range []bool{false, true} {
		name := "null"
		if fields {
			name = "object of nulls"
		}
		t.Run(name, func(t *testing.T) {
			s := simtest.Start(t, simulator.Options{Seed: 3, VSPC: simulator.VSPCOptions{Plans: 40, ObjectsPerPlan: 2, NeverRunSessionFields: fields}})
			c := newTestClient(t, clientOptions(s), nil)
			neverRan := map[string]bool{}
			for _, p := range s.Estate().VSPC.Plans {
				if p.Status == "Ready" && p.LastSession == nil {
					neverRan[strings.ToLower(p.InstanceUID)] = true
				}
			}
			if len(neverRan) == 0 {
				t.Fatal("no never-run plan in the estate")
			}
			objs, err := c.ListFailoverPlanObjects(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var seen, ran int
			for _, o := range objs {
				if !neverRan[o.PlanID] {
					if o.RestoreStatus != "" {
						ran++
					}
					continue
				}
				seen++
				if o.RestoreStatus != "" || !o.RestoreStartTime.IsZero() || !o.RestorePointTime.IsZero() || !o.RestoreEndTime.IsZero() || o.ProtectedVMID != "" {
					t.Errorf("never-run object %s has a session: %+v", o.Name, o)
				}
			}
			if seen == 0 || ran == 0 {
				t.Fatalf("%d never-run objects, %d with a session", seen, ran)
			}
		})
	}
}

func TestAsyncResultsExpire(t *testing.T) {
	clk := simtest.NewClock()
	s := simtest.Start(t, simulator.Options{Seed: 9, Now: clk.Now, ActionDuration: 10 * time.Second,
		VSPC: simulator.VSPCOptions{AsyncSuccessRetention: time.Minute, AsyncFailureRetention: 3 * time.Minute}})
	c := newTestClient(t, clientOptions(s), clk.Now)
	ctx := t.Context()
	plan := readyPlan(t, s)
	act, err := c.StartFailoverPlan(ctx, plan, StartOptions{}, uuid.NewString())
	if err != nil || act == nil {
		t.Fatalf("%+v %v", act, err)
	}
	clk.Add(11 * time.Second)
	if got, err := c.GetAsyncAction(ctx, act.ID); err != nil || got.Status != "succeed" {
		t.Fatalf("%+v %v", got, err)
	}
	// It ended 1s ago (at 10s).
	clk.Add(58 * time.Second)
	if _, err := c.GetAsyncAction(ctx, act.ID); err != nil {
		t.Fatalf("within retention: %v", err)
	}
	clk.Add(2 * time.Second)
	_, err = c.GetAsyncAction(ctx, act.ID)
	if !errors.Is(err, veeam.ErrNotFound) {
		t.Fatalf("after retention: %v, want ErrNotFound", err)
	}
	// The plan's own status still tells the outcome.
	if p, err := c.GetFailoverPlan(ctx, plan); err != nil || p.Status != "Success" {
		t.Fatalf("%+v %v", p, err)
	}

	// A failure is kept longer.
	s.SetVSPCActionOutcome("Failed")
	act, err = c.UndoFailoverPlan(ctx, plan, uuid.NewString())
	if err != nil || act == nil {
		t.Fatalf("%+v %v", act, err)
	}
	clk.Add(10*time.Second + 2*time.Minute)
	if got, err := c.GetAsyncAction(ctx, act.ID); err != nil || got.Status != "failed" {
		t.Fatalf("failed action after 2m: %+v %v", got, err)
	}
	clk.Add(time.Minute)
	if _, err := c.GetAsyncAction(ctx, act.ID); !errors.Is(err, veeam.ErrNotFound) {
		t.Fatalf("failed action after 3m: %v", err)
	}
}

func TestAsyncReadsAreFollowed(t *testing.T) {
	for _, async := range []bool{false, true} {
		s := simtest.Start(t, simulator.Options{Seed: 5, VSPC: simulator.VSPCOptions{Plans: 30, ObjectsPerPlan: 2, AsyncReads: async}})
		c := newTestClient(t, clientOptions(s), nil)
		c.pollEvery = 10 * time.Millisecond
		plans, err := c.ListFailoverPlans(t.Context())
		if err != nil {
			t.Fatalf("async %v: %v", async, err)
		}
		if len(plans) != 30 {
			t.Fatalf("async %v: %d plans", async, len(plans))
		}
		p, err := c.GetFailoverPlan(t.Context(), plans[3].ID)
		if err != nil || p.ID != plans[3].ID {
			t.Fatalf("async %v: %+v %v", async, p, err)
		}
		pts, err := c.ListReplicationRestorePoints(t.Context())
		if err != nil || len(pts) == 0 {
			t.Fatalf("async %v: %d points, %v", async, len(pts), err)
		}
		polls := 0
		for _, r := range s.Requests(simulator.APIVSPC) {
			if strings.HasSuffix(r.Path, "/result") {
				polls++
			}
		}
		if async != (polls > 0) {
			t.Errorf("async %v: %d async results read", async, polls)
		}
	}
}

func TestMFAAccountSaysUseAnAPIKey(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 1, VSPC: simulator.VSPCOptions{MFA: true}})
	c := newTestClient(t, clientOptions(s), nil)
	_, err := c.ListFailoverPlans(t.Context())
	if !errors.Is(err, veeam.ErrMFARequired) || !strings.Contains(err.Error(), "this account requires MFA; use an API key") {
		t.Fatalf("%v", err)
	}
	// An API key works on the same server.
	o := clientOptions(s)
	o.Username, o.Password, o.APIKey = "", "", simulator.DefaultVSPCAPIKey
	if _, err := newTestClient(t, o, nil).ListFailoverPlans(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestStartParameterNameFollowsAPIVersion(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ version, param string }{
		{"3.5.1", "date-time"}, {"3.6", "dateTime"}, {"3.6.1", "dateTime"}, {"", "dateTime"},
	} {
		s := simtest.Start(t, simulator.Options{Seed: 2})
		o := clientOptions(s)
		o.APIVersion = tc.version
		c := newTestClient(t, o, nil)
		plan := readyPlan(t, s)
		if _, err := c.StartFailoverPlan(t.Context(), plan, StartOptions{DateTime: &at}, uuid.NewString()); err != nil {
			t.Fatalf("%s: %v", tc.version, err)
		}
		var q string
		for _, r := range s.Requests(simulator.APIVSPC) {
			if strings.HasSuffix(r.Path, "/start") {
				q = r.RawQuery
			}
		}
		if !strings.Contains(q, tc.param+"=") || (tc.param == "dateTime" && strings.Contains(q, "date-time")) {
			t.Errorf("version %q: query %q, want %s", tc.version, q, tc.param)
		}
		// The simulator moved the restore sessions to the point in time:
		// it read the parameter under the name it expects.
		for _, ob := range s.Estate().VSPC.Objects {
			if strings.EqualFold(ob.PlanUID, plan) && ob.RestoreSession != nil &&
				(ob.RestoreSession.RestorePointDateTime == nil || ob.RestoreSession.RestorePointDateTime.After(at)) {
				t.Errorf("version %q: object %s restore point %v after %v", tc.version, ob.Name, ob.RestoreSession.RestorePointDateTime, at)
			}
		}
	}
}

func TestForbiddenNamesTheRole(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 1})
	c := newTestClient(t, clientOptions(s), nil)
	s.SetFault(simulator.APIVSPC, simulator.Fault{Status: http.StatusForbidden, Method: http.MethodPost})
	_, err := c.StartFailoverPlan(t.Context(), readyPlan(t, s), StartOptions{}, uuid.NewString())
	if veeam.StatusCode(err) != http.StatusForbidden || !strings.Contains(err.Error(), "Portal Operator") {
		t.Fatalf("%v", err)
	}
	if strings.Contains(err.Error(), simulator.DefaultPassword) {
		t.Fatal("secret in error")
	}
}

// Issue 17 faults on VSPC's start POST; the counters say how often VSPC
// really started the plan.
func TestActionFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fault   simulator.Fault
		status  int // 0: no error
		started int
		posts   int
	}{
		{"520 after the start", simulator.Fault{Status: 500, AfterAction: true}, 520, 1, 1},
		// The 401 is followed by one new login and a resend with the same
		// X-Request-id, which VSPC answers from its idempotency store.
		{"401 after the start", simulator.Fault{Status: 401, AfterAction: true}, 0, 1, 2},
		{"520 before processing", simulator.Fault{Status: 500}, 520, 0, 1},
		{"429 with retryAfter", simulator.Fault{Status: 429, RetryAfter: 9}, 429, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := simtest.Start(t, simulator.Options{Seed: 9})
			c := newTestClient(t, clientOptions(s), nil)
			plan := readyPlan(t, s)
			tc.fault.Method, tc.fault.Count = http.MethodPost, 1
			tc.fault.PathPrefix = APIRoot + "/infrastructure"
			s.SetFault(simulator.APIVSPC, tc.fault)
			_, err := c.StartFailoverPlan(t.Context(), plan, StartOptions{}, uuid.NewString())
			if veeam.StatusCode(err) != tc.status || (tc.status == 0) != (err == nil) {
				t.Fatalf("%v, want status %d", err, tc.status)
			}
			if tc.status == 429 {
				var e *veeam.APIError
				if !errors.As(err, &e) || e.RetryAfter != 9*time.Second {
					t.Errorf("retry after: %v", err)
				}
			}
			simtest.Settle(s, simulator.APIVSPC)
			if n := count(s, http.MethodPost, "/infrastructure/backupServers/failoverplans/"+plan+"/start"); n != tc.posts {
				t.Errorf("%d start requests, want %d", n, tc.posts)
			}
			if n := s.VSPCPlanStarts(plan); n != tc.started {
				t.Errorf("%d starts carried out, want %d", n, tc.started)
			}
		})
	}
}

// What VSPC does with test=true on a Local plan is unknown: both ways.
func TestTestStartOfALocalPlan(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		s := simtest.Start(t, simulator.Options{Seed: 9, VSPC: simulator.VSPCOptions{RefuseTestOnLocal: refuse}})
		c := newTestClient(t, clientOptions(s), nil)
		var plan string
		for _, p := range s.Estate().VSPC.Plans {
			if p.Status == "Ready" && p.Type == "Local" {
				plan = p.InstanceUID
				break
			}
		}
		if plan == "" {
			t.Fatal("no Ready Local plan")
		}
		_, err := c.StartFailoverPlan(t.Context(), plan, StartOptions{Test: true}, uuid.NewString())
		if refuse != (veeam.StatusCode(err) == http.StatusBadRequest) || (!refuse && err != nil) {
			t.Fatalf("refuse %v: %v", refuse, err)
		}
		if n := s.VSPCPlanStarts(plan); (n == 1) == refuse {
			t.Errorf("refuse %v: %d starts", refuse, n)
		}
	}
}
