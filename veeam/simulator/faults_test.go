package simulator

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const vtPlansPath = "/infrastructure/backupServers/failoverplans"

func TestFaultKinds(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			s := startSim(t, Options{TLS: useTLS})
			c := newVT(t, s)
			c.login()

			t.Run("Status", func(t *testing.T) {
				s.SetFault(APIVSPC, Fault{Status: 404, Count: 1})
				r := c.do("GET", vtPlansPath, nil, "")
				var e vtEnvelope[any]
				r.json(t, &e)
				if r.status != 404 || len(e.Errors) != 1 || e.Errors[0].Code != 404 || e.Errors[0].Type != "logical" {
					t.Errorf("got %d %s", r.status, r.body)
				}
				if r := c.do("GET", vtPlansPath, nil, ""); r.status != 200 {
					t.Errorf("after Count 1: %d", r.status)
				}
			})
			t.Run("Status5xxIs520", func(t *testing.T) {
				s.SetFault(APIVSPC, Fault{Status: 503, Count: 1})
				r := c.do("GET", vtPlansPath, nil, "")
				var e vtEnvelope[any]
				r.json(t, &e)
				if r.status != 520 || e.Errors[0].Code != 503 || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
					t.Errorf("got %d %v %s", r.status, r.header, r.body)
				}
			})
			t.Run("Throttle", func(t *testing.T) {
				s.SetFault(APIVSPC, Fault{Status: 429, RetryAfter: 25, Count: 1})
				r := c.do("GET", vtPlansPath, nil, "")
				var e vtEnvelope[any]
				r.json(t, &e)
				if r.status != 429 || e.Errors[0].Type != "transport" || e.Errors[0].Code != 429 || e.Errors[0].RetryAfter != 25 ||
					r.header.Get("Retry-After") != "25" {
					t.Errorf("got %d %v %s", r.status, r.header, r.body)
				}
			})
			t.Run("ExpireAuth", func(t *testing.T) {
				s.SetFault(APIVSPC, Fault{ExpireAuth: true})
				if r := c.do("GET", vtPlansPath, nil, ""); r.status != 401 {
					t.Fatalf("after ExpireAuth: %d", r.status)
				}
				// One-shot: a new login works and stays valid.
				c.login()
				for range 2 {
					if r := c.do("GET", vtPlansPath, nil, ""); r.status != 200 {
						t.Fatalf("after re-login: %d %s", r.status, r.body)
					}
				}
			})
			t.Run("NonJSON", func(t *testing.T) {
				s.SetFault(APIVSPC, Fault{NonJSON: true, Count: 1})
				r := c.do("GET", vtPlansPath, nil, "")
				if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.HasPrefix(string(r.body), "<html>") {
					t.Errorf("got %d %v %q", r.status, r.header, r.body)
				}
			})
			t.Run("Truncate", func(t *testing.T) {
				s.SetFault(APIVSPC, Fault{Truncate: true, Count: 1})
				r := c.do("GET", vtPlansPath, nil, "")
				if r.status != 200 || !errors.Is(r.err, io.ErrUnexpectedEOF) {
					t.Errorf("got %d err %v", r.status, r.err)
				}
				if r := c.do("GET", vtPlansPath, nil, ""); r.status != 200 || r.err != nil {
					t.Errorf("after truncation: %d %v", r.status, r.err)
				}
			})
			t.Run("Reset", func(t *testing.T) {
				s.ResetRequests()
				// Not Count 1: Go's transport retries an idempotent request
				// once when a reused connection breaks.
				s.SetFault(APIVSPC, Fault{Reset: true})
				r := c.do("GET", vtPlansPath, nil, "")
				s.ClearFaults()
				if r.err == nil {
					t.Fatalf("no error after reset: %d", r.status)
				}
				reqs := s.Requests(APIVSPC)
				if len(reqs) == 0 {
					t.Error("reset requests not logged")
				}
				for _, q := range reqs {
					if q.Status != 0 {
						t.Errorf("reset request logged with status %d", q.Status)
					}
				}
				if r := c.do("GET", vtPlansPath, nil, ""); r.status != 200 {
					t.Errorf("after reset: %d %v", r.status, r.err)
				}
			})
			t.Run("Latency", func(t *testing.T) {
				s.SetFault(APIVSPC, Fault{Latency: 150 * time.Millisecond, Count: 1})
				start := time.Now()
				c.do("GET", vtPlansPath, nil, "")
				if d := time.Since(start); d < 150*time.Millisecond {
					t.Errorf("took %v", d)
				}
			})
		})
	}
}

