// Package actors adapts the Veeam clients to the small interfaces the trigger
// acts through, so that package trigger never imports the client packages.
// main and the tests share these adapters.
package actors

import (
	"context"
	"fmt"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// VSPC is a VSPC client as trigger.VSPCActor.
type VSPC struct{ *vspc.Client }

// StartPlan starts the plan now, in test mode when test is set.
func (a VSPC) StartPlan(ctx context.Context, planID string, test bool, requestID string) (*veeam.AsyncAction, error) {
	return a.StartFailoverPlan(ctx, planID, vspc.StartOptions{Test: test}, requestID)
}

// EM is an Enterprise Manager client as trigger.EMActor.
type EM struct{ *em.Client }

// FailoverCdpVM fails the VM over to its latest crash-consistent point.
func (a EM) FailoverCdpVM(ctx context.Context, cdpReplicaID, vmID string) (veeam.Task, error) {
	return a.CdpFailover(ctx, cdpReplicaID, vmID, em.CdpFailoverSpec{RestoreCurrent: true})
}

// VBR is a B&R client as trigger.VBRActor.
type VBR struct{ *vbr.Client }

// StartFailover calls the failover endpoint of a vbr_* action type.
func (a VBR) StartFailover(ctx context.Context, action string, pointIDs []string, reason string) ([]veeam.Session, error) {
	kind, err := FailoverKind(action)
	if err != nil {
		return nil, err
	}
	return a.Failover(ctx, kind, pointIDs, reason)
}

// FailoverKind maps a vbr_* action type to the client's failover kind.
func FailoverKind(action string) (vbr.FailoverKind, error) {
	switch action {
	case config.ActionVBRFailover:
		return vbr.FailoverNow, nil
	case config.ActionVBRPlannedFailover:
		return vbr.PlannedFailover, nil
	case config.ActionVBRPermanentFailover:
		return vbr.PermanentFailover, nil
	case config.ActionVBRUndoFailover:
		return vbr.UndoFailover, nil
	}
	return "", fmt.Errorf("unknown VBR action %q", action)
}
