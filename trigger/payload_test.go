package trigger

import (
	"errors"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePayload(t *testing.T) {
	ok := amtest.Notification("{}:{alertname=\"SiteDown\"}", amtest.Firing(testNow.Add(-time.Hour), "alertname", "SiteDown", "site", "a")).JSON()
	replace := func(old, new string) string { return strings.Replace(string(ok), old, new, 1) }
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{"valid", string(ok), ""},
		{"unknown fields tolerated", replace(`"version":"4"`, `"version":"4","someFutureField":{"x":[1,2]}`), ""},
		{"empty body", "", "empty body"},
		{"syntax error", `{"version":"4",`, "invalid JSON"},
		{"not an object", `[1,2,3]`, "invalid JSON"},
		{"null", `null`, "missing version"},
		{"trailing data", string(ok) + `{"version":"4"}`, "data after"},
		{"trailing garbage", string(ok) + `x`, "data after"},
		{"missing version", replace(`,"version":"4"`, ``), "missing version"},
		{"wrong version", replace(`"version":"4"`, `"version":"3"`), `unsupported version "3"`},
		{"version as number", replace(`"version":"4"`, `"version":4`), `field "version"`},
		{"missing groupKey", replace(`"groupKey":"{}:{alertname=\"SiteDown\"}"`, `"groupKey":""`), "missing groupKey"},
		{"missing receiver", replace(`"receiver":"veeam-failover"`, `"receiver":""`), "missing receiver"},
		{"bad status", replace(`"status":"firing","truncatedAlerts"`, `"status":"burning","truncatedAlerts"`), "neither firing nor resolved"},
		{"no alerts", replace(string(ok[strings.Index(string(ok), `"alerts":`):strings.Index(string(ok), `,"commonAnnotations"`)]), `"alerts":[]`), "no alerts"},
		{"alert without labels", replace(`"labels":{"alertname":"SiteDown","site":"a"}`, `"labels":{}`), "no labels"},
		{"alert with null labels", replace(`"labels":{"alertname":"SiteDown","site":"a"}`, `"labels":null`), "no labels"},
		{"alert status", replace(`"status":"firing","labels"`, `"status":"pending","labels"`), "alerts[0]: status"},
		{"startsAt zero", replace(testNow.Add(-time.Hour).Format(time.RFC3339Nano), "0001-01-01T00:00:00Z"), "missing startsAt"},
		{"startsAt 1970", replace(testNow.Add(-time.Hour).Format(time.RFC3339Nano), "1970-01-01T00:00:00Z"), "before 2000"},
		{"startsAt far future", replace(testNow.Add(-time.Hour).Format(time.RFC3339Nano), testNow.Add(25*time.Hour).Format(time.RFC3339Nano)), "in the future"},
		{"startsAt not a time", replace(testNow.Add(-time.Hour).Format(time.RFC3339Nano), "yesterday"), "invalid JSON"},
		// Issue 17 item 14: keys exactly as Alertmanager writes them, once.
		{"status in another case", replace(`"status":"firing","truncatedAlerts"`, `"status":"resolved","Status":"firing","truncatedAlerts"`), `key "Status" in the payload: Alertmanager writes it "status"`},
		{"alert status in another case", replace(`"status":"firing","labels"`, `"STATUS":"firing","labels"`), `key "STATUS" in alerts[]: Alertmanager writes it "status"`},
		{"duplicate status", replace(`"status":"firing","truncatedAlerts"`, `"status":"resolved","status":"firing","truncatedAlerts"`), `key "status" appears twice in the payload`},
		{"duplicate alert status", replace(`"status":"firing","labels"`, `"status":"resolved","status":"firing","labels"`), `key "status" appears twice in alerts[]`},
		{"duplicate label", replace(`"labels":{"alertname":"SiteDown","site":"a"}`, `"labels":{"alertname":"SiteDown","site":"b","site":"a"}`), `key "site" appears twice in alerts[].labels`},
		{"labels in any case are labels", replace(`"labels":{"alertname":"SiteDown","site":"a"}`, `"labels":{"alertname":"SiteDown","site":"a","Site":"b"}`), ""},
		{"labels wrong type", replace(`"labels":{"alertname":"SiteDown","site":"a"}`, `"labels":["a"]`), `field "alerts.labels"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePayload([]byte(tc.body), testNow)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(p.Alerts) != 1 || p.Alerts[0].Labels["site"] != "a" {
					t.Fatalf("parsed %+v", p)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			var pe *payloadError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a payloadError", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestAlertIDIgnoresSentFingerprint(t *testing.T) {
	a := alert{Labels: map[string]string{"alertname": "SiteDown", "site": "a"}, Fingerprint: "0000000000000001"}
	b := alert{Labels: map[string]string{"site": "a", "alertname": "SiteDown"}, Fingerprint: "0000000000000002"}
	if a.id() != b.id() {
		t.Fatalf("same labels, different ids %s %s", a.id(), b.id())
	}
	if a.displayFingerprint() != "0000000000000001" {
		t.Fatalf("display fingerprint %s", a.displayFingerprint())
	}
}

// FuzzParsePayload checks that the parser never panics and that whatever it
// accepts satisfies what the pipeline relies on.
func FuzzParsePayload(f *testing.F) {
	f.Add(amtest.Notification("{}:{}", amtest.Firing(testNow.Add(-time.Hour), "alertname", "SiteDown")).JSON())
	f.Add(amtest.Notification("{}:{a=\"b\"}", amtest.Resolved(testNow.Add(-time.Hour), "alertname", "SiteDown"),
		amtest.Firing(testNow.Add(-2*time.Hour), "alertname", "SiteDown", "site", "b")).JSON())
	f.Add([]byte(`{"version":"4"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parsePayload(body, testNow)
		if err != nil {
			var pe *payloadError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a payloadError", err, err)
			}
			return
		}
		if p.Version != "4" || p.GroupKey == "" || p.Receiver == "" || len(p.Alerts) == 0 {
			t.Fatalf("accepted an incomplete payload: %+v", p)
		}
		for _, a := range p.Alerts {
			if len(a.Labels) == 0 || a.StartsAt.Before(earliestTime) || a.StartsAt.After(testNow.Add(latestAhead)) {
				t.Fatalf("accepted a bad alert: %+v", a)
			}
			if a.Status != statusFiring && a.Status != statusResolved {
				t.Fatalf("accepted alert status %q", a.Status)
			}
		}
	})
}

// TestFuzzSeedsExist keeps the checked-in corpus in place.
func TestFuzzSeedsExist(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParsePayload", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fuzz seeds in testdata/fuzz/FuzzParsePayload: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !strings.HasPrefix(string(b), "go test fuzz v1\n") {
			t.Errorf("%s is not a fuzz corpus file", f)
		}
	}
}
