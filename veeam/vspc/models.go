package vspc

import (
	"encoding/json"
	"errors"
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
