package vbr

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/uuid"
	promconfig "github.com/prometheus/common/config"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/simtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

const target = "vbr-site-a"

func clientOptions(s *simulator.Simulator) veeam.ClientOptions {
	return simtest.ClientOptions(s, target, s.VBRURL())
}

func newTestClient(t *testing.T, o veeam.ClientOptions, now func() time.Time) *Client {
	t.Helper()
	return simtest.NewClient(t, now, func(now func() time.Time) (*Client, error) { return newClient(o, now) })
}

func count(s *simulator.Simulator, method, path string) int {
	return simtest.Count(s, simulator.APIVBR, func(r simulator.Request) bool { return r.Method == method && r.Path == path })
}

// grants counts the token requests by grant type.
func grants(s *simulator.Simulator) map[string]int {
	m := map[string]int{}
	for _, r := range s.Requests(simulator.APIVBR) {
		if r.Path == "/api/oauth2/token" {
			q, _ := url.ParseQuery(r.Body)
			m[strings.ToLower(q.Get("grant_type"))]++
		}
	}
	return m
}

func logins(s *simulator.Simulator) int { return grants(s)["password"] }

func TestListsMatchEstate(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 3, VBR: simulator.VBROptions{Replicas: 451, PointsPerReplica: 3}})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()
	est := s.Estate().VBR

	reps, err := c.ListReplicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != len(est.Replicas) {
		t.Fatalf("%d replicas, want %d", len(reps), len(est.Replicas))
	}
	want := map[string]simulator.VBRReplica{}
	for _, r := range est.Replicas {
		want[strings.ToLower(r.ID)] = r
	}
	for _, r := range reps {
		w, ok := want[r.ID]
		if !ok || r.Name != w.Name || r.State != w.State || r.Type != w.Type || !r.CreationTime.Equal(w.CreationTime.Truncate(time.Microsecond)) ||
			r.JobID != strings.ToLower(w.JobID) || r.PlatformName != w.PlatformName {
			t.Fatalf("replica %+v, want %+v", r, w)
		}
	}
	points, err := c.ListReplicaPoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != len(est.Points) {
		t.Fatalf("%d points, want %d", len(points), len(est.Points))
	}
	wantP := map[string]simulator.VBRReplicaPoint{}
	for _, p := range est.Points {
		wantP[strings.ToLower(p.ID)] = p
	}
	for _, p := range points {
		w, ok := wantP[p.ID]
		if !ok || p.ReplicaID != strings.ToLower(w.ReplicaID) || !p.CreationTime.Equal(w.CreationTime.Truncate(time.Microsecond)) ||
			strings.Join(p.AllowedOperations, ",") != strings.Join(w.AllowedOperations, ",") || p.State != w.State {
			t.Fatalf("point %+v, want %+v", p, w)
		}
	}
	if n := count(s, http.MethodGet, "/api/v1/replicaPoints"); n != 3 {
		t.Errorf("%d page requests for 1353 points, want 3", n)
	}
	r0 := est.Replicas[0]
	of, err := c.ListReplicaPointsOf(ctx, r0.ID)
	if err != nil || len(of) != 3 || of[0].ReplicaID != strings.ToLower(r0.ID) {
		t.Errorf("points of %s: %+v %v", r0.ID, of, err)
	}
	r, err := c.GetReplica(ctx, r0.ID)
	if err != nil || r.Name != r0.Name {
		t.Errorf("GetReplica %+v %v", r, err)
	}
	p, err := c.GetReplicaPoint(ctx, est.Points[7].ID)
	if err != nil || p.ID != strings.ToLower(est.Points[7].ID) {
		t.Errorf("GetReplicaPoint %+v %v", p, err)
	}
	if n := logins(s); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
	for _, r := range s.Requests(simulator.APIVBR) {
		if r.Header.Get("X-Api-Version") != DefaultAPIVersion {
			t.Errorf("%s %s: x-api-version %q", r.Method, r.Path, r.Header.Get("X-Api-Version"))
		}
	}
}

// specRouter loads the trimmed OpenAPI document of a revision.
func specRouter(t *testing.T, rev string) routers.Router {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../../../shared/specs/vbr_rest_" + rev + "_failover_subset.json")
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: "https://vbr.test"}}
	// Veeam's own examples break its schemas (null endTime, skip, limit),
	// so only the schemas are checked.
	r, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRequestsValidateAgainstSpecs runs every call against each revision
