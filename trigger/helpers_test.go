package trigger

import (
	"encoding/json"
	"testing"
	"time"
)

// testNow is the fixed "now" of tests that do not run against the simulator.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
