package vbr

import (
	"encoding/json"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

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

// parseError builds the error of a non-2xx answer from the B&R Error body
// ({errorCode, message, resourceId}).
func parseError(target, method, path string, r *veeam.Response) *veeam.APIError {
	e := &veeam.APIError{Target: target, Method: method, Path: path, Status: r.Status, RoleHint: veeam.RoleHintVBR}
	if code, msg, err := DecodeError(r.Body); err == nil && (code != "" || msg != "") {
		e.Code = code
		e.Message = veeam.CleanMessage(msg)
	} else {
		e.Message = veeam.UnparsedBody(r)
	}
	return e
}
