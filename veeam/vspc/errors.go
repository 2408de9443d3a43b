package vspc

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

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

// parseError builds the error of a non-2xx answer from any of VSPC's error
// shapes: its ErrorResponse, an OAuth2 error from /token, or the ASP.NET
// versioning error.
func parseError(target, method, path string, r *veeam.Response) *veeam.APIError {
	e := &veeam.APIError{Target: target, Method: method, Path: path, Status: r.Status, RoleHint: veeam.RoleHintVSPC}
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
			e.Kind = b.Errors[0].Type
			if c := b.Errors[0].Code; c != 0 {
				e.Code = strconv.Itoa(c)
			}
			if ra := b.Errors[0].RetryAfter; ra > 0 {
				e.RetryAfter = time.Duration(ra) * time.Second
			}
		case b.aspNetRecognised:
			e.Kind = b.aspNetCode
			e.Message = veeam.CleanMessage(b.aspNetMessage)
		case b.OAuthError != "" || b.OAuthErrorCode != nil:
			if s, ok := b.OAuthErrorCode.(string); ok {
				e.Kind = s
			}
			e.Message = veeam.CleanMessage(b.OAuthError)
		}
	}
	if e.Message == "" {
		if e.Kind != "" || e.Code != "" {
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
