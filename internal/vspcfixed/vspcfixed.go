// Package vspcfixed answers the VSPC collectors' reads from lists held in
// memory, so that a benchmark measures the collectors and the exposition
// without a client or a server in the way.
package vspcfixed

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// Reader answers each read with a copy of its list: the collectors sort
// and rewrite what they are given.
type Reader struct {
	Plans   []veeam.FailoverPlan
	Objects []veeam.FailoverPlanObject
	Points  map[string]veeam.RecoveryPoint
}

func (r *Reader) ListFailoverPlans(context.Context) ([]veeam.FailoverPlan, error) {
	return slices.Clone(r.Plans), nil
}

func (r *Reader) ListFailoverPlanObjects(context.Context) ([]veeam.FailoverPlanObject, error) {
	return slices.Clone(r.Objects), nil
}

func (r *Reader) ListReplicationRestorePoints(context.Context) (map[string]veeam.RecoveryPoint, error) {
	return maps.Clone(r.Points), nil
}

// Clone is a Reader with its own copies of the lists (the points map is
// shared: no reader changes it).
func (r *Reader) Clone() *Reader {
	return &Reader{Plans: slices.Clone(r.Plans), Objects: slices.Clone(r.Objects), Points: r.Points}
}

// Read fills a Reader from what src answers once; *vspc.Client is one.
func Read(ctx context.Context, src interface {
	ListFailoverPlans(context.Context) ([]veeam.FailoverPlan, error)
	ListFailoverPlanObjects(context.Context) ([]veeam.FailoverPlanObject, error)
	ListReplicationRestorePoints(context.Context) (map[string]veeam.RecoveryPoint, error)
}) (*Reader, error) {
	var r Reader
	var err error
	if r.Plans, err = src.ListFailoverPlans(ctx); err != nil {
		return nil, fmt.Errorf("list failover plans: %w", err)
	}
	if r.Objects, err = src.ListFailoverPlanObjects(ctx); err != nil {
		return nil, fmt.Errorf("list failover plan objects: %w", err)
	}
	if r.Points, err = src.ListReplicationRestorePoints(ctx); err != nil {
		return nil, fmt.Errorf("list replication restore points: %w", err)
	}
	return &r, nil
}
