package vspc

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// Error is an error answer of the VSPC API: its ErrorResponse
// ({"errors":[{message,type,code}]}), an OAuth2 error from /token, or the
// ASP.NET versioning error. VSPC answers every server error with status 520
// and the real code in Code. It never holds credentials or tokens.
type Error struct {
	Target string
	Method string
	// Path is the request path, without the query.
	Path string
	// Status is the HTTP status (520 for any server error).
	Status int
	// Code is Veeam's code, which may differ from Status (e.g. 1001 for a
	// failed JSON Patch); 0 when the body had none.
	Code int
	// Type is logical|retryableLogical|security|transport|unspecified, or the
	// OAuth2 error (invalid_grant, ...) for a failed login.
	Type    string
	Message string
	// RetryAfter is the server's retryAfter on a 429.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	d := e.Message
	var extra []string
	if e.Type != "" {
		extra = append(extra, "type "+e.Type)
	}
	if e.Code != 0 && e.Code != e.Status {
		extra = append(extra, fmt.Sprintf("code %d", e.Code))
	}
	if e.RetryAfter > 0 {
		extra = append(extra, "retry after "+e.RetryAfter.String())
	}
	if len(extra) > 0 {
		d += " (" + strings.Join(extra, ", ") + ")"
	}
	return veeam.FormatAPIError(e.Target, e.Method, e.Path, e.Status, veeam.WithRoleHint(e.Status, d, veeam.RoleHintVSPC))
}

// HTTPStatus implements veeam.StatusError.
func (e *Error) HTTPStatus() int { return e.Status }

// Is makes errors.Is(err, veeam.ErrNotFound) true for a 404.
func (e *Error) Is(target error) bool { return veeam.MatchStatus(e.Status, target) }

// wireError is one ResponseError.
type wireError struct {
	Message    string `json:"message"`
	Type       string `json:"type"`
	Code       int    `json:"code"`
	RetryAfter int    `json:"retryAfter"`
}

// errorBody covers the three error shapes VSPC answers with.
type errorBody struct {
	Errors []wireError `json:"errors"`
	// OAuth2Error from /token.
	OAuthError       string `json:"error_description"`
	OAuthErrorCode   any    `json:"error"`
	aspNetCode       string
	aspNetMessage    string
	aspNetRecognised bool
}

// parseError builds the typed error for a non-2xx response.
func parseError(target, method, path string, r *veeam.Response) *Error {
	e := &Error{Target: target, Method: method, Path: path, Status: r.Status}
	if b, ok := decodeErrorBody(r.Body); ok {
		switch {
		case len(b.Errors) > 0:
			msgs := make([]string, 0, len(b.Errors))
			for _, we := range b.Errors {
				if m := veeam.CleanMessage(we.Message); m != "" {
					msgs = append(msgs, m)
				}
			}
			e.Message = strings.Join(msgs, "; ")
			e.Type = b.Errors[0].Type
			e.Code = b.Errors[0].Code
			if ra := b.Errors[0].RetryAfter; ra > 0 {
				e.RetryAfter = time.Duration(ra) * time.Second
			}
		case b.aspNetRecognised:
			e.Type = b.aspNetCode
			e.Message = veeam.CleanMessage(b.aspNetMessage)
		case b.OAuthError != "" || b.OAuthErrorCode != nil:
			if s, ok := b.OAuthErrorCode.(string); ok {
				e.Type = s
			}
			e.Message = veeam.CleanMessage(b.OAuthError)
		}
	}
	if e.Message == "" {
		if e.Type != "" || e.Code != 0 {
			e.Message = http.StatusText(r.Status)
			if e.Message == "" {
				e.Message = "server error" // 520 has no standard text
			}
		} else {
			e.Message = veeam.UnparsedBody(r)
		}
	}
	if e.RetryAfter == 0 && r.Status == http.StatusTooManyRequests {
		e.RetryAfter = veeam.RetryAfterHeader(r.Header)
	}
	return e
}

// decodeErrorBody decodes any of the error shapes; ok is false for a body
// that is not JSON.
func decodeErrorBody(body []byte) (errorBody, bool) {
	var b errorBody
	if err := json.Unmarshal(body, &b); err != nil {
		return b, false
	}
	// {"error":{"code":"UnsupportedApiVersion","message":"..."}}
	if m, ok := b.OAuthErrorCode.(map[string]any); ok {
		b.OAuthErrorCode = nil
		b.aspNetRecognised = true
		b.aspNetCode, _ = m["code"].(string)
		b.aspNetMessage, _ = m["message"].(string)
	}
	return b, true
}

// classify is the retry policy of VSPC reads: 520 and other 5xx, and 429
// after the server's retryAfter.
func classify(r *veeam.Response) (bool, time.Duration) {
	switch {
	case r.Status == http.StatusTooManyRequests:
		after := veeam.RetryAfterHeader(r.Header)
		if b, ok := decodeErrorBody(r.Body); ok && len(b.Errors) > 0 && b.Errors[0].RetryAfter > 0 {
			after = time.Duration(b.Errors[0].RetryAfter) * time.Second
		}
		return true, after
	case r.Status >= 500:
		return true, 0
	}
	return false, 0
}
