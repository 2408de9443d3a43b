package trigger

import (
	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
)

// vbr_permanent_failover: permanent failover of VBR replicas (permanentFailover); it ends when
// every session the call started stopped.
func init() { registerKind(replicaKind(config.ActionVBRPermanentFailover, vbr.PermanentFailover)) }
