package etcdtest

import (
	"testing"
	"time"
)

// TestClusterLosesAndRegainsQuorum checks the harness itself: a member
// stopped by pid leaves the others healthy, two stopped leave none healthy,
// and restarted members rejoin.
func TestClusterLosesAndRegainsQuorum(t *testing.T) {
	start := time.Now()
	c := Start(t)
	t.Logf("3-member cluster healthy after %s", time.Since(start).Round(time.Millisecond))
	if c.Size() != 3 || len(c.Endpoints()) != 3 {
		t.Fatalf("size %d, endpoints %v", c.Size(), c.Endpoints())
	}
	pids := map[int]bool{}
	for i := 0; i < c.Size(); i++ {
		if !c.Healthy(i) {
			t.Fatalf("member %d not healthy", i)
		}
		pids[c.PID(i)] = true
	}
	if len(pids) != 3 {
		t.Fatalf("pids %v, want 3 distinct", pids)
	}

	c.Stop(0)
	if c.Running(0) {
		t.Fatal("member 0 still running after Stop")
	}
	c.WaitHealthy(10 * time.Second) // two of three keep quorum

	c.Kill(1)
	deadline := time.Now().Add(5 * time.Second)
	for c.Healthy(2) {
		if time.Now().After(deadline) {
			t.Fatal("lone member 2 still reports healthy 5s after quorum was lost")
		}
		time.Sleep(100 * time.Millisecond)
	}

	old := c.PID(1)
	c.Restart(0)
	c.Restart(1)
	if c.PID(1) == old {
		t.Fatalf("member 1 has its old pid %d after restart", old)
	}
	c.WaitHealthy(startTimeout)
}
