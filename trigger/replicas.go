package trigger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
)

// replicaFailer fails VBR replicas over and follows the resulting sessions;
// *vbr.Client has it.
type replicaFailer interface {
	// ListReplicas resolves replicas given by name or id.
	ListReplicas(ctx context.Context) ([]veeam.Replica, error)
	// ListReplicaPointsOf finds a replica's newest eligible restore point.
	ListReplicaPointsOf(ctx context.Context, replicaID string) ([]veeam.ReplicaPoint, error)
	// GetReplicaPoint checks points given as replica_point_ids.
	GetReplicaPoint(ctx context.Context, id string) (veeam.ReplicaPoint, error)
	Failover(ctx context.Context, kind vbr.FailoverKind, pointIDs []string, reason string) ([]veeam.Session, error)
	GetSession(ctx context.Context, id string) (veeam.Session, error)
}

// replicaKind declares a VBR failover kind: the four differ only in the
// client's failover kind, which also names the operation a restore point
// must allow (its allowedOperations).
func replicaKind(name string, fk vbr.FailoverKind) kindSpec[replicaFailer] {
	op := fk.Operation()
	return kindSpec[replicaFailer]{
		Name:       name,
		TargetType: config.TypeVBR,
		Object:     objectReplicas,
		Resolve: func(ctx context.Context, c replicaFailer, a *config.Action, object string) (resolved, string) {
			var res resolved
			var err error
			if len(a.ReplicaPointIDs) > 0 {
				res.pointIDs, err = checkPoints(ctx, c, a.ReplicaPointIDs, op)
			} else {
				names := a.Replicas
				if a.ReplicaLabel != "" {
					names = []string{object}
				}
				res.pointIDs, err = resolveReplicas(ctx, c, names, op)
			}
			if err != nil {
				return res, err.Error()
			}
			return res, ""
		},
		Call: func(ctx context.Context, c replicaFailer, rec *actionRecord) (handle, error) {
			var h handle
			sessions, err := c.Failover(ctx, fk, rec.PointIDs, rec.Reason)
			if err != nil {
				return h, err
			}
			for _, s := range sessions {
				h.sessions = append(h.sessions, sessionHandle{ID: s.ID})
			}
			return h, nil
		},
		Poll: pollSessions,
	}
}

// resolveReplicas finds each replica (id or unique name) and its newest
// restore point that allows the operation. Every replica must have one:
// a partial failover of a set is not something to decide automatically.
func resolveReplicas(ctx context.Context, c replicaFailer, names []string, op string) ([]string, error) {
	all, err := c.ListReplicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing replicas: %w", err)
	}
	var pointIDs []string
	for _, name := range names {
		var found []veeam.Replica
		for _, r := range all {
			if strings.EqualFold(r.ID, name) || r.Name == name {
				found = append(found, r)
			}
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("no replica %q", name)
		case 1:
		default:
			return nil, fmt.Errorf("%d replicas match %q; name the replica by id", len(found), name)
		}
		rep := found[0]
		points, err := c.ListReplicaPointsOf(ctx, rep.ID)
		if err != nil {
			return nil, fmt.Errorf("listing restore points of replica %q: %w", name, err)
		}
		var best *veeam.ReplicaPoint
		for i := range points {
			p := &points[i]
			if p.Allows(op) && (best == nil || p.CreationTime.After(best.CreationTime)) {
				best = p
			}
		}
		if best == nil {
			return nil, fmt.Errorf("replica %q (%s, state %s) has no restore point that allows %s", name, rep.ID, rep.State, op)
		}
		pointIDs = append(pointIDs, strings.ToLower(best.ID))
	}
	if len(pointIDs) == 0 {
		return nil, errors.New("no replicas to act on")
	}
	return pointIDs, nil
}

// checkPoints checks that every given restore point allows the operation.
func checkPoints(ctx context.Context, c replicaFailer, ids []string, op string) ([]string, error) {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		p, err := c.GetReplicaPoint(ctx, strings.ToLower(id))
		if err != nil {
			return nil, fmt.Errorf("reading restore point %s: %w", id, err)
		}
		if !p.Allows(op) {
			return nil, fmt.Errorf("restore point %s (state %s) does not allow %s", id, p.State, op)
		}
		out = append(out, strings.ToLower(id))
	}
	return out, nil
}

// pollSessions reads each running session of a VBR failover once; the
// action ends when all stopped, with the worst result.
func pollSessions(ctx context.Context, c replicaFailer, rec *actionRecord, mu sync.Locker) (string, string, error) {
	if len(rec.Sessions) == 0 {
		return outcomeAbandoned, "VBR answered without sessions; the outcome cannot be tracked", nil
	}
	var msgs []string
	running := false
	for i := range rec.Sessions {
		mu.Lock()
		sh := rec.Sessions[i]
		mu.Unlock()
		if sh.Result != "" {
			continue
		}
		s, err := c.GetSession(ctx, sh.ID)
		if err != nil {
			return "", "", err
		}
		if s.State != "Stopped" {
			running = true
			continue
		}
		res := s.Result
		if res == "" {
			res = "None"
		}
		if s.Message != "" && res != "Success" {
			msgs = append(msgs, fmt.Sprintf("session %s (%s): %s", s.ID, s.Name, s.Message))
		}
		mu.Lock()
		rec.Sessions[i].Result = res
		mu.Unlock()
	}
	if running {
		return "", "", nil
	}
	mu.Lock()
	defer mu.Unlock()
	outcome := outcomeSuccess
	for _, s := range rec.Sessions {
		switch s.Result {
		case "Success":
		case "Warning":
			if outcome == outcomeSuccess {
				outcome = outcomeWarning
			}
		default: // Failed, None (cancelled) or unknown
			outcome = outcomeFailed
		}
	}
	results := make([]string, len(rec.Sessions))
	for i, s := range rec.Sessions {
		results[i] = s.ID + "=" + s.Result
	}
	return outcome, strings.Join(append([]string{"sessions " + strings.Join(results, ", ")}, msgs...), "; "), nil
}
