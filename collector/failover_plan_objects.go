package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// FailoverPlanObjects is the failover_plan_objects collector (VSPC: GET
// /api/v3/infrastructure/backupServers/failoverplans/objects, and GET
// /api/v3/protectedWorkloads/virtualMachines/backups for the replication
// restore points, one paged list each for the whole estate). Per plan with
// VMs, always:
//
//	veeam_failover_plan_objects_by_last_session_status{target,plan_id,status}   non-zero (all with AllStates): Running, Success,
//	                                                        Warning, Failed, None, Unknown (None: the VM has no
//	                                                        failover session, its plan never ran)
//	veeam_failover_plan_recovery_point_timestamp_seconds{target,plan_id}   oldest newest-replication-point over the
//	                                                        plan's VMs, when at least one VM has one
//	veeam_failover_plan_objects_without_restore_point{target,plan_id}   VMs with no replication restore point
//
// with Options.PerObject, per VM:
//
//	veeam_failover_plan_object_info{target,plan_id,object_id,object,host}  1
//	veeam_failover_plan_object_latest_restore_point_timestamp_seconds{target,plan_id,object_id}   when it has one
//
// and with Options.LastSessionStatus too, per VM that has a failover session:
//
//	veeam_failover_plan_object_last_session_status{target,plan_id,object_id,status}   stateset: Running, Success,
//	                                                        Warning, Failed, Unknown
//	veeam_failover_plan_object_last_session_restore_point_timestamp_seconds{target,plan_id,object_id}
//
// EM plans have none of these: EM's API gives no restore point of a
// plan's VMs.
const FailoverPlanObjects = "failover_plan_objects"

// planObjectLister is what failover_plan_objects reads; *vspc.Client
// implements it.
type planObjectLister interface {
	ListFailoverPlanObjects(ctx context.Context) ([]veeam.FailoverPlanObject, error)
	ListReplicationRestorePoints(ctx context.Context) (map[string]veeam.RecoveryPoint, error)
}

const (
	srcVSPCObjects = "VSPC GET /api/v3/infrastructure/backupServers/failoverplans/objects"
	srcVSPCBackups = "VSPC GET /api/v3/protectedWorkloads/virtualMachines/backups (backupType Replication, latestRestorePointDate)"
)

var (
	// VSPC restoreSession.backupStatus, the VM's last failover session.
	lastSessionObjectStatuses = []string{"Running", "Success", "Warning", "Failed", stateUnknown}
	// The same per plan, with None for VMs without a failover session.
	lastSessionCountStatuses = []string{"Running", "Success", "Warning", "Failed", stateNone, stateUnknown}

	objectInfo = gaugeFamily("veeam_failover_plan_object_info",
		"VM in a failover plan, always 1; from "+srcVSPCObjects+".",
		labelTarget, labelPlanID, labelObjectID, "object", "host")
	objectLatestPoint = gaugeFamily("veeam_failover_plan_object_latest_restore_point_timestamp_seconds",
		"Newest replication restore point of the VM on its plan's backup server (with several replication jobs, the oldest of their newest points): what a failover now would restore, Unix time; "+srcVSPCBackups+", joined on backupServerUid and virtualMachineUid.",
		labelTarget, labelPlanID, labelObjectID)
	objectLastStatus = statesetFamily("veeam_failover_plan_object_last_session_status",
		"Status of the VM's last failover session (not its recovery point), for VMs that have one; "+srcVSPCObjects+" (restoreSession.backupStatus).",
		lastSessionObjectStatuses, labelTarget, labelPlanID, labelObjectID, labelStatus)
	objectLastPoint = gaugeFamily("veeam_failover_plan_object_last_session_restore_point_timestamp_seconds",
		"Restore point the VM's last failover session used, Unix time; not an RPO: see veeam_failover_plan_object_latest_restore_point_timestamp_seconds; "+srcVSPCObjects+" (restoreSession.restorePointDateTime).",
		labelTarget, labelPlanID, labelObjectID)
	objectsByLastStatus = countsFamily("veeam_failover_plan_objects_by_last_session_status",
		"VMs in the failover plan per status of their last failover session (None: no session, the plan never ran); "+srcVSPCObjects+".",
		lastSessionCountStatuses, labelTarget, labelPlanID, labelStatus)
	planRecoveryPoint = gaugeFamily("veeam_failover_plan_recovery_point_timestamp_seconds",
		"Oldest of the newest replication restore points over the plan's VMs, Unix time: time() minus it is the data a failover now loses; absent when no VM has one; VSPC only (EM's API has no restore points of a plan's VMs); "+srcVSPCBackups+".",
		labelTarget, labelPlanID)
	planWithoutPoint = gaugeFamily("veeam_failover_plan_objects_without_restore_point",
		"VMs in the failover plan with no replication restore point (they cannot fail over); "+srcVSPCBackups+".",
		labelTarget, labelPlanID)
)

