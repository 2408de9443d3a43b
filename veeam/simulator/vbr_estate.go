package simulator

// The B&R estate: generation from the seed, the replica state machine and
// the lazy progression of failover sessions.

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// vbrReplicaStates is EReplicaState, identical in all four revisions [C].
var vbrReplicaStates = []string{"Ready", "Processing", "SureBackup", "Failover", "FailedFailover", "PermanentFailover", "Failback", "ReadyToSwitch"}

// Operation names (EObjectRestorePointOperation) [C].
const (
	vbrOpFailover          = "StartViVMSnapshotReplicaFailover"
	vbrOpPlannedFailover   = "StartViVMSnapshotReplicaPlannedFailover"
	vbrOpPermanentFailover = "StartViVMSnapshotReplicaPermanentFailover"
	vbrOpUndoFailover      = "StartViVMSnapshotReplicaUndoFailover"
	vbrOpFailback          = "StartViVMSnapshotReplicaFailback"
	vbrOpFlrRestore        = "StartFlrRestore"
)

// vbrAllowedOperations maps a replica state to the operations its points
// advertise. Ready is the [C] example (["StartViVMSnapshotReplicaFailover",
// "StartViVMSnapshotReplicaPlannedFailover","StartFlrRestore"]): permanent
// failover is not offered there, as in the product, where a permanent
// failover commits a replica that is already failed over. The other rows
// are [I]. A point's operations are its replica's: any point of a Ready
// replica can be failed over (the product allows any point) and any point
// of a failed-over replica can be used to undo.
func vbrAllowedOperations(state string) []string {
	switch state {
	case "Ready":
		return []string{vbrOpFailover, vbrOpPlannedFailover, vbrOpFlrRestore}
	case "Failover":
		return []string{vbrOpUndoFailover, vbrOpPermanentFailover, vbrOpFailback}
	case "FailedFailover":
		return []string{vbrOpFailover, vbrOpUndoFailover}
	case "SureBackup":
		return []string{vbrOpFlrRestore}
	case "Failback":
		return []string{"StartViVMSnapshotReplicaUndoFailback", "StartViVMSnapshotReplicaCommitFailback"}
	case "ReadyToSwitch":
		return []string{"StartViVMSnapshotReplicaSwitchToProductionFailback", "ChangeReplicaFailbackSwitchoverTime"}
	default: // Processing (a job or failover is running), PermanentFailover
		return []string{}
	}
}

// vbrKind is one of the four failover operations [C: §1.5].
type vbrKind struct {
	path        string
	sessionType string
	operation   string
}

var vbrKinds = []vbrKind{
	{"failoverNow", "Failover", vbrOpFailover},
	{"plannedFailover", "PlannedFailover", vbrOpPlannedFailover},
	{"permanentFailover", "PermanentFailover", vbrOpPermanentFailover},
	{"undoFailover", "UndoFailover", vbrOpUndoFailover},
}

func vbrKindByPath(p string) (vbrKind, bool) {
	for _, k := range vbrKinds {
		if k.path == p {
			return k, true
		}
	}
	return vbrKind{}, false
}

// finalState is the replica state after a session of this kind ends.
// Success and Warning: failover and planned failover → Failover, permanent
// → PermanentFailover, undo → Ready. Failed: failover and planned failover
// → FailedFailover; a failed permanent failover or undo leaves the replica
// as it was [I].
func (k vbrKind) finalState(result, prev string) string {
	if result == "Failed" {
		if k.path == "failoverNow" || k.path == "plannedFailover" {
			return "FailedFailover"
		}
		return prev
	}
	switch k.path {
	case "permanentFailover":
		return "PermanentFailover"
	case "undoFailover":
		return "Ready"
	default:
		return "Failover"
	}
}

type vbrReplica struct {
	VBRReplica
	points []*VBRReplicaPoint // newest first
}

