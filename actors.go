package main

import (
	"github.com/veeam-failover/veeam_failover_exporter/internal/actors"
	"github.com/veeam-failover/veeam_failover_exporter/trigger"
)

// actorsFor gives the trigger every target's client, by type.
func actorsFor(clients map[string]*targetClient) trigger.Actors {
	acts := trigger.Actors{
		VSPC: map[string]trigger.VSPCActor{},
		EM:   map[string]trigger.EMActor{},
		VBR:  map[string]trigger.VBRActor{},
	}
	for name, c := range clients {
		switch {
		case c.vspc != nil:
			acts.VSPC[name] = actors.VSPC{Client: c.vspc}
		case c.em != nil:
			acts.EM[name] = actors.EM{Client: c.em}
		case c.vbr != nil:
			acts.VBR[name] = actors.VBR{Client: c.vbr}
		}
	}
	return acts
}
