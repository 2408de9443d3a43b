package simulator

import (
	"bytes"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"time"
)

// Protected workloads: GET /api/v3/protectedWorkloads/virtualMachines/backups
// (ProtectedVirtualMachineBackup, one item per backup chain of a VM [C:
// PYSPC]). It is where a plan VM's recovery point is: the newest restore
// point of its Replication chain (veeam-api.md §6.1). Every plan VM also has
// a Backup chain with a newer point, so a reader that forgets to filter on
// backupType gets dates that are too recent. Some VMs have a second, older
// Replication chain from another job of the same backup server, and some are
// also replicated by another backup server with a newer point: a reader that
// keys points by VM alone reports a replica the plan does not fail over to.

// VSPCBackup mirrors ProtectedVirtualMachineBackup (the fields kept).
type VSPCBackup struct {
	InstanceUID, VirtualMachineUID, JobUID, BackupServerUID string
	// BackupType is Backup, BackupCopy or Replication.
	BackupType             string
	LatestRestorePointDate *time.Time
	RestorePoints          int
}

type vspcBackup struct {
	uid, vm, job, server, repo uid
	typ                        string
	latest                     time.Time // zero = null
	points                     int
	size                       int64
}

// generateBackups draws the chains from their own random stream, so that
// the plans and objects stay what they were for a given seed.
func (a *vspcAPI) generateBackups() {
	r := mrand.New(mrand.NewPCG(uint64(a.o.Seed), 0x5653504300000002))
	draw := func() uid { return drawUID(r) }
	ago := func(lo, hi time.Duration) time.Duration {
		l, h := math.Log(float64(lo)), math.Log(float64(hi))
		return time.Duration(math.Exp(l + r.Float64()*(h-l))).Truncate(time.Second)
	}
	now := a.o.Now().UTC().Truncate(time.Second)
	// Chains on other backup servers come from a stream of their own, so
	// that the others stay what they were for a given seed.
	other := mrand.New(mrand.NewPCG(uint64(a.o.Seed), 0x5653504300000003))
	otherEvery := a.o.VSPC.OtherServerReplicaEvery
	if otherEvery == 0 {
		otherEvery = 8
	}
	// The other server is another server of the plans, or one outside
	// them when the plans have a single one.
	servers := []uid{drawUID(other)}
	for _, p := range a.plans {
		if !slices.ContainsFunc(servers, func(s uid) bool { return s.b == p.serverUID.b }) {
			servers = append(servers, p.serverUID)
		}
	}
	otherJobs := map[[16]byte]uid{} // by server: one replication job each
	jobs := map[*vspcPlan][3]uid{}
	var out []*vspcBackup
	for _, o := range a.objects {
		p := o.plan
		j, ok := jobs[p]
		if !ok {
			j = [3]uid{draw(), draw(), draw()}
			jobs[p] = j
		}
		vm := o.uid
		vm.upper = r.IntN(2) == 0 // the same UID, spelt either way
		chain := func(typ string, job uid, latest time.Time) {
			out = append(out, &vspcBackup{uid: draw(), vm: vm, job: job, server: p.serverUID, repo: draw(),
				typ: typ, latest: latest, points: 1 + r.IntN(14), size: int64(1+r.IntN(400)) << 30})
		}
		// Some VMs have no replica yet: they cannot fail over.
		every := a.o.VSPC.NoReplicaEvery
		if every == 0 {
			every = 12
		}
		if every < 0 || r.IntN(every) != 0 {
			chain("Replication", j[0], now.Add(-ago(15*time.Minute, 3*24*time.Hour)))
			if r.IntN(15) == 0 {
				// A second replication job for the same VM, older.
				chain("Replication", j[2], now.Add(-ago(4*24*time.Hour, 9*24*time.Hour)))
			}
		}
		if otherEvery > 0 && other.IntN(otherEvery) == 0 {
			// The same VM replicated by another backup server, fresher
			// than any replica of its own server.
			srv := servers[other.IntN(len(servers))]
			if srv.b == p.serverUID.b {
				srv = servers[0]
			}
			job, ok := otherJobs[srv.b]
			if !ok {
				job = drawUID(other)
				otherJobs[srv.b] = job
			}
			ovm := vm
			ovm.upper = other.IntN(2) == 0
			out = append(out, &vspcBackup{uid: drawUID(other), vm: ovm, job: job, server: srv, repo: drawUID(other),
				typ: "Replication", latest: now.Add(-time.Duration(1+other.IntN(9)) * time.Minute), points: 1 + other.IntN(14), size: int64(1+other.IntN(400)) << 30})
		}
		chain("Backup", j[1], now.Add(-ago(time.Minute, 10*time.Minute)))
		if r.IntN(4) == 0 {
			chain("BackupCopy", draw(), now.Add(-ago(time.Minute, 12*time.Minute)))
		}
	}
	r.Shuffle(len(out), func(i, k int) { out[i], out[k] = out[k], out[i] })
	a.backups = out
	a.backupProps = vspcBackupProps()
}

