package simulator

// The fake Veeam Backup Enterprise Manager REST API (veeam-api.md §2).
//
// Facts marked [C] in veeam-api.md are followed exactly; where the reference
// says [I] or [?], the choice made here is said in a comment.

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// emSessionHeader carries the logon token, as a header or a cookie [C].
	emSessionHeader = "X-RestSvcSessionId"
	// emIdleTimeout is the idle lifetime of a logon session [C].
	emIdleTimeout = 15 * time.Minute
	// emSessionWindow is how far back cloud failover sessions are returned [C].
	emSessionWindow = 30 * 24 * time.Hour
	// emMaxBody bounds request bodies.
	emMaxBody = 1 << 20
)

// emLogon is a logon session: SessionId is a UUID, the token a separate
// base64 string [C: logging_on example].
type emLogon struct {
	id, token, user string
	last            time.Time
}

// emTaskRec is a task. Its state is a function of the clock: Running for
// ActionDuration, then OperationFinished (the backup server is done, EM has
// not collected the data yet) for half of it, then Finished.
type emTaskRec struct {
	num            int
	logon          string // logon session id: tasks are scoped to it [C]
	op             string
	planUID        string
	vmUID          string
	created        time.Time
	dur            time.Duration
	success        bool
	failure        string
	restoreSession string // StartFailover: the RestoreSession linked when finished
	deleted        bool
}

func (t *emTaskRec) id() string { return "task-" + strconv.Itoa(t.num) }

// at is the task's state and result at now.
func (t *emTaskRec) at(now time.Time) (string, *emTaskResult) {
	el := now.Sub(t.created)
	switch {
	case el < t.dur:
		return "Running", nil
	case el < t.dur+t.dur/2:
		// [C] example: OperationFinished with Success="true" and Message
		// "OperationFinished"; a failure carries its message already [I].
		if t.success {
			return "OperationFinished", &emTaskResult{Success: true, Message: "OperationFinished"}
		}
		return "OperationFinished", &emTaskResult{Success: false, Message: t.failure}
	}
	if t.success {
		return "Finished", &emTaskResult{Success: true, Message: "Ok"}
	}
	return "Finished", &emTaskResult{Success: false, Message: t.failure}
}

// emAPI is the Enterprise Manager handler and its state.
type emAPI struct {
	username, password string
	now                func() time.Time
	dur                time.Duration

	mu          sync.Mutex
	servers     []emServerRec
	plans       []*emPlanRec
	planByID    map[string]*emPlanRec
	cdps        []*emCdpRec
	cdpByID     map[string]*emCdpRec
	sessions    []*emSessionRec // sorted by creation time
	sessionByID map[string]*emSessionRec
	logons      map[string]*emLogon // by token
	tasks       []*emTaskRec        // task-N is tasks[N-1]
	taskFail    bool
	ids         *mrand.Rand // ids made at run time
	planStarts  map[string]int
	planUndos   map[string]int
	cdpFailover map[string]int

	restores      map[string]*emRestoreRec
	restoreResult string
	// finishAtSubmission: plan start/undo tasks are Finished ("Ok") at
	// once (EMOptions.TasksFinishAtSubmission).
	finishAtSubmission bool
}

// newEM builds the EM estate from the options.
func newEM(o *Options) *emAPI {
	a := &emAPI{
		username:    o.Username,
		password:    o.Password,
		now:         o.Now,
		dur:         o.ActionDuration,
		planByID:    make(map[string]*emPlanRec),
		cdpByID:     make(map[string]*emCdpRec),
		sessionByID: make(map[string]*emSessionRec),
		logons:      make(map[string]*emLogon),
		ids:         emRand(o.Seed, 99),
		planStarts:  make(map[string]int),
		planUndos:   make(map[string]int),
		cdpFailover: make(map[string]int),
		restores:    make(map[string]*emRestoreRec),

		finishAtSubmission: o.EM.TasksFinishAtSubmission,
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.dur < 0 {
		a.dur = 0
	}
	a.generate(o.Seed, o.EM.sized(), a.now())
	return a
}

// expireAuth ends every logon session.
func (a *emAPI) expireAuth() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.logons)
}

// writeError writes an EM Error body in XML. The core calls it for injected
// faults and has no request at hand; writeErrorFor answers in the format the
// request asked for and should be preferred when the request is known
// (core: check for interface{ writeErrorFor(http.ResponseWriter, *http.Request, int, string) }).
func (a *emAPI) writeError(w http.ResponseWriter, status int, message string) {
	emWriteError(w, false, status, message)
}

// writeErrorFor writes an EM Error body, JSON when the request accepts it.
func (a *emAPI) writeErrorFor(w http.ResponseWriter, r *http.Request, status int, message string) {
	emWriteError(w, emWantsJSON(r), status, message)
}

func emWriteError(w http.ResponseWriter, asJSON bool, status int, message string) {
	e := emError{Message: message, StatusCode: status}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Basic Realm=RestSvc")
	}
	if asJSON {
		body, _ := emMarshalJSON(e)
		emWriteBody(w, status, "application/json; charset=utf-8", body)
		return
	}
	body, _ := emMarshalXML("Error", e)
	emWriteBody(w, status, "application/xml; charset=utf-8", body)
}

func emWriteBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	// Seen on Windows EM [C: benyoung blog].
	h.Set("Server", "Microsoft-HTTPAPI/2.0")
	if body != nil {
		h.Set("Content-Type", contentType)
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// emWantsJSON: JSON when Accept contains application/json anywhere, XML
// otherwise [C].
func emWantsJSON(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Accept")), "application/json")
}

// write answers with v as XML (root element root) or JSON.
func (a *emAPI) write(w http.ResponseWriter, r *http.Request, status int, root string, v any) {
	var (
		body []byte
		err  error
		ct   string
	)
	if emWantsJSON(r) {
		body, err = emMarshalJSON(v)
		ct = "application/json; charset=utf-8"
	} else {
		body, err = emMarshalXML(root, v)
		ct = "application/xml; charset=utf-8"
	}
	if err != nil {
		a.writeErrorFor(w, r, http.StatusInternalServerError, "Failed to serialize the response: "+err.Error())
		return
	}
	emWriteBody(w, status, ct, body)
}

// emMarshalJSON encodes without Go's HTML escaping (EM writes "&" in Href
// values as is).
func emMarshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// emBase is the API root as the client addressed it, for Href values.
func emBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/api"
}

// emParams splits a raw query on '&' only: EM filters use ';' for AND,
// which url.ParseQuery would reject.
func emParams(raw string) [][2]string {
	var out [][2]string
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

// emParam is a query parameter, its name matched case-insensitively.
func emParam(r *http.Request, name string) (string, bool) {
	for _, kv := range emParams(r.URL.RawQuery) {
		if strings.EqualFold(kv[0], name) {
			return kv[1], true
		}
	}
	return "", false
}

func emIsEntity(r *http.Request) bool {
	f, _ := emParam(r, "format")
	return strings.EqualFold(f, "Entity")
}

// emBareID turns urn:veeam:Type:uuid or uuid into the lower-case uuid.
func emBareID(id string) string {
	if i := strings.LastIndexByte(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	return strings.ToLower(id)
}

func (a *emAPI) allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	a.writeErrorFor(w, r, http.StatusMethodNotAllowed, "Method "+r.Method+" is not allowed for this resource.")
	return false
}

// ServeHTTP routes /api/... requests. Path segments are matched
// case-insensitively, as IIS-hosted EM does [I].
func (a *emAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if len(p) < 4 || !strings.EqualFold(p[:4], "/api") || (len(p) > 4 && p[4] != '/') {
		a.writeErrorFor(w, r, http.StatusNotFound, "Resource "+p+" is not found.")
		return
	}
	var segs []string
	for s := range strings.SplitSeq(p[4:], "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	low := make([]string, len(segs))
	for i, s := range segs {
		low[i] = strings.ToLower(s)
	}
	switch {
	case len(segs) == 0:
		a.root(w, r)
		return
	case len(segs) == 1 && low[0] == "sessionmngr":
		a.logon(w, r)
		return
	}
	lg := a.authenticate(w, r)
	if lg == nil {
		return
	}
	n := len(segs)
	switch {
	case low[0] == "logonsessions" && n <= 2:
		a.logonSessions(w, r, lg, segs[1:])
	case low[0] == "failoverplans" && n == 1:
		if a.allow(w, r, http.MethodGet) {
			a.listPlans(w, r)
		}
	case low[0] == "failoverplans" && n == 2:
		a.plan(w, r, lg, segs[1])
	case low[0] == "tasks" && n <= 2:
		a.taskRoute(w, r, lg, segs[1:])
	case low[0] == "cdpreplicas" && (n <= 2 || n <= 4 && low[2] == "vms"):
		a.cdpRoute(w, r, lg, segs[1:])
	case n >= 2 && n <= 3 && low[0] == "cloud" && low[1] == "failoversessions":
		if a.allow(w, r, http.MethodGet) {
			a.cloudSessions(w, r, segs[2:])
		}
	case low[0] == "backupservers" && n <= 2:
		if a.allow(w, r, http.MethodGet) {
			a.backupServers(w, r, segs[1:])
		}
	case low[0] == "restoresessions" && n == 2:
		if a.allow(w, r, http.MethodGet) {
			a.restoreSessions(w, r, segs[1:])
		}
	case low[0] == "query" && n == 1:
		if a.allow(w, r, http.MethodGet) {
			a.query(w, r, lg)
		}
	default:
		a.writeErrorFor(w, r, http.StatusNotFound, "Resource "+p+" is not found.")
	}
}

// root answers GET /api/ without authentication [C].
func (a *emAPI) root(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, http.MethodGet) {
		return
	}
	base := emBase(r)
	links := []emLink{
		{Rel: "Down", Href: base + "/logonSessions", Type: "LogonSessionList"},
		{Rel: "Create", Href: base + "/sessionMngr/?v=latest", Type: "LogonSession"},
	}
	v := emEnterpriseManager{XLinks: links, Links: links}
	for _, ver := range []string{"v1_5", "v1_6", "v1_7"} {
		v.SupportedVersions.SupportedVersions = append(v.SupportedVersions.SupportedVersions, emSupportedVersion{
			Name:  ver,
			Links: []emLink{{Rel: "Create", Href: base + "/sessionMngr/?v=" + ver, Type: "LogonSession"}},
		})
	}
	a.write(w, r, http.StatusOK, "EnterpriseManager", v)
}

// logon is POST /api/sessionMngr/?v=latest with Basic credentials [C].
func (a *emAPI) logon(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, http.MethodPost) {
		return
	}
	// Versions 1.4 and earlier are unsupported [C]; no v means latest [I].
	switch v, _ := emParam(r, "v"); strings.ToLower(v) {
	case "", "latest", "v1_5", "v1_6", "v1_7":
	default:
		a.writeErrorFor(w, r, http.StatusBadRequest, "Version "+v+" of the REST API is not supported.")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(a.username)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(a.password)) != 1 {
		a.writeErrorFor(w, r, http.StatusUnauthorized, "Authentication failed: invalid user name or password.")
		return
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	lg := &emLogon{id: emRandomUUID(), token: base64.StdEncoding.EncodeToString(tok[:]), user: user}
	a.mu.Lock()
	lg.last = a.now()
	a.logons[lg.token] = lg
	a.mu.Unlock()

	w.Header().Set(emSessionHeader, lg.token)
	w.Header().Add("Set-Cookie", emSessionHeader+"="+lg.token+"; Path=/api;")
	a.write(w, r, http.StatusCreated, "LogonSession", a.logonView(emBase(r), lg))
}

func emRandomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// authenticate finds the logon session of a request, or answers 401. The
// cookie wins over the header when both are sent [C].
func (a *emAPI) authenticate(w http.ResponseWriter, r *http.Request) *emLogon {
	tok := r.Header.Get(emSessionHeader)
	if c, err := r.Cookie(emSessionHeader); err == nil && c.Value != "" {
		tok = c.Value
	}
	if tok == "" {
		a.writeErrorFor(w, r, http.StatusUnauthorized, "Authentication required: create a logon session with POST /api/sessionMngr/ and send its X-RestSvcSessionId.")
		return nil
	}
	a.mu.Lock()
	now := a.now()
	lg := a.logons[tok]
	if lg != nil && now.Sub(lg.last) >= emIdleTimeout {
		delete(a.logons, tok)
		lg = nil
	}
	if lg != nil {
		lg.last = now
	}
	a.mu.Unlock()
	if lg == nil {
		// The 401 after the idle timeout is [I]; the message is [I].
		a.writeErrorFor(w, r, http.StatusUnauthorized, "The logon session has expired or does not exist. Log on again.")
		return nil
	}
	return lg
}

func (a *emAPI) logonView(base string, lg *emLogon) emLogonSession {
	href := base + "/logonSessions/" + lg.id
	links := []emLink{
		{Rel: "Up", Href: base + "/", Type: "EnterpriseManager"},
		{Rel: "Down", Href: base + "/backupServers", Type: "BackupServerReferenceList"},
		{Rel: "Down", Href: base + "/failoverPlans", Type: "FailoverPlanReferenceList"},
		{Rel: "Down", Href: base + "/cdpReplicas", Type: "CdpReplicaReferenceList"},
		{Rel: "Down", Href: base + "/cloud/failoverSessions", Type: "CloudFailoverSessionReferenceList"},
		{Rel: "Down", Href: base + "/tasks", Type: "TaskList"},
		{Rel: "Down", Href: base + "/querySvc", Type: "QueryService"},
		{Rel: "Down", Href: base + "/backupServers?format=Entity", Type: "BackupServerList"},
		{Rel: "Down", Href: base + "/failoverPlans?format=Entity", Type: "FailoverPlanList"},
		{Rel: "Delete", Href: href},
	}
	return emLogonSession{XLinks: links, Links: links, UserName: lg.user, SessionID: lg.id, Href: href, Type: "LogonSession"}
}

// logonSessions serves /api/logonSessions[/{id}]. A session sees and may
// delete only itself [I]; so a client that lists and deletes the first
// entry (peekjef72) logs itself out.
func (a *emAPI) logonSessions(w http.ResponseWriter, r *http.Request, lg *emLogon, rest []string) {
	base := emBase(r)
	if len(rest) == 0 {
		if a.allow(w, r, http.MethodGet) {
			a.write(w, r, http.StatusOK, "LogonSessions", emLogonSessionList{LogonSessions: []emLogonSession{a.logonView(base, lg)}})
		}
		return
	}
	if !a.allow(w, r, http.MethodGet, http.MethodDelete) {
		return
	}
	if !strings.EqualFold(rest[0], lg.id) {
		a.writeErrorFor(w, r, http.StatusNotFound, "Logon session "+rest[0]+" is not found.")
		return
	}
	if r.Method == http.MethodDelete {
		a.mu.Lock()
		delete(a.logons, lg.token)
		a.mu.Unlock()
		emWriteBody(w, http.StatusNoContent, "", nil)
		return
	}
	a.write(w, r, http.StatusOK, "LogonSession", a.logonView(base, lg))
}

// --- backup servers ---------------------------------------------------

func (a *emAPI) serverLink(base string, i int) emLink {
	s := a.servers[i]
	return emLink{Rel: "Up", Href: base + "/backupServers/" + s.uid, Name: s.name, Type: "BackupServerReference"}
}

func (a *emAPI) backupServers(w http.ResponseWriter, r *http.Request, rest []string) {
	base := emBase(r)
	ref := func(i int) emRef {
		s := a.servers[i]
		href := base + "/backupServers/" + s.uid
		return emRef{
			Links: []emLink{{Rel: "Alternate", Href: href + "?format=Entity", Name: s.name, Type: "BackupServer"}},
			UID:   "urn:veeam:BackupServer:" + s.uid, Name: s.name, Href: href, Type: "BackupServerReference",
		}
	}
	ent := func(i int) emBackupServer {
		s := a.servers[i]
		href := base + "/backupServers/" + s.uid
		links := []emLink{{Rel: "Alternate", Href: href, Name: s.name, Type: "BackupServerReference"}}
		return emBackupServer{
			XLinks: links, Links: links, Description: "Backup server " + s.name, Port: 9392, Version: "13.0.1.1071",
			Name: s.name, UID: "urn:veeam:BackupServer:" + s.uid, Href: href + "?format=Entity", Type: "BackupServer",
		}
	}
	if len(rest) == 0 {
		if emIsEntity(r) {
			var l emBackupServerList
			for i := range a.servers {
				l.BackupServers = append(l.BackupServers, ent(i))
			}
			a.write(w, r, http.StatusOK, "BackupServers", l)
			return
		}
		var l emRefList
		for i := range a.servers {
			l.Refs = append(l.Refs, ref(i))
		}
		a.write(w, r, http.StatusOK, "EntityReferences", l)
		return
	}
	for i, s := range a.servers {
		if s.uid == emBareID(rest[0]) {
			if emIsEntity(r) {
				a.write(w, r, http.StatusOK, "BackupServer", ent(i))
			} else {
				a.write(w, r, http.StatusOK, "EntityRef", ref(i))
			}
			return
		}
	}
	a.writeErrorFor(w, r, http.StatusNotFound, "Backup server "+rest[0]+" is not found.")
}

// --- failover plans -----------------------------------------------------

func (a *emAPI) planRef(base string, p *emPlanRec) emRef {
	return a.entityRef(base, p.server, base+"/failoverPlans/"+p.uid, "FailoverPlan", p.uid, p.name)
}

// entityRef is the reference form EM gives every entity: an Up link to its
// backup server, an Alternate link to its entity form, and a URN UID.
func (a *emAPI) entityRef(base string, server int, href, typ, uid, name string) emRef {
	return emRef{
		Links: []emLink{
			a.serverLink(base, server),
			{Rel: "Alternate", Href: href + "?format=Entity", Name: name, Type: typ},
		},
		UID: "urn:veeam:" + typ + ":" + uid, Name: name, Href: href, Type: typ + "Reference",
	}
}

func (a *emAPI) planEntity(base string, p *emPlanRec) emFailoverPlan {
	href := base + "/failoverPlans/" + p.uid
	links := []emLink{
		a.serverLink(base, p.server),
		{Rel: "Alternate", Href: href, Name: p.name, Type: "FailoverPlanReference"},
		{Rel: "Edit", Href: href, Name: p.name, Type: "FailoverPlan"},
		{Rel: "Start", Href: href + "?action=start", Type: "Task"},
		{Rel: "Undo", Href: href + "?action=undo", Type: "Task"},
	}
	e := emFailoverPlan{
		XLinks: links, Links: links, Description: p.desc,
		Name: p.name, UID: "urn:veeam:FailoverPlan:" + p.uid, Href: href + "?format=Entity", Type: "FailoverPlan",
	}
	for _, v := range p.vms {
		e.FailoverPlanInfo.Includes.FailoveredVms = append(e.FailoverPlanInfo.Includes.FailoveredVms, emFailoveredVM{
			FailoveredVMID: v.id, HierarchyObjRef: v.ref, Name: v.name, DisplayName: v.name, Order: v.order,
		})
	}
	return e
}

func (a *emAPI) listPlans(w http.ResponseWriter, r *http.Request) {
	// Plans do not change after generation, so they are read unlocked.
	base := emBase(r)
	if emIsEntity(r) {
		// The entity list for ?format=Entity is [I] (documented for other collections).
		var l emFailoverPlanList
		for _, p := range a.plans {
			l.FailoverPlans = append(l.FailoverPlans, a.planEntity(base, p))
		}
		a.write(w, r, http.StatusOK, "FailoverPlans", l)
		return
	}
	var l emRefList
	for _, p := range a.plans {
		l.Refs = append(l.Refs, a.planRef(base, p))
	}
	a.write(w, r, http.StatusOK, "EntityReferences", l)
}

// plan serves GET and POST ?action=start|undo on /api/failoverPlans/{id}.
func (a *emAPI) plan(w http.ResponseWriter, r *http.Request, lg *emLogon, id string) {
	if !a.allow(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	base := emBase(r)
	p := a.planByID[emBareID(id)]
	if p == nil {
		a.writeErrorFor(w, r, http.StatusNotFound, "Failover plan with ID "+id+" is not found.")
		return
	}
	if r.Method == http.MethodGet {
		if emIsEntity(r) {
			a.write(w, r, http.StatusOK, "FailoverPlan", a.planEntity(base, p))
		} else {
			a.write(w, r, http.StatusOK, "EntityRef", a.planRef(base, p))
		}
		return
	}
	var (
		op      string
		failure string
		counter map[string]int
	)
	switch action, _ := emParam(r, "action"); strings.ToLower(action) {
	case "start":
		var spec struct {
			XMLName   xml.Name `json:"-"`
			StartNow  *bool    `xml:"StartNow" json:"StartNow"`
			StartDate *string  `xml:"StartDate" json:"StartDate"`
		}
		// Content-Type is required for start [C].
		if !a.requireContentType(w, r) || !a.decode(w, r, "FailoverPlanManagementSpec", &spec) {
			return
		}
		startNow := spec.StartNow != nil && *spec.StartNow
		if !startNow && spec.StartDate == nil {
			a.writeErrorFor(w, r, http.StatusBadRequest, "FailoverPlanManagementSpec must set StartNow to true or specify StartDate.")
			return
		}
		if !startNow {
			if _, err := emParseTime(*spec.StartDate); err != nil {
				a.writeErrorFor(w, r, http.StatusBadRequest, "The value '"+*spec.StartDate+"' of StartDate is not a valid DateTime.")
				return
			}
		}
		op, counter = "StartFailoverPlan", a.planStarts
		failure = fmt.Sprintf("Failover plan %q failed: replica of VM %s is not ready for failover.", p.name, emFirstVM(p))
	case "undo":
		// No body [C].
		op, counter = "UndoFailoverPlan", a.planUndos
		failure = fmt.Sprintf("Undo of failover plan %q failed: cannot revert VM %s to its original state.", p.name, emFirstVM(p))
	case "":
		a.writeErrorFor(w, r, http.StatusBadRequest, "The action query parameter is required.")
		return
	default:
		a.writeErrorFor(w, r, http.StatusBadRequest, "Action "+action+" is not supported for failover plans.")
		return
	}
	a.mu.Lock()
	// Starting a plan whose previous task still runs is accepted too: EM
	// queues the request on the backup server [I]. Every request counts.
	counter[p.uid]++
	t := a.newTask(lg, op, p.uid, "", failure)
	v := a.taskView(base, t, t.created, true)
	a.mu.Unlock()
	a.write(w, r, http.StatusAccepted, "Task", v)
}

func emFirstVM(p *emPlanRec) string {
	if len(p.vms) == 0 {
		return "(none)"
	}
	return p.vms[0].name
}

// requireContentType answers 415 unless the request declares an XML or
// JSON body [C: Content-Type required on start; 415 is I].
func (a *emAPI) requireContentType(w http.ResponseWriter, r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil {
		switch mt {
		case "application/xml", "text/xml", "application/json":
			return true
		}
	}
	a.writeErrorFor(w, r, http.StatusUnsupportedMediaType, "The Content-Type header must be application/xml or application/json.")
	return false
}

// decode reads a request body into v. EM picks the body format from the
// Accept header, not from Content-Type: with Accept containing
// application/json an XML body fails with 400 "Node [root] does not exist."
// [C: benyoung], and a JSON body without the JSON Accept fails as XML [C].
func (a *emAPI) decode(w http.ResponseWriter, r *http.Request, root string, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, emMaxBody))
	if err != nil {
		a.writeErrorFor(w, r, http.StatusBadRequest, "Failed to read the request body.")
		return false
	}
	body = bytes.TrimSpace(body)
	if emWantsJSON(r) {
		if len(body) == 0 || body[0] != '{' {
			a.writeErrorFor(w, r, http.StatusBadRequest, "Node [root] does not exist.")
			return false
		}
		if err := json.Unmarshal(body, v); err != nil {
			a.writeErrorFor(w, r, http.StatusBadRequest, "The request body is not a valid "+root+": "+err.Error())
			return false
		}
		return true
	}
	if len(body) == 0 {
		a.writeErrorFor(w, r, http.StatusBadRequest, "The request body is empty; "+root+" is expected.")
		return false
	}
	// .NET XmlSerializer's messages [I].
	if err := xml.Unmarshal(body, v); err != nil {
		a.writeErrorFor(w, r, http.StatusBadRequest, "There is an error in XML document (1, 1). Data at the root level is invalid.")
		return false
	}
	var start struct{ XMLName xml.Name }
	_ = xml.Unmarshal(body, &start)
	if start.XMLName.Local != root {
		a.writeErrorFor(w, r, http.StatusBadRequest, "There is an error in XML document (1, 2). <"+start.XMLName.Local+" xmlns='"+start.XMLName.Space+"'> was not expected.")
		return false
	}
	return true
}

