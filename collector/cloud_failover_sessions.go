package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// CloudFailoverSessions is the cloud_failover_sessions collector (EM: GET
// /api/query?type=CloudFailoverSession, the last 30 days):
//
//	veeam_cloud_failover_sessions{target,state,result}      counts per state x result, the non-zero ones (all with Options.AllStates);
//	                                                        state: Starting, Stopping, Working, Stopped, Unknown;
//	                                                        result: Success, Warning, Failed, None, Unknown
//	                                                        (None: no result yet, e.g. while running)
//	for the newest Options.SessionsPerPlan sessions of each plan (EM names a session after its plan):
//	veeam_cloud_failover_session_info{target,session_id,plan}   1
//	veeam_cloud_failover_session_state{target,session_id,state}     stateset
//	veeam_cloud_failover_session_result{target,session_id,result}   stateset
//	veeam_cloud_failover_session_progress_ratio{target,session_id}  0..1, while the session runs
//	veeam_cloud_failover_session_start_timestamp_seconds{target,session_id}
//	veeam_cloud_failover_session_end_timestamp_seconds{target,session_id}   once ended
const CloudFailoverSessions = "cloud_failover_sessions"

// cloudSessionLister is what cloud_failover_sessions reads; *em.Client
// implements it.
type cloudSessionLister interface {
	ListCloudFailoverSessions(ctx context.Context) ([]veeam.CloudFailoverSession, error)
}

const srcEMSessions = "EM GET /api/query?type=CloudFailoverSession"

var (
	// EM CloudFailoverSession.State.
	sessionStates = []string{"Starting", "Stopping", "Working", "Stopped", stateUnknown}
	// EM CloudFailoverSession.Result; None while a session has no result yet.
	sessionResults = []string{"Success", "Warning", "Failed", stateNone, stateUnknown}

	sessionsFamily = countsFamily("veeam_cloud_failover_sessions",
		"Cloud failover sessions EM reports (last 30 days) per state and result (None: no result yet); "+srcEMSessions+".",
		sessionResults, labelTarget, labelState, labelResult)
	sessionInfo = gaugeFamily("veeam_cloud_failover_session_info",
		"Cloud failover session, always 1, for the newest sessions of each plan (plan is the session name); "+srcEMSessions+".",
		labelTarget, labelSessionID, "plan")
	sessionState = statesetFamily("veeam_cloud_failover_session_state",
		"State of the cloud failover session; "+srcEMSessions+" (State).",
		sessionStates, labelTarget, labelSessionID, labelState)
	sessionResult = statesetFamily("veeam_cloud_failover_session_result",
		"Result of the cloud failover session (None: no result yet); "+srcEMSessions+" (Result).",
		sessionResults, labelTarget, labelSessionID, labelResult)
	sessionProgress = gaugeFamily("veeam_cloud_failover_session_progress_ratio",
		"Progress of the cloud failover session while it runs (absent once it stopped), 0 to 1; "+srcEMSessions+" (Progress).",
		labelTarget, labelSessionID)
	sessionStart = gaugeFamily("veeam_cloud_failover_session_start_timestamp_seconds",
		"Start of the cloud failover session, Unix time; "+srcEMSessions+" (CreationTimeUTC).",
		labelTarget, labelSessionID)
	sessionEnd = gaugeFamily("veeam_cloud_failover_session_end_timestamp_seconds",
		"End of the cloud failover session once it ended, Unix time; "+srcEMSessions+" (EndTimeUTC).",
		labelTarget, labelSessionID)
)

func init() {
	register(CloudFailoverSessions, []string{veeam.TypeEM},
		[]*familySpec{sessionsFamily, sessionInfo, sessionState, sessionResult, sessionProgress, sessionStart, sessionEnd},
		readCloudSessions)
}

// readCloudSessions is the counts per state and result over every session,
// and per-session series for the newest Options.SessionsPerPlan sessions of
// each plan. EM has no plan id on a session; its name is the plan's name.
func readCloudSessions(ctx context.Context, c *collector, r cloudSessionLister) ([]*block, error) {
	sessions, err := r.ListCloudFailoverSessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list cloud failover sessions: %w", err)
	}
	for i := range sessions {
		sessions[i].ID = lower(sessions[i].ID)
	}
	// Per plan, newest first; ties and duplicates by id.
	slices.SortFunc(sessions, func(a, b veeam.CloudFailoverSession) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := b.CreationTime.Compare(a.CreationTime); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})

	tn := c.target
	n := max(c.opts.SessionsPerPlan, 0)
	states, results := len(sessionStates), len(sessionResults)
	counts := make([]int, states*results)
	rows := min(len(sessions), 64)
	info, progress := c.block(sessionInfo, rows), c.block(sessionProgress, rows)
	state, result := c.block(sessionState, rows), c.block(sessionResult, rows)
	start, end := c.block(sessionStart, rows), c.block(sessionEnd, rows)
	seen := make(map[string]struct{}, len(sessions))
	inPlan := 0
	for i, s := range sessions {
		if _, dup := seen[s.ID]; dup {
			continue
		}
		seen[s.ID] = struct{}{}
		st, res := state.f.index(s.State), result.f.index(s.Result)
		counts[st*results+res]++

		if i == 0 || sessions[i-1].Name != s.Name {
			inPlan = 0
		}
		if inPlan >= n {
			continue
		}
		inPlan++
		info.add(1, tn, s.ID, s.Name)
		// An ended session's progress says nothing its result does not;
		// one series fewer for each of them.
		if !s.Finished() {
			progress.add(float64(min(max(s.Progress, 0), 100))/100, tn, s.ID)
		}
		state.add(float64(st), tn, s.ID)
		result.add(float64(res), tn, s.ID)
		if !s.CreationTime.IsZero() {
			start.add(unixSeconds(s.CreationTime), tn, s.ID)
		}
		if !s.EndTime.IsZero() {
			end.add(unixSeconds(s.EndTime), tn, s.ID)
		}
	}
	total := c.block(sessionsFamily, states)
	for st := range sessionStates {
		total.addCounts(counts[st*results:(st+1)*results], tn, sessionStates[st])
	}
	return []*block{total, info, progress, state, result, start, end}, nil
}
