package trigger

import (
	"context"
	"fmt"
	"sync"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// vspcPlanStarter starts VSPC failover plans; *vspc.Client has it.
type vspcPlanStarter interface {
	vspcPlans
	// StartFailoverPlan sends requestID as X-Request-id; it returns the
	// async action on 202, nil on 200.
	StartFailoverPlan(ctx context.Context, planID string, o vspc.StartOptions, requestID string) (*veeam.AsyncAction, error)
}

// vspc_plan_start: start a VSPC plan (test mode with `test`), from Ready; it
// ends when the plan is Success/Completed or Failed.
func init() {
	registerKind(kindSpec[vspcPlanStarter]{
		Name:       config.ActionVSPCPlanStart,
		TargetType: config.TypeVSPC,
		Object:     objectPlanTest,
		Resolve: func(ctx context.Context, c vspcPlanStarter, _ *config.Action, object string) (resolved, string) {
			return resolveVSPCPlan(ctx, c, object, func(p veeam.FailoverPlan) string {
				if p.Status != vspcReady {
					return fmt.Sprintf("plan %q (%s) is %s, not Ready", p.Name, p.ID, p.Status)
				}
				return ""
			})
		},
		Call: func(ctx context.Context, c vspcPlanStarter, rec *actionRecord) (handle, error) {
			return asyncHandle(c.StartFailoverPlan(ctx, rec.PlanID, vspc.StartOptions{Test: rec.Test}, rec.RequestID))
		},
		Poll: func(ctx context.Context, c vspcPlanStarter, rec *actionRecord, mu sync.Locker) (string, string, error) {
			return pollVSPCPlan(ctx, c, rec, mu, func(status, last string) string {
				switch status {
				case vspcSuccess, vspcCompleted:
					switch last {
					case "Warning":
						return outcomeWarning
					case "Failed":
						return outcomeFailed
					}
					return outcomeSuccess
				case vspcFailed:
					return outcomeFailed
				}
				return ""
			})
		},
		// No usable answer: the plan's status shows whether VSPC received
		// the call (if it never starts, the action ends as timeout).
		FollowUncertain: true,
	})
}
