// Package amtest builds Alertmanager webhook payloads (version 4) for the
// trigger's tests, the end-to-end tests and the benchmark, so they all send
// what Alertmanager sends.
package amtest

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/prometheus/common/model"
)

// Alert is one alert of a notification.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Firing is a firing alert with the label pairs kv, fingerprinted as
// Alertmanager does.
func Firing(startsAt time.Time, kv ...string) Alert {
	ls := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		ls[kv[i]] = kv[i+1]
	}
	return Alert{
		Status:       "firing",
		Labels:       ls,
		Annotations:  map[string]string{"summary": "site down"},
		StartsAt:     startsAt.UTC().Format(time.RFC3339Nano),
		EndsAt:       "0001-01-01T00:00:00Z",
		GeneratorURL: "http://prometheus.example/graph",
		Fingerprint:  fmt.Sprintf("%016x", model.LabelsToSignature(ls)),
	}
}

// Resolved is the same alert, resolved a minute after it started.
func Resolved(startsAt time.Time, kv ...string) Alert {
	a := Firing(startsAt, kv...)
	a.Status = "resolved"
	a.EndsAt = startsAt.Add(time.Minute).UTC().Format(time.RFC3339Nano)
	return a
}

// Payload is a notification in generic form, so that a test can break any
// part of it before encoding. Its status is firing when any alert fires.
type Payload map[string]any

// Notification groups alerts as Alertmanager would under groupKey.
func Notification(groupKey string, alerts ...Alert) Payload {
	status := "resolved"
	for _, a := range alerts {
		if a.Status == "firing" {
			status = "firing"
		}
	}
	common := map[string]string{}
	if len(alerts) > 0 {
		common = maps.Clone(alerts[0].Labels)
	}
	return Payload{
		"receiver":          "veeam-failover",
		"status":            status,
		"alerts":            alerts,
		"groupLabels":       map[string]string{"alertname": common["alertname"]},
		"commonLabels":      common,
		"commonAnnotations": map[string]string{},
		"externalURL":       "http://alertmanager.example",
		"version":           "4",
		"groupKey":          groupKey,
		"truncatedAlerts":   0,
		// Sent by Alertmanager >= 0.28; the receiver must tolerate fields it
		// does not know.
		"notification_reason": "new",
	}
}

// JSON encodes the payload.
func (p Payload) JSON() []byte {
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("amtest: %v", err)) // only JSON-able values are put in a Payload
	}
	return b
}