func init() {
	register(FailoverPlanObjects, []string{veeam.TypeVSPC},
		[]*familySpec{objectInfo, objectLatestPoint, objectLastStatus, objectLastPoint, objectsByLastStatus, planRecoveryPoint, planWithoutPoint},
		readPlanObjects)
}

// readPlanObjects reads the plan objects and the replication restore points
// in parallel and joins them (vspc.RecoveryPointOf): per plan its counts by
// last-session status and its recovery point, per VM (Options.PerObject)
// its info and recovery point, and (Options.LastSessionStatus) its last
// failover session.
func readPlanObjects(ctx context.Context, c *collector, r planObjectLister) ([]*block, error) {
	var (
		objs   []veeam.FailoverPlanObject
		points map[string]veeam.RecoveryPoint
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if objs, err = r.ListFailoverPlanObjects(gctx); err != nil {
			return fmt.Errorf("list failover plan objects: %w", err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if points, err = r.ListReplicationRestorePoints(gctx); err != nil {
			return fmt.Errorf("list replication restore points: %w", err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}

	for i := range objs {
		objs[i].PlanID = lower(objs[i].PlanID)
		objs[i].ID = lower(objs[i].ID)
		objs[i].ProtectedVMID = lower(objs[i].ProtectedVMID)
	}
	// Grouped by plan; a (plan, object) pair listed twice is counted once.
	// An order of indices is sorted rather than the objects themselves,
	// which are large to swap.
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

	tn := c.target
	perObject := c.opts.PerObject
	lastSession := perObject && c.opts.LastSessionStatus
	plans := len(objs)/4 + 1
	byStatus, recovery, without := c.block(objectsByLastStatus, plans), c.block(planRecoveryPoint, plans), c.block(planWithoutPoint, plans)
	out := []*block{byStatus, recovery, without}
	var info, latest, status, used *block
	if perObject {
		info, latest = c.block(objectInfo, len(objs)), c.block(objectLatestPoint, len(objs))
		out = append(out, info, latest)
	}
	if lastSession {
		status, used = c.block(objectLastStatus, len(objs)), c.block(objectLastPoint, len(objs))
		out = append(out, status, used)
	}
	counts := make([]int, len(lastSessionCountStatuses))
	var inPlan []veeam.FailoverPlanObject
	for i := 0; i < len(order); {
		planID := objs[order[i]].PlanID
		clear(counts)
		inPlan = inPlan[:0]
		for ; i < len(order) && objs[order[i]].PlanID == planID; i++ {
			o := &objs[order[i]]
			if i > 0 && objs[order[i-1]].PlanID == planID && objs[order[i-1]].ID == o.ID {
				continue
			}
			inPlan = append(inPlan, *o)
			counts[byStatus.f.index(o.RestoreStatus)]++
			if !perObject {
				continue
			}
			info.add(1, tn, planID, o.ID, o.Name, o.HostName)
			if p, ok := vspc.RecoveryPointOf(*o, points); ok {
				latest.add(unixSeconds(p.Time), tn, planID, o.ID)
			}
			// A VM of a plan that never ran has no failover session:
			// no series rather than a made-up status.
			if !lastSession || o.RestoreStatus == "" {
				continue
			}
			status.add(float64(status.f.index(o.RestoreStatus)), tn, planID, o.ID)
			if !o.RestorePointTime.IsZero() {
				used.add(unixSeconds(o.RestorePointTime), tn, planID, o.ID)
			}
		}
		byStatus.addCounts(counts, tn, planID)
		oldest, missing, ok := vspc.PlanRecoveryPoint(inPlan, points)
		if ok {
			recovery.add(unixSeconds(oldest), tn, planID)
		}
		without.add(float64(len(missing)), tn, planID)
	}
	return out, nil
}
