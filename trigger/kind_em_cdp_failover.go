package trigger

import (
	"context"
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
)

// cdpFailer fails CDP replica VMs over; *em.Client has it.
type cdpFailer interface {
	taskReader
	CdpFailover(ctx context.Context, cdpReplicaID, vmID string, spec em.CdpFailoverSpec) (veeam.Task, error)
	// GetRestoreSession reads the restore session a finished task links to.
	GetRestoreSession(ctx context.Context, id string) (veeam.RestoreSession, error)
}

// em_cdp_failover: fail one VM of an Enterprise Manager CDP replica over to
// its latest crash-consistent point. The finished task only says that EM
// took the request; it links (Related) to the restore session, whose Result
// once Stopped is the outcome.
func init() {
	registerKind(kindSpec[cdpFailer]{
		Name:       config.ActionEMCdpFailover,
		TargetType: config.TypeEM,
		Object:     objectCdpVM,
		Resolve: func(_ context.Context, _ cdpFailer, a *config.Action, _ string) (resolved, string) {
			// The client API has no way to read a CDP replica VM; the
			// in-flight check of target_state is all there is.
			return resolved{cdpReplica: strings.ToLower(a.CdpReplica), vm: strings.ToLower(a.VM)}, ""
		},
		Call: func(ctx context.Context, c cdpFailer, rec *actionRecord) (handle, error) {
			return emCall(ctx, c, func() (veeam.Task, error) {
				return c.CdpFailover(ctx, rec.CdpReplica, rec.VM, em.CdpFailoverSpec{RestoreCurrent: true})
			})
		},
		Poll: pollCdpFailover,
	})
}

// pollCdpFailover follows the task, then the restore session it links to
// (kept in rec.Sessions, so that a restart follows the session too: unlike
// the task, it does not belong to a logon session).
func pollCdpFailover(ctx context.Context, c cdpFailer, rec *actionRecord, tr *tracking) (string, string, error) {
	tr.mu.Lock()
	var sessionID string
	if len(rec.Sessions) > 0 {
		sessionID = rec.Sessions[0].ID
	}
	tr.mu.Unlock()
	if sessionID == "" {
		task, ok, outcome, msg, err := pollTask(ctx, c, rec, tr, emOpCdpFailover)
		if !ok {
			return outcome, msg, err
		}
		if task.RestoreSessionID == "" && task.State != "Finished" {
			// OperationFinished: EM has not collected the task's data
			// (and its Related link) yet.
			return "", "", nil
		}
		if task.RestoreSessionID == "" {
			return outcomeSubmitted, "EM took the request (task " + task.ID + ") but links no restore session, so the failover's result cannot be read: check VM " + rec.VM + " in Enterprise Manager", nil
		}
		sessionID = task.RestoreSessionID
		tr.mu.Lock()
		rec.Sessions = []sessionHandle{{ID: sessionID}}
		tr.mu.Unlock()
	}
	s, err := c.GetRestoreSession(ctx, sessionID)
	if err != nil {
		return "", "", err
	}
	if !s.Finished() {
		return "", "", nil
	}
	tr.mu.Lock()
	rec.Sessions[0].Result = s.Result
	tr.mu.Unlock()
	msg := "restore session " + sessionID + " " + s.State + " with result " + s.Result
	if s.FailureMessage != "" {
		msg += ": " + s.FailureMessage
	}
	switch s.Result {
	case "Success":
		return outcomeSuccess, msg, nil
	case "Warning":
		return outcomeWarning, msg, nil
	}
	return outcomeFailed, msg, nil
}
