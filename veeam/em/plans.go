package em

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

func planKey(p veeam.FailoverPlan) string { return p.ID }

// ListFailoverPlans reads all failover plans through the query service, one
// request per page; ObjectsCount is the number of VMs the plan includes.
func (c *Client) ListFailoverPlans(ctx context.Context) ([]veeam.FailoverPlan, error) {
	return query(ctx, c, "FailoverPlan", "UID", DecodePlanQuery, planKey)
}

// ListFailoverPlanObjects reads the VMs of all failover plans (from the same
// query as ListFailoverPlans). EM reports no restore state for them.
func (c *Client) ListFailoverPlanObjects(ctx context.Context) ([]veeam.FailoverPlanObject, error) {
	dec := func(b []byte) (Page[[]veeam.FailoverPlanObject], error) {
		ents, pages, err := decodePlanEntities(b)
		if err != nil {
			return Page[[]veeam.FailoverPlanObject]{}, err
		}
		items := make([][]veeam.FailoverPlanObject, 0, len(ents))
		for i := range ents {
			items = append(items, ents[i].objects())
		}
		return Page[[]veeam.FailoverPlanObject]{Items: items, Pages: pages}, nil
	}
	// Keyed by plan: a plan's VMs travel together.
	perPlan, err := query(ctx, c, "FailoverPlan", "UID", dec, func(objs []veeam.FailoverPlanObject) string {
		if len(objs) == 0 {
			return ""
		}
		return objs[0].PlanID
	})
	if err != nil {
		return nil, err
	}
	var out []veeam.FailoverPlanObject
	for _, objs := range perPlan {
		out = append(out, objs...)
	}
	return out, nil
}

// GetFailoverPlan reads one plan entity.
func (c *Client) GetFailoverPlan(ctx context.Context, planID string) (veeam.FailoverPlan, error) {
	id, err := checkUUID("plan id", planID)
	if err != nil {
		return veeam.FailoverPlan{}, fmt.Errorf("target %q: %w", c.name, err)
	}
	return get(ctx, c, "/api/failoverPlans/"+id, url.Values{"format": {"Entity"}}, DecodePlan)
}

func sessionKey(s veeam.CloudFailoverSession) string { return s.ID }

// ListCloudFailoverSessions reads the cloud failover sessions EM keeps (30
// days) as entities through the query service: one request per page, not
// one per session.
func (c *Client) ListCloudFailoverSessions(ctx context.Context) ([]veeam.CloudFailoverSession, error) {
	return query(ctx, c, "CloudFailoverSession", "CreationTime", DecodeSessionQuery, sessionKey)
}

// planSpec is FailoverPlanManagementSpec (StartNow or StartDate).
type planSpec struct {
	XMLName   xml.Name `xml:"http://www.veeam.com/ent/v1.0 FailoverPlanManagementSpec" json:"-"`
	StartNow  *bool    `xml:"StartNow,omitempty" json:"StartNow,omitempty"`
	StartDate string   `xml:"StartDate,omitempty" json:"StartDate,omitempty"`
}

// StartFailoverPlan starts a plan: at once to the latest restore points
// (startDate nil, StartNow) or to the newest points before startDate. It is
// sent once (EM has no idempotency key); track the returned Task with
// GetTask. Tasks belong to the logon session: after a new logon EM may no
// longer show it.
func (c *Client) StartFailoverPlan(ctx context.Context, planID string, startDate *time.Time) (veeam.Task, error) {
	spec := planSpec{}
	if startDate != nil {
		spec.StartDate = formatTime(*startDate)
	} else {
		t := true
		spec.StartNow = &t
	}
	body, err := c.encode(spec)
	if err != nil {
		return veeam.Task{}, err
	}
	return c.planAction(ctx, planID, "start", body)
}

// UndoFailoverPlan undoes a plan's failover; see StartFailoverPlan.
func (c *Client) UndoFailoverPlan(ctx context.Context, planID string) (veeam.Task, error) {
	return c.planAction(ctx, planID, "undo", nil)
}

func (c *Client) planAction(ctx context.Context, planID, action string, body []byte) (veeam.Task, error) {
	id, err := checkUUID("plan id", planID)
	if err != nil {
		return veeam.Task{}, fmt.Errorf("target %q: %w", c.name, err)
	}
	return c.act(ctx, "/api/failoverPlans/"+id, action, body)
}

// act POSTs ?action=... and decodes the Task EM answers with (202).
func (c *Client) act(ctx context.Context, path, action string, body []byte) (veeam.Task, error) {
	var gen uint64
	resp, err := c.conn.CallAs(ctx, http.MethodPost, path, url.Values{"action": {action}}, body, "",
		func(cr *veeam.Credential) { gen = cr.Generation })
	if err != nil {
		return veeam.Task{}, err
	}
	t, err := DecodeTask(resp.Body)
	t.LogonGeneration = gen
	if err != nil {
		// The action was accepted; say so, so that nobody sends it again.
		return veeam.Task{}, &veeam.DecodeError{Target: c.name, Method: http.MethodPost, Path: path,
			Err: fmt.Errorf("action %s accepted (status %d) but its task could not be read: %w", action, resp.Status, err)}
	}
	return t, nil
}

