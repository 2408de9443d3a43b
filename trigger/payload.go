package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/common/model"
)

// maxBodyBytes bounds a webhook body. Alertmanager's default max_alerts is 0
// (all), but a notification larger than 1 MiB is not one an automatic
// failover should act on.
const maxBodyBytes = 1 << 20

// Alert statuses in a payload.
const (
	statusFiring   = "firing"
	statusResolved = "resolved"
)

// payload is an Alertmanager webhook notification, version 4.
//
// Parsing is strict about what the trigger relies on (syntax, keys exactly
// as Alertmanager writes them and each once per object, version, types,
// required fields, sane timestamps) and tolerant of fields it does not know: Alertmanager adds fields in minor releases (notification_reason,
// routeLabels in 0.28+), and refusing them would make an Alertmanager upgrade
// silently disable the failover.
type payload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"`
	Alerts            []alert           `json:"alerts"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
}

// alert is one alert of a notification.
type alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// labelSet is the alert's labels as a model.LabelSet.
func (a *alert) labelSet() model.LabelSet {
	ls := make(model.LabelSet, len(a.Labels))
	for k, v := range a.Labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// id identifies the alert for the quorum and dedup: Alertmanager's
// fingerprint is a hash of the labels, but the trigger computes its own so
// that a sender cannot make one alert count twice by varying the fingerprint.
func (a *alert) id() string {
	return a.labelSet().Fingerprint().String()
}

// displayFingerprint is what audit lines and answers show: Alertmanager's
// fingerprint when it sent one, otherwise the trigger's own.
func (a *alert) displayFingerprint() string {
	if a.Fingerprint != "" {
		return a.Fingerprint
	}
	return a.id()
}

// earliestTime and latestAhead bound startsAt: anything outside is a broken
// or forged payload, not an alert to act on.
var earliestTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const latestAhead = 24 * time.Hour

// payloadError is a problem with the notification itself (HTTP 400): the
// message says what is wrong and contains nothing of the request's secrets.
type payloadError struct{ msg string }

func (e *payloadError) Error() string { return e.msg }

func badPayload(format string, args ...any) error {
	return &payloadError{msg: fmt.Sprintf(format, args...)}
}

// parsePayload decodes and validates a notification. now bounds startsAt.
func parsePayload(body []byte, now time.Time) (*payload, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var p payload
	if err := dec.Decode(&p); err != nil {
		return nil, badPayload("invalid JSON: %s", jsonErrorMessage(err))
	}
	// Exactly one JSON value: trailing data means a broken or concatenated
	// body.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badPayload("invalid JSON: data after the payload object")
	}
	if err := checkKeys(body); err != nil {
		return nil, err
	}
	if err := p.validate(now); err != nil {
		return nil, err
	}
	return &p, nil
}

func jsonErrorMessage(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q: cannot use a JSON %s as %s", typ.Field, typ.Value, typ.Type)
		}
		return fmt.Sprintf("cannot use a JSON %s as %s", typ.Value, typ.Type)
	case errors.Is(err, io.EOF):
		return "empty body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of body"
	}
	// time.Time parse errors and the like: their text only quotes the
	// offending value, which came from the body.
	return err.Error()
}

func (p *payload) validate(now time.Time) error {
	if p.Version != "4" {
		if p.Version == "" {
			return badPayload("missing version: only Alertmanager webhook payload version 4 is accepted")
		}
		return badPayload("unsupported version %q: only Alertmanager webhook payload version 4 is accepted", truncate(p.Version, 20))
	}
	if p.Receiver == "" {
		return badPayload("missing receiver")
	}
	if p.GroupKey == "" {
		return badPayload("missing groupKey")
	}
	if p.Status != statusFiring && p.Status != statusResolved {
		return badPayload("status %q is neither firing nor resolved", truncate(p.Status, 20))
	}
	if len(p.Alerts) == 0 {
		return badPayload("no alerts")
	}
	latest := now.Add(latestAhead)
	for i := range p.Alerts {
		a := &p.Alerts[i]
		if a.Status != statusFiring && a.Status != statusResolved {
			return badPayload("alerts[%d]: status %q is neither firing nor resolved", i, truncate(a.Status, 20))
		}
		if len(a.Labels) == 0 {
			return badPayload("alerts[%d]: no labels", i)
		}
		for name := range a.Labels {
			if name == "" {
				return badPayload("alerts[%d]: empty label name", i)
			}
		}
		switch {
		case a.StartsAt.IsZero():
			return badPayload("alerts[%d]: missing startsAt", i)
		case a.StartsAt.Before(earliestTime):
			return badPayload("alerts[%d]: startsAt %s is before 2000", i, a.StartsAt.UTC().Format(time.RFC3339))
		case a.StartsAt.After(latest):
			return badPayload("alerts[%d]: startsAt %s is more than %s in the future", i, a.StartsAt.UTC().Format(time.RFC3339), latestAhead)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
