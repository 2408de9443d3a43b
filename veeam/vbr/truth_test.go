package vbr

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/simtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// grantSpellings lists the grant_type values sent, in order.
func grantSpellings(s *simulator.Simulator) []string {
	var out []string
	for _, r := range s.Requests(simulator.APIVBR) {
		if r.Path == "/api/oauth2/token" {
			q, _ := url.ParseQuery(r.Body)
			out = append(out, q.Get("grant_type"))
		}
	}
	return out
}

func TestGrantTypeSpellingFallsBackOnceAndIsRemembered(t *testing.T) {
	for _, tc := range []struct {
		server string
		// want is the grant_type values sent: first login, then a login
		// after the tokens were expired (refresh refused, then password).
		want []string
	}{
		{"", []string{"password", "refresh_token", "password"}},
		{"lower", []string{"password", "refresh_token", "password"}},
		{"capitalised", []string{"password", "Password", "Refresh_token", "Password"}},
	} {
		t.Run("server "+tc.server, func(t *testing.T) {
			clk := simtest.NewClock()
			s := simtest.Start(t, simulator.Options{Seed: 2, Now: clk.Now, VBR: simulator.VBROptions{GrantTypeSpelling: tc.server}})
			c := newTestClient(t, clientOptions(s), clk.Now)
			ctx := t.Context()
			if _, err := c.ListReplicas(ctx); err != nil {
				t.Fatal(err)
			}
			// Near the access token's end the client refreshes.
			clk.Add(14 * time.Minute)
			if _, err := c.ListReplicas(ctx); err != nil {
				t.Fatal(err)
			}
			// The server forgets every token: a 401, a new login.
			s.SetFault(simulator.APIVBR, simulator.Fault{ExpireAuth: true})
			if _, err := c.ListReplicas(ctx); err != nil {
				t.Fatal(err)
			}
			if got := grantSpellings(s); !slices.Equal(got, tc.want) {
				t.Fatalf("grant_type sent %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMultiVMReplicas(t *testing.T) {
	for _, multi := range []bool{false, true} {
		s := simtest.Start(t, simulator.Options{Seed: 6, VBR: simulator.VBROptions{Replicas: 30, PointsPerReplica: 3, MultiVMReplicas: multi}})
		c := newTestClient(t, clientOptions(s), nil)
		ctx := t.Context()
		replicas, err := c.ListReplicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		points, err := c.ListReplicaPoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		byReplica := PointsByReplica(points)
		var target veeam.Replica
		for _, r := range replicas {
			vms := PointsByVM(byReplica[r.ID])
			if !multi && (len(vms) != 1 || r.Name != vms[0].VM+"_replica") {
				t.Fatalf("single-VM replica %q has VMs %+v", r.Name, vms)
			}
			if multi {
				if len(vms) < 2 || !strings.HasPrefix(r.Name, "Replication Job ") {
					t.Fatalf("job replica %q has %d VMs", r.Name, len(vms))
				}
				for _, g := range vms {
					if len(g.Points) != 3 || g.Points[0].CreationTime.Before(g.Points[2].CreationTime) {
						t.Fatalf("VM %s points %+v", g.VM, g.Points)
					}
				}
			}
			if target.ID == "" && r.State == "Ready" && len(vms) == 2 {
				target = r
			}
			perVM, oldest := LatestPerVM(byReplica[r.ID])
			for _, p := range perVM {
				if p.CreationTime.Before(oldest.CreationTime) {
					t.Fatalf("oldest %v is not the oldest of %v", oldest.CreationTime, p.CreationTime)
				}
			}
		}
		if !multi {
			continue
		}
		if target.ID == "" {
			t.Fatal("no Ready two-VM replica")
		}
		// One call with one newest eligible point per VM.
		chosen, missing := NewestEligiblePerVM(byReplica[target.ID], FailoverNow.Operation())
		if len(chosen) != 2 || len(missing) != 0 || chosen[0].Name == chosen[1].Name {
			t.Fatalf("chosen %+v missing %v", chosen, missing)
		}
		for _, p := range chosen {
			for _, q := range byReplica[target.ID] {
				if q.Name == p.Name && q.CreationTime.After(p.CreationTime) && q.Allows(FailoverNow.Operation()) {
					t.Fatalf("%s: point %v is not the newest eligible (%v)", p.Name, p.CreationTime, q.CreationTime)
				}
			}
		}
		sessions, err := c.Failover(ctx, FailoverNow, []string{chosen[0].ID, chosen[1].ID}, "two VMs of one job")
		if err != nil || len(sessions) != 2 {
			t.Fatalf("%+v %v", sessions, err)
		}
		calls := s.VBRFailoverCalls()
		if len(calls) != 1 || len(calls[0].PointIDs) != 2 || count(s, http.MethodPost, FailoverNow.Path()) != 1 {
			t.Fatalf("calls %+v", calls)
		}
		for _, ss := range sessions {
			if end := waitSession(t, c, ss.ID); end.Result != "Success" {
				t.Errorf("session %+v", end)
			}
		}
		// While failed over, no point allows another failover: both VMs
		// are reported missing.
		points, err = c.ListReplicaPointsOf(ctx, target.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, missing := NewestEligiblePerVM(points, FailoverNow.Operation()); len(missing) != 2 {
			t.Errorf("missing %v after the failover, want both VMs", missing)
		}
	}
}

// Issue 17 faults on VBR's failover POST.
func TestFailoverFaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  simulator.Fault
		status int
		ran    int
	}{
		{"500 after the failover", simulator.Fault{Status: 500, AfterAction: true}, 500, 1},
		{"401 after the failover", simulator.Fault{Status: 401, AfterAction: true}, 401, 1},
		{"503 before processing", simulator.Fault{Status: 503}, 503, 0},
		{"429 with retry-after", simulator.Fault{Status: 429, RetryAfter: 3}, 429, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := simtest.Start(t, simulator.Options{Seed: 8})
			c := newTestClient(t, clientOptions(s), nil)
			p := pointAllowing(t, c, FailoverNow)
			tc.fault.Method, tc.fault.Count = http.MethodPost, 1
			tc.fault.PathPrefix = "/api/v1/failover"
			s.SetFault(simulator.APIVBR, tc.fault)
			_, err := c.Failover(t.Context(), FailoverNow, []string{p.ID}, "")
			if veeam.StatusCode(err) != tc.status {
				t.Fatalf("%v, want %d", err, tc.status)
			}
			simtest.Settle(s, simulator.APIVBR)
			if n := count(s, http.MethodPost, FailoverNow.Path()); n != 1 {
				t.Errorf("%d failover requests, want 1", n)
			}
			if n := s.VBRFailovers(p.ID); n != tc.ran {
				t.Errorf("%d failovers carried out, want %d", n, tc.ran)
			}
		})
	}
}

func TestForbiddenNamesTheRole(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 8})
	c := newTestClient(t, clientOptions(s), nil)
	s.SetFault(simulator.APIVBR, simulator.Fault{Status: http.StatusForbidden, PathPrefix: "/api/v1/replicas"})
	_, err := c.ListReplicas(t.Context())
	if veeam.StatusCode(err) != http.StatusForbidden || !strings.Contains(err.Error(), "Veeam Restore Operator") {
		t.Fatalf("%v", err)
	}
}