// and validates every request the client sent (path, query, headers, body)
// against that revision's OpenAPI document.
func TestRequestsValidateAgainstSpecs(t *testing.T) {
	for _, rev := range []string{"1.2-rev1", "1.3-rev0", "1.3-rev1", "1.3-rev2"} {
		t.Run(rev, func(t *testing.T) {
			router := specRouter(t, rev)
			clk := simtest.NewClock()
			s := simtest.Start(t, simulator.Options{Seed: 5, Now: clk.Now})
			o := clientOptions(s)
			o.APIVersion = rev
			c := newTestClient(t, o, clk.Now)
			ctx := t.Context()
			reps, err := c.ListReplicas(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rev == "1.3-rev2" && reps[0].Type != "Snapshot" {
				t.Errorf("type %q", reps[0].Type)
			}
			if _, err := c.GetReplica(ctx, reps[0].ID); err != nil {
				t.Fatal(err)
			}
			points, err := c.ListReplicaPointsOf(ctx, reps[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.ListReplicaPoints(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetReplicaPoint(ctx, points[0].ID); err != nil {
				t.Fatal(err)
			}
			p := pointAllowing(t, c, FailoverNow)
			sessions, err := c.Failover(ctx, FailoverNow, []string{p.ID}, "site A is down")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetSession(ctx, sessions[0].ID); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ListSessions(ctx, SessionFilter{Types: []string{"Failover"}}); err != nil {
				t.Fatal(err)
			}
			clk.Add(700 * time.Second) // refresh grant
			if _, err := c.ListReplicas(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if g := grants(s); g["password"] != 1 || g["refresh_token"] != 1 {
				t.Errorf("grants %v", g)
			}
			reqs := s.Requests(simulator.APIVBR)
			if n := count(s, http.MethodPost, "/api/oauth2/logout"); n != 1 {
				t.Errorf("%d logouts", n)
			}
			for _, r := range reqs {
				if rev == "1.3-rev1" || rev == "1.3-rev2" {
					r = enumGrantSpelling(r)
				}
				validate(t, router, r)
			}
		})
	}
}

// enumGrantSpelling capitalises a token request's grant_type before
// validation against 1.3-rev1 and later (earlier specs list it in lower
// case): those specs' ELoginGrantType enum says Password,
// but their own description and request example say password (RFC 6749),
// which the client sends first on purpose (veeam-api.md §6.4). The rest of
// the body is validated as sent.
func enumGrantSpelling(r simulator.Request) simulator.Request {
	if r.Path != "/api/oauth2/token" {
		return r
	}
	q, err := url.ParseQuery(r.Body)
	if g := q.Get("grant_type"); err == nil && g != "" {
		q.Set("grant_type", strings.ToUpper(g[:1])+g[1:])
		r.Body = q.Encode()
	}
	return r
}

func validate(t testing.TB, router routers.Router, r simulator.Request) {
	t.Helper()
	u := "https://vbr.test" + r.Path
	if r.RawQuery != "" {
		u += "?" + r.RawQuery
	}
	hr, err := http.NewRequest(r.Method, u, bytes.NewReader([]byte(r.Body)))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header = r.Header.Clone()
	route, params, err := router.FindRoute(hr)
	if err != nil {
		t.Errorf("%s %s: no route in the spec: %v", r.Method, r.Path, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{
		Request: hr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		t.Errorf("%s %s?%s body %q: %v", r.Method, r.Path, r.RawQuery, r.Body, err)
	}
}

func pointAllowing(t *testing.T, c *Client, k FailoverKind) veeam.ReplicaPoint {
	t.Helper()
	points, err := c.ListReplicaPoints(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range points {
		if p.Allows(k.Operation()) {
			return p
		}
	}
	t.Fatalf("no point allows %s", k.Operation())
	return veeam.ReplicaPoint{}
}

func waitSession(t *testing.T, c *Client, id string) veeam.Session {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := c.GetSession(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if s.State == "Stopped" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s still %s", id, s.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEveryFailoverKindTrackedToTheEnd(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 8})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()

	run := func(k FailoverKind, p veeam.ReplicaPoint, wantResult string) veeam.Session {
		t.Helper()
		if !p.Allows(k.Operation()) {
			t.Fatalf("point %s does not allow %s: %v", p.ID, k, p.AllowedOperations)
		}
		sessions, err := c.Failover(ctx, k, []string{p.ID}, "test "+k.String())
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) != 1 || sessions[0].SessionType != k.SessionType() || sessions[0].Result != "" {
			t.Fatalf("%s sessions %+v", k, sessions)
		}
		end := waitSession(t, c, sessions[0].ID)
		if end.Result != wantResult || end.EndTime.IsZero() || end.ProgressPercent != 100 {
			t.Fatalf("%s ended %+v", k, end)
		}
		got, err := c.GetReplicaPoint(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return veeam.Session{ID: got.ID, State: got.State}
	}
	p := pointAllowing(t, c, FailoverNow)
	if st := run(FailoverNow, p, "Success"); st.State != "Failover" {
		t.Errorf("after failover: %s", st.State)
	}
	p, _ = c.GetReplicaPoint(ctx, p.ID)
	if st := run(UndoFailover, p, "Success"); st.State != "Ready" {
		t.Errorf("after undo: %s", st.State)
	}
	p, _ = c.GetReplicaPoint(ctx, p.ID)
	if st := run(PlannedFailover, p, "Success"); st.State != "Failover" {
		t.Errorf("after planned failover: %s", st.State)
	}
	p, _ = c.GetReplicaPoint(ctx, p.ID)
	if st := run(PermanentFailover, p, "Success"); st.State != "PermanentFailover" {
		t.Errorf("after permanent failover: %s", st.State)
	}
	s.SetVBRSessionOutcome("Failed")
	q := pointAllowing(t, c, FailoverNow)
	if st := run(FailoverNow, q, "Failed"); st.State != "FailedFailover" {
		t.Errorf("after failed failover: %s", st.State)
	}
	calls := s.VBRFailoverCalls()
	if len(calls) != 5 || calls[0].Reason != "test failoverNow" {
		t.Errorf("calls %+v", calls)
	}

	// Refused by the server: an operation the point does not allow.
	_, err := c.Failover(ctx, PermanentFailover, []string{pointAllowing(t, c, PlannedFailover).ID}, "")
	var e *veeam.APIError
	if !errors.As(err, &e) || e.Status != 400 || e.Code != "UnexpectedContent" {
		t.Errorf("refused failover: %v", err)
	}
	// Refused by the client before sending.
	for _, ids := range [][]string{nil, {"not-a-uuid"}} {
		if _, err := c.Failover(ctx, FailoverNow, ids, ""); err == nil {
			t.Errorf("Failover(%v) accepted", ids)
		}
	}
	if _, err := c.Failover(ctx, FailoverKind("sideways"), []string{uuid.NewString()}, ""); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestFailoverNeverRetriedBlindly(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 9})
	c := newTestClient(t, clientOptions(s), nil)
	ctx := t.Context()
	p := pointAllowing(t, c, FailoverNow)
	path := FailoverNow.Path()

	for _, f := range []simulator.Fault{
		{PathPrefix: path, Status: 500},
		{PathPrefix: path, Status: 503},
		{PathPrefix: path, Reset: true},
		{PathPrefix: path, Status: 429, RetryAfter: 1},
	} {
		s.ResetRequests()
		s.SetFault(simulator.APIVBR, f)
		if _, err := c.Failover(ctx, FailoverNow, []string{p.ID}, ""); err == nil {
			t.Fatalf("fault %+v: no error", f)
		} else if !strings.Contains(err.Error(), `target "vbr-site-a"`) {
			t.Errorf("error does not name the target: %v", err)
		}
		simtest.Settle(s, simulator.APIVBR)
		if n := count(s, http.MethodPost, path); n != 1 {
			t.Errorf("fault %+v: %d requests, want 1", f, n)
		}
	}
	s.ClearFaults()
	if n := s.VBRFailovers(p.ID); n != 0 {
		t.Errorf("%d failovers executed", n)
	}

	// A 401 on the action is returned, never resent (it may come after
	// the server acted, issue 17); the next call logs in again.
	s.SetFault(simulator.APIVBR, simulator.Fault{ExpireAuth: true, PathPrefix: path})
	if _, err := c.Failover(ctx, FailoverNow, []string{p.ID}, ""); !veeam.IsUnauthorized(err) {
		t.Fatalf("401 on the action: %v", err)
	}
	if n := s.VBRFailovers(p.ID); n != 0 {
		t.Errorf("%d failovers after a refused 401, want 0", n)
	}
	if _, err := c.Failover(ctx, FailoverNow, []string{p.ID}, ""); err != nil {
		t.Fatal(err)
	}
	if n := s.VBRFailovers(p.ID); n != 1 {
		t.Errorf("%d failovers, want 1", n)
	}
	if n := logins(s); n != 1 { // since the log was reset: the re-login
		t.Errorf("%d logins, want 1", n)
	}
}

func TestAuth(t *testing.T) {
	clk := simtest.NewClock()
	s := simtest.Start(t, simulator.Options{Seed: 10, Now: clk.Now, VBR: simulator.VBROptions{Replicas: 300, PointsPerReplica: 4}})
	o := clientOptions(s)
	o.PageConcurrency = 1
	var expireAt atomic.Bool
	o.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return simtest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Query().Get("skip") == "500" && expireAt.CompareAndSwap(true, false) {
				s.SetFault(simulator.APIVBR, simulator.Fault{ExpireAuth: true})
			}
			return rt.RoundTrip(r)
		})
	}
	c := newTestClient(t, o, clk.Now)
	ctx := t.Context()

	// Many reads, concurrent: one login.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.ListReplicas(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if g := grants(s); g["password"] != 1 || len(g) != 1 {
		t.Fatalf("grants %v after 20 reads", g)
	}

	// Refresh before the 900 s expiry; the refresh token is single-use.
	clk.Add(700 * time.Second)
	if _, err := c.ListReplicas(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(700 * time.Second)
	if _, err := c.ListReplicas(ctx); err != nil {
		t.Fatal(err)
	}
	if g := grants(s); g["password"] != 1 || g["refresh_token"] != 2 {
		t.Fatalf("grants %v, want 1 password and 2 refreshes", g)
	}

	// Expiry in the middle of a paged read (ExpiredToken): one new login
	// (the refresh token died too), and the read completes.
	expireAt.Store(true)
	points, err := c.ListReplicaPoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 1200 {
		t.Errorf("%d points, want 1200", len(points))
	}
	if g := grants(s); g["password"] != 2 {
		t.Fatalf("grants %v, want a second login", g)
	}
	var expired int
	for _, r := range s.Requests(simulator.APIVBR) {
		if r.Status == 401 {
			expired++
		}
	}
	if expired != 1 {
		t.Errorf("%d 401s, want 1", expired)
	}

	// Concurrent callers hitting an expiry: one login.
	s.SetFault(simulator.APIVBR, simulator.Fault{ExpireAuth: true, PathPrefix: "/api/v1/"})
	for range 20 {
		wg.Go(func() {
			if _, err := c.GetReplica(ctx, points[0].ReplicaID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if g := grants(s); g["password"] != 3 {
		t.Fatalf("grants %v, want a third login only", g)
	}

	// A refresh that fails (the server forgot the refresh token) falls back
	// to a login.
	s.SetFault(simulator.APIVBR, simulator.Fault{ExpireAuth: true, PathPrefix: "/nothing"})
	s.SetFault(simulator.APIVBR, simulator.Fault{ExpireAuth: true, PathPrefix: "/api/oauth2/token"})
	clk.Add(700 * time.Second)
	if _, err := c.ListReplicas(ctx); err != nil {
		t.Fatal(err)
	}
	if g := grants(s); g["password"] != 4 {
		t.Fatalf("grants %v, want a fourth login after the failed refresh", g)
	}

	// Close logs out: the token dies, calls fail with ErrClosed.
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(s, http.MethodPost, "/api/oauth2/logout"); n != 1 {
		t.Errorf("%d logouts", n)
	}
	if _, err := c.ListReplicas(ctx); !errors.Is(err, veeam.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestErrors(t *testing.T) {
	s := simtest.Start(t, simulator.Options{Seed: 11})
	ctx := t.Context()

	o := clientOptions(s)
	o.Password = "wrong"
	_, err := newTestClient(t, o, nil).ListReplicas(ctx)
	var e *veeam.APIError
	if !errors.As(err, &e) || e.Status != 401 || e.Code != "AccessDenied" || e.Path != "/api/oauth2/token" || e.Target != target {
		t.Fatalf("bad password: %v", err)
	}
	if !veeam.IsUnauthorized(err) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad password error: %v", err)
	}

	o = clientOptions(s)
	o.APIVersion = "9.9-rev9"
	_, err = newTestClient(t, o, nil).ListReplicas(ctx)
	if !errors.As(err, &e) || e.Status != 400 {
		t.Fatalf("unsupported version: %v", err)
	}

	c := newTestClient(t, clientOptions(s), nil)
	_, err = c.GetReplica(ctx, uuid.NewString())
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "NotFound" || !veeam.IsNotFound(err) {
		t.Errorf("unknown replica: %v", err)
	}
	if _, err := c.GetSession(ctx, "x/../../y"); err == nil {
		t.Error("invalid id accepted")
	}

	// Retries: two 500s then success; persistent 500s give up after 3.
	s.ResetRequests()
	s.SetFault(simulator.APIVBR, simulator.Fault{PathPrefix: "/api/v1/replicas", Status: 500, Count: 2})
	if _, err := c.ListReplicas(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(s, http.MethodGet, "/api/v1/replicas"); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	s.ResetRequests()
	s.SetFault(simulator.APIVBR, simulator.Fault{PathPrefix: "/api/v1/replicas", Status: 500})
	_, err = c.ListReplicas(ctx)
	if !errors.As(err, &e) || e.Status != 500 || e.Code != "UnknownError" {
		t.Errorf("persistent 500: %v", err)
	}
	if n := count(s, http.MethodGet, "/api/v1/replicas"); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	if !strings.HasPrefix(err.Error(), `target "vbr-site-a": GET /api/v1/replicas: 500 `) {
		t.Errorf("message %q", err)
	}

	// Garbage and truncated bodies.
	s.SetFault(simulator.APIVBR, simulator.Fault{PathPrefix: "/api/v1/replicas", NonJSON: true})
	_, err = c.ListReplicas(ctx)
	var de *veeam.DecodeError
	if !errors.As(err, &de) || de.Path != "/api/v1/replicas" || de.Target != target {
		t.Errorf("garbage: %v", err)
	}
	s.SetFault(simulator.APIVBR, simulator.Fault{PathPrefix: "/api/v1/replicas", Truncate: true})
	if _, err = c.ListReplicas(ctx); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("truncated: %v", err)
	}
	s.ClearFaults()

	// TLS: a server the client does not trust.
	o = clientOptions(s)
	o.HTTPClientConfig = promconfig.HTTPClientConfig{}
	_, err = newTestClient(t, o, nil).ListReplicas(ctx)
	if err == nil || !strings.Contains(err.Error(), `target "vbr-site-a"`) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unknown CA: %v", err)
	}
}

func TestFailoverKindNames(t *testing.T) {
	if FailoverNow.Operation() != "StartViVMSnapshotReplicaFailover" ||
		UndoFailover.Path() != "/api/v1/failover/undoFailover/vSphere/snapshot" ||
		PermanentFailover.Operation() != "StartViVMSnapshotReplicaPermanentFailover" ||
		PlannedFailover.Operation() != "StartViVMSnapshotReplicaPlannedFailover" {
		t.Error("failover kind names")
	}
}

// TestSpecValidatorCatchesBadRequests guards the contract test: the
// validator must reject what the specs forbid.
func TestSpecValidatorCatchesBadRequests(t *testing.T) {
	router := specRouter(t, "1.3-rev0")
	h := http.Header{"X-Api-Version": {"1.3-rev0"}, "Content-Type": {"application/json"}, "Authorization": {"Bearer x"}}
	for _, r := range []simulator.Request{
		{Method: "POST", Path: FailoverNow.Path(), Header: h, Body: `{"reason":"no points"}`},
		{Method: "POST", Path: FailoverNow.Path(), Header: h, Body: `{"replicaPointIds":"one"}`},
		{Method: "GET", Path: "/api/v1/replicas", RawQuery: "limit=abc", Header: h},
		{Method: "GET", Path: "/api/v1/replicas", RawQuery: "orderColumn=Nonsense", Header: h},
		{Method: "GET", Path: "/api/v1/replicas", Header: http.Header{"Authorization": {"Bearer x"}}},
		{Method: "POST", Path: "/api/oauth2/token", Header: http.Header{"X-Api-Version": {"1.3-rev0"}, "Content-Type": {"application/x-www-form-urlencoded"}}, Body: "grant_type=Sideways"},
	} {
		ft := &failRecorder{}
		validate(ft, router, r)
		if !ft.failed {
			t.Errorf("%s %s?%s %q validated", r.Method, r.Path, r.RawQuery, r.Body)
		}
	}
}

// failRecorder is the part of testing.T that validate uses.
type failRecorder struct {
	testing.TB
	failed bool
}

func (f *failRecorder) Helper()               {}
func (f *failRecorder) Errorf(string, ...any) { f.failed = true }
func (f *failRecorder) Fatal(...any)          { f.failed = true }
