package trigger

import (
	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
)

// vbr_undo_failover: undo a VBR replica failover (undoFailover); it ends when
// every session the call started stopped.
func init() { registerKind(replicaKind(config.ActionVBRUndoFailover, vbr.UndoFailover)) }