func TestFaultMatching(t *testing.T) {
	s := startSim(t, Options{})
	c := newVT(t, s)
	c.login()
	plan := s.Estate().VSPC.Plans[0].InstanceUID

	// PathPrefix limits the fault; other APIs are unaffected.
	s.SetFault(APIVSPC, Fault{PathPrefix: "/api/v3/infrastructure/backupServers/failoverplans/objects", Status: 500})
	if r := c.do("GET", vtPlansPath, nil, ""); r.status != 200 {
		t.Errorf("other path: %d", r.status)
	}
	for range 3 {
		if r := c.do("GET", vtPlansPath+"/objects", nil, ""); r.status != 520 {
			t.Errorf("faulty path: %d", r.status)
		}
	}
	s.SetFault(APIEM, Fault{Status: 500})
	if r := c.do("GET", vtPlansPath+"/objects", nil, ""); r.status != 520 {
		t.Errorf("SetFault on EM replaced VSPC's fault: %d", r.status)
	}
	// SetFault replaces the API's fault.
	s.SetFault(APIVSPC, Fault{PathPrefix: "/api/v3/about", Status: 403})
	if r := c.do("GET", vtPlansPath+"/objects", nil, ""); r.status != 200 {
		t.Errorf("replaced fault still active: %d", r.status)
	}
	if r := c.do("GET", "/about", nil, ""); r.status != 403 {
		t.Errorf("new fault: %d", r.status)
	}
	s.ClearFaults()
	if r := c.do("GET", "/about", nil, ""); r.status != 200 {
		t.Errorf("after ClearFaults: %d", r.status)
	}

	// Count N: exactly N requests fail.
	s.SetFault(APIVSPC, Fault{Status: 502, Count: 2})
	var got []int
	for range 4 {
		got = append(got, c.do("GET", vtPlansPath+"/"+plan, nil, "").status)
	}
	if want := []int{520, 520, 200, 200}; !equalInts(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}

	// A faulty auth endpoint: the login itself fails.
	s.SetFault(APIVSPC, Fault{PathPrefix: "/api/v3/token", Status: 500, Count: 1})
	r := c.tokenReq(url.Values{"grant_type": {"password"}, "username": {DefaultUsername}, "password": {DefaultPassword}})
	if r.status != 520 {
		t.Errorf("token under fault: %d", r.status)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFaultSetMatch(t *testing.T) {
	fs := newFaultSet()
	if _, ok := fs.match(APIVSPC, "GET", "/x"); ok {
		t.Fatal("match without faults")
	}
	fs.set(APIVSPC, Fault{ExpireAuth: true, Count: 5})
	if f, ok := fs.match(APIVSPC, "GET", "/x"); !ok || !f.ExpireAuth {
		t.Fatal("ExpireAuth not matched")
	}
	if _, ok := fs.match(APIVSPC, "GET", "/x"); ok {
		t.Fatal("ExpireAuth alone is one-shot")
	}
	fs.set(APIVSPC, Fault{ExpireAuth: true, Status: 500})
	fs.match(APIVSPC, "GET", "/x")
	if f, ok := fs.match(APIVSPC, "GET", "/x"); !ok || f.ExpireAuth || f.Status != 500 {
		t.Fatalf("second match = %+v %v; want the status without ExpireAuth", f, ok)
	}
}

// The fault and latency middleware answer in each API's format; for a
// fault on a path served by nobody the API's writeError still answers.
func TestFaultStatusOnEveryAPI(t *testing.T) {
	s := startSim(t, Options{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for _, api := range []API{APIEM, APIVBR} {
		s.SetFault(api, Fault{Status: 503, Count: 1})
		u := map[API]string{APIEM: s.EMURL() + "/api/", APIVBR: s.VBRURL() + "/api/v1/replicas"}[api]
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("%s: status %d, want 503", api, resp.StatusCode)
		}
	}
}
