package simulator

// The Veeam Service Provider Console REST API v3 (veeam-api.md §3): OAuth2
// token and API keys, the nine failover-plan endpoints, asynchronous actions,
// X-Request-id idempotency and X-Client-Version. Plan start and undo run a
// state machine that is advanced lazily from Options.Now on every request,
// so that it needs no goroutines and follows a fake clock.

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// VSPCOptions size the VSPC estate. Zero fields take the defaults: 20 plans
// of 5 objects over 3 backup servers.
type VSPCOptions struct {
	Plans          int
	ObjectsPerPlan int
	BackupServers  int

	// NoReplicaEvery: about one plan VM in this many has no Replication
	// chain (no recovery point). 0 means 12; negative means none.
	NoReplicaEvery int
	// OtherServerReplicaEvery: about one plan VM in this many is also
	// replicated by another backup server (a second DR site), with a newer
	// point than any of its own; the VM's plan, on its own server, cannot
	// fail over to that replica. 0 means 8; negative means none.
	OtherServerReplicaEvery int
	// NeverRunSessionFields: objects of plans that never ran carry a
	// restoreSession whose fields are null, instead of restoreSession: null
	// (the default, [I, strong]); which one VSPC sends is [?].
	NeverRunSessionFields bool
	// AsyncSuccessRetention and AsyncFailureRetention are how long an async
	// action and its result stay readable after it ended; then GET
	// /asyncActions/{id} answers 404 [C: 5 minutes and 1 hour; the 404 is
	// [I]]. 0 means those defaults.
	AsyncSuccessRetention, AsyncFailureRetention time.Duration
	// AsyncReads answers every GET under /infrastructure and
	// /protectedWorkloads with 202 and the Location of an async action
	// holding the real answer (allowed by the spec [C], rare [I]).
	AsyncReads bool
	// RefuseTestOnLocal answers start?test=true on a Local plan with 400:
	// only cloud failover plans can be tested [C: VSPCUG], but what the REST
	// API does with test=true on a Local plan is [?]. Off, it runs like a
	// normal start.
	RefuseTestOnLocal bool
	// MFA makes the password grant answer with an mfa_token and no
	// access_token, as for a user with multi-factor authentication [C].
	MFA bool
}

// VSPCEstate is the truth of the VSPC API, in the stable default order of
// its collections.
type VSPCEstate struct {
	Plans   []VSPCPlan
	Objects []VSPCPlanObject
	// Backups are the protected VMs' backup chains, in the list's order.
	Backups []VSPCBackup
}

// VSPCPlan mirrors BackupFailoverPlan. UIDs are as emitted (some upper-case);
// TenantUID is "" when null.
type VSPCPlan struct {
	InstanceUID, OriginalUID, BackupServerUID, TenantUID string
	Name, Type, Status                                   string
	ObjectsCount                                         int
	PreFailoverScriptEnabled, PostFailoverScriptEnabled  *bool
	PreFailoverCommand, PostFailoverCommand              *string
	LastSession                                          *VSPCPlanSession
}

// VSPCPlanSession mirrors BackupFailoverPlan.lastSession.
type VSPCPlanSession struct {
	InstanceUID     string
	EndTime         *time.Time
	Status, Message string
}

// VSPCPlanObject mirrors BackupFailoverPlanObject.
type VSPCPlanObject struct {
	InstanceUID, PlanUID, Name, HostName, FolderName, Path, BackupServerUID string
	RestoreSession                                                          *VSPCRestoreSession
}

// VSPCRestoreSession mirrors BackupFailoverPlanRestoreSession.
type VSPCRestoreSession struct {
	InstanceUID, BackupStatus string
	RestorePointUID           *string
	RestorePointDateTime      *time.Time
	StartDateTime             time.Time
	EndDateTime               *time.Time
}

// VSPC plan statuses (BackupFailoverPlan.status).
const (
	vspcReady          = "Ready"
	vspcInProgress     = "InProgress"
	vspcInUndoProgress = "InUndoProgress"
	vspcCompleted      = "Completed"
	vspcSuccess        = "Success"
	vspcFailed         = "Failed"
	vspcUndoFailed     = "UndoFailed"
	vspcUnknown        = "Unknown"
)

var vspcPlanStatuses = []string{vspcReady, vspcInProgress, vspcInUndoProgress, vspcCompleted, vspcSuccess, vspcFailed, vspcUndoFailed, vspcUnknown}

const (
	vspcPrefix = "/api/v3"
	// vspcServerVersion is what /about reports: VSPC 9.1 (API 3.6.1). The
	// build number is made up.
	vspcServerVersion = "9.1.0.30713"
	// vspcTokenLifetime is the documented 1 h access token lifetime [C];
	// expires_in is its seconds [I].
	vspcTokenLifetime = time.Hour
	// vspcRefreshLifetime is not documented [?].
	vspcRefreshLifetime = 24 * time.Hour
	// vspcIdempotency is the X-Request-id window [C].
	vspcIdempotency = 5 * time.Minute
	// vspcAsyncThreshold: start/undo with an X-Request-id answer 202 when
	// the action takes longer than this [I].
	vspcAsyncThreshold = 2 * time.Second
)

var (
	vspcV36  = clientVersion{3, 6, 0}
	vspcV361 = clientVersion{3, 6, 1}
)

type vspcPlan struct {
	uid, originalUID, serverUID, tenantUID uid
	name, typ, status                      string
	preCmd, postCmd                        *string
	preEnabled, postEnabled                *bool
	last                                   *vspcSession
	objects                                []*vspcObject
	site                                   int
	action                                 *vspcAction
}

type vspcSession struct {
	uid     uid
	end     time.Time // zero = null
	status  string
	message string
}

type vspcObject struct {
	uid   uid
	plan  *vspcPlan
	name  string
	host  uint8
	hasRS bool
	// nullRS: without a session, restoreSession is an object of nulls
	// rather than null (VSPCOptions.NeverRunSessionFields).
	nullRS bool
	rs     vspcRestoreSession
}

type vspcRestoreSession struct {
	uid    uid // the protected VM [C]; stays the same across sessions [I]
	status string
	rpUID  uid       // zero = null
	rpTime time.Time // zero = null
	start  time.Time
	end    time.Time // zero = null
}

// vspcAction is a running start or undo.
type vspcAction struct {
	undo    bool
	test    bool // a test failover moves through the same states [I]
	done    time.Time
	outcome string // Success, Warning or Failed, fixed when the action starts
	async   *vspcAsync
}

// vspcAsync is an AsyncActionInfo plus the operation's result.
type vspcAsync struct {
	id      string
	name    string
	status  string // running, succeed, failed, canceled
	query   map[string][]string
	body    *string
	result  vspcResp
	created time.Time
	ended   time.Time // when status left running
	// polls is how many more reads of the action show it running (an
	// asynchronous GET, VSPCOptions.AsyncReads).
	polls int
}

// vspcResp is a response, kept for X-Request-id replay and async results.
type vspcResp struct {
	status   int
	body     []byte
	location string
	// render, when set, writes the body after the API's lock is released,
	// from copies taken under it (large list pages).
	render func(*bytes.Buffer)
}

// rendered returns r with its body written.
func (r vspcResp) rendered() vspcResp {
	if r.render != nil {
		var b bytes.Buffer
		r.render(&b)
		r.body, r.render = b.Bytes(), nil
	}
	return r
}

type vspcIdem struct {
	key  string
	at   time.Time
	resp vspcResp
}

