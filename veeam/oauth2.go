package veeam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// OAuth2Token runs a password or refresh_token grant at path, as VSPC and
// VBR both do (form body, RFC 6749 answer). header carries the API's own
// headers; parseError turns a non-2xx answer into an *APIError.
// defaultLifetime applies when the answer has no usable expires_in.
//
// A grant may be sent again on a connection error: the worst a duplicate
// does is issue a token nobody uses.
func (t *Transport) OAuth2Token(ctx context.Context, path string, header http.Header, form url.Values,
	defaultLifetime time.Duration, parseError func(*Response) error) (*Credential, error) {
	h := header.Clone()
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := t.Do(ctx, &Request{Method: http.MethodPost, Path: path, Header: h, Body: []byte(form.Encode()), Retry: RetryIdempotent})
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return nil, parseError(resp)
	}
	var answer struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
		MFAToken     string `json:"mfa_token"`
	}
	if err := json.Unmarshal(resp.Body, &answer); err != nil {
		return nil, &DecodeError{Target: t.name, Method: http.MethodPost, Path: path, Err: err}
	}
	if answer.AccessToken == "" && answer.MFAToken != "" {
		return nil, fmt.Errorf("target %q: %w", t.name, ErrMFARequired)
	}
	if answer.AccessToken == "" {
		return nil, &DecodeError{Target: t.name, Method: http.MethodPost, Path: path, Err: errors.New("no access_token in answer")}
	}
	life := time.Duration(answer.ExpiresIn) * time.Second
	if answer.ExpiresIn <= 0 || answer.ExpiresIn > 365*24*3600 {
		life = defaultLifetime
	}
	return &Credential{Token: answer.AccessToken, RefreshToken: answer.RefreshToken, Lifetime: life}, nil
}
