// Package rest is the request side the vspc, em and vbr clients share: the
// closed check, retry-mode selection, auth, typed errors and decoding of
// one read, and offset-paged list reads. Each API keeps its own headers,
// auth setter and error parser, passed in as a Conn's fields.
package rest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// Conn is one client's connection to its server. It is safe for concurrent
// use once built.
type Conn struct {
	// Name is the target's name, for errors.
	Name string
	T    *veeam.Transport
	Auth *veeam.Auth
	// Header returns a fresh header set for a request (Accept, version).
	Header func() http.Header
	// ContentType is sent with request bodies.
	ContentType func() string
	// SetAuth puts the credential on a request.
	SetAuth func(http.Header, *veeam.Credential)
	// ParseError builds the *veeam.APIError of a non-2xx answer from the
	// API's own error body.
	ParseError func(method, path string, r *veeam.Response) error
	// FollowRead, when set, may replace a successful read's response
	// before it is decoded (VSPC answering a read with 202: poll the async
	// action, then read its result), or refuse it.
	FollowRead func(ctx context.Context, path string, r *veeam.Response) (*veeam.Response, error)

	closed atomic.Bool
}

// MarkClosed makes later calls fail with veeam.ErrClosed and reports
// whether the connection was closed already.
func (c *Conn) MarkClosed() bool { return c.closed.Swap(true) }

// Close marks the connection closed and, the first time only, drops the
// credential and closes idle connections; logout, when set and there is a
// credential, ends the session on the server first.
func (c *Conn) Close(ctx context.Context, logout func(context.Context, *veeam.Credential) error) error {
	if c.MarkClosed() {
		return nil
	}
	defer c.T.CloseIdleConnections()
	cr := c.Auth.Take()
	if cr == nil || logout == nil {
		return nil
	}
	return logout(ctx, cr)
}

// Call is one API request with auth (401 → one new login and one resend),
// retries for reads and typed errors. requestID, when set on an action,
// goes out as X-Request-id and allows one resend after a connection error
// (VSPC deduplicates on it); without one, actions are sent once.
func (c *Conn) Call(ctx context.Context, method, path string, q url.Values, body []byte, requestID string) (*veeam.Response, error) {
	return c.CallAs(ctx, method, path, q, body, requestID, nil)
}

// CallAs is Call that also reports the credential the answer was given
// to (used, when not nil, is called for each attempt; the last call
// counts): EM tasks belong to the logon session that created them.
func (c *Conn) CallAs(ctx context.Context, method, path string, q url.Values, body []byte, requestID string, used func(*veeam.Credential)) (*veeam.Response, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("target %q: %w", c.Name, veeam.ErrClosed)
	}
	h := c.Header()
	if body != nil {
		h.Set("Content-Type", c.ContentType())
	}
	mode := veeam.RetryIdempotent
	if method != http.MethodGet {
		mode = veeam.RetryNever
		if requestID != "" {
			h.Set("X-Request-id", requestID)
			mode = veeam.RetryConnectionOnce
		}
	}
	req := &veeam.Request{Method: method, Path: path, Query: q, Header: h, Body: body, Retry: mode}
	set := c.SetAuth
	if used != nil {
		set = func(h http.Header, cr *veeam.Credential) {
			c.SetAuth(h, cr)
			used(cr)
		}
	}
	resp, err := c.T.DoAuth(ctx, c.Auth, req, set, nil)
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return nil, c.ParseError(method, path, resp)
	}
	return resp, nil
}

// Get reads path and decodes the body with dec.
func Get[T any](ctx context.Context, c *Conn, path string, q url.Values, dec func([]byte) (T, error)) (T, error) {
	var zero T
	resp, err := c.Call(ctx, http.MethodGet, path, q, nil, "")
	if err != nil {
		return zero, err
	}
	if c.FollowRead != nil {
		if resp, err = c.FollowRead(ctx, path, resp); err != nil {
			return zero, err
		}
	}
	v, err := dec(resp.Body)
	resp.Release() // the decoders keep nothing of the body
	if err != nil {
		return zero, &veeam.DecodeError{Target: c.Name, Method: http.MethodGet, Path: path, Err: err}
	}
	return v, nil
}

// List reads every page of an offset/limit-paged collection (VSPC, VBR):
// q plus limit and offsetKey (the API's name for the offset).
func List[T any, K comparable](ctx context.Context, c *Conn, path string, q url.Values, offsetKey string, pageSize int, dec func([]byte) ([]T, int, error), id func(T) K) ([]T, error) {
	return veeam.ReadOffsetPages(ctx, c.T.PageReaders(), pageSize, func(ctx context.Context, offset, limit int) ([]T, int, error) {
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		pq.Set(offsetKey, strconv.Itoa(offset))
		pq.Set("limit", strconv.Itoa(limit))
		type pg struct {
			items []T
			total int
		}
		p, err := Get(ctx, c, path, pq, func(b []byte) (pg, error) {
			items, total, err := dec(b)
			return pg{items, total}, err
		})
		return p.items, p.total, err
	}, id)
}
