package reliability

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// scrapeDeadline bounds each scrape of the fault matrix, like Prometheus'
// scrape timeout; scrapeSlack is what Gather may take beyond it (two cores,
// parallel subtests).
const (
	scrapeDeadline = 2 * time.Second
	scrapeSlack    = 750 * time.Millisecond
)

type faultCase struct {
	name  string
	fault simulator.Fault
	// gone: the API's server goes away after a good scrape (listener and
	// connections closed) and comes back on the same port.
	gone bool
	// never: nothing listens on the target's port until the fault clears.
	never bool
	// expire: the tokens expire mid-scrape; the client logs in again once
	// and the same scrape succeeds.
	expire bool
	// unauthorized: every read is refused with 401 (the token was revoked
	// and stays refused); the client logs in again at most once per read.
	unauthorized bool
	// status is what the simulator logs for the faulty answers (0: not
	// checked).
	status func(api simulator.API) int
}

func faultCases() []faultCase {
	return []faultCase{
		{name: "status_500", fault: simulator.Fault{Status: 500}, status: func(api simulator.API) int {
			if api == simulator.APIVSPC {
				return 520 // VSPC answers every server error with 520
			}
			return 500
		}},
		{name: "status_429_retry_after", fault: simulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: 1},
			status: func(simulator.API) int { return http.StatusTooManyRequests }},
		{name: "expire_auth", expire: true},
		{name: "status_401_persistent", unauthorized: true, status: func(simulator.API) int { return http.StatusUnauthorized }},
		{name: "latency_past_deadline", fault: simulator.Fault{Latency: scrapeDeadline + 500*time.Millisecond}},
		{name: "truncated_body", fault: simulator.Fault{Truncate: true}},
		{name: "non_json_body", fault: simulator.Fault{NonJSON: true}},
		{name: "connection_reset", fault: simulator.Fault{Reset: true}},
		{name: "server_gone", gone: true},
		{name: "nothing_listening", never: true},
	}
}

// TestFaultMatrix scrapes three targets (VSPC, EM, VBR) while one API
// misbehaves, then after the fault clears: no panic, the scrape ends by its
// deadline, only the faulty target is down, retries stay within
// veeam.DefaultRetryAttempts per request, and the target comes back without
// rebuilding anything. An expired token is renewed with one login inside
// the same scrape.
func TestFaultMatrix(t *testing.T) {
	for _, api := range apis {
		for i, fc := range faultCases() {
			t.Run(string(api)+"/"+fc.name, func(t *testing.T) {
				t.Parallel()
				runFaultCase(t, api, fc, int64(100+i))
			})
		}
	}
}

func targetName(api simulator.API) string { return string(api) + "-target" }

func runFaultCase(t *testing.T, faulty simulator.API, fc faultCase, seed int64) {
	sim := startSim(t, smallEstate(seed))
	logs := &syncBuffer{}
	logger := debugLogger(logs)
	gates := map[simulator.API]*gate{}
	var targets []collector.Target
	for _, api := range apis {
		gates[api] = newGate(t, hostPort(t, simURL(sim, api)), !(fc.never && api == faulty))
		c := newClient(t, string(api), targetName(api), gates[api].url(), sim.CACertPEM(), simulator.DefaultPassword, logger)
		targets = append(targets, c.collectorTarget())
	}
	e := collector.New(targets, collector.Options{PerObject: true, SessionsPerPlan: 1, Logger: logger})
	t.Cleanup(e.Close)
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", proctest.Tail(logs.String(), 16<<10))
		}
	}()

	want := map[string]float64{}
	for _, api := range apis {
		want[targetName(api)] = 1
	}
	if !fc.never {
		checkUp(t, "before the fault", scrape(e, scrapeDeadline), want)
	}

	sim.ResetRequests()
	switch {
	case fc.gone:
		gates[faulty].close()
	case fc.expire:
		sim.SetFault(faulty, simulator.Fault{ExpireAuth: true, PathPrefix: dataPrefix[faulty]})
	case fc.unauthorized:
		sim.SetFault(faulty, simulator.Fault{Status: http.StatusUnauthorized, PathPrefix: dataPrefix[faulty]})
	case !fc.never:
		sim.SetFault(faulty, fc.fault)
	}

	during := scrape(e, scrapeDeadline)
	if during.elapsed > scrapeDeadline+scrapeSlack {
		t.Errorf("scrape during the fault took %s, deadline %s", during.elapsed.Round(time.Millisecond), scrapeDeadline)
	}
	if !fc.expire {
		want[targetName(faulty)] = 0
	}
	checkUp(t, "during the fault", during, want)
	if !fc.expire {
		if s := values(during.families, "veeam_scrape_collector_success", "collector"); len(s) == 0 {
			t.Errorf("no veeam_scrape_collector_success during the fault")
		}
		if !strings.Contains(logs.String(), "target="+targetName(faulty)) {
			t.Errorf("no log line names target %s", targetName(faulty))
		}
	}

	// Let retries and fetches still running in the background end (under
	// the fault), then count what reached the server.
	reqs := settle(sim, faulty)
	checkRequests(t, faulty, fc, reqs)

	sim.ClearFaults()
	if fc.gone || fc.never {
		if err := gates[faulty].open(); err != nil {
			t.Fatal(err)
		}
	}
	want[targetName(faulty)] = 1
	checkUp(t, "after the fault cleared", scrape(e, scrapeDeadline), want)
}