// emParseTime reads an xs:dateTime; without a zone it is UTC.
func emParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid DateTime %q", s)
}

// --- tasks ------------------------------------------------------------

// newTask records a task; a.mu must be held.
func (a *emAPI) newTask(lg *emLogon, op, planUID, vmUID, failure string) *emTaskRec {
	t := &emTaskRec{
		num: len(a.tasks) + 1, logon: lg.id, op: op, planUID: planUID, vmUID: vmUID,
		created: a.now(), dur: a.dur, success: !a.taskFail, failure: failure,
	}
	if op == "StartFailover" {
		t.restoreSession = emUUID(a.ids)
	} else if a.finishAtSubmission {
		t.dur = 0
	}
	a.tasks = append(a.tasks, t)
	return t
}

// taskOrder lists the tasks that were not deleted, oldest first; a.mu held.
func (a *emAPI) taskOrder() []int {
	var out []int
	for _, t := range a.tasks {
		if !t.deleted {
			out = append(out, t.num)
		}
	}
	return out
}

// taskView renders a task at now; running forces the Running state of a
// freshly accepted task.
func (a *emAPI) taskView(base string, t *emTaskRec, now time.Time, running bool) emTask {
	state, res := t.at(now)
	if running {
		state, res = "Running", nil
	}
	href := base + "/tasks/" + t.id()
	links := []emLink{{Rel: "Delete", Href: href, Type: "Task"}}
	if state == "Finished" && t.restoreSession != "" {
		links = append(links, emLink{Rel: "Related", Href: base + "/restoreSessions/" + t.restoreSession + "?format=Entity", Type: "RestoreSession"})
	}
	return emTask{XLinks: links, Links: links, TaskID: t.id(), State: state, Operation: t.op, Result: res, Href: href, Type: "Task"}
}

