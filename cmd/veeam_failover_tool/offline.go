package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/targets"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// The offline commands read the targets of a config file directly, with the
// same clients as the exporter (internal/targets), and call nothing that
// changes anything: a monitoring account suffices.

// The readers the offline commands need, as the clients have them.
type (
	planLister interface {
		ListFailoverPlans(ctx context.Context) ([]veeam.FailoverPlan, error)
	}
	vspcPlanObjects interface {
		ListPlanObjects(ctx context.Context, planID string) ([]veeam.FailoverPlanObject, error)
		ListReplicationRestorePoints(ctx context.Context) (map[string]veeam.RecoveryPoint, error)
	}
	allPlanObjects interface {
		ListFailoverPlanObjects(ctx context.Context) ([]veeam.FailoverPlanObject, error)
	}
	replicaLister interface {
		ListReplicas(ctx context.Context) ([]veeam.Replica, error)
		ListReplicaPoints(ctx context.Context) ([]veeam.ReplicaPoint, error)
	}
)

// eachTarget builds the client of every configured target (or of --target)
// and calls fn with it.
func (c *cli) eachTarget(fn func(t config.Target, client targets.Client) error) error {
	cfg, err := config.Load(c.configFile, config.LoadOptions{})
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	found := false
	for _, t := range cfg.Targets {
		if c.target != "" && t.Name != c.target {
			continue
		}
		found = true
		cl, err := targets.New(t, cfg.Scrape.Concurrency, nil, logger)
		if err != nil {
			return err
		}
		err = fn(t, cl)
		targets.Close(cl)
		if err != nil {
			return fmt.Errorf("target %s: %w", t.Name, err)
		}
	}
	if !found {
		return fmt.Errorf("no target %q in %s", c.target, c.configFile)
	}
	return nil
}

func (c *cli) plans(ctx context.Context) error {
	w := c.table()
	fmt.Fprintln(w, "TARGET\tPLAN ID\tNAME\tSTATUS\tVMS")
	var all []map[string]any
	err := c.eachTarget(func(t config.Target, cl targets.Client) error {
		l, ok := cl.(planLister)
		if !ok {
			return nil // VBR: see replicas
		}
		ps, err := l.ListFailoverPlans(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", t.Name, p.ID, p.Name, firstNonEmpty(p.Status, "-"), p.ObjectsCount)
			all = append(all, map[string]any{"target": t.Name, "id": p.ID, "name": p.Name, "status": p.Status, "vms": p.ObjectsCount})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(all)
	}
	return w.Flush()
}

func (c *cli) planVMs(ctx context.Context, plan string) error {
	w := c.table()
	fmt.Fprintln(w, "TARGET\tPLAN\tVM ID\tVM\tRECOVERY POINT\tAGE")
	var all []map[string]any
	matched := false
	err := c.eachTarget(func(t config.Target, cl targets.Client) error {
		l, ok := cl.(planLister)
		if !ok {
			return nil
		}
		ps, err := l.ListFailoverPlans(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ps, func(p veeam.FailoverPlan) bool { return p.Name == plan || strings.EqualFold(p.ID, plan) })
		if i < 0 {
			return nil
		}
		matched = true
		p := ps[i]
		var objs []veeam.FailoverPlanObject
		var points map[string]veeam.RecoveryPoint
		switch r := cl.(type) {
		case vspcPlanObjects:
			if objs, err = r.ListPlanObjects(ctx, p.ID); err != nil {
				return err
			}
			if points, err = r.ListReplicationRestorePoints(ctx); err != nil {
				return err
			}
		case allPlanObjects: // EM: no restore points through its API
			all, err := r.ListFailoverPlanObjects(ctx)
			if err != nil {
				return err
			}
			for _, o := range all {
				if strings.EqualFold(o.PlanID, p.ID) {
					objs = append(objs, o)
				}
			}
		}
		for _, o := range objs {
			at, age := "-", "-"
			var ts time.Time
			if rp, ok := vspc.RecoveryPointOf(o, points); ok {
				ts = rp.Time
				at, age = rp.Time.UTC().Format(time.RFC3339), time.Since(rp.Time).Round(time.Minute).String()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, p.Name, o.ID, o.Name, at, age)
			all = append(all, map[string]any{"target": t.Name, "plan": p.Name, "vm_id": o.ID, "vm": o.Name, "restore_point": ts})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !matched {
		return fmt.Errorf("no plan named %q (or with that id)", plan)
	}
	if c.output == "json" {
		return c.json(all)
	}
	return w.Flush()
}

// replicas lists each replica once per VM (a replica may be a replication
// job of several VMs): the VM's newest point and what it allows, and the
// replica's recovery point, the oldest of its VMs' newest points. The
// grouping is the collector's (vbr.PointsByReplica, vbr.LatestPerVM).
func (c *cli) replicas(ctx context.Context) error {
	w := c.table()
	fmt.Fprintln(w, "TARGET\tREPLICA ID\tNAME\tSTATE\tRECOVERY POINT\tVM\tPOINTS\tNEWEST POINT\tALLOWED OPERATIONS")
	type vmRow struct {
		VM                string    `json:"vm"`
		Points            int       `json:"points"`
		NewestPoint       time.Time `json:"newest_point"`
		AllowedOperations []string  `json:"allowed_operations"`
	}
	type replicaRow struct {
		Target        string     `json:"target"`
		ID            string     `json:"id"`
		Name          string     `json:"name"`
		State         string     `json:"state"`
		RecoveryPoint *time.Time `json:"recovery_point"` // null without points
		VMs           []vmRow    `json:"vms"`
	}
	all := []replicaRow{}
	err := c.eachTarget(func(t config.Target, cl targets.Client) error {
		l, ok := cl.(replicaLister)
		if !ok {
			return nil
		}
		rs, err := l.ListReplicas(ctx)
		if err != nil {
			return err
		}
		pts, err := l.ListReplicaPoints(ctx)
		if err != nil {
			return err
		}
		for i := range pts {
			pts[i].ReplicaID = veeam.NormalizeID(pts[i].ReplicaID)
		}
		byReplica := vbr.PointsByReplica(pts)
		for _, r := range rs {
			row := replicaRow{Target: t.Name, ID: r.ID, Name: r.Name, State: r.State, VMs: []vmRow{}}
			rp := "-"
			inReplica := byReplica[veeam.NormalizeID(r.ID)]
			perVM, oldest := vbr.LatestPerVM(inReplica)
			if !oldest.CreationTime.IsZero() {
				ts := oldest.CreationTime.UTC()
				row.RecoveryPoint, rp = &ts, ts.Format(time.RFC3339)
			}
			count := map[string]int{}
			for _, p := range inReplica {
				count[p.Name]++
			}
			for _, vm := range slices.Sorted(maps.Keys(perVM)) {
				n := perVM[vm]
				row.VMs = append(row.VMs, vmRow{VM: vm, Points: count[vm], NewestPoint: n.CreationTime.UTC(), AllowedOperations: n.AllowedOperations})
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", t.Name, r.ID, r.Name, r.State, rp,
					firstNonEmpty(vm, "-"), count[vm], n.CreationTime.UTC().Format(time.RFC3339), strings.Join(n.AllowedOperations, ","))
			}
			if len(perVM) == 0 {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t-\t-\t0\t-\t\n", t.Name, r.ID, r.Name, r.State)
			}
			all = append(all, row)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(all)
	}
	return w.Flush()
}
