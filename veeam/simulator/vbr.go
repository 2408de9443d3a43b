package simulator

// The Veeam Backup & Replication REST API (veeam-api.md §1): OAuth2 tokens,
// replicas, replica restore points, sessions and the four vSphere snapshot
// replica failover operations, for x-api-version 1.2-rev1 … 1.3-rev2.
//
// Facts marked [C] in veeam-api.md are followed exactly; choices for [I]/[?]
// facts are commented where they are made, tagged [I].
//
// Sessions started by the failover POSTs progress lazily: their state is
// computed from Options.Now whenever the API is read, so a fake clock drives
// them and no goroutine runs behind the handler.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// VBROptions size the B&R estate. Zero values mean 20 replicas × 3 points.
type VBROptions struct {
	Replicas         int
	PointsPerReplica int

	// MultiVMReplicas makes each replication job one replica holding the
	// points of all its VMs (2 to 4): ReplicaModel.name is then the job's
	// name and the points are named after their VMs [C: VBRSPEC
	// descriptions]. Whether VBR lists one replica per job or per VM is [?];
	// off, each VM is its own replica named "<vm>_replica". Replicas then
	// counts VMs, not replicas.
	MultiVMReplicas bool
	// GrantTypeSpelling limits the grant_type spellings /oauth2/token
	// accepts: "" any case (default), "lower" (password, refresh_token:
	// RFC 6749 and Veeam's request example) or "capitalised" (Password,
	// Refresh_token: the ELoginGrantType enum of 1.3-rev1+). Which one VBR
	// takes is [?]; the other gets 400.
	GrantTypeSpelling string
}

// VBREstate is the truth of the B&R API, in the API's own terms.
type VBREstate struct {
	Replicas []VBRReplica
	Points   []VBRReplicaPoint
	Sessions []VBRSession
}

// VBRReplica mirrors ReplicaModel/RegularReplicaModel. Type is "Regular" in
// the estate; x-api-version 1.3-rev2 emits it as "Snapshot" [C].
type VBRReplica struct {
	ID             string
	Name           string // "<vm>_replica", as in the 1.3-rev2 example; the job's name with MultiVMReplicas
	Type           string
	State          string // EReplicaState
	JobID          string
	PlatformName   string
	PlatformID     string
	PolicyUniqueID string
	CreationTime   time.Time
}

// VBRReplicaPoint mirrors ReplicaPointModel. State and AllowedOperations are
// the replica's: they follow its state machine.
type VBRReplicaPoint struct {
	ID                string
	Name              string // the VM name
	ReplicaID         string
	PlatformName      string
	PlatformID        string
	CreationTime      time.Time
	AllowedOperations []string
	State             string
	MalwareStatus     string
}

// VBRSession mirrors SessionModel. Result is "" while the session runs (the
// API sends "result": null then).
type VBRSession struct {
	ID              string
	Name            string
	JobID           string
	SessionType     string
	State           string // ESessionState
	Result          string // ESessionResult, "" while running
	Message         string
	ProgressPercent int
	CreationTime    time.Time
	EndTime         *time.Time
	InitiatedBy     string
	USN             int64
}

// VBRFailoverCall is one accepted (201) failover POST, for test assertions.
type VBRFailoverCall struct {
	// Kind is the path segment: failoverNow, plannedFailover,
	// permanentFailover or undoFailover.
	Kind       string
	PointIDs   []string
	Reason     string
	SessionIDs []string
	Time       time.Time
}

// Supported x-api-version values: the four revisions whose OpenAPI documents
// have the failover and replica paths (veeam-api.md §0.1, §1.10).
const (
	vbrV12r1 = iota
	vbrV13r0
	vbrV13r1
	vbrV13r2
)

var vbrVersions = []string{"1.2-rev1", "1.3-rev0", "1.3-rev1", "1.3-rev2"}

const (
	vbrAccessLifetime  = 900 * time.Second   // expires_in 900 [C examples]
	vbrRefreshLifetime = 14 * 24 * time.Hour // "default lifetime is 14 days" [C]
	vbrDefaultLimit    = 200                 // [C]
	vbrSeedSalt        = 0x5642525f52455354  // "VBR_REST": per-API PCG stream
	vbrZeroUUID        = "00000000-0000-0000-0000-000000000000"
)