// drawUID draws a random (version 4) UUID from r; about one in five is
// emitted upper-case.
func drawUID(r *mrand.Rand) uid {
	var u uid
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			u.b[i+j] = byte(v >> (8 * j))
		}
	}
	u.b[6] = u.b[6]&0x0f | 0x40
	u.b[8] = u.b[8]&0x3f | 0x80
	u.upper = r.IntN(5) == 0
	return u
}

func vspcBackupProps() propTable[*vspcBackup] {
	type B = *vspcBackup
	return newPropTable(
		propDef[B]{"instanceUid", kUID, func(b B) vval { return uv(b.uid) }},
		propDef[B]{"virtualMachineUid", kUID, func(b B) vval { return uv(b.vm) }},
		propDef[B]{"jobUid", kUID, func(b B) vval { return uv(b.job) }},
		propDef[B]{"backupServerUid", kUID, func(b B) vval { return uv(b.server) }},
		propDef[B]{"backupType", kString, func(b B) vval { return sv(b.typ) }},
		propDef[B]{"repositoryUid", kUID, func(b B) vval { return uv(b.repo) }},
		propDef[B]{"restorePoints", kInt, func(b B) vval { return iv(b.points) }},
		propDef[B]{"latestRestorePointDate", kTime, func(b B) vval { return tv(b.latest) }},
		propDef[B]{"targetType", kString, func(b B) vval { return sv("Local") }},
	)
}

func (a *vspcAPI) writeBackup(b *bytes.Buffer, bk *vspcBackup, sel *selection) {
	o := openObject(b, sel)
	o.uid("instanceUid", bk.uid)
	o.uid("virtualMachineUid", bk.vm)
	o.uid("jobUid", bk.job)
	o.uid("backupServerUid", bk.server)
	o.str("backupType", bk.typ)
	o.uid("repositoryUid", bk.repo)
	o.int("totalRestorePointSize", int(bk.size))
	o.int("latestRestorePointSize", int(bk.size/int64(bk.points)))
	o.int("restorePoints", bk.points)
	o.time("latestRestorePointDate", bk.latest)
	o.str("targetType", "Local")
	o.str("malwareState", "Clean")
	o.null("targetLocationTier")
	no := false
	o.boolp("immutable", &no)
	o.close()
}

func (a *vspcAPI) listBackups(req *vspcRequest) vspcResp {
	lq, err := parseListQuery(req.q, a.backupProps)
	if err != nil {
		return queryErr(err)
	}
	items := a.backups
	if raw, _ := req.q.get("filter"); lq.filter != nil {
		if v, ok := a.backupsMatching.Load(raw); ok {
			items = v.([]*vspcBackup)
		} else {
			items = nil
			for _, b := range a.backups {
				if lq.filter(b) {
					items = append(items, b)
				}
			}
			a.backupsMatching.Store(raw, items)
		}
		lq.filter = nil
	}
	page, total := lq.page(items)
	var b bytes.Buffer
	writeCollection(&b, page, total, lq.offset, func(b *bytes.Buffer, bk *vspcBackup) { a.writeBackup(b, bk, lq.sel) })
	return vspcResp{status: http.StatusOK, body: b.Bytes()}
}

func (a *vspcAPI) backupsEstate() []VSPCBackup {
	out := make([]VSPCBackup, len(a.backups))
	for i, b := range a.backups {
		out[i] = VSPCBackup{
			InstanceUID: b.uid.String(), VirtualMachineUID: b.vm.String(), JobUID: b.job.String(),
			BackupServerUID: b.server.String(), BackupType: b.typ, LatestRestorePointDate: timePtr(b.latest),
			RestorePoints: b.points,
		}
	}
	return out
}
