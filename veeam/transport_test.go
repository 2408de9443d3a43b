package veeam

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// server answers each request with the status handler returns; it counts
// requests and peak concurrency.
type server struct {
	*httptest.Server
	requests       atomic.Int32
	inFlight, peak atomic.Int32
}

func newServer(t *testing.T, h func(n int32, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		f := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			p := s.peak.Load()
			if f <= p || s.peak.CompareAndSwap(p, f) {
				break
			}
		}
		h(n, w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func newTestTransport(t *testing.T, url string, mod func(*ClientOptions)) *Transport {
	t.Helper()
	o := ClientOptions{Name: "test-target", URL: url, Timeout: 2 * time.Second}
	if mod != nil {
		mod(&o)
	}
	tr, err := NewTransport(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.sleep = func(ctx context.Context, d time.Duration) error { return sleepCtx(ctx, min(d, 20*time.Millisecond)) }
	return tr
}

// reset closes the connection without an answer.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

func TestTransportRetries(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode RetryMode
		// fail answers the first failN requests with this behaviour.
		fail         func(w http.ResponseWriter)
		failN        int32
		wantRequests int32
		wantStatus   int
		wantErr      bool
	}{
		{"get 500 then ok", RetryIdempotent, func(w http.ResponseWriter) { w.WriteHeader(500) }, 2, 3, 200, false},
		{"get 500 exhausts attempts", RetryIdempotent, func(w http.ResponseWriter) { w.WriteHeader(503) }, 10, 3, 503, false},
		{"get 429 then ok", RetryIdempotent, func(w http.ResponseWriter) { w.WriteHeader(429) }, 1, 2, 200, false},
		{"get 404 not retried", RetryIdempotent, func(w http.ResponseWriter) { w.WriteHeader(404) }, 10, 1, 404, false},
		{"get reset then ok", RetryIdempotent, reset, 1, 2, 200, false},
		{"get reset exhausts", RetryIdempotent, reset, 10, 3, 0, true},
		{"post 500 never retried", RetryNever, func(w http.ResponseWriter) { w.WriteHeader(500) }, 10, 1, 500, false},
		{"post reset never retried", RetryNever, reset, 10, 1, 0, true},
		{"keyed post 500 not retried", RetryConnectionOnce, func(w http.ResponseWriter) { w.WriteHeader(500) }, 10, 1, 500, false},
		{"keyed post reset resent once", RetryConnectionOnce, reset, 1, 2, 200, false},
		{"keyed post reset twice fails", RetryConnectionOnce, reset, 10, 2, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
				if n <= tc.failN {
					tc.fail(w)
					return
				}
				_, _ = io.WriteString(w, "ok")
			})
			tr := newTestTransport(t, s.URL, nil)
			resp, err := tr.Do(t.Context(), &Request{Method: "GET", Path: "/x", Retry: tc.mode})
			if tc.wantErr {
				var re *RequestError
				if !errors.As(err, &re) || re.Target != "test-target" || re.Path != "/x" {
					t.Fatalf("err = %v, want a RequestError naming target and path", err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if resp.Status != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.Status, tc.wantStatus)
			}
			if n := s.requests.Load(); n != tc.wantRequests {
				t.Errorf("%d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

func TestTransportRetryAfter(t *testing.T) {
	s := newServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	tr := newTestTransport(t, s.URL, nil)
	tr.sleep = sleepCtx
	start := time.Now()
	resp, err := tr.Do(t.Context(), &Request{Method: "GET", Path: "/"})
	if err != nil || resp.Status != 200 {
		t.Fatalf("resp %v err %v", resp, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %s, before Retry-After", d)
	}

	// A retry-after beyond the caller's deadline is not waited for.
	s.requests.Store(0)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	resp, err = tr.Do(ctx, &Request{Method: "GET", Path: "/"})
	if err != nil || resp.Status != 429 {
		t.Fatalf("resp %v err %v, want the 429", resp, err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("waited %s for a retry the deadline excludes", d)
	}
}

func TestTransportConcurrencyBound(t *testing.T) {
	s := newServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	})
	tr := newTestTransport(t, s.URL, func(o *ClientOptions) { o.PageConcurrency = 2 })
	done := make(chan error)
	for range 8 {
		go func() {
			_, err := tr.Do(t.Context(), &Request{Method: "GET", Path: "/"})
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if p := s.peak.Load(); p != 2 {
		t.Errorf("peak %d requests in flight, want 2", p)
	}
}

func TestTransportLimitsAndTimeouts(t *testing.T) {
	s := newServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = io.WriteString(w, strings.Repeat("x", 2000))
		case "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
	})
	tr := newTestTransport(t, s.URL, func(o *ClientOptions) {
		o.MaxResponseBytes = 1000
		o.Timeout = 100 * time.Millisecond
		o.RetryAttempts = 2
	})
	_, err := tr.Do(t.Context(), &Request{Method: "GET", Path: "/big"})
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("big body: %v", err)
	}
	if n := s.requests.Load(); n != 1 {
		t.Errorf("oversized body retried: %d requests", n)
	}
	start := time.Now()
	_, err = tr.Do(t.Context(), &Request{Method: "GET", Path: "/slow"})
	if err == nil || !strings.Contains(err.Error(), "timeout") || !strings.Contains(err.Error(), `target "test-target"`) {
		t.Errorf("slow: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("per-request timeout not applied: %s", d)
	}
	// The caller's context wins over retries.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := tr.Do(ctx, &Request{Method: "GET", Path: "/slow"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestTransportOptions(t *testing.T) {
	var wrapped atomic.Bool
	s := newServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != userAgent {
			w.WriteHeader(400)
		}
	})
	tr := newTestTransport(t, s.URL+"/", func(o *ClientOptions) {
		o.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				wrapped.Store(true)
				return rt.RoundTrip(r)
			})
		}
	})
	resp, err := tr.Do(t.Context(), &Request{Method: "GET", Path: "/a"})
	if err != nil || resp.Status != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	if !wrapped.Load() {
		t.Error("WrapTransport not used")
	}
	for _, bad := range []ClientOptions{
		{Name: "", URL: s.URL},
		{Name: "x", URL: "ftp://host"},
		{Name: "x", URL: "https://"},
		{Name: "x", URL: "https://user:pw@host"},
		{Name: "x", URL: "https://host", HTTPClientConfig: promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CAFile: "/nonexistent/ca.pem"}}},
	} {
		if _, err := NewTransport(bad, nil); err == nil {
			t.Errorf("NewTransport(%+v) accepted", bad)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error leaks url password: %v", err)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNormalizeID(t *testing.T) {
	for in, want := range map[string]string{
		"urn:veeam:FailoverPlan:AE01E36F-0000-4000-8000-000000000001": "ae01e36f-0000-4000-8000-000000000001",
		"URN:VEEAM:CloudFailoverSession:abc":                          "abc",
		"DF997BD3-4AE9-4841-8152-8FF5CC703EAB":                        "df997bd3-4ae9-4841-8152-8ff5cc703eab",
		" x ":                                                         "x",
		"urn:VMware:Vm:abc.vm-1":                                      "urn:vmware:vm:abc.vm-1",
		"urn:veeam:":                                                  "",
		"urn:veeam:X:URN:VEEAM:Y:Z":                                   "z",
		"":                                                            "",
	} {
		if got := NormalizeID(in); got != want {
			t.Errorf("NormalizeID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]string{
		"2023-10-31T14:00:29.789665+01:00": "2023-10-31T13:00:29.789665Z",
		"2025-06-10T10:29:39":              "2025-06-10T10:29:39Z",
		"2015-12-07T17:38:16Z":             "2015-12-07T17:38:16Z",
		"2020-07-24":                       "2020-07-24T00:00:00Z",
		"garbage":                          "0001-01-01T00:00:00Z",
		"":                                 "0001-01-01T00:00:00Z",
	} {
		got, _ := ParseTime(in)
		if s := got.UTC().Format(time.RFC3339Nano); s != want {
			t.Errorf("ParseTime(%q) = %s, want %s", in, s, want)
		}
	}
}
