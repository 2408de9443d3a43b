// Package vbr is a client of the Veeam Backup & Replication REST API for
// replicas: reading replicas and their restore points, starting failovers of
// vSphere snapshot replicas and tracking their sessions.
package vbr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/rest"
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
	conn    *rest.Conn
	// grants remembers the grant_type spelling the server took:
	// grantUnknown, grantLower or grantCapitalised.
	grants atomic.Int32
}

// Grant type spellings (Client.grants).
const (
	grantUnknown int32 = iota
	grantLower
	grantCapitalised
)

// New returns a client for o. It does not contact the server: the first call
// logs in.
func New(o veeam.ClientOptions) (*Client, error) {
	return newClient(o, time.Now)
}

func newClient(o veeam.ClientOptions, now func() time.Time) (*Client, error) {
	if o.Username == "" || o.Password == "" {
		return nil, fmt.Errorf("target %q: vbr needs a username and password", o.Name)
	}
	// B&R's retryable answers are 429 and 5xx (ServiceUnavailable,
	// UnknownError): the default policy.
	t, err := veeam.NewTransport(o, veeam.DefaultClassifier)
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
	c.conn = &rest.Conn{
		Name: o.Name, T: t, Auth: c.auth,
		Header:      c.headers,
		ContentType: func() string { return "application/json" },
		SetAuth:     setBearer,
		ParseError: func(method, path string, r *veeam.Response) error {
			return parseError(c.name, method, path, r)
		},
	}
	return c, nil
}

// APIVersion is the x-api-version the client sends.
func (c *Client) APIVersion() string { return c.version }

// Close logs out (POST /api/oauth2/logout expires both tokens). Calls after
// Close fail with veeam.ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	return c.conn.Close(ctx, func(ctx context.Context, cr *veeam.Credential) error {
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
	})
}

func (c *Client) headers() http.Header {
	return http.Header{"Accept": {"application/json"}, "X-Api-Version": {c.version}}
}

// capitalise spells a grant the way the 1.3-rev1+ ELoginGrantType enum
// does (Password, Refresh_token).
func capitalise(g string) string { return strings.ToUpper(g[:1]) + g[1:] }

func (c *Client) login(ctx context.Context) (*veeam.Credential, error) {
	return c.token(ctx, url.Values{
		"grant_type": {"password"},
		"username":   {c.opts.Username},
		"password":   {string(c.opts.Password)},
	})
}

func (c *Client) refresh(ctx context.Context, rt string) (*veeam.Credential, error) {
	return c.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// token runs a grant. grant_type goes out in lower case (RFC 6749, Veeam's
// own request example); the 1.3-rev1+ specs list it capitalised, and
// whether VBR refuses either is unknown: on a 400 that is not about the
// token itself the grant is sent once more capitalised, and the spelling
// that worked is kept for later grants.
func (c *Client) token(ctx context.Context, form url.Values) (*veeam.Credential, error) {
	g := form.Get("grant_type")
	known := c.grants.Load()
	if known == grantCapitalised {
		form.Set("grant_type", capitalise(g))
	}
	cr, err := c.grant(ctx, form)
	var e *veeam.APIError
	if err != nil && known == grantUnknown && errors.As(err, &e) && e.Status == http.StatusBadRequest && e.Code != "InvalidToken" {
		form.Set("grant_type", capitalise(g))
		if cr, err = c.grant(ctx, form); err == nil {
			c.grants.Store(grantCapitalised)
		}
		return cr, err
	}
	if err == nil && known == grantUnknown {
		c.grants.Store(grantLower)
	}
	return cr, err
}

func (c *Client) grant(ctx context.Context, form url.Values) (*veeam.Credential, error) {
	const path = "/api/oauth2/token"
	return c.t.OAuth2Token(ctx, path, c.headers(), form, defaultTokenLifetime, func(resp *veeam.Response) error {
		return parseError(c.name, http.MethodPost, path, resp)
	})
}

func setBearer(h http.Header, cr *veeam.Credential) { h.Set("Authorization", "Bearer "+cr.Token) }

func (c *Client) call(ctx context.Context, method, path string, q url.Values, body []byte) (*veeam.Response, error) {
	return c.conn.Call(ctx, method, path, q, body, "")
}

func get[T any](ctx context.Context, c *Client, path string, q url.Values, dec func([]byte) (T, error)) (T, error) {
	return rest.Get(ctx, c.conn, path, q, dec)
}

// list reads every page of a collection (skip/limit paging).
func list[T any, K comparable](ctx context.Context, c *Client, path string, q url.Values, dec func([]byte) ([]T, int, error), id func(T) K) ([]T, error) {
	return rest.List(ctx, c.conn, path, q, "skip", PageSize, dec, id)
}

func checkID(what, id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", fmt.Errorf("%s %q is not a UUID", what, id)
	}
	return u.String(), nil
}
