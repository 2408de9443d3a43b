package main

import (
	"github.com/veeam-failover/veeam_failover_exporter/internal/actors"
	"github.com/veeam-failover/veeam_failover_exporter/trigger"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// actorsFor gives the trigger every target's client, by type.
func actorsFor(clients map[string]*targetClient) trigger.Actors {
	acts := trigger.Actors{
		VSPC: map[string]trigger.VSPCActor{},
		EM:   map[string]trigger.EMActor{},
		VBR:  map[string]trigger.VBRActor{},
	}
	for name, c := range clients {
		switch cl := c.client.(type) {
		case *vspc.Client:
			acts.VSPC[name] = actors.VSPC{Client: cl}
		case *em.Client:
			acts.EM[name] = actors.EM{Client: cl}
		case *vbr.Client:
			acts.VBR[name] = actors.VBR{Client: cl}
		}
	}
	return acts
}
