package trigger

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// vspcPlanUndoer undoes VSPC plan failovers; *vspc.Client has it.
type vspcPlanUndoer interface {
	vspcPlans
	// UndoFailoverPlan sends requestID as X-Request-id.
	UndoFailoverPlan(ctx context.Context, planID, requestID string) (*veeam.AsyncAction, error)
}

// vspcUndoable are the failed-over statuses an undo may start from: a
// failover that ended (Success, Completed), a partial one (Failed) and a
// failed undo (UndoFailed), as the simulator and veeam-api.md §4 have it.
var vspcUndoable = []string{vspcSuccess, vspcCompleted, vspcFailed, vspcUndoFailed}

// vspc_plan_undo: undo a VSPC plan's failover; it ends when the plan is
// Ready again or UndoFailed.
func init() {
	registerKind(kindSpec[vspcPlanUndoer]{
		Name:       config.ActionVSPCPlanUndo,
		TargetType: config.TypeVSPC,
		Object:     objectPlan,
		Resolve: func(ctx context.Context, c vspcPlanUndoer, _ *config.Action, object string) (resolved, string) {
			return resolveVSPCPlan(ctx, c, object, func(p veeam.FailoverPlan) string {
				if !slices.Contains(vspcUndoable, p.Status) {
					return fmt.Sprintf("plan %q (%s) is %s, not failed over (%s)", p.Name, p.ID, p.Status, strings.Join(vspcUndoable, ", "))
				}
				return ""
			})
		},
		Call: func(ctx context.Context, c vspcPlanUndoer, rec *actionRecord) (handle, error) {
			return asyncHandle(c.UndoFailoverPlan(ctx, rec.PlanID, rec.RequestID))
		},
		Poll: func(ctx context.Context, c vspcPlanUndoer, rec *actionRecord, tr *tracking) (string, string, error) {
			// An undo of an UndoFailed plan is judged only once the status
			// left UndoFailed or a new session appeared (pollVSPCPlan).
			return pollVSPCPlan(ctx, c, rec, tr, func(p veeam.FailoverPlan, _ bool) string {
				switch p.Status {
				case vspcReady:
					return outcomeSuccess
				case vspcUndoFailed:
					return outcomeFailed
				}
				return ""
			})
		},
		Idempotent: true,
	})
}
