package trigger

import (
	"github.com/veeam-failover/veeam_failover_exporter/internal/amtest"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

func TestRequestIDIsStable(t *testing.T) {
	at := time.Date(2025, 6, 1, 11, 0, 0, 123456789, time.FixedZone("CEST", 7200))
	id := requestID("site-a-down", "Media servers Failover", `{}:{alertname="SiteDown"}`, at)
	if id != requestID("site-a-down", "Media servers Failover", `{}:{alertname="SiteDown"}`, at.UTC()) {
		t.Fatal("request id depends on the time zone")
	}
	// A fixed value: changing the namespace or the name layout would make two
	// exporter versions send different X-Request-ids for one notification.
	if want := "ac700493-5401-5bb1-ad3a-329e775e49ba"; id != want {
		t.Fatalf("request id %s, want %s", id, want)
	}
	if id[14] != '5' {
		t.Fatalf("%s is not a UUIDv5", id)
	}
	for _, other := range []string{
		requestID("site-b-down", "Media servers Failover", `{}:{alertname="SiteDown"}`, at),
		requestID("site-a-down", "Other", `{}:{alertname="SiteDown"}`, at),
		requestID("site-a-down", "Media servers Failover", `{}:{alertname="Other"}`, at),
		requestID("site-a-down", "Media servers Failover", `{}:{alertname="SiteDown"}`, at.Add(time.Nanosecond)),
	} {
		if other == id {
			t.Fatal("request id ignores a component")
		}
	}
}

func TestClassify(t *testing.T) {
	cfg := config.TriggerConfig{Rules: []config.Rule{
		{Name: "a", Matchers: []string{`alertname="SiteDown"`, `site="a"`}, For: model.Duration(5 * time.Minute), MinAlerts: 2,
			Action: config.Action{Type: config.ActionVSPCPlanStart, Target: "vspc", Plan: "Plan A"}},
		{Name: "label", Matchers: []string{`alertname="SiteDown"`}, MinAlerts: 1,
			Action: config.Action{Type: config.ActionVSPCPlanStart, Target: "vspc", PlanLabel: "plan", Allow: []string{"P1"}}},
	}}
	rules, err := compileRules(&cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := amtest.Notification("gk",
		amtest.Firing(testNow.Add(-time.Hour), "alertname", "SiteDown", "site", "a", "instance", "1", "plan", "P1"),
		amtest.Firing(testNow.Add(-time.Minute), "alertname", "SiteDown", "site", "a", "instance", "2", "plan", "P1"),
		amtest.Resolved(testNow.Add(-time.Hour), "alertname", "SiteDown", "site", "a", "instance", "3", "plan", "P2"),
		amtest.Firing(testNow.Add(-time.Hour), "alertname", "Other"),
	).JSON()
	p, err := parsePayload(body, testNow)
	if err != nil {
		t.Fatal(err)
	}
	groups := classify(p, rules, testNow, false, "")
	type summary struct {
		rule, object string
		acting       int
		stops        map[string]int
	}
	var got []summary
	for _, g := range groups {
		s := summary{object: g.object, acting: len(g.acting), stops: map[string]int{}}
		if g.rule != nil {
			s.rule = g.rule.name
		}
		for _, st := range g.stops {
			s.stops[st.guard] = len(st.alerts)
		}
		got = append(got, s)
	}
	want := map[string]summary{
		"a/Plan A": {"a", "Plan A", 1, map[string]int{"for": 1, "resolved": 1}},
		"label/P1": {"label", "P1", 2, map[string]int{}},
		"label/P2": {"label", "P2", 0, map[string]int{"resolved": 1}},
		"/":        {"", "", 0, map[string]int{"match": 1}},
	}
	if len(got) != len(want) {
		t.Fatalf("groups %+v", got)
	}
	for _, g := range got {
		w, ok := want[g.rule+"/"+g.object]
		if !ok || w.acting != g.acting || mustJSON(t, w.stops) != mustJSON(t, g.stops) {
			t.Errorf("group %+v, want %+v", g, w)
		}
	}
	for _, g := range groups {
		if g.rule != nil && g.rule.name == "a" {
			if ok, reason := g.quorum(); ok {
				t.Error("quorum of 1 alert passes min_alerts 2")
			} else {
				t.Log(reason)
			}
		}
	}

	// With the kill switch every alert stops there, matched or not.
	for _, g := range classify(p, rules, testNow, true, "kill switch file /x exists") {
		if len(g.acting) != 0 || len(g.stops) != 1 || g.stops[0].guard != guardKillSwitch {
			t.Errorf("kill switch: group %s/%s acting %d stops %+v", ruleName(g), g.object, len(g.acting), g.stops)
		}
	}
}

func ruleName(g *alertGroup) string {
	if g.rule == nil {
		return ruleNone
	}
	return g.rule.name
}

func TestQuorumCountsDistinctLabelSets(t *testing.T) {
	cfg := config.TriggerConfig{Rules: []config.Rule{{Name: "a", Matchers: []string{`alertname="SiteDown"`}, MinAlerts: 2,
		Action: config.Action{Type: config.ActionVSPCPlanStart, Target: "vspc", Plan: "Plan A"}}}}
	rules, _ := compileRules(&cfg, nil)
	a1 := amtest.Firing(testNow.Add(-time.Hour), "alertname", "SiteDown", "instance", "1")
	a2 := a1
	a2.Fingerprint = "ffffffffffffffff" // same labels, forged fingerprint
	p, err := parsePayload(amtest.Notification("gk", a1, a2).JSON(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	g := classify(p, rules, testNow, false, "")[0]
	if ok, _ := g.quorum(); ok {
		t.Fatal("one alert sent twice with different fingerprints makes a quorum of 2")
	}
}
