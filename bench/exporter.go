package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// moduleRoot is the directory of the exporter's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the exporter's module")
	}
	return filepath.Dir(mod), nil
}

// buildExporter builds the exporter binary into dir.
func buildExporter(root, dir string) (string, error) {
	bin := filepath.Join(dir, "veeam_failover_exporter")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// buildRevision builds the exporter of a git revision of the module: the
// tree of rev, exported with git archive, built on its own go.mod.
func buildRevision(rev, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "src-"+rev)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	tarball := src + ".tar"
	for _, args := range [][]string{
		{"git", "-C", root, "archive", "--output=" + tarball, rev},
		{"tar", "-x", "-f", tarball, "-C", src},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s of revision %s (a clone with its history is needed): %w: %s", args[0], rev, err, strings.TrimSpace(string(out)))
		}
	}
	bin, err := buildExporter(src, src)
	if err != nil {
		return "", fmt.Errorf("revision %s: %w", rev, err)
	}
	return bin, nil
}

// exporter is the exporter binary running as a child process, so that its
// memory is its own.
type exporter struct {
	*child
	base string
	dir  string
	http *http.Client
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startExporter writes config into dir and starts bin on a free loopback
// port, returning once /-/ready answers.
func startExporter(bin, dir, config string, env ...string) (*exporter, error) {
	cfgFile := filepath.Join(dir, "veeam_failover_exporter.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	x := &exporter{
		base: "http://127.0.0.1:" + strconv.Itoa(port),
		dir:  dir,
		http: &http.Client{Transport: &http.Transport{
			DisableCompression:  true, // what is measured is the exporter's work, not gzip
			MaxIdleConnsPerHost: 128,
		}},
	}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--web.listen-address=127.0.0.1:"+strconv.Itoa(port), "--log.level=warn")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if x.child, err = startChild(cmd); err != nil {
		return nil, err
	}
	if err := x.waitReady(x.http, "exporter", x.base+"/-/ready", 20*time.Millisecond, 30*time.Second); err != nil {
		x.stop()
		return nil, err
	}
	return x, nil
}

// stop sends SIGTERM and waits, killing after 10s.
func (x *exporter) stop() {
	x.child.stop(10 * time.Second)
	x.http.CloseIdleConnections()
}

// memory reads the exporter's peak (VmHWM) and current (VmRSS) resident
// set size in bytes.
func (x *exporter) memory() (peak, cur int64, err error) {
	return procMemory(x.pid())
}

// procMemory reads a process's peak (VmHWM) and current (VmRSS) resident
// set size in bytes.
func procMemory(pid int) (peak, cur int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmHWM":
			peak = n << 10
		case "VmRSS":
			cur = n << 10
		}
	}
	if peak == 0 {
		return 0, 0, errors.New("no VmHWM in /proc status")
	}
	return peak, cur, s.Err()
}

// cpu is the exporter's user+system CPU time so far (/proc/<pid>/stat).
func (x *exporter) cpu() time.Duration {
	return procCPU(fmt.Sprintf("/proc/%d/stat", x.pid()))
}

