package simulator

// Contract tests: every B&R response the simulator sends for the in-scope
// paths, and every request these tests send, is validated against Veeam's
// own OpenAPI documents (shared/specs/vbr_rest_<rev>_failover_subset.json)
// with kin-openapi, for each of the four supported x-api-version values.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// vbrSpecDir is where CI puts the shared/ checkout: beside the repository.
const vbrSpecDir = "../../../shared/specs"

type vbrContract struct {
	t       *testing.T
	doc     *openapi3.T
	router  routers.Router
	base    string
	version string
	token   string
	// covered records operationId → statuses seen, to prove that every
	// operation was exercised.
	covered map[string]map[int]bool
}

func loadVBRContract(t *testing.T, version, serverURL string) *vbrContract {
	t.Helper()
	path := filepath.Join(vbrSpecDir, "vbr_rest_"+version+"_failover_subset.json")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenAPI spec %s not found: the contract tests need the shared/ checkout beside the repository (…/main and …/shared)", path)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	// The documents name different servers (https://example.com:9419,
	// https://api.example.com:9419, "/"): route against the simulator.
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	// Veeam's own examples do not validate against its schemas (nulls in
	// non-nullable members, activityId instead of jobId), so examples are
	// not checked; schemas are.
	router, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		t.Fatalf("building a router for %s: %v", path, err)
	}
	return &vbrContract{t: t, doc: doc, router: router, base: serverURL, version: version, covered: map[string]map[int]bool{}}
}

type vbrExchange struct {
	method, path, body string
	// noVersion leaves out x-api-version; noAuth leaves out the bearer.
	noVersion, noAuth bool
	// invalidRequest marks requests that are wrong on purpose, so they
	// are not validated.
	invalidRequest bool
	want           int
}

// do sends one request in a subtest named after the route and status,
// validates request and response, and returns the decoded body.
func (c *vbrContract) do(x vbrExchange) (out map[string]any) {
	c.t.Helper()
	ctype := "application/json"
	if strings.HasPrefix(x.path, "/api/oauth2/") {
		ctype = "application/x-www-form-urlencoded"
	}
	newReq := func() *http.Request {
		r, err := http.NewRequest(x.method, c.base+x.path, strings.NewReader(x.body))
		if err != nil {
			c.t.Fatal(err)
		}
		if !x.noVersion {
			r.Header.Set("x-api-version", c.version)
		}
		if !x.noAuth && c.token != "" {
			r.Header.Set("Authorization", "Bearer "+c.token)
		}
		if x.body != "" || x.method == http.MethodPost {
			r.Header.Set("Content-Type", ctype)
		}
		r.Header.Set("Accept", "application/json")
		return r
	}
	vreq := newReq()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		c.t.Fatalf("%s %s: no route in the %s spec: %v", x.method, x.path, c.version, err)
	}
	c.t.Run(fmt.Sprintf("%s %s %d", x.method, route.Path, x.want), func(t *testing.T) {
		in := &openapi3filter.RequestValidationInput{
			Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
		}
		if !x.invalidRequest {
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("request does not match the %s spec: %v", c.version, err)
			}
		}
		res, err := http.DefaultClient.Do(newReq())
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != x.want {
			t.Fatalf("status %d, want %d: %s", res.StatusCode, x.want, body)
		}
		op := route.Operation.OperationID
		if c.covered[op] == nil {
			c.covered[op] = map[int]bool{}
		}
		c.covered[op][res.StatusCode] = true
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("body is not a JSON object: %v: %s", err, body)
		}
		stripped, _ := json.Marshal(vbrStripNulls(out))
		if route.Operation.Responses.Status(res.StatusCode) == nil && route.Operation.Responses.Default() == nil {
			// The specs declare no 400 for GET operations, yet the server
			// refuses a missing x-api-version or a bad query with 400 and
			// an Error body: check the body against Error.
			var v any
			_ = json.Unmarshal(stripped, &v)
			if err := c.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
				t.Errorf("undeclared %d body is not an Error: %v", res.StatusCode, err)
			}
			return
		}
		rin := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
			Body:    io.NopCloser(bytes.NewReader(stripped)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
			t.Errorf("response does not match the %s spec: %v\nbody: %s", c.version, err, body)
		}
	})
	return out
}

// vbrStripNulls drops object members that are null. The product's
// serializer writes unset optional members as null ("result": null,
// "resourceId": null: see the 201 examples and the real 401 capture), while
// the OpenAPI 3.0 documents do not mark them nullable. A required member
// that is null thus still fails, as missing.
func vbrStripNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
			} else {
				x[k] = vbrStripNulls(e)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = vbrStripNulls(e)
		}
	}
	return v
}

func vbrStr(m map[string]any, path ...any) string {
	var v any = m
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	s, _ := v.(string)
	return s
}

