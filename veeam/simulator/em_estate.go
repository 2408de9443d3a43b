package simulator

// The Enterprise Manager estate: what the fake EM knows, generated
// deterministically from Options.Seed.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
)

// EMOptions size the Enterprise Manager estate. Zero fields take the
// defaults (10 plans × 4 VMs, 40 cloud failover sessions, 2 CDP replicas ×
// 3 VMs); a negative field means none.
type EMOptions struct {
	Plans            int
	VMsPerPlan       int
	CloudSessions    int
	CdpReplicas      int
	VMsPerCdpReplica int

	// TasksFinishAtSubmission makes plan start and undo tasks Finished
	// with "Ok" as soon as they are created: EM confirms the request, not
	// the failover [C: EMDOC]; how soon a real task finishes is [?].
	TasksFinishAtSubmission bool
}

func (o EMOptions) sized() EMOptions {
	def := func(v, d int) int {
		switch {
		case v == 0:
			return d
		case v < 0:
			return 0
		}
		return v
	}
	return EMOptions{
		Plans:            def(o.Plans, 10),
		VMsPerPlan:       def(o.VMsPerPlan, 4),
		CloudSessions:    def(o.CloudSessions, 40),
		CdpReplicas:      def(o.CdpReplicas, 2),
		VMsPerCdpReplica: def(o.VMsPerCdpReplica, 3),
	}
}

// EMEstate is the truth of the Enterprise Manager API. Ids are bare
// lower-case UUIDs (the API wraps them as urn:veeam:<Type>:<uuid>).
type EMEstate struct {
	Plans []EMPlan
	// CloudSessions holds every cloud failover session, also those older
	// than the 30 days the API returns, oldest first.
	CloudSessions []EMCloudSession
	CdpReplicas   []EMCdpReplica
	// Tasks are the tasks of all logon sessions that were not deleted, with
	// their state as of now.
	Tasks []EMTask
}

// EMPlan is an on-premises failover plan as EM reports it. EM has no status
// on plans.
type EMPlan struct {
	UID, Name, Description, BackupServerUID string
	VMs                                     []EMFailoveredVM
}

// EMFailoveredVM is a VM in a failover plan.
type EMFailoveredVM struct {
	ID, Name string
	Order    int
}

// EMCloudSession is a cloud failover session.
type EMCloudSession struct {
	UID, Name, BackupServerUID string
	// State is Starting|Stopping|Working|Stopped.
	State string
	// Result is Success|Warning|Failed, or None while the session runs.
	Result          string
	Progress        int
	CreationTimeUTC time.Time
	EndTimeUTC      *time.Time
	FailureMessage  string
}

// EMCdpReplica is a CDP replica (named after its CDP policy) and its VMs.
type EMCdpReplica struct {
	UID, Name string
	VMs       []EMCdpVM
}

// EMCdpVM is a VM of a CDP replica.
type EMCdpVM struct {
	UID, Name string
}

// EMTask is an EM task (plan start/undo, CDP failover).
type EMTask struct {
	// TaskID is task-N.
	TaskID string
	// State is Running|OperationFinished|Finished.
	State     string
	Operation string
	// Success is nil until the task has a Result.
	Success *bool
	Message string
	// PlanUID is the plan of a start/undo task, "" for CDP failovers.
	PlanUID string
}

// emSeedStream separates the EM random streams from the other APIs'.
const emSeedStream = 0x454d5f53494d // "EM_SIM"

// Per-part streams, so that resizing one part leaves the others unchanged.
const (
	emStreamServers = iota + 1
	emStreamPlans
	emStreamSessions
	emStreamCdp
)

func emRand(seed int64, part uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), emSeedStream<<8|part))
}

