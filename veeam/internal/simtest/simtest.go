// Package simtest holds the test set-up the vspc, em and vbr client tests
// share: a simulator over TLS, client options trusting its CA, a clock the
// tests move, counting the simulator's request log, and regenerating fuzz
// seeds from simulator answers.
package simtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// Clock is a clock shared by the simulator and a client in tests that move
// time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at the real time.
func NewClock() *Clock { return &Clock{t: time.Now()} }

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Start starts a simulator over TLS (actions taking 50ms unless o says
// otherwise) and closes it when the test ends.
func Start(t *testing.T, o simulator.Options) *simulator.Simulator {
	t.Helper()
	o.TLS = true
	if o.ActionDuration == 0 {
		o.ActionDuration = 50 * time.Millisecond
	}
	s, err := simulator.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// ClientOptions are the options of a client named name for the simulator's
// API at url: the default credentials, its CA trusted, short timeouts.
func ClientOptions(s *simulator.Simulator, name, url string) veeam.ClientOptions {
	return veeam.ClientOptions{
		Name:     name,
		URL:      url,
		Username: simulator.DefaultUsername,
		Password: promconfig.Secret(simulator.DefaultPassword),
		HTTPClientConfig: promconfig.HTTPClientConfig{
			TLSConfig: promconfig.TLSConfig{CA: string(s.CACertPEM())},
		},
		Timeout:         5 * time.Second,
		PageConcurrency: 4,
	}
}

// NewClient builds a client with build, on the real clock when now is nil,
// and closes it when the test ends.
func NewClient[C interface{ Close(context.Context) error }](t *testing.T, now func() time.Time, build func(now func() time.Time) (C, error)) C {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	c, err := build(now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Count counts the logged requests to api that match.
func Count(s *simulator.Simulator, api simulator.API, match func(r simulator.Request) bool) int {
	n := 0
	for _, r := range s.Requests(api) {
		if match(r) {
			n++
		}
	}
	return n
}

// Settle waits until api's request log stops growing: a request whose
// connection was reset is logged when its handler returns, which may be
// after the client saw the reset.
func Settle(s *simulator.Simulator, api simulator.API) {
	n := -1
	for range 100 {
		m := len(s.Requests(api))
		if m == n {
			return
		}
		n = m
		time.Sleep(20 * time.Millisecond)
	}
}

// RoundTripFunc is a function as an http.RoundTripper.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f.
func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// LowerID fails the test when id is not lower case.
func LowerID(t *testing.T, id string) {
	if id != strings.ToLower(id) {
		t.Fatalf("id %q not lower-case", id)
	}
}

// SkipUnlessWritingSeeds skips a TestWriteFuzzSeeds unless
// VEEAM_WRITE_FUZZ_SEEDS is set: seeds are regenerated on request only.
func SkipUnlessWritingSeeds(t *testing.T) {
	if os.Getenv("VEEAM_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set VEEAM_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
}

// SeedName names a recorded answer by method, path and status.
func SeedName(r *http.Request, status int) string {
	return r.Method + r.URL.Path + "_" + strconv.Itoa(status)
}

// SeedRecorder records the response bodies a client receives, to write
// them as fuzz seeds.
type SeedRecorder struct {
	// Name names a response's seed; "" leaves it out (token answers hold
	// tokens). A later answer of the same name replaces an earlier one.
	Name func(r *http.Request, status int) string

	mu     sync.Mutex
	bodies map[string][]byte
}

// Wrap is a veeam.ClientOptions.WrapTransport that records bodies.
func (rec *SeedRecorder) Wrap(rt http.RoundTripper) http.RoundTripper {
	return RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		if err != nil {
			return resp, err
		}
		name := rec.Name(r, resp.StatusCode)
		if name == "" {
			return resp, nil
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		rec.mu.Lock()
		if rec.bodies == nil {
			rec.bodies = map[string][]byte{}
		}
		rec.bodies[name] = b
		rec.mu.Unlock()
		return resp, nil
	})
}

// Write writes the non-empty bodies recorded as seed files under dir, with
// UUIDs in their names replaced so that reruns overwrite them.
func (rec *SeedRecorder) Write(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	clean := regexp.MustCompile(`[^A-Za-z0-9_]+`)
	uuidRe := regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for name, b := range rec.bodies {
		if len(b) == 0 {
			continue
		}
		name = uuidRe.ReplaceAllString(name, "id")
		file := filepath.Join(dir, "sim_"+strings.Trim(clean.ReplaceAllString(name, "_"), "_"))
		if err := os.WriteFile(file, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