// ownTask finds a task of the logon session; a.mu held.
func (a *emAPI) ownTask(lg *emLogon, id string) *emTaskRec {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.ToLower(id), "task-"))
	if err != nil || n < 1 || n > len(a.tasks) {
		return nil
	}
	t := a.tasks[n-1]
	if t.deleted || t.logon != lg.id {
		return nil
	}
	return t
}

func (a *emAPI) taskRoute(w http.ResponseWriter, r *http.Request, lg *emLogon, rest []string) {
	base := emBase(r)
	if len(rest) == 0 {
		if !a.allow(w, r, http.MethodGet) {
			return
		}
		a.mu.Lock()
		now := a.now()
		var l emTaskList
		for _, num := range a.taskOrder() {
			if t := a.tasks[num-1]; t.logon == lg.id {
				l.Tasks = append(l.Tasks, a.taskView(base, t, now, false))
			}
		}
		a.mu.Unlock()
		a.write(w, r, http.StatusOK, "Tasks", l)
		return
	}
	if !a.allow(w, r, http.MethodGet, http.MethodDelete) {
		return
	}
	a.mu.Lock()
	t := a.ownTask(lg, rest[0])
	var v emTask
	if t != nil {
		if r.Method == http.MethodDelete {
			t.deleted = true
		} else {
			v = a.taskView(base, t, a.now(), false)
		}
	}
	a.mu.Unlock()
	switch {
	case t == nil:
		// Another logon session's task is not found either [C: scoped].
		a.writeErrorFor(w, r, http.StatusNotFound, "Task "+rest[0]+" is not found.")
	case r.Method == http.MethodDelete:
		emWriteBody(w, http.StatusNoContent, "", nil)
	default:
		a.write(w, r, http.StatusOK, "Task", v)
	}
}

