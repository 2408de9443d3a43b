package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// promServer is a real Prometheus (the prometheus binary in PATH) running
// as a child process with its own config, data directory and loopback
// port, scraping one exporter.
type promServer struct {
	*child
	base string
	http *http.Client
}

// promJob is the job name of the bench's scrape config.
const promJob = "veeam"

// startPrometheus writes a config into dir that scrapes target (host:port)
// at path every interval, and starts Prometheus, returning once /-/ready
// answers.
func startPrometheus(dir, target, path string, interval time.Duration) (*promServer, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, fmt.Errorf("the Prometheus figure needs Debian's prometheus in PATH: %w", err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: %s
scrape_configs:
  - job_name: %s
    metrics_path: %s
    static_configs:
      - targets: [%q]
`, interval, interval, promJob, path, target)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &promServer{
		base: "http://127.0.0.1:" + strconv.Itoa(port),
		http: &http.Client{Timeout: 30 * time.Second},
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--log.level=warn")
	cmd.Dir = dir
	if p.child, err = startChild(cmd); err != nil {
		return nil, err
	}
	if err := p.waitReady(p.http, "prometheus", p.base+"/-/ready", 100*time.Millisecond, 60*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// stop sends SIGTERM to the child by its pid and waits, killing it after
// 20s.
func (p *promServer) stop() { p.child.stop(20 * time.Second) }

// query evaluates an instant PromQL query whose answer is one sample;
// ok is false when the answer is empty.
func (p *promServer) query(ctx context.Context, q string) (v float64, ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return 0, false, fmt.Errorf("query %s: %w", q, err)
	}
	if ans.Status != "success" {
		return 0, false, fmt.Errorf("query %s: %s", q, ans.Error)
	}
	switch len(ans.Data.Result) {
	case 0:
		return 0, false, nil
	case 1:
	default:
		return 0, false, fmt.Errorf("query %s: %d samples, want 1", q, len(ans.Data.Result))
	}
	s, _ := ans.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(s, 64)
	return v, err == nil, err
}

// waitScrapes waits until n scrapes of its job have succeeded and
// returns how many were made in all.
func (p *promServer) waitScrapes(ctx context.Context, n int, timeout time.Duration) (attempts int, err error) {
	deadline := time.Now().Add(timeout)
	job := fmt.Sprintf(`{job=%q}`, promJob)
	for {
		ok, _, err := p.query(ctx, "sum_over_time(up"+job+"[1h])")
		if err != nil {
			return 0, err
		}
		all, _, err := p.query(ctx, "count_over_time(up"+job+"[1h])")
		if err != nil {
			return 0, err
		}
		if int(ok) >= n {
			return int(all), nil
		}
		if time.Now().After(deadline) {
			return int(all), fmt.Errorf("%d of %d Prometheus scrapes succeeded in %s: %s", int(ok), int(all), timeout, p.logTail())
		}
		select {
		case <-p.done:
			return int(all), fmt.Errorf("prometheus exited: %s", p.logTail())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ownMetric is the value of an unlabelled series on Prometheus' own
// /metrics.
func (p *promServer) ownMetric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New(name + " not on Prometheus' /metrics")
}

// promVersion is the version of the prometheus in PATH, for the report.
func promVersion() string {
	out, err := exec.Command("prometheus", "--version").Output()
	if err != nil {
		return "(version unknown)"
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "(version unknown)"
	}
	return f[2]
}
