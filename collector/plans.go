package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// plans is the failover_plans collector for VSPC and EM: one info series per
// plan, its VM count, and on VSPC its status and last session.
func (e *Exporter) plans(ctx context.Context, t *target, list func(context.Context) ([]veeam.FailoverPlan, error)) ([]prometheus.Metric, error) {
	plans, err := list(ctx)
	if err != nil {
		return nil, fmt.Errorf("list failover plans: %w", err)
	}
	vspc := t.Type == veeam.TypeVSPC
	for i := range plans {
		plans[i].ID = lower(plans[i].ID)
	}
	// Sorted so that a plan listed twice (pages shifting under a changing
	// estate) is skipped instead of failing the whole scrape as a duplicate.
	slices.SortFunc(plans, func(a, b veeam.FailoverPlan) int { return strings.Compare(a.ID, b.ID) })

	b, m := e.b, e.m
	per := 3
	if vspc {
		per += len(planStatuses) + 1 + len(lastSessionStatuses)
	}
	out := make([]prometheus.Metric, 0, len(plans)*per)
	for i, p := range plans {
		if i > 0 && plans[i-1].ID == p.ID {
			continue
		}
		id := b.pair(labelPlanID, p.ID)
		out = append(out,
			b.gauge(m.planInfo, 1, t.pair, id,
				b.pair("plan", p.Name),
				b.pair("backup_server_id", lower(p.BackupServerID)),
				b.pair("type", p.Type),
				b.pair("tenant_id", lower(p.TenantID))),
			b.gauge(m.planObjects, float64(p.ObjectsCount), t.pair, id))
		if !vspc {
			continue // EM plans have no status and no session
		}
		out = b.stateset(out, m.planStatus, m.planStatus.index(p.Status), t.pair, id)
		if s := p.LastSession; s != nil {
			if !s.EndTime.IsZero() {
				out = append(out, b.gauge(m.planLastEnd, unixSeconds(s.EndTime), t.pair, id))
			}
			out = b.stateset(out, m.planLastStatus, m.planLastStatus.index(s.Status), t.pair, id)
		}
	}
	return out, nil
}

// planObjects is the failover_plan_objects collector (VSPC): per plan the
// VMs by restore status, and per VM (Options.PerObject) its info, restore
// status and restore point time.
func (e *Exporter) planObjects(ctx context.Context, t *target) ([]prometheus.Metric, error) {
	objs, err := t.VSPC.ListFailoverPlanObjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("list failover plan objects: %w", err)
	}
	for i := range objs {
		objs[i].PlanID = lower(objs[i].PlanID)
		objs[i].ID = lower(objs[i].ID)
	}
	// Grouped by plan for the counts; a (plan, object) pair listed twice
	// is counted once.
	slices.SortFunc(objs, func(a, b veeam.FailoverPlanObject) int {
		if c := strings.Compare(a.PlanID, b.PlanID); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})

	b, m := e.b, e.m
	perObject := 0
	if e.opts.PerObject {
		perObject = 2 + len(restoreStatuses)
	}
	out := make([]prometheus.Metric, 0, len(objs)*perObject+len(restoreStatuses)*len(objs)/4+16)
	counts := make([]int, len(restoreStatuses))
	for i := 0; i < len(objs); {
		planID := objs[i].PlanID
		plan := b.pair(labelPlanID, planID)
		clear(counts)
		for ; i < len(objs) && objs[i].PlanID == planID; i++ {
			o := &objs[i]
			if i > 0 && objs[i-1].PlanID == planID && objs[i-1].ID == o.ID {
				continue
			}
			st := m.objectStatus.index(o.RestoreStatus)
			counts[st]++
			if !e.opts.PerObject {
				continue
			}
			id := b.pair(labelObjectID, o.ID)
			out = append(out, b.gauge(m.objectInfo, 1, t.pair, plan, id, b.pair("object", o.Name), b.pair("host", o.HostName)))
			out = b.stateset(out, m.objectStatus, st, t.pair, plan, id)
			if !o.RestorePointTime.IsZero() {
				out = append(out, b.gauge(m.objectPoint, unixSeconds(o.RestorePointTime), t.pair, plan, id))
			}
		}
		out = b.counts(out, m.objectsByStatus, counts, t.pair, plan)
	}
	return out, nil
}
