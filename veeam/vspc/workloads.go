package vspc

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/rest"
)

const backupsPath = APIRoot + "/protectedWorkloads/virtualMachines/backups"

// replicationFilter asks VSPC for the replication chains only; the client
// filters again, whatever the server did with it.
const replicationFilter = `[{"property":"backupType","operation":"equals","value":"Replication"}]`

// wireBackup is ProtectedVirtualMachineBackup (the fields used).
type wireBackup struct {
	InstanceUID            string  `json:"instanceUid"`
	VirtualMachineUID      string  `json:"virtualMachineUid"`
	JobUID                 string  `json:"jobUid"`
	BackupServerUID        string  `json:"backupServerUid"`
	BackupType             string  `json:"backupType"`
	RestorePoints          int     `json:"restorePoints"`
	LatestRestorePointDate *string `json:"latestRestorePointDate"`
}

// DecodeReplicationPoints decodes a page of ProtectedVirtualMachineBackup
// and keeps the Replication chains that have a restore point.
func DecodeReplicationPoints(body []byte) ([]veeam.RecoveryPoint, int, error) {
	var env envelope[*[]wireBackup]
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, 0, err
	}
	if env.Data == nil {
		return nil, 0, errors.New("response has no data")
	}
	total := len(*env.Data)
	if env.Meta != nil && env.Meta.PagingInfo != nil {
		total = env.Meta.PagingInfo.Total
	}
	items := make([]veeam.RecoveryPoint, 0, len(*env.Data))
	for i := range *env.Data {
		w := &(*env.Data)[i]
		if !strings.EqualFold(w.BackupType, "Replication") {
			// Kept as a zero item (no id) so that the page keeps its
			// length for paging.
			items = append(items, veeam.RecoveryPoint{})
			continue
		}
		items = append(items, veeam.RecoveryPoint{
			VMID:           veeam.NormalizeID(w.VirtualMachineUID),
			BackupServerID: veeam.NormalizeID(w.BackupServerUID),
			JobID:          veeam.NormalizeID(w.JobUID),
			BackupID:       veeam.NormalizeID(w.InstanceUID),
			Time:           timeOf(w.LatestRestorePointDate).UTC(),
			RestorePoints:  w.RestorePoints,
		})
	}
	return items, total, nil
}

// ListReplicationRestorePoints reads, in one paged list for the whole
// estate (GET /api/v3/protectedWorkloads/virtualMachines/backups, filtered
// on backupType Replication), the recovery point of each VM as each backup
// server sees it (see RecoveryPoints for the map). Backup and backup copy
// chains are ignored: they are not what a failover restores. VMs without a
// replication point are absent.
func (c *Client) ListReplicationRestorePoints(ctx context.Context) (map[string]veeam.RecoveryPoint, error) {
	pts, err := rest.List(ctx, c.conn, backupsPath, url.Values{"filter": {replicationFilter}}, "offset", PageSize,
		DecodeReplicationPoints, func(p veeam.RecoveryPoint) string { return p.BackupID })
	if err != nil {
		return nil, err
	}
	return RecoveryPoints(pts), nil
}

// RecoveryPoints folds replication chains into recovery points, keyed by
// RecoveryPointKey(backupServerUid, virtualMachineUid) and, for plan objects
// that name no backup server, by virtualMachineUid alone.
//
// A failover plan fails over to a replica of its own backup server, so a VM
// replicated by another server (a second DR site) does not count for it.
// Within one server, a VM replicated by several jobs has one chain each, and
// which replica the plan fails over to is not in the API: the recovery point
// is then the oldest of the jobs' newest points, never better than the worst
// candidate. The VM-only entry is, by the same rule, the oldest over its
// servers. Chains without a VM id or a restore point are skipped.
func RecoveryPoints(chains []veeam.RecoveryPoint) map[string]veeam.RecoveryPoint {
	// Newest per (server, VM, job), then oldest per (server, VM) and per VM.
	type chainKey struct{ server, vm, job string }
	newest := make(map[chainKey]veeam.RecoveryPoint, len(chains))
	for _, p := range chains {
		if p.VMID == "" || p.Time.IsZero() {
			continue
		}
		k := chainKey{p.BackupServerID, p.VMID, p.JobID}
		if cur, ok := newest[k]; !ok || p.Time.After(cur.Time) {
			newest[k] = p
		}
	}
	out := make(map[string]veeam.RecoveryPoint, 2*len(newest))
	older := func(key string, p veeam.RecoveryPoint) {
		if cur, ok := out[key]; !ok || p.Time.Before(cur.Time) || p.Time.Equal(cur.Time) && p.BackupID < cur.BackupID {
			out[key] = p
		}
	}
	for _, p := range newest {
		older(RecoveryPointKey(p.BackupServerID, p.VMID), p)
		older(p.VMID, p)
	}
	return out
}

// RecoveryPointKey is the key of a VM's recovery point as a backup server
// sees it, in RecoveryPoints' map: "<backup server id>/<VM id>", both
// normalised (veeam.NormalizeID).
func RecoveryPointKey(backupServerID, vmID string) string {
	return veeam.NormalizeID(backupServerID) + "/" + veeam.NormalizeID(vmID)
}

// RecoveryPointOf joins a plan object to its VM's recovery point on the
// object's backup server: by the object's ID (instanceUid, "UID assigned to
// a VM included in a failover plan", = virtualMachineUid [I]), then by its
// restore session's protected VM id. Only an object without a backup server
// is joined by VM id alone. IDs compare case-insensitively.
func RecoveryPointOf(o veeam.FailoverPlanObject, points map[string]veeam.RecoveryPoint) (veeam.RecoveryPoint, bool) {
	server := veeam.NormalizeID(o.BackupServerID)
	for _, vm := range [2]string{o.ID, o.ProtectedVMID} {
		if vm = veeam.NormalizeID(vm); vm == "" {
			continue
		}
		var p veeam.RecoveryPoint
		var ok bool
		if server == "" {
			p, ok = points[vm]
		} else {
			// A key built on the stack: the lookup does not allocate.
			var buf [128]byte
			k := append(append(append(buf[:0], server...), '/'), vm...)
			p, ok = points[string(k)]
		}
		if ok {
			return p, true
		}
	}
	return veeam.RecoveryPoint{}, false
}

// PlanRecoveryPoint is the recovery point of a plan: the oldest recovery
// point over its objects (the plan can only fail over that far back), and
// the objects that have none. ok is false when no object has one.
func PlanRecoveryPoint(objs []veeam.FailoverPlanObject, points map[string]veeam.RecoveryPoint) (oldest time.Time, missing []veeam.FailoverPlanObject, ok bool) {
	for _, o := range objs {
		p, found := RecoveryPointOf(o, points)
		if !found {
			missing = append(missing, o)
			continue
		}
		if !ok || p.Time.Before(oldest) {
			oldest, ok = p.Time, true
		}
	}
	return oldest, missing, ok
}
