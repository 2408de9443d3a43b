package vspc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

const (
	plansPath = APIRoot + "/infrastructure/backupServers/failoverplans"
	asyncPath = APIRoot + "/asyncActions"
)

func planKey(p veeam.FailoverPlan) string { return p.ID }

// objectID identifies a plan object: objects can sit in several plans, so
// it is keyed by both (the zero value: no id).
type objectID struct{ plan, id string }

func objectKey(o veeam.FailoverPlanObject) objectID {
	if o.ID == "" {
		return objectID{}
	}
	return objectID{o.PlanID, o.ID}
}

// ListFailoverPlans reads all failover plans of all backup servers.
func (c *Client) ListFailoverPlans(ctx context.Context) ([]veeam.FailoverPlan, error) {
	return list(ctx, c, plansPath, DecodePlans, planKey)
}

// ListFailoverPlansByServer reads the failover plans of one backup server.
func (c *Client) ListFailoverPlansByServer(ctx context.Context, backupServerID string) ([]veeam.FailoverPlan, error) {
	id, err := checkID("backup server id", backupServerID)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", c.name, err)
	}
	return list(ctx, c, APIRoot+"/infrastructure/backupServers/"+id+"/failoverplans", DecodePlans, planKey)
}

// GetFailoverPlan reads one plan; its Status is how a started or undone
// plan is tracked.
func (c *Client) GetFailoverPlan(ctx context.Context, planID string) (veeam.FailoverPlan, error) {
	id, err := checkID("plan id", planID)
	if err != nil {
		return veeam.FailoverPlan{}, fmt.Errorf("target %q: %w", c.name, err)
	}
	return get(ctx, c, plansPath+"/"+id, nil, DecodePlan)
}

// ListFailoverPlanObjects reads the VMs of all failover plans.
func (c *Client) ListFailoverPlanObjects(ctx context.Context) ([]veeam.FailoverPlanObject, error) {
	return list(ctx, c, plansPath+"/objects", DecodePlanObjects, objectKey)
}

// ListFailoverPlanObjectsByServer reads the plan VMs of one backup server.
func (c *Client) ListFailoverPlanObjectsByServer(ctx context.Context, backupServerID string) ([]veeam.FailoverPlanObject, error) {
	id, err := checkID("backup server id", backupServerID)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", c.name, err)
	}
	return list(ctx, c, APIRoot+"/infrastructure/backupServers/"+id+"/failoverplans/objects", DecodePlanObjects, objectKey)
}

// ListPlanObjects reads the VMs of one plan.
func (c *Client) ListPlanObjects(ctx context.Context, planID string) ([]veeam.FailoverPlanObject, error) {
	id, err := checkID("plan id", planID)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", c.name, err)
	}
	return list(ctx, c, plansPath+"/"+id+"/objects", DecodePlanObjects, objectKey)
}

// StartOptions are the query parameters of a plan start.
type StartOptions struct {
	// DateTime, when set, fails over to the restore points before it.
	DateTime *time.Time
	// Test runs a test failover.
	Test bool
}

// StartFailoverPlan queues a plan start. requestID (a UUID, the same on
// every try of one decision) goes out as X-Request-id, so VSPC runs the
// start at most once for it; the request is resent only after a connection
// error that got no answer. The answer is nil on 200 (queued; track the
// plan's Status) or the async action on 202.
func (c *Client) StartFailoverPlan(ctx context.Context, planID string, o StartOptions, requestID string) (*veeam.AsyncAction, error) {
	q := url.Values{"test": {strconv.FormatBool(o.Test)}}
	if o.DateTime != nil {
		q.Set(c.dateTimeParam(), veeam.FormatTime(*o.DateTime))
	}
	return c.act(ctx, planID, "start", q, requestID)
}

// dateTimeParam is the start's point-in-time parameter: API 3.5.1 (VSPC
// 8.1) named it date-time, 3.6 and later dateTime [C: PYSPC]. Without an
// api_version the client assumes a current server.
func (c *Client) dateTimeParam() string {
	if versionBefore(c.version, 3, 6) {
		return "date-time"
	}
	return "dateTime"
}

