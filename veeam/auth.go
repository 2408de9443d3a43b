package veeam

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Credential is what a login yields. Its pointer identity is what Invalidate
// compares, so callers hand back exactly the credential that failed.
type Credential struct {
	// Token is the access token, API key or EM session id sent on requests.
	Token string
	// RefreshToken is single-use; empty when the API has none.
	RefreshToken string
	// Lifetime is how long Token lives from when it was issued; zero when
	// unknown or unlimited (then only a 401 replaces it).
	Lifetime time.Duration
	// SessionID identifies a logon session to end on Close (EM).
	SessionID string
	// Generation numbers the client's logins (EM: 1 for the first logon
	// session, 2 for the next, ...); 0 when the client does not count.
	Generation uint64
}

// AuthConfig configures an Auth.
type AuthConfig struct {
	// Login obtains a new credential. Required.
	Login func(ctx context.Context) (*Credential, error)
	// Refresh trades a refresh token for a new credential; nil when the API
	// has no refresh. A failed refresh falls back to Login.
	Refresh func(ctx context.Context, refreshToken string) (*Credential, error)
	// Idle is the server's idle timeout (EM: 15 minutes); a credential
	// unused for nearly this long is replaced before use. Zero: none.
	Idle time.Duration
	// Timeout bounds one login or refresh (including its retries); it runs
	// detached from the caller that started it, because other callers wait
	// for the same login.
	Timeout time.Duration
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	Target string
}

// Auth holds one target's credential for all goroutines of a client.
// Callers that find it missing or about to expire share one login or
// refresh (singleflight); a credential rejected with 401 is dropped with
// Invalidate and the next caller logs in once for everyone.
type Auth struct {
	cfg AuthConfig

	mu        sync.Mutex
	cur       *Credential
	refreshAt time.Time // zero: no planned refresh
	lastUsed  time.Time

	sf singleflight.Group
}

// idleMargin is how long before the server's idle timeout the client stops
// trusting a session.
const idleMargin = time.Minute

// NewAuth returns an Auth with no credential yet (the first call logs in).
func NewAuth(cfg AuthConfig) *Auth {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Auth{cfg: cfg}
}

// usableLocked reports whether c can be used now without renewing.
func (a *Auth) usableLocked(now time.Time) bool {
	if a.cur == nil {
		return false
	}
	if !a.refreshAt.IsZero() && !now.Before(a.refreshAt) {
		return false
	}
	if a.cfg.Idle > 0 && !a.lastUsed.IsZero() && now.Sub(a.lastUsed) >= a.cfg.Idle-min(idleMargin, a.cfg.Idle/4) {
		return false
	}
	return true
}

// Credential returns the current credential, logging in or refreshing first
// when there is none or it is due.
func (a *Auth) Credential(ctx context.Context) (*Credential, error) {
	a.mu.Lock()
	if now := a.cfg.Now(); a.usableLocked(now) {
		a.lastUsed = now
		c := a.cur
		a.mu.Unlock()
		return c, nil
	}
	a.mu.Unlock()

	ch := a.sf.DoChan("auth", func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Timeout)
		defer cancel()
		return a.renew(lctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Credential), nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// renew runs inside the singleflight: at most one at a time per Auth.
func (a *Auth) renew(ctx context.Context) (*Credential, error) {
	a.mu.Lock()
	now := a.cfg.Now()
	if a.usableLocked(now) {
		// Another flight renewed it between our check and this one.
		a.lastUsed = now
		c := a.cur
		a.mu.Unlock()
		return c, nil
	}
	var refresh string
	idle := a.cfg.Idle > 0 && a.cur != nil && now.Sub(a.lastUsed) >= a.cfg.Idle
	if a.cur != nil && !idle && a.cfg.Refresh != nil {
		refresh = a.cur.RefreshToken
	}
	a.mu.Unlock()

	var (
		c   *Credential
		err error
	)
	if refresh != "" {
		c, err = a.cfg.Refresh(ctx, refresh)
		if err != nil {
			a.cfg.Logger.Debug("token refresh failed, logging in again", "target", a.cfg.Target, "err", err)
		}
	}
	if c == nil {
		a.cfg.Logger.Debug("logging in", "target", a.cfg.Target)
		c, err = a.cfg.Login(ctx)
		if err != nil {
			a.mu.Lock()
			// A refresh token, once sent, is spent.
			if refresh != "" && a.cur != nil {
				a.cur = nil
			}
			a.mu.Unlock()
			return nil, err
		}
	}
	a.set(c)
	return c, nil
}

func (a *Auth) set(c *Credential) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	a.cur = c
	a.lastUsed = now
	a.refreshAt = time.Time{}
	if c.Lifetime > 0 {
		// Renew when three quarters of the lifetime are gone, and at least
		// ten seconds before the end.
		a.refreshAt = now.Add(c.Lifetime - max(c.Lifetime/4, 10*time.Second))
	}
}

// Invalidate drops c if it is still the current credential (the server
// rejected it). Several callers rejecting the same credential cause one
// new login, not many.
func (a *Auth) Invalidate(c *Credential) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == c {
		a.cur = nil
		a.refreshAt = time.Time{}
	}
}

// Take removes and returns the current credential (nil if none), for the
// logout on Close.
func (a *Auth) Take() *Credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.cur
	a.cur = nil
	return c
}

// DoAuth sends req with a credential from a (set onto the request headers by
// set) and, when the server answers 401, drops that credential, obtains a
// new one (one login shared by all callers) and sends req once more, except
// for RetryNever requests (actions without an idempotency key), which are
// never resent: a 401 may come after the server acted (issue 17). unauthorized
// decides what counts as "credential rejected"; nil means status 401.
func (t *Transport) DoAuth(ctx context.Context, a *Auth, req *Request, set func(h http.Header, c *Credential), unauthorized func(*Response) bool) (*Response, error) {
	if unauthorized == nil {
		unauthorized = func(r *Response) bool { return r.Status == http.StatusUnauthorized }
	}
	for attempt := 0; ; attempt++ {
		c, err := a.Credential(ctx)
		if err != nil {
			return nil, err
		}
		r := *req
		r.Header = req.Header.Clone()
		if r.Header == nil {
			r.Header = make(http.Header)
		}
		set(r.Header, c)
		resp, err := t.Do(ctx, &r)
		if err != nil {
			return nil, err
		}
		if attempt == 0 && unauthorized(resp) {
			a.Invalidate(c)
			if req.Retry == RetryNever {
				// An action without an idempotency key: the 401 may have
				// come after Veeam carried it out, so it is never sent
				// twice. The next call logs in again; the caller tracks.
				t.logger.Debug("credential rejected on an action; not resending", "target", t.name, "method", req.Method, "path", req.Path)
				return resp, nil
			}
			t.logger.Debug("credential rejected, authenticating again", "target", t.name, "method", req.Method, "path", req.Path)
			continue
		}
		return resp, nil
	}
}