// vbrZone is the server's UTC offset in emitted timestamps. The product
// emits local time with an offset (examples show +01:00 and +02:00); a
// fixed non-UTC offset makes clients prove they honour it [I].
var vbrZone = time.FixedZone("", 60*60)

type vbrToken struct {
	username string
	expires  time.Time
	// pair links an access token to its refresh token and back, so that
	// logout kills both [C].
	pair string
}

type vbrAPI struct {
	o *Options

	mu sync.Mutex
	// rng makes ids of runtime sessions deterministic too.
	rng       *mrand.Rand
	replicas  []*vbrReplica
	replicaBy map[string]*vbrReplica
	points    []*VBRReplicaPoint
	pointBy   map[string]*VBRReplicaPoint
	sessions  []*vbrSession
	sessionBy map[string]*vbrSession
	running   []*vbrSession
	usn       int64

	access  map[string]*vbrToken
	refresh map[string]*vbrToken

	outcome string
	hang    bool
	calls   []VBRFailoverCall

	// pointOrder caches every point sorted by a column and direction (key
	// "CreationTime/asc"): points and the fields they sort by never change
	// once the estate is built, and a list read asks for every page.
	pointOrder map[string][]*VBRReplicaPoint
}

// newVBR builds the estate. o must already carry defaults (Start applies
// them); the pointer is kept so that Now and ActionDuration are read live.
func newVBR(o *Options) *vbrAPI {
	a := &vbrAPI{
		o:         o,
		rng:       mrand.New(mrand.NewPCG(uint64(o.Seed), vbrSeedSalt)),
		replicaBy: map[string]*vbrReplica{},
		pointBy:   map[string]*VBRReplicaPoint{},
		sessionBy: map[string]*vbrSession{},
		access:    map[string]*vbrToken{},
		refresh:   map[string]*vbrToken{},
		outcome:   "Success",
	}
	a.generate(a.now())
	return a
}

func (a *vbrAPI) now() time.Time {
	if a.o.Now != nil {
		return a.o.Now()
	}
	return time.Now()
}

func (a *vbrAPI) actionDuration() time.Duration {
	if a.o.ActionDuration > 0 {
		return a.o.ActionDuration
	}
	return time.Second
}

// ServeHTTP routes one request. x-api-version is checked first, on every
// path including the token endpoint [C].
func (a *vbrAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setVBRHeaders(w.Header())
	ver, ok := a.checkVersion(w, r)
	if !ok {
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch path {
	case "/api/oauth2/token":
		if a.method(w, r, http.MethodPost) {
			a.token(w, r)
		}
		return
	case "/api/oauth2/logout":
		if !a.method(w, r, http.MethodPost) {
			return
		}
		if tok, ok := a.authorize(w, r); ok {
			a.logout(w, tok)
		}
		return
	}
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		a.writeError(w, http.StatusNotFound, "The requested resource was not found.")
		return
	}
	seg := strings.Split(rest, "/")
	var h func()
	method := http.MethodGet
	switch {
	case len(seg) == 1 && seg[0] == "replicas":
		h = func() { a.listReplicas(w, r, ver) }
	case len(seg) == 2 && seg[0] == "replicas":
		h = func() { a.getReplica(w, seg[1], ver) }
	case len(seg) == 3 && seg[0] == "replicas" && seg[2] == "replicaPoints":
		h = func() { a.listPoints(w, r, seg[1], false) }
	case len(seg) == 1 && seg[0] == "replicaPoints":
		h = func() { a.listPoints(w, r, "", true) }
	case len(seg) == 2 && seg[0] == "replicaPoints":
		h = func() { a.getPoint(w, seg[1]) }
	case len(seg) == 1 && seg[0] == "sessions":
		h = func() { a.listSessions(w, r, ver) }
	case len(seg) == 2 && seg[0] == "sessions":
		h = func() { a.getSession(w, seg[1], ver) }
	case len(seg) == 4 && seg[0] == "failover" && seg[2] == "vSphere" && seg[3] == "snapshot":
		k, found := vbrKindByPath(seg[1])
		if !found {
			a.writeError(w, http.StatusNotFound, "The requested resource was not found.")
			return
		}
		method = http.MethodPost
		h = func() { a.failover(w, r, ver, k) }
	default:
		a.writeError(w, http.StatusNotFound, "The requested resource was not found.")
		return
	}
	if !a.method(w, r, method) {
		return
	}
	if _, ok := a.authorize(w, r); ok {
		h()
	}
}

