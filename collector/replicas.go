package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// replicas is the replicas collector (VBR): per replica its info, state and
// the time of its newest restore point.
func (e *Exporter) replicas(ctx context.Context, t *target) ([]*block, error) {
	var (
		replicas []veeam.Replica
		points   []veeam.ReplicaPoint
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if replicas, err = t.VBR.ListReplicas(gctx); err != nil {
			return fmt.Errorf("list replicas: %w", err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if points, err = t.VBR.ListReplicaPoints(gctx); err != nil {
			return fmt.Errorf("list replica points: %w", err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}

	latest := make(map[string]time.Time, len(replicas))
	for _, p := range points {
		id := lower(p.ReplicaID)
		if p.CreationTime.After(latest[id]) {
			latest[id] = p.CreationTime
		}
	}
	for i := range replicas {
		replicas[i].ID = lower(replicas[i].ID)
	}
	slices.SortFunc(replicas, func(a, b veeam.Replica) int { return strings.Compare(a.ID, b.ID) })

	m, tn := e.m, t.Name
	info, state, point := newBlock(m.replicaInfo, len(replicas)), newBlock(m.replicaState, len(replicas)), newBlock(m.replicaPoint, len(replicas))
	for i, r := range replicas {
		if i > 0 && replicas[i-1].ID == r.ID {
			continue
		}
		info.add(1, tn, r.ID, r.Name, r.Type)
		state.add(float64(m.replicaState.index(r.State)), tn, r.ID)
		if ts, ok := latest[r.ID]; ok && !ts.IsZero() {
			point.add(unixSeconds(ts), tn, r.ID)
		}
	}
	return []*block{info, state, point}, nil
}
