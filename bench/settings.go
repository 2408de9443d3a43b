package main

import (
	"math"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// estate is the size of the simulated Veeam estate.
type estate struct {
	VSPCPlans        int `json:"vspc_plans"`
	ObjectsPerPlan   int `json:"objects_per_plan"`
	BackupServers    int `json:"backup_servers"`
	EMPlans          int `json:"em_plans"`
	EMSessions       int `json:"em_cloud_sessions"`
	VBRReplicas      int `json:"vbr_replicas"`
	PointsPerReplica int `json:"points_per_replica"`
}

// fullEstate is the service-provider estate of issue 8.
var fullEstate = estate{
	VSPCPlans: 2000, ObjectsPerPlan: 25, BackupServers: 10,
	EMPlans: 10, EMSessions: 5000,
	VBRReplicas: 2000, PointsPerReplica: 3,
}

// quickEstate is small enough for a smoke run and the package test.
var quickEstate = estate{
	VSPCPlans: 60, ObjectsPerPlan: 10, BackupServers: 3,
	EMPlans: 10, EMSessions: 300,
	VBRReplicas: 60, PointsPerReplica: 3,
}

// scaled multiplies every list of the estate by k (EM plans stay: the issue
// sizes only EM's sessions).
func (e estate) scaled(k float64) estate {
	e.VSPCPlans = max(1, int(math.Round(float64(e.VSPCPlans)*k)))
	e.EMSessions = max(1, int(math.Round(float64(e.EMSessions)*k)))
	e.VBRReplicas = max(1, int(math.Round(float64(e.VBRReplicas)*k)))
	return e
}

func (e estate) planObjects() int { return e.VSPCPlans * e.ObjectsPerPlan }

func (e estate) simOptions(latency time.Duration) simulator.Options {
	return simulator.Options{
		Seed:    1,
		TLS:     true,
		Latency: latency,
		VSPC:    simulator.VSPCOptions{Plans: e.VSPCPlans, ObjectsPerPlan: e.ObjectsPerPlan, BackupServers: e.BackupServers},
		EM:      simulator.EMOptions{Plans: e.EMPlans, CloudSessions: e.EMSessions},
		VBR:     simulator.VBROptions{Replicas: e.VBRReplicas, PointsPerReplica: e.PointsPerReplica},
	}
}

// list is one paged collection a scrape reads.
type list struct {
	API      simulator.API
	Name     string
	Items    int
	PageSize int
}

func (l list) pages() int { return max(1, ceilDiv(l.Items, l.PageSize)) }

// lists are the collections one scrape of the three targets reads, with
// the page sizes the clients ask for. EM returns only the cloud sessions of
// the last 30 days, so those are counted in the simulator's estate.
func (e estate) lists(sim simulator.Estate, now time.Time) []list {
	sessions := 0
	for _, s := range sim.EM.CloudSessions {
		if !s.CreationTimeUTC.Before(now.Add(-emSessionWindow)) {
			sessions++
		}
	}
	replication := 0
	for _, b := range sim.VSPC.Backups {
		if b.BackupType == "Replication" {
			replication++
		}
	}
	return []list{
		{simulator.APIVSPC, "failover plans", len(sim.VSPC.Plans), vspc.PageSize},
		{simulator.APIVSPC, "failover plan objects", len(sim.VSPC.Objects), vspc.PageSize},
		// The VMs' recovery points: the Replication chains, filtered by VSPC.
		{simulator.APIVSPC, "replication restore points", replication, vspc.PageSize},
		{simulator.APIEM, "failover plans", len(sim.EM.Plans), em.PageSize},
		{simulator.APIEM, "cloud failover sessions", sessions, em.PageSize},
		{simulator.APIVBR, "replicas", len(sim.VBR.Replicas), vbr.PageSize},
		{simulator.APIVBR, "replica points", len(sim.VBR.Points), vbr.PageSize},
	}
}

// emSessionWindow is how far back EM reports cloud failover sessions.
const emSessionWindow = 30 * 24 * time.Hour

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// authRoundTrips is the number of sequential login round trips before a
// target's first read: VSPC POST /token, EM POST /sessionMngr, VBR POST
// /oauth2/token.
const authRoundTrips = 1

// ideal is the least time a scrape can take when every request costs the
// injected latency and nothing else: for each target, the login round trip,
// then the first page of every list at once, then the remaining pages of
// all its lists in rounds of `concurrency` (the bound is per target), but
// never fewer rounds than its longest list needs on its own (first page,
// then ceil((pages-1)/concurrency)). Targets are scraped in parallel, so
// the scrape's ideal is the slowest target's.
type ideal struct {
	Rounds   map[simulator.API]int `json:"rounds"`
	Pages    map[simulator.API]int `json:"pages"`
	Critical simulator.API         `json:"critical_target"`
	Time     time.Duration         `json:"-"`
}

func idealScrape(lists []list, concurrency int, latency time.Duration) ideal {
	id := ideal{Rounds: map[simulator.API]int{}, Pages: map[simulator.API]int{}}
	first := map[simulator.API]int{}
	longest := map[simulator.API]int{}
	for _, l := range lists {
		p := l.pages()
		id.Pages[l.API] += p
		first[l.API]++
		longest[l.API] = max(longest[l.API], 1+ceilDiv(p-1, concurrency))
	}
	best := 0
	for _, api := range []simulator.API{simulator.APIVSPC, simulator.APIEM, simulator.APIVBR} {
		f := first[api]
		r := authRoundTrips + max(ceilDiv(f, concurrency)+ceilDiv(id.Pages[api]-f, concurrency), longest[api])
		id.Rounds[api] = r
		if r > best {
			best, id.Critical = r, api
		}
	}
	id.Time = time.Duration(best) * latency
	return id
}

// settings are one bench run's parameters.
type settings struct {
	Quick       bool          `json:"quick"`
	Estate      estate        `json:"estate"`
	Latency     time.Duration `json:"-"`
	LatencyMS   float64       `json:"latency_ms"`
	Concurrency int           `json:"concurrency"`
	Scales      []float64     `json:"scales"`
	// SmallScales are two estates whose lists fit in a few rounds of
	// concurrent requests, where wall time should hardly grow.
	SmallScales   []float64 `json:"small_scales,omitempty"`
	Notifications int       `json:"webhook_notifications"`
	Clients       int       `json:"webhook_clients"`
	CachedRenders int       `json:"cached_renders"`
	// PromScrapes successful scrapes every PromInterval by a real
	// Prometheus, for each setting of figure 6: 4s leaves room for the
	// ~2.3s a scrape of 460,000 series takes on a loaded 2-core machine.
	PromScrapes int `json:"prometheus_scrapes"`
	// PromRuns fresh Prometheus processes per setting; the median peak
	// counts.
	PromRuns      int           `json:"prometheus_runs"`
	PromInterval  time.Duration `json:"-"`
	PromIntervalS float64       `json:"prometheus_scrape_interval_seconds"`
	// ProbeRounds are the /probe and /metrics pairs timed in figure 6.
	ProbeRounds int `json:"probe_rounds"`
	// BaselineRev is the git revision whose binary, with its defaults, is
	// figure 6's "old" setting: the per-VM stateset settings the issue
	// measured. Empty: not measured, and the RSS target is judged against
	// the richest setting of the binary measured.
	BaselineRev string `json:"baseline_revision,omitempty"`
	// Only, when set, names the figures to measure ("1".."6").
	Only map[string]bool `json:"only,omitempty"`
}

// measure reports whether any of the figures is to be measured.
func (s settings) measure(figures ...string) bool {
	if s.Only == nil {
		return true
	}
	for _, f := range figures {
		if s.Only[f] {
			return true
		}
	}
	return false
}

// oldRevision is the last commit of the release the scale issue measured
// (0.0, 2026-11-22): every VM with its last-session stateset, every value of
// every stateset. Its binary against today's simulator is what the issue
// calls "the old per-VM stateset settings".
const oldRevision = "f4df4ef"

func defaultSettings(quick bool) settings {
	s := settings{
		Estate:        fullEstate,
		Latency:       20 * time.Millisecond,
		Concurrency:   8,
		Scales:        []float64{1, 2, 4},
		SmallScales:   []float64{0.04, 0.08},
		Notifications: 2000,
		Clients:       50,
		CachedRenders: 5,
		PromScrapes:   10,
		PromRuns:      3,
		PromInterval:  4 * time.Second,
		ProbeRounds:   5,
		BaselineRev:   oldRevision,
	}
	if quick {
		s.Quick = true
		s.Estate = quickEstate
		s.Scales = []float64{1, 2}
		s.SmallScales = nil
		s.Notifications = 200
		s.Clients = 10
		s.CachedRenders = 2
		s.PromScrapes = 3
		s.PromRuns = 1
		s.PromInterval = time.Second
		s.ProbeRounds = 2
	}
	s.PromIntervalS = s.PromInterval.Seconds()
	s.LatencyMS = float64(s.Latency) / float64(time.Millisecond)
	return s
}