// --- CDP replicas -----------------------------------------------------

func (a *emAPI) cdpRef(base string, c *emCdpRec) emRef {
	return a.entityRef(base, c.server, base+"/cdpReplicas/"+c.uid, "CdpReplica", c.uid, c.name)
}

func (a *emAPI) cdpEntity(base string, c *emCdpRec) emCdpReplica {
	href := base + "/cdpReplicas/" + c.uid
	links := []emLink{
		a.serverLink(base, c.server),
		{Rel: "Down", Href: href + "/vms", Type: "CdpReplicaVmReferenceList"},
		{Rel: "Up", Href: base + "/cdpPolicies/" + c.policyUID, Name: c.name, Type: "CdpPolicyReference"},
		{Rel: "Alternate", Href: href, Name: c.name, Type: "CdpReplicaReference"},
	}
	return emCdpReplica{
		XLinks: links, Links: links, BackupServer: a.servers[c.server].name, PolicyUID: c.policyUID, PolicyName: c.name,
		Name: c.name, UID: "urn:veeam:CdpReplica:" + c.uid, Href: href + "?format=Entity", Type: "CdpReplica",
	}
}

func (a *emAPI) cdpVMRef(base string, c *emCdpRec, v emCdpVMRec) emRef {
	return a.entityRef(base, c.server, base+"/cdpReplicas/"+c.uid+"/vms/"+v.uid, "CdpReplicaVm", v.uid, v.name)
}

