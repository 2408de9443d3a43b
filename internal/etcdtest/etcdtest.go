// Package etcdtest runs a real etcd cluster on loopback for tests: three
// members as child processes, tracked by pid, that a test stops and starts
// to lose a member or quorum.
package etcdtest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
)

// installHint says how to get the etcd server.
const installHint = "apt-get install etcd-server"

// startTimeout bounds how long a cluster or a restarted member may take to
// become healthy.
const startTimeout = 20 * time.Second

// Binary returns the path of the etcd server. Without one, the test fails
// when CI=true (CI installs etcd-server, so its absence is a broken CI) and
// is skipped otherwise.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ETCD_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("etcd")
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("etcd not found on PATH (or $ETCD_BIN); install with: %s", installHint)
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// Member is one etcd server of a Cluster.
type Member struct {
	Name      string
	ClientURL string // http://127.0.0.1:port, what clients dial
	PeerURL   string
	dataDir   string
	proc      *proctest.Process
}

// Cluster is a three-member etcd cluster whose members run as child
// processes of the test. Every member is stopped when the test ends.
type Cluster struct {
	tb      testing.TB
	bin     string
	initial string // the --initial-cluster value
	token   string
	mu      sync.Mutex
	members []*Member
}

// Start starts a three-member cluster with fresh data directories and waits
// until every member reports healthy.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	return StartN(tb, 3)
}

// StartN starts an n-member cluster; see Start.
func StartN(tb testing.TB, n int) *Cluster {
	tb.Helper()
	bin := Binary(tb)
	c := &Cluster{tb: tb, bin: bin, token: fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), time.Now().UnixNano())}
	// The data directories are created before any member starts, so that
	// t.Cleanup (last in, first out) stops the members before removing them.
	root := tb.TempDir()
	var initial []string
	for i := 0; i < n; i++ {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: "http://" + proctest.FreeAddr(tb),
			PeerURL:   "http://" + proctest.FreeAddr(tb),
			dataDir:   filepath.Join(root, fmt.Sprintf("m%d", i)),
		}
		c.members = append(c.members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	c.initial = strings.Join(initial, ",")
	for i := range c.members {
		c.start(i)
	}
	c.WaitHealthy(startTimeout)
	return c
}

// start runs member i's process; its data directory decides whether it
// joins a new cluster or rejoins the existing one.
func (c *Cluster) start(i int) {
	c.tb.Helper()
	m := c.members[i]
	args := []string{
		"--name", m.Name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", c.initial,
		"--initial-cluster-token", c.token,
		"--initial-cluster-state", "new",
		// Short raft timers: elections, and so quorum loss and recovery,
		// take a fraction of a second instead of seconds.
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
	c.mu.Lock()
	m.proc = proctest.Start(c.tb, "etcd-"+m.Name, c.bin, args...)
	c.mu.Unlock()
}

// Endpoints is the client URL of every member, running or not.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.ClientURL
	}
	return out
}

// Member returns member i.
func (c *Cluster) Member(i int) *Member { return c.members[i] }

// Size is the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// PID is the process id of member i's current process.
func (c *Cluster) PID(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].proc.PID()
}

// Running reports whether member i's process is alive.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	p := c.members[i].proc
	c.mu.Unlock()
	exited, _ := p.Exited()
	return !exited
}

// Stop ends member i with SIGTERM and waits for its process to exit.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	p := c.members[i].proc
	c.mu.Unlock()
	p.Stop()
}

// Kill ends member i with SIGKILL and waits for its process to exit.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	p := c.members[i].proc
	c.mu.Unlock()
	p.Kill()
}

// Restart starts member i again on its data directory and ports; it does
// not wait for health (a lone member cannot be healthy without quorum).
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	if c.Running(i) {
		c.tb.Fatalf("etcd member %s is still running (pid %d)", c.members[i].Name, c.PID(i))
	}
	c.start(i)
}

// Healthy reports whether member i answers its /health endpoint with
// health true, which etcd does only when it has a leader and quorum.
func (c *Cluster) Healthy(i int) bool {
	if !c.Running(i) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.members[i].ClientURL+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var buf [128]byte
	n, _ := resp.Body.Read(buf[:])
	return resp.StatusCode == http.StatusOK && strings.Contains(string(buf[:n]), `"health":"true"`)
}

// WaitHealthy waits until every running member is healthy; the test fails
// after timeout, or at once if no member is running.
func (c *Cluster) WaitHealthy(timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var bad []string
		running := 0
		for i, m := range c.members {
			if !c.Running(i) {
				continue
			}
			running++
			if !c.Healthy(i) {
				bad = append(bad, m.Name)
			}
		}
		if running == 0 {
			c.tb.Fatal("etcd: no member is running")
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("etcd members %v not healthy after %s", bad, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// EnableAuth turns on etcd authentication with a root user (random
// password) and a user that may read and write only keys under prefix, the
// setup the README recommends for the exporter.
func (c *Cluster) EnableAuth(user, password, prefix string) {
	c.tb.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.tb.Fatalf("etcd client: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rootPW := fmt.Sprintf("root-%d", time.Now().UnixNano())
	steps := []struct {
		what string
		do   func() error
	}{
		{"add root role", func() error { _, err := cli.RoleAdd(ctx, "root"); return err }},
		{"add root user", func() error { _, err := cli.UserAdd(ctx, "root", rootPW); return err }},
		{"grant root", func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err }},
		{"add role " + user, func() error { _, err := cli.RoleAdd(ctx, user); return err }},
		{"grant " + prefix, func() error {
			_, err := cli.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"add user " + user, func() error { _, err := cli.UserAdd(ctx, user, password); return err }},
		{"grant role to " + user, func() error { _, err := cli.UserGrantRole(ctx, user, user); return err }},
		{"enable auth", func() error { _, err := cli.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			c.tb.Fatalf("etcd %s: %v", s.what, err)
		}
	}
}
