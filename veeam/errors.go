package veeam

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
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

// StatusError is implemented by the typed API errors of vspc, em and vbr, so
// that callers that do not care which API answered can still ask for the
// HTTP status.
type StatusError interface {
	error
	HTTPStatus() int
}

// StatusCode returns the HTTP status of the API error in err's chain, or 0
// when err carries none (connection and decode errors).
func StatusCode(err error) int {
	var se StatusError
	if errors.As(err, &se) {
		return se.HTTPStatus()
	}
	return 0
}

// IsUnauthorized reports whether err is an API answer of 401 (bad
// credentials, or a token the server no longer accepts after one re-login).
func IsUnauthorized(err error) bool { return StatusCode(err) == http.StatusUnauthorized }

// IsNotFound reports whether err is an API answer of 404.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// FormatAPIError renders the common message of the typed API errors:
// `target "x": GET /api/v3/...: 520 detail`.
func FormatAPIError(target, method, path string, status int, detail string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "target %q: %s %s: %d", target, method, path, status)
	if detail == "" {
		detail = http.StatusText(status)
	}
	if detail != "" {
		b.WriteByte(' ')
		b.WriteString(detail)
	}
	return b.String()
}

// CleanMessage puts a server's error message on one line and bounds its
// length, the same way for every API's typed error.
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

// MatchStatus is the Is method of the typed API errors: ErrNotFound
// matches a 404.
func MatchStatus(status int, target error) bool {
	return target == ErrNotFound && status == http.StatusNotFound
}

// WithRoleHint adds the missing role to a 403's detail.
func WithRoleHint(status int, detail, hint string) string {
	if status != http.StatusForbidden {
		return detail
	}
	if detail == "" {
		return hint
	}
	return detail + "; " + hint
}
