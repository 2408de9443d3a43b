package simulator

import (
	"net/http"
	"strings"
	"time"
)

// EM restore sessions: a finished CDP failover task links (Rel="Related",
// Type="RestoreSession") to the restore session that holds the failover's
// real State and Result [C: seed 001, EMDOC get_query_restoresession]. The
// task only says EM took the request, so the session may still fail after
// the task finished with Success.

// emRestoreRec is a RestoreSession of a CDP failover.
type emRestoreRec struct {
	uid, vmName string
	created     time.Time
	dur         time.Duration
	result      string // Success, Warning or Failed once Stopped
	failure     string
}

// emRestoreSession is a RestoreSessionEntityType (the members used): the
// session members, then VmDisplayName.
type emRestoreSession struct {
	emSessionMembers
	VMDisplayName string   `xml:"VmDisplayName" json:"VmDisplayName"`
	Links         []emLink `xml:"-" json:"Links"`
	Name          string   `xml:"Name,attr" json:"Name"`
	UID           string   `xml:"UID,attr" json:"UID"`
	Href          string   `xml:"Href,attr" json:"Href"`
	Type          string   `xml:"Type,attr" json:"Type"`
}

// newRestore records the restore session of a CDP failover; a.mu held. It
// runs twice as long as the task, so the task finishes first; a failed
// task's session fails too.
func (a *emAPI) newRestore(uid, vmName string, failed bool) {
	rec := &emRestoreRec{uid: uid, vmName: vmName, created: a.now(), dur: 2 * a.dur, result: a.restoreResult}
	if failed {
		rec.result = "Failed"
	}
	if rec.result == "" {
		rec.result = "Success"
	}
	if rec.result == "Failed" {
		rec.failure = "Failed to fail over VM " + vmName + ": Unable to power on the replica VM."
	}
	a.restores[uid] = rec
}

func (a *emAPI) restoreEntity(base string, s *emRestoreRec, now time.Time) emRestoreSession {
	href := base + "/restoreSessions/" + s.uid
	e := emRestoreSession{
		emSessionMembers: emSessionMembers{JobType: "FailoverCdp", emRunMembers: emRunMembers{CreationTimeUTC: emUTCms(s.created)}},
		VMDisplayName:    s.vmName,
		Name:             s.vmName + "@" + s.created.UTC().Format("2006-01-02 15:04:05"),
		UID:              "urn:veeam:RestoreSession:" + s.uid, Href: href + "?format=Entity", Type: "RestoreSession",
	}
	e.Links = []emLink{{Rel: "Alternate", Href: href, Name: e.Name, Type: "RestoreSessionReference"}}
	e.XLinks = e.Links
	el := now.Sub(s.created)
	switch {
	case el < s.dur/4:
		// A running session has Result None and no end [C: peekjef72].
		e.State, e.Result, e.Progress = "Starting", "None", 5
	case el < s.dur:
		e.State, e.Result, e.Progress = "Working", "None", int(100*el/max(s.dur, 1))
	default:
		end := emUTCms(s.created.Add(s.dur))
		e.State, e.Result, e.Progress, e.EndTimeUTC = "Stopped", s.result, 100, &end
		e.FailureMessage = emNullString(s.failure)
	}
	return e
}

// restoreSessions serves GET /api/restoreSessions/{id}[?format=Entity].
func (a *emAPI) restoreSessions(w http.ResponseWriter, r *http.Request, rest []string) {
	if len(rest) != 1 {
		a.writeErrorFor(w, r, http.StatusNotFound, "Resource "+r.URL.Path+" is not found.")
		return
	}
	a.mu.Lock()
	s := a.restores[emBareID(rest[0])]
	var v emRestoreSession
	if s != nil {
		v = a.restoreEntity(emBase(r), s, a.now())
	}
	a.mu.Unlock()
	if s == nil {
		a.writeErrorFor(w, r, http.StatusNotFound, "Restore session "+rest[0]+" is not found.")
		return
	}
	a.write(w, r, http.StatusOK, "RestoreSession", v)
}

// SetEMRestoreSessionResult sets how the restore sessions of CDP failovers
// started from now on end: "Success" (the default), "Warning" or "Failed".
// The task still finishes as SetEMTaskOutcome says: EM's task only confirms
// the request.
func (s *Simulator) SetEMRestoreSessionResult(result string) {
	switch result {
	case "Success", "Warning", "Failed":
	default:
		panic("simulator: invalid EM restore session result " + result)
	}
	s.em.mu.Lock()
	defer s.em.mu.Unlock()
	s.em.restoreResult = result
}

// EMLogons counts the logon sessions EM created (POST /api/sessionMngr/).
func (s *Simulator) EMLogons() int {
	n := 0
	for _, r := range s.Requests(APIEM) {
		if r.Method == http.MethodPost && strings.EqualFold(strings.TrimRight(r.Path, "/"), "/api/sessionMngr") && r.Status == http.StatusCreated {
			n++
		}
	}
	return n
}