type vspcAPI struct {
	o *Options

	mu      sync.Mutex
	rng     *mrand.Rand
	plans   []*vspcPlan
	objects []*vspcObject
	byUID   map[[16]byte]*vspcPlan
	servers map[[16]byte]*vspcServer
	userUID uid
	install uid

	active  map[*vspcPlan]bool
	outcome string
	starts  map[[16]byte]int
	undos   map[[16]byte]int

	tokens  map[string]time.Time // access token -> expiry
	refresh map[string]time.Time // refresh token -> expiry

	idem      map[string]*vspcIdem
	idemOrder []*vspcIdem
	async     map[string]*vspcAsync

	planProps propTable[*vspcPlan]
	objProps  propTable[*vspcObject]

	backups     []*vspcBackup
	backupProps propTable[*vspcBackup]
	// backupsMatching caches, by filter text, the backups a filter keeps:
	// the list never changes once built, and scanning it for every page
	// made paging it quadratic in the estate.
	backupsMatching sync.Map // string -> []*vspcBackup
}

type vspcServer struct {
	uid     uid
	plans   []*vspcPlan
	objects []*vspcObject
}

var (
	vspcWorkloads = []struct{ name, prefix string }{
		{"Media servers", "media"}, {"SQL cluster", "sql"}, {"Web farm", "web"},
		{"Exchange", "exch"}, {"File servers", "fs"}, {"ERP", "erp"},
		{"Domain controllers", "dc"}, {"CRM", "crm"}, {"Billing", "bill"},
		{"Citrix", "ctx"}, {"SharePoint", "sp"}, {"Monitoring", "mon"},
	}
	vspcSites     = []string{"Columbus", "Frankfurt", "Dublin", "Sydney", "Toronto", "Singapore", "Sao Paulo"}
	vspcSiteCodes = []string{"col", "fra", "dub", "syd", "tor", "sin", "sao"}
	// vspcStatusMix is the status of each block of 20 plans, shuffled per
	// seed, so that any estate of 20 or more plans has every case.
	vspcStatusMix = []string{
		vspcReady, vspcReady, vspcReady, vspcReady, vspcReady, vspcReady,
		vspcReady, vspcReady, vspcReady, vspcReady, vspcReady, vspcReady,
		vspcSuccess, vspcSuccess, vspcCompleted, vspcFailed, vspcFailed,
		vspcUndoFailed, vspcInProgress, vspcInUndoProgress,
	}
)

func newVSPC(o *Options) *vspcAPI {
	a := &vspcAPI{
		o:       o,
		rng:     mrand.New(mrand.NewPCG(uint64(o.Seed), 0x5653504300000001)),
		byUID:   make(map[[16]byte]*vspcPlan),
		servers: make(map[[16]byte]*vspcServer),
		active:  make(map[*vspcPlan]bool),
		outcome: vspcSuccess,
		starts:  make(map[[16]byte]int),
		undos:   make(map[[16]byte]int),
		tokens:  make(map[string]time.Time),
		refresh: make(map[string]time.Time),
		idem:    make(map[string]*vspcIdem),
		async:   make(map[string]*vspcAsync),
	}
	a.planProps = vspcPlanProps()
	a.objProps = vspcObjectProps()
	a.generate()
	a.generateBackups()
	return a
}

// newUID draws a random (version 4) UUID; about one in five is emitted
// upper-case as the product sometimes does.
func (a *vspcAPI) newUID() uid {
	var u uid
	for i := 0; i < 16; i += 8 {
		v := a.rng.Uint64()
		for j := range 8 {
			u.b[i+j] = byte(v >> (8 * j))
		}
	}
	u.b[6] = u.b[6]&0x0f | 0x40
	u.b[8] = u.b[8]&0x3f | 0x80
	u.upper = a.rng.IntN(5) == 0
	return u
}