// setVBRHeaders sets the response headers of every answer [C: §1.1].
func setVBRHeaders(h http.Header) {
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "private")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("X-XSS-Protection", "1; mode=block")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	h.Set("X-Content-Type-Options", "nosniff")
}

func (a *vbrAPI) method(w http.ResponseWriter, r *http.Request, m string) bool {
	if r.Method == m {
		return true
	}
	w.Header().Set("Allow", m)
	a.writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("The HTTP method %s is not allowed for this resource.", r.Method))
	return false
}

// checkVersion enforces x-api-version. Missing → 400 UnexpectedContent;
// present but unsupported → 400 NotImplemented with the message listing the
// supported versions. [I]: the errorCode is not confirmed. The 1.3-rev2 spec's
// BadRequest examples include {"errorCode":"NotImplemented","message":"The
// specified API version is not supported."}; the wording of the list follows
// the VBR 11 capture "Unsupported RESTAPI version. The following versions are
// supported: v1.0-rev1." [C].
func (a *vbrAPI) checkVersion(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := strings.TrimSpace(r.Header.Get("x-api-version"))
	if i := slices.Index(vbrVersions, v); i >= 0 {
		return i, true
	}
	supported := "v" + strings.Join(vbrVersions, ", v")
	if v == "" {
		writeVBRError(w, http.StatusBadRequest, "UnexpectedContent",
			"Bad request: the x-api-version header is required. The following versions are supported: "+supported+".", "")
		return 0, false
	}
	writeVBRError(w, http.StatusBadRequest, "NotImplemented",
		"Bad request: Unsupported RESTAPI version. The following versions are supported: "+supported+".", "")
	return 0, false
}

type vbrErrorBody struct {
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
	// ResourceID is null when no object is involved, as in the real 401
	// capture {"errorCode":"AccessDenied","message":"Authentication
	// failed","resourceId":null} [C].
	ResourceID *string `json:"resourceId"`
}

// writeError answers in the B&R Error format, choosing errorCode from the
// status (veeam-api.md §1.4 mapping) [I].
func (a *vbrAPI) writeError(w http.ResponseWriter, status int, message string) {
	writeVBRError(w, status, vbrErrorCode(status), message, "")
}

func vbrErrorCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "UnexpectedContent"
	case http.StatusUnauthorized, http.StatusForbidden:
		return "AccessDenied"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusMethodNotAllowed:
		return "MethodNotAllowed"
	case http.StatusNotImplemented:
		return "NotImplemented"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	default:
		return "UnknownError"
	}
}

func writeVBRError(w http.ResponseWriter, status int, code, message, resourceID string) {
	body := vbrErrorBody{ErrorCode: code, Message: message}
	if resourceID != "" {
		body.ResourceID = &resourceID
	}
	writeVBRJSON(w, status, body)
}

func writeVBRJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errorCode":"UnknownError","message":"The request could not be processed.","resourceId":null}`)
	}
	setVBRHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// expireAuth makes every access token expired (the next request gets 401
// ExpiredToken) and forgets every refresh token, so clients must log in
// with the password again.
func (a *vbrAPI) expireAuth() {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.access {
		if now.Before(t.expires) {
			t.expires = now
		}
	}
	clear(a.refresh)
}

// --- authentication ---------------------------------------------------------

type vbrTokenModel struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Issued       string `json:".issued"`
	Expires      string `json:".expires"`
}

