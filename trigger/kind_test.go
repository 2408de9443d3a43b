package trigger

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
)

// A kind declared only here, "test_lamp_on", switches a lamp on. Nothing
// outside this file knows it: TestKindDeclaredInOneFile shows that config
// validation, the webhook's pipeline and execution, the metrics and /trigger
// pick it up from its declaration alone.
const testLampOn = "test_lamp_on"

// lampSwitcher is the kind's small interface; lamps (the fake target) has it.
type lampSwitcher interface {
	IsOn(ctx context.Context, lamp string) (bool, error)
	SwitchOn(ctx context.Context, lamp string) (job string, err error)
	JobDone(ctx context.Context, job string) (bool, error)
}

// objectLamp: the lamp is named by the action's vm key.
var objectLamp = objectShape{
	Keys: []string{"vm"},
	Check: func(name string, a *config.Action, problem problemFunc) {
		if a.VM == "" {
			problem("vm", "missing: %s needs the lamp", name)
		}
	},
	Compile: func(_ string, a *config.Action) (string, string, error) { return "", a.VM, nil },
}

func init() {
	registerKind(kindSpec[lampSwitcher]{
		Name:       testLampOn,
		TargetType: config.TypeEM,
		Object:     objectLamp,
		Resolve: func(ctx context.Context, c lampSwitcher, _ *config.Action, object string) (resolved, string) {
			on, err := c.IsOn(ctx, object)
			switch {
			case err != nil:
				return resolved{}, err.Error()
			case on:
				return resolved{}, fmt.Sprintf("lamp %s is already on", object)
			}
			return resolved{}, ""
		},
		Call: func(ctx context.Context, c lampSwitcher, rec *actionRecord) (handle, error) {
			job, err := c.SwitchOn(ctx, rec.Object)
			return handle{taskID: job}, err
		},
		Poll: func(ctx context.Context, c lampSwitcher, rec *actionRecord, _ *tracking) (string, string, error) {
			done, err := c.JobDone(ctx, rec.TaskID)
			if err != nil || !done {
				return "", "", err
			}
			return outcomeSuccess, "lamp " + rec.Object + " is on", nil
		},
	})
}

// lamps is the fake target: switching a lamp on takes two reads of its job.
type lamps struct {
	mu    sync.Mutex
	on    map[string]bool
	calls int
	reads int
}

func (l *lamps) IsOn(_ context.Context, lamp string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on[lamp], nil
}

func (l *lamps) SwitchOn(_ context.Context, lamp string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.on[lamp] = true
	return "job-" + lamp, nil
}

func (l *lamps) JobDone(context.Context, string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	return l.reads >= 2, nil
}

func TestKindDeclaredInOneFile(t *testing.T) {
	dir := t.TempDir()
	load := func(action string) (*config.Config, error) {
		file := filepath.Join(dir, "c.yml")
		yml := fmt.Sprintf(`targets:
  - {name: lamps, type: em, url: "http://127.0.0.1:1", username: u, password: p}
trigger:
  dry_run: false
  allow_unauthenticated_webhook: true
  state_file: %s
  rules:
    - name: lamp
      matchers: ['alertname="Dark"']
      cooldown: 0s
      action: %s
`, filepath.Join(dir, "state.json"), action)
		if err := writeFileAtomic(file, []byte(yml)); err != nil {
			t.Fatal(err)
		}
		return config.Load(file, config.LoadOptions{})
	}

	// Config validation reads the declaration: its keys, its check, its
	// target type.
	for _, tc := range []struct{ action, want string }{
		{`{type: test_lamp_on, target: lamps}`, "trigger.rules[0].action.vm: missing: test_lamp_on needs the lamp"},
		{`{type: test_lamp_on, target: lamps, vm: hall, plan: P}`, "trigger.rules[0].action.plan: not used by test_lamp_on"},
	} {
		if _, err := load(tc.action); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.action, err, tc.want)
		}
	}
	cfg, err := load(`{type: test_lamp_on, target: lamps, vm: hall}`)
	if err != nil {
		t.Fatal(err)
	}

	// A client without the kind's interface cannot be the target.
	if _, err := New(cfg.Trigger, map[string]any{"lamps": struct{}{}}, Options{}); err == nil || !strings.Contains(err.Error(), `"lamps" is not a em target`) {
		t.Fatalf("a client without the kind's interface: %v", err)
	}

	target := &lamps{on: map[string]bool{}}
	h := newHarness(t, cfg.Trigger, map[string]any{"lamps": target}, Options{})
	if got := testutil.CollectAndCount(h.tr.m.blocked); got != len(pipeline)+2 {
		t.Errorf("%d blocked_total series, want every guard of the rule plus none/{kill_switch,match}", got)
	}

	// Execution: the webhook decides, the call is made once and tracked to
	// its end.
	now := time.Now()
	ans := h.post(t, amtest.Notification("g1", amtest.Firing(now.Add(-time.Minute), "alertname", "Dark")).JSON())
	if d := only(t, ans, "lamp"); verdict(d) != verdictDecided || d.Action != testLampOn || d.Object != "hall" {
		t.Fatalf("decision %+v", d)
	}
	outs := h.wait(t, 5*time.Second)
	if len(outs) != 1 || outs[0].Outcome != outcomeSuccess || outs[0].Handle != "task job-hall" {
		t.Fatalf("outcomes %+v", outs)
	}
	target.mu.Lock()
	calls, on := target.calls, target.on["hall"]
	target.mu.Unlock()
	if calls != 1 || !on {
		t.Fatalf("lamp calls %d, hall on %v", calls, on)
	}

	// target_state reads the declaration's live check.
	ans = h.post(t, amtest.Notification("g2", amtest.Firing(now.Add(-time.Minute), "alertname", "Dark", "room", "2")).JSON())
	if d := only(t, ans, "lamp"); d.Guard != guardTargetState || d.Reason != "lamp hall is already on" {
		t.Fatalf("second decision %+v", d)
	}

	// Metrics.
	for _, c := range []struct {
		name string
		got  float64
	}{
		{"actions_total", h.counter(h.tr.m.actions, "lamp", testLampOn)},
		{"action_outcomes_total{success}", h.counter(h.tr.m.outcomes, "lamp", testLampOn, outcomeSuccess)},
		{"blocked_total{target_state}", h.counter(h.tr.m.blocked, "lamp", guardTargetState)},
	} {
		if c.got != 1 {
			t.Errorf("%s = %v, want 1", c.name, c.got)
		}
	}

	// /trigger.
	rec := httptest.NewRecorder()
	h.tr.StatusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/trigger", nil))
	var st struct {
		Rules []struct {
			Action struct{ Type, Object string }
		}
		RecentOutcomes []struct{ Action, Outcome string } `json:"recent_outcomes"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Rules) != 1 || st.Rules[0].Action.Type != testLampOn || st.Rules[0].Action.Object != "hall" ||
		len(st.RecentOutcomes) != 1 || st.RecentOutcomes[0].Action != testLampOn {
		t.Fatalf("/trigger: %s", rec.Body)
	}
}
