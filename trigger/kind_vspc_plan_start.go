package trigger

import (
	"context"
	"fmt"
	"slices"
	"strings"

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

// vspc_plan_start: start a VSPC plan (test mode with `test`, for cloud
// failover plans only), from Ready; it ends when the plan is
// Success/Completed or Failed, or when the plan's new last session ended
// (a test failover may leave the plan Ready).
func init() {
	registerKind(kindSpec[vspcPlanStarter]{
		Name:       config.ActionVSPCPlanStart,
		TargetType: config.TypeVSPC,
		Object:     objectPlanTest,
		Resolve: func(ctx context.Context, c vspcPlanStarter, a *config.Action, object string) (resolved, string) {
			return resolveVSPCPlan(ctx, c, object, func(p veeam.FailoverPlan) string {
				if p.Status != vspcReady {
					return fmt.Sprintf("plan %q (%s) is %s, not Ready", p.Name, p.ID, p.Status)
				}
				if a.Test && !slices.Contains(vspcTestable, p.Type) {
					return fmt.Sprintf("plan %q (%s) is of type %q: test mode (test: true) is only for cloud failover plans (type %s)",
						p.Name, p.ID, p.Type, strings.Join(vspcTestable, " or "))
				}
				return ""
			})
		},
		Call: func(ctx context.Context, c vspcPlanStarter, rec *actionRecord) (handle, error) {
			return asyncHandle(c.StartFailoverPlan(ctx, rec.PlanID, vspc.StartOptions{Test: rec.Test}, rec.RequestID))
		},
		Poll: func(ctx context.Context, c vspcPlanStarter, rec *actionRecord, tr *tracking) (string, string, error) {
			return pollVSPCPlan(ctx, c, rec, tr, func(p veeam.FailoverPlan, newSession bool) string {
				var last string
				if p.LastSession != nil {
					last = p.LastSession.Status
				}
				switch p.Status {
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
				case vspcReady:
					// Back to Ready: a test failover that ended, judged by
					// the session it ran.
					if newSession && sessionEnded(p.LastSession) {
						return sessionOutcome(last)
					}
				}
				return ""
			})
		},
		Idempotent: true,
	})
}

// vspcTestable are the plan types VSPC can test-fail over: cloud failover
// plans, the provider's or a tenant's (VSPC user guide).
var vspcTestable = []string{"Cloud", "Tenant"}
