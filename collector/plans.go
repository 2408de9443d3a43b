package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// plans is the failover_plans collector for VSPC and EM: one info series per
// plan, its VM count, and on VSPC its status and last session.
func (e *Exporter) plans(ctx context.Context, t *target, list func(context.Context) ([]veeam.FailoverPlan, error)) ([]*block, error) {
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

	m, tn := e.m, t.Name
	info, count := newBlock(m.planInfo, len(plans)), newBlock(m.planObjects, len(plans))
	out := []*block{info, count}
	var status, lastEnd, lastStatus *block
	if vspc {
		status, lastEnd, lastStatus = newBlock(m.planStatus, len(plans)), newBlock(m.planLastEnd, len(plans)), newBlock(m.planLastStatus, len(plans))
		out = append(out, status, lastEnd, lastStatus)
	}
	for i, p := range plans {
		if i > 0 && plans[i-1].ID == p.ID {
			continue
		}
		info.add(1, tn, p.ID, p.Name, lower(p.BackupServerID), p.Type, lower(p.TenantID))
		count.add(float64(p.ObjectsCount), tn, p.ID)
		if !vspc {
			continue // EM plans have no status and no session
		}
		status.add(float64(m.planStatus.index(p.Status)), tn, p.ID)
		if s := p.LastSession; s != nil {
			if !s.EndTime.IsZero() {
				lastEnd.add(unixSeconds(s.EndTime), tn, p.ID)
			}
			lastStatus.add(float64(m.planLastStatus.index(s.Status)), tn, p.ID)
		}
	}
	return out, nil
}

// planObjects is the failover_plan_objects collector (VSPC): per plan the
// VMs by restore status, and per VM (Options.PerObject) its info, restore
// status and restore point time.
func (e *Exporter) planObjects(ctx context.Context, t *target) ([]*block, error) {
	objs, err := t.VSPC.ListFailoverPlanObjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("list failover plan objects: %w", err)
	}

	for i := range objs {
		objs[i].PlanID = lower(objs[i].PlanID)
		objs[i].ID = lower(objs[i].ID)
	}
	// Grouped by plan for the counts; a (plan, object) pair listed twice
	// is counted once. An order of indices is sorted rather than the
	// objects themselves, which are large to swap.
	order := make([]int32, len(objs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &objs[i], &objs[j]
		if c := strings.Compare(a.PlanID, b.PlanID); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})

	m, tn := e.m, t.Name
	byStatus := newBlock(m.objectsByStatus, len(objs)/4+1)
	out := []*block{byStatus}
	var info, status, point *block
	if e.opts.PerObject {
		info, status, point = newBlock(m.objectInfo, len(objs)), newBlock(m.objectStatus, len(objs)), newBlock(m.objectPoint, len(objs))
		out = append(out, info, status, point)
	}
	counts := make([]int, len(restoreStatuses))
	for i := 0; i < len(order); {
		planID := objs[order[i]].PlanID
		clear(counts)
		for ; i < len(order) && objs[order[i]].PlanID == planID; i++ {
			o := &objs[order[i]]
			if i > 0 && objs[order[i-1]].PlanID == planID && objs[order[i-1]].ID == o.ID {
				continue
			}
			st := m.objectStatus.index(o.RestoreStatus)
			counts[st]++
			if !e.opts.PerObject {
				continue
			}
			info.add(1, tn, planID, o.ID, o.Name, o.HostName)
			status.add(float64(st), tn, planID, o.ID)
			if !o.RestorePointTime.IsZero() {
				point.add(unixSeconds(o.RestorePointTime), tn, planID, o.ID)
			}
		}
		byStatus.addCounts(counts, tn, planID)
	}
	return out, nil
}
