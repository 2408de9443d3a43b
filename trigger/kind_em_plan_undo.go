package trigger

import (
	"context"
	"sync"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// emPlanUndoer undoes Enterprise Manager plan failovers; *em.Client has it.
type emPlanUndoer interface {
	planReader
	taskReader
	UndoFailoverPlan(ctx context.Context, planID string) (veeam.Task, error)
}

// em_plan_undo: undo an Enterprise Manager plan's failover; it ends with its
// task.
func init() {
	registerKind(kindSpec[emPlanUndoer]{
		Name:       config.ActionEMPlanUndo,
		TargetType: config.TypeEM,
		Object:     objectPlan,
		Resolve: func(ctx context.Context, c emPlanUndoer, _ *config.Action, object string) (resolved, string) {
			return resolveEMPlan(ctx, c, object)
		},
		Call: func(ctx context.Context, c emPlanUndoer, rec *actionRecord) (handle, error) {
			return taskHandle(c.UndoFailoverPlan(ctx, rec.PlanID))
		},
		Poll: func(ctx context.Context, c emPlanUndoer, rec *actionRecord, mu sync.Locker) (string, string, error) {
			return pollTask(ctx, c, rec, mu)
		},
	})
}
