package vspc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// envelope is VSPC's response wrapper {data, meta:{pagingInfo}, errors}.
type envelope[T any] struct {
	Data T `json:"data"`
	Meta *struct {
		PagingInfo *pagingInfo `json:"pagingInfo"`
	} `json:"meta"`
}

type pagingInfo struct {
	Total  int `json:"total"`
	Count  int `json:"count"`
	Offset int `json:"offset"`
}

// wirePlan is BackupFailoverPlan.
type wirePlan struct {
	InstanceUID     string       `json:"instanceUid"`
	OriginalUID     string       `json:"originalUid"`
	BackupServerUID string       `json:"backupServerUid"`
	Name            string       `json:"name"`
	Type            string       `json:"type"`
	Status          string       `json:"status"`
	TenantUID       *string      `json:"tenantUid"`
	ObjectsCount    int          `json:"objectsCount"`
	LastSession     *wireSession `json:"lastSession"`
}

type wireSession struct {
	InstanceUID string  `json:"instanceUid"`
	EndTime     *string `json:"endTime"`
	Status      string  `json:"status"`
	Message     *string `json:"message"`
}

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

// wireAsyncAction is AsyncActionInfo.
type wireAsyncAction struct {
	ID         string `json:"id"`
	ActionName string `json:"actionName"`
	Status     string `json:"status"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func timeOf(p *string) time.Time {
	if p == nil {
		return time.Time{}
	}
	t, _ := veeam.ParseTime(*p)
	return t
}

func (w *wirePlan) plan() veeam.FailoverPlan {
	p := veeam.FailoverPlan{
		ID:             veeam.NormalizeID(w.InstanceUID),
		Name:           w.Name,
		BackupServerID: veeam.NormalizeID(w.BackupServerUID),
		TenantID:       veeam.NormalizeID(str(w.TenantUID)),
		Type:           w.Type,
		Status:         w.Status,
		ObjectsCount:   w.ObjectsCount,
	}
	if s := w.LastSession; s != nil {
		p.LastSession = &veeam.PlanSession{
			ID:      veeam.NormalizeID(s.InstanceUID),
			EndTime: timeOf(s.EndTime),
			Status:  s.Status,
			Message: str(s.Message),
		}
	}
	return p
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

// DecodePlans decodes a failover plan collection page; exported for the
// fuzz target's benefit and for tools that read captured responses.
func DecodePlans(body []byte) ([]veeam.FailoverPlan, int, error) {
	p, err := decodeList(body, (*wirePlan).plan)
	return p.items, p.total, err
}

// DecodePlanObjects decodes a failover plan object collection page.
func DecodePlanObjects(body []byte) ([]veeam.FailoverPlanObject, int, error) {
	p, err := decodeList(body, (*wireObject).object)
	return p.items, p.total, err
}

// decodeOne decodes {data: W}; a null or missing data is an error.
func decodeOne[W any](body []byte) (*W, error) {
	var env envelope[*W]
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, err
	}
	if env.Data == nil {
		return nil, errors.New("response has no data")
	}
	return env.Data, nil
}

// DecodePlan decodes {data: BackupFailoverPlan}.
func DecodePlan(body []byte) (veeam.FailoverPlan, error) {
	w, err := decodeOne[wirePlan](body)
	if err != nil {
		return veeam.FailoverPlan{}, err
	}
	return w.plan(), nil
}

// DecodeAsyncAction decodes {data: AsyncActionInfo}.
func DecodeAsyncAction(body []byte) (veeam.AsyncAction, error) {
	w, err := decodeOne[wireAsyncAction](body)
	if err != nil {
		return veeam.AsyncAction{}, err
	}
	return veeam.AsyncAction{ID: veeam.NormalizeID(w.ID), Status: strings.ToLower(w.Status)}, nil
}
