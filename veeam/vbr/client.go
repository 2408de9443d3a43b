// Package vbr is a client of the Veeam Backup & Replication REST API for
// replicas: reading replicas and their restore points, starting failovers of
// vSphere snapshot replicas and tracking their sessions.
package vbr

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// DefaultAPIVersion is sent as x-api-version when ClientOptions.APIVersion
// is empty (VBR 13.0).
const DefaultAPIVersion = "1.3-rev0"

// PageSize is the limit asked for on list reads. The spec sets no maximum;
// a server that returns fewer is followed at its own page size.
const PageSize = 500

// defaultTokenLifetime is assumed when the token answer has no expires_in.
const defaultTokenLifetime = 15 * time.Minute

// Client talks to one B&R server. It is safe for concurrent use; all callers
// share one token pair.
type Client struct {
	name    string
	t       *veeam.Transport
	auth    *veeam.Auth
	version string
	opts    veeam.ClientOptions
	closed  atomic.Bool
}

// New returns a client for o. It does not contact the server: the first call
// logs in.
func New(o veeam.ClientOptions) (*Client, error) {
	return newClient(o, time.Now)
}

func newClient(o veeam.ClientOptions, now func() time.Time) (*Client, error) {
	if o.Username == "" || o.Password == "" {
		return nil, fmt.Errorf("target %q: vbr needs a username and password", o.Name)
	}
	t, err := veeam.NewTransport(o, classify)
	if err != nil {
		return nil, err
	}
	c := &Client{name: o.Name, t: t, version: o.APIVersion, opts: o}
	if c.version == "" {
		c.version = DefaultAPIVersion
	}
	c.auth = veeam.NewAuth(veeam.AuthConfig{
		Target:  o.Name,
		Login:   c.login,
		Refresh: c.refresh,
		Timeout: 3 * t.Timeout(),
		Logger:  t.Logger(),
		Now:     now,
	})
	return c, nil
}

// APIVersion is the x-api-version the client sends.
func (c *Client) APIVersion() string { return c.version }

// Close logs out (POST /api/oauth2/logout expires both tokens). Calls after
// Close fail with veeam.ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	if c.closed.Swap(true) {
		return nil
	}
	defer c.t.CloseIdleConnections()
	cr := c.auth.Take()
	if cr == nil {
		return nil
	}
	const path = "/api/oauth2/logout"
	h := c.headers()
	setBearer(h, cr)
	resp, err := c.t.Do(ctx, &veeam.Request{Method: http.MethodPost, Path: path, Header: h, Retry: veeam.RetryNever})
	if err != nil {
		return err
	}
	if !resp.OK() && resp.Status != http.StatusUnauthorized {
		return parseError(c.name, http.MethodPost, path, resp)
	}
	return nil
}

func (c *Client) headers() http.Header {
	return http.Header{"Accept": {"application/json"}, "X-Api-Version": {c.version}}
}

// grantType spells the grant the way the revision's spec does: lower case
// up to 1.3-rev0, capitalised (Password, Refresh_token) from 1.3-rev1.
func (c *Client) grantType(g string) string {
	if capitalisedGrants(c.version) {
		return strings.ToUpper(g[:1]) + g[1:]
	}
	return g
}

// capitalisedGrants reports whether version ("1.3-rev1") is 1.3-rev1 or
// later. Unparsable versions are taken as new.
func capitalisedGrants(version string) bool {
	v, rev, ok := strings.Cut(version, "-rev")
	if !ok {
		return true
	}
	maj, mnr, ok := strings.Cut(v, ".")
	if !ok {
		return true
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(mnr)
	r, err3 := strconv.Atoi(rev)
	if err1 != nil || err2 != nil || err3 != nil {
		return true
	}
	switch {
	case a != 1:
		return a > 1
	case b != 3:
		return b > 3
	}
	return r >= 1
}

func (c *Client) login(ctx context.Context) (*veeam.Credential, error) {
	return c.token(ctx, url.Values{
		"grant_type": {c.grantType("password")},
		"username":   {c.opts.Username},
		"password":   {string(c.opts.Password)},
	})
}

func (c *Client) refresh(ctx context.Context, rt string) (*veeam.Credential, error) {
	return c.token(ctx, url.Values{"grant_type": {c.grantType("refresh_token")}, "refresh_token": {rt}})
}

func (c *Client) token(ctx context.Context, form url.Values) (*veeam.Credential, error) {
	const path = "/api/oauth2/token"
	return c.t.OAuth2Token(ctx, path, c.headers(), form, defaultTokenLifetime, func(resp *veeam.Response) error {
		return parseError(c.name, http.MethodPost, path, resp)
	})
}

func setBearer(h http.Header, cr *veeam.Credential) { h.Set("Authorization", "Bearer "+cr.Token) }

// call is one API request with auth (401 → one new login and one resend),
// retries for reads and typed errors.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body []byte) (*veeam.Response, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("target %q: %w", c.name, veeam.ErrClosed)
	}
	h := c.headers()
	mode := veeam.RetryIdempotent
	if method != http.MethodGet {
		mode = veeam.RetryNever
	}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	req := &veeam.Request{Method: method, Path: path, Query: q, Header: h, Body: body, Retry: mode}
	resp, err := c.t.DoAuth(ctx, c.auth, req, setBearer, nil)
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return nil, parseError(c.name, method, path, resp)
	}
	return resp, nil
}

func get[T any](ctx context.Context, c *Client, path string, q url.Values, dec func([]byte) (T, error)) (T, error) {
	var zero T
	resp, err := c.call(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return zero, err
	}
	v, err := dec(resp.Body)
	resp.Release() // the decoders keep nothing of the body
	if err != nil {
		return zero, &veeam.DecodeError{Target: c.name, Method: http.MethodGet, Path: path, Err: err}
	}
	return v, nil
}

func list[T any, K comparable](ctx context.Context, c *Client, path string, q url.Values, dec func([]byte) ([]T, int, error), id func(T) K) ([]T, error) {
	return veeam.ReadOffsetPages(ctx, c.t.PageReaders(), PageSize, func(ctx context.Context, skip, limit int) ([]T, int, error) {
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		pq.Set("skip", strconv.Itoa(skip))
		pq.Set("limit", strconv.Itoa(limit))
		type pg struct {
			items []T
			total int
		}
		p, err := get(ctx, c, path, pq, func(b []byte) (pg, error) {
			items, total, err := dec(b)
			return pg{items, total}, err
		})
		return p.items, p.total, err
	}, id)
}

func checkID(what, id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", fmt.Errorf("%s %q is not a UUID", what, id)
	}
	return u.String(), nil
}
