package vbr

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

const v1 = "/api/v1"

func replicaKey(r veeam.Replica) string    { return r.ID }
func pointKey(p veeam.ReplicaPoint) string { return p.ID }
func sessionKey(s veeam.Session) string    { return s.ID }
func (c *Client) wrap(err error) error     { return fmt.Errorf("target %q: %w", c.name, err) }
func (c *Client) orderBy(col string) url.Values {
	return url.Values{"orderColumn": {col}, "orderAsc": {"true"}}
}

// ListReplicas reads all replicas.
func (c *Client) ListReplicas(ctx context.Context) ([]veeam.Replica, error) {
	return list(ctx, c, v1+"/replicas", c.orderBy("CreationTime"), DecodeReplicas, replicaKey)
}

// GetReplica reads one replica.
func (c *Client) GetReplica(ctx context.Context, id string) (veeam.Replica, error) {
	rid, err := checkID("replica id", id)
	if err != nil {
		return veeam.Replica{}, c.wrap(err)
	}
	return get(ctx, c, v1+"/replicas/"+rid, nil, DecodeReplica)
}

// ListReplicaPoints reads the restore points of all replicas.
func (c *Client) ListReplicaPoints(ctx context.Context) ([]veeam.ReplicaPoint, error) {
	return list(ctx, c, v1+"/replicaPoints", c.orderBy("CreationTime"), DecodeReplicaPoints, pointKey)
}

// ListReplicaPointsOf reads the restore points of one replica.
func (c *Client) ListReplicaPointsOf(ctx context.Context, replicaID string) ([]veeam.ReplicaPoint, error) {
	rid, err := checkID("replica id", replicaID)
	if err != nil {
		return nil, c.wrap(err)
	}
	return list(ctx, c, v1+"/replicas/"+rid+"/replicaPoints", c.orderBy("CreationTime"), DecodeReplicaPoints, pointKey)
}

// GetReplicaPoint reads one restore point.
func (c *Client) GetReplicaPoint(ctx context.Context, id string) (veeam.ReplicaPoint, error) {
	pid, err := checkID("replica point id", id)
	if err != nil {
		return veeam.ReplicaPoint{}, c.wrap(err)
	}
	return get(ctx, c, v1+"/replicaPoints/"+pid, nil, DecodeReplicaPoint)
}

// GetSession reads one session: how a failover is tracked to its end
// (State Stopped, then Result).
func (c *Client) GetSession(ctx context.Context, id string) (veeam.Session, error) {
	sid, err := checkID("session id", id)
	if err != nil {
		return veeam.Session{}, c.wrap(err)
	}
	return get(ctx, c, v1+"/sessions/"+sid, nil, DecodeSession)
}

// SessionFilter narrows ListSessions.
type SessionFilter struct {
	// Types are ESessionType values (Failover, UndoFailover, ...); sent as
	// repeated typeFilter parameters (1.3-rev0 and later take an array).
	Types []string
	// State is one ESessionState.
	State string
}

// ListSessions reads sessions, newest last.
func (c *Client) ListSessions(ctx context.Context, f SessionFilter) ([]veeam.Session, error) {
	q := c.orderBy("CreationTime")
	for _, t := range f.Types {
		q.Add("typeFilter", t)
	}
	if f.State != "" {
		q.Set("stateFilter", f.State)
	}
	return list(ctx, c, v1+"/sessions", q, DecodeSessions, sessionKey)
}

// FailoverKind is one of the four failover operations on vSphere snapshot
// replicas.
type FailoverKind string

// The failover operations; the value is the path segment.
const (
	FailoverNow       FailoverKind = "failoverNow"
	PlannedFailover   FailoverKind = "plannedFailover"
	PermanentFailover FailoverKind = "permanentFailover"
	UndoFailover      FailoverKind = "undoFailover"
)

// FailoverKinds lists the kinds in a stable order.
func FailoverKinds() []FailoverKind {
	return []FailoverKind{FailoverNow, PlannedFailover, PermanentFailover, UndoFailover}
}

// Valid reports whether k is one of the four kinds.
func (k FailoverKind) Valid() bool { return k.Operation() != "" }

// Operation is the EObjectRestorePointOperation a restore point must list in
// allowedOperations for this failover.
func (k FailoverKind) Operation() string {
	switch k {
	case FailoverNow:
		return "StartViVMSnapshotReplicaFailover"
	case PlannedFailover:
		return "StartViVMSnapshotReplicaPlannedFailover"
	case PermanentFailover:
		return "StartViVMSnapshotReplicaPermanentFailover"
	case UndoFailover:
		return "StartViVMSnapshotReplicaUndoFailover"
	}
	return ""
}

// SessionType is the sessionType of the sessions the failover starts.
func (k FailoverKind) SessionType() string {
	switch k {
	case FailoverNow:
		return "Failover"
	case PlannedFailover:
		return "PlannedFailover"
	case PermanentFailover:
		return "PermanentFailover"
	case UndoFailover:
		return "UndoFailover"
	}
	return ""
}

// Path is the endpoint of the failover.
func (k FailoverKind) Path() string { return v1 + "/failover/" + string(k) + "/vSphere/snapshot" }

func (k FailoverKind) String() string { return string(k) }

// failoverSpec is ViVMSnapshotReplicaFailoverSpec.
type failoverSpec struct {
	ReplicaPointIDs []string `json:"replicaPointIds"`
	Reason          string   `json:"reason,omitempty"`
}

// Failover starts a failover of the given restore points (ReplicaPointModel
// ids, not replica ids) and returns one session per point. It is sent
// exactly once: B&R has no idempotency key, so neither a connection error nor
// a 5xx is retried (only a 401, which means it was not executed, is sent
// again after a new login).
func (c *Client) Failover(ctx context.Context, kind FailoverKind, pointIDs []string, reason string) ([]veeam.Session, error) {
	if !kind.Valid() {
		return nil, c.wrap(fmt.Errorf("unknown failover kind %q", string(kind)))
	}
	if len(pointIDs) == 0 {
		return nil, c.wrap(fmt.Errorf("%s: no replica point ids", kind))
	}
	spec := failoverSpec{Reason: reason}
	seen := make(map[string]bool, len(pointIDs))
	for _, id := range pointIDs {
		pid, err := checkID("replica point id", id)
		if err != nil {
			return nil, c.wrap(err)
		}
		if !seen[pid] {
			seen[pid] = true
			spec.ReplicaPointIDs = append(spec.ReplicaPointIDs, pid)
		}
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, c.wrap(err)
	}
	resp, err := c.call(ctx, http.MethodPost, kind.Path(), nil, body)
	if err != nil {
		return nil, err
	}
	sessions, _, err := DecodeSessions(resp.Body)
	if err != nil {
		// The failover was accepted; say so, so that nobody sends it again.
		return nil, &veeam.DecodeError{Target: c.name, Method: http.MethodPost, Path: kind.Path(),
			Err: fmt.Errorf("failover accepted (status %d) but its sessions could not be read: %w", resp.Status, err)}
	}
	return sessions, nil
}