// token serves POST /api/oauth2/token: form-encoded TokenLoginSpec with
// grant_type matched case-insensitively (1.3-rev1+ specs capitalise the enum
// while clients send either) [I].
func (a *vbrAPI) token(w http.ResponseWriter, r *http.Request) {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		a.writeError(w, http.StatusBadRequest, "The request body must be application/x-www-form-urlencoded.")
		return
	}
	if err := r.ParseForm(); err != nil {
		a.writeError(w, http.StatusBadRequest, "The request body is malformed.")
		return
	}
	f := r.PostForm
	now := a.now()
	shortTerm := strings.EqualFold(f.Get("use_short_term_refresh"), "true")
	if g := f.Get("grant_type"); g != "" && !vbrGrantSpellingOK(a.o.VBR.GrantTypeSpelling, g) {
		writeVBRError(w, http.StatusBadRequest, "UnexpectedContent", fmt.Sprintf("The grant type %q is not supported.", g), "")
		return
	}
	switch strings.ToLower(f.Get("grant_type")) {
	case "password":
		user, pass := f.Get("username"), f.Get("password")
		if user == "" || pass == "" {
			a.writeError(w, http.StatusBadRequest, "The username and password parameters are required for the password grant type.")
			return
		}
		// User names are Windows accounts: case-insensitive [I].
		if !strings.EqualFold(user, a.o.Username) || pass != a.o.Password {
			writeVBRError(w, http.StatusUnauthorized, "AccessDenied", "Authentication failed", "") // [C]
			return
		}
		writeVBRJSON(w, http.StatusOK, a.issue(user, now, shortTerm))
	case "refresh_token":
		rt := f.Get("refresh_token")
		if rt == "" {
			a.writeError(w, http.StatusBadRequest, "The refresh_token parameter is required for the refresh_token grant type.")
			return
		}
		a.mu.Lock()
		t, ok := a.refresh[rt]
		if ok {
			// Single use [C]: the token is gone whether or not it was
			// still valid.
			delete(a.refresh, rt)
		}
		a.mu.Unlock()
		if !ok || !now.Before(t.expires) {
			// [I]: an unknown, used or expired refresh token gets 400
			// InvalidToken, like OAuth2's invalid_grant (RFC 6749 §5.2), and
			// distinct from the 401 of a bad password. Clients should fall
			// back to a password grant on any refresh failure.
			writeVBRError(w, http.StatusBadRequest, "InvalidToken", "The refresh token is invalid, expired or has already been used.", "")
			return
		}
		writeVBRJSON(w, http.StatusOK, a.issue(t.username, now, shortTerm))
	case "":
		a.writeError(w, http.StatusBadRequest, "The grant_type parameter is required.")
	default:
		// authorization_code and vbr_token exist in ELoginGrantType but are
		// not simulated [I].
		a.writeError(w, http.StatusBadRequest, fmt.Sprintf("The grant type %q is not supported.", f.Get("grant_type")))
	}
}

// vbrGrantSpellingOK checks a grant_type against VBROptions.GrantTypeSpelling.
func vbrGrantSpellingOK(spelling, g string) bool {
	switch spelling {
	case "lower":
		return g == strings.ToLower(g)
	case "capitalised":
		return g[:1] == strings.ToUpper(g[:1]) && g[1:] == strings.ToLower(g[1:])
	}
	return true
}

func (a *vbrAPI) issue(user string, now time.Time, shortTerm bool) vbrTokenModel {
	at, rt := newVBRJWT(user, "access", now), newVBRJWT(user, "refresh", now)
	refreshLife := vbrRefreshLifetime
	if shortTerm {
		refreshLife = vbrAccessLifetime + 15*time.Minute // [C: TokenLoginSpec]
	}
	a.mu.Lock()
	a.pruneTokensLocked(now)
	a.access[at] = &vbrToken{username: user, expires: now.Add(vbrAccessLifetime), pair: rt}
	a.refresh[rt] = &vbrToken{username: user, expires: now.Add(refreshLife), pair: at}
	a.mu.Unlock()
	n := now.In(vbrZone)
	return vbrTokenModel{
		AccessToken:  at,
		TokenType:    "bearer",
		RefreshToken: rt,
		ExpiresIn:    int(vbrAccessLifetime / time.Second),
		Issued:       n.Format(time.RFC3339),
		Expires:      n.Add(vbrAccessLifetime).Format(time.RFC3339),
	}
}

// pruneTokensLocked drops tokens that expired long ago, so long runs with
// many logins do not grow without bound. Recently expired access tokens
// are kept to answer ExpiredToken rather than InvalidToken.
func (a *vbrAPI) pruneTokensLocked(now time.Time) {
	if len(a.access) < 1024 {
		return
	}
	for k, t := range a.access {
		if now.Sub(t.expires) > time.Hour {
			delete(a.access, k)
		}
	}
	for k, t := range a.refresh {
		if !now.Before(t.expires) {
			delete(a.refresh, k)
		}
	}
}

