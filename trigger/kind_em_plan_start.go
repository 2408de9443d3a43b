package trigger

import (
	"context"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// emPlanStarter starts Enterprise Manager failover plans; *em.Client has it.
type emPlanStarter interface {
	planReader
	taskReader
	// StartFailoverPlan starts the plan; the trigger always passes a nil
	// startDate (StartNow: the latest restore points).
	StartFailoverPlan(ctx context.Context, planID string, startDate *time.Time) (veeam.Task, error)
}

// em_plan_start: start an Enterprise Manager plan now. Its finished task
// only says that EM took the request: the outcome is submitted (or failed).
func init() {
	registerKind(kindSpec[emPlanStarter]{
		Name:       config.ActionEMPlanStart,
		TargetType: config.TypeEM,
		Object:     objectPlan,
		Resolve: func(ctx context.Context, c emPlanStarter, _ *config.Action, object string) (resolved, string) {
			return resolveEMPlan(ctx, c, object)
		},
		Call: func(ctx context.Context, c emPlanStarter, rec *actionRecord) (handle, error) {
			return emCall(ctx, c, func() (veeam.Task, error) { return c.StartFailoverPlan(ctx, rec.PlanID, nil) })
		},
		Poll: func(ctx context.Context, c emPlanStarter, rec *actionRecord, tr *tracking) (string, string, error) {
			return pollPlanTask(ctx, c, rec, tr, emOpPlanStart)
		},
	})
}
