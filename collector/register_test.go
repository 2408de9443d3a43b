package collector

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
)

// The collector below is defined only in this file. It is registered only
// in a child test process (registerEnv), so that the other tests of the
// package, golden files included, see the four real collectors.
const registerEnv = "VEEAM_EXPORTER_TEST_COLLECTOR"

const testCollector = "test_replica_count"

var testReplicas = gaugeFamily("veeam_test_replicas", "Replicas VBR lists (a collector defined in a test).", labelTarget)

// replicaCounter is the reader the test collector needs.
type replicaCounter interface {
	ListReplicas(ctx context.Context) ([]veeam.Replica, error)
}

func init() {
	if os.Getenv(registerEnv) == "1" {
		register(testCollector, []string{veeam.TypeVBR}, []*familySpec{testReplicas},
			func(ctx context.Context, c *collector, r replicaCounter) ([]*block, error) {
				replicas, err := r.ListReplicas(ctx)
				if err != nil {
					return nil, err
				}
				b := c.block(testReplicas, 1)
				b.add(float64(len(replicas)), c.target)
				return []*block{b}, nil
			})
	}
}

// TestRegisteredCollector: a collector declared in one file is validated
// by config, becomes a default of its target type, and its metrics and
// status are served, with no other edit.
func TestRegisteredCollector(t *testing.T) {
	if os.Getenv(registerEnv) != "1" {
		args := []string{"-test.run=^TestRegisteredCollector$", "-test.count=1"}
		if testing.Verbose() {
			args = append(args, "-test.v")
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), registerEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("PASS")) {
			t.Fatalf("child test with the collector registered: %v\n%s", err, out)
		}
		t.Logf("child test:\n%s", out)
		return
	}

	sim, err := simulator.Start(simulator.Options{Seed: 3, VBR: simulator.VBROptions{Replicas: 4, PointsPerReplica: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	// Config: known, a default of vbr targets, refused on other types.
	dir := t.TempDir()
	write := func(name, yml string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yml", "targets:\n"+
		"  - {name: listed, type: vbr, url: "+sim.VBRURL()+", username: u, password: p, collectors: ["+testCollector+"]}\n"+
		"  - {name: default, type: vbr, url: "+sim.VBRURL()+", username: u, password: p}\n")
	cfg, err := config.Load(good, config.LoadOptions{})
	if err != nil {
		t.Fatalf("config with the test collector: %v", err)
	}
	if got := strings.Join(cfg.Targets[1].Collectors, ","); got != "replicas,"+testCollector {
		t.Errorf("default collectors of a vbr target: %s", got)
	}
	bad := write("bad.yml", "targets:\n  - {name: v, type: vspc, url: https://vspc.example.com, username: u, password: p, collectors: ["+testCollector+"]}\n")
	if _, err := config.Load(bad, config.LoadOptions{}); err == nil ||
		!strings.Contains(err.Error(), `collector "`+testCollector+`" is not supported by vspc targets`) {
		t.Errorf("test collector on a vspc target: %v", err)
	}

	// Metrics: a vbr target runs it by default.
	client, err := vbr.New(veeam.ClientOptions{Name: "default", URL: sim.VBRURL(), Username: simulator.DefaultUsername,
		Password: promconfig.Secret(simulator.DefaultPassword), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	e := New([]Target{{Name: "default", Type: veeam.TypeVBR, Client: client}}, Options{})
	defer e.Close()
	var out bytes.Buffer
	if err := e.Scrape(context.Background()).Write(&out, expfmt.NewFormat(expfmt.TypeTextPlain), nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`veeam_test_replicas{target="default"} 4`,
		`veeam_scrape_collector_success{collector="` + testCollector + `",target="default"} 1`,
		`veeam_up{target="default",type="vbr"} 1`,
		"# HELP veeam_test_replicas Replicas VBR lists (a collector defined in a test).",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %s in\n%s", want, out.String())
		}
	}
}

// TestDefaultCollectors: the per-type defaults config takes from the
// registry (config's own tests register stand-ins with these names).
func TestDefaultCollectors(t *testing.T) {
	for typ, want := range map[string]string{
		veeam.TypeVSPC: "failover_plan_objects,failover_plans",
		veeam.TypeEM:   "cloud_failover_sessions,failover_plans",
		veeam.TypeVBR:  "replicas",
	} {
		if got := strings.Join(config.CollectorsFor(typ), ","); got != want {
			t.Errorf("CollectorsFor(%s) = %s, want %s", typ, got, want)
		}
	}
}
