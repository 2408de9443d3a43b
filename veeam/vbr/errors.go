package vbr

import (
	"encoding/json"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// Error is an error answer of the B&R REST API ({errorCode, message,
// resourceId}). It never holds credentials or tokens.
type Error struct {
	Target string
	Method string
	// Path is the request path, without the query.
	Path   string
	Status int
	// ErrorCode is Veeam's errorCode: AccessDenied, ExpiredToken,
	// InvalidToken, InvalidURI, MethodNotAllowed, NotFound, NotImplemented,
	// ServiceUnavailable, UnexpectedContent or UnknownError.
	ErrorCode string
	Message   string
}

func (e *Error) Error() string {
	d := e.Message
	if e.ErrorCode != "" {
		if d == "" {
			d = e.ErrorCode
		} else {
			d += " (" + e.ErrorCode + ")"
		}
	}
	return veeam.FormatAPIError(e.Target, e.Method, e.Path, e.Status, veeam.WithRoleHint(e.Status, d, veeam.RoleHintVBR))
}

// HTTPStatus implements veeam.StatusError.
func (e *Error) HTTPStatus() int { return e.Status }

// Is makes errors.Is(err, veeam.ErrNotFound) true for a 404.
func (e *Error) Is(target error) bool { return veeam.MatchStatus(e.Status, target) }

type wireError struct {
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
}

// DecodeError decodes an Error body.
func DecodeError(body []byte) (code, message string, err error) {
	var w wireError
	if err := json.Unmarshal(body, &w); err != nil {
		return "", "", err
	}
	return w.ErrorCode, w.Message, nil
}

func parseError(target, method, path string, r *veeam.Response) *Error {
	e := &Error{Target: target, Method: method, Path: path, Status: r.Status}
	if code, msg, err := DecodeError(r.Body); err == nil && (code != "" || msg != "") {
		e.ErrorCode = code
		e.Message = veeam.CleanMessage(msg)
	} else {
		e.Message = veeam.UnparsedBody(r)
	}
	return e
}