type vbrSession struct {
	VBRSession
	// The fields below are set for sessions started through the API.
	kind       vbrKind
	replica    *vbrReplica
	prevState  string
	outcome    string
	start, due time.Time
	resourceID string
}

func vbrUUID(rng *mrand.Rand) string {
	var b uuid.UUID
	for i := range 2 {
		v := rng.Uint64()
		for j := range 8 {
			b[i*8+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return b.String()
}

var vbrVMPrefixes = []string{"apache", "web", "sql", "dc", "fileserver", "exch", "app", "ubuntu", "k8s-node", "erp", "mail", "db"}

// generate builds a deterministic estate: replicas grouped into replication
// jobs of 1–8 VMs, PointsPerReplica points each (newest minutes to hours old,
// older ones one job interval apart, so days back), ReplicaJob session
// history per job, and failover history for replicas that are not Ready.
// Mix: ~86% Ready, 5% Processing, 5% Failover, 3% FailedFailover, 1%
// PermanentFailover; estates of 10 or more replicas hold at least one
// Processing, Failover and FailedFailover replica.
func (a *vbrAPI) generate(now time.Time) {
	rng := a.rng
	n, ppr := a.o.VBR.Replicas, a.o.VBR.PointsPerReplica
	if n <= 0 {
		n = 20
	}
	if ppr <= 0 {
		ppr = 3
	}
	a.replicas = make([]*vbrReplica, 0, n)
	a.points = make([]*VBRReplicaPoint, 0, n*ppr)
	intervals := []time.Duration{4 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	type job struct {
		id, name      string
		interval      time.Duration
		last          time.Time
		replicas      []*vbrReplica
		hasProcessing bool
	}
	var jobs []*job
	for i := 0; i < n; {
		j := &job{
			id:       vbrUUID(rng),
			name:     fmt.Sprintf("Replication Job %d", len(jobs)+1),
			interval: intervals[rng.IntN(len(intervals))],
		}
		j.last = now.Add(-time.Duration(5+rng.IntN(int(j.interval/time.Minute)-5)) * time.Minute)
		size := 1 + rng.IntN(8)
		multi := a.o.VBR.MultiVMReplicas
		if multi {
			size = 2 + rng.IntN(3)
		}
		var jobReplica *vbrReplica
		for k := 0; k < size && i < n; k, i = k+1, i+1 {
			vm := fmt.Sprintf("%s%02d", vbrVMPrefixes[rng.IntN(len(vbrVMPrefixes))], i+1)
			r := jobReplica
			if r == nil {
				r = &vbrReplica{VBRReplica: VBRReplica{
					ID:             vbrUUID(rng),
					Name:           vm + "_replica",
					Type:           "Regular",
					State:          vbrPickState(rng),
					JobID:          j.id,
					PlatformName:   "VMware",
					PlatformID:     vbrZeroUUID,
					PolicyUniqueID: vbrUUID(rng),
					CreationTime:   j.last.Add(-time.Duration(ppr+rng.IntN(60)) * j.interval),
				}}
				if multi {
					r.Name = j.name
					jobReplica = r
				}
				a.replicas = append(a.replicas, r)
				a.replicaBy[r.ID] = r
				j.replicas = append(j.replicas, r)
			}
			for p := range ppr {
				pt := &VBRReplicaPoint{
					ID:            vbrUUID(rng),
					Name:          vm,
					ReplicaID:     r.ID,
					PlatformName:  "VMware",
					PlatformID:    vbrZeroUUID,
					CreationTime:  j.last.Add(-time.Duration(p)*j.interval + time.Duration(rng.IntN(120))*time.Second),
					MalwareStatus: "Clean",
				}
				if rng.IntN(200) == 0 {
					pt.MalwareStatus = "Suspicious"
				}
				r.points = append(r.points, pt)
				a.points = append(a.points, pt)
				a.pointBy[pt.ID] = pt
			}
		}
		jobs = append(jobs, j)
	}
	if len(a.replicas) >= 10 {
		for _, st := range []string{"Processing", "Failover", "FailedFailover"} {
			if !slices.ContainsFunc(a.replicas, func(r *vbrReplica) bool { return r.State == st }) {
				for {
					r := a.replicas[rng.IntN(len(a.replicas))]
					if r.State == "Ready" {
						r.State = st
						break
					}
				}
			}
		}
	}
	for _, r := range a.replicas {
		a.setReplicaStateLocked(r, r.State)
	}

	add := func(s VBRSession) {
		ss := &vbrSession{VBRSession: s}
		a.sessions = append(a.sessions, ss)
		a.sessionBy[ss.ID] = ss
	}
	ended := func(t time.Time) *time.Time { return &t }
	for _, j := range jobs {
		for _, r := range j.replicas {
			j.hasProcessing = j.hasProcessing || r.State == "Processing"
		}
		for run := 2; run >= 0; run-- {
			start := j.last.Add(-time.Duration(run) * j.interval).Add(-time.Duration(2+rng.IntN(10)) * time.Minute)
			res, msg := "Success", "Success"
			switch x := rng.IntN(20); {
			case x == 0:
				res, msg = "Failed", fmt.Sprintf("Processing %s Error: Failed to create VM snapshot", j.replicas[0].points[0].Name)
			case x <= 2:
				res, msg = "Warning", "Job finished with warning: Unable to truncate transaction logs"
			}
			add(VBRSession{
				ID: vbrUUID(rng), Name: j.name, JobID: j.id, SessionType: "ReplicaJob",
				State: "Stopped", Result: res, Message: msg, ProgressPercent: 100,
				CreationTime: start, EndTime: ended(start.Add(time.Duration(2+rng.IntN(30)) * time.Minute)),
				InitiatedBy: "NT AUTHORITY\\SYSTEM",
			})
		}
		if j.hasProcessing {
			add(VBRSession{
				ID: vbrUUID(rng), Name: j.name, JobID: j.id, SessionType: "ReplicaJob",
				State: "Working", ProgressPercent: 5 + rng.IntN(90),
				CreationTime: now.Add(-time.Duration(1+rng.IntN(30)) * time.Minute),
				InitiatedBy:  "NT AUTHORITY\\SYSTEM",
			})
		}
	}
	for _, r := range a.replicas {
		vm := r.points[0].Name
		start := now.Add(-time.Duration(30+rng.IntN(72*60)) * time.Minute)
		s := VBRSession{
			ID: vbrUUID(rng), Name: vm, JobID: vbrUUID(rng), SessionType: "Failover",
			State: "Stopped", ProgressPercent: 100, Result: "Success", Message: "Success",
			CreationTime: start, EndTime: ended(start.Add(time.Duration(3+rng.IntN(15)) * time.Minute)),
			InitiatedBy: a.o.Username,
		}
		switch r.State {
		case "Failover":
			if rng.IntN(2) == 0 {
				s.SessionType = "PlannedFailover"
			}
		case "FailedFailover":
			s.Result, s.Message = "Failed", fmt.Sprintf("Failed to perform failover: Unable to power on VM %s_replica: insufficient resources on the target host", vm)
		case "PermanentFailover":
			s.SessionType = "PermanentFailover"
		default:
			continue
		}
		add(s)
	}
	sort.SliceStable(a.sessions, func(i, j int) bool {
		return a.sessions[i].CreationTime.Before(a.sessions[j].CreationTime)
	})
}

func vbrPickState(rng *mrand.Rand) string {
	switch x := rng.IntN(100); {
	case x < 86:
		return "Ready"
	case x < 91:
		return "Processing"
	case x < 96:
		return "Failover"
	case x < 99:
		return "FailedFailover"
	default:
		return "PermanentFailover"
	}
}

// setReplicaStateLocked sets a replica's state and its points' state and
// allowedOperations.
func (a *vbrAPI) setReplicaStateLocked(r *vbrReplica, state string) {
	r.State = state
	for _, p := range r.points {
		p.State = state
		p.AllowedOperations = vbrAllowedOperations(state)
	}
}

// startLocked creates a session for one point. While it runs the replica is
// Processing with no operations allowed [I], so a second failover of the
// same replica is refused until the first ends.
func (a *vbrAPI) startLocked(k vbrKind, p *VBRReplicaPoint, now time.Time) *vbrSession {
	r := a.replicaBy[p.ReplicaID]
	a.usn++
	s := &vbrSession{
		VBRSession: VBRSession{
			ID:           vbrUUID(a.rng),
			Name:         p.Name, // the VM name [C: example]
			JobID:        vbrUUID(a.rng),
			SessionType:  k.sessionType,
			State:        "Starting",
			CreationTime: now,
			InitiatedBy:  a.o.Username,
			USN:          a.usn,
		},
		kind:      k,
		replica:   r,
		prevState: r.State,
		outcome:   a.outcome,
		start:     now,
		due:       now.Add(a.actionDuration()),
	}
	a.sessions = append(a.sessions, s)
	a.sessionBy[s.ID] = s
	a.running = append(a.running, s)
	return s
}

// advanceLocked moves running sessions along the clock: Starting for the
// first fifth of ActionDuration, then Working with a growing percentage,
// then Stopped at start+ActionDuration with the outcome, and the replica in
// its final state. While hang is set no session stops.
func (a *vbrAPI) advanceLocked(now time.Time) {
	if len(a.running) == 0 {
		return
	}
	keep := a.running[:0]
	for _, s := range a.running {
		d := s.due.Sub(s.start)
		el := now.Sub(s.start)
		switch {
		case !a.hang && !now.Before(s.due):
			a.finishLocked(s)
			continue
		case el < d/5:
			// still Starting
		default:
			pct := 99
			if d > 0 {
				pct = min(99, int(el*100/d))
			}
			if s.State != "Working" || s.ProgressPercent != pct {
				a.usn++
				s.USN = a.usn
			}
			s.State, s.ProgressPercent = "Working", pct
		}
		keep = append(keep, s)
	}
	clear(a.running[len(keep):])
	a.running = keep
}

func (a *vbrAPI) finishLocked(s *vbrSession) {
	end := s.due
	a.usn++
	s.State, s.ProgressPercent, s.EndTime, s.USN = "Stopped", 100, &end, a.usn
	s.Result = s.outcome
	vm := s.replica.points[0].Name
	switch s.outcome {
	case "Success":
		s.Message = "Success"
	case "Warning":
		s.Message = fmt.Sprintf("%s finished with warning: VMware Tools are not responding on %s_replica", s.kind.sessionType, vm)
	default:
		s.Message = fmt.Sprintf("Failed to perform %s: Unable to power on VM %s_replica: insufficient resources on the target host",
			strings.ToLower(s.kind.sessionType), vm)
	}
	// The 1.3-rev2 completed example has resourceId = the session id [C].
	s.resourceID = s.ID
	a.setReplicaStateLocked(s.replica, s.kind.finalState(s.outcome, s.prevState))
}

// estate returns a deep copy of the truth at Options.Now.
func (a *vbrAPI) estate() VBREstate {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.advanceLocked(a.now())
	e := VBREstate{
		Replicas: make([]VBRReplica, len(a.replicas)),
		Points:   make([]VBRReplicaPoint, len(a.points)),
		Sessions: make([]VBRSession, len(a.sessions)),
	}
	for i, r := range a.replicas {
		e.Replicas[i] = r.VBRReplica
	}
	for i, p := range a.points {
		e.Points[i] = *p
		e.Points[i].AllowedOperations = slices.Clone(p.AllowedOperations)
	}
	for i, s := range a.sessions {
		e.Sessions[i] = s.VBRSession
		if s.EndTime != nil {
			t := *s.EndTime
			e.Sessions[i].EndTime = &t
		}
	}
	return e
}