// checkUp compares veeam_up by target.
func checkUp(t *testing.T, when string, r scrapeResult, want map[string]float64) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: gather: %v", when, r.err)
	}
	got := values(r.families, "veeam_up", "target")
	for target, w := range want {
		g, ok := got[target]
		if !ok {
			t.Errorf("%s: no veeam_up{target=%q}", when, target)
			continue
		}
		if g != w {
			t.Errorf("%s: veeam_up{target=%q} = %v, want %v", when, target, g, w)
		}
	}
}

// settle waits until the simulator's log of api stopped growing for a
// second (at most 8 s) and returns it.
func settle(sim *simulator.Simulator, api simulator.API) []simulator.Request {
	deadline := time.Now().Add(8 * time.Second)
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		n := len(sim.Requests(api))
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return sim.Requests(api)
}

func checkRequests(t *testing.T, api simulator.API, fc faultCase, reqs []simulator.Request) {
	t.Helper()
	attempts := map[string]int{}
	logins := 0
	for _, r := range reqs {
		if r.Path == loginPath[api] {
			logins++
			continue
		}
		key := r.Method + " " + r.Path + "?" + r.RawQuery
		attempts[key]++
		if fc.status != nil && strings.HasPrefix(r.Path, dataPrefix[api]) {
			if want := fc.status(api); r.Status != want {
				t.Errorf("%s answered %d, want the injected %d", key, r.Status, want)
			}
		}
	}
	var summary []string
	for k, n := range attempts {
		summary = append(summary, fmt.Sprintf("%s ×%d", k, n))
	}
	t.Logf("requests that reached %s during the fault: %d logins; %s", api, logins, strings.Join(summary, "; "))

	switch {
	case fc.gone || fc.never:
		if len(reqs) != 0 {
			t.Errorf("%d requests reached a server that was not there", len(reqs))
		}
		return
	case fc.expire:
		// The first read meets the expired token (401), the client logs in
		// once for every caller and sends it again.
		if logins != 1 {
			t.Errorf("%d logins after the tokens expired, want exactly 1", logins)
		}
		for k, n := range attempts {
			if n > 2 {
				t.Errorf("%s sent %d times, want at most 2 (401 then one resend)", k, n)
			}
		}
		return
	case fc.unauthorized:
		// Each read meets 401, drops the token, waits for one login shared
		// with the other reads and is sent once more.
		if logins < 1 || logins > len(attempts) {
			t.Errorf("%d logins for %d reads refused with 401, want 1 to %d", logins, len(attempts), len(attempts))
		}
		for k, n := range attempts {
			if n > 2 {
				t.Errorf("%s sent %d times, want at most 2 (401, one login, one resend)", k, n)
			}
		}
		return
	}
	if len(attempts) == 0 {
		t.Errorf("no request reached %s during the fault", api)
	}
	if logins != 0 {
		t.Errorf("%d logins during a fault that left the token valid", logins)
	}
	for k, n := range attempts {
		if n > veeam.DefaultRetryAttempts {
			t.Errorf("%s sent %d times, more than the %d attempts a read may take"+
				" (net/http's Transport also replays a GET on its own when a kept-alive connection fails)", k, n, veeam.DefaultRetryAttempts)
		}
	}
}