// emUUID draws a version-4 UUID.
func emUUID(r *rand.Rand) string {
	hi, lo := r.Uint64(), r.Uint64()
	hi = hi&^(0xf<<12) | 0x4<<12
	lo = lo&^(0x3<<62) | 0x2<<62
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

type emServerRec struct {
	uid, name, vcUUID string
	repoUID, repoName string
}

type emPlanVMRec struct {
	id, name, ref string
	order         int
}

type emPlanRec struct {
	uid, name, desc string
	server          int
	vms             []emPlanVMRec
}

type emCdpVMRec struct{ uid, name, ref string }

type emCdpRec struct {
	uid, name, policyUID string
	server               int
	vms                  []emCdpVMRec
}

// emSessionRec is a cloud failover session. Its task sessions are not
// stored: they are drawn from seed when rendered, so that large estates
// stay small in memory.
type emSessionRec struct {
	uid, name string
	server    int
	created   time.Time
	end       *time.Time
	state     string
	result    string
	progress  int
	failure   string
	vmCount   int
	seed      uint64
}

var (
	emAppNames = []string{"SQL", "Exchange", "Web tier", "File servers", "ERP", "CRM",
		"Domain controllers", "Billing", "Intranet", "Mail relay", "Print", "VDI"}
	emVMPrefixes = []string{"sql", "exch", "web", "fs", "erp", "crm", "dc", "bill", "intra", "relay", "print", "vdi"}
	emTenants    = []string{"ABC Company", "QWE Systems", "Contoso", "Fabrikam", "Northwind Traders",
		"Tailspin Toys", "Wide World Importers", "Adventure Works", "Litware", "Proseware",
		"Humongous Insurance", "Coho Winery"}
	emFailures = []string{
		"Error: Failed to process replica VM %s: cannot find a valid restore point",
		"Error: Failed to power on VM %s: insufficient resources on the cloud host",
		"Error: Network extension appliance is not available",
		"Error: Connection to the cloud gateway was lost while processing VM %s",
	}
	emWarnings = []string{
		"Warning: Guest OS heartbeat of VM %s was not received within the timeout",
		"Warning: VM %s was processed with warnings: network re-IP skipped",
	}
)

// emNumbered gives the i-th name of a pool, numbering repeats past its end.
func emNumbered(pool []string, i int, suffix string) string {
	n := pool[i%len(pool)] + suffix
	if k := i / len(pool); k > 0 {
		n += fmt.Sprintf(" %d", k+1)
	}
	return n
}

func emFormat(msg, vm string) string {
	if strings.Contains(msg, "%s") {
		return fmt.Sprintf(msg, vm)
	}
	return msg
}

// generate builds the estate. base is the clock at start: session times are
// spread over the 35 days before it.
func (a *emAPI) generate(seed int64, o EMOptions, base time.Time) {
	r := emRand(seed, emStreamServers)
	for i := range 2 {
		a.servers = append(a.servers, emServerRec{
			uid:      emUUID(r),
			name:     fmt.Sprintf("vbr%02d.sim.local", i+1),
			vcUUID:   emUUID(r),
			repoUID:  emUUID(r),
			repoName: "Default Backup Repository",
		})
	}

	r = emRand(seed, emStreamPlans)
	vmSeq := 100
	for i := range o.Plans {
		p := &emPlanRec{
			uid:    emUUID(r),
			name:   emNumbered(emAppNames, i, " Failover Plan"),
			server: i % len(a.servers),
		}
		created := base.Add(-time.Duration(30+r.IntN(700)) * 24 * time.Hour).Add(time.Duration(r.IntN(86400)) * time.Second)
		// VBR's default description of objects created in the console.
		p.desc = "Created by SIM\\administrator at " + created.UTC().Format("1/2/2006 3:04 PM") + "."
		prefix := emVMPrefixes[i%len(emVMPrefixes)]
		for j := range o.VMsPerPlan {
			vmSeq++
			name := fmt.Sprintf("%s-%02d", prefix, i/len(emVMPrefixes)*o.VMsPerPlan+j+1)
			p.vms = append(p.vms, emPlanVMRec{
				id:    emUUID(r),
				name:  name,
				ref:   fmt.Sprintf("urn:VMware:Vm:%s.vm-%d", a.servers[p.server].vcUUID, vmSeq),
				order: j + 1,
			})
		}
		a.plans = append(a.plans, p)
		a.planByID[p.uid] = p
	}

	r = emRand(seed, emStreamCdp)
	for i := range o.CdpReplicas {
		c := &emCdpRec{
			uid:       emUUID(r),
			policyUID: emUUID(r),
			name:      fmt.Sprintf("CDP Policy %d", i+1),
			server:    i % len(a.servers),
		}
		for j := range o.VMsPerCdpReplica {
			vmSeq++
			c.vms = append(c.vms, emCdpVMRec{
				uid:  emUUID(r),
				name: fmt.Sprintf("cdp%02d-vm%02d", i+1, j+1),
				ref:  fmt.Sprintf("urn:VMware:Vm:%s.vm-%d", a.servers[c.server].vcUUID, vmSeq),
			})
		}
		a.cdps = append(a.cdps, c)
		a.cdpByID[c.uid] = c
	}

	r = emRand(seed, emStreamSessions)
	cloudPlans := max(1, o.CloudSessions/4)
	const window = 35 * 24 * time.Hour
	for range o.CloudSessions {
		s := &emSessionRec{
			uid:     emUUID(r),
			vmCount: 1 + r.IntN(4),
			seed:    r.Uint64(),
		}
		plan := r.IntN(cloudPlans)
		s.name = emNumbered(emTenants, plan, " Failover Plan")
		s.server = plan % len(a.servers)
		vm := emVMName(s.seed, 0)
		x := r.Float64()
		if x < 0.04 {
			// A few sessions still run; they started recently.
			s.created = base.Add(-time.Duration(60+r.IntN(2*3600)) * time.Second)
			s.state, s.result, s.progress = "Working", "None", r.IntN(95)
		} else {
			s.created = base.Add(-time.Duration(r.Int64N(int64(window/time.Second))) * time.Second)
			end := s.created.Add(time.Duration(60+r.IntN(1800)) * time.Second)
			s.end = &end
			s.state, s.progress = "Stopped", 100
			switch {
			case x < 0.86:
				s.result = "Success"
			case x < 0.93:
				s.result = "Warning"
				s.failure = emFormat(emWarnings[r.IntN(len(emWarnings))], vm)
			default:
				s.result = "Failed"
				s.failure = emFormat(emFailures[r.IntN(len(emFailures))], vm)
			}
		}
		s.created = emUTCms(s.created)
		if s.end != nil {
			e := emUTCms(*s.end)
			s.end = &e
		}
		a.sessions = append(a.sessions, s)
		a.sessionByID[s.uid] = s
	}
	sort.SliceStable(a.sessions, func(i, j int) bool { return a.sessions[i].created.Before(a.sessions[j].created) })
	// An estate of some size has a session running, so that what is
	// exported only while one runs (its progress) is there to see: if
	// chance started none, the newest still runs.
	if n := len(a.sessions); n >= 20 && !slices.ContainsFunc(a.sessions, func(s *emSessionRec) bool { return s.end == nil }) {
		s := a.sessions[n-1]
		s.end, s.state, s.result, s.progress, s.failure = nil, "Working", "None", 40, ""
		if started := emUTCms(base.Add(-20 * time.Minute)); s.created.Before(started) {
			s.created = started
		}
	}
}

// emUTCms is t in UTC at millisecond precision, as EM prints times.
func emUTCms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// emVMName is the name of the i-th VM of a cloud failover session.
func emVMName(seed uint64, i int) string {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	return fmt.Sprintf("%s%02d", emVMPrefixes[r.IntN(len(emVMPrefixes))], 1+r.IntN(40))
}

// insertSession keeps a.sessions sorted by creation time.
func (a *emAPI) insertSession(s *emSessionRec) {
	i := sort.Search(len(a.sessions), func(i int) bool { return a.sessions[i].created.After(s.created) })
	a.sessions = append(a.sessions, nil)
	copy(a.sessions[i+1:], a.sessions[i:])
	a.sessions[i] = s
	a.sessionByID[s.uid] = s
}

// estate returns a deep copy of the truth, tasks as of now.
func (a *emAPI) estate() EMEstate {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	var e EMEstate
	for _, p := range a.plans {
		ep := EMPlan{UID: p.uid, Name: p.name, Description: p.desc, BackupServerUID: a.servers[p.server].uid}
		for _, v := range p.vms {
			ep.VMs = append(ep.VMs, EMFailoveredVM{ID: v.id, Name: v.name, Order: v.order})
		}
		e.Plans = append(e.Plans, ep)
	}
	for _, s := range a.sessions {
		es := EMCloudSession{
			UID: s.uid, Name: s.name, BackupServerUID: a.servers[s.server].uid,
			State: s.state, Result: s.result, Progress: s.progress,
			CreationTimeUTC: s.created, FailureMessage: s.failure,
		}
		if s.end != nil {
			t := *s.end
			es.EndTimeUTC = &t
		}
		e.CloudSessions = append(e.CloudSessions, es)
	}
	for _, c := range a.cdps {
		ec := EMCdpReplica{UID: c.uid, Name: c.name}
		for _, v := range c.vms {
			ec.VMs = append(ec.VMs, EMCdpVM{UID: v.uid, Name: v.name})
		}
		e.CdpReplicas = append(e.CdpReplicas, ec)
	}
	for _, num := range a.taskOrder() {
		t := a.tasks[num-1]
		state, res := t.at(now)
		et := EMTask{TaskID: t.id(), State: state, Operation: t.op, PlanUID: t.planUID}
		if res != nil {
			ok := res.Success
			et.Success, et.Message = &ok, res.Message
		}
		e.Tasks = append(e.Tasks, et)
	}
	return e
}
