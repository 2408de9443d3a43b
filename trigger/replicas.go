package trigger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
)

// replicaFailer fails VBR replicas over and follows the resulting sessions;
// *vbr.Client has it.
type replicaFailer interface {
	// ListReplicas resolves replicas given by name or id.
	ListReplicas(ctx context.Context) ([]veeam.Replica, error)
	// ListReplicaPoints finds a VM named in replicas by its points.
	ListReplicaPoints(ctx context.Context) ([]veeam.ReplicaPoint, error)
	// ListSessions finds the sessions of a call whose answer was lost.
	ListSessions(ctx context.Context, f vbr.SessionFilter) ([]veeam.Session, error)
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
		Poll: func(ctx context.Context, c replicaFailer, rec *actionRecord, tr *tracking) (string, string, error) {
			if tr.maybe {
				if found, err := findSessions(ctx, c, rec, tr, fk.SessionType()); !found {
					return "", "", err
				}
			}
			return pollSessions(ctx, c, rec, tr.mu)
		},
	}
}

// sessionSkew is how much earlier than our call a session found after a
// lost answer may have been created (the two clocks differ).
const sessionSkew = 30 * time.Second

// findSessions looks, after an answer that did not say whether VBR ran the
// failover, for the sessions it would have started: of the failover's
// session type, named after the VMs of the call's restore points, created
// since the call. It adopts them as the call's sessions.
func findSessions(ctx context.Context, c replicaFailer, rec *actionRecord, tr *tracking, sessionType string) (bool, error) {
	vms := map[string]bool{}
	for _, id := range rec.PointIDs {
		p, err := c.GetReplicaPoint(ctx, id)
		if err != nil {
			return false, fmt.Errorf("reading restore point %s: %w", id, err)
		}
		vms[p.Name] = true
	}
	list, err := c.ListSessions(ctx, vbr.SessionFilter{Types: []string{sessionType}})
	if err != nil {
		return false, fmt.Errorf("listing %s sessions: %w", sessionType, err)
	}
	since := rec.SendingAt.Add(-sessionSkew)
	newest := map[string]veeam.Session{}
	for _, s := range list {
		if s.SessionType == sessionType && vms[s.Name] && !s.CreationTime.Before(since) &&
			s.CreationTime.After(newest[s.Name].CreationTime) {
			newest[s.Name] = s
		}
	}
	if len(newest) == 0 {
		return false, nil
	}
	var hs []sessionHandle
	for _, s := range newest {
		hs = append(hs, sessionHandle{ID: s.ID})
	}
	slices.SortFunc(hs, func(a, b sessionHandle) int { return strings.Compare(a.ID, b.ID) })
	tr.mu.Lock()
	rec.Sessions = hs
	tr.mu.Unlock()
	tr.maybe = false
	return true, nil
}

// resolveReplicas finds what to fail over for each name: a replica (id or
// unique name; VBR names a replica after the replication job, which may
// hold several VMs) or a VM (the name of its restore points). For a
// replica, every VM gets its newest restore point that allows the
// operation, all sent in one call; a VM without one blocks the whole
// action (a partial failover of a job is not something to decide
// automatically). A VM name selects that VM's points only.
func resolveReplicas(ctx context.Context, c replicaFailer, names []string, op string) ([]string, error) {
	all, err := c.ListReplicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing replicas: %w", err)
	}
	var pointIDs []string
	var allPoints []veeam.ReplicaPoint
	for _, name := range names {
		var found []veeam.Replica
		for _, r := range all {
			if strings.EqualFold(r.ID, name) || r.Name == name {
				found = append(found, r)
			}
		}
		var points []veeam.ReplicaPoint
		what := ""
		switch len(found) {
		case 0:
			// Not a replica: a VM, by the name of its restore points.
			if allPoints == nil {
				if allPoints, err = c.ListReplicaPoints(ctx); err != nil {
					return nil, fmt.Errorf("listing restore points to find VM %q: %w", name, err)
				}
			}
			replicas := map[string]bool{}
			for _, p := range allPoints {
				if p.Name == name {
					points = append(points, p)
					replicas[p.ReplicaID] = true
				}
			}
			switch len(replicas) {
			case 0:
				return nil, fmt.Errorf("no replica or VM %q", name)
			case 1:
			default:
				return nil, fmt.Errorf("VM %q is in %d replicas; name the replica by id", name, len(replicas))
			}
			what = fmt.Sprintf("VM %q (replica %s)", name, points[0].ReplicaID)
		case 1:
			rep := found[0]
			if points, err = c.ListReplicaPointsOf(ctx, rep.ID); err != nil {
				return nil, fmt.Errorf("listing restore points of replica %q: %w", name, err)
			}
			if len(points) == 0 {
				return nil, fmt.Errorf("replica %q (%s, state %s) has no restore points", name, rep.ID, rep.State)
			}
			what = fmt.Sprintf("replica %q (%s, state %s)", name, rep.ID, rep.State)
		default:
			return nil, fmt.Errorf("%d replicas match %q; name the replica by id", len(found), name)
		}
		chosen, missing := vbr.NewestEligiblePerVM(points, op)
		if len(missing) > 0 {
			return nil, fmt.Errorf("%s: VM %s has no restore point that allows %s", what, strings.Join(missing, ", "), op)
		}
		for _, p := range chosen {
			pointIDs = append(pointIDs, strings.ToLower(p.ID))
		}
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
