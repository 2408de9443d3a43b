package collector_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/goleak"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixedNow pins the simulators' and the exporter's clocks so that
// timestamps and durations in golden files are stable.
var fixedNow = time.Date(2025, 6, 2, 10, 30, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the clients' transports.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func fixedClock() time.Time { return fixedNow }

func startSim(t testing.TB, o simulator.Options) *simulator.Simulator {
	t.Helper()
	sim, err := simulator.Start(o)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func clientOptions(name, url, password string) veeam.ClientOptions {
	return veeam.ClientOptions{
		Name:            name,
		URL:             url,
		Username:        simulator.DefaultUsername,
		Password:        promconfig.Secret(password),
		Timeout:         10 * time.Second,
		PageConcurrency: 4,
	}
}

// target builds a collector.Target of the given type with a real client of
// the simulator's API.
func target(t testing.TB, sim *simulator.Simulator, typ, name, password string, collectors ...string) collector.Target {
	t.Helper()
	ct := collector.Target{Name: name, Type: typ, Collectors: collectors}
	var err error
	switch typ {
	case veeam.TypeVSPC:
		var c *vspc.Client
		c, err = vspc.New(clientOptions(name, sim.VSPCURL(), password))
		if err == nil {
			ct.Client = c
			t.Cleanup(func() { _ = c.Close(context.Background()) })
		}
	case veeam.TypeEM:
		var c *em.Client
		c, err = em.New(clientOptions(name, sim.EMURL(), password))
		if err == nil {
			ct.Client = c
			t.Cleanup(func() { _ = c.Close(context.Background()) })
		}
	case veeam.TypeVBR:
		var c *vbr.Client
		c, err = vbr.New(clientOptions(name, sim.VBRURL(), password))
		if err == nil {
			ct.Client = c
			t.Cleanup(func() { _ = c.Close(context.Background()) })
		}
	}
	if err != nil {
		t.Fatalf("client for %s: %v", name, err)
	}
	return ct
}

func newExporter(t testing.TB, targets []collector.Target, o collector.Options) *collector.Exporter {
	t.Helper()
	e := collector.New(targets, o)
	t.Cleanup(e.Close)
	return e
}

// gather runs one scrape through a pedantic registry, the strictest there is.
func gather(t testing.TB, e *collector.Exporter, ctx context.Context) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(e.Collector(ctx)); err != nil {
		t.Fatalf("register: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs
}

// exposition renders families in the text format. (testutil.CollectAndFormat
// of client_golang 1.25 drops every family when given no names.)
func exposition(t testing.TB, mfs []*dto.MetricFamily) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// series flattens families to "name{a="x",b="y"}" → value, labels sorted.
func series(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[key(mf.GetName(), m.GetLabel())] = m.GetGauge().GetValue()
		}
	}
	return out
}

func key(name string, labels []*dto.LabelPair) string {
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	slices.Sort(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// k builds a series key from alternating label names and values.
func k(name string, kv ...string) string {
	parts := make([]string, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		parts = append(parts, fmt.Sprintf("%s=%q", kv[i], kv[i+1]))
	}
	slices.Sort(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// count is the number of series of a metric with the given label values.
func count(s map[string]float64, name string, kv ...string) int {
	n := 0
	for key := range s {
		if !strings.HasPrefix(key, name+"{") {
			continue
		}
		ok := true
		for i := 0; i < len(kv); i += 2 {
			if !strings.Contains(key, fmt.Sprintf("%s=%q", kv[i], kv[i+1])) {
				ok = false
			}
		}
		if ok {
			n++
		}
	}
	return n
}

func expect(t *testing.T, s map[string]float64, key string, want float64) {
	t.Helper()
	got, ok := s[key]
	switch {
	case !ok:
		t.Errorf("missing %s (want %g)", key, want)
	case got != want:
		t.Errorf("%s = %g, want %g", key, got, want)
	}
}

func TestGolden(t *testing.T) {
	simOpts := simulator.Options{
		Seed: 42,
		Now:  fixedClock,
		VSPC: simulator.VSPCOptions{Plans: 3, ObjectsPerPlan: 2, BackupServers: 2},
		EM:   simulator.EMOptions{Plans: 2, VMsPerPlan: 2, CloudSessions: 6, CdpReplicas: -1},
		VBR:  simulator.VBROptions{Replicas: 3, PointsPerReplica: 2},
	}
	multiVM := simOpts
	multiVM.VBR.MultiVMReplicas = true
	cases := []struct {
		name string
		typ  string
		opts collector.Options
		sim  *simulator.Options // nil: simOpts
	}{
		{name: "vspc", typ: veeam.TypeVSPC, opts: collector.Options{PerObject: true}},
		{name: "vspc_last_session", typ: veeam.TypeVSPC, opts: collector.Options{PerObject: true, LastSessionStatus: true}},
		{name: "vspc_counts_only", typ: veeam.TypeVSPC, opts: collector.Options{PerObject: false}},
		{name: "em", typ: veeam.TypeEM, opts: collector.Options{SessionsPerPlan: 1}},
		{name: "vbr", typ: veeam.TypeVBR},
		// collectors.statesets: all, every value of each enum and count.
		{name: "vspc_last_session_all_states", typ: veeam.TypeVSPC, opts: collector.Options{PerObject: true, LastSessionStatus: true, AllStates: true}},
		{name: "em_all_states", typ: veeam.TypeEM, opts: collector.Options{SessionsPerPlan: 1, AllStates: true}},
		{name: "vbr_all_states", typ: veeam.TypeVBR, opts: collector.Options{AllStates: true}},
		{name: "vbr_multi_vm", typ: veeam.TypeVBR, sim: &multiVM},
		{name: "vbr_cached", typ: veeam.TypeVBR, opts: collector.Options{MinInterval: 90 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := simOpts
			if tc.sim != nil {
				o = *tc.sim
			}
			sim := startSim(t, o)
			tc.opts.Now = fixedClock
			e := newExporter(t, []collector.Target{target(t, sim, tc.typ, tc.typ+"-1", simulator.DefaultPassword)}, tc.opts)
			golden := filepath.Join("testdata", tc.name+".prom")
			if *update {
				if err := os.WriteFile(golden, exposition(t, gather(t, e, context.Background())), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, err := os.Open(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./collector -run TestGolden -update)", err)
			}
			defer f.Close()
			if err := testutil.CollectAndCompare(e.Collector(context.Background()), f); err != nil {
				t.Error(err)
			}
		})
	}
}

// statesetFamilies are the families with a state label, and their number
// of values: statesets, then counts per value.
var statesetFamilies = map[string]int{
	"veeam_failover_plan_status":                         8,
	"veeam_failover_plan_last_session_status":            5,
	"veeam_failover_plan_object_last_session_status":     5,
	"veeam_cloud_failover_session_state":                 5,
	"veeam_cloud_failover_session_result":                5,
	"veeam_replica_state":                                9,
	"veeam_failover_plan_objects_by_last_session_status": 6,
	"veeam_cloud_failover_sessions":                      5,
}

// expectStates checks the shape collectors.statesets gives every family
// with a state label: with all, every value of each row, one at 1 for a
// stateset; else only the current value at 1, and only non-zero counts.
func expectStates(t *testing.T, s map[string]float64, all bool) {
	t.Helper()
	for name, values := range statesetFamilies {
		rows := map[string][]float64{}
		for key, v := range s {
			if !strings.HasPrefix(key, name+"{") {
				continue
			}
			// The row is the key without its state label (status, state
			// or, for the session counts, result).
			label := "status"
			switch {
			case strings.Contains(key, ",result="), strings.HasPrefix(key, name+"{result="):
				label = "result"
			case strings.Contains(key, "state="):
				label = "state"
			}
			row := regexpLabel(label).ReplaceAllString(key, "")
			rows[row] = append(rows[row], v)
		}
		if len(rows) == 0 {
			t.Errorf("%s: no series", name)
		}
		stateset := !strings.HasSuffix(name, "_by_last_session_status") && name != "veeam_cloud_failover_sessions"
		for row, vs := range rows {
			ones, zeros := 0, 0
			for _, v := range vs {
				switch v {
				case 1:
					ones++
				case 0:
					zeros++
				}
			}
			switch {
			case all && len(vs) != values:
				t.Errorf("%s: %d series, want one per value (%d)", row, len(vs), values)
			case !all && zeros > 0:
				t.Errorf("%s: %d series at 0 with statesets: current", row, zeros)
			case stateset && ones != 1:
				t.Errorf("%s: %d series at 1, want 1", row, ones)
			case stateset && !all && len(vs) != 1:
				t.Errorf("%s: %d series, want only the current value's", row, len(vs))
			}
		}
	}
}

func regexpLabel(name string) *regexp.Regexp {
	return regexp.MustCompile(`,?` + name + `="[^"]*"`)
}

// expectCount checks a count per value: a zero count is a series at 0 with
// statesets: all, and absent without.
func expectCount(t *testing.T, s map[string]float64, key string, want float64, all bool) {
	t.Helper()
	if _, ok := s[key]; !ok && want == 0 && !all {
		return
	} else if ok && want == 0 && !all {
		t.Errorf("%s is exported at 0 with statesets: current", key)
		return
	}
	expect(t, s, key, want)
}

// TestEstate compares the metrics with the simulator's truth for a random
// estate, with every state exported and with only the current one.
func TestEstate(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("all_states=%v", all), func(t *testing.T) { testEstate(t, seed, all) })
	}
}

func testEstate(t *testing.T, seed int64, all bool) {
	sim := startSim(t, simulator.Options{Seed: seed, Now: fixedClock})
	e := newExporter(t, []collector.Target{
		target(t, sim, veeam.TypeVSPC, "vspc", simulator.DefaultPassword),
		target(t, sim, veeam.TypeEM, "em", simulator.DefaultPassword),
		target(t, sim, veeam.TypeVBR, "vbr", simulator.DefaultPassword),
	}, collector.Options{PerObject: true, LastSessionStatus: true, SessionsPerPlan: 1000, AllStates: all})
	s := series(gather(t, e, context.Background()))
	est := sim.Estate()
	low := strings.ToLower
	expectStates(t, s, all)

	for _, tgt := range []string{"vspc", "em", "vbr"} {
		expect(t, s, k("veeam_up", "target", tgt, "type", tgt), 1)
	}

	// VSPC plans.
	if got := count(s, "veeam_failover_plan_info", "target", "vspc"); got != len(est.VSPC.Plans) {
		t.Errorf("vspc plans: %d series, estate has %d", got, len(est.VSPC.Plans))
	}
	for _, p := range est.VSPC.Plans {
		id := low(p.InstanceUID)
		expect(t, s, k("veeam_failover_plan_info", "target", "vspc", "plan_id", id, "plan", p.Name,
			"backup_server_id", low(p.BackupServerUID), "type", p.Type, "tenant_id", low(p.TenantUID)), 1)
		expect(t, s, k("veeam_failover_plan_status", "target", "vspc", "plan_id", id, "status", p.Status), 1)
		if n, want := count(s, "veeam_failover_plan_status", "plan_id", id), map[bool]int{false: 1, true: 8}[all]; n != want {
			t.Errorf("plan %s: %d status series, want %d", id, n, want)
		}
		expect(t, s, k("veeam_failover_plan_objects", "target", "vspc", "plan_id", id), float64(p.ObjectsCount))
		if ls := p.LastSession; ls != nil {
			status := ls.Status
			if status == "" {
				status = "None"
			}
			expect(t, s, k("veeam_failover_plan_last_session_status", "target", "vspc", "plan_id", id, "status", status), 1)
			if ls.EndTime != nil {
				expect(t, s, k("veeam_failover_plan_last_session_end_timestamp_seconds", "target", "vspc", "plan_id", id), unix(*ls.EndTime))
			}
		}
	}

	// VSPC plan objects, their last failover sessions and recovery points.
	byStatus := map[[2]string]int{}
	plansWithObjects := map[string]bool{}
	points := replicationPoints(est.VSPC)
	neverRan := 0
	for _, o := range est.VSPC.Objects {
		plan, id := low(o.PlanUID), low(o.InstanceUID)
		plansWithObjects[plan] = true
		status := "None"
		lastSession := k("veeam_failover_plan_object_last_session_status", "target", "vspc", "plan_id", plan, "object_id", id, "status", "Unknown")
		if rs := o.RestoreSession; rs != nil && rs.BackupStatus != "" {
			status = rs.BackupStatus
			expect(t, s, k("veeam_failover_plan_object_last_session_status", "target", "vspc", "plan_id", plan, "object_id", id, "status", status), 1)
			if rs.RestorePointDateTime != nil {
				expect(t, s, k("veeam_failover_plan_object_last_session_restore_point_timestamp_seconds", "target", "vspc", "plan_id", plan, "object_id", id), unix(*rs.RestorePointDateTime))
			}
		} else {
			// Never ran: no last-session series, counted under None.
			neverRan++
			if _, ok := s[lastSession]; ok || count(s, "veeam_failover_plan_object_last_session_restore_point_timestamp_seconds", "object_id", id) > 0 {
				t.Errorf("object %s of a never-run plan has last-session series", id)
			}
		}
		byStatus[[2]string{plan, status}]++
		expect(t, s, k("veeam_failover_plan_object_info", "target", "vspc", "plan_id", plan, "object_id", id, "object", o.Name, "host", o.HostName), 1)
		if pt, ok := points[objectKey(o)]; ok {
			expect(t, s, k("veeam_failover_plan_object_latest_restore_point_timestamp_seconds", "target", "vspc", "plan_id", plan, "object_id", id), unix(pt))
		} else if count(s, "veeam_failover_plan_object_latest_restore_point_timestamp_seconds", "object_id", id) > 0 {
			t.Errorf("object %s has no replication point but a latest restore point series", id)
		}
	}
	if got := count(s, "veeam_failover_plan_object_info"); got != len(est.VSPC.Objects) {
		t.Errorf("%d object series, estate has %d objects", got, len(est.VSPC.Objects))
	}
	if neverRan == 0 {
		t.Error("no object of a never-run plan in the estate; the test checks nothing for them")
	}
	for plan := range plansWithObjects {
		for _, st := range []string{"Running", "Success", "Warning", "Failed", "None", "Unknown"} {
			expectCount(t, s, k("veeam_failover_plan_objects_by_last_session_status", "target", "vspc", "plan_id", plan, "status", st), float64(byStatus[[2]string{plan, st}]), all)
		}
	}
	expectPlanRecoveryPoints(t, s, est.VSPC, points)

	// EM plans and cloud sessions of the last 30 days.
	for _, p := range est.EM.Plans {
		id := low(p.UID)
		expect(t, s, k("veeam_failover_plan_info", "target", "em", "plan_id", id, "plan", p.Name,
			"backup_server_id", low(p.BackupServerUID), "type", "", "tenant_id", ""), 1)
		expect(t, s, k("veeam_failover_plan_objects", "target", "em", "plan_id", id), float64(len(p.VMs)))
	}
	if n := count(s, "veeam_failover_plan_status", "target", "em"); n != 0 {
		t.Errorf("EM has no plan status, got %d series", n)
	}
	counts := map[[2]string]int{}
	recent, running := 0, 0
	for _, cs := range est.EM.CloudSessions {
		if cs.CreationTimeUTC.Before(fixedNow.Add(-30 * 24 * time.Hour)) {
			continue
		}
		recent++
		result := cs.Result
		if result == "" {
			result = "None"
		}
		counts[[2]string{cs.State, result}]++
		id := low(cs.UID)
		expect(t, s, k("veeam_cloud_failover_session_info", "target", "em", "session_id", id, "plan", cs.Name), 1)
		expect(t, s, k("veeam_cloud_failover_session_state", "target", "em", "session_id", id, "state", cs.State), 1)
		expect(t, s, k("veeam_cloud_failover_session_result", "target", "em", "session_id", id, "result", result), 1)
		if progress := k("veeam_cloud_failover_session_progress_ratio", "target", "em", "session_id", id); cs.EndTimeUTC == nil && cs.State != "Stopped" {
			running++
			expect(t, s, progress, float64(cs.Progress)/100)
		} else if _, ok := s[progress]; ok {
			t.Errorf("%s: progress of a session that ended", progress)
		}
		expect(t, s, k("veeam_cloud_failover_session_start_timestamp_seconds", "target", "em", "session_id", id), unix(cs.CreationTimeUTC))
		if cs.EndTimeUTC != nil {
			expect(t, s, k("veeam_cloud_failover_session_end_timestamp_seconds", "target", "em", "session_id", id), unix(*cs.EndTimeUTC))
		}
	}
	if recent == 0 || running == 0 || running == recent {
		t.Errorf("estate has %d recent cloud sessions, %d running: the test needs both running and ended ones", recent, running)
	}
	for _, st := range []string{"Starting", "Stopping", "Working", "Stopped", "Unknown"} {
		for _, res := range []string{"Success", "Warning", "Failed", "None", "Unknown"} {
			expectCount(t, s, k("veeam_cloud_failover_sessions", "target", "em", "state", st, "result", res), float64(counts[[2]string{st, res}]), all)
		}
	}

	expectReplicas(t, s, est.VBR)
}

// serverVM is a VM as one backup server sees it (lower-case ids): a plan
// fails over to a replica of its own backup server.
type serverVM struct{ server, vm string }

func objectKey(o simulator.VSPCPlanObject) serverVM {
	return serverVM{strings.ToLower(o.BackupServerUID), strings.ToLower(o.InstanceUID)}
}

// replicationPoints is the truth the recovery points come from: per backup
// server and VM, the newest latestRestorePointDate of each Replication job,
// and the oldest of those when several jobs replicate the VM (the plan may
// fail over to either). Backup and BackupCopy chains are not what a
// failover restores.
func replicationPoints(e simulator.VSPCEstate) map[serverVM]time.Time {
	perJob := map[[3]string]time.Time{}
	for _, b := range e.Backups {
		if b.BackupType != "Replication" || b.LatestRestorePointDate == nil {
			continue
		}
		k := [3]string{strings.ToLower(b.BackupServerUID), strings.ToLower(b.VirtualMachineUID), strings.ToLower(b.JobUID)}
		if t, ok := perJob[k]; !ok || b.LatestRestorePointDate.After(t) {
			perJob[k] = *b.LatestRestorePointDate
		}
	}
	out := map[serverVM]time.Time{}
	for k, t := range perJob {
		sv := serverVM{k[0], k[1]}
		if cur, ok := out[sv]; !ok || t.Before(cur) {
			out[sv] = t
		}
	}
	return out
}

// newestPerVM is what a careless reader would take: the newest point of
// the chains kept, per backup server and VM, or per VM alone (server "")
// when anyServer.
func newestPerVM(e simulator.VSPCEstate, anyServer bool, keep func(simulator.VSPCBackup) bool) map[serverVM]time.Time {
	out := map[serverVM]time.Time{}
	for _, b := range e.Backups {
		if !keep(b) || b.LatestRestorePointDate == nil {
			continue
		}
		sv := serverVM{strings.ToLower(b.BackupServerUID), strings.ToLower(b.VirtualMachineUID)}
		if anyServer {
			sv.server = ""
		}
		if t, ok := out[sv]; !ok || b.LatestRestorePointDate.After(t) {
			out[sv] = *b.LatestRestorePointDate
		}
	}
	return out
}

// planPoints is, per plan with VMs (lower-case id), the oldest of its VMs'
// points and how many VMs have none. Points keyed with an empty server are
// looked up by VM alone.
func planPoints(e simulator.VSPCEstate, points map[serverVM]time.Time) (oldest map[string]time.Time, without map[string]int) {
	oldest, without = map[string]time.Time{}, map[string]int{}
	for _, o := range e.Objects {
		plan := strings.ToLower(o.PlanUID)
		without[plan] += 0
		pt, ok := points[objectKey(o)]
		if !ok {
			pt, ok = points[serverVM{"", strings.ToLower(o.InstanceUID)}]
		}
		if !ok {
			without[plan]++
			continue
		}
		if cur, seen := oldest[plan]; !seen || pt.Before(cur) {
			oldest[plan] = pt
		}
	}
	return oldest, without
}

// expectPlanRecoveryPoints checks every plan's recovery point and count of
// VMs without one against the estate.
func expectPlanRecoveryPoints(t *testing.T, s map[string]float64, e simulator.VSPCEstate, points map[serverVM]time.Time) {
	t.Helper()
	oldest, without := planPoints(e, points)
	var missing int
	for plan, n := range without {
		expect(t, s, k("veeam_failover_plan_objects_without_restore_point", "target", "vspc", "plan_id", plan), float64(n))
		missing += n
		rp := k("veeam_failover_plan_recovery_point_timestamp_seconds", "target", "vspc", "plan_id", plan)
		if pt, ok := oldest[plan]; ok {
			expect(t, s, rp, unix(pt))
		} else if _, ok := s[rp]; ok {
			t.Errorf("plan %s: no VM has a restore point, yet %s is exported", plan, rp)
		}
	}
	if missing == 0 {
		t.Error("every VM has a replication point; the test checks nothing for VMs without")
	}
	if got, want := count(s, "veeam_failover_plan_recovery_point_timestamp_seconds"), len(oldest); got != want {
		t.Errorf("%d plan recovery points, want %d", got, want)
	}
}

// expectReplicas checks the VBR replicas, each VM's newest point and the
// replica's recovery point (the oldest of those) against the estate.
func expectReplicas(t *testing.T, s map[string]float64, e simulator.VBREstate) {
	t.Helper()
	low := strings.ToLower
	perVM := map[[2]string]time.Time{}
	for _, p := range e.Points {
		key := [2]string{low(p.ReplicaID), p.Name}
		if p.CreationTime.After(perVM[key]) {
			perVM[key] = p.CreationTime
		}
	}
	oldest := map[string]time.Time{}
	for key, ts := range perVM {
		expect(t, s, k("veeam_replica_object_latest_point_timestamp_seconds", "target", "vbr", "replica_id", key[0], "object", key[1]), unix(ts))
		if cur, ok := oldest[key[0]]; !ok || ts.Before(cur) {
			oldest[key[0]] = ts
		}
	}
	if got := count(s, "veeam_replica_object_latest_point_timestamp_seconds"); got != len(perVM) {
		t.Errorf("%d per-VM point series, estate has %d VMs with points", got, len(perVM))
	}
	for _, r := range e.Replicas {
		id := low(r.ID)
		expect(t, s, k("veeam_replica_info", "target", "vbr", "replica_id", id, "replica", r.Name, "type", r.Type), 1)
		expect(t, s, k("veeam_replica_state", "target", "vbr", "replica_id", id, "state", r.State), 1)
		if ts, ok := oldest[id]; ok {
			expect(t, s, k("veeam_replica_latest_point_timestamp_seconds", "target", "vbr", "replica_id", id), unix(ts))
		}
	}
	if got := count(s, "veeam_replica_info"); got != len(e.Replicas) {
		t.Errorf("%d replica series, estate has %d", got, len(e.Replicas))
	}
}

func unix(t time.Time) float64 { return float64(t.Unix()) + float64(t.Nanosecond())/1e9 }

// TestFailingTargets: a target whose login fails and one whose API answers
// 500 report veeam_up 0 and success 0 for each collector, while the others
// are scraped as usual. The password never reaches the log.
func TestFailingTargets(t *testing.T) {
	sim := startSim(t, simulator.Options{Seed: 7, Now: fixedClock,
		VSPC: simulator.VSPCOptions{Plans: 2, ObjectsPerPlan: 2},
		EM:   simulator.EMOptions{Plans: 2, CloudSessions: 4, CdpReplicas: -1},
		VBR:  simulator.VBROptions{Replicas: 2, PointsPerReplica: 1}})
	sim.SetFault(simulator.APIEM, simulator.Fault{Status: 500})
	const wrong = "wrong-password-4711"
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newExporter(t, []collector.Target{
		target(t, sim, veeam.TypeVSPC, "bad-login", wrong),
		target(t, sim, veeam.TypeEM, "broken", simulator.DefaultPassword),
		target(t, sim, veeam.TypeVBR, "good", simulator.DefaultPassword),
	}, collector.Options{PerObject: true, SessionsPerPlan: 1, Logger: logger})
	s := series(gather(t, e, context.Background()))

	expect(t, s, k("veeam_up", "target", "bad-login", "type", "vspc"), 0)
	expect(t, s, k("veeam_up", "target", "broken", "type", "em"), 0)
	expect(t, s, k("veeam_up", "target", "good", "type", "vbr"), 1)
	for _, c := range []struct{ target, collector string }{
		{"bad-login", collector.FailoverPlans}, {"bad-login", collector.FailoverPlanObjects},
		{"broken", collector.FailoverPlans}, {"broken", collector.CloudFailoverSessions},
	} {
		expect(t, s, k("veeam_scrape_collector_success", "target", c.target, "collector", c.collector), 0)
		if _, ok := s[k("veeam_scrape_collector_duration_seconds", "target", c.target, "collector", c.collector)]; !ok {
			t.Errorf("no duration for %s/%s", c.target, c.collector)
		}
	}
	expect(t, s, k("veeam_scrape_collector_success", "target", "good", "collector", collector.Replicas), 1)
	if n := count(s, "veeam_replica_info", "target", "good"); n != 2 {
		t.Errorf("good target: %d replicas, want 2", n)
	}
	if n := count(s, "veeam_failover_plan_info"); n != 0 {
		t.Errorf("failing targets still exported %d plans", n)
	}
	if strings.Contains(logs.String(), wrong) || strings.Contains(logs.String(), simulator.DefaultPassword) {
		t.Errorf("a password reached the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "bad-login") {
		t.Errorf("the failed login was not logged:\n%s", logs.String())
	}
}

// syncWriter makes a bytes.Buffer safe for the parallel collectors' logs.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.String()
}

// TestScrapeTimeout: a collector slower than the scrape's deadline is
// reported unsuccessful in time, the others deliver their metrics, and the
// fetch left running is joined by the next scrape.
func TestScrapeTimeout(t *testing.T) {
	sim := startSim(t, simulator.Options{Seed: 3, Now: fixedClock, VSPC: simulator.VSPCOptions{Plans: 2, ObjectsPerPlan: 2}})
	const slow = 1500 * time.Millisecond
	sim.SetFault(simulator.APIVSPC, simulator.Fault{PathPrefix: "/api/v3/infrastructure/backupServers/failoverplans/objects", Latency: slow})
	e := newExporter(t, []collector.Target{target(t, sim, veeam.TypeVSPC, "vspc", simulator.DefaultPassword)},
		collector.Options{PerObject: true})

	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	s := series(gather(t, e, ctx))
	if took := time.Since(start); took > 1200*time.Millisecond {
		t.Errorf("scrape took %v with a 400ms deadline", took)
	}
	expect(t, s, k("veeam_scrape_collector_success", "target", "vspc", "collector", collector.FailoverPlans), 1)
	expect(t, s, k("veeam_scrape_collector_success", "target", "vspc", "collector", collector.FailoverPlanObjects), 0)
	expect(t, s, k("veeam_up", "target", "vspc", "type", "vspc"), 0)
	if d := s[k("veeam_scrape_collector_duration_seconds", "target", "vspc", "collector", collector.FailoverPlanObjects)]; d < 0.3 || d > 1.2 {
		t.Errorf("duration of the unfinished collector = %g, want about the 0.4s waited", d)
	}
	if n := count(s, "veeam_failover_plan_info"); n != 2 {
		t.Errorf("%d plans, want 2 from the collector that finished", n)
	}
	if n := count(s, "veeam_failover_plan_objects_by_last_session_status"); n != 0 {
		t.Errorf("unfinished collector exported %d series", n)
	}

	// The next scrape, with time enough, joins the fetch still running
	// rather than starting another one.
	objectReads := func() int {
		n := 0
		for _, r := range sim.Requests(simulator.APIVSPC) {
			if strings.HasPrefix(r.Path, "/api/v3/infrastructure/backupServers/failoverplans/objects") {
				n++
			}
		}
		return n
	}
	before := objectReads()
	s = series(gather(t, e, context.Background()))
	expect(t, s, k("veeam_up", "target", "vspc", "type", "vspc"), 1)
	if d := s[k("veeam_scrape_collector_duration_seconds", "target", "vspc", "collector", collector.FailoverPlanObjects)]; d < slow.Seconds() {
		t.Errorf("duration %g, want the whole fetch (>= %v)", d, slow)
	}
	if after := objectReads(); after != before {
		// The request log records a request when it is answered, so the
		// joined fetch's page may land in between; a second fetch would add
		// another.
		if after-before > 1 {
			t.Errorf("the second scrape fetched again: %d object reads before, %d after", before, after)
		}
	}

	// A deadline already past reports every collector unsuccessful at once.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	s = series(gather(t, e, done))
	expect(t, s, k("veeam_up", "target", "vspc", "type", "vspc"), 0)
	expect(t, s, k("veeam_scrape_collector_success", "target", "vspc", "collector", collector.FailoverPlans), 0)
}

// clock is a settable clock for cache ages.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func dataRequests(sim *simulator.Simulator, api simulator.API) int {
	n := 0
	for _, r := range sim.Requests(api) {
		if !strings.Contains(r.Path, "token") && !strings.Contains(r.Path, "sessionMngr") && !strings.Contains(r.Path, "logonSessions") {
			n++
		}
	}
	return n
}

func TestMinInterval(t *testing.T) {
	sim := startSim(t, simulator.Options{Seed: 5, Now: fixedClock, VBR: simulator.VBROptions{Replicas: 3, PointsPerReplica: 2}})
	clk := &clock{t: fixedNow}
	e := newExporter(t, []collector.Target{target(t, sim, veeam.TypeVBR, "vbr", simulator.DefaultPassword)},
		collector.Options{MinInterval: time.Minute, Now: clk.Now})

	mfs := gather(t, e, context.Background())
	first := dataRequests(sim, simulator.APIVBR)
	if first == 0 {
		t.Fatal("no requests on the first scrape")
	}
	for _, mf := range mfs {
		if !strings.HasSuffix(mf.GetHelp(), "(cached up to 1m)") {
			t.Errorf("%s: help %q does not say it is cached", mf.GetName(), mf.GetHelp())
		}
	}

	clk.Advance(59 * time.Second)
	s := series(gather(t, e, context.Background()))
	if n := dataRequests(sim, simulator.APIVBR); n != first {
		t.Errorf("a scrape within min_interval made %d requests", n-first)
	}
	expect(t, s, k("veeam_up", "target", "vbr", "type", "vbr"), 1)
	if n := count(s, "veeam_replica_info"); n != 3 {
		t.Errorf("cached scrape: %d replicas, want 3", n)
	}

	// Once older, the result is fetched again. A failure is not cached:
	// the next scrape tries again.
	clk.Advance(2 * time.Second)
	sim.SetFault(simulator.APIVBR, simulator.Fault{Status: 500, PathPrefix: "/api/v1/replica"})
	s = series(gather(t, e, context.Background()))
	expect(t, s, k("veeam_up", "target", "vbr", "type", "vbr"), 0)
	second := dataRequests(sim, simulator.APIVBR)
	if second == first {
		t.Error("no requests after min_interval passed")
	}
	sim.ClearFaults()
	s = series(gather(t, e, context.Background()))
	expect(t, s, k("veeam_up", "target", "vbr", "type", "vbr"), 1)
	if dataRequests(sim, simulator.APIVBR) == second {
		t.Error("a failed fetch was served from the cache")
	}
}

// TestSingleflight: two concurrent scrapes make the requests of one.
func TestSingleflight(t *testing.T) {
	sim := startSim(t, simulator.Options{Seed: 9, Now: fixedClock, VSPC: simulator.VSPCOptions{Plans: 4, ObjectsPerPlan: 3}})
	e := newExporter(t, []collector.Target{target(t, sim, veeam.TypeVSPC, "vspc", simulator.DefaultPassword)},
		collector.Options{PerObject: true})
	gather(t, e, context.Background()) // logs in
	sim.ResetRequests()
	gather(t, e, context.Background())
	one := dataRequests(sim, simulator.APIVSPC)
	if one == 0 {
		t.Fatal("no requests")
	}

	sim.SetFault(simulator.APIVSPC, simulator.Fault{Latency: 300 * time.Millisecond})
	sim.ResetRequests()
	var wg sync.WaitGroup
	results := make([]map[string]float64, 2)
	for i := range results {
		wg.Go(func() { results[i] = series(gather(t, e, context.Background())) })
	}
	wg.Wait()
	if n := dataRequests(sim, simulator.APIVSPC); n != one {
		t.Errorf("two concurrent scrapes made %d requests, one makes %d", n, one)
	}
	if !maps.Equal(results[0], results[1]) {
		t.Error("the two scrapes saw different metrics")
	}
}

// TestSessionsPerPlan: only the newest N sessions of each plan get their own
// series; the counts cover all.
func TestSessionsPerPlan(t *testing.T) {
	sim := startSim(t, simulator.Options{Seed: 11, Now: fixedClock, EM: simulator.EMOptions{Plans: 3, CloudSessions: 30, CdpReplicas: -1}})
	ems := target(t, sim, veeam.TypeEM, "em", simulator.DefaultPassword, collector.CloudFailoverSessions)
	byPlan := map[string][]simulator.EMCloudSession{}
	total := 0
	for _, cs := range sim.Estate().EM.CloudSessions {
		if !cs.CreationTimeUTC.Before(fixedNow.Add(-30 * 24 * time.Hour)) {
			byPlan[cs.Name] = append(byPlan[cs.Name], cs)
			total++
		}
	}
	for _, n := range []int{0, 1, 2, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newExporter(t, []collector.Target{ems}, collector.Options{SessionsPerPlan: n})
			s := series(gather(t, e, context.Background()))
			sum := 0
			for st := range s {
				if strings.HasPrefix(st, "veeam_cloud_failover_sessions{") {
					sum += int(s[st])
				}
			}
			if sum != total {
				t.Errorf("counts sum to %d, %d sessions in the window", sum, total)
			}
			for plan, sessions := range byPlan {
				slices.SortFunc(sessions, func(a, b simulator.EMCloudSession) int { return b.CreationTimeUTC.Compare(a.CreationTimeUTC) })
				want := min(n, len(sessions))
				if got := count(s, "veeam_cloud_failover_session_info", "plan", plan); got != want {
					t.Errorf("plan %q: %d sessions, want %d", plan, got, want)
				}
				for _, cs := range sessions[:want] {
					expect(t, s, k("veeam_cloud_failover_session_info", "target", "em", "session_id", strings.ToLower(cs.UID), "plan", plan), 1)
				}
			}
		})
	}
}

// TestPerObjectSettings: per_object false leaves only per-plan series;
// the per-VM last-session series come only with last_session_status.
func TestPerObjectSettings(t *testing.T) {
	sim := startSim(t, simulator.Options{Seed: 13, Now: fixedClock, VSPC: simulator.VSPCOptions{Plans: 6, ObjectsPerPlan: 4}})
	tgt := target(t, sim, veeam.TypeVSPC, "vspc", simulator.DefaultPassword, collector.FailoverPlanObjects)
	const (
		info     = "veeam_failover_plan_object_info"
		latest   = "veeam_failover_plan_object_latest_restore_point_timestamp_seconds"
		status   = "veeam_failover_plan_object_last_session_status"
		used     = "veeam_failover_plan_object_last_session_restore_point_timestamp_seconds"
		byStatus = "veeam_failover_plan_objects_by_last_session_status"
		plan     = "veeam_failover_plan_recovery_point_timestamp_seconds"
		without  = "veeam_failover_plan_objects_without_restore_point"
	)
	for _, tc := range []struct {
		perObject, lastSession bool
		present                []string
	}{
		{true, false, []string{info, latest, byStatus, plan, without}},
		{true, true, []string{info, latest, status, used, byStatus, plan, without}},
		{false, false, []string{byStatus, plan, without}},
		// Refused by config validation; the collector still exports no
		// per-VM series.
		{false, true, []string{byStatus, plan, without}},
	} {
		t.Run(fmt.Sprintf("per_object=%v,last_session_status=%v", tc.perObject, tc.lastSession), func(t *testing.T) {
			e := newExporter(t, []collector.Target{tgt}, collector.Options{PerObject: tc.perObject, LastSessionStatus: tc.lastSession})
			s := series(gather(t, e, context.Background()))
			for _, name := range []string{info, latest, status, used, byStatus, plan, without} {
				if got, want := count(s, name) > 0, slices.Contains(tc.present, name); got != want {
					t.Errorf("%s present = %v, want %v", name, got, want)
				}
			}
			vms, plans := 0.0, map[string]bool{}
			for key, v := range s {
				if strings.HasPrefix(key, byStatus+"{") {
					vms += v
					plans[regexpLabel("status").ReplaceAllString(key, "")] = true
				}
			}
			if vms != 6*4 || len(plans) != 6 {
				t.Errorf("%s: %g VMs in %d plans, want 24 in 6", byStatus, vms, len(plans))
			}
			if n := count(s, without); n != 6 {
				t.Errorf("%d %s series, want one per plan", n, without)
			}
		})
	}
}

// TestPlanRecoveryPoint: with per_object false every VSPC plan still has its
// recovery point, the oldest replication point among its VMs (computed here
// from the estate's backup chains), and the VMs without one are counted.
// The estate's backup chains are newer than its replicas, so a client or
// collector reading every chain, not only Replication ones, fails it.
func TestPlanRecoveryPoint(t *testing.T) {
	sim := startSim(t, simulator.Options{Seed: 31, Now: fixedClock, VSPC: simulator.VSPCOptions{Plans: 60, ObjectsPerPlan: 3, NoReplicaEvery: 5}})
	tgt := target(t, sim, veeam.TypeVSPC, "vspc", simulator.DefaultPassword, collector.FailoverPlanObjects)
	e := newExporter(t, []collector.Target{tgt}, collector.Options{PerObject: false})
	s := series(gather(t, e, context.Background()))
	est := sim.Estate().VSPC
	expect(t, s, k("veeam_up", "target", "vspc", "type", "vspc"), 1)

	points := replicationPoints(est)
	expectPlanRecoveryPoints(t, s, est, points)
	withPoint := map[string]bool{}
	for _, o := range est.Objects {
		if _, ok := points[objectKey(o)]; ok {
			withPoint[strings.ToLower(o.PlanUID)] = true
		}
	}
	if got := count(s, "veeam_failover_plan_recovery_point_timestamp_seconds"); got != len(withPoint) || got < 50 {
		t.Errorf("%d plans with a recovery point, want %d", got, len(withPoint))
	}

	// What a missing type filter, a join by VM alone, or the newest of
	// several jobs would report: each must differ, or this test could not
	// catch it.
	replication := func(b simulator.VSPCBackup) bool { return b.BackupType == "Replication" }
	for _, careless := range []struct {
		name   string
		points map[serverVM]time.Time
	}{
		{"reading every chain", newestPerVM(est, false, func(simulator.VSPCBackup) bool { return true })},
		{"joining by VM alone", newestPerVM(est, true, replication)},
		{"taking the newest job", newestPerVM(est, false, replication)},
	} {
		wrong, _ := planPoints(est, careless.points)
		differs := 0
		for plan, pt := range wrong {
			if v, ok := s[k("veeam_failover_plan_recovery_point_timestamp_seconds", "target", "vspc", "plan_id", plan)]; !ok || v != unix(pt) {
				differs++
			}
		}
		if differs == 0 {
			t.Errorf("%s gives the same plan recovery points: the test cannot catch it", careless.name)
		}
	}

	// One paged list of backups for the estate, never a request per VM.
	var lists int
	for _, r := range sim.Requests(simulator.APIVSPC) {
		switch {
		case strings.HasPrefix(r.Path, "/api/v3/protectedWorkloads/virtualMachines/backups"):
			lists++
		case strings.HasPrefix(r.Path, "/api/v3/protectedWorkloads"):
			t.Errorf("per-VM request %s", r.Path)
		}
	}
	if lists != 1 {
		t.Errorf("%d backup list requests, want 1 page", lists)
	}
}

// TestMultiVMReplicas: a replica that is a replication job of several VMs
// gets the newest point of each VM, and its recovery point is the oldest of
// those, not its newest point.
func TestMultiVMReplicas(t *testing.T) {
	sim := startSim(t, simulator.Options{Seed: 19, Now: fixedClock, VBR: simulator.VBROptions{Replicas: 6, PointsPerReplica: 3, MultiVMReplicas: true}})
	e := newExporter(t, []collector.Target{target(t, sim, veeam.TypeVBR, "vbr", simulator.DefaultPassword)}, collector.Options{})
	s := series(gather(t, e, context.Background()))
	est := sim.Estate().VBR
	expectReplicas(t, s, est)

	// The estate must make the two differ somewhere for this to test it.
	newest := map[string]time.Time{}
	for _, p := range est.Points {
		if id := strings.ToLower(p.ReplicaID); p.CreationTime.After(newest[id]) {
			newest[id] = p.CreationTime
		}
	}
	differs := 0
	for id, ts := range newest {
		if count(s, "veeam_replica_object_latest_point_timestamp_seconds", "replica_id", id) < 2 {
			continue
		}
		if s[k("veeam_replica_latest_point_timestamp_seconds", "target", "vbr", "replica_id", id)] < unix(ts) {
			differs++
		}
	}
	if differs == 0 {
		t.Fatal("no multi-VM replica whose recovery point is older than its newest point")
	}
}

// TestInvalidTargets: a collector the type does not support, or a missing
// client, fail on each scrape without disturbing the valid collectors.
func TestInvalidTargets(t *testing.T) {
	sim := startSim(t, simulator.Options{Seed: 1, Now: fixedClock, VBR: simulator.VBROptions{Replicas: 1, PointsPerReplica: 1}})
	good := target(t, sim, veeam.TypeVBR, "vbr", simulator.DefaultPassword)
	wrong := good
	wrong.Name, wrong.Collectors = "vbr-wrong", []string{collector.Replicas, collector.FailoverPlans}
	e := newExporter(t, []collector.Target{
		good,
		wrong,
		{Name: "no-client", Type: veeam.TypeVSPC},
		{Name: "vbr", Type: veeam.TypeVBR}, // duplicate name, ignored
	}, collector.Options{})
	s := series(gather(t, e, context.Background()))
	expect(t, s, k("veeam_up", "target", "vbr", "type", "vbr"), 1)
	expect(t, s, k("veeam_up", "target", "vbr-wrong", "type", "vbr"), 0)
	expect(t, s, k("veeam_scrape_collector_success", "target", "vbr-wrong", "collector", collector.Replicas), 1)
	expect(t, s, k("veeam_scrape_collector_success", "target", "vbr-wrong", "collector", collector.FailoverPlans), 0)
	expect(t, s, k("veeam_up", "target", "no-client", "type", "vspc"), 0)
	expect(t, s, k("veeam_scrape_collector_success", "target", "no-client", "collector", collector.FailoverPlanObjects), 0)
}

// TestPromtool runs `promtool check metrics` on a full scrape of all three
// target types, with only the current states and with every state.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found; CI needs it")
		}
		t.Skip("promtool not found: install it from https://prometheus.io/download/ (it ships with Prometheus) or `go install github.com/prometheus/prometheus/cmd/promtool@latest`")
	}
	sim := startSim(t, simulator.Options{Seed: 17, Now: fixedClock, VBR: simulator.VBROptions{MultiVMReplicas: true}})
	for _, all := range []bool{false, true} {
		e := newExporter(t, []collector.Target{
			target(t, sim, veeam.TypeVSPC, "vspc", simulator.DefaultPassword),
			target(t, sim, veeam.TypeEM, "em", simulator.DefaultPassword),
			target(t, sim, veeam.TypeVBR, "vbr", simulator.DefaultPassword),
		}, collector.Options{PerObject: true, LastSessionStatus: true, SessionsPerPlan: 2, MinInterval: time.Minute, AllStates: all})
		out := exposition(t, gather(t, e, context.Background()))
		for _, name := range []string{"veeam_cloud_failover_session_info", "veeam_replica_object_latest_point_timestamp_seconds",
			"veeam_failover_plan_object_last_session_status", "veeam_failover_plan_recovery_point_timestamp_seconds"} {
			if !bytes.Contains(out, []byte(name+"{")) {
				t.Fatalf("all states %v: the scrape misses %s:\n%s", all, name, out)
			}
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(out)
		res, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(res)) > 0 {
			t.Errorf("all states %v: promtool check metrics: %v\n%s", all, err, res)
		}
	}
}

