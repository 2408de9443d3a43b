package main

import (
	"context"
	"fmt"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/trigger"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// The adapters below give the trigger the clients it acts through, with the
// option types of each client package kept out of package trigger.

type vspcActor struct{ *vspc.Client }

func (a vspcActor) StartPlan(ctx context.Context, planID string, test bool, requestID string) (*veeam.AsyncAction, error) {
	return a.StartFailoverPlan(ctx, planID, vspc.StartOptions{Test: test}, requestID)
}

type emActor struct{ *em.Client }

func (a emActor) FailoverCdpVM(ctx context.Context, cdpReplicaID, vmID string) (veeam.Task, error) {
	return a.CdpFailover(ctx, cdpReplicaID, vmID, em.CdpFailoverSpec{RestoreCurrent: true})
}

type vbrActor struct{ *vbr.Client }

func (a vbrActor) StartFailover(ctx context.Context, action string, pointIDs []string, reason string) ([]veeam.Session, error) {
	var kind vbr.FailoverKind
	switch action {
	case config.ActionVBRFailover:
		kind = vbr.FailoverNow
	case config.ActionVBRPlannedFailover:
		kind = vbr.PlannedFailover
	case config.ActionVBRPermanentFailover:
		kind = vbr.PermanentFailover
	case config.ActionVBRUndoFailover:
		kind = vbr.UndoFailover
	default:
		return nil, fmt.Errorf("unknown VBR action %q", action)
	}
	return a.Failover(ctx, kind, pointIDs, reason)
}

func actorsFor(clients map[string]*targetClient) trigger.Actors {
	actors := trigger.Actors{
		VSPC: map[string]trigger.VSPCActor{},
		EM:   map[string]trigger.EMActor{},
		VBR:  map[string]trigger.VBRActor{},
	}
	for name, c := range clients {
		switch {
		case c.vspc != nil:
			actors.VSPC[name] = vspcActor{c.vspc}
		case c.em != nil:
			actors.EM[name] = emActor{c.em}
		case c.vbr != nil:
			actors.VBR[name] = vbrActor{c.vbr}
		}
	}
	return actors
}
