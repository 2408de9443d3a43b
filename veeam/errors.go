package veeam

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrClosed is returned by a client's methods after Close.
var ErrClosed = errors.New("client closed")

// RequestError is a request that got no usable HTTP response: a connection,
// TLS or timeout error, or a body that could not be read. It names the
// target, method and path (never the query, headers or body, so never a
// secret).
type RequestError struct {
	Target string
	Method string
	Path   string
	Err    error
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("target %q: %s %s: %v", e.Target, e.Method, e.Path, e.Err)
}

func (e *RequestError) Unwrap() error { return e.Err }

// DecodeError is a response with a success status whose body could not be
// decoded (garbage, truncated, wrong shape).
type DecodeError struct {
	Target string
	Method string
	Path   string
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("target %q: decode %s %s: %v", e.Target, e.Method, e.Path, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// APIError is an error answer of any of the three APIs. Each client's
// parseError fills it from its own body format, so callers handle one type
// whichever API answered. It never holds credentials, tokens or session ids.
type APIError struct {
	Target string
	Method string
	// Path is the request path, without the query.
	Path string
	// Status is the HTTP status (VSPC answers every server error with 520).
	Status int
	// Code is Veeam's own code: B&R's errorCode (AccessDenied, NotFound, ...)
	// or VSPC's numeric code, which may differ from Status (1001 for a failed
	// JSON Patch, 500 behind a 520). Empty when the body had none.
	Code string
	// Kind is VSPC's error type (logical, retryableLogical, security, ...)
	// or the OAuth2 error of a failed login (invalid_grant, ...).
	Kind    string
	Message string
	// RetryAfter is the server's wait on a 429 (VSPC).
	RetryAfter time.Duration
	// RoleHint names the role the API wants; it is added to a 403's message.
	RoleHint string
}

// Error renders `target "x": GET /path: 520 message (type t, code c)`. A
// numeric code is labelled and left out when it only repeats the status; a
// named one (B&R) speaks for itself.
func (e *APIError) Error() string {
	var extra []string
	if e.Kind != "" {
		extra = append(extra, "type "+e.Kind)
	}
	if _, err := strconv.Atoi(e.Code); err != nil {
		if e.Code != "" {
			extra = append(extra, e.Code)
		}
	} else if e.Code != strconv.Itoa(e.Status) {
		extra = append(extra, "code "+e.Code)
	}
	if e.RetryAfter > 0 {
		extra = append(extra, "retry after "+e.RetryAfter.String())
	}
	d := e.Message
	if len(extra) > 0 {
		if d == "" {
			d = strings.Join(extra, ", ")
		} else {
			d += " (" + strings.Join(extra, ", ") + ")"
		}
	}
	if e.Status == http.StatusForbidden && e.RoleHint != "" {
		if d == "" {
			d = e.RoleHint
		} else {
			d += "; " + e.RoleHint
		}
	}
	if d == "" {
		d = http.StatusText(e.Status)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "target %q: %s %s: %d", e.Target, e.Method, e.Path, e.Status)
	if d != "" {
		b.WriteByte(' ')
		b.WriteString(d)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// StatusCode returns the HTTP status of the API error in err's chain, or 0
// when err carries none (connection and decode errors).
func StatusCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// IsUnauthorized reports whether err is an API answer of 401 (bad
// credentials, or a token the server no longer accepts after one re-login).
func IsUnauthorized(err error) bool { return StatusCode(err) == http.StatusUnauthorized }

// IsNotFound reports whether err is an API answer of 404.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// CleanMessage puts a server's error message on one line and bounds its
// length, the same way for every API's APIError.
func CleanMessage(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const maxLen = 512
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return s
}

// UnparsedBody describes an error body the client could not parse, without
// quoting it: a body from a proxy or load balancer is not ours to log.
func UnparsedBody(r *Response) string {
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	if ct == "" {
		ct = "unknown content type"
	}
	s := http.StatusText(r.Status)
	if s == "" {
		s = "error"
	}
	return fmt.Sprintf("%s (unparsed %s body, %d bytes)", s, ct, len(r.Body))
}

// ErrNotFound matches (with errors.Is) any API answer of 404: an object that
// is gone, or a VSPC async action whose result VSPC no longer keeps (5
// minutes after success, 1 hour after failure). A tracker that gets it
// stops polling and follows the object's own state instead.
var ErrNotFound = errors.New("not found")

// ErrMFARequired is a VSPC password login answered with an mfa_token
// instead of an access token: the account has multi-factor authentication.
var ErrMFARequired = errors.New("this account requires MFA; use an API key")

// Roles a 403 names, per API: the least role that both reads and acts. They
// come from Veeam's documents (veeam-api.md §1.9, §2.11, §6.2).
const (
	RoleHintVSPC = "needs a VSPC role that may start and undo failover plans (Portal Administrator, Site Administrator, Portal Operator, or Company Owner/Administrator) and a login or API key that is not read-only"
	RoleHintEM   = "needs the Enterprise Manager role Portal Administrator, or VM Restore Operator for failover plans and CDP failover"
	RoleHintVBR  = "needs the B&R role Veeam Backup Administrator or Veeam Restore Operator (Backup Viewer cannot read replicas)"
)
