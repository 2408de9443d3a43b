package vbr

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// collection is the {data, pagination} envelope of SessionsResult,
// ReplicasResult and ReplicaPointsResult.
type collection[T any] struct {
	Data       *[]T        `json:"data"`
	Pagination *pagination `json:"pagination"`
}

type pagination struct {
	Total int `json:"total"`
	Count int `json:"count"`
}

type wireReplica struct {
	ID           string  `json:"id"`
	Type         string  `json:"type"`
	JobID        string  `json:"jobId"`
	Name         string  `json:"name"`
	PlatformName string  `json:"platformName"`
	CreationTime *string `json:"creationTime"`
	State        string  `json:"state"`
}

type wirePoint struct {
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	ReplicaID         string   `json:"replicaId"`
	CreationTime      *string  `json:"creationTime"`
	AllowedOperations []string `json:"allowedOperations"`
	State             string   `json:"state"`
}

type wireSession struct {
	ID              string  `json:"id"`
	Name            string  `json:"name"`
	SessionType     string  `json:"sessionType"`
	State           string  `json:"state"`
	CreationTime    *string `json:"creationTime"`
	EndTime         *string `json:"endTime"`
	ProgressPercent int     `json:"progressPercent"`
	Result          *struct {
		Result     string `json:"result"`
		Message    string `json:"message"`
		IsCanceled bool   `json:"isCanceled"`
	} `json:"result"`
}

func timeOf(p *string) time.Time {
	if p == nil {
		return time.Time{}
	}
	t, _ := veeam.ParseTime(*p)
	return t
}

func (w *wireReplica) replica() veeam.Replica {
	return veeam.Replica{
		ID:           veeam.NormalizeID(w.ID),
		Name:         w.Name,
		Type:         w.Type,
		State:        w.State,
		JobID:        veeam.NormalizeID(w.JobID),
		PlatformName: w.PlatformName,
		CreationTime: timeOf(w.CreationTime),
	}
}

func (w *wirePoint) point() veeam.ReplicaPoint {
	ops := w.AllowedOperations
	if ops == nil {
		ops = []string{}
	}
	return veeam.ReplicaPoint{
		ID:                veeam.NormalizeID(w.ID),
		Name:              w.Name,
		ReplicaID:         veeam.NormalizeID(w.ReplicaID),
		CreationTime:      timeOf(w.CreationTime),
		AllowedOperations: ops,
		State:             w.State,
	}
}

func (w *wireSession) session() veeam.Session {
	s := veeam.Session{
		ID:              veeam.NormalizeID(w.ID),
		Name:            w.Name,
		SessionType:     w.SessionType,
		State:           w.State,
		ProgressPercent: w.ProgressPercent,
		CreationTime:    timeOf(w.CreationTime),
		EndTime:         timeOf(w.EndTime),
	}
	if w.Result != nil {
		s.Result = w.Result.Result
		s.Message = w.Result.Message
	}
	return s
}

func decodeCollection[W any, T any](body []byte, conv func(*W) T) ([]T, int, error) {
	var c collection[W]
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, 0, err
	}
	if c.Data == nil {
		return nil, 0, errors.New("response has no data")
	}
	data := *c.Data
	items := make([]T, 0, len(data))
	for i := range data {
		items = append(items, conv(&data[i]))
	}
	total := len(items)
	if c.Pagination != nil {
		total = c.Pagination.Total
		if total < 0 {
			return nil, 0, fmt.Errorf("negative total %d", total)
		}
	}
	return items, total, nil
}

func decodeObject[W any, T any](body []byte, conv func(*W) T) (T, error) {
	var w *W
	if err := json.Unmarshal(body, &w); err != nil {
		var zero T
		return zero, err
	}
	if w == nil {
		var zero T
		return zero, errors.New("empty answer")
	}
	return conv(w), nil
}

// DecodeSessions decodes a SessionsResult page and its total.
func DecodeSessions(body []byte) ([]veeam.Session, int, error) {
	return decodeCollection(body, (*wireSession).session)
}

// DecodeReplica decodes a ReplicaModel.
func DecodeReplica(body []byte) (veeam.Replica, error) {
	return decodeObject(body, (*wireReplica).replica)
}

// DecodeReplicaPoint decodes a ReplicaPointModel.
func DecodeReplicaPoint(body []byte) (veeam.ReplicaPoint, error) {
	return decodeObject(body, (*wirePoint).point)
}

// DecodeSession decodes a SessionModel.
func DecodeSession(body []byte) (veeam.Session, error) {
	return decodeObject(body, (*wireSession).session)
}
