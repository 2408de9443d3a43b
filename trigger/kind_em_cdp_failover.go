package trigger

import (
	"context"
	"strings"
	"sync"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
)

// cdpFailer fails CDP replica VMs over; *em.Client has it.
type cdpFailer interface {
	taskReader
	CdpFailover(ctx context.Context, cdpReplicaID, vmID string, spec em.CdpFailoverSpec) (veeam.Task, error)
}

// em_cdp_failover: fail one VM of an Enterprise Manager CDP replica over to
// its latest crash-consistent point; it ends with its task.
func init() {
	registerKind(kindSpec[cdpFailer]{
		Name:       config.ActionEMCdpFailover,
		TargetType: config.TypeEM,
		Object:     objectCdpVM,
		Resolve: func(_ context.Context, _ cdpFailer, a *config.Action, _ string) (resolved, string) {
			// The client API has no way to read a CDP replica VM; the
			// in-flight check of target_state is all there is.
			return resolved{cdpReplica: strings.ToLower(a.CdpReplica), vm: strings.ToLower(a.VM)}, ""
		},
		Call: func(ctx context.Context, c cdpFailer, rec *actionRecord) (handle, error) {
			return taskHandle(c.CdpFailover(ctx, rec.CdpReplica, rec.VM, em.CdpFailoverSpec{RestoreCurrent: true}))
		},
		Poll: func(ctx context.Context, c cdpFailer, rec *actionRecord, mu sync.Locker) (string, string, error) {
			return pollTask(ctx, c, rec, mu)
		},
	})
}
