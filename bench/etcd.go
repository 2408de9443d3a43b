package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// etcdCluster is an etcd cluster on loopback for the webhook figure with
// coordination: members are child processes, stopped by their pid.
type etcdCluster struct {
	endpoints []string
	procs     []*child
}

// startEtcd starts an n-member cluster with data under dir ($ETCD_BIN, else
// etcd on PATH) and waits until every member reports healthy.
func startEtcd(dir string, n int) (*etcdCluster, error) {
	bin := os.Getenv("ETCD_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			return nil, errors.New("etcd not found on PATH (or $ETCD_BIN); install with: apt-get install etcd-server")
		}
	}
	type member struct{ name, client, peer string }
	var ms []member
	var initial []string
	for i := range n {
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		m := member{fmt.Sprintf("m%d", i), fmt.Sprintf("http://127.0.0.1:%d", cp), fmt.Sprintf("http://127.0.0.1:%d", pp)}
		ms = append(ms, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	c := &etcdCluster{}
	for _, m := range ms {
		log, err := os.Create(filepath.Join(dir, "etcd-"+m.name+".log"))
		if err != nil {
			c.stop()
			return nil, err
		}
		cmd := exec.Command(bin, "--name", m.name, "--data-dir", filepath.Join(dir, "etcd-"+m.name),
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", fmt.Sprintf("bench-%d", os.Getpid()),
			"--initial-cluster-state", "new", "--log-level", "warn", "--logger", "zap", "--log-outputs", "stderr")
		cmd.Stdout, cmd.Stderr = log, log
		p, err := startChild(cmd)
		log.Close()
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("start etcd: %w", err)
		}
		c.procs = append(c.procs, p)
		c.endpoints = append(c.endpoints, m.client)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, ep := range c.endpoints {
		for !etcdHealthy(ep) {
			if time.Now().After(deadline) {
				c.stop()
				return nil, fmt.Errorf("etcd member %s not healthy after 30s (logs in %s)", ep, dir)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c, nil
}

func etcdHealthy(ep string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"health":"true"`)
}

// stop ends every member (SIGTERM, SIGKILL after 10s) by its pid.
func (c *etcdCluster) stop() {
	for _, p := range c.procs {
		p.stop(10 * time.Second)
	}
	c.procs = nil
}

// withEtcd runs f with the endpoints of a fresh n-member cluster.
func (e *env) withEtcd(n int, f func(endpoints []string) error) error {
	dir, err := e.newDir("etcd")
	if err != nil {
		return err
	}
	c, err := startEtcd(dir, n)
	if err != nil {
		return err
	}
	defer c.stop()
	return f(c.endpoints)
}

// webhookEtcdFigures sets the storm with the memory in etcd next to the
// same storm with the local state file.
func webhookEtcdFigures(rep *report, local, w whRun) {
	rep.add(row("4.webhook_rate_etcd", "4", "webhook notifications/s, etcd coordination", w.PerSecond, "/s").
		base("local file", local.PerSecond).
		note(fmt.Sprintf("the same %d notifications from %d clients, the trigger's memory in %s on loopback (trigger.coordination.etcd) instead of its state file; "+
			"answers %v; decisions %v", w.Notifications, w.Clients, w.Store, w.Codes, w.Outcomes)))
	rep.add(row("4.webhook_p99_etcd", "4", "webhook p99, etcd coordination", w.P99MS, "ms").
		base("local file", local.P99MS).
		note(fmt.Sprintf("p50 %.1f ms (local file %.1f), p90 %.1f, max %.1f ms; p99 of the notifications only blocked %.1f ms; the %d that acted took %.0f to %.0f ms "+
			"(shared dedup, cooldown and hold reads, then one transaction: claim, records, rate token, slot); CPU: exporter %.0f ms",
			w.P50MS, local.P50MS, w.P90MS, w.MaxMS, w.P99BlockedMS, w.Outcomes["decided"], w.ActingMinMS, w.ActingMaxMS, w.ExporterCPUMS)))
	allOK := w.Codes[200] == w.Notifications
	rep.add(row("4.webhook_calls_etcd", "4", "calls reaching the simulator, etcd coordination", float64(w.TotalCalls), "").
		base("expected", float64(w.ExpectedCalls)).
		target("exactly expected", w.TotalCalls == w.ExpectedCalls && allOK).
		note(fmt.Sprintf("by rule %v", w.Calls)))
}
