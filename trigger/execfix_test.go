package trigger

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// TestSecondCallRechecks: a kill switch created while the trigger waits to
// call a second time (after a 429, or before resending a VSPC call whose
// answer was unclear) stops that call. After a 429 nothing was done, so the
// action ends not sent and is released; after a maybe-done answer it is not
// resent and tracking tells what happened.
func TestSecondCallRechecks(t *testing.T) {
	env := startSimTLS(t, simulator.Options{Seed: 171, ActionDuration: 300 * time.Millisecond})
	plans := env.readyPlans(t, 2)
	for _, tc := range []struct {
		name    string
		plan    simulator.VSPCPlan
		fault   simulator.Fault
		want    string
		started int
	}{
		{"429 retry", plans[0], simulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: 2, Count: 1}, outcomeAbandoned, 0},
		{"maybe-done resend", plans[1], simulator.Fault{Status: http.StatusInternalServerError, AfterAction: true, Count: 1}, outcomeSuccess, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(t.TempDir(), newRule("r", config.ActionVSPCPlanStart, "vspc", withPlan(tc.plan.InstanceUID)))
			h := newHarness(t, cfg, env.actors, Options{})
			before := env.posts(simulator.APIVSPC, vspcPlansPath)
			f := tc.fault
			f.Method, f.PathPrefix = http.MethodPost, vspcPlansPath
			env.sim.SetFault(simulator.APIVSPC, f)
			defer env.sim.ClearFaults()
			d := act(t, h, "r")
			if verdict(d) != verdictDecided {
				t.Fatalf("%s (%s)", verdict(d), d.Reason)
			}
			waitFor(t, func() bool { return env.posts(simulator.APIVSPC, vspcPlansPath) > before })
			if err := os.WriteFile(cfg.KillSwitchFile, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			outs := h.wait(t, 10*time.Second)
			if len(outs) != 1 || outs[0].Outcome != tc.want {
				t.Fatalf("outcomes %+v, want one %s", outs, tc.want)
			}
			if n := env.posts(simulator.APIVSPC, vspcPlansPath) - before; n != 1 {
				t.Fatalf("%d action POSTs, want 1 (no second call after the kill switch)", n)
			}
			if n := env.sim.VSPCPlanStarts(tc.plan.InstanceUID); n != tc.started {
				t.Fatalf("%d starts carried out, want %d", n, tc.started)
			}
			if tc.want == outcomeAbandoned {
				if !strings.Contains(outs[0].Message, "not sent") || !strings.Contains(outs[0].Message, "kill switch") {
					t.Fatalf("message %q", outs[0].Message)
				}
				checkAuditEvent(t, cfg.AuditLog, d.RequestID, eventReleased)
			}
		})
	}
}

// TestAbandonedAfterSendHolds: an action that was sent and ends abandoned
// (its result cannot be followed: target reloaded away, EM task unreadable)
// holds its object like a timeout, since its task may still run; one never
// sent does not.
func TestAbandonedAfterSendHolds(t *testing.T) {
	for _, tc := range []struct {
		name string
		sent bool
	}{{"sent", true}, {"never sent", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := armedConfig(t.TempDir())
			tr := newBareTrigger(t, cfg, nil)
			object := "em/plan/p1"
			now := time.Now()
			rec := &actionRecord{RequestID: "17171717-1717-4717-8717-171717171717", Rule: "r", Action: config.ActionEMPlanStart,
				Target: "em", Object: "p1", ObjectKey: object, Status: statusDecided, DecidedAt: now, PlanID: "p1"}
			if tc.sent {
				rec.Status, rec.SentAt, rec.TaskID = statusSent, now, "task-1"
			}
			tr.mu.Lock()
			tr.store.commit(rec, []string{"k"}, []cooldownKey{{config.ActionEMPlanStart, object}}, now.Add(time.Hour), now)
			tr.finishLocked(rec, outcomeAbandoned, "target removed by reload", true)
			h, held := tr.store.holds[object]
			tr.mu.Unlock()
			if held != tc.sent {
				t.Fatalf("held %t, want %t", held, tc.sent)
			}
			if held && !h.Until.After(time.Now().Add(time.Duration(cfg.ActionTimeout)-time.Minute)) {
				t.Fatalf("hold until %s, want about one action_timeout", h.Until)
			}
		})
	}
}

// TestStartReleasesUnsentWithAuditedOutcome: at start-up an unsent action
// whose outcome the audit log already holds (written before a crash kept
// the state file from following) gives back its dedup keys, cooldowns and
// rate token, and no audit line is written twice.
func TestStartReleasesUnsentWithAuditedOutcome(t *testing.T) {
	cfg := armedConfig(t.TempDir())
	cfg.RateLimit.Actions = 1
	tr := newBareTrigger(t, cfg, nil)
	object := "vspc/plan/p1"
	keys := []string{"k1"}
	cks := []cooldownKey{{config.ActionVSPCPlanStart, object}}
	now := time.Now()
	rec := &actionRecord{RequestID: "18181818-1818-4818-8818-181818181818", Rule: "r", Action: config.ActionVSPCPlanStart,
		Target: "vspc", Object: "p1", ObjectKey: object, Status: statusDecided, DecidedAt: now, PlanID: "p1"}
	tr.mu.Lock()
	tr.store.commit(rec, keys, cks, now.Add(time.Hour), now)
	tr.store.limiter.AllowN(now, 1)
	// The crash came after the outcome and released lines reached the audit
	// log, before the state file was written.
	if err := tr.audit.write(outcomeLine{actionAudit: rec.audit(now, eventOutcome), Outcome: outcomeAbandoned, Message: "not sent"}, true); err != nil {
		t.Fatal(err)
	}
	if err := tr.audit.write(releasedLine(rec, now, "never sent"), true); err != nil {
		t.Fatal(err)
	}
	tr.finishLocked(rec, outcomeAbandoned, "not sent", false)
	dedup := tr.store.dedupReason(keys, time.Now(), false)
	cool := tr.store.cooldownReason(time.Hour, cks, time.Now(), false)
	left := tr.store.action(rec.RequestID)
	tr.mu.Unlock()
	if dedup != "" || cool != "" || tr.tokens() < 0.99 || left != nil {
		t.Fatalf("not released: dedup %q cooldown %q tokens %.2f record %v", dedup, cool, tr.tokens(), left != nil)
	}
	for _, ev := range []string{eventOutcome, eventReleased} {
		if n := auditEvents(t, cfg.AuditLog, rec.RequestID, ev); n != 1 {
			t.Fatalf("%d %s lines, want 1", n, ev)
		}
	}
}

// auditEvents counts the audit lines of one request id and event.
func auditEvents(t *testing.T, path, requestID, event string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			Event     string
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Event == event && l.RequestID == requestID {
			n++
		}
	}
	return n
}

// alertBody is a firing notification for rule.
func alertBody(group, rule string) []byte {
	return amtest.Notification(group, alertFor(rule, time.Now().Add(-time.Minute))).JSON()
}
