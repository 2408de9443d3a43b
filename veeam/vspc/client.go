// Package vspc is a client of the Veeam Service Provider Console REST API v3
// for failover plans: reading plans and their objects, starting and undoing
// plans, patching them, and tracking async actions.
package vspc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/rest"
)

// APIRoot is the path prefix of the v3 API.
const APIRoot = "/api/v3"

// PageSize is the limit asked for on list reads (VSPC's maximum).
const PageSize = 500

// defaultTokenLifetime is assumed when /token does not say (VSPC access
// tokens live one hour).
const defaultTokenLifetime = time.Hour

// Client talks to one VSPC server. It is safe for concurrent use; all callers
// share one token.
type Client struct {
	name    string
	t       *veeam.Transport
	auth    *veeam.Auth
	version string
	opts    veeam.ClientOptions
	conn    *rest.Conn
	// pollEvery is the first wait between reads of an async action.
	pollEvery time.Duration
}

// New returns a client for o. It does not contact the server: the first call
// logs in (or uses o.APIKey as a Bearer token when set).
func New(o veeam.ClientOptions) (*Client, error) {
	return newClient(o, time.Now)
}

// newClient is New with the auth clock given (tests move it forward).
func newClient(o veeam.ClientOptions, now func() time.Time) (*Client, error) {
	t, err := veeam.NewTransport(o, classify)
	if err != nil {
		return nil, err
	}
	c := &Client{name: o.Name, t: t, version: o.APIVersion, opts: o, pollEvery: 250 * time.Millisecond}
	cfg := veeam.AuthConfig{
		Target:  o.Name,
		Timeout: 3 * t.Timeout(),
		Logger:  t.Logger(),
		Now:     now,
	}
	if key := string(o.APIKey); key != "" {
		cfg.Login = func(context.Context) (*veeam.Credential, error) {
			return &veeam.Credential{Token: key}, nil
		}
	} else {
		if o.Username == "" || o.Password == "" {
			return nil, fmt.Errorf("target %q: vspc needs an API key or a username and password", o.Name)
		}
		cfg.Login = c.login
		cfg.Refresh = c.refresh
	}
	c.auth = veeam.NewAuth(cfg)
	c.conn = &rest.Conn{
		Name: o.Name, T: t, Auth: c.auth,
		Header:      c.headers,
		ContentType: func() string { return "application/json" },
		SetAuth:     setBearer,
		ParseError: func(method, path string, r *veeam.Response) error {
			return parseError(c.name, method, path, r)
		},
		FollowRead: c.followAsync,
	}
	return c, nil
}

// Close ends the client. VSPC has no cheap logout (token revocation is
// documented as expensive and for emergencies), so the token is dropped and
// left to expire. Calls after Close fail with veeam.ErrClosed.
func (c *Client) Close(context.Context) error {
	c.conn.MarkClosed()
	c.auth.Take()
	c.t.CloseIdleConnections()
	return nil
}

// login is a password grant. VSPC answers /token with a bare OAuth2Result,
// not wrapped in {data}, so the shared RFC 6749 decoding applies.
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

func (c *Client) token(ctx context.Context, form url.Values) (*veeam.Credential, error) {
	const path = APIRoot + "/token"
	return c.t.OAuth2Token(ctx, path, c.headers(), form, defaultTokenLifetime, func(resp *veeam.Response) error {
		return parseError(c.name, http.MethodPost, path, resp)
	})
}

// call is one API request with auth, retries and typed errors. requestID,
// when set, goes out as X-Request-id and allows one resend after a
// connection error.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body []byte, requestID string) (*veeam.Response, error) {
	return c.conn.Call(ctx, method, path, q, body, requestID)
}

func setBearer(h http.Header, cr *veeam.Credential) { h.Set("Authorization", "Bearer "+cr.Token) }

// headers are the headers of every request, /token included.
func (c *Client) headers() http.Header {
	h := http.Header{"Accept": {"application/json"}}
	if c.version != "" {
		h.Set("X-Client-Version", c.version)
	}
	return h
}

// followAsync follows a read answered with 202 + Location (VSPC may queue
// any operation, reads included): it polls the async action until it is no
// longer running, then reads its result, which is the read's answer.
func (c *Client) followAsync(ctx context.Context, path string, resp *veeam.Response) (*veeam.Response, error) {
	if resp.Status != http.StatusAccepted {
		return resp, nil
	}
	id := asyncActionID(resp.Header.Get("Location"))
	if id == "" {
		return nil, &veeam.APIError{Target: c.name, Method: http.MethodGet, Path: path, Status: resp.Status, RoleHint: veeam.RoleHintVSPC,
			Message: "read answered asynchronously (202) without an async action Location"}
	}
	if _, err := c.WaitAsyncAction(ctx, id); err != nil {
		return nil, err
	}
	return c.call(ctx, http.MethodGet, asyncPath+"/"+id+"/result", nil, nil, "")
}

// get reads path and decodes the body with dec.
func get[T any](ctx context.Context, c *Client, path string, q url.Values, dec func([]byte) (T, error)) (T, error) {
	return rest.Get(ctx, c.conn, path, q, dec)
}

// list reads every page of a collection (offset/limit paging).
func list[T any, K comparable](ctx context.Context, c *Client, path string, dec func([]byte) ([]T, int, error), id func(T) K) ([]T, error) {
	return rest.List(ctx, c.conn, path, nil, "offset", PageSize, dec, id)
}

// checkID validates a path id: VSPC uids are UUIDs, and anything else could
// change the path.
func checkID(what, id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", fmt.Errorf("%s %q is not a UUID", what, id)
	}
	return u.String(), nil
}

// checkRequestID validates an idempotency key: VSPC needs a UUID.
func checkRequestID(id string) (string, error) {
	if id == "" {
		return "", errors.New("request id is empty; acting calls need an idempotency key")
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return "", fmt.Errorf("request id %q is not a UUID", id)
	}
	return u.String(), nil
}

// asyncActionID extracts the action id from a Location like
// https://vspc:1280/api/v3/asyncActions/{id}.
func asyncActionID(loc string) string {
	const seg = "/asyncActions/"
	if u, err := url.Parse(loc); err == nil {
		loc = u.Path
	}
	i := strings.Index(strings.ToLower(loc), strings.ToLower(seg))
	if i < 0 {
		return ""
	}
	id := loc[i+len(seg):]
	if j := strings.IndexByte(id, '/'); j >= 0 {
		id = id[:j]
	}
	return veeam.NormalizeID(id)
}
