// Package em is a client of the Veeam Backup Enterprise Manager REST API for
// failover: on-premises failover plans (read, start, undo), CDP replica VM
// failover, cloud failover sessions and the tasks that track actions.
package em

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/rest"
)

// IdleTimeout is EM's logon session idle timeout; the client logs on again
// before reusing a session left idle this long.
const IdleTimeout = 15 * time.Minute

// PageSize is the pageSize of query service reads. Entities carry their
// VMs or tasks, so pages are kept moderate.
const PageSize = 200

// sessionHeader carries the logon session on every request.
const sessionHeader = "X-RestSvcSessionId"

// Format is the representation the client asks EM for.
type Format int

const (
	// JSON is smaller to parse; EM sends it for Accept: application/json.
	JSON Format = iota
	// XML is EM's default representation.
	XML
)

func (f Format) String() string {
	if f == XML {
		return "xml"
	}
	return "json"
}

// Option adjusts a Client.
type Option func(*Client)

// WithFormat selects JSON (default) or XML.
func WithFormat(f Format) Option { return func(c *Client) { c.format = f } }

// Client talks to one Enterprise Manager. It is safe for concurrent use; all
// callers share one logon session.
type Client struct {
	name   string
	t      *veeam.Transport
	auth   *veeam.Auth
	opts   veeam.ClientOptions
	format Format
	conn   *rest.Conn
	// gen counts successful logons (LogonGeneration).
	gen atomic.Uint64
}

// New returns a client for o. It does not contact the server: the first call
// logs on.
func New(o veeam.ClientOptions, opts ...Option) (*Client, error) {
	return newClient(o, time.Now, opts...)
}

func newClient(o veeam.ClientOptions, now func() time.Time, opts ...Option) (*Client, error) {
	if o.Username == "" || o.Password == "" {
		return nil, fmt.Errorf("target %q: em needs a username and password", o.Name)
	}
	t, err := veeam.NewTransport(o, veeam.DefaultClassifier)
	if err != nil {
		return nil, err
	}
	c := &Client{name: o.Name, t: t, opts: o}
	for _, f := range opts {
		f(c)
	}
	c.auth = veeam.NewAuth(veeam.AuthConfig{
		Target:  o.Name,
		Login:   c.login,
		Idle:    IdleTimeout,
		Timeout: 3 * t.Timeout(),
		Logger:  t.Logger(),
		Now:     now,
	})
	c.conn = &rest.Conn{
		Name: o.Name, T: t, Auth: c.auth,
		Header:      func() http.Header { return http.Header{"Accept": {c.accept()}} },
		ContentType: c.accept,
		SetAuth:     setSession,
		ParseError: func(method, path string, r *veeam.Response) error {
			return parseError(c.name, method, path, r)
		},
	}
	return c, nil
}

// Format is the representation in use.
func (c *Client) Format() Format { return c.format }

func (c *Client) accept() string {
	if c.format == XML {
		// No application/json anywhere: EM would then refuse XML bodies.
		return "application/xml"
	}
	return "application/json"
}

func (c *Client) login(ctx context.Context) (*veeam.Credential, error) {
	const path = "/api/sessionMngr/"
	basic := base64.StdEncoding.EncodeToString([]byte(c.opts.Username + ":" + string(c.opts.Password)))
	h := http.Header{"Accept": {c.accept()}, "Authorization": {"Basic " + basic}}
	resp, err := c.t.Do(ctx, &veeam.Request{
		Method: http.MethodPost, Path: path, Query: url.Values{"v": {"latest"}},
		Header: h, Retry: veeam.RetryIdempotent,
	})
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return nil, parseError(c.name, http.MethodPost, path, resp)
	}
	// Header names are canonicalised by net/http, so any spelling matches.
	token := resp.Header.Get(sessionHeader)
	if token == "" {
		return nil, &veeam.DecodeError{Target: c.name, Method: http.MethodPost, Path: path,
			Err: fmt.Errorf("logon answered %d without an %s header", resp.Status, sessionHeader)}
	}
	id, err := decodeLogon(resp.Body)
	if err != nil {
		// The session works without it; only the logout on Close needs it.
		c.t.Logger().Debug("cannot read logon session id", "target", c.name, "err", err)
	}
	return &veeam.Credential{Token: token, SessionID: id, Generation: c.gen.Add(1)}, nil
}

// LogonGeneration counts the client's logon sessions so far (0 before the
// first). EM tasks are visible only to the logon session that created them
// [C: EMDOC tasks_intro]: a task whose Task.LogonGeneration is below this
// can no longer be read, whatever it did, so an action tracking it should
// end (abandoned) at once rather than time out.
func (c *Client) LogonGeneration() uint64 { return c.gen.Load() }

func setSession(h http.Header, cr *veeam.Credential) { h.Set(sessionHeader, cr.Token) }

// Close ends the logon session (DELETE /api/logonSessions/{id}). Calls after
// Close fail with veeam.ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	return c.conn.Close(ctx, func(ctx context.Context, cr *veeam.Credential) error {
		if cr.SessionID == "" {
			return nil
		}
		path := "/api/logonSessions/" + url.PathEscape(cr.SessionID)
		h := http.Header{"Accept": {c.accept()}}
		setSession(h, cr)
		resp, err := c.t.Do(ctx, &veeam.Request{Method: http.MethodDelete, Path: path, Header: h, Retry: veeam.RetryNever})
		if err != nil {
			return err
		}
		// 401/404: the session had already expired; nothing to end.
		if !resp.OK() && resp.Status != http.StatusUnauthorized && resp.Status != http.StatusNotFound {
			return parseError(c.name, http.MethodDelete, path, resp)
		}
		return nil
	})
}

func get[T any](ctx context.Context, c *Client, path string, q url.Values, dec func([]byte) (T, error)) (T, error) {
	return rest.Get(ctx, c.conn, path, q, dec)
}

// query reads every page of a query service type as entities, sorted by
// sortAsc so that pages are stable (sessions by CreationTime: new ones are
// appended at the end, where they shift nothing).
func query[T any, K comparable](ctx context.Context, c *Client, typ, sortAsc string, dec func([]byte) (Page[T], error), id func(T) K) ([]T, error) {
	return veeam.ReadPages(ctx, c.t.PageReaders(), func(ctx context.Context, n int) ([]T, veeam.PageInfo, error) {
		q := url.Values{
			"type":     {typ},
			"format":   {"Entities"},
			"pageSize": {fmt.Sprint(PageSize)},
			"page":     {fmt.Sprint(n + 1)}, // EM numbers pages from 1
			"sortAsc":  {sortAsc},
		}
		p, err := get(ctx, c, "/api/query", q, dec)
		if err != nil {
			return nil, veeam.PageInfo{}, err
		}
		return p.Items, veeam.PageInfo{Pages: p.Pages}, nil
	}, id)
}

// checkUUID validates an id that goes into a path.
func checkUUID(what, id string) (string, error) {
	s := veeam.NormalizeID(id)
	if len(s) != 36 || strings.Trim(s, "0123456789abcdef-") != "" {
		return "", fmt.Errorf("%s %q is not a UUID", what, id)
	}
	return s, nil
}
