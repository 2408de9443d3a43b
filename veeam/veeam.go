// Package veeam holds what the three Veeam API clients (vspc, em, vbr) have in
// common: the domain types they return, the shared HTTP transport and the
// errors, one APIError for all three APIs. It knows nothing of Prometheus, so
// collectors and the trigger can share one client per target.
package veeam

import (
	"log/slog"
	"net/http"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// Target types, as written in the config file.
const (
	TypeVSPC = "vspc"
	TypeEM   = "em"
	TypeVBR  = "vbr"
)

// ClientOptions configures one client for one Veeam server (one config target).
type ClientOptions struct {
	// Name is the target's config name; it appears in errors and logs.
	Name string
	// URL is scheme://host:port; each client appends its own API root.
	URL string
	// Username and Password are used for password grants and EM Basic logon.
	Username string
	Password promconfig.Secret
	// APIKey is a VSPC Bearer API key, used instead of username/password.
	APIKey promconfig.Secret
	// APIVersion is VBR's x-api-version or VSPC's X-Client-Version.
	APIVersion string
	// HTTPClientConfig carries tls_config and proxy settings.
	HTTPClientConfig promconfig.HTTPClientConfig
	// Timeout bounds each API request attempt (under the caller's
	// context); 0 means 30s.
	Timeout time.Duration
	// PageConcurrency bounds the requests this client has in flight at once,
	// and so the pages of a list read concurrently after the first (the
	// scrape.concurrency); 0 means 8.
	PageConcurrency int
	// WrapTransport, when set, wraps the HTTP transport; main uses it to count
	// requests into veeam_api_requests_total.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// MaxResponseBytes bounds a response body; 0 means 256 MiB.
	MaxResponseBytes int64
	// RetryAttempts bounds the attempts of a read (GET) on connection
	// errors, 5xx, VSPC 520 and 429; 0 means 3. Actions are never retried
	// blindly, whatever this says.
	RetryAttempts int
}

// FailoverPlan is a failover plan as VSPC or EM reports it. Ids are lower-case
// UUIDs without urn: prefixes.
type FailoverPlan struct {
	ID             string
	Name           string
	BackupServerID string
	TenantID       string
	// Type is VSPC's Cloud|Local|Tenant|Unknown; empty for EM.
	Type string
	// Status is VSPC's plan status (Ready, InProgress, ...); empty for EM,
	// which has no status on its plan entity.
	Status       string
	ObjectsCount int
	// LastSession is set by VSPC >= 3.6.1 when the plan ran before.
	LastSession *PlanSession
	// Description is EM's plan description.
	Description string
}

// PlanSession is the last run of a VSPC failover plan.
type PlanSession struct {
	ID      string
	EndTime time.Time // zero while running or unknown
	Status  string    // Success|Warning|Failed|None|Unknown
	Message string
}

// FailoverPlanObject is a VM in a failover plan.
type FailoverPlanObject struct {
	ID             string
	PlanID         string
	Name           string
	HostName       string
	BackupServerID string
	// RestoreStatus is the backupStatus of the VM's last *failover
	// session* (Running|Success|Warning|Failed|Unknown), not its recovery
	// point (see RecoveryPoint); empty when there is none: the VM's plan
	// never ran (restoreSession null, or an object of nulls), and then the
	// other Restore* fields are empty too.
	RestoreStatus    string
	RestorePointID   string
	RestorePointTime time.Time // zero when unknown
	RestoreStartTime time.Time
	RestoreEndTime   time.Time
	// ProtectedVMID is restoreSession.instanceUid ("UID assigned to a
	// protected VM" [C]); empty without a session.
	ProtectedVMID string
}

// RecoveryPoint is what a VM would fail over to now: the newest restore
// point of its replication chain (VSPC protectedWorkloads backups with
// backupType Replication) on a backup server; with several replication
// jobs, the oldest of their newest points (vspc.RecoveryPoints).
type RecoveryPoint struct {
	// VMID is virtualMachineUid and BackupServerID backupServerUid, the
	// join keys to a plan object's ID and BackupServerID.
	VMID           string
	BackupServerID string
	// JobID and BackupID are the replication job and chain of that point.
	JobID    string
	BackupID string
	// Time is latestRestorePointDate of that chain.
	Time time.Time
	// RestorePoints counts the points of that chain.
	RestorePoints int
}

// CloudFailoverSession is an EM cloud failover session (last 30 days).
type CloudFailoverSession struct {
	ID             string
	Name           string // the cloud failover plan's name
	BackupServerID string
	JobType        string
	State          string // Starting|Stopping|Working|Stopped
	Result         string // Success|Warning|Failed
	Progress       int    // 0..100
	CreationTime   time.Time
	EndTime        time.Time // zero while running
	FailureMessage string
}

// Finished reports whether the session ended: EM gives it an end time or
// the state Stopped.
func (s CloudFailoverSession) Finished() bool { return s.State == "Stopped" || !s.EndTime.IsZero() }

// Replica is a VBR replica.
type Replica struct {
	ID           string
	Name         string
	Type         string // Regular|Snapshot|CDP
	State        string // EReplicaState
	JobID        string
	PlatformName string
	CreationTime time.Time
}

// ReplicaPoint is a VBR replica restore point.
type ReplicaPoint struct {
	ID                string
	Name              string // VM name
	ReplicaID         string
	CreationTime      time.Time
	AllowedOperations []string
	State             string
}

// Allows reports whether the point advertises the operation.
func (p ReplicaPoint) Allows(op string) bool {
	for _, o := range p.AllowedOperations {
		if o == op {
			return true
		}
	}
	return false
}

// Session is a VBR session (for example a failover started by the trigger).
type Session struct {
	ID              string
	Name            string
	SessionType     string
	State           string // ESessionState
	Result          string // None|Success|Warning|Failed; empty while running
	Message         string
	ProgressPercent int
	CreationTime    time.Time
	EndTime         time.Time
}

// Task is an EM task (start/undo of a plan, CDP failover).
type Task struct {
	ID        string // task-N
	State     string // Running|OperationFinished|Finished
	Operation string
	// Success and Message are set once the task carries a Result. A
	// finished task only says that EM took the request ("Ok", "... triggered
	// to start"), not that the failover succeeded.
	HasResult bool
	Success   bool
	Message   string
	// RestoreSessionID is the restore session a finished CDP failover task
	// links to (Rel="Related", Type="RestoreSession"): the failover's own
	// State and Result are there (em.Client.GetRestoreSession).
	RestoreSessionID string
	// LogonGeneration is the client's logon session that created the task
	// (set by the acting calls, 0 on reads). EM shows a task only to that
	// session: once em.Client.LogonGeneration() is past it, the task is
	// gone for good.
	LogonGeneration uint64
}

// RestoreSession is an EM restore session (the real run of a CDP
// failover).
type RestoreSession struct {
	ID             string
	Name           string
	State          string // Starting|Working|Stopping|Stopped
	Result         string // None while running; Success|Warning|Failed when Stopped
	Progress       int
	CreationTime   time.Time
	EndTime        time.Time // zero while running
	FailureMessage string
}

// Finished reports whether the session stopped (its Result is final).
func (s RestoreSession) Finished() bool { return s.State == "Stopped" }

// Finished reports whether EM finished the task (OperationFinished counts:
// the backup server is done, EM only has not collected the data yet).
func (t Task) Finished() bool {
	return t.State == "Finished" || t.State == "OperationFinished"
}

// AsyncAction is a VSPC async action (202 + Location).
type AsyncAction struct {
	ID     string
	Status string // running|succeed|failed|canceled
}
