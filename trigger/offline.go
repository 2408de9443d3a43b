package trigger

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

// TestPayload prints, for each alert of an Alertmanager payload, which rules
// match and which guard would stop it, evaluated at now. It runs the
// pipeline's alert and pure stages as the webhook does; it calls nothing and
// reads no state, so the stages that read the trigger's memory or the
// target (dedup, cooldown, target_state, rate_limit, concurrency) are shown
// as "not checked (offline)". cfg is a loaded config. The kill switch file is checked as it
// is now. It returns an error for a config or payload the webhook would
// refuse.
func TestPayload(cfg config.TriggerConfig, body []byte, now time.Time, w io.Writer) error {
	rules, err := compileRules(&cfg, nil)
	if err != nil {
		return err
	}
	p, err := parsePayload(body, now)
	if err != nil {
		return fmt.Errorf("payload refused (HTTP 400): %w", err)
	}
	kill, killReason := killSwitch(cfg.KillSwitchFile)
	groups := classify(p, rules, now, kill, killReason)

	fmt.Fprintf(w, "notification: receiver=%q status=%s groupKey=%q alerts=%d truncatedAlerts=%d\n",
		p.Receiver, p.Status, p.GroupKey, len(p.Alerts), p.TruncatedAlerts)
	if cfg.DryRun {
		fmt.Fprintln(w, "trigger: dry_run is true: no action would be called")
	}
	if kill {
		fmt.Fprintf(w, "trigger: %s: no action would be called\n", killReason)
	}
	for i := range p.Alerts {
		a := &p.Alerts[i]
		fmt.Fprintf(w, "\nalert %d: %s fingerprint=%s startsAt=%s labels=%s\n", i+1, a.Status,
			a.displayFingerprint(), a.StartsAt.UTC().Format(time.RFC3339), a.labelSet())
		for _, g := range groups {
			if !g.contains(a) {
				continue
			}
			fmt.Fprintf(w, "  %s\n", describeOffline(&cfg, p, g, a))
		}
	}
	return nil
}

// describeOffline says what the pipeline would do with alert a in group g.
func describeOffline(cfg *config.TriggerConfig, p *payload, g *alertGroup, a *alert) string {
	if g.rule == nil {
		for _, s := range g.stops {
			return fmt.Sprintf("no rule: stopped by %s (%s)", s.guard, s.reason)
		}
	}
	r := g.rule
	head := fmt.Sprintf("rule %q matches; %s on %s, object %q: ", r.name, r.action.Type, r.action.Target, g.object)
	for _, s := range g.stops {
		if slices.Contains(s.alerts, a) {
			return head + fmt.Sprintf("stopped by %s (%s)", s.guard, s.reason)
		}
	}
	e := &evaluation{p: p, g: g}
	for _, s := range groupStages(func(s *stage) bool { return s.pure != nil }) {
		if reason := s.pure(e); reason != "" {
			return head + fmt.Sprintf("stopped by %s (%s)", s.name, reason)
		}
	}
	id := requestID(r.name, g.object, p.GroupKey, earliestStart(g.acting))
	passed := "passes " + strings.Join(onlineStages(), ", ") + "; " +
		strings.Join(offlineStages(), ", ") + ": not checked (offline); "
	if cfg.DryRun {
		return head + passed + "stopped by dry_run (dry_run is true); request id " + id
	}
	return head + passed + "would call it once for this notification with request id " + id
}
