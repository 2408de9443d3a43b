package trigger

import (
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// offsetClock is time.Now moved by an adjustable offset, for cooldowns.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) add(d time.Duration)     { c.off.Add(int64(d)) }
func (c *offsetClock) options() Options        { return Options{Now: c.now} }
func planStart(plan string) func(*config.Rule) { return func(r *config.Rule) { r.Action.Plan = plan } }

// TestGuards has, for each guard in pipeline order, a case it blocks and a
// case it lets through, against the simulator. A blocked case calls nothing.
func TestGuards(t *testing.T) {
	env := startSim(t, simulator.Options{Seed: 7, VSPC: simulator.VSPCOptions{Plans: 60, ObjectsPerPlan: 1, BackupServers: 1}})
	plans := env.readyPlans(t, 20)
	next := 0
	plan := func() simulator.VSPCPlan { p := plans[next]; next++; return p }
	now := time.Now()
	start := func(name string, p simulator.VSPCPlan, edit ...func(*config.Rule)) config.Rule {
		return newRule(name, config.ActionVSPCPlanStart, "vspc", append([]func(*config.Rule){planStart(p.InstanceUID)}, edit...)...)
	}
	// expect posts the notification and checks the verdict for rule r, and
	// that VSPC saw exactly wantStarts start calls for plan p.
	expect := func(t *testing.T, h *harness, body []byte, r string, want string, p simulator.VSPCPlan, wantStarts int) decision {
		t.Helper()
		d := only(t, h.post(t, body), r)
		if verdict(d) != want {
			t.Fatalf("verdict %s (%s), want %s", verdict(d), d.Reason, want)
		}
		h.wait(t, 5*time.Second)
		if got := env.vspcCalls(p.InstanceUID, "start"); got != wantStarts {
			t.Fatalf("%d start calls for plan %s, want %d", got, p.InstanceUID, wantStarts)
		}
		if want != verdictDecided && want != verdictDryRun {
			if got := h.counter(h.tr.m.blocked, d.Rule, want); got < 1 {
				t.Fatalf("blocked_total{%s,%s} = %v", d.Rule, want, got)
			}
		}
		return d
	}

	t.Run("kill_switch", func(t *testing.T) {
		p := plan()
		cfg := baseConfig(t.TempDir(), start("r", p))
		h := newHarness(t, cfg, env.actors, Options{})
		if err := os.WriteFile(cfg.KillSwitchFile, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if h.tr.Armed() || h.tr.status().Armed {
			t.Fatal("armed with the kill switch file present")
		}
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON(), "r", guardKillSwitch, p, 0)
		// Unmatched alerts stop at the kill switch too, under rule "none".
		ans := h.post(t, amtest.Notification("g0", amtest.Firing(now, "alertname", "Other")).JSON())
		if d := only(t, ans, ruleNone); d.Guard != guardKillSwitch {
			t.Fatalf("unmatched alert stopped by %s", d.Guard)
		}
		if err := os.Remove(cfg.KillSwitchFile); err != nil {
			t.Fatal(err)
		}
		if !h.tr.Armed() {
			t.Fatal("not armed without the kill switch file")
		}
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON(), "r", verdictDecided, p, 1)
	})

	t.Run("match", func(t *testing.T) {
		p := plan()
		h := newHarness(t, baseConfig(t.TempDir(), start("r", p)), env.actors, Options{})
		ans := h.post(t, amtest.Notification("g1", alertFor("other-rule", now.Add(-time.Hour))).JSON())
		if d := only(t, ans, ruleNone); d.Guard != guardMatch {
			t.Fatalf("guard %s", d.Guard)
		}
		if got := h.counter(h.tr.m.blocked, ruleNone, guardMatch); got != 1 {
			t.Fatalf("blocked{none,match} = %v", got)
		}
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON(), "r", verdictDecided, p, 1)
	})

	t.Run("resolved", func(t *testing.T) {
		p := plan()
		h := newHarness(t, baseConfig(t.TempDir(), start("r", p)), env.actors, Options{})
		resolved := amtest.Resolved(now.Add(-time.Hour), "alertname", "SiteDown", "rule", "r")
		expect(t, h, amtest.Notification("g1", resolved).JSON(), "r", guardResolved, p, 0)
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON(), "r", verdictDecided, p, 1)
	})

	t.Run("for", func(t *testing.T) {
		p := plan()
		r := start("r", p, func(r *config.Rule) { r.For = model.Duration(5 * time.Minute) })
		h := newHarness(t, baseConfig(t.TempDir(), r), env.actors, Options{})
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Minute))).JSON(), "r", guardFor, p, 0)
		expect(t, h, amtest.Notification("g2", alertFor("r", now.Add(-6*time.Minute))).JSON(), "r", verdictDecided, p, 1)
	})

	t.Run("quorum", func(t *testing.T) {
		p := plan()
		r := start("r", p, func(r *config.Rule) { r.MinAlerts = 2 })
		h := newHarness(t, baseConfig(t.TempDir(), r), env.actors, Options{})
		a1 := alertFor("r", now.Add(-time.Hour), "instance", "1")
		a2 := alertFor("r", now.Add(-time.Hour), "instance", "2")
		expect(t, h, amtest.Notification("g1", a1).JSON(), "r", guardQuorum, p, 0)
		// Two alerts make the quorum and the plan starts once.
		expect(t, h, amtest.Notification("g1", a1, a2).JSON(), "r", verdictDecided, p, 1)
	})

	t.Run("allow", func(t *testing.T) {
		allowed, other := plan(), plan()
		r := newRule("r", config.ActionVSPCPlanStart, "vspc", func(r *config.Rule) {
			r.Action.PlanLabel, r.Action.Allow = "veeam_plan", []string{allowed.Name}
		})
		h := newHarness(t, baseConfig(t.TempDir(), r), env.actors, Options{})
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour), "veeam_plan", other.Name)).JSON(), "r", guardAllow, other, 0)
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON(), "r", guardAllow, other, 0)
		d := expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour), "veeam_plan", allowed.Name)).JSON(), "r", verdictDecided, allowed, 1)
		if d.Object != allowed.Name {
			t.Fatalf("object %q", d.Object)
		}
	})

	t.Run("dedup", func(t *testing.T) {
		p := plan()
		r := start("r", p, func(r *config.Rule) { r.Cooldown = 0 })
		h := newHarness(t, baseConfig(t.TempDir(), r), env.actors, Options{})
		body := amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON()
		expect(t, h, body, "r", verdictDecided, p, 1)
		// Alertmanager's repeat, or its HA peer's copy.
		expect(t, h, body, "r", guardDedup, p, 1)
		// The same alert through another route (group key) is still the
		// same alert instance.
		expect(t, h, amtest.Notification("g-other-route", alertFor("r", now.Add(-time.Hour))).JSON(), "r", guardDedup, p, 1)
		// A new incident (new startsAt) passes dedup; the live plan state
		// (failed over) stops it next.
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Minute))).JSON(), "r", guardTargetState, p, 1)
	})

	t.Run("cooldown", func(t *testing.T) {
		p := plan()
		clock := &offsetClock{}
		h := newHarness(t, baseConfig(t.TempDir(), start("r", p)), env.actors, clock.options())
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON(), "r", verdictDecided, p, 1)
		if err := env.sim.SetVSPCPlanStatus(p.InstanceUID, "Ready"); err != nil {
			t.Fatal(err)
		}
		expect(t, h, amtest.Notification("g2", alertFor("r", now.Add(-time.Minute))).JSON(), "r", guardCooldown, p, 1)
		if cs := h.tr.status().Cooldowns; len(cs) != 1 || cs[0].RemainingSeconds <= 0 {
			t.Fatalf("cooldowns %+v", cs)
		}
		clock.add(61 * time.Minute)
		expect(t, h, amtest.Notification("g3", alertFor("r", now.Add(-time.Minute))).JSON(), "r", verdictDecided, p, 2)
	})

	t.Run("target_state", func(t *testing.T) {
		p := plan()
		h := newHarness(t, baseConfig(t.TempDir(), start("r", p)), env.actors, Options{})
		if err := env.sim.SetVSPCPlanStatus(p.InstanceUID, "Success"); err != nil {
			t.Fatal(err)
		}
		d := expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON(), "r", guardTargetState, p, 0)
		t.Log(d.Reason)
		if err := env.sim.SetVSPCPlanStatus(p.InstanceUID, "Ready"); err != nil {
			t.Fatal(err)
		}
		// Blocked by target_state, so not deduped: the repeat acts.
		expect(t, h, amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON(), "r", verdictDecided, p, 1)
		// A plan name that does not exist stops at target_state too.
		missing := newRule("missing", config.ActionVSPCPlanStart, "vspc", planStart("No such plan"))
		h2 := newHarness(t, baseConfig(t.TempDir(), missing), env.actors, Options{})
		if d := only(t, h2.post(t, amtest.Notification("g1", alertFor("missing", now)).JSON()), "missing"); d.Guard != guardTargetState {
			t.Fatalf("missing plan: %s", verdict(d))
		}
	})

	t.Run("rate_limit", func(t *testing.T) {
		p1, p2, p3 := plan(), plan(), plan()
		cfg := baseConfig(t.TempDir(), start("a", p1), start("b", p2), start("c", p3))
		cfg.RateLimit = config.RateLimit{Actions: 1, Per: model.Duration(time.Hour)}
		h := newHarness(t, cfg, env.actors, Options{})
		if tok := h.tr.tokens(); tok != 1 {
			t.Fatalf("tokens %v", tok)
		}
		expect(t, h, amtest.Notification("g1", alertFor("a", now.Add(-time.Hour))).JSON(), "a", verdictDecided, p1, 1)
		expect(t, h, amtest.Notification("g2", alertFor("b", now.Add(-time.Hour))).JSON(), "b", guardRateLimit, p2, 0)
		// The use survives a restart: a new process on the same state file
		// has no token either.
		if err := h.tr.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		h2 := newHarness(t, cfg, env.actors, Options{})
		if tok := h2.tr.tokens(); tok >= 1 {
			t.Fatalf("tokens after restart %v", tok)
		}
		expect(t, h2, amtest.Notification("g3", alertFor("c", now.Add(-time.Hour))).JSON(), "c", guardRateLimit, p3, 0)
	})

	t.Run("concurrency", func(t *testing.T) {
		p1, p2 := plan(), plan()
		cfg := baseConfig(t.TempDir(), start("a", p1), start("b", p2))
		cfg.MaxConcurrent = 1
		h := newHarness(t, cfg, env.actors, Options{})
		// The first call takes a while to be answered: it is in flight.
		env.sim.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: "/api/v3/infrastructure/backupServers/failoverplans/" + lower(p1.InstanceUID) + "/start", Latency: 300 * time.Millisecond})
		defer env.sim.ClearFaults()
		if d := only(t, h.post(t, amtest.Notification("g1", alertFor("a", now.Add(-time.Hour))).JSON()), "a"); verdict(d) != verdictDecided {
			t.Fatalf("first: %s (%s)", verdict(d), d.Reason)
		}
		d := only(t, h.post(t, amtest.Notification("g2", alertFor("b", now.Add(-time.Hour))).JSON()), "b")
		if verdict(d) != guardConcurrency {
			t.Fatalf("second: %s (%s)", verdict(d), d.Reason)
		}
		// Kept, not forgotten: when the slot frees the trigger evaluates
		// the decision again itself and acts; a resend is then a repeat.
		waitFor(t, func() bool { return env.vspcCalls(p2.InstanceUID, "start") == 1 })
		h.wait(t, 5*time.Second)
		expect(t, h, amtest.Notification("g2", alertFor("b", now.Add(-time.Hour))).JSON(), "b", guardDedup, p2, 1)
	})

	t.Run("dry_run", func(t *testing.T) {
		p := plan()
		cfg := baseConfig(t.TempDir(), start("r", p))
		cfg.DryRun = true
		h := newHarness(t, cfg, env.actors, Options{})
		if h.tr.Armed() {
			t.Fatal("armed in dry-run")
		}
		before := env.actionPosts()
		body := amtest.Notification("g1", alertFor("r", now.Add(-time.Hour))).JSON()
		d := expect(t, h, body, "r", verdictDryRun, p, 0)
		if d.Guard != guardDryRun || d.RequestID == "" {
			t.Fatalf("decision %+v", d)
		}
		if got := h.counter(h.tr.m.dryRunActions, "r", config.ActionVSPCPlanStart); got != 1 {
			t.Fatalf("dry_run_actions_total %v", got)
		}
		if got := h.counter(h.tr.m.actions, "r", config.ActionVSPCPlanStart); got != 0 {
			t.Fatalf("actions_total %v", got)
		}
		// Dry-run mirrors armed mode: the repeat is deduped.
		expect(t, h, body, "r", guardDedup, p, 0)
		if env.actionPosts() != before {
			t.Fatal("dry-run made a POST")
		}
		// Armed by a reload, the same incident acts: dry-run decisions do
		// not count as handled.
		cfg.DryRun = false
		if err := h.tr.Reload(cfg, env.actors); err != nil {
			t.Fatal(err)
		}
		expect(t, h, body, "r", verdictDecided, p, 1)
	})
}
