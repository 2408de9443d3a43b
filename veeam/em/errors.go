package em

import (
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// parseError builds the error of a non-2xx answer from Enterprise Manager's
// Error body (XML or JSON).
func parseError(target, method, path string, r *veeam.Response) *veeam.APIError {
	e := &veeam.APIError{Target: target, Method: method, Path: path, Status: r.Status, RoleHint: veeam.RoleHintEM}
	if msg, _, err := DecodeError(r.Body); err == nil && strings.TrimSpace(msg) != "" {
		e.Message = veeam.CleanMessage(msg)
	} else {
		e.Message = veeam.UnparsedBody(r)
	}
	return e
}
