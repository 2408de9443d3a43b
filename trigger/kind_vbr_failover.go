package trigger

import (
	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
)

// vbr_failover: fail VBR replicas over now (failoverNow); it ends when
// every session the call started stopped.
func init() { registerKind(replicaKind(config.ActionVBRFailover, vbr.FailoverNow)) }
