package collector

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
)

// Replicas is the replicas collector (VBR: GET /api/v1/replicas and GET
// /api/v1/replicaPoints):
//
//	veeam_replica_info{target,replica_id,replica,type}      1
//	veeam_replica_state{target,replica_id,state}            Ready, Processing, SureBackup, Failover, FailedFailover,
//	                                                        PermanentFailover, Failback, ReadyToSwitch, Unknown
//	veeam_replica_object_latest_point_timestamp_seconds{target,replica_id,object}   per VM of the replica (VBR names
//	                                                        a replica after its job and a point after its VM): the
//	                                                        VM's newest restore point
//	veeam_replica_latest_point_timestamp_seconds{target,replica_id}   the oldest of those: the replica's recovery
//	                                                        point, when it has points
const Replicas = "replicas"

// replicaLister is what replicas reads; *vbr.Client implements it.
type replicaLister interface {
	ListReplicas(ctx context.Context) ([]veeam.Replica, error)
	ListReplicaPoints(ctx context.Context) ([]veeam.ReplicaPoint, error)
}

const (
	srcVBRReplicas = "VBR GET /api/v1/replicas"
	srcVBRPoints   = "VBR GET /api/v1/replicaPoints"
)

var (
	// VBR EReplicaState.
	replicaStates = []string{"Ready", "Processing", "SureBackup", "Failover", "FailedFailover", "PermanentFailover", "Failback", "ReadyToSwitch", stateUnknown}

	replicaInfo = gaugeFamily("veeam_replica_info",
		"Replica, always 1; from "+srcVBRReplicas+".",
		labelTarget, labelReplicaID, "replica", "type")
	replicaState = statesetFamily("veeam_replica_state",
		"State of the replica; "+srcVBRReplicas+" (state).",
		replicaStates, labelTarget, labelReplicaID, labelState)
	replicaObjectPoint = gaugeFamily("veeam_replica_object_latest_point_timestamp_seconds",
		"Creation time of the newest restore point of the VM (object: the point's name) in the replica, Unix time; "+srcVBRPoints+".",
		labelTarget, labelReplicaID, "object")
	replicaPoint = gaugeFamily("veeam_replica_latest_point_timestamp_seconds",
		"Recovery point of the replica: the oldest over its VMs of their newest restore point, Unix time; "+srcVBRPoints+".",
		labelTarget, labelReplicaID)
)

func init() {
	register(Replicas, []string{veeam.TypeVBR}, []*familySpec{replicaInfo, replicaState, replicaObjectPoint, replicaPoint}, readReplicas)
}

// readReplicas is, per replica, its info, state and recovery point, and per
// VM of the replica the time of its newest restore point (vbr.LatestPerVM).
func readReplicas(ctx context.Context, c *collector, r replicaLister) ([]*block, error) {
	var (
		replicas []veeam.Replica
		points   []veeam.ReplicaPoint
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if replicas, err = r.ListReplicas(gctx); err != nil {
			return fmt.Errorf("list replicas: %w", err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if points, err = r.ListReplicaPoints(gctx); err != nil {
			return fmt.Errorf("list replica points: %w", err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}

	for i := range points {
		points[i].ReplicaID = lower(points[i].ReplicaID)
	}
	byReplica := vbr.PointsByReplica(points)
	for i := range replicas {
		replicas[i].ID = lower(replicas[i].ID)
	}
	slices.SortFunc(replicas, func(a, b veeam.Replica) int { return strings.Compare(a.ID, b.ID) })

	tn := c.target
	info, state, point := c.block(replicaInfo, len(replicas)), c.block(replicaState, len(replicas)), c.block(replicaPoint, len(replicas))
	perVM := c.block(replicaObjectPoint, len(replicas))
	for i, rep := range replicas {
		if i > 0 && replicas[i-1].ID == rep.ID {
			continue
		}
		info.add(1, tn, rep.ID, rep.Name, rep.Type)
		state.add(float64(state.f.index(rep.State)), tn, rep.ID)
		pts := byReplica[rep.ID]
		if len(pts) == 0 {
			continue
		}
		vms, oldest := vbr.LatestPerVM(pts)
		for _, vm := range slices.Sorted(maps.Keys(vms)) {
			perVM.add(unixSeconds(vms[vm].CreationTime), tn, rep.ID, vm)
		}
		if !oldest.CreationTime.IsZero() {
			point.add(unixSeconds(oldest.CreationTime), tn, rep.ID)
		}
	}
	return []*block{info, state, perVM, point}, nil
}
