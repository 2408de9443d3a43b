package collector_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// seriesCount is what one text exposition holds: series lines, those that
// carry object_id (per VM), and body bytes.
type seriesCount struct {
	all, perVM, bytes int
}

func countSeries(t testing.TB, body []byte) seriesCount {
	t.Helper()
	c := seriesCount{bytes: len(body)}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		c.all++
		if strings.Contains(line, `object_id="`) {
			c.perVM++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	seriesPlans = flag.Int("series.plans", 1000, "TestSeriesPerVM: VSPC plans")
	seriesVMs   = flag.Int("series.vms", 5, "TestSeriesPerVM: VMs per plan")
)

// TestSeriesPerVM measures what a VSPC estate costs in series under the
// default settings, with per_object false, with the per-VM last-session
// series, and with those and every state (statesets: all), counting the
// lines of the text exposition, and holds the default to the info series
// and the recovery point per VM. The figures are logged:
//
//	go test ./collector -run TestSeriesPerVM -v -args -series.plans=10000 -series.vms=5
func TestSeriesPerVM(t *testing.T) {
	plans, perPlan := *seriesPlans, *seriesVMs
	vms := plans * perPlan
	sim := startSim(t, simulator.Options{Seed: 1, Now: fixedClock, VSPC: simulator.VSPCOptions{Plans: plans, ObjectsPerPlan: perPlan, BackupServers: 10}})
	tgt := target(t, sim, veeam.TypeVSPC, "vspc", simulator.DefaultPassword)
	points := replicationPoints(sim.Estate().VSPC)
	withPoint := 0
	for _, o := range sim.Estate().VSPC.Objects {
		if _, ok := points[objectKey(o)]; ok {
			withPoint++
		}
	}
	withSession := 0
	for _, o := range sim.Estate().VSPC.Objects {
		if o.RestoreSession != nil && o.RestoreSession.BackupStatus != "" {
			withSession++
		}
	}

	measure := func(o collector.Options) seriesCount {
		e := newExporter(t, []collector.Target{tgt}, o)
		var buf bytes.Buffer
		if err := e.Scrape(context.Background()).Write(&buf, expfmt.NewFormat(expfmt.TypeTextPlain), nil); err != nil {
			t.Fatal(err)
		}
		return countSeries(t, buf.Bytes())
	}
	counts := measure(collector.Options{PerObject: false})
	def := measure(collector.Options{PerObject: true})
	rich := measure(collector.Options{PerObject: true, LastSessionStatus: true})
	richAll := measure(collector.Options{PerObject: true, LastSessionStatus: true, AllStates: true})
	defAll := measure(collector.Options{PerObject: true, AllStates: true})
	for _, m := range []struct {
		name string
		c    seriesCount
	}{{"per_object: false", counts}, {"default", def}, {"statesets: all", defAll}, {"last_session_status: true", rich}, {"both", richAll}} {
		t.Logf("%d plans x %d VMs, %-26s %8d series (%.2f per VM), %8d per-VM series (%.2f per VM), %5.1f MB",
			plans, perPlan, m.name+":", m.c.all, float64(m.c.all)/float64(vms), m.c.perVM, float64(m.c.perVM)/float64(vms), float64(m.c.bytes)/1e6)
	}

	// Default: per VM its info series, and its recovery point when it
	// has one; nothing else.
	if want := vms + withPoint; def.perVM != want {
		t.Errorf("default: %d per-VM series, want %d (info for %d VMs, recovery point for %d)", def.perVM, want, vms, withPoint)
	}
	if counts.perVM != 0 {
		t.Errorf("per_object false: %d per-VM series", counts.perVM)
	}
	// The plan-level series do not depend on per_object.
	if def.all-def.perVM != counts.all {
		t.Errorf("per-plan series: %d by default, %d with per_object false", def.all-def.perVM, counts.all)
	}
	// The opt-in adds, per VM with a failover session, its status (all 5
	// values with statesets: all) and the restore point that session used
	// (when it has one).
	if extra := rich.perVM - def.perVM; extra < withSession || extra > 2*withSession || withSession == 0 {
		t.Errorf("last_session_status adds %d series for %d VMs with a session", extra, withSession)
	}
	if extra := richAll.perVM - def.perVM; extra < 5*withSession || extra > 6*withSession {
		t.Errorf("last_session_status with statesets: all adds %d series for %d VMs with a session", extra, withSession)
	}
	// Every state costs per plan: 7 more status series, at least 1 more
	// count (6 values, at most 5 VMs per plan of the estate), up to 4 more
	// last-session values.
	if extra := defAll.all - def.all; extra < 8*plans || extra > 16*plans || defAll.perVM != def.perVM {
		t.Errorf("statesets: all adds %d series for %d plans (%d per VM)", extra, plans, defAll.perVM-def.perVM)
	}
}
