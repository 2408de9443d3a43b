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
// on backupType Replication), the newest replication restore point of each
// protected VM, keyed by virtualMachineUid (lower case). Backup and backup
// copy chains are ignored: they are not what a failover restores. A VM in
// several replication jobs gets its newest point over them. VMs without a
// replication point are absent.
//
// The join to a failover plan object (veeam-api.md §6.1, [I]) is
// RecoveryPointOf: the object's instanceUid ("UID assigned to a VM included
// in a failover plan") equals virtualMachineUid ("UID assigned to a
// protected VM"); failing that, restoreSession.instanceUid ("protected VM")
// does.
func (c *Client) ListReplicationRestorePoints(ctx context.Context) (map[string]veeam.RecoveryPoint, error) {
	pts, err := rest.List(ctx, c.conn, backupsPath, url.Values{"filter": {replicationFilter}}, "offset", PageSize,
		DecodeReplicationPoints, func(p veeam.RecoveryPoint) string { return p.BackupID })
	if err != nil {
		return nil, err
	}
	out := make(map[string]veeam.RecoveryPoint)
	for _, p := range pts {
		if p.VMID == "" || p.Time.IsZero() {
			continue
		}
		if cur, ok := out[p.VMID]; !ok || p.Time.After(cur.Time) {
			out[p.VMID] = p
		}
	}
	return out, nil
}

// RecoveryPointOf joins a plan object to its VM's recovery point: by the
// object's ID, then by its restore session's protected VM id.
func RecoveryPointOf(o veeam.FailoverPlanObject, points map[string]veeam.RecoveryPoint) (veeam.RecoveryPoint, bool) {
	if p, ok := points[o.ID]; ok && o.ID != "" {
		return p, true
	}
	if p, ok := points[o.ProtectedVMID]; ok && o.ProtectedVMID != "" {
		return p, true
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
