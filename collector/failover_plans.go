package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// FailoverPlans is the failover_plans collector (VSPC: GET
// /api/v3/infrastructure/backupServers/failoverplans; EM: GET
// /api/query?type=FailoverPlan):
//
//	veeam_failover_plan_info{target,plan_id,plan,backup_server_id,type,tenant_id}  1 (type and tenant_id empty on EM)
//	veeam_failover_plan_objects{target,plan_id}             VSPC objectsCount, EM FailoveredVm count
//	veeam_failover_plan_status{target,plan_id,status}       VSPC only: Ready, InProgress, InUndoProgress,
//	                                                        Completed, Success, Failed, UndoFailed, Unknown
//	veeam_failover_plan_last_session_end_timestamp_seconds{target,plan_id}   VSPC >= 3.6.1, once ended
//	veeam_failover_plan_last_session_status{target,plan_id,status}           VSPC >= 3.6.1: Success, Warning,
//	                                                        Failed, None, Unknown (when the plan has a last session)
const FailoverPlans = "failover_plans"

// planLister is what failover_plans reads; *vspc.Client and *em.Client
// implement it.
type planLister interface {
	ListFailoverPlans(ctx context.Context) ([]veeam.FailoverPlan, error)
}

const (
	srcVSPCPlans = "VSPC GET /api/v3/infrastructure/backupServers/failoverplans"
	srcEMPlans   = "EM GET /api/query?type=FailoverPlan"
)

var (
	// VSPC BackupFailoverPlan.status.
	planStatuses = []string{"Ready", "InProgress", "InUndoProgress", "Completed", "Success", "Failed", "UndoFailed", stateUnknown}
	// VSPC BackupFailoverPlan.lastSession.status.
	lastSessionStatuses = []string{"Success", "Warning", "Failed", stateNone, stateUnknown}

	planInfo = gaugeFamily("veeam_failover_plan_info",
		"Failover plan, always 1; from "+srcVSPCPlans+" or "+srcEMPlans+" (EM has no type or tenant).",
		labelTarget, labelPlanID, "plan", "backup_server_id", "type", "tenant_id")
	planStatus = statesetFamily("veeam_failover_plan_status",
		"Failover plan status, from "+srcVSPCPlans+" (status).",
		planStatuses, labelTarget, labelPlanID, labelStatus)
	planObjects = gaugeFamily("veeam_failover_plan_objects",
		"VMs in the failover plan; "+srcVSPCPlans+" (objectsCount) or "+srcEMPlans+" (FailoveredVm count).",
		labelTarget, labelPlanID)
	planLastEnd = gaugeFamily("veeam_failover_plan_last_session_end_timestamp_seconds",
		"End of the failover plan's last session, Unix time; "+srcVSPCPlans+" (lastSession.endTime, VSPC >= 3.6.1).",
		labelTarget, labelPlanID)
	planLastStatus = statesetFamily("veeam_failover_plan_last_session_status",
		"Status of the failover plan's last session; "+srcVSPCPlans+" (lastSession.status, VSPC >= 3.6.1).",
		lastSessionStatuses, labelTarget, labelPlanID, labelStatus)
)

func init() {
	register(FailoverPlans, []string{veeam.TypeVSPC, veeam.TypeEM},
		[]*familySpec{planInfo, planStatus, planObjects, planLastEnd, planLastStatus}, readPlans)
}

// readPlans is one info series per plan, its VM count, and on VSPC its
// status and last session.
func readPlans(ctx context.Context, c *collector, r planLister) ([]*block, error) {
	plans, err := r.ListFailoverPlans(ctx)
	if err != nil {
		return nil, fmt.Errorf("list failover plans: %w", err)
	}
	vspc := c.targetType == veeam.TypeVSPC
	for i := range plans {
		plans[i].ID = lower(plans[i].ID)
	}
	// Sorted so that a plan listed twice (pages shifting under a changing
	// estate) is skipped instead of failing the whole scrape as a duplicate.
	slices.SortFunc(plans, func(a, b veeam.FailoverPlan) int { return strings.Compare(a.ID, b.ID) })

	tn := c.target
	info, count := c.block(planInfo, len(plans)), c.block(planObjects, len(plans))
	out := []*block{info, count}
	var status, lastEnd, lastStatus *block
	if vspc {
		status, lastEnd, lastStatus = c.block(planStatus, len(plans)), c.block(planLastEnd, len(plans)), c.block(planLastStatus, len(plans))
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
		status.add(float64(status.f.index(p.Status)), tn, p.ID)
		if s := p.LastSession; s != nil {
			if !s.EndTime.IsZero() {
				lastEnd.add(unixSeconds(s.EndTime), tn, p.ID)
			}
			lastStatus.add(float64(lastStatus.f.index(s.Status)), tn, p.ID)
		}
	}
	return out, nil
}
