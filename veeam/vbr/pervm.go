package vbr

import (
	"sort"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// A VBR replica may be a replication job with several VMs: ReplicaModel.name
// is "Name of the job that created the replica" and ReplicaPointModel.name
// "Name of the object that the restore point was created for" in every spec
// revision [C: VBRSPEC]. So a replica's points are grouped by their Name (the
// VM) before choosing what to fail over or reporting how old a VM's replica
// is. A replica of one VM is the one-group case.

// VMPoints is one VM's restore points within a replica, newest first.
type VMPoints struct {
	VM     string
	Points []veeam.ReplicaPoint
}

// PointsByVM groups the points of one replica by VM name, the VMs sorted
// by name and each VM's points newest first. Points of other replicas (a
// different ReplicaID than the first point's) are not expected; group them
// per replica first.
func PointsByVM(points []veeam.ReplicaPoint) []VMPoints {
	idx := map[string]int{}
	var out []VMPoints
	for _, p := range points {
		i, ok := idx[p.Name]
		if !ok {
			i = len(out)
			idx[p.Name] = i
			out = append(out, VMPoints{VM: p.Name})
		}
		out[i].Points = append(out[i].Points, p)
	}
	for _, g := range out {
		sort.SliceStable(g.Points, func(a, b int) bool { return g.Points[a].CreationTime.After(g.Points[b].CreationTime) })
	}
	sort.Slice(out, func(a, b int) bool { return out[a].VM < out[b].VM })
	return out
}

// PointsByReplica groups points by ReplicaID.
func PointsByReplica(points []veeam.ReplicaPoint) map[string][]veeam.ReplicaPoint {
	out := map[string][]veeam.ReplicaPoint{}
	for _, p := range points {
		out[p.ReplicaID] = append(out[p.ReplicaID], p)
	}
	return out
}

// NewestEligiblePerVM picks, for each VM of one replica, its newest point
// that allows op (a kind's Operation(); "" allows any): the points to send
// together in one failover call. missing names the VMs with no such point,
// sorted; a caller must not fail over part of a job's VMs silently.
func NewestEligiblePerVM(points []veeam.ReplicaPoint, op string) (chosen []veeam.ReplicaPoint, missing []string) {
	for _, g := range PointsByVM(points) {
		found := false
		for _, p := range g.Points {
			if op == "" || p.Allows(op) {
				chosen = append(chosen, p)
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, g.VM)
		}
	}
	return chosen, missing
}

// LatestPerVM is each VM's newest point time within one replica (the VM's
// recovery point), and the oldest of those: the replica's recovery point.
func LatestPerVM(points []veeam.ReplicaPoint) (perVM map[string]veeam.ReplicaPoint, oldest veeam.ReplicaPoint) {
	perVM = map[string]veeam.ReplicaPoint{}
	for _, g := range PointsByVM(points) {
		p := g.Points[0]
		perVM[g.VM] = p
		if oldest.ID == "" || p.CreationTime.Before(oldest.CreationTime) {
			oldest = p
		}
	}
	return perVM, oldest
}
