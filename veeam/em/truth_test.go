package em

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/simtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// A CDP failover task that finished with Success only says EM took the
// request; the restore session it links to holds the outcome, which may be
// Failed.
func TestCdpFailoverOutcomeIsTheRestoreSession(t *testing.T) {
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			for _, result := range []string{"Success", "Failed"} {
				s := simtest.Start(t, simulator.Options{Seed: 4, ActionDuration: 100 * time.Millisecond})
				c := newTestClient(t, clientOptions(s), nil, f)
				ctx := t.Context()
				s.SetEMRestoreSessionResult(result)
				cdp := s.Estate().EM.CdpReplicas[0]
				task, err := c.CdpFailover(ctx, cdp.UID, cdp.VMs[0].UID, CdpFailoverSpec{RestoreCurrent: true})
				if err != nil {
					t.Fatal(err)
				}
				if task.RestoreSessionID != "" {
					t.Fatalf("running task links a session already: %+v", task)
				}
				end := waitTask(t, c, task.ID)
				if !end.Success || end.RestoreSessionID == "" {
					t.Fatalf("finished task %+v: want Success with a Related restore session", end)
				}
				// The session is still running when the task finished.
				rs, err := c.GetRestoreSession(ctx, end.RestoreSessionID)
				if err != nil {
					t.Fatal(err)
				}
				if rs.Finished() || rs.Result != "None" || !rs.EndTime.IsZero() || rs.ID != end.RestoreSessionID {
					t.Fatalf("session right after the task: %+v", rs)
				}
				deadline := time.Now().Add(5 * time.Second)
				for !rs.Finished() && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					if rs, err = c.GetRestoreSession(ctx, "urn:veeam:RestoreSession:"+end.RestoreSessionID); err != nil {
						t.Fatal(err)
					}
				}
				if !rs.Finished() || rs.Result != result || rs.EndTime.IsZero() {
					t.Fatalf("session %+v, want Stopped %s", rs, result)
				}
				if (result == "Failed") != (rs.FailureMessage != "") {
					t.Errorf("failure message %q for %s", rs.FailureMessage, result)
				}
			}
		})
	}
	s := simtest.Start(t, simulator.Options{Seed: 4})
	c := newTestClient(t, clientOptions(s), nil, JSON)
	if _, err := c.GetRestoreSession(t.Context(), "3f1e0c1a-8a59-4a0e-9c4e-3b8f3f2f9a11"); !errors.Is(err, veeam.ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
}

func TestPlanTasksFinishAtSubmission(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 4, ActionDuration: time.Hour, EM: simulator.EMOptions{TasksFinishAtSubmission: true}})
	c := newTestClient(t, clientOptions(s), nil, XML)
	plan := s.Estate().EM.Plans[0].UID
	task, err := c.StartFailoverPlan(t.Context(), plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The action answer shows it Running; the next read shows it finished
	// ("Ok") although the failover itself takes an hour: a finished task
	// is no completion signal.
	end := waitTask(t, c, task.ID)
	if !end.Success || end.Message != "Ok" || end.RestoreSessionID != "" {
		t.Fatalf("%+v", end)
	}
}

// After a new logon, the tasks of the old logon session are gone: the
// client says so through LogonGeneration.
func TestLogonGenerationTellsTasksAreGone(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 4, ActionDuration: time.Hour})
	c := newTestClient(t, clientOptions(s), nil, JSON)
	ctx := t.Context()
	if g := c.LogonGeneration(); g != 0 {
		t.Fatalf("generation %d before any call", g)
	}
	plan := s.Estate().EM.Plans[0].UID
	task, err := c.StartFailoverPlan(ctx, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	if task.LogonGeneration != 1 || c.LogonGeneration() != 1 {
		t.Fatalf("task generation %d, client %d; want 1 and 1", task.LogonGeneration, c.LogonGeneration())
	}
	if _, err := c.GetTask(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	// EM ends the logon session (restart, idle); a read logs on again.
	s.SetFault(simulator.APIEM, simulator.Fault{ExpireAuth: true, Count: 1})
	if _, err := c.GetFailoverPlan(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if c.LogonGeneration() != 2 || s.EMLogons() != 2 {
		t.Fatalf("generation %d, %d logons", c.LogonGeneration(), s.EMLogons())
	}
	if task.LogonGeneration >= c.LogonGeneration() {
		t.Fatal("the task's logon session is not seen as past")
	}
	// And indeed EM no longer shows it.
	if _, err := c.GetTask(ctx, task.ID); !errors.Is(err, veeam.ErrNotFound) {
		t.Fatalf("old task after re-logon: %v", err)
	}
}

// Issue 17 faults: carried out then 500 or 401, and refused before
// processing; the counters tell how often EM really acted.
func TestActionFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fault   simulator.Fault
		status  int
		started int
	}{
		{"500 after the start", simulator.Fault{Status: 500, AfterAction: true}, 500, 1},
		{"401 after the start", simulator.Fault{Status: 401, AfterAction: true}, 401, 1},
		{"503 before processing", simulator.Fault{Status: 503}, 503, 0},
		{"429 with retry-after", simulator.Fault{Status: 429, RetryAfter: 7}, 429, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := simtest.Start(t, simulator.Options{Seed: 4})
			c := newTestClient(t, clientOptions(s), nil, JSON)
			plan := s.Estate().EM.Plans[0].UID
			if _, err := c.ListFailoverPlans(t.Context()); err != nil { // logged on
				t.Fatal(err)
			}
			tc.fault.Method = http.MethodPost
			tc.fault.Count = 1
			s.SetFault(simulator.APIEM, tc.fault)
			_, err := c.StartFailoverPlan(t.Context(), plan, nil)
			if veeam.StatusCode(err) != tc.status {
				t.Fatalf("%v, want status %d", err, tc.status)
			}
			simtest.Settle(s, simulator.APIEM)
			if n := count(s, http.MethodPost, "/api/failoverPlans/"+plan, "action=start"); n != 1 {
				t.Errorf("%d start requests, want 1 (never resent)", n)
			}
			if n := s.EMPlanStarts(plan); n != tc.started {
				t.Errorf("%d starts carried out, want %d", n, tc.started)
			}
			if tc.status == 401 && strings.Contains(err.Error(), simulator.DefaultPassword) {
				t.Error("secret in error")
			}
		})
	}
}

func TestForbiddenNamesTheRole(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 4})
	c := newTestClient(t, clientOptions(s), nil, XML)
	s.SetFault(simulator.APIEM, simulator.Fault{Status: http.StatusForbidden, PathPrefix: "/api/failoverPlans"})
	_, err := c.GetFailoverPlan(t.Context(), s.Estate().EM.Plans[0].UID)
	if veeam.StatusCode(err) != http.StatusForbidden || !strings.Contains(err.Error(), "Restore Operator") {
		t.Fatalf("%v", err)
	}
}