func (a *emAPI) cdpVMEntity(base string, c *emCdpRec, v emCdpVMRec) emCdpReplicaVM {
	href := base + "/cdpReplicas/" + c.uid + "/vms/" + v.uid
	s := a.servers[c.server]
	links := []emLink{
		{Rel: "Intervals", Href: href + "?action=intervals"},
		{Rel: "Failover", Href: href + "?action=failover"},
		a.serverLink(base, c.server),
		{Rel: "Up", Href: base + "/repositories/" + s.repoUID, Name: s.repoName, Type: "RepositoryReference"},
		{Rel: "Up", Href: base + "/cdpReplicas/" + c.uid, Name: c.name, Type: "CdpReplicaReference"},
		{Rel: "Up", Href: base + "/cdpPolicies/" + c.policyUID, Name: c.name, Type: "CdpPolicyReference"},
	}
	return emCdpReplicaVM{
		XLinks: links, Links: links, VMRef: v.ref, ReplicaUID: c.uid, BackupServer: s.name,
		PolicyUID: c.policyUID, PolicyName: c.name, RepositoryName: s.repoName,
		Name: v.name, UID: "urn:veeam:CdpReplicaVm:" + v.uid, Href: href + "?format=Entity", Type: "CdpReplicaVm",
	}
}

// cdpRoute serves /api/cdpReplicas[/{id}[/vms[/{id}]]]; segments after
// cdpReplicas are in rest.
func (a *emAPI) cdpRoute(w http.ResponseWriter, r *http.Request, lg *emLogon, rest []string) {
	base := emBase(r)
	methods := []string{http.MethodGet}
	if len(rest) == 3 {
		methods = append(methods, http.MethodPost)
	}
	if !a.allow(w, r, methods...) {
		return
	}
	// CDP replicas and their VMs do not change, so they are read unlocked.
	if len(rest) == 0 {
		if emIsEntity(r) {
			var l emCdpReplicaList
			for _, c := range a.cdps {
				l.CdpReplicas = append(l.CdpReplicas, a.cdpEntity(base, c))
			}
			a.write(w, r, http.StatusOK, "CdpReplicas", l)
			return
		}
		var l emRefList
		for _, c := range a.cdps {
			l.Refs = append(l.Refs, a.cdpRef(base, c))
		}
		a.write(w, r, http.StatusOK, "EntityReferences", l)
		return
	}
	c := a.cdpByID[emBareID(rest[0])]
	if c == nil {
		a.writeErrorFor(w, r, http.StatusNotFound, "CDP replica with ID "+rest[0]+" is not found.")
		return
	}
	switch len(rest) {
	case 1:
		if emIsEntity(r) {
			a.write(w, r, http.StatusOK, "CdpReplica", a.cdpEntity(base, c))
		} else {
			a.write(w, r, http.StatusOK, "EntityRef", a.cdpRef(base, c))
		}
		return
	case 2:
		if emIsEntity(r) {
			var l emCdpReplicaVMList
			for _, v := range c.vms {
				l.CdpReplicaVms = append(l.CdpReplicaVms, a.cdpVMEntity(base, c, v))
			}
			a.write(w, r, http.StatusOK, "CdpReplicaVms", l)
			return
		}
		var l emRefList
		for _, v := range c.vms {
			l.Refs = append(l.Refs, a.cdpVMRef(base, c, v))
		}
		a.write(w, r, http.StatusOK, "EntityReferences", l)
		return
	}
	var vm *emCdpVMRec
	for i := range c.vms {
		if c.vms[i].uid == emBareID(rest[2]) {
			vm = &c.vms[i]
		}
	}
	if vm == nil {
		a.writeErrorFor(w, r, http.StatusNotFound, "VM with ID "+rest[2]+" is not found in CDP replica "+rest[0]+".")
		return
	}
	if r.Method == http.MethodGet {
		if emIsEntity(r) {
			a.write(w, r, http.StatusOK, "CdpReplicaVm", a.cdpVMEntity(base, c, *vm))
		} else {
			a.write(w, r, http.StatusOK, "EntityRef", a.cdpVMRef(base, c, *vm))
		}
		return
	}
	a.cdpFailoverAction(w, r, lg, vm)
}

