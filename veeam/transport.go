package veeam

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// Defaults applied by NewTransport when ClientOptions leave a field zero.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultPageConcurrency  = 8
	DefaultMaxResponseBytes = 256 << 20
	DefaultRetryAttempts    = 3
)

// Backoff bounds for retried GETs (full jitter: a random wait in
// [0, min(maxBackoff, baseBackoff*2^n))).
const (
	baseBackoff = 100 * time.Millisecond
	maxBackoff  = 2 * time.Second
)

// maxRetryAfter bounds how long a read waits for a server's retry-after
// when the caller set no deadline; a longer wait returns the 429 instead.
const maxRetryAfter = 2 * time.Minute

// userAgent identifies the exporter in the Veeam servers' logs.
const userAgent = "veeam_failover_exporter"

// ErrResponseTooLarge is a response body over ClientOptions.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("response body too large")

// RetryMode says how often a request may be sent.
type RetryMode int

const (
	// RetryIdempotent is for reads: resend on connection errors and on the
	// statuses the Classifier calls retryable, with backoff, bounded by the
	// attempt count and the caller's context.
	RetryIdempotent RetryMode = iota
	// RetryConnectionOnce resends once, and only when the first attempt got
	// no response at all (VSPC POSTs carrying an X-Request-id, which the
	// server deduplicates).
	RetryConnectionOnce
	// RetryNever sends once (actions without an idempotency key).
	RetryNever
)

// Request is one API call. Body is kept as bytes so that it can be resent.
type Request struct {
	Method string
	// Path is the absolute path on the server, e.g. "/api/v3/about".
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	Retry  RetryMode
}

// Response is a fully read HTTP response (any status).
type Response struct {
	Status int
	Header http.Header
	Body   []byte

	pool *sync.Pool // where Body's buffer goes back on Release
}

// Release hands Body's buffer back to the transport for the next response.
// Nothing may use Body, or anything decoded that still points into it,
// afterwards. Not calling it is fine: the buffer is then garbage collected.
func (r *Response) Release() {
	if r.pool == nil || cap(r.Body) > maxPooledBody {
		return
	}
	b, pool := r.Body[:0], r.pool
	r.Body, r.pool = nil, nil
	pool.Put(&b)
}

