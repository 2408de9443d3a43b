package vspc

// The reflective decoders the list pages used before jsonr, kept as the
// reference the fast ones are compared with.

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// wireObject is BackupFailoverPlanObject.
type wireObject struct {
	InstanceUID     string              `json:"instanceUid"`
	PlanUID         string              `json:"planUid"`
	Name            string              `json:"name"`
	HostName        string              `json:"hostName"`
	FolderName      string              `json:"folderName"`
	Path            string              `json:"path"`
	BackupServerUID string              `json:"backupServerUid"`
	RestoreSession  *wireRestoreSession `json:"restoreSession"`
}

type wireRestoreSession struct {
	InstanceUID          string  `json:"instanceUid"`
	BackupStatus         string  `json:"backupStatus"`
	RestorePointUID      *string `json:"restorePointUid"`
	RestorePointDateTime *string `json:"restorePointDateTime"`
	StartDateTime        *string `json:"startDateTime"`
	EndDateTime          *string `json:"endDateTime"`
}

func (w *wireObject) object() veeam.FailoverPlanObject {
	o := veeam.FailoverPlanObject{
		ID:             veeam.NormalizeID(w.InstanceUID),
		PlanID:         veeam.NormalizeID(w.PlanUID),
		Name:           w.Name,
		HostName:       w.HostName,
		BackupServerID: veeam.NormalizeID(w.BackupServerUID),
	}
	if s := w.RestoreSession; s != nil {
		o.RestoreStatus = s.BackupStatus
		o.RestorePointID = veeam.NormalizeID(str(s.RestorePointUID))
		o.RestorePointTime = timeOf(s.RestorePointDateTime)
		o.RestoreStartTime = timeOf(s.StartDateTime)
		o.RestoreEndTime = timeOf(s.EndDateTime)
		o.ProtectedVMID = veeam.NormalizeID(s.InstanceUID)
		clearEmptySession(&o)
	}
	return o
}

// page is one decoded page of a list.
type page[T any] struct {
	items []T
	total int
}

// decodeList decodes a collection response. A missing pagingInfo means the
// page is the whole list.
func decodeList[W any, T any](body []byte, conv func(*W) T) (page[T], error) {
	var env envelope[*[]W]
	if err := json.Unmarshal(body, &env); err != nil {
		return page[T]{}, err
	}
	if env.Data == nil {
		return page[T]{}, errors.New("response has no data")
	}
	data := *env.Data
	items := make([]T, 0, len(data))
	for i := range data {
		items = append(items, conv(&data[i]))
	}
	total := len(items)
	if env.Meta != nil && env.Meta.PagingInfo != nil {
		total = env.Meta.PagingInfo.Total
		if total < 0 {
			return page[T]{}, fmt.Errorf("negative total %d", total)
		}
	}
	return page[T]{items: items, total: total}, nil
}

// refPlans is the reference decoder of a plan page.
func refPlans(body []byte) ([]veeam.FailoverPlan, int, error) {
	p, err := decodeList(body, (*wirePlan).plan)
	return p.items, p.total, err
}

// refPlanObjects is the reference decoder of a plan object page.
func refPlanObjects(body []byte) ([]veeam.FailoverPlanObject, int, error) {
	p, err := decodeList(body, (*wireObject).object)
	return p.items, p.total, err
}