// cdpFailoverAction is POST .../vms/{id}?action=failover with a
// CdpFailoverStartSpec [C]. Content-Type is not listed as required for it,
// unlike plan start, so it is not checked [I].
func (a *emAPI) cdpFailoverAction(w http.ResponseWriter, r *http.Request, lg *emLogon, vm *emCdpVMRec) {
	if action, _ := emParam(r, "action"); !strings.EqualFold(action, "failover") {
		a.writeErrorFor(w, r, http.StatusBadRequest, "Action "+action+" is not supported by the simulator for CDP replica VMs.")
		return
	}
	var spec struct {
		XMLName           xml.Name `json:"-"`
		RestoreCurrent    *bool    `xml:"RestoreCurrent" json:"RestoreCurrent"`
		RestoreCurrentVss *bool    `xml:"RestoreCurrentVss" json:"RestoreCurrentVss"`
		RestoreAtInterval *string  `xml:"RestoreAtInterval" json:"RestoreAtInterval"`
		// The documented element is RestoreAtPointinTime; the JSON example
		// spells RestoreAtPointInTime [?]: both are accepted.
		RestoreAtPointinTime *string `xml:"RestoreAtPointinTime" json:"RestoreAtPointinTime"`
		RestoreAtPointInTime *string `xml:"RestoreAtPointInTime" json:"RestoreAtPointInTime"`
	}
	if !a.decode(w, r, "CdpFailoverStartSpec", &spec) {
		return
	}
	if spec.RestoreCurrent == nil || spec.RestoreCurrentVss == nil {
		a.writeErrorFor(w, r, http.StatusBadRequest, "CdpFailoverStartSpec requires RestoreCurrent and RestoreCurrentVss.")
		return
	}
	dated := false
	for _, d := range []*string{spec.RestoreAtInterval, spec.RestoreAtPointinTime, spec.RestoreAtPointInTime} {
		if d == nil {
			continue
		}
		if _, err := emParseTime(*d); err != nil {
			a.writeErrorFor(w, r, http.StatusBadRequest, "The value '"+*d+"' is not a valid DateTime.")
			return
		}
		dated = true
	}
	if !*spec.RestoreCurrent && !*spec.RestoreCurrentVss && !dated {
		// Nothing says which point to fail over to [I].
		a.writeErrorFor(w, r, http.StatusBadRequest, "CdpFailoverStartSpec must select a restore point: RestoreCurrent, RestoreCurrentVss, RestoreAtInterval or RestoreAtPointinTime.")
		return
	}
	a.mu.Lock()
	a.cdpFailover[vm.uid]++
	t := a.newTask(lg, "StartFailover", "", vm.uid, "Failed to fail over VM "+vm.name+": no restore point matches the requested time.")
	a.newRestore(t.restoreSession, vm.name, !t.success)
	v := a.taskView(emBase(r), t, t.created, true)
	a.mu.Unlock()
	a.write(w, r, http.StatusAccepted, "Task", v)
}

// --- cloud failover sessions -----------------------------------------

// windowStart is the index of the first session of the last 30 days; a.mu held.
func (a *emAPI) windowStart(now time.Time) int {
	from := now.Add(-emSessionWindow)
	return sort.Search(len(a.sessions), func(i int) bool { return !a.sessions[i].created.Before(from) })
}

func (a *emAPI) sessionRef(base string, s *emSessionRec) emRef {
	return a.entityRef(base, s.server, base+"/cloud/failoverSessions/"+s.uid, "CloudFailoverSession", s.uid, s.name)
}

func (a *emAPI) sessionEntity(base string, s *emSessionRec, now time.Time) emCloudFailoverSession {
	href := base + "/cloud/failoverSessions/" + s.uid
	links := []emLink{
		a.serverLink(base, s.server),
		{Rel: "Alternate", Href: href, Name: s.name, Type: "CloudFailoverSessionReference"},
	}
	e := emCloudFailoverSession{
		emSessionMembers: emSessionMembers{XLinks: links, JobType: "FailoverPlan", emRunMembers: emRunMembers{
			CreationTimeUTC: s.created, State: s.state, Result: s.result, Progress: s.progress, FailureMessage: emNullString(s.failure),
		}},
		Links: links, Name: s.name, UID: "urn:veeam:CloudFailoverSession:" + s.uid, Href: href + "?format=Entity", Type: "CloudFailoverSession",
	}
	if s.end != nil {
		t := *s.end
		e.EndTimeUTC = &t
	}
	// Task sessions, one per VM, drawn from the session's seed. The first
	// carries the session's failure; the others succeeded or still run.
	for i := range s.vmCount {
		r := mrand.New(mrand.NewPCG(s.seed, uint64(i)+1000))
		name := emVMName(s.seed, i)
		point := s.created.Add(-time.Duration(1+r.IntN(12*3600)) * time.Second).Truncate(time.Second)
		t := emCloudFailoverTask{
			VMReplicaPointLink: emLink{
				Rel: "Related", Href: base + "/cloud/vmReplicaPoints/" + emUUID(r),
				Name: name + "@" + point.Format("2006-01-02 15:04:05"), Type: "CloudVmReplicaPointReference",
			},
			emRunMembers: emRunMembers{
				CreationTimeUTC: emUTCms(s.created.Add(time.Duration(i*4+2) * time.Second)),
				State:           s.state, Result: s.result, Progress: s.progress,
			},
			VMName: name,
		}
		if t.CreationTimeUTC.After(now) {
			t.CreationTimeUTC = s.created
		}
		if s.end != nil {
			end := *s.end
			t.EndTimeUTC = &end
		}
		if i == 0 {
			t.FailureMessage = emNullString(s.failure)
		} else if s.state == "Stopped" {
			t.Result = "Success"
		}
		e.CloudFailoverTasks.Tasks = append(e.CloudFailoverTasks.Tasks, t)
	}
	return e
}