// BenchmarkCollectPlanObjects scrapes a 50,000-object VSPC estate (2,000 with
// -short) end to end: simulator, client, collector and registry. B/object
// counts every allocation in the process, the simulator's included; the
// "client" sub-benchmark is the client's read alone, so the difference is
// what the collector and the registry add.
func BenchmarkCollectPlanObjects(b *testing.B) {
	plans := 10000
	if testing.Short() {
		plans = 400
	}
	const perPlan = 5
	objects := plans * perPlan
	sim := startSim(b, simulator.Options{Seed: 1, Now: fixedClock, VSPC: simulator.VSPCOptions{Plans: plans, ObjectsPerPlan: perPlan, BackupServers: 10}})
	tgt := target(b, sim, veeam.TypeVSPC, "vspc", simulator.DefaultPassword, collector.FailoverPlanObjects)
	e := newExporter(b, []collector.Target{tgt}, collector.Options{PerObject: true})
	if n := len(gather(b, e, context.Background())); n == 0 { // logs in
		b.Fatal("no metrics")
	}
	perObject := func(b *testing.B, f func()) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for b.Loop() {
			f()
		}
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(objects), "B/object")
	}
	b.Run("scrape", func(b *testing.B) {
		perObject(b, func() {
			// A plain registry, as main uses; the pedantic one of the tests
			// allocates several times more.
			reg := prometheus.NewRegistry()
			reg.MustRegister(e.Collector(context.Background()))
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("client", func(b *testing.B) {
		perObject(b, func() {
			if _, err := tgt.Client.(*vspc.Client).ListFailoverPlanObjects(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	})
}
