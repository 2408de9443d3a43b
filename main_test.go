package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

func TestConfigCheckExitCodes(t *testing.T) {
	for _, tc := range []struct {
		file string
		want int
	}{
		{"examples/veeam_failover_exporter.yml", 0},
		{"config/testdata/multi_error.yml", 1},
		{"config/testdata/does-not-exist.yml", 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var out bytes.Buffer
			got := checkConfig(&out, tc.file, false)
			if got != tc.want {
				t.Fatalf("exit code %d, want %d; output:\n%s", got, tc.want, out.String())
			}
			if tc.want == 0 && (!strings.Contains(out.String(), "SUCCESS") || !strings.Contains(out.String(), "Checking "+tc.file)) {
				t.Errorf("a valid config printed %q, want what was checked and SUCCESS", out.String())
			}
			if tc.want == 1 && tc.file == "config/testdata/multi_error.yml" {
				lines := strings.Split(strings.TrimSpace(out.String()), "\n")
				if len(lines) < 2 {
					t.Errorf("want every problem on its own line, got %q", out.String())
				}
				for _, l := range lines {
					if !strings.HasPrefix(l, tc.file+":") {
						t.Errorf("problem %q does not start with file:line", l)
					}
				}
			}
		})
	}
}

func startSim(t *testing.T) *simulator.Simulator {
	t.Helper()
	sim, err := simulator.Start(simulator.Options{Seed: 7,
		VSPC: simulator.VSPCOptions{Plans: 3, ObjectsPerPlan: 2, BackupServers: 1},
		EM:   simulator.EMOptions{Plans: 2, VMsPerPlan: 2, CloudSessions: 3, CdpReplicas: 1, VMsPerCdpReplica: 1},
		VBR:  simulator.VBROptions{Replicas: 2, PointsPerReplica: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func targetsYAML(sim *simulator.Simulator, names ...string) string {
	var b strings.Builder
	b.WriteString("targets:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  - {name: %s, type: vspc, url: %q, username: monitor, password_file: pass}\n", n, sim.VSPCURL())
	}
	return b.String()
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

func post(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
	return rec
}

func TestReloadKeepsRunningConfigOnError(t *testing.T) {
	sim := startSim(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pass"), "sim-password\n")
	cfgFile := filepath.Join(dir, "cfg.yml")
	writeFile(t, cfgFile, targetsYAML(sim, "first"))

	a, err := newApp(cfgFile, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	h := a.routes()
	if m := scrape(t, h); !strings.Contains(m, `veeam_up{target="first",type="vspc"} 1`) {
		t.Fatalf("first target not up:\n%s", grepVeeamUp(m))
	}

	// A good reload brings the new target in.
	writeFile(t, cfgFile, targetsYAML(sim, "first", "second"))
	if rec := post(h, "/-/reload"); rec.Code != http.StatusOK {
		t.Fatalf("good reload: %d %s", rec.Code, rec.Body.String())
	}
	m := scrape(t, h)
	for _, want := range []string{`veeam_up{target="second",type="vspc"} 1`, "veeam_exporter_config_last_reload_successful 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("after good reload, missing %q", want)
		}
	}

	// A bad reload keeps both targets and says so in the metric.
	writeFile(t, cfgFile, targetsYAML(sim, "first")+"  - {name: third, type: nosuch}\n")
	rec := post(h, "/-/reload")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "type") {
		t.Fatalf("bad reload: %d %q", rec.Code, rec.Body.String())
	}
	m = scrape(t, h)
	for _, want := range []string{`veeam_up{target="second",type="vspc"} 1`, "veeam_exporter_config_last_reload_successful 0"} {
		if !strings.Contains(m, want) {
			t.Errorf("after bad reload, missing %q", want)
		}
	}
	if rec := httptest.NewRecorder(); true {
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/reload", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("GET /-/reload: %d, want 405", rec.Code)
		}
	}
}

func grepVeeamUp(m string) string {
	var out []string
	for _, l := range strings.Split(m, "\n") {
		if strings.HasPrefix(l, "veeam_up") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServingWithWebConfig runs the built binary behind TLS and basic auth
// from an exporter-toolkit web config.
func TestServingWithWebConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	sim := startSim(t)
	dir := t.TempDir()
	bin := proctest.BuildExporter(t)
	writeFile(t, filepath.Join(dir, "pass"), "sim-password\n")
	writeFile(t, filepath.Join(dir, "cfg.yml"), targetsYAML(sim, "only"))
	certPEM, keyPEM := selfSigned(t)
	writeFile(t, filepath.Join(dir, "tls.crt"), string(certPEM))
	writeFile(t, filepath.Join(dir, "tls.key"), string(keyPEM))
	hash, err := bcrypt.GenerateFromPassword([]byte("right-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "web.yml"), fmt.Sprintf(
		"tls_server_config: {cert_file: %s, key_file: %s}\nbasic_auth_users:\n  prom: %q\n",
		filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), hash))
	addr := proctest.FreeAddr(t)

	// The exporter is killed when this function returns; its log is shown
	// if the test failed.
	p := proctest.Start(t, "exporter", bin, "--config.file="+filepath.Join(dir, "cfg.yml"),
		"--web.config.file="+filepath.Join(dir, "web.yml"), "--web.listen-address="+addr)
	defer p.Kill()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(20 * time.Second)
	for get("prom", "right-password") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("exporter did not serve TLS with the right credentials")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := get("prom", "wrong-password"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	// A plain-HTTP request to the TLS listener never gets metrics.
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served metrics")
		}
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestScrapeDuringReload: a scrape running while a reload swaps the
// exporter finishes on the exporter it started with, so it never reports
// a false veeam_up 0; reloads from several callers at once all succeed.
func TestScrapeDuringReload(t *testing.T) {
	sim := startSim(t)
	// Slow enough answers that reloads land in the middle of scrapes.
	sim.SetFault(simulator.APIVSPC, simulator.Fault{Latency: 30 * time.Millisecond})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pass"), "sim-password\n")
	cfgFile := filepath.Join(dir, "cfg.yml")
	writeFile(t, cfgFile, targetsYAML(sim, "first"))
	a, err := newApp(cfgFile, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	h := a.routes()

	stop := make(chan struct{})
	var reloads sync.WaitGroup
	for range 2 {
		reloads.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if rec := post(h, "/-/reload"); rec.Code != http.StatusOK {
					t.Errorf("reload: %d %s", rec.Code, rec.Body.String())
					return
				}
			}
		})
	}
	deadline := time.Now().Add(3 * time.Second)
	scrapes := 0
	for time.Now().Before(deadline) {
		if m := scrape(t, h); !strings.Contains(m, `veeam_up{target="first",type="vspc"} 1`) {
			t.Fatalf("scrape %d during reloads:\n%s", scrapes, grepVeeamUp(m))
		}
		scrapes++
	}
	close(stop)
	reloads.Wait()
	if scrapes < 5 {
		t.Errorf("only %d scrapes in 3s", scrapes)
	}
	t.Logf("%d scrapes during reloads", scrapes)
}

// TestLandingPageLinks: every link of the landing page is served; pprof is
// linked and served only with --web.enable-pprof; the telemetry path moves
// with --web.telemetry-path.
func TestLandingPageLinks(t *testing.T) {
	sim := startSim(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pass"), "sim-password\n")
	cfgFile := filepath.Join(dir, "cfg.yml")
	writeFile(t, cfgFile, targetsYAML(sim, "first"))
	hrefs := regexp.MustCompile(`href="([^"]+)"`)
	for _, tc := range []struct {
		name      string
		web       webOptions
		metrics   string
		wantPprof bool
	}{
		{"defaults", defaultWebOptions(), "/metrics", false},
		{"pprof and telemetry path", webOptions{telemetryPath: "/veeam/metrics", maxRequests: 2, targetsOnMetrics: true, enablePprof: true}, "/veeam/metrics", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := newApp(cfgFile, false, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer a.close()
			a.web = tc.web
			h := a.routes()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			page := rec.Body.String()
			var links []string
			for _, m := range hrefs.FindAllStringSubmatch(page, -1) {
				if strings.HasPrefix(m[1], "/") {
					links = append(links, m[1])
				}
			}
			if !slices.Contains(links, tc.metrics) {
				t.Errorf("landing page does not link %s: %v", tc.metrics, links)
			}
			if got := slices.Contains(links, "/debug/pprof/"); got != tc.wantPprof {
				t.Errorf("pprof linked = %v, want %v", got, tc.wantPprof)
			}
			for _, l := range append(links, "/debug/pprof/", "/debug/pprof/heap") {
				if strings.Contains(l, "seconds=") {
					continue // a CPU profile takes that long
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, l, nil))
				served := rec.Code != http.StatusNotFound
				if linked := slices.Contains(links, l); served != linked {
					t.Errorf("%s: linked %v, answered %d", l, linked, rec.Code)
				}
			}
		})
	}
}

// TestTriggerOnlyTarget: a target with `collectors: []` (a second credential
// that may act) is never scraped: no veeam_up, no request to Veeam, no
// /probe; the reading target of the same server is scraped as usual.
func TestTriggerOnlyTarget(t *testing.T) {
	sim := startSim(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pass"), "sim-password\n")
	cfgFile := filepath.Join(dir, "cfg.yml")
	writeFile(t, cfgFile, targetsYAML(sim, "reads")+
		fmt.Sprintf("  - {name: acts, type: vspc, url: %q, username: operator, password_file: pass, collectors: []}\n", sim.VSPCURL()))

	a, err := newApp(cfgFile, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	h := a.routes()
	m := scrape(t, h)
	if !strings.Contains(m, `veeam_up{target="reads",type="vspc"} 1`) {
		t.Errorf("the reading target is not up:\n%s", grepVeeamUp(m))
	}
	if strings.Contains(m, `target="acts"`) {
		t.Errorf("the trigger-only target was scraped:\n%s", grepVeeamUp(m))
	}
	for _, r := range sim.Requests(simulator.APIVSPC) {
		if strings.Contains(r.Body, "username=operator") {
			t.Errorf("a scrape logged in with the acting credential: %s %s", r.Method, r.Path)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/probe?target=acts", nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("/probe of the trigger-only target: %d, want 400", rec.Code)
	}
	a.mu.RLock()
	_, ok := a.clients["acts"]
	a.mu.RUnlock()
	if !ok {
		t.Errorf("the trigger-only target has no client for the trigger")
	}
}
