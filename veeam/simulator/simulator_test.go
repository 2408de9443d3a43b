package simulator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// coreClock is a settable clock for Options.Now.
type coreClock struct {
	mu sync.Mutex
	t  time.Time
}

func newCoreClock() *coreClock {
	return &coreClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *coreClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *coreClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func startSim(t *testing.T, o Options) *Simulator {
	t.Helper()
	s, err := Start(o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// vtClient talks to the simulated VSPC over real HTTP(S).
type vtClient struct {
	t     *testing.T
	base  string
	hc    *http.Client
	token string
}

func newVT(t *testing.T, s *Simulator) *vtClient {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if ca := s.CACertPEM(); ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			t.Fatal("CA PEM not usable")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &vtClient{t: t, base: s.VSPCURL() + "/api/v3", hc: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

type vtResp struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (r vtResp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %d %s: %v", r.status, r.body, err)
	}
}

// do sends a request; hdr holds header name/value pairs.
func (c *vtClient) do(method, path string, q url.Values, body string, hdr ...string) vtResp {
	c.t.Helper()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return vtResp{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return vtResp{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (c *vtClient) tokenReq(form url.Values) vtResp {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("token: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return vtResp{status: resp.StatusCode, header: resp.Header, body: b}
}

type vtToken struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
}

func (c *vtClient) login() vtToken {
	c.t.Helper()
	r := c.tokenReq(url.Values{"grant_type": {"password"}, "username": {DefaultUsername}, "password": {DefaultPassword}})
	if r.status != http.StatusOK {
		c.t.Fatalf("login: %d %s", r.status, r.body)
	}
	var tok vtToken
	r.json(c.t, &tok)
	c.token = tok.AccessToken
	return tok
}

func TestSimulatorURLsAndDefaults(t *testing.T) {
	s := startSim(t, Options{})
	for name, u := range map[string]string{"vspc": s.VSPCURL(), "em": s.EMURL(), "vbr": s.VBRURL()} {
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Errorf("%s URL = %q", name, u)
		}
	}
	if s.VSPCURL() == s.EMURL() || s.EMURL() == s.VBRURL() {
		t.Error("APIs share a listener")
	}
	if s.CACertPEM() != nil {
		t.Error("CACertPEM without TLS")
	}
	if got := len(s.Estate().VSPC.Plans); got != 20 {
		t.Errorf("default VSPC plans = %d, want 20", got)
	}
	if got := len(s.Estate().VSPC.Objects); got != 100 {
		t.Errorf("default VSPC objects = %d, want 100", got)
	}
}

func TestSimulatorTLS(t *testing.T) {
	s := startSim(t, Options{TLS: true})
	if !strings.HasPrefix(s.VSPCURL(), "https://127.0.0.1:") {
		t.Fatalf("VSPC URL = %q", s.VSPCURL())
	}
	c := newVT(t, s)
	c.login()
	if r := c.do("GET", "/about", nil, ""); r.status != http.StatusOK {
		t.Fatalf("about over TLS: %d %v", r.status, r.err)
	}
	// The name localhost is in the certificate too.
	c.base = strings.Replace(c.base, "127.0.0.1", "localhost", 1)
	if r := c.do("GET", "/about", nil, ""); r.status != http.StatusOK {
		t.Fatalf("about via localhost: %d %v", r.status, r.err)
	}
	// Without the CA the certificate is not trusted.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	_, err := (&http.Client{Transport: tr}).Get(s.VSPCURL() + "/api/v3/about")
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Fatalf("untrusted client error = %v, want x509.UnknownAuthorityError", err)
	}
}

func TestSimulatorCloseNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, useTLS := range []bool{false, true} {
		s, err := Start(Options{TLS: useTLS, Latency: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if useTLS {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(s.CACertPEM())
			tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		}
		hc := &http.Client{Transport: tr}
		for _, u := range []string{s.VSPCURL() + "/api/v3/about", s.EMURL() + "/api/", s.VBRURL() + "/api/v1/replicas"} {
			resp, err := hc.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		// A request still sleeping in the latency middleware when Close
		// runs must not hold Close up.
		s.SetFault(APIVSPC, Fault{Latency: time.Hour})
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := hc.Get(s.VSPCURL() + "/api/v3/about")
			if err == nil {
				resp.Body.Close()
			}
		}()
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Close took %v", d)
		}
		<-done
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		tr.CloseIdleConnections()
	}
}

func TestSimulatorDeterministicEstate(t *testing.T) {
	clock := newCoreClock()
	o := Options{Seed: 42, Now: clock.Now, VSPC: VSPCOptions{Plans: 30, ObjectsPerPlan: 3}}
	a, b := startSim(t, o), startSim(t, o)
	if !reflect.DeepEqual(a.Estate().VSPC, b.Estate().VSPC) {
		t.Error("same seed, different VSPC estates")
	}
	o.Seed = 43
	c := startSim(t, o)
	if reflect.DeepEqual(a.Estate().VSPC, c.Estate().VSPC) {
		t.Error("different seeds, same VSPC estates")
	}
}

func TestSimulatorRequestLog(t *testing.T) {
	s := startSim(t, Options{})
	c := newVT(t, s)
	tok := c.login()
	c.tokenReq(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	c.do("GET", "/infrastructure/backupServers/failoverplans", url.Values{"limit": {"2"}}, "", "Cookie", "a=b")
	c.do("PATCH", "/infrastructure/backupServers/failoverplans/"+s.Estate().VSPC.Plans[0].InstanceUID, nil,
		`[{"op":"replace","path":"/preFailoverCommand","value":"x"}]`)

	reqs := s.Requests(APIVSPC)
	if len(reqs) != 4 {
		t.Fatalf("logged %d requests, want 4: %+v", len(reqs), reqs)
	}
	login, refresh, list, patch := reqs[0], reqs[1], reqs[2], reqs[3]
	if login.Method != "POST" || login.Path != "/api/v3/token" || login.Status != 200 {
		t.Errorf("login entry %+v", login)
	}
	for _, r := range []Request{login, refresh} {
		if strings.Contains(r.Body, DefaultPassword) || strings.Contains(r.Body, tok.RefreshToken) {
			t.Errorf("secret in logged body %q", r.Body)
		}
	}
	if want := "grant_type=password&password=REDACTED&username=monitor"; login.Body != want {
		t.Errorf("login body = %q, want %q", login.Body, want)
	}
	if !strings.Contains(refresh.Body, "refresh_token=REDACTED") {
		t.Errorf("refresh body = %q", refresh.Body)
	}
	if list.RawQuery != "limit=2" || list.Header.Get("Authorization") != "REDACTED" || list.Header.Get("Cookie") != "REDACTED" {
		t.Errorf("list entry %+v", list)
	}
	if strings.Contains(list.Header.Get("Authorization"), tok.AccessToken) {
		t.Error("token in log")
	}
	if !strings.Contains(patch.Body, `"value":"x"`) || patch.Status != 200 {
		t.Errorf("patch entry %+v", patch)
	}
	if len(s.Requests(APIEM)) != 0 {
		t.Error("VSPC requests logged for EM")
	}
	s.ResetRequests()
	if len(s.Requests(APIVSPC)) != 0 {
		t.Error("ResetRequests kept entries")
	}
}

func TestSimulatorRedactBody(t *testing.T) {
	for _, tc := range []struct{ ct, in, want string }{
		{"application/x-www-form-urlencoded", "grant_type=password&username=u&password=p%26q", "grant_type=password&username=u&password=REDACTED"},
		{"application/x-www-form-urlencoded; charset=utf-8", "refresh_token=abc&grant_type=refresh_token", "refresh_token=REDACTED&grant_type=refresh_token"},
		{"", "Password=x", "Password=REDACTED"},
		{"application/json", `{"password=":"x"}`, `{"password=":"x"}`},
		{"", `[{"op":"replace"}]`, `[{"op":"replace"}]`},
	} {
		if got := redactBody(tc.ct, []byte(tc.in)); got != tc.want {
			t.Errorf("redactBody(%q, %q) = %q, want %q", tc.ct, tc.in, got, tc.want)
		}
	}
}

func TestSimulatorLatency(t *testing.T) {
	s := startSim(t, Options{Latency: 100 * time.Millisecond})
	c := newVT(t, s)
	start := time.Now()
	c.login()
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("request took %v with 100ms latency", d)
	}
	// A client giving up ends the wait.
	s.SetFault(APIVSPC, Fault{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/about", nil)
	if _, err := c.hc.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}