// CdpFailoverSpec is CdpFailoverStartSpec: exactly one of the four choices.
type CdpFailoverSpec struct {
	// RestoreCurrent fails over to the latest crash-consistent state.
	RestoreCurrent bool
	// RestoreCurrentVss fails over to the latest application-consistent
	// (long-term) point.
	RestoreCurrentVss bool
	// RestoreAtInterval fails over to the short-term point at this time.
	RestoreAtInterval *time.Time
	// RestoreAtPointInTime fails over to the long-term point at this time.
	RestoreAtPointInTime *time.Time
}

// cdpSpec is the wire form, in XSD element order.
type cdpSpec struct {
	XMLName              xml.Name `xml:"http://www.veeam.com/ent/v1.0 CdpFailoverStartSpec" json:"-"`
	RestoreCurrent       bool     `xml:"RestoreCurrent" json:"RestoreCurrent"`
	RestoreCurrentVss    bool     `xml:"RestoreCurrentVss" json:"RestoreCurrentVss"`
	RestoreAtInterval    string   `xml:"RestoreAtInterval,omitempty" json:"RestoreAtInterval,omitempty"`
	RestoreAtPointinTime string   `xml:"RestoreAtPointinTime,omitempty" json:"RestoreAtPointinTime,omitempty"`
}

// CdpFailover fails a VM of a CDP replica over (POST
// /api/cdpReplicas/{id}/vms/{id}?action=failover); track the Task.
func (c *Client) CdpFailover(ctx context.Context, cdpReplicaID, vmID string, spec CdpFailoverSpec) (veeam.Task, error) {
	rid, err := checkUUID("cdp replica id", cdpReplicaID)
	if err != nil {
		return veeam.Task{}, fmt.Errorf("target %q: %w", c.name, err)
	}
	vid, err := checkUUID("cdp vm id", vmID)
	if err != nil {
		return veeam.Task{}, fmt.Errorf("target %q: %w", c.name, err)
	}
	n := 0
	for _, set := range []bool{spec.RestoreCurrent, spec.RestoreCurrentVss, spec.RestoreAtInterval != nil, spec.RestoreAtPointInTime != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return veeam.Task{}, fmt.Errorf("target %q: cdp failover needs exactly one restore choice, got %d", c.name, n)
	}
	w := cdpSpec{RestoreCurrent: spec.RestoreCurrent, RestoreCurrentVss: spec.RestoreCurrentVss}
	if spec.RestoreAtInterval != nil {
		w.RestoreAtInterval = formatTime(*spec.RestoreAtInterval)
	}
	if spec.RestoreAtPointInTime != nil {
		w.RestoreAtPointinTime = formatTime(*spec.RestoreAtPointInTime)
	}
	body, err := c.encode(w)
	if err != nil {
		return veeam.Task{}, err
	}
	return c.act(ctx, "/api/cdpReplicas/"+rid+"/vms/"+vid, "failover", body)
}

// encode renders a request body in the client's format.
func (c *Client) encode(v any) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if c.format == XML {
		b, err = xml.Marshal(v)
		b = append([]byte(xml.Header), b...)
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return nil, fmt.Errorf("target %q: encode request: %w", c.name, err)
	}
	return b, nil
}

// taskIDRe matches EM task ids (task-1); anything else could change the path.
var taskIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// GetTask reads a task (State Running|OperationFinished|Finished, then
// Result).
func (c *Client) GetTask(ctx context.Context, taskID string) (veeam.Task, error) {
	if !taskIDRe.MatchString(taskID) {
		return veeam.Task{}, fmt.Errorf("target %q: task id %q is not valid", c.name, taskID)
	}
	return get(ctx, c, "/api/tasks/"+taskID, nil, DecodeTask)
}

// GetRestoreSession reads a restore session (GET
// /api/restoreSessions/{id}?format=Entity), such as the one a finished CDP
// failover task links to: State Stopped and its Result are the failover's
// outcome. id is the bare UUID or the urn:veeam:RestoreSession:... UID.
func (c *Client) GetRestoreSession(ctx context.Context, id string) (veeam.RestoreSession, error) {
	uid, err := checkUUID("restore session id", veeam.NormalizeID(id))
	if err != nil {
		return veeam.RestoreSession{}, fmt.Errorf("target %q: %w", c.name, err)
	}
	return get(ctx, c, "/api/restoreSessions/"+uid, url.Values{"format": {"Entity"}}, DecodeRestoreSession)
}

// ListTasks reads the tasks of the current logon session.
func (c *Client) ListTasks(ctx context.Context) ([]veeam.Task, error) {
	return get(ctx, c, "/api/tasks", nil, DecodeTasks)
}