// newVBRJWT makes an opaque token that looks like the product's RS512 JWTs.
// Clients must not parse it.
func newVBRJWT(user, aud string, now time.Time) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"RS512","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"unique_name": user, "aud": aud, "jti": rand.Text(),
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(vbrAccessLifetime).Unix(),
	})
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	return header + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(sig)
}

// authorize checks the bearer token. Missing → 401 AccessDenied with the
// 1.3-rev2 example message; unknown → 401 InvalidToken; expired (by
// Options.Now, logout or expireAuth) → 401 ExpiredToken [I: §1.4 mapping].
func (a *vbrAPI) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if h == "" || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeVBRError(w, http.StatusUnauthorized, "AccessDenied", "Unauthorized. Get bearer JWT token at /api/login", "")
		return "", false
	}
	now := a.now()
	a.mu.Lock()
	t, ok := a.access[tok]
	expired := ok && !now.Before(t.expires)
	a.mu.Unlock()
	switch {
	case !ok:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeVBRError(w, http.StatusUnauthorized, "InvalidToken", "The access token is invalid.", "")
		return "", false
	case expired:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="The token expired"`)
		writeVBRError(w, http.StatusUnauthorized, "ExpiredToken", "The access token has expired.", "")
		return "", false
	}
	return tok, true
}

// logout expires the access token and its refresh token [C]; the body is
// EmptySuccessResponse {} [I].
func (a *vbrAPI) logout(w http.ResponseWriter, tok string) {
	now := a.now()
	a.mu.Lock()
	if t, ok := a.access[tok]; ok {
		delete(a.refresh, t.pair)
		if now.Before(t.expires) {
			t.expires = now
		}
	}
	a.mu.Unlock()
	writeVBRJSON(w, http.StatusOK, struct{}{})
}

// --- test hooks -------------------------------------------------------------

// SetVBRSessionOutcome sets the result ("Success", "Warning" or "Failed") of
// B&R failover sessions started from now on. It panics on other values.
func (s *Simulator) SetVBRSessionOutcome(result string) {
	switch result {
	case "Success", "Warning", "Failed":
	default:
		panic(fmt.Sprintf("simulator: SetVBRSessionOutcome(%q): want Success, Warning or Failed", result))
	}
	s.vbr.mu.Lock()
	s.vbr.outcome = result
	s.vbr.mu.Unlock()
}

// SetVBRActionHang makes running B&R failover sessions stay Working (true)
// until it is switched off again (false); sessions overdue by then finish
// at once. For timeout tests.
func (s *Simulator) SetVBRActionHang(hang bool) {
	a := s.vbr
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.advanceLocked(now)
	a.hang = hang
	if !hang {
		for _, ss := range a.running {
			if ss.due.Before(now) {
				ss.due = now
			}
		}
		a.advanceLocked(now)
	}
}

// VBRFailoverCalls returns the accepted (201) failover POSTs in order.
func (s *Simulator) VBRFailoverCalls() []VBRFailoverCall {
	a := s.vbr
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]VBRFailoverCall, len(a.calls))
	for i, c := range a.calls {
		c.PointIDs = slices.Clone(c.PointIDs)
		c.SessionIDs = slices.Clone(c.SessionIDs)
		out[i] = c
	}
	return out
}

// VBRFailovers counts the accepted failover POSTs (of any kind) that named
// the restore point.
func (s *Simulator) VBRFailovers(pointID string) int {
	a := s.vbr
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		if slices.Contains(c.PointIDs, strings.ToLower(pointID)) {
			n++
		}
	}
	return n
}

// SetVBRReplicaState forces a replica (and its points, with their
// allowedOperations) into an EReplicaState.
func (s *Simulator) SetVBRReplicaState(replicaID, state string) error {
	if !slices.Contains(vbrReplicaStates, state) {
		return fmt.Errorf("simulator: unknown replica state %q", state)
	}
	a := s.vbr
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.replicaBy[strings.ToLower(replicaID)]
	if !ok {
		return fmt.Errorf("simulator: no VBR replica %q", replicaID)
	}
	a.setReplicaStateLocked(r, state)
	return nil
}
