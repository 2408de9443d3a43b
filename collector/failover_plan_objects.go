package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// FailoverPlanObjects is the failover_plan_objects collector (VSPC: GET
// /api/v3/infrastructure/backupServers/failoverplans/objects):
//
//	veeam_failover_plan_objects_by_restore_status{target,plan_id,status}   always, zeros included, for each plan
//	                                                        with VMs: Running, Success, Warning, Failed, None, Unknown
//	                                                        (None: the VM has no restore session yet); a plan
//	                                                        without VMs has none (its veeam_failover_plan_objects is 0)
//	with Options.PerObject:
//	veeam_failover_plan_object_info{target,plan_id,object_id,object,host}  1
//	veeam_failover_plan_object_restore_status{target,plan_id,object_id,status}   stateset, values as above
//	veeam_failover_plan_object_restore_point_timestamp_seconds{target,plan_id,object_id}   when known (RPO)
const FailoverPlanObjects = "failover_plan_objects"

// planObjectLister is what failover_plan_objects reads; *vspc.Client
// implements it.
type planObjectLister interface {
	ListFailoverPlanObjects(ctx context.Context) ([]veeam.FailoverPlanObject, error)
}

const srcVSPCObjects = "VSPC GET /api/v3/infrastructure/backupServers/failoverplans/objects"

var (
	// VSPC restoreSession.backupStatus; None when the VM has no restore
	// session (the plan never ran).
	restoreStatuses = []string{"Running", "Success", "Warning", "Failed", stateNone, stateUnknown}

	objectInfo = gaugeFamily("veeam_failover_plan_object_info",
		"VM in a failover plan, always 1; from "+srcVSPCObjects+".",
		labelTarget, labelPlanID, labelObjectID, "object", "host")
	objectStatus = statesetFamily("veeam_failover_plan_object_restore_status",
		"Status of the VM's restore session (None: no restore session); "+srcVSPCObjects+" (restoreSession.backupStatus).",
		restoreStatuses, labelTarget, labelPlanID, labelObjectID, labelStatus)
	objectPoint = gaugeFamily("veeam_failover_plan_object_restore_point_timestamp_seconds",
		"Creation time of the restore point the VM would fail over to (RPO), Unix time; "+srcVSPCObjects+" (restoreSession.restorePointDateTime).",
		labelTarget, labelPlanID, labelObjectID)
	objectsByStatus = countsFamily("veeam_failover_plan_objects_by_restore_status",
		"VMs in the failover plan per restore session status (None: no restore session), zeros included; "+srcVSPCObjects+".",
		restoreStatuses, labelTarget, labelPlanID, labelStatus)
)

func init() {
	register(FailoverPlanObjects, []string{veeam.TypeVSPC},
		[]*familySpec{objectInfo, objectStatus, objectPoint, objectsByStatus}, readPlanObjects)
}

// readPlanObjects is, per plan, the VMs by restore status, and per VM
// (Options.PerObject) its info, restore status and restore point time.
func readPlanObjects(ctx context.Context, c *collector, r planObjectLister) ([]*block, error) {
	objs, err := r.ListFailoverPlanObjects(ctx)
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

	tn, perObject := c.target, c.opts.PerObject
	byStatus := c.block(objectsByStatus, len(objs)/4+1)
	out := []*block{byStatus}
	var info, status, point *block
	if perObject {
		info, status, point = c.block(objectInfo, len(objs)), c.block(objectStatus, len(objs)), c.block(objectPoint, len(objs))
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
			st := byStatus.f.index(o.RestoreStatus)
			counts[st]++
			if !perObject {
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
