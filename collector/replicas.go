package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// replicas is the replicas collector (VBR): per replica its info, state and
// the time of its newest restore point.
func (e *Exporter) replicas(ctx context.Context, t *target) ([]prometheus.Metric, error) {
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

	b, m := e.b, e.m
	out := make([]prometheus.Metric, 0, len(replicas)*(2+len(replicaStates)))
	for i, r := range replicas {
		if i > 0 && replicas[i-1].ID == r.ID {
			continue
		}
		id := b.pair(labelReplicaID, r.ID)
		out = append(out, b.gauge(m.replicaInfo, 1, t.pair, id, b.pair("replica", r.Name), b.pair("type", r.Type)))
		out = b.stateset(out, m.replicaState, m.replicaState.index(r.State), t.pair, id)
		if ts, ok := latest[r.ID]; ok && !ts.IsZero() {
			out = append(out, b.gauge(m.replicaPoint, unixSeconds(ts), t.pair, id))
		}
	}
	return out, nil
}