func TestContractVBR(t *testing.T) {
	for _, version := range vbrVersions {
		t.Run(version, func(t *testing.T) {
			s, _, clk := startVBRTest(t, Options{ActionDuration: 10 * time.Second, VBR: VBROptions{Replicas: 12, PointsPerReplica: 2}})
			c := loadVBRContract(t, version, s.VBRURL())
			est := s.Estate().VBR
			var ready []VBRReplica
			for _, r := range est.Replicas {
				if r.State == "Ready" {
					ready = append(ready, r)
				}
			}
			if len(ready) < 3 {
				t.Fatalf("estate has %d Ready replicas", len(ready))
			}
			pointOf := func(replicaID string) string {
				for _, p := range est.Points {
					if p.ReplicaID == replicaID {
						return p.ID
					}
				}
				t.Fatalf("no point for replica %s", replicaID)
				return ""
			}
			const unknown = "00000000-0000-4000-8000-000000000000"
			// The 1.3-rev1+ documents capitalise ELoginGrantType [C].
			pw, rt := "password", "refresh_token"
			if version >= "1.3-rev1" {
				pw, rt = "Password", "Refresh_token"
			}

			// Authentication.
			c.do(vbrExchange{method: "POST", path: "/api/oauth2/token", body: "grant_type=" + pw + "&username=monitor&password=bad", want: 401})
			c.do(vbrExchange{method: "POST", path: "/api/oauth2/token", body: "grant_type=" + pw + "&username=monitor", want: 400})
			c.do(vbrExchange{method: "POST", path: "/api/oauth2/token", body: "grant_type=" + pw + "&username=monitor&password=sim-password", noVersion: true, invalidRequest: true, want: 400})
			tok := c.do(vbrExchange{method: "POST", path: "/api/oauth2/token", body: "grant_type=" + pw + "&username=monitor&password=sim-password", want: 200})
			refresh := "grant_type=" + rt + "&refresh_token=" + url.QueryEscape(vbrStr(tok, "refresh_token"))
			tok = c.do(vbrExchange{method: "POST", path: "/api/oauth2/token", body: refresh, want: 200})
			c.do(vbrExchange{method: "POST", path: "/api/oauth2/token", body: refresh, want: 400}) // single use
			c.token = vbrStr(tok, "access_token")

			// Reads.
			c.do(vbrExchange{method: "GET", path: "/api/v1/replicas?limit=5&orderColumn=Name&orderAsc=true&stateFilter=Ready", want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/replicas?skip=10", want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/replicas/" + ready[0].ID, want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/replicas/" + unknown, want: 404})
			c.do(vbrExchange{method: "GET", path: "/api/v1/replicas/" + ready[0].ID + "/replicaPoints?orderColumn=CreationTime&orderAsc=false", want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/replicaPoints?nameFilter=*0*&limit=3", want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/replicaPoints/" + pointOf(ready[0].ID), want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/replicaPoints/" + unknown, want: 404})
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions", want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions?typeFilter=ReplicaJob&resultFilter=Success&orderColumn=CreationTime", want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions/" + est.Sessions[0].ID, want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions/" + unknown, want: 404})
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions?limit=0", invalidRequest: version == "1.3-rev2", want: 400})
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions", noVersion: true, invalidRequest: true, want: 400})

			// The four failover operations, then their sessions through
			// Starting, Working and Stopped.
			post := func(kind, pointID string, want int) map[string]any {
				return c.do(vbrExchange{method: "POST", path: "/api/v1/failover/" + kind + "/vSphere/snapshot",
					body: `{"replicaPointIds":["` + pointID + `"],"reason":"contract test"}`, want: want})
			}
			var sessionIDs []string
			for _, r := range []map[string]any{
				post("failoverNow", pointOf(ready[0].ID), 201),
				post("plannedFailover", pointOf(ready[1].ID), 201),
			} {
				sessionIDs = append(sessionIDs, vbrStr(r, "data", 0, "id"))
			}
			post("undoFailover", pointOf(ready[2].ID), 400) // not allowed on Ready
			post("failoverNow", unknown, 404)
			c.do(vbrExchange{method: "POST", path: "/api/v1/failover/failoverNow/vSphere/snapshot", body: `{"replicaPointIds":[]}`, want: 400})
			c.do(vbrExchange{method: "POST", path: "/api/v1/failover/failoverNow/vSphere/snapshot", body: `{"replicaPointIds":`, invalidRequest: true, want: 400})
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions/" + sessionIDs[0], want: 200}) // Starting
			clk.Add(5 * time.Second)
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions/" + sessionIDs[1], want: 200}) // Working
			clk.Add(5 * time.Second)
			for _, r := range []map[string]any{
				post("permanentFailover", pointOf(ready[0].ID), 201),
				post("undoFailover", pointOf(ready[1].ID), 201),
			} {
				sessionIDs = append(sessionIDs, vbrStr(r, "data", 0, "id"))
			}
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions/" + sessionIDs[0], want: 200}) // Stopped
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions?typeFilter=Failover", want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/replicaPoints?replicaIdFilter=" + ready[0].ID, want: 200})

			// 401 on every operation that needs a bearer, then logout.
			for _, p := range c.doc.Paths.InMatchingOrder() {
				item := c.doc.Paths.Value(p)
				for method, op := range item.Operations() {
					if op.Security != nil && len(*op.Security) == 0 {
						continue // the token endpoint
					}
					path := strings.ReplaceAll(p, "{id}", ready[0].ID)
					body := ""
					if method == "POST" && strings.Contains(p, "failover") {
						body = `{"replicaPointIds":["` + pointOf(ready[2].ID) + `"]}`
					}
					c.do(vbrExchange{method: method, path: path, body: body, noAuth: true, want: 401})
				}
			}
			c.do(vbrExchange{method: "POST", path: "/api/oauth2/logout", want: 200})
			c.do(vbrExchange{method: "GET", path: "/api/v1/sessions", want: 401}) // expired by logout

			// Every operation in the document was exercised with success.
			for p, item := range c.doc.Paths.Map() {
				for method, op := range item.Operations() {
					ok := false
					for code := range c.covered[op.OperationID] {
						ok = ok || code/100 == 2
					}
					if !ok {
						t.Errorf("%s %s (%s) never answered 2xx", method, p, op.OperationID)
					}
				}
			}
		})
	}
}
