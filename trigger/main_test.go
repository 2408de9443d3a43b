package trigger

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a tracker or any other goroutine outlives
// its Trigger.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
