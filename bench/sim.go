package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// Target names in the bench configs.
const (
	vspcTarget = "vspc-bench"
	emTarget   = "em-bench"
	vbrTarget  = "vbr-bench"
)

// writeSecrets writes the simulator's CA and the password for configs in dir.
func writeSecrets(dir string, caPEM []byte) error {
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "password"), []byte(simulator.DefaultPassword+"\n"), 0o600)
}

// urls are the three APIs of a simulator.
type urls struct {
	VSPC, EM, VBR string
}

func simURLs(s *simulator.Simulator) urls { return urls{s.VSPCURL(), s.EMURL(), s.VBRURL()} }

// targetsYAML is the targets section for one simulator: its three APIs,
// or only the targets named.
func targetsYAML(u urls, only ...string) string {
	var b strings.Builder
	b.WriteString("targets:\n")
	for _, t := range []struct{ name, typ, url string }{
		{vspcTarget, "vspc", u.VSPC}, {emTarget, "em", u.EM}, {vbrTarget, "vbr", u.VBR},
	} {
		if len(only) > 0 && !slices.Contains(only, t.name) {
			continue
		}
		fmt.Fprintf(&b, `  - name: %s
    type: %s
    url: %s
    username: %s
    password_file: password
    tls_config: {ca_file: ca.pem}
    timeout: 2m
`, t.name, t.typ, t.url, simulator.DefaultUsername)
	}
	return b.String()
}

// scrapeConfig is an exporter config reading everything with per-object
// series, as the defaults do.
func scrapeConfig(u urls, concurrency int, minInterval time.Duration) string {
	return targetsYAML(u) + fmt.Sprintf(`
collectors:
  failover_plan_objects: {per_object: true}
  cloud_failover_sessions: {sessions_per_plan: 1}

scrape:
  concurrency: %d
  min_interval: %s
`, concurrency, minInterval)
}

// requestCount summarises a simulator's request log.
type requestCount struct {
	Total  int                   `json:"total"`
	Logins int                   `json:"logins"`
	Reads  int                   `json:"reads"` // GETs: the pages
	Errors int                   `json:"errors"`
	ByAPI  map[simulator.API]int `json:"reads_by_api"`
	// LoginsByAPI counts auth round trips.
	LoginsByAPI map[simulator.API]int `json:"logins_by_api"`
}

// isLogin tells the auth requests of the three APIs.
func isLogin(api simulator.API, r simulator.Request) bool {
	p := strings.ToLower(r.Path)
	switch api {
	case simulator.APIVSPC:
		return strings.HasSuffix(p, "/token")
	case simulator.APIEM:
		return strings.HasPrefix(p, "/api/sessionmngr")
	default:
		return strings.HasPrefix(p, "/api/oauth2/token")
	}
}

func countRequests(s *simulator.Simulator) requestCount {
	c := requestCount{ByAPI: map[simulator.API]int{}, LoginsByAPI: map[simulator.API]int{}}
	for _, api := range []simulator.API{simulator.APIVSPC, simulator.APIEM, simulator.APIVBR} {
		for _, r := range s.Requests(api) {
			c.Total++
			if r.Status >= 400 || r.Status == 0 {
				c.Errors++
			}
			switch {
			case isLogin(api, r):
				c.Logins++
				c.LoginsByAPI[api]++
			case r.Method == http.MethodGet:
				c.Reads++
				c.ByAPI[api]++
			}
		}
	}
	return c
}

// apiSpan is when a scrape's requests to one API arrived, relative to the
// start of the scrape.
type apiSpan struct {
	API      simulator.API `json:"api"`
	Requests int           `json:"requests"`
	FirstMS  float64       `json:"first_ms"`
	LastMS   float64       `json:"last_ms"`
}

func timeline(s *simulator.Simulator, began time.Time) []apiSpan {
	var out []apiSpan
	for _, api := range []simulator.API{simulator.APIVSPC, simulator.APIEM, simulator.APIVBR} {
		rs := s.Requests(api)
		if len(rs) == 0 {
			continue
		}
		sp := apiSpan{API: api, Requests: len(rs), FirstMS: 1e12}
		for _, r := range rs {
			d := ms(r.Time.Sub(began))
			sp.FirstMS, sp.LastMS = min(sp.FirstMS, d), max(sp.LastMS, d)
		}
		out = append(out, sp)
	}
	return out
}
