package trigger

import (
	"encoding/json"
	"maps"
	"testing"
	"time"
)

// testNow is the fixed "now" of tests that do not run against the simulator.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// amAlert builds an Alertmanager alert as JSON-able map.
type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

func firingAlert(startsAt time.Time, kv ...string) amAlert {
	ls := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		ls[kv[i]] = kv[i+1]
	}
	a := amAlert{
		Status:       "firing",
		Labels:       ls,
		Annotations:  map[string]string{"summary": "site down"},
		StartsAt:     startsAt.UTC().Format(time.RFC3339Nano),
		EndsAt:       "0001-01-01T00:00:00Z",
		GeneratorURL: "http://prometheus.example/graph",
	}
	a.Fingerprint = (&alert{Labels: ls}).id()
	return a
}

func resolvedAlert(startsAt time.Time, kv ...string) amAlert {
	a := firingAlert(startsAt, kv...)
	a.Status = "resolved"
	a.EndsAt = startsAt.Add(time.Minute).UTC().Format(time.RFC3339Nano)
	return a
}

// notification renders a version 4 payload like Alertmanager's.
func notification(t testing.TB, groupKey string, alerts ...amAlert) []byte {
	t.Helper()
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
	b, err := json.Marshal(map[string]any{
		"receiver":            "veeam-failover",
		"status":              status,
		"alerts":              alerts,
		"groupLabels":         map[string]string{"alertname": common["alertname"]},
		"commonLabels":        common,
		"commonAnnotations":   map[string]string{},
		"externalURL":         "http://alertmanager.example",
		"version":             "4",
		"groupKey":            groupKey,
		"truncatedAlerts":     0,
		"notification_reason": "new",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