// procCPU reads utime+stime of a /proc stat file, in clock ticks of 10ms
// (USER_HZ is 100 on Linux).
func procCPU(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields follow its closing paren.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// selfCPU is this process's CPU time (the simulator and the bench client).
func selfCPU() time.Duration { return procCPU("/proc/self/stat") }

// scrapeStat is one GET /metrics (or /probe).
type scrapeStat struct {
	Wall  time.Duration
	Bytes int // the body as the exporter wrote it before any gzip
	// GzipBytes is the body on the wire, when gzip was asked for.
	GzipBytes int
	Series    int
	// Up is veeam_up by target; Failed lists collectors that reported
	// veeam_scrape_collector_success 0.
	Up     map[string]float64
	Failed []string
	// Families counts the series of each metric name, when asked for.
	Families map[string]int
}

// scrapeOpts says what to ask for and what to account for.
type scrapeOpts struct {
	path     string // default /metrics
	gzip     bool   // ask for gzip (Accept-Encoding), count the bytes on the wire
	families bool   // count series per metric name
}

// scrape reads /metrics once, as Prometheus would without compression,
// and checks what came back.
func (x *exporter) scrape(ctx context.Context, buf []byte) (scrapeStat, error) {
	return x.get(ctx, buf, scrapeOpts{})
}

// get reads one exposition. The body is streamed through buf (reused
// between scrapes) and not kept: holding 80 MB would cost this process
// page faults and copies on the same two cores the exporter runs on.
func (x *exporter) get(ctx context.Context, buf []byte, o scrapeOpts) (scrapeStat, error) {
	if o.path == "" {
		o.path = "/metrics"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, x.base+o.path, nil)
	if err != nil {
		return scrapeStat{}, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "300")
	if o.gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	start := time.Now()
	resp, err := x.http.Do(req)
	if err != nil {
		return scrapeStat{}, err
	}
	defer resp.Body.Close()
	st := scrapeStat{Up: map[string]float64{}}
	if o.families {
		st.Families = map[string]int{}
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return st, fmt.Errorf("GET %s: %s: %s", o.path, resp.Status, b)
	}
	var body io.Reader = resp.Body
	wire := &countingReader{r: resp.Body}
	if o.gzip {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			return st, fmt.Errorf("GET %s: asked for gzip, got Content-Encoding %q", o.path, resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return st, fmt.Errorf("GET %s: %w", o.path, err)
		}
		body = zr
	}
	pending := 0 // bytes of an incomplete line at the start of buf
	for {
		n, err := body.Read(buf[pending:])
		st.Bytes += n
		data := buf[:pending+n]
		if last := bytes.LastIndexByte(data, '\n'); last >= 0 {
			st.lines(data[:last+1])
			pending = copy(buf, data[last+1:])
		} else {
			pending = len(data)
			if pending == len(buf) {
				return st, fmt.Errorf("GET %s: line longer than the read buffer", o.path)
			}
		}
		if errors.Is(err, io.EOF) {
			if pending > 0 {
				st.lines(append(buf[:pending:pending], '\n'))
			}
			break
		}
		if err != nil {
			return st, err
		}
	}
	st.Wall = time.Since(start)
	if o.gzip {
		st.GzipBytes = wire.n
	}
	return st, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// lines accounts for complete lines (data ends with a line feed).
func (st *scrapeStat) lines(data []byte) {
	comments := bytes.Count(data, []byte("\n#"))
	if data[0] == '#' {
		comments++
	}
	if bytes.HasSuffix(data, []byte("\n#")) {
		comments-- // cannot happen: data ends with a line feed
	}
	st.Series += bytes.Count(data, []byte("\n")) - comments
	if st.Families != nil {
		st.countFamilies(data)
	}
	for _, p := range [][]byte{[]byte("veeam_up{"), []byte("veeam_scrape_collector_success{")} {
		for i := 0; i < len(data); {
			j := bytes.Index(data[i:], p)
			if j < 0 {
				break
			}
			at := i + j
			end := at + bytes.IndexByte(data[at:], '\n')
			i = end + 1
			if at > 0 && data[at-1] != '\n' {
				continue
			}
			line := data[at:end]
			if p[len("veeam_")] == 'u' {
				st.Up[labelValue(line, "target")] = sampleValue(line)
			} else if sampleValue(line) != 1 {
				st.Failed = append(st.Failed, labelValue(line, "target")+"/"+labelValue(line, "collector"))
			}
		}
	}
}

// countFamilies adds each sample line of data to its metric name.
func (st *scrapeStat) countFamilies(data []byte) {
	var name []byte
	n := 0
	flush := func() {
		if n > 0 {
			st.Families[string(name)] += n
		}
	}
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		data = rest
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		end := bytes.IndexAny(line, "{ ")
		if end < 0 {
			end = len(line)
		}
		if !bytes.Equal(line[:end], name) {
			flush()
			name, n = line[:end], 0
		}
		n++
	}
	flush()
}

// labelValue extracts a label's value from an exposition line (no escapes
// in the labels read here).
func labelValue(line []byte, name string) string {
	_, rest, ok := bytes.Cut(line, []byte(name+`="`))
	if !ok {
		return ""
	}
	v, _, _ := bytes.Cut(rest, []byte(`"`))
	return string(v)
}

func sampleValue(line []byte) float64 {
	line = bytes.TrimSpace(line)
	i := bytes.LastIndexByte(line, ' ')
	v, err := strconv.ParseFloat(string(line[i+1:]), 64)
	if err != nil {
		return -1
	}
	return v
}

// ok checks that every target was read completely.
func (s scrapeStat) ok(targets int) error {
	if len(s.Up) != targets {
		return fmt.Errorf("veeam_up for %d targets, want %d", len(s.Up), targets)
	}
	for t, v := range s.Up {
		if v != 1 {
			return fmt.Errorf("veeam_up{target=%q} is %v (failed collectors: %v)", t, v, s.Failed)
		}
	}
	if len(s.Failed) > 0 {
		return fmt.Errorf("collectors failed: %v", s.Failed)
	}
	return nil
}
