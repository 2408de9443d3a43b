package veeam

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type authCounter struct {
	logins, refreshes atomic.Int32
	refreshFails      atomic.Bool
	lifetime          time.Duration
	delay             time.Duration
}

func (a *authCounter) config(c *clock) AuthConfig {
	return AuthConfig{
		Target: "t",
		Now:    c.now,
		Login: func(ctx context.Context) (*Credential, error) {
			n := a.logins.Add(1)
			time.Sleep(a.delay)
			return &Credential{Token: fmt.Sprintf("login-%d", n), RefreshToken: fmt.Sprintf("r-%d", n), Lifetime: a.lifetime}, nil
		},
		Refresh: func(ctx context.Context, rt string) (*Credential, error) {
			n := a.refreshes.Add(1)
			if a.refreshFails.Load() {
				return nil, errors.New("refresh rejected")
			}
			return &Credential{Token: fmt.Sprintf("refresh-%d", n), RefreshToken: "r2", Lifetime: a.lifetime}, nil
		},
	}
}

func TestAuthOneLoginForConcurrentCallers(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	ac := &authCounter{lifetime: 15 * time.Minute, delay: 20 * time.Millisecond}
	a := NewAuth(ac.config(c))
	var wg sync.WaitGroup
	creds := make([]*Credential, 50)
	for i := range creds {
		wg.Go(func() {
			cr, err := a.Credential(t.Context())
			if err != nil {
				t.Error(err)
			}
			creds[i] = cr
		})
	}
	wg.Wait()
	if n := ac.logins.Load(); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
	// All reject the same credential: one new login.
	for i := range creds {
		wg.Go(func() {
			a.Invalidate(creds[i])
			if _, err := a.Credential(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := ac.logins.Load(); n != 2 {
		t.Fatalf("%d logins after a shared rejection, want 2", n)
	}
}

func TestAuthRefresh(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	ac := &authCounter{lifetime: 900 * time.Second}
	a := NewAuth(ac.config(c))
	get := func() string {
		t.Helper()
		cr, err := a.Credential(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return cr.Token
	}
	if tok := get(); tok != "login-1" {
		t.Fatalf("token %q", tok)
	}
	c.add(600 * time.Second) // before 3/4 of 900s
	if tok := get(); tok != "login-1" {
		t.Fatalf("renewed too early: %q", tok)
	}
	c.add(100 * time.Second) // past 675s
	if tok := get(); tok != "refresh-1" {
		t.Fatalf("not refreshed before expiry: %q", tok)
	}
	ac.refreshFails.Store(true)
	c.add(800 * time.Second)
	if tok := get(); tok != "login-2" {
		t.Fatalf("failed refresh did not fall back to a login: %q", tok)
	}
	if r, l := ac.refreshes.Load(), ac.logins.Load(); r != 2 || l != 2 {
		t.Errorf("%d refreshes, %d logins; want 2, 2", r, l)
	}
}

func TestAuthIdle(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	ac := &authCounter{}
	cfg := ac.config(c)
	cfg.Refresh = nil
	cfg.Idle = 15 * time.Minute
	a := NewAuth(cfg)
	for range 3 {
		if _, err := a.Credential(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.add(10 * time.Minute) // used every 10 minutes: stays alive
	}
	if n := ac.logins.Load(); n != 1 {
		t.Fatalf("%d logins while in use", n)
	}
	c.add(5 * time.Minute) // 15 minutes idle
	if _, err := a.Credential(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := ac.logins.Load(); n != 2 {
		t.Fatalf("%d logins after idle expiry, want 2", n)
	}
}

func TestAuthLoginOutlivesFirstCaller(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	ac := &authCounter{delay: 100 * time.Millisecond}
	a := NewAuth(ac.config(c))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := a.Credential(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v", err)
	}
	cr, err := a.Credential(t.Context())
	if err != nil || cr.Token != "login-1" {
		t.Fatalf("%v %v", cr, err)
	}
	if n := ac.logins.Load(); n != 1 {
		t.Errorf("%d logins, want 1 (the first one completes for the others)", n)
	}
}

func TestDoAuthReauthenticatesOnce(t *testing.T) {
	var valid atomic.Value
	s := newServer(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != valid.Load() {
			w.WriteHeader(401)
		}
	})
	tr := newTestTransport(t, s.URL, nil)
	c := &clock{t: time.Unix(1e9, 0)}
	ac := &authCounter{}
	a := NewAuth(ac.config(c))
	set := func(h http.Header, c *Credential) { h.Set("Authorization", c.Token) }

	valid.Store("login-1")
	for range 5 {
		resp, err := tr.DoAuth(t.Context(), a, &Request{Method: "GET", Path: "/"}, set, nil)
		if err != nil || resp.Status != 200 {
			t.Fatalf("%v %v", resp, err)
		}
	}
	valid.Store("login-2") // the server forgot login-1
	// An action without an idempotency key is not resent after a 401 (it
	// may have been carried out), but the next call logs in again.
	s.requests.Store(0)
	resp, err := tr.DoAuth(t.Context(), a, &Request{Method: "POST", Path: "/", Retry: RetryNever}, set, nil)
	if err != nil || resp.Status != 401 || s.requests.Load() != 1 {
		t.Fatalf("action after expiry: %v %v, %d requests", resp, err, s.requests.Load())
	}
	resp, err = tr.DoAuth(t.Context(), a, &Request{Method: "POST", Path: "/", Retry: RetryNever}, set, nil)
	if err != nil || resp.Status != 200 {
		t.Fatalf("after expiry: %v %v", resp, err)
	}
	valid.Store("nothing works")
	s.requests.Store(0)
	resp, err = tr.DoAuth(t.Context(), a, &Request{Method: "GET", Path: "/"}, set, nil)
	if err != nil || resp.Status != 401 {
		t.Fatalf("want the second 401 returned: %v %v", resp, err)
	}
	if n := s.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (one resend after one new login)", n)
	}
	if n := ac.logins.Load(); n != 3 {
		t.Errorf("%d logins, want 3", n)
	}
}
