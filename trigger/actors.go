package trigger

import (
	"context"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// The actor interfaces are what the trigger needs from the Veeam clients.
// Their signatures use only package veeam types and primitives, so trigger
// does not import the client packages; main adapts each client with a
// struct embedding it plus one method:
//
//	type vspcActor struct{ *vspc.Client }
//
//	func (a vspcActor) StartPlan(ctx context.Context, planID string, test bool, requestID string) (*veeam.AsyncAction, error) {
//		return a.StartFailoverPlan(ctx, planID, vspc.StartOptions{Test: test}, requestID)
//	}
//
//	type emActor struct{ *em.Client }
//
//	func (a emActor) FailoverCdpVM(ctx context.Context, cdpReplicaID, vmID string) (veeam.Task, error) {
//		return a.CdpFailover(ctx, cdpReplicaID, vmID, em.CdpFailoverSpec{RestoreCurrent: true})
//	}
//
//	type vbrActor struct{ *vbr.Client }
//
//	func (a vbrActor) StartFailover(ctx context.Context, action string, pointIDs []string, reason string) ([]veeam.Session, error) {
//		kinds := map[string]vbr.FailoverKind{
//			config.ActionVBRFailover: vbr.FailoverNow, config.ActionVBRPlannedFailover: vbr.PlannedFailover,
//			config.ActionVBRPermanentFailover: vbr.PermanentFailover, config.ActionVBRUndoFailover: vbr.UndoFailover,
//		}
//		kind, ok := kinds[action]
//		if !ok {
//			return nil, fmt.Errorf("unknown VBR action %q", action)
//		}
//		return a.Failover(ctx, kind, pointIDs, reason)
//	}

// VSPCActor starts and undoes VSPC failover plans and reads their state.
type VSPCActor interface {
	// ListFailoverPlans resolves a plan given by name.
	ListFailoverPlans(ctx context.Context) ([]veeam.FailoverPlan, error)
	// GetFailoverPlan reads a plan's live status (target_state, tracking).
	GetFailoverPlan(ctx context.Context, planID string) (veeam.FailoverPlan, error)
	// StartPlan starts the plan (test mode when test), sending requestID as
	// X-Request-id. It returns the async action on 202, nil on 200.
	StartPlan(ctx context.Context, planID string, test bool, requestID string) (*veeam.AsyncAction, error)
	// UndoFailoverPlan undoes the plan's failover, sending requestID as
	// X-Request-id.
	UndoFailoverPlan(ctx context.Context, planID, requestID string) (*veeam.AsyncAction, error)
	// GetAsyncAction follows a 202 answer.
	GetAsyncAction(ctx context.Context, actionID string) (veeam.AsyncAction, error)
}

// EMActor starts and undoes Enterprise Manager failover plans, fails CDP
// replica VMs over and follows the resulting tasks.
type EMActor interface {
	ListFailoverPlans(ctx context.Context) ([]veeam.FailoverPlan, error)
	GetFailoverPlan(ctx context.Context, planID string) (veeam.FailoverPlan, error)
	// StartFailoverPlan starts the plan; the trigger always passes a nil
	// startDate (StartNow: the latest restore points).
	StartFailoverPlan(ctx context.Context, planID string, startDate *time.Time) (veeam.Task, error)
	UndoFailoverPlan(ctx context.Context, planID string) (veeam.Task, error)
	// FailoverCdpVM fails a CDP replica VM over to its latest crash-consistent
	// point.
	FailoverCdpVM(ctx context.Context, cdpReplicaID, vmID string) (veeam.Task, error)
	GetTask(ctx context.Context, taskID string) (veeam.Task, error)
}

// VBRActor fails VBR replicas over and follows the resulting sessions.
type VBRActor interface {
	// ListReplicas resolves replicas given by name or id.
	ListReplicas(ctx context.Context) ([]veeam.Replica, error)
	// ListReplicaPointsOf finds a replica's newest eligible restore point.
	ListReplicaPointsOf(ctx context.Context, replicaID string) ([]veeam.ReplicaPoint, error)
	// GetReplicaPoint checks points given as replica_point_ids.
	GetReplicaPoint(ctx context.Context, id string) (veeam.ReplicaPoint, error)
	// StartFailover calls the failover endpoint for action, one of
	// config.ActionVBRFailover, ActionVBRPlannedFailover,
	// ActionVBRPermanentFailover or ActionVBRUndoFailover.
	StartFailover(ctx context.Context, action string, pointIDs []string, reason string) ([]veeam.Session, error)
	GetSession(ctx context.Context, id string) (veeam.Session, error)
}

// Actors holds one actor per target that rules may act on, by target name.
// A target used by a rule must be present in the map of its type.
type Actors struct {
	VSPC map[string]VSPCActor
	EM   map[string]EMActor
	VBR  map[string]VBRActor
}
