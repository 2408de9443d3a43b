package trigger

import (
	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
)

// vbr_planned_failover: planned failover of VBR replicas (plannedFailover); it ends when
// every session the call started stopped.
func init() { registerKind(replicaKind(config.ActionVBRPlannedFailover, vbr.PlannedFailover)) }