// cloudSessions serves /api/cloud/failoverSessions[/{id}]: only sessions of
// the last 30 days exist for the API [C]; an older one is not found [I].
func (a *emAPI) cloudSessions(w http.ResponseWriter, r *http.Request, rest []string) {
	base := emBase(r)
	var (
		root string
		v    any
	)
	a.mu.Lock()
	now := a.now()
	from := a.windowStart(now)
	switch {
	case len(rest) == 0 && emIsEntity(r):
		var l emCloudFailoverSessionList
		for _, s := range a.sessions[from:] {
			l.CloudFailoverSessions = append(l.CloudFailoverSessions, a.sessionEntity(base, s, now))
		}
		root, v = "CloudFailoverSessions", l
	case len(rest) == 0:
		var l emRefList
		for _, s := range a.sessions[from:] {
			l.Refs = append(l.Refs, a.sessionRef(base, s))
		}
		root, v = "EntityReferences", l
	default:
		s := a.sessionByID[emBareID(rest[0])]
		switch {
		case s == nil || s.created.Before(now.Add(-emSessionWindow)):
		case emIsEntity(r):
			root, v = "CloudFailoverSession", a.sessionEntity(base, s, now)
		default:
			root, v = "EntityRef", a.sessionRef(base, s)
		}
	}
	a.mu.Unlock()
	if v == nil {
		a.writeErrorFor(w, r, http.StatusNotFound, "Cloud failover session with ID "+rest[0]+" is not found.")
		return
	}
	a.write(w, r, http.StatusOK, root, v)
}

// --- test hooks -------------------------------------------------------

// SetEMTaskOutcome decides whether EM tasks created from now on (plan
// start/undo, CDP failover) finish with Success="true" (the default) or
// with Success="false" and a failure message.
func (s *Simulator) SetEMTaskOutcome(success bool) {
	s.em.mu.Lock()
	defer s.em.mu.Unlock()
	s.em.taskFail = !success
}

// EMPlanStarts counts the accepted start requests of an EM plan (bare UUID).
func (s *Simulator) EMPlanStarts(planUID string) int {
	s.em.mu.Lock()
	defer s.em.mu.Unlock()
	return s.em.planStarts[emBareID(planUID)]
}

// EMPlanUndos counts the accepted undo requests of an EM plan.
func (s *Simulator) EMPlanUndos(planUID string) int {
	s.em.mu.Lock()
	defer s.em.mu.Unlock()
	return s.em.planUndos[emBareID(planUID)]
}

// EMCdpFailovers counts the accepted failover requests of a CDP replica VM.
func (s *Simulator) EMCdpFailovers(vmUID string) int {
	s.em.mu.Lock()
	defer s.em.mu.Unlock()
	return s.em.cdpFailover[emBareID(vmUID)]
}

// AddEMCloudSession adds a cloud failover session and returns its UID.
// Empty fields take defaults: a new UID, the first backup server, creation
// now, state Stopped with result Success and progress 100 (or result None
// while not Stopped), an end time a minute after creation when Stopped.
func (s *Simulator) AddEMCloudSession(cs EMCloudSession) string {
	a := s.em
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := &emSessionRec{uid: emBareID(cs.UID), name: cs.Name, state: cs.State, result: cs.Result,
		progress: cs.Progress, failure: cs.FailureMessage, vmCount: 1, seed: a.ids.Uint64()}
	if rec.uid == "" {
		rec.uid = emUUID(a.ids)
	}
	if rec.name == "" {
		rec.name = emTenants[0] + " Failover Plan"
	}
	for i, sv := range a.servers {
		if sv.uid == emBareID(cs.BackupServerUID) {
			rec.server = i
		}
	}
	rec.created = cs.CreationTimeUTC
	if rec.created.IsZero() {
		rec.created = a.now()
	}
	rec.created = emUTCms(rec.created)
	if rec.state == "" {
		rec.state = "Stopped"
	}
	if rec.result == "" {
		rec.result = "None"
		if rec.state == "Stopped" {
			rec.result = "Success"
		}
	}
	if rec.state == "Stopped" && rec.progress == 0 {
		rec.progress = 100
	}
	switch {
	case cs.EndTimeUTC != nil:
		t := emUTCms(*cs.EndTimeUTC)
		rec.end = &t
	case rec.state == "Stopped":
		t := rec.created.Add(time.Minute)
		rec.end = &t
	}
	if old := a.sessionByID[rec.uid]; old != nil {
		a.removeSession(old)
	}
	a.insertSession(rec)
	return rec.uid
}

// SetEMCloudSessionResult changes a cloud failover session's state and
// result, as a session that ends (or fails) would. Stopped sets the end time
// to now and progress to 100; Failed without a message gets one. It reports
// whether the session exists.
func (s *Simulator) SetEMCloudSessionResult(uid, state, result string) bool {
	a := s.em
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.sessionByID[emBareID(uid)]
	if rec == nil {
		return false
	}
	rec.state, rec.result = state, result
	if state == "Stopped" {
		rec.progress = 100
		if rec.end == nil {
			t := emUTCms(a.now())
			rec.end = &t
		}
	} else {
		rec.end = nil
		rec.progress = min(rec.progress, 99)
	}
	switch {
	case result == "Failed" && rec.failure == "":
		rec.failure = "Error: Failed to process replica VM " + emVMName(rec.seed, 0) + ": simulated failure"
	case result != "Failed" && result != "Warning":
		rec.failure = ""
	}
	return true
}

// removeSession drops a session; a.mu held.
func (a *emAPI) removeSession(s *emSessionRec) {
	for i, x := range a.sessions {
		if x == s {
			a.sessions = append(a.sessions[:i], a.sessions[i+1:]...)
			break
		}
	}
	delete(a.sessionByID, s.uid)
}
