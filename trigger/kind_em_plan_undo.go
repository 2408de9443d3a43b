package trigger

import (
	"context"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// emPlanUndoer undoes Enterprise Manager plan failovers; *em.Client has it.
type emPlanUndoer interface {
	planReader
	taskReader
	UndoFailoverPlan(ctx context.Context, planID string) (veeam.Task, error)
}

// em_plan_undo: undo an Enterprise Manager plan's failover; like a start,
// its outcome is submitted (or failed).
func init() {
	registerKind(kindSpec[emPlanUndoer]{
		Name:       config.ActionEMPlanUndo,
		TargetType: config.TypeEM,
		Object:     objectPlan,
		Resolve: func(ctx context.Context, c emPlanUndoer, _ *config.Action, object string) (resolved, string) {
			return resolveEMPlan(ctx, c, object)
		},
		Call: func(ctx context.Context, c emPlanUndoer, rec *actionRecord) (handle, error) {
			return emCall(ctx, c, func() (veeam.Task, error) { return c.UndoFailoverPlan(ctx, rec.PlanID) })
		},
		Poll: func(ctx context.Context, c emPlanUndoer, rec *actionRecord, tr *tracking) (string, string, error) {
			return pollPlanTask(ctx, c, rec, tr, emOpPlanUndo)
		},
	})
}