func (a *vspcAPI) generate() {
	nPlans := cmp0(a.o.VSPC.Plans, 20)
	nObj := cmp0(a.o.VSPC.ObjectsPerPlan, 5)
	nServers := cmp0(a.o.VSPC.BackupServers, 3)
	now := a.o.Now().UTC().Truncate(time.Second)
	r := a.rng
	a.userUID = a.newUID()
	a.install = a.newUID()

	servers := make([]*vspcServer, nServers)
	for i := range servers {
		servers[i] = &vspcServer{uid: a.newUID()}
		a.servers[servers[i].uid.b] = servers[i]
	}
	tenants := make([]uid, max(3, nPlans/10))
	for i := range tenants {
		tenants[i] = a.newUID()
	}
	perm := r.Perm(len(vspcStatusMix))
	combos := len(vspcWorkloads) * len(vspcSites)
	// ago draws an age between lo and hi, log-uniformly, so that most are
	// recent and a few are days old.
	ago := func(lo, hi time.Duration) time.Duration {
		l, h := math.Log(float64(lo)), math.Log(float64(hi))
		return time.Duration(math.Exp(l + r.Float64()*(h-l))).Truncate(time.Second)
	}
	a.plans = make([]*vspcPlan, 0, nPlans)
	a.objects = make([]*vspcObject, 0, nPlans*nObj)
	// One allocation for all plans and one for all objects: estates of
	// 200,000 objects build in about a second.
	planSlab := make([]vspcPlan, nPlans)
	objSlab := make([]vspcObject, nPlans*nObj)
	for i := range nPlans {
		w := vspcWorkloads[i%len(vspcWorkloads)]
		site := (i / len(vspcWorkloads)) % len(vspcSites)
		srv := servers[r.IntN(nServers)]
		p := &planSlab[i]
		*p = vspcPlan{
			uid:         a.newUID(),
			originalUID: a.newUID(),
			serverUID:   srv.uid,
			name:        w.name + " Failover to " + vspcSites[site],
			status:      vspcStatusMix[perm[i%len(perm)]],
			site:        site,
			objects:     make([]*vspcObject, 0, nObj),
		}
		if i >= combos {
			p.name += " " + strconv.Itoa(i/combos+1)
		}
		switch x := r.IntN(10); {
		case x < 7:
			p.typ = "Local"
		case x < 9:
			p.typ = "Cloud"
			p.tenantUID = tenants[r.IntN(len(tenants))]
		default:
			p.typ = "Tenant"
			p.tenantUID = tenants[r.IntN(len(tenants))]
		}
		empty := ""
		p.preCmd, p.postCmd = &empty, &empty
		if r.IntN(4) == 0 {
			cmd := `C:\Scripts\` + w.prefix + `-pre-failover.ps1`
			on := r.IntN(3) > 0
			p.preCmd, p.preEnabled = &cmd, &on
		}
		if r.IntN(4) == 0 {
			cmd := `C:\Scripts\` + w.prefix + `-post-failover.ps1`
			on := r.IntN(3) > 0
			p.postCmd, p.postEnabled = &cmd, &on
		}
		sessEnd := now.Add(-ago(10*time.Minute, 7*24*time.Hour))
		switch p.status {
		case vspcReady:
			if r.IntN(2) == 0 { // the last session was an undo or a test
				p.last = &vspcSession{uid: a.newUID(), end: sessEnd, status: "Success"}
			}
		case vspcSuccess:
			p.last = &vspcSession{uid: a.newUID(), end: sessEnd, status: "Success"}
		case vspcCompleted:
			p.last = &vspcSession{uid: a.newUID(), end: sessEnd, status: "Warning",
				message: "Failover plan completed with warnings: 1 of " + strconv.Itoa(nObj) + " VMs finished with warning."}
		case vspcFailed:
			p.last = &vspcSession{uid: a.newUID(), end: sessEnd, status: "Failed",
				message: "Failed to fail over 1 of " + strconv.Itoa(nObj) + " VMs: Unable to power on the replica VM."}
		case vspcUndoFailed:
			p.last = &vspcSession{uid: a.newUID(), end: sessEnd, status: "Failed",
				message: "Undo failover failed: Unable to revert the replica VM to its original state."}
		case vspcInProgress, vspcInUndoProgress:
			// Left running: a plan that is stuck in progress is something
			// alert rules look for. SetVSPCPlanStatus moves it on.
			p.last = &vspcSession{uid: a.newUID(), status: "None"}
		}
		for j := range nObj {
			o := &objSlab[i*nObj+j]
			*o = vspcObject{
				uid:  a.newUID(),
				plan: p,
				name: w.prefix + "-" + vspcSiteCodes[site] + fmt.Sprintf("%03d-%02d", i+1, j+1),
				host: uint8(r.IntN(8)),
			}
			if r.IntN(40) > 0 {
				o.hasRS = true
				rs := &o.rs
				rs.uid = a.newUID()
				// The restore session: within the plan's last session when
				// the plan ran, else around the VM's latest restore point.
				if r.IntN(50) > 0 {
					rs.rpUID = a.newUID()
					rs.rpTime = now.Add(-ago(2*time.Minute, 6*24*time.Hour))
				}
				switch {
				case p.status == vspcInProgress || p.status == vspcInUndoProgress:
					rs.start = now.Add(-ago(time.Minute, 30*time.Minute))
				case p.status != vspcReady && p.last != nil && !p.last.end.IsZero():
					rs.start = p.last.end.Add(-time.Duration(2+r.IntN(15)) * time.Minute)
				case !rs.rpTime.IsZero():
					rs.start = rs.rpTime.Add(time.Duration(1+r.IntN(30)) * time.Minute)
				default:
					rs.start = now.Add(-ago(time.Hour, 6*24*time.Hour))
				}
				if !rs.rpTime.IsZero() && rs.rpTime.After(rs.start) {
					rs.rpTime = rs.start.Add(-ago(2*time.Minute, 2*24*time.Hour))
				}
				if rs.start.After(now) {
					rs.start = now
				}
				rs.end = rs.start.Add(time.Duration(1+r.IntN(20)) * time.Minute)
				if lim := p.last; lim != nil && !lim.end.IsZero() && p.status != vspcReady && rs.end.After(lim.end) {
					rs.end = lim.end
				}
				if rs.end.After(now) {
					rs.end = now
				}
				switch p.status {
				case vspcInProgress, vspcInUndoProgress:
					rs.status, rs.end = "Running", time.Time{}
				case vspcFailed, vspcUndoFailed:
					rs.status = []string{"Failed", "Success"}[j%2]
				case vspcCompleted:
					rs.status = []string{"Warning", "Success"}[min(j, 1)]
				default:
					switch x := r.IntN(20); {
					case x == 0:
						rs.status = "Failed"
					case x == 1:
						rs.status = "Warning"
					default:
						rs.status = "Success"
					}
				}
			}
			if p.status == vspcReady && p.last == nil {
				// A plan that never ran has no failover session [I, strong].
				o.hasRS = false
			}
			o.nullRS = !o.hasRS && a.o.VSPC.NeverRunSessionFields
			p.objects = append(p.objects, o)
			a.objects = append(a.objects, o)
			srv.objects = append(srv.objects, o)
		}
		a.plans = append(a.plans, p)
		a.byUID[p.uid.b] = p
		srv.plans = append(srv.plans, p)
	}
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func vspcPlanProps() propTable[*vspcPlan] {
	type P = *vspcPlan
	return newPropTable(
		propDef[P]{"instanceUid", kUID, func(p P) vval { return uv(p.uid) }},
		propDef[P]{"originalUid", kUID, func(p P) vval { return uv(p.originalUID) }},
		propDef[P]{"backupServerUid", kUID, func(p P) vval { return uv(p.serverUID) }},
		propDef[P]{"name", kString, func(p P) vval { return sv(p.name) }},
		propDef[P]{"type", kString, func(p P) vval { return sv(p.typ) }},
		propDef[P]{"status", kString, func(p P) vval { return sv(p.status) }},
		propDef[P]{"tenantUid", kUID, func(p P) vval { return uv(p.tenantUID) }},
		propDef[P]{"objectsCount", kInt, func(p P) vval { return iv(len(p.objects)) }},
		propDef[P]{"preFailoverScriptEnabled", kBool, func(p P) vval { return bpv(p.preEnabled) }},
		propDef[P]{"preFailoverCommand", kString, func(p P) vval { return spv(p.preCmd) }},
		propDef[P]{"postFailoverCommand", kString, func(p P) vval { return spv(p.postCmd) }},
		propDef[P]{"postFailoverScriptEnabled", kBool, func(p P) vval { return bpv(p.postEnabled) }},
		propDef[P]{"lastSession", kObject, func(p P) vval { return objv(p.last != nil) }},
		propDef[P]{"lastSession.instanceUid", kUID, func(p P) vval {
			if p.last == nil {
				return vval{null: true}
			}
			return uv(p.last.uid)
		}},
		propDef[P]{"lastSession.endTime", kTime, func(p P) vval {
			if p.last == nil {
				return vval{null: true}
			}
			return tv(p.last.end)
		}},
		propDef[P]{"lastSession.status", kString, func(p P) vval {
			if p.last == nil {
				return vval{null: true}
			}
			return sv(p.last.status)
		}},
		propDef[P]{"lastSession.message", kString, func(p P) vval {
			if p.last == nil || p.last.message == "" {
				return vval{null: true}
			}
			return sv(p.last.message)
		}},
		propDef[P]{"lastSession.detailedMessages", kObject, func(P) vval { return vval{null: true} }},
	)
}

func vspcObjectProps() propTable[*vspcObject] {
	type O = *vspcObject
	rs := func(get func(*vspcRestoreSession) vval) func(O) vval {
		return func(o O) vval {
			if !o.hasRS {
				return vval{null: true}
			}
			return get(&o.rs)
		}
	}
	return newPropTable(
		propDef[O]{"instanceUid", kUID, func(o O) vval { return uv(o.uid) }},
		propDef[O]{"planUid", kUID, func(o O) vval { return uv(o.plan.uid) }},
		propDef[O]{"name", kString, func(o O) vval { return sv(o.name) }},
		propDef[O]{"hostName", kString, func(o O) vval { return sv(o.hostName()) }},
		propDef[O]{"folderName", kString, func(o O) vval { return sv(o.folderName()) }},
		propDef[O]{"path", kString, func(o O) vval { return sv(o.path()) }},
		propDef[O]{"backupServerUid", kUID, func(o O) vval { return uv(o.plan.serverUID) }},
		propDef[O]{"restoreSession", kObject, func(o O) vval { return objv(o.hasRS) }},
		propDef[O]{"restoreSession.instanceUid", kUID, rs(func(s *vspcRestoreSession) vval { return uv(s.uid) })},
		propDef[O]{"restoreSession.backupStatus", kString, rs(func(s *vspcRestoreSession) vval { return sv(s.status) })},
		propDef[O]{"restoreSession.restorePointUid", kUID, rs(func(s *vspcRestoreSession) vval { return uv(s.rpUID) })},
		propDef[O]{"restoreSession.restorePointDateTime", kTime, rs(func(s *vspcRestoreSession) vval { return tv(s.rpTime) })},
		propDef[O]{"restoreSession.startDateTime", kTime, rs(func(s *vspcRestoreSession) vval { return tv(s.start) })},
		propDef[O]{"restoreSession.endDateTime", kTime, rs(func(s *vspcRestoreSession) vval { return tv(s.end) })},
	)
}

// vspcHosts are the ESXi hosts of each site.
var vspcHosts = func() [][]string {
	h := make([][]string, len(vspcSiteCodes))
	for s, code := range vspcSiteCodes {
		for i := range 8 {
			h[s] = append(h[s], fmt.Sprintf("esx%02d.%s.dr.example.local", i+1, code))
		}
	}
	return h
}()

func (o *vspcObject) hostName() string { return vspcHosts[o.plan.site][o.host] }

func (o *vspcObject) folderName() string {
	return "Replicas-" + strings.ReplaceAll(vspcSites[o.plan.site], " ", "")
}

func (o *vspcObject) path() string {
	return "vcsa-dr.example.local/" + vspcSites[o.plan.site] + "/" + o.folderName() + "/" + o.name + "_replica"
}

// ---- rendering ----

func (a *vspcAPI) writePlan(b *bytes.Buffer, p *vspcPlan, sel *selection, v clientVersion) {
	o := openObject(b, sel)
	o.uid("instanceUid", p.uid)
	o.uid("originalUid", p.originalUID)
	o.uid("backupServerUid", p.serverUID)
	o.str("name", p.name)
	o.str("type", p.typ)
	o.int("objectsCount", len(p.objects))
	o.str("status", p.status)
	o.uid("tenantUid", p.tenantUID)
	o.boolp("preFailoverScriptEnabled", p.preEnabled)
	o.strp("preFailoverCommand", p.preCmd)
	o.strp("postFailoverCommand", p.postCmd)
	o.boolp("postFailoverScriptEnabled", p.postEnabled)
	// lastSession is new in 3.6.1 [C]: older clients do not get it.
	if !v.less(vspcV361) {
		if child, ok := o.key("lastSession"); ok {
			if p.last == nil {
				b.WriteString("null")
			} else {
				s := openObject(b, child)
				s.uid("instanceUid", p.last.uid)
				s.time("endTime", p.last.end)
				s.str("status", p.last.status)
				if p.last.message == "" {
					s.null("message")
				} else {
					s.str("message", p.last.message)
				}
				s.null("detailedMessages") // only from VBR v13 [C]
				s.close()
			}
		}
	}
	o.close()
}

func (a *vspcAPI) writeObject(b *bytes.Buffer, ob *vspcObject, sel *selection) {
	o := openObject(b, sel)
	o.uid("instanceUid", ob.uid)
	o.uid("planUid", ob.plan.uid)
	o.str("name", ob.name)
	o.str("hostName", ob.hostName())
	o.str("folderName", ob.folderName())
	o.str("path", ob.path())
	o.uid("backupServerUid", ob.plan.serverUID)
	if child, ok := o.key("restoreSession"); ok {
		switch {
		case !ob.hasRS && ob.nullRS:
			s := openObject(b, child)
			for _, k := range []string{"instanceUid", "backupStatus", "restorePointUid", "restorePointDateTime", "startDateTime", "endDateTime"} {
				s.null(k)
			}
			s.close()
		case !ob.hasRS:
			b.WriteString("null")
		default:
			rs := &ob.rs
			s := openObject(b, child)
			s.uid("instanceUid", rs.uid)
			s.str("backupStatus", rs.status)
			s.uid("restorePointUid", rs.rpUID)
			s.time("restorePointDateTime", rs.rpTime)
			s.time("startDateTime", rs.start)
			s.time("endDateTime", rs.end)
			s.close()
		}
	}
	o.close()
}

func writeCollection[T any](b *bytes.Buffer, page []T, total, offset int, write func(*bytes.Buffer, T)) {
	b.WriteString(`{"data":[`)
	for i, it := range page {
		if i > 0 {
			b.WriteByte(',')
		}
		write(b, it)
	}
	fmt.Fprintf(b, `],"meta":{"pagingInfo":{"total":%d,"count":%d,"offset":%d}},"errors":null}`, total, len(page), offset)
}

func dataResp(status int, write func(*bytes.Buffer)) vspcResp {
	var b bytes.Buffer
	b.WriteString(`{"data":`)
	write(&b)
	b.WriteString(`,"meta":null,"errors":null}`)
	return vspcResp{status: status, body: b.Bytes()}
}

// vspcEmptyResponse is the 200 body of start and undo [I for the exact body].
var vspcEmptyResponse = []byte(`{"data":{},"errors":[]}`)

// responseError is VSPC's ResponseError.
type responseError struct {
	Message         string           `json:"message"`
	Type            string           `json:"type"`
	Code            int              `json:"code"`
	ParameterName   string           `json:"parameterName,omitempty"`
	PropertyName    string           `json:"propertyName,omitempty"`
	RetryAfter      int              `json:"retryAfter,omitempty"`
	FailedJSONPatch *failedJSONPatch `json:"failedJsonPatch,omitempty"`
}

type failedJSONPatch struct {
	Value json.RawMessage `json:"value"`
	Path  string          `json:"path"`
	Op    string          `json:"op"`
}

// errResp builds an ErrorResponse. Every server error is sent as HTTP 520
// with the original code in the body [C].
func errResp(status int, e responseError) vspcResp {
	if e.Code == 0 {
		e.Code = status
	}
	if e.Type == "" {
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			e.Type = "security" // [I]
		case status == http.StatusTooManyRequests:
			e.Type = "transport" // [C]
		case status >= 500:
			e.Type = "unspecified" // [I]
		default:
			e.Type = "logical"
		}
	}
	if status >= 500 {
		status = 520
	}
	body, _ := json.Marshal(struct {
		Errors []responseError `json:"errors"`
	}{[]responseError{e}})
	return vspcResp{status: status, body: body}
}

func errMsg(status int, format string, args ...any) vspcResp {
	return errResp(status, responseError{Message: fmt.Sprintf(format, args...)})
}

func (a *vspcAPI) send(w http.ResponseWriter, resp vspcResp) {
	h := w.Header()
	if resp.location != "" {
		h.Set("Location", resp.location)
	}
	if len(resp.body) > 0 {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// writeError answers in VSPC's ErrorResponse format (for the core's
// faults).
func (a *vspcAPI) writeError(w http.ResponseWriter, status int, message string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	a.send(w, errMsg(status, "%s", message))
}

// writeRetryAfter is VSPC's throttling answer [C].
func (a *vspcAPI) writeRetryAfter(w http.ResponseWriter, seconds int) {
	a.send(w, errResp(http.StatusTooManyRequests, responseError{
		Message:    "The number of requests exceeds the limit. Retry after " + strconv.Itoa(seconds) + " seconds.",
		Type:       "transport",
		RetryAfter: seconds,
	}))
}

// expireAuth invalidates every access and refresh token. API keys stay
// valid: they only die with their user [C].
func (a *vspcAPI) expireAuth() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.tokens)
	clear(a.refresh)
}

// ---- HTTP ----

func (a *vspcAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if !strings.HasPrefix(strings.ToLower(path)+"/", vspcPrefix+"/") {
		a.send(w, errMsg(http.StatusNotFound, "The requested resource '%s' was not found.", path))
		return
	}
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return
		}
	}
	segs := strings.Split(strings.Trim(path[len(vspcPrefix):], "/"), "/")
	lsegs := make([]string, len(segs))
	for i, s := range segs {
		lsegs[i] = strings.ToLower(s)
	}

	if len(lsegs) == 1 && lsegs[0] == "token" {
		a.send(w, a.token(r, body))
		return
	}

	a.mu.Lock()
	now := vspcStamp(a.o.Now())
	a.advance(now)
	var resp vspcResp
	if !a.authorized(r, now) {
		resp = errMsg(http.StatusUnauthorized, "Authorization has been denied for this request.")
		w.Header().Set("WWW-Authenticate", "Bearer")
	} else {
		resp = a.handle(r, now, segs, lsegs, body)
	}
	a.mu.Unlock()
	a.send(w, resp.rendered())
}

// vspcStamp drops what the product's 7-digit fractions cannot show, so that
// Estate and the JSON agree exactly.
func vspcStamp(t time.Time) time.Time { return t.UTC().Truncate(100 * time.Nanosecond) }

func (a *vspcAPI) authorized(r *http.Request, now time.Time) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	tok = strings.TrimSpace(tok)
	if subtle.ConstantTimeCompare([]byte(tok), []byte(a.o.VSPCAPIKey)) == 1 {
		return true
	}
	exp, ok := a.tokens[tok]
	if !ok {
		return false
	}
	if !now.Before(exp) {
		delete(a.tokens, tok)
		return false
	}
	return true
}

// vspcRequest is what handlers need of an HTTP request.
type vspcRequest struct {
	r       *http.Request
	now     time.Time
	ver     clientVersion
	q       queryValues
	body    []byte
	reqID   string
	segs    []string
	lsegs   []string
	baseURL string
}

func (a *vspcAPI) handle(r *http.Request, now time.Time, segs, lsegs []string, body []byte) vspcResp {
	req := &vspcRequest{
		r:     r,
		now:   now,
		ver:   parseClientVersion(r.Header.Get("X-Client-Version")),
		q:     newQueryValues(r.URL.Query()),
		body:  body,
		segs:  segs,
		lsegs: lsegs,
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	req.baseURL = scheme + "://" + r.Host

	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		if id := strings.TrimSpace(r.Header.Get("X-Request-id")); id != "" {
			u, ok := parseUUID(id)
			if !ok {
				return errResp(http.StatusBadRequest, responseError{
					Message: "The value '" + id + "' is not a valid UID.", ParameterName: "X-Request-id"})
			}
			req.reqID = formatUUID(u, false)
			return a.idempotent(req)
		}
	}
	if a.o.VSPC.AsyncReads && r.Method == http.MethodGet && len(lsegs) > 0 &&
		(lsegs[0] == "infrastructure" || lsegs[0] == "protectedworkloads") {
		return a.asyncRead(req)
	}
	return a.route(req)
}

// asyncRead answers a read with 202 and the Location of an async action
// that holds the real answer; the action reads as running once.
func (a *vspcAPI) asyncRead(req *vspcRequest) vspcResp {
	id := a.newUID()
	id.upper = false
	as := &vspcAsync{
		id: id.String(), name: req.r.Method + " " + req.r.URL.Path, status: "running",
		query: req.r.URL.Query(), created: req.now, polls: 1,
		result: a.route(req).rendered(),
	}
	a.async[as.id] = as
	return vspcResp{status: http.StatusAccepted, location: req.baseURL + vspcPrefix + "/asyncActions/" + as.id}
}

// idempotent replays the stored answer to a repeated X-Request-id within
// five minutes [C], without running the operation again. The key is the id,
// the method and the path [I].
func (a *vspcAPI) idempotent(req *vspcRequest) vspcResp {
	for len(a.idemOrder) > 0 && req.now.Sub(a.idemOrder[0].at) >= vspcIdempotency {
		old := a.idemOrder[0]
		a.idemOrder = a.idemOrder[1:]
		if a.idem[old.key] == old {
			delete(a.idem, old.key)
		}
		// The async action outlives the idempotency window: it goes when
		// its own retention ends (asyncExpired).
	}
	key := req.reqID + " " + req.r.Method + " " + strings.ToLower(req.r.URL.Path)
	if e, ok := a.idem[key]; ok && req.now.Sub(e.at) < vspcIdempotency {
		return e.resp
	}
	as := &vspcAsync{
		id:      req.reqID,
		name:    vspcActionName(req),
		status:  "running",
		query:   req.r.URL.Query(),
		created: req.now,
	}
	if len(req.body) > 0 {
		s := string(req.body)
		as.body = &s
	}
	resp := a.routeAsync(req, as).rendered()
	if resp.status != http.StatusAccepted {
		as.result = resp
		as.status, as.ended = "succeed", req.now
		if resp.status >= 400 {
			as.status = "failed"
		}
	}
	a.async[as.id] = as
	e := &vspcIdem{key: key, at: req.now, resp: resp}
	a.idem[key] = e
	a.idemOrder = append(a.idemOrder, e)
	return resp
}

func vspcActionName(req *vspcRequest) string {
	ls := req.lsegs
	switch {
	case len(ls) == 5 && ls[4] == "start":
		return "StartBackupFailoverPlan"
	case len(ls) == 5 && ls[4] == "undo":
		return "UndoBackupFailoverPlan"
	case len(ls) == 4 && req.r.Method == http.MethodPatch:
		return "PatchBackupFailoverPlan"
	}
	return req.r.Method + " " + req.r.URL.Path
}

func (a *vspcAPI) route(req *vspcRequest) vspcResp { return a.routeAsync(req, nil) }

// routeAsync dispatches a request; as is the async action registered for
// an X-Request-id, if any.
func (a *vspcAPI) routeAsync(req *vspcRequest, as *vspcAsync) vspcResp {
	ls, m := req.lsegs, req.r.Method
	only := func(method string, f func() vspcResp) vspcResp {
		if m != method {
			return errMsg(http.StatusMethodNotAllowed, "The requested resource does not support http method '%s'.", m)
		}
		return f()
	}
	switch {
	case len(ls) == 1 && ls[0] == "about":
		return only(http.MethodGet, func() vspcResp { return a.about() })
	case len(ls) >= 1 && ls[0] == "asyncactions":
		return a.asyncRoute(req)
	case len(ls) == 3 && ls[0] == "protectedworkloads" && ls[1] == "virtualmachines" && ls[2] == "backups":
		return only(http.MethodGet, func() vspcResp { return a.listBackups(req) })
	case len(ls) >= 3 && ls[0] == "infrastructure" && ls[1] == "backupservers":
	default:
		return vspcUnsupported(req)
	}

	if ls[2] == "failoverplans" {
		switch {
		case len(ls) == 3:
			return only(http.MethodGet, func() vspcResp { return a.listPlans(req, a.plans) })
		case len(ls) == 4 && ls[3] == "objects":
			return only(http.MethodGet, func() vspcResp { return a.listObjects(req, a.objects) })
		}
		p, errr := a.plan(req.segs[3])
		if errr != nil {
			return *errr
		}
		switch {
		case len(ls) == 4 && m == http.MethodGet:
			return a.getPlan(req, p)
		case len(ls) == 4 && m == http.MethodPatch:
			return a.patchPlan(req, p)
		case len(ls) == 4:
			return errMsg(http.StatusMethodNotAllowed, "The requested resource does not support http method '%s'.", m)
		case len(ls) == 5 && ls[4] == "start":
			return only(http.MethodPost, func() vspcResp { return a.start(req, p, as) })
		case len(ls) == 5 && ls[4] == "undo":
			return only(http.MethodPost, func() vspcResp { return a.undo(req, p, as) })
		case len(ls) == 5 && ls[4] == "objects":
			return only(http.MethodGet, func() vspcResp { return a.listObjects(req, p.objects) })
		}
		return vspcUnsupported(req)
	}
	// /infrastructure/backupServers/{backupServerUid}/failoverplans[/objects]
	if len(ls) < 4 || ls[3] != "failoverplans" || len(ls) > 5 || (len(ls) == 5 && ls[4] != "objects") {
		return vspcUnsupported(req)
	}
	u, ok := parseUUID(req.segs[2])
	if !ok {
		return errResp(http.StatusBadRequest, responseError{
			Message: "The value '" + req.segs[2] + "' is not valid.", ParameterName: "backupServerUid"})
	}
	srv := a.servers[u]
	if srv == nil {
		// [I]: an unknown backup server is a 404 naming it.
		return errMsg(http.StatusNotFound, "Backup server with UID '%s' was not found.", req.segs[2])
	}
	if len(ls) == 4 {
		return only(http.MethodGet, func() vspcResp { return a.listPlans(req, srv.plans) })
	}
	return only(http.MethodGet, func() vspcResp { return a.listObjects(req, srv.objects) })
}

// vspcUnsupported is what ASP.NET API versioning answers for a route the
// installed version does not have: its own format, not the VSPC envelope
// [C]; the status is probably 400 [I].
func vspcUnsupported(req *vspcRequest) vspcResp {
	u := req.baseURL + req.r.URL.RequestURI()
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code":       "UnsupportedApiVersion",
		"message":    "The HTTP resource that matches the request URI '" + u + "' is not supported.",
		"innerError": nil,
	}})
	return vspcResp{status: http.StatusBadRequest, body: body}
}

func (a *vspcAPI) plan(s string) (*vspcPlan, *vspcResp) {
	u, ok := parseUUID(s)
	if !ok {
		r := errResp(http.StatusBadRequest, responseError{Message: "The value '" + s + "' is not valid.", ParameterName: "planUid"})
		return nil, &r
	}
	p := a.byUID[u]
	if p == nil {
		r := errMsg(http.StatusNotFound, "Failover plan with UID '%s' was not found.", s)
		return nil, &r
	}
	return p, nil
}

func queryErr(err error) vspcResp {
	if qe, ok := err.(*queryError); ok {
		return errResp(http.StatusBadRequest, responseError{Message: qe.msg, ParameterName: qe.param})
	}
	return errMsg(http.StatusBadRequest, "%v", err)
}

func (a *vspcAPI) about() vspcResp {
	return dataResp(http.StatusOK, func(b *bytes.Buffer) {
		o := openObject(b, nil)
		o.str("serverVersion", vspcServerVersion)
		o.uid("installationId", a.install)
		o.close()
	})
}

func (a *vspcAPI) listPlans(req *vspcRequest, plans []*vspcPlan) vspcResp {
	lq, err := parseListQuery(req.q, a.planProps)
	if err != nil {
		return queryErr(err)
	}
	page, total := lq.page(plans)
	var b bytes.Buffer
	writeCollection(&b, page, total, lq.offset, func(b *bytes.Buffer, p *vspcPlan) { a.writePlan(b, p, lq.sel, req.ver) })
	return vspcResp{status: http.StatusOK, body: b.Bytes()}
}

func (a *vspcAPI) listObjects(req *vspcRequest, objs []*vspcObject) vspcResp {
	lq, err := parseListQuery(req.q, a.objProps)
	if err != nil {
		return queryErr(err)
	}
	page, total := lq.page(objs)
	// Rendered once the lock is released (ServeHTTP), from copies taken
	// under it, so that concurrent page reads render in parallel as a real
	// server's would instead of one after another. What writeObject reads
	// of the plan (uid, server, site) never changes.
	snap := make([]vspcObject, len(page))
	ptrs := make([]*vspcObject, len(page))
	for i, o := range page {
		snap[i] = *o
		ptrs[i] = &snap[i]
	}
	offset, sel := lq.offset, lq.sel
	return vspcResp{status: http.StatusOK, render: func(b *bytes.Buffer) {
		b.Grow(700 * len(ptrs))
		writeCollection(b, ptrs, total, offset, func(b *bytes.Buffer, o *vspcObject) { a.writeObject(b, o, sel) })
	}}
}

func (a *vspcAPI) getPlan(req *vspcRequest, p *vspcPlan) vspcResp {
	sel, err := parseSelect(req.q, a.planProps)
	if err != nil {
		return queryErr(err)
	}
	return dataResp(http.StatusOK, func(b *bytes.Buffer) { a.writePlan(b, p, sel, req.ver) })
}

// ---- PATCH ----

type jsonPatchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
	From  string          `json:"from"`
}

// patchPlan applies a JSON Patch to the patchable fields [I: the commands,
// the script flags and the name], with case-insensitive paths [I]. It is
// all or nothing.
func (a *vspcAPI) patchPlan(req *vspcRequest, p *vspcPlan) vspcResp {
	if ct := req.r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt != "application/json" && mt != "application/json-patch+json" && mt != "text/json" {
			return errMsg(http.StatusUnsupportedMediaType, "Content type '%s' is not supported.", ct)
		}
	}
	var ops []jsonPatchOp
	if err := json.Unmarshal(req.body, &ops); err != nil {
		return errResp(http.StatusBadRequest, responseError{Message: "The request body is not a valid JSON Patch document.", ParameterName: "body"})
	}
	np := *p
	for _, op := range ops {
		if !applyPatchOp(&np, op) {
			val := op.Value
			if len(val) == 0 {
				val = json.RawMessage("null")
			}
			return errResp(http.StatusBadRequest, responseError{
				Message:         "The property at path '" + op.Path + "' could not be updated.",
				Code:            1001,
				FailedJSONPatch: &failedJSONPatch{Value: val, Path: op.Path, Op: op.Op},
			})
		}
	}
	p.name, p.preCmd, p.postCmd, p.preEnabled, p.postEnabled = np.name, np.preCmd, np.postCmd, np.preEnabled, np.postEnabled
	return dataResp(http.StatusOK, func(b *bytes.Buffer) { a.writePlan(b, p, nil, req.ver) })
}

func applyPatchOp(p *vspcPlan, op jsonPatchOp) bool {
	field := strings.ToLower(strings.TrimPrefix(op.Path, "/"))
	var strField **string
	var boolField **bool
	switch field {
	case "name":
	case "prefailovercommand":
		strField = &p.preCmd
	case "postfailovercommand":
		strField = &p.postCmd
	case "prefailoverscriptenabled":
		boolField = &p.preEnabled
	case "postfailoverscriptenabled":
		boolField = &p.postEnabled
	default:
		return false
	}
	isNull := len(op.Value) == 0 || string(op.Value) == "null"
	switch strings.ToLower(op.Op) {
	case "replace", "add":
		switch {
		case field == "name":
			var s string
			if json.Unmarshal(op.Value, &s) != nil || strings.TrimSpace(s) == "" {
				return false
			}
			p.name = s
		case strField != nil && isNull:
			*strField = nil
		case strField != nil:
			var s string
			if json.Unmarshal(op.Value, &s) != nil {
				return false
			}
			*strField = &s
		case isNull:
			*boolField = nil
		default:
			var v bool
			if json.Unmarshal(op.Value, &v) != nil {
				return false
			}
			*boolField = &v
		}
		return true
	case "remove":
		switch {
		case field == "name":
			return false
		case strField != nil:
			*strField = nil
		default:
			*boolField = nil
		}
		return true
	case "test":
		var cur any
		switch {
		case field == "name":
			cur = p.name
		case strField != nil && *strField != nil:
			cur = **strField
		case boolField != nil && *boolField != nil:
			cur = **boolField
		}
		want, _ := json.Marshal(cur)
		var got any
		if !isNull && json.Unmarshal(op.Value, &got) != nil {
			return false
		}
		gotJSON, _ := json.Marshal(got)
		return bytes.Equal(want, gotJSON)
	default: // move, copy: nothing to move or copy between these fields
		return false
	}
}

// ---- start / undo state machine ----

// vspcUndoable are the statuses undo is allowed from: a failed-over plan
// (Success, Completed), a partial failover (Failed) and a retry after a
// failed undo (UndoFailed) [I].
var vspcUndoable = map[string]bool{vspcSuccess: true, vspcCompleted: true, vspcFailed: true, vspcUndoFailed: true}

func (a *vspcAPI) start(req *vspcRequest, p *vspcPlan, as *vspcAsync) vspcResp {
	test := false
	if v, ok := req.q.get("test"); ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return errResp(http.StatusBadRequest, responseError{Message: "The value '" + v + "' is not valid.", ParameterName: "test"})
		}
		test = b
	}
	// 3.5.1 called the parameter date-time, 3.6 and later dateTime [C].
	param := "dateTime"
	if req.ver.less(vspcV36) {
		param = "date-time"
	}
	var pointInTime time.Time
	if v, ok := req.q.get(param); ok && strings.TrimSpace(v) != "" {
		t, ok := parseVSPCTime(v)
		if !ok {
			return errResp(http.StatusBadRequest, responseError{Message: "The value '" + v + "' is not valid.", ParameterName: param})
		}
		pointInTime = t
	}
	if p.status != vspcReady {
		return errMsg(http.StatusConflict, "Failover plan '%s' cannot be started: its status is %s.", p.name, p.status)
	}
	if test && p.typ == "Local" && a.o.VSPC.RefuseTestOnLocal {
		return errResp(http.StatusBadRequest, responseError{
			Message: "Failover plan '" + p.name + "' cannot be tested: only cloud failover plans can be tested.", ParameterName: "test"})
	}
	a.starts[p.uid.b]++
	act := a.begin(req.now, p, false)
	p.status = vspcInProgress
	act.test = test
	// The restore sessions start now, each from the latest restore point
	// or, with dateTime, from the latest one not after it [I].
	for _, o := range p.objects {
		if !o.hasRS {
			o.hasRS = true
			o.rs.uid = a.newUID()
		}
		rs := &o.rs
		rs.status = "Running"
		rs.start = req.now
		rs.end = time.Time{}
		if !pointInTime.IsZero() && (rs.rpTime.IsZero() || pointInTime.Before(rs.rpTime)) {
			rs.rpUID = a.newUID()
			rs.rpTime = vspcStamp(pointInTime.Add(-time.Duration(1+a.rng.IntN(60)) * time.Minute))
		}
	}
	return a.accepted(req, act, as)
}

func (a *vspcAPI) undo(req *vspcRequest, p *vspcPlan, as *vspcAsync) vspcResp {
	if !vspcUndoable[p.status] {
		return errMsg(http.StatusConflict, "Failover plan '%s' cannot be undone: its status is %s.", p.name, p.status)
	}
	a.undos[p.uid.b]++
	act := a.begin(req.now, p, true)
	p.status = vspcInUndoProgress
	return a.accepted(req, act, as)
}

// begin starts an action and a new session; the outcome is the one set
// when the action starts.
func (a *vspcAPI) begin(now time.Time, p *vspcPlan, undo bool) *vspcAction {
	act := &vspcAction{undo: undo, done: now.Add(a.o.ActionDuration), outcome: a.outcome}
	p.action = act
	p.last = &vspcSession{uid: a.newUID(), status: "None"}
	a.active[p] = true
	return act
}

// accepted answers a queued start or undo: 200 EmptyResponse, or 202 with
// a Location to the async action when the client sent an X-Request-id and
// the action is long [I].
func (a *vspcAPI) accepted(req *vspcRequest, act *vspcAction, as *vspcAsync) vspcResp {
	if as == nil || a.o.ActionDuration <= vspcAsyncThreshold {
		return vspcResp{status: http.StatusOK, body: vspcEmptyResponse}
	}
	act.async = as
	return vspcResp{status: http.StatusAccepted, location: req.baseURL + vspcPrefix + "/asyncActions/" + as.id}
}

// advance finishes the actions whose time has come.
func (a *vspcAPI) advance(now time.Time) {
	for id, as := range a.async {
		if a.asyncExpired(as, now) {
			delete(a.async, id)
		}
	}
	for p := range a.active {
		if act := p.action; act != nil && !now.Before(act.done) {
			a.finish(p, act)
		}
	}
}

func (a *vspcAPI) finish(p *vspcPlan, act *vspcAction) {
	delete(a.active, p)
	p.action = nil
	n := len(p.objects)
	end := act.done.UTC()
	p.last.end = end
	p.last.status = act.outcome
	if act.undo {
		switch act.outcome {
		case vspcFailed:
			p.status = vspcUndoFailed
			p.last.message = "Undo failover failed: Unable to revert the replica VM to its original state."
		default:
			p.status = vspcReady
		}
	} else {
		switch act.outcome {
		case vspcFailed:
			p.status = vspcFailed
			p.last.message = fmt.Sprintf("Failed to fail over %d of %d VMs: Unable to power on the replica VM.", (n+1)/2, n)
		case "Warning":
			// A failover that finished with warnings leaves the plan
			// Completed [?].
			p.status = vspcCompleted
			p.last.message = fmt.Sprintf("Failover plan completed with warnings: 1 of %d VMs finished with warning.", n)
		default:
			p.status = vspcSuccess
		}
		for j, o := range p.objects {
			o.rs.end = end
			switch {
			case act.outcome == vspcFailed && j%2 == 0:
				o.rs.status = "Failed"
			case act.outcome == "Warning" && j == 0:
				o.rs.status = "Warning"
			default:
				o.rs.status = "Success"
			}
		}
	}
	if act.async != nil && act.async.status == "running" {
		act.async.result = vspcResp{status: http.StatusOK, body: vspcEmptyResponse}
		act.async.status, act.async.ended = "succeed", end
		if act.outcome == vspcFailed {
			// The async action reports the plan's failure [I].
			act.async.status = "failed"
			act.async.result = errMsg(http.StatusInternalServerError, "%s", p.last.message)
		}
	}
}

// ---- async actions ----

func (a *vspcAPI) asyncRoute(req *vspcRequest) vspcResp {
	ls, m := req.lsegs, req.r.Method
	switch {
	case len(ls) == 1 && m == http.MethodGet:
		var list []*vspcAsync
		for _, as := range a.async {
			if as.status == "running" {
				list = append(list, as)
			}
		}
		var b bytes.Buffer
		writeCollection(&b, list, len(list), 0, func(b *bytes.Buffer, as *vspcAsync) { a.writeAsync(b, as) })
		return vspcResp{status: http.StatusOK, body: b.Bytes()}
	case len(ls) == 2 && ls[1] == "config" && m == http.MethodGet:
		// resultRetentionTime: the doc example says 5 [C], minutes [?].
		return dataResp(http.StatusOK, func(b *bytes.Buffer) { b.WriteString(`{"resultRetentionTime":5}`) })
	case len(ls) == 2 || (len(ls) == 3 && ls[2] == "result"):
	default:
		return vspcUnsupported(req)
	}
	u, ok := parseUUID(req.segs[1])
	if !ok {
		return errResp(http.StatusBadRequest, responseError{Message: "The value '" + req.segs[1] + "' is not valid.", ParameterName: "actionId"})
	}
	as := a.async[formatUUID(u, false)]
	if as != nil && a.asyncExpired(as, req.now) {
		delete(a.async, as.id)
		as = nil
	}
	if as == nil {
		return errMsg(http.StatusNotFound, "Async action with UID '%s' was not found.", req.segs[1])
	}
	switch {
	case len(ls) == 2 && m == http.MethodGet:
		w := *as
		if as.polls > 0 {
			if as.polls--; as.polls == 0 {
				as.status, as.ended = "succeed", req.now
			}
		}
		return dataResp(http.StatusOK, func(b *bytes.Buffer) { a.writeAsync(b, &w) })
	case len(ls) == 2 && m == http.MethodDelete:
		if as.status == "running" {
			// Cancelling the tracking does not stop the queued plan
			// action [I].
			as.status, as.ended = "canceled", req.now
			as.result = errMsg(http.StatusConflict, "The action was canceled.")
		}
		return vspcResp{status: http.StatusOK, body: vspcEmptyResponse}
	case len(ls) == 3 && m == http.MethodGet:
		if as.status == "running" {
			return errMsg(http.StatusConflict, "Async action '%s' is still running.", as.id)
		}
		return as.result
	}
	return errMsg(http.StatusMethodNotAllowed, "The requested resource does not support http method '%s'.", m)
}

// asyncExpired reports whether an ended action's result is past its
// retention: 5 minutes after success, 1 hour after failure [C].
func (a *vspcAPI) asyncExpired(as *vspcAsync, now time.Time) bool {
	if as.status == "running" || as.ended.IsZero() {
		return false
	}
	keep := a.o.VSPC.AsyncSuccessRetention
	if keep <= 0 {
		keep = 5 * time.Minute
	}
	if as.status != "succeed" {
		keep = a.o.VSPC.AsyncFailureRetention
		if keep <= 0 {
			keep = time.Hour
		}
	}
	return now.Sub(as.ended) >= keep
}

func (a *vspcAPI) writeAsync(b *bytes.Buffer, as *vspcAsync) {
	o := openObject(b, nil)
	o.str("id", as.id)
	o.uid("initiatorUid", a.userUID)
	o.str("actionName", as.name)
	o.str("status", as.status)
	if _, ok := o.key("queryParameters"); ok {
		q := as.query
		if q == nil {
			q = map[string][]string{}
		}
		enc, _ := json.Marshal(q)
		b.Write(enc)
	}
	o.strp("requestBody", as.body)
	o.close()
}

// ---- token ----

// token is POST /api/v3/token: password and refresh_token grants, 1 h
// access tokens, single-use refresh tokens, OAuth2Error on 400 [C].
func (a *vspcAPI) token(r *http.Request, body []byte) vspcResp {
	if r.Method != http.MethodPost {
		return errMsg(http.StatusMethodNotAllowed, "The requested resource does not support http method '%s'.", r.Method)
	}
	form, err := parseTokenForm(r.Header.Get("Content-Type"), body)
	if err != nil {
		return oauthErr("invalid_request", "The request body must be application/x-www-form-urlencoded.")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.o.Now()
	switch strings.ToLower(form.Get("grant_type")) {
	case "":
		return oauthErr("invalid_request", "The grant_type parameter is missing.")
	case "password":
		if a.o.VSPC.MFA {
			// A user with MFA gets an mfa_token to complete with an
			// mfa grant, and no access token [C].
			b, _ := json.Marshal(map[string]any{"access_token": nil, "token_type": nil, "refresh_token": nil,
				"mfa_token": randomToken(), "encrypted_code": nil, "expires_in": nil})
			return vspcResp{status: http.StatusOK, body: b}
		}
		userOK := subtle.ConstantTimeCompare([]byte(form.Get("username")), []byte(a.o.Username)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(form.Get("password")), []byte(a.o.Password)) == 1
		if !userOK || !passOK {
			// The product's message for bad credentials [C].
			return oauthErr("invalid_request", "Cannot complete login due to incorrect username or password, or no sufficient rights.")
		}
	case "refresh_token":
		rt := form.Get("refresh_token")
		exp, ok := a.refresh[rt]
		delete(a.refresh, rt) // single use
		if !ok || !now.Before(exp) {
			return oauthErr("invalid_grant", "The refresh token is invalid or expired.")
		}
	case "mfa", "authorization_code", "public_key", "as":
		return oauthErr("unsupported_grant_type", "The grant type is not enabled for this user.")
	default:
		return oauthErr("unsupported_grant_type", "The grant type is not supported.")
	}
	access, refresh := randomToken(), randomToken()
	a.tokens[access] = now.Add(vspcTokenLifetime)
	a.refresh[refresh] = now.Add(vspcRefreshLifetime)
	// OAuth2Result, not wrapped in {data} [C].
	b, _ := json.Marshal(map[string]any{
		"access_token":   access,
		"token_type":     "bearer",
		"refresh_token":  refresh,
		"expires_in":     int(vspcTokenLifetime / time.Second),
		"mfa_token":      nil,
		"encrypted_code": nil,
	})
	return vspcResp{status: http.StatusOK, body: b}
}

func parseTokenForm(contentType string, body []byte) (url.Values, error) {
	mt, params, _ := mime.ParseMediaType(contentType)
	if mt == "multipart/form-data" {
		// Older docs said multipart [C]; accept it too.
		r, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", mime.FormatMediaType(mt, params))
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			return nil, err
		}
		return url.Values(r.MultipartForm.Value), nil
	}
	if mt != "" && mt != "application/x-www-form-urlencoded" {
		return nil, fmt.Errorf("unsupported content type %q", mt)
	}
	return url.ParseQuery(string(body))
}

func oauthErr(code, desc string) vspcResp {
	b, _ := json.Marshal(map[string]any{"error": code, "error_description": desc, "error_uri": nil})
	return vspcResp{status: http.StatusBadRequest, body: b}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ---- estate and test hooks ----

func (a *vspcAPI) estate() VSPCEstate {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.advance(vspcStamp(a.o.Now()))
	e := VSPCEstate{
		Plans:   make([]VSPCPlan, len(a.plans)),
		Objects: make([]VSPCPlanObject, len(a.objects)),
		Backups: a.backupsEstate(),
	}
	for i, p := range a.plans {
		vp := VSPCPlan{
			InstanceUID:               p.uid.String(),
			OriginalUID:               p.originalUID.String(),
			BackupServerUID:           p.serverUID.String(),
			Name:                      p.name,
			Type:                      p.typ,
			Status:                    p.status,
			ObjectsCount:              len(p.objects),
			PreFailoverScriptEnabled:  clonePtr(p.preEnabled),
			PostFailoverScriptEnabled: clonePtr(p.postEnabled),
			PreFailoverCommand:        clonePtr(p.preCmd),
			PostFailoverCommand:       clonePtr(p.postCmd),
		}
		if !p.tenantUID.isZero() {
			vp.TenantUID = p.tenantUID.String()
		}
		if p.last != nil {
			vp.LastSession = &VSPCPlanSession{
				InstanceUID: p.last.uid.String(),
				EndTime:     timePtr(p.last.end),
				Status:      p.last.status,
				Message:     p.last.message,
			}
		}
		e.Plans[i] = vp
	}
	for i, o := range a.objects {
		vo := VSPCPlanObject{
			InstanceUID:     o.uid.String(),
			PlanUID:         o.plan.uid.String(),
			Name:            o.name,
			HostName:        o.hostName(),
			FolderName:      o.folderName(),
			Path:            o.path(),
			BackupServerUID: o.plan.serverUID.String(),
		}
		if o.hasRS {
			rs := &o.rs
			vo.RestoreSession = &VSPCRestoreSession{
				InstanceUID:          rs.uid.String(),
				BackupStatus:         rs.status,
				RestorePointDateTime: timePtr(rs.rpTime),
				StartDateTime:        rs.start,
				EndDateTime:          timePtr(rs.end),
			}
			if !rs.rpUID.isZero() {
				s := rs.rpUID.String()
				vo.RestoreSession.RestorePointUID = &s
			}
		}
		e.Objects[i] = vo
	}
	return e
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// SetVSPCPlanStatus forces a plan's status (any BackupFailoverPlan status),
// cancelling a start or undo in progress.
func (s *Simulator) SetVSPCPlanStatus(planUID, status string) error {
	a := s.vspc
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := parseUUID(planUID)
	p := a.byUID[u]
	if !ok || p == nil {
		return fmt.Errorf("simulator: no VSPC failover plan %q", planUID)
	}
	valid := false
	for _, st := range vspcPlanStatuses {
		if st == status {
			valid = true
		}
	}
	if !valid {
		return fmt.Errorf("simulator: invalid VSPC plan status %q", status)
	}
	if p.action != nil {
		if as := p.action.async; as != nil && as.status == "running" {
			as.status, as.ended = "canceled", vspcStamp(a.o.Now())
			as.result = errMsg(http.StatusConflict, "The action was canceled.")
		}
		p.action = nil
		delete(a.active, p)
	}
	p.status = status
	return nil
}

// SetVSPCActionOutcome sets how the plan starts and undos that begin from
// now on end: "Success" (the default), "Warning" (start: plan Completed) or
// "Failed" (start: plan Failed, every other object failed; undo: plan
// UndoFailed). It panics on any other value.
func (s *Simulator) SetVSPCActionOutcome(outcome string) {
	switch outcome {
	case vspcSuccess, "Warning", vspcFailed:
	default:
		panic(fmt.Sprintf("simulator: invalid VSPC action outcome %q", outcome))
	}
	s.vspc.mu.Lock()
	defer s.vspc.mu.Unlock()
	s.vspc.outcome = outcome
}

// VSPCPlanStarts counts the starts of a plan actually executed (replays of
// an X-Request-id and refused starts do not count).
func (s *Simulator) VSPCPlanStarts(planUID string) int {
	return s.vspc.count(planUID, false)
}

// VSPCPlanUndos counts the undos of a plan actually executed.
func (s *Simulator) VSPCPlanUndos(planUID string) int {
	return s.vspc.count(planUID, true)
}

func (a *vspcAPI) count(planUID string, undo bool) int {
	u, ok := parseUUID(planUID)
	if !ok {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if undo {
		return a.undos[u]
	}
	return a.starts[u]
}