// maxPooledBody bounds the buffers kept for reuse.
const maxPooledBody = 4 << 20

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Classifier says whether a response may be retried (for RetryIdempotent
// requests) and the least time to wait first (a server's retry-after).
type Classifier func(r *Response) (retry bool, after time.Duration)

// DefaultClassifier retries 429 and 5xx, honouring a Retry-After header in
// seconds.
func DefaultClassifier(r *Response) (bool, time.Duration) {
	if r.Status == http.StatusTooManyRequests || r.Status >= 500 {
		return true, RetryAfterHeader(r.Header)
	}
	return false, 0
}

// RetryAfterHeader parses a Retry-After header given in seconds.
func RetryAfterHeader(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var n int
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// Transport is the HTTP side shared by the three API clients: TLS and proxy
// from prometheus/common/config, the caller's RoundTripper wrapper, a
// per-request timeout, a bound on requests in flight, bounded retries with
// jittered backoff and a limit on response sizes.
type Transport struct {
	name     string
	base     *url.URL
	client   *http.Client
	timeout  time.Duration
	sem      chan struct{}
	maxBody  int64
	attempts int
	classify Classifier
	logger   *slog.Logger
	// bufs holds response buffers (*[]byte) for reuse: a scrape reads
	// hundreds of pages of ~300 KB each.
	bufs sync.Pool
	// sleep waits d or until ctx ends; replaced in tests.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewTransport builds the transport for one target.
func NewTransport(o ClientOptions, classify Classifier) (*Transport, error) {
	if o.Name == "" {
		return nil, errors.New("client options: name is empty")
	}
	u, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil {
		return nil, fmt.Errorf("target %q: url: %w", o.Name, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q: url %q: want scheme://host:port", o.Name, u.Redacted())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("target %q: url must not carry user info, query or fragment", o.Name)
	}
	hc, err := promconfig.NewClientFromConfig(o.HTTPClientConfig, o.Name)
	if err != nil {
		return nil, fmt.Errorf("target %q: http client: %w", o.Name, err)
	}
	if o.WrapTransport != nil {
		hc.Transport = o.WrapTransport(hc.Transport)
	}
	if classify == nil {
		classify = DefaultClassifier
	}
	t := &Transport{
		name:     o.Name,
		base:     u,
		client:   hc,
		timeout:  o.Timeout,
		maxBody:  o.MaxResponseBytes,
		attempts: o.RetryAttempts,
		classify: classify,
		logger:   o.Logger,
		sleep:    sleepCtx,
	}
	if t.timeout <= 0 {
		t.timeout = DefaultTimeout
	}
	if t.maxBody <= 0 {
		t.maxBody = DefaultMaxResponseBytes
	}
	if t.attempts <= 0 {
		t.attempts = DefaultRetryAttempts
	}
	if t.logger == nil {
		t.logger = slog.New(slog.DiscardHandler)
	}
	n := o.PageConcurrency
	if n <= 0 {
		n = DefaultPageConcurrency
	}
	t.sem = make(chan struct{}, n)
	return t, nil
}

// Name is the target's name.
func (t *Transport) Name() string { return t.name }

// Timeout is the per-request timeout.
func (t *Transport) Timeout() time.Duration { return t.timeout }

// Concurrency is the bound on requests in flight.
func (t *Transport) Concurrency() int { return cap(t.sem) }

// PageReaders is how many pages of a list to read at once: half as many
// again as the requests allowed in flight, so that pages are decoded while
// the next requests are already out (the transport still bounds those to
// Concurrency). With a concurrency of 1 pages are read strictly one after
// another.
func (t *Transport) PageReaders() int { return cap(t.sem) + cap(t.sem)/2 }

// Logger is the target's logger (never nil).
func (t *Transport) Logger() *slog.Logger { return t.logger }

// CloseIdleConnections closes kept-alive connections (on client Close).
func (t *Transport) CloseIdleConnections() { t.client.CloseIdleConnections() }

// noResponseError marks an attempt that got no HTTP response at all, so a
// RetryConnectionOnce request may be resent.
type noResponseError struct{ err error }

func (e *noResponseError) Error() string { return e.err.Error() }
func (e *noResponseError) Unwrap() error { return e.err }

// Do sends req and returns the response whatever its status; errors are
// *RequestError (connection, TLS, timeout, oversized body). Retries follow
// req.Retry.
func (t *Transport) Do(ctx context.Context, req *Request) (*Response, error) {
	attempts := 1
	switch req.Retry {
	case RetryIdempotent:
		attempts = t.attempts
	case RetryConnectionOnce:
		attempts = 2
	}
	for i := 1; ; i++ {
		resp, err := t.once(ctx, req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, t.requestError(req, context.Cause(ctx))
			}
			if i >= attempts || !t.retryableError(req, err) {
				return nil, t.requestError(req, err)
			}
			wait = backoff(i)
			t.logger.Debug("retrying request", "target", t.name, "method", req.Method, "path", req.Path, "attempt", i, "err", err)
		case req.Retry == RetryIdempotent && i < attempts:
			retry, after := t.classify(resp)
			if !retry {
				return resp, nil
			}
			wait = max(backoff(i), after)
			if dl, ok := ctx.Deadline(); (ok && time.Until(dl) < wait) || wait > maxRetryAfter {
				// Waiting would outlive the caller: give them the answer now.
				return resp, nil
			}
			t.logger.Debug("retrying request", "target", t.name, "method", req.Method, "path", req.Path, "attempt", i, "status", resp.Status)
		default:
			return resp, nil
		}
		if err := t.sleep(ctx, wait); err != nil {
			return nil, t.requestError(req, context.Cause(ctx))
		}
	}
}

func (t *Transport) retryableError(req *Request, err error) bool {
	// A certificate the client does not trust will not become trusted.
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		hne x509.HostnameError
		cie x509.CertificateInvalidError
		rhe tls.RecordHeaderError
	)
	if errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie) || errors.As(err, &rhe) ||
		errors.Is(err, ErrResponseTooLarge) {
		return false
	}
	if req.Retry == RetryConnectionOnce {
		var nr *noResponseError
		return errors.As(err, &nr)
	}
	return req.Retry == RetryIdempotent
}

func (t *Transport) requestError(req *Request, err error) error {
	var nr *noResponseError
	if errors.As(err, &nr) {
		err = nr.err
	}
	return &RequestError{Target: t.name, Method: req.Method, Path: req.Path, Err: err}
}

// once sends one attempt under the per-request timeout, holding one slot of
// the in-flight semaphore.
func (t *Transport) once(ctx context.Context, req *Request) (*Response, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-t.sem }()

	actx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()

	u := *t.base
	u.Path = t.base.Path + req.Path
	u.RawPath = ""
	if len(req.Query) > 0 {
		u.RawQuery = req.Query.Encode()
	}
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(actx, req.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body == nil {
		// net/http silently resends a body-less GET whose kept-alive
		// connection broke, which would put more requests on the wire
		// than RetryAttempts allows. A non-nil body without GetBody is
		// not replayable, and an empty one is still sent without body
		// headers.
		hr.Body = io.NopCloser(strings.NewReader(""))
	}
	for k, v := range req.Header {
		hr.Header[k] = append([]string(nil), v...)
	}
	if hr.Header.Get("User-Agent") == "" {
		hr.Header.Set("User-Agent", userAgent)
	}
	resp, err := t.client.Do(hr)
	if err != nil {
		// *url.Error repeats the URL, which RequestError already names.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		if actx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("request timeout %s exceeded: %w", t.timeout, err)
		}
		return nil, &noResponseError{err: err}
	}
	defer resp.Body.Close()
	b, err := t.readBody(resp)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b, pool: &t.bufs}, nil
}

// readBody reads a whole body into a reused buffer, sized from
// Content-Length when the server sends one.
func (t *Transport) readBody(resp *http.Response) ([]byte, error) {
	var b []byte
	if p, ok := t.bufs.Get().(*[]byte); ok {
		b = (*p)[:0]
	}
	if n := resp.ContentLength; n > int64(cap(b)) && n <= t.maxBody {
		b = make([]byte, 0, n+512) // +512: room to see EOF without growing
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := resp.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > t.maxBody {
			return nil, fmt.Errorf("%w (%d bytes)", ErrResponseTooLarge, t.maxBody)
		}
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read body (status %d): %w", resp.StatusCode, err)
		}
	}
}

// backoff is the full-jitter wait before attempt n+1.
func backoff(n int) time.Duration {
	d := baseBackoff << (n - 1)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
