package em

import (
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// Error is an error answer of Enterprise Manager (its Error body, XML or
// JSON). It never holds credentials or session ids.
type Error struct {
	Target string
	Method string
	// Path is the request path, without the query.
	Path    string
	Status  int
	Message string
}

func (e *Error) Error() string {
	return veeam.FormatAPIError(e.Target, e.Method, e.Path, e.Status, veeam.WithRoleHint(e.Status, e.Message, veeam.RoleHintEM))
}

// HTTPStatus implements veeam.StatusError.
func (e *Error) HTTPStatus() int { return e.Status }

// Is makes errors.Is(err, veeam.ErrNotFound) true for a 404.
func (e *Error) Is(target error) bool { return veeam.MatchStatus(e.Status, target) }

func parseError(target, method, path string, r *veeam.Response) *Error {
	e := &Error{Target: target, Method: method, Path: path, Status: r.Status}
	if msg, _, err := DecodeError(r.Body); err == nil && strings.TrimSpace(msg) != "" {
		e.Message = veeam.CleanMessage(msg)
	} else {
		e.Message = veeam.UnparsedBody(r)
	}
	return e
}