// versionBefore reports whether a dotted version ("3.5.1") is below
// major.minor; an empty or unreadable version is not.
func versionBefore(v string, major, minor int) bool {
	parts := strings.SplitN(strings.TrimSpace(v), ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma < major || (ma == major && mi < minor)
}

// UndoFailoverPlan queues a plan undo; see StartFailoverPlan.
func (c *Client) UndoFailoverPlan(ctx context.Context, planID, requestID string) (*veeam.AsyncAction, error) {
	return c.act(ctx, planID, "undo", nil, requestID)
}

func (c *Client) act(ctx context.Context, planID, verb string, q url.Values, requestID string) (*veeam.AsyncAction, error) {
	id, err := checkID("plan id", planID)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", c.name, err)
	}
	rid, err := checkRequestID(requestID)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", c.name, err)
	}
	resp, err := c.call(ctx, http.MethodPost, plansPath+"/"+id+"/"+verb, q, nil, rid)
	if err != nil {
		return nil, err
	}
	return accepted(resp, rid), nil
}

// accepted turns a 202 into its async action (nil for a 200). Without a
// Location the action carries the X-Request-id, as VSPC documents.
func accepted(resp *veeam.Response, requestID string) *veeam.AsyncAction {
	if resp.Status != http.StatusAccepted {
		return nil
	}
	id := asyncActionID(resp.Header.Get("Location"))
	if id == "" {
		id = requestID
	}
	return &veeam.AsyncAction{ID: id, Status: "running"}
}

// GetAsyncAction reads an async action (status running|succeed|failed|canceled).
func (c *Client) GetAsyncAction(ctx context.Context, actionID string) (veeam.AsyncAction, error) {
	id, err := checkID("async action id", actionID)
	if err != nil {
		return veeam.AsyncAction{}, fmt.Errorf("target %q: %w", c.name, err)
	}
	return get(ctx, c, asyncPath+"/"+id, nil, DecodeAsyncAction)
}

// WaitAsyncAction polls an async action until it is no longer running and
// returns it (status succeed, failed or canceled). Waits grow from a quarter
// second to five seconds; ctx bounds the whole wait. An action whose result
// VSPC no longer keeps (5 minutes after success, 1 hour after failure)
// answers 404: the error then matches errors.Is(err, veeam.ErrNotFound), and
// the caller should follow the plan's own status instead.
func (c *Client) WaitAsyncAction(ctx context.Context, actionID string) (veeam.AsyncAction, error) {
	wait := c.pollEvery
	for {
		a, err := c.GetAsyncAction(ctx, actionID)
		if err != nil || a.Status != "running" {
			return a, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return a, fmt.Errorf("target %q: async action %s still running: %w", c.name, actionID, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// PatchOp is one JSON Patch (RFC 6902) operation.
type PatchOp struct {
	Op    string // add|remove|replace|move|copy|test
	Path  string // JSON Pointer, e.g. /preFailoverCommand
	Value any    // for add, replace, test
	From  string // for move, copy
}

// MarshalJSON writes value only for the operations that take one, so that a
// false or null value is still sent where it means something.
func (p PatchOp) MarshalJSON() ([]byte, error) {
	m := map[string]any{"op": p.Op, "path": p.Path}
	switch p.Op {
	case "add", "replace", "test":
		m["value"] = p.Value
	case "move", "copy":
		m["from"] = p.From
	}
	return json.Marshal(m)
}

// PatchFailoverPlan applies a JSON Patch to a plan (for example its pre- and
// post-failover commands), with requestID as X-Request-id. VSPC may run a
// PATCH asynchronously without a way to track it: on 202 the returned plan
// carries only its ID.
func (c *Client) PatchFailoverPlan(ctx context.Context, planID string, ops []PatchOp, requestID string) (veeam.FailoverPlan, error) {
	id, err := checkID("plan id", planID)
	if err != nil {
		return veeam.FailoverPlan{}, fmt.Errorf("target %q: %w", c.name, err)
	}
	rid, err := checkRequestID(requestID)
	if err != nil {
		return veeam.FailoverPlan{}, fmt.Errorf("target %q: %w", c.name, err)
	}
	if len(ops) == 0 {
		return veeam.FailoverPlan{}, fmt.Errorf("target %q: empty JSON Patch", c.name)
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return veeam.FailoverPlan{}, fmt.Errorf("target %q: encode patch: %w", c.name, err)
	}
	path := plansPath + "/" + id
	resp, err := c.call(ctx, http.MethodPatch, path, nil, body, rid)
	if err != nil {
		return veeam.FailoverPlan{}, err
	}
	if resp.Status == http.StatusAccepted || len(resp.Body) == 0 {
		return veeam.FailoverPlan{ID: id}, nil
	}
	p, err := DecodePlan(resp.Body)
	if err != nil {
		return veeam.FailoverPlan{}, &veeam.DecodeError{Target: c.name, Method: http.MethodPatch, Path: path, Err: err}
	}
	return p, nil
}
