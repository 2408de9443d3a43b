package trigger

import (
	"fmt"
	"slices"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/client_golang/prometheus"
)

// The heartbeat of the alert path: a Watchdog-style alert that always fires,
// routed to the webhook and recognised by trigger.heartbeat_matchers before
// any rule is matched. It is recorded (veeam_trigger_last_heartbeat_timestamp_seconds,
// kept in the state file) and never acted on, counted as unmatched or
// blocked; an alert rule fires when it grows old, so a broken
// Alertmanager -> webhook path is found before the disaster.

// parseMatchers parses Alertmanager matchers.
func parseMatchers(ss []string) (labels.Matchers, error) {
	out := make(labels.Matchers, 0, len(ss))
	for _, s := range ss {
		m, err := labels.ParseMatcher(s)
		if err != nil {
			return nil, fmt.Errorf("matcher %q: %w", s, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// takeHeartbeats removes the heartbeat alerts from the notification and
// records the time of a firing one. It reports how many it removed.
func (t *Trigger) takeHeartbeats(p *payload) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.cfg.HeartbeatMatchers) == 0 {
		return 0
	}
	ms, err := parseMatchers(t.cfg.HeartbeatMatchers) // checked by checkConfig
	if err != nil {
		return 0
	}
	n, firing := 0, false
	p.Alerts = slices.DeleteFunc(p.Alerts, func(a alert) bool {
		if !ms.Matches(a.labelSet()) {
			return false
		}
		n++
		firing = firing || a.Status == statusFiring
		return true
	})
	if firing {
		t.store.lastHeartbeat = t.now()
		_ = t.saveLocked()
	}
	return n
}

// heartbeatCollector exports veeam_trigger_last_heartbeat_timestamp_seconds
// whenever heartbeat_matchers is set (0 until the first heartbeat).
type heartbeatCollector struct {
	t    *Trigger
	desc *prometheus.Desc
}

func newHeartbeatCollector(t *Trigger) *heartbeatCollector {
	return &heartbeatCollector{t: t, desc: prometheus.NewDesc("veeam_trigger_last_heartbeat_timestamp_seconds",
		"When the heartbeat alert (trigger.heartbeat_matchers) last reached the webhook, in seconds since the epoch; 0 before the first. Present only with heartbeat_matchers.",
		nil, nil)}
}

func (c *heartbeatCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *heartbeatCollector) Collect(ch chan<- prometheus.Metric) {
	c.t.mu.Lock()
	on := len(c.t.cfg.HeartbeatMatchers) > 0
	var v float64
	if c.t.store != nil && !c.t.store.lastHeartbeat.IsZero() {
		v = float64(c.t.store.lastHeartbeat.UnixNano()) / 1e9
	}
	c.t.mu.Unlock()
	if on {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v)
	}
}
