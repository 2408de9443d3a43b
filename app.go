package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v3"

	"github.com/veeam-failover/veeam_failover_exporter/collector"
	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/exposition"
	"github.com/veeam-failover/veeam_failover_exporter/trigger"
)

// webOptions are the serving flags (node_exporter's names where it has them).
type webOptions struct {
	telemetryPath    string // --web.telemetry-path
	maxRequests      int    // --web.max-requests; 0 is no limit
	targetsOnMetrics bool   // --web.targets-on-metrics: false serves only the exporter's own metrics there
	enablePprof      bool   // --web.enable-pprof
}

func defaultWebOptions() webOptions {
	return webOptions{telemetryPath: "/metrics", maxRequests: 40, targetsOnMetrics: true}
}

// app is the running exporter: the config in force, one client per target
// (kept across reloads while the target's config is unchanged, so a reload
// does not cost a login), the collectors and the trigger.
type app struct {
	configFile string
	webAuth    bool
	logger     *slog.Logger
	registry   *prometheus.Registry
	apiMetrics *apiMetrics
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
	web        webOptions

	// Reloads, from SIGHUP and POST /-/reload, run one at a time on one
	// goroutine (runReloads), as blackbox_exporter's do.
	reloads     chan chan error
	reloadCtx   context.Context // ends when the reload goroutine stops
	stopReloads context.CancelFunc
	background  sync.WaitGroup // the reload loop and the closing of replaced exporters

	mu       sync.RWMutex
	cfg      *config.Config
	clients  map[string]*targetClient
	exporter *collector.Exporter
	trigger  *trigger.Trigger
}

func newApp(configFile string, webAuth bool, logger *slog.Logger) (*app, error) {
	cfg, err := config.Load(configFile, config.LoadOptions{WebhookBasicAuth: webAuth})
	if err != nil {
		return nil, err
	}
	a := &app{
		configFile: configFile,
		webAuth:    webAuth,
		logger:     logger,
		registry:   prometheus.NewRegistry(),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veeam_exporter_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veeam_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
		clients: map[string]*targetClient{},
		web:     defaultWebOptions(),
		reloads: make(chan chan error),
	}
	a.apiMetrics = newAPIMetrics()
	a.registry.MustRegister(
		versioncollector.NewCollector(exporterName),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		a.reloadOK, a.reloadTime,
		a.apiMetrics.requests, a.apiMetrics.duration,
	)
	clients, err := a.buildClientsReusing(cfg, nil)
	if err != nil {
		return nil, err
	}
	tr, err := trigger.New(cfg.Trigger, actorsFor(clients), trigger.Options{
		Logger:           logger.With("component", "trigger"),
		Registerer:       a.registry,
		WebhookBasicAuth: webAuth,
	})
	if err != nil {
		closeClients(clients, nil)
		return nil, fmt.Errorf("trigger: %w", err)
	}
	a.cfg, a.clients, a.trigger = cfg, clients, tr
	a.exporter = a.buildExporter(cfg, clients)
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.reloadCtx, a.stopReloads = context.WithCancel(context.Background())
	a.background.Go(func() { a.runReloads(a.reloadCtx) })
	logger.Info("configuration loaded", "file", configFile, "targets", len(cfg.Targets), "rules", len(cfg.Trigger.Rules), "armed", tr.Armed())
	return a, nil
}

// reload asks the reload goroutine to load the config file again and waits
// for the answer; a bad file keeps the running config.
func (a *app) reload() error {
	done := make(chan error, 1)
	select {
	case a.reloads <- done:
		return <-done
	case <-a.reloadCtx.Done():
		return errors.New("shutting down")
	}
}

// runReloads runs every reload, one at a time, until ctx ends.
func (a *app) runReloads(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case done := <-a.reloads:
			done <- a.doReload()
		}
	}
}

// doReload swaps in the new config, clients, exporter and trigger rules.
// The replaced exporter is closed in the background once the scrapes that
// hold it are done, and then the clients no longer used are logged out of;
// nothing of the old config is kept.
func (a *app) doReload() error {
	cfg, err := config.Load(a.configFile, config.LoadOptions{WebhookBasicAuth: a.webAuth})
	if err != nil {
		a.reloadOK.Set(0)
		a.logger.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	a.mu.Lock()
	old := a.clients
	clients, err := a.buildClientsReusing(cfg, old)
	if err == nil {
		err = a.trigger.Reload(cfg.Trigger, actorsFor(clients))
	}
	if err != nil {
		a.mu.Unlock()
		closeClients(clients, old)
		a.reloadOK.Set(0)
		a.logger.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	oldExporter := a.exporter
	a.cfg, a.clients = cfg, clients
	a.exporter = a.buildExporter(cfg, clients)
	a.mu.Unlock()
	a.background.Go(func() {
		oldExporter.Close()
		closeClients(old, clients)
	})
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.logger.Info("configuration reloaded", "file", a.configFile, "targets", len(cfg.Targets), "rules", len(cfg.Trigger.Rules), "armed", a.trigger.Armed())
	return nil
}

// reloadOnSIGHUP hands every SIGHUP to the reload goroutine.
func (a *app) reloadOnSIGHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = a.reload()
		}
	}
}

func (a *app) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.trigger.Close(ctx); err != nil {
		a.logger.Warn("trigger did not stop cleanly", "err", err)
	}
	a.stopReloads()
	a.background.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.exporter.Close()
	closeClients(a.clients, nil)
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	ex := exposition.New(a.holdExporter, exposition.Options{
		Gatherer:    a.registry,
		Registerer:  a.registry,
		MaxRequests: a.web.maxRequests,
		OwnOnly:     !a.web.targetsOnMetrics,
		Logger:      a.logger.With("component", "exposition"),
	})
	mux.Handle(a.web.telemetryPath, ex.Metrics())
	mux.Handle("/probe", ex.Probe())
	mux.Handle("/webhook", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.currentTrigger().WebhookHandler().ServeHTTP(w, r)
	}))
	mux.Handle("/trigger", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.currentTrigger().StatusHandler().ServeHTTP(w, r)
	}))
	// Approvals and manual actions: the approver's token (trigger.approver_token_file).
	mux.Handle("/trigger/approvals/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.currentTrigger().ApprovalsHandler().ServeHTTP(w, r)
	}))
	mux.Handle("/trigger/actions", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.currentTrigger().ActionsHandler().ServeHTTP(w, r)
	}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Ready.")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
			return
		}
		if err := a.reload(); err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Reloaded.")
	})
	links := []web.LandingLinks{
		{Address: a.web.telemetryPath, Text: "Metrics"},
		{Address: "/trigger", Text: "Trigger state (rules, approvals waiting, recent decisions)"},
		{Address: "/-/healthy", Text: "Health"},
		{Address: "/-/ready", Text: "Readiness"},
	}
	if a.web.enablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		links = append(links, web.LandingLinks{Address: "/debug/pprof/", Text: "Profiling"})
	}
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "Veeam Failover Exporter",
		Description: "Prometheus exporter and Alertmanager webhook receiver for Veeam failover",
		Version:     version.Info(),
		Links:       links,
		Profiling:   strconv.FormatBool(a.web.enablePprof), // its heap and CPU profile links
		Form: web.LandingForm{
			Action: "/probe",
			Inputs: []web.LandingFormInput{{Label: "Target", Type: "text", Name: "target", Placeholder: "target name"}},
		},
	})
	if err != nil {
		a.logger.Error("landing page", "err", err)
	} else {
		mux.Handle("/", landing)
	}
	return mux
}

func (a *app) currentTrigger() *trigger.Trigger {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.trigger
}

// holdExporter returns the exporter in force, held open (collector
// Exporter.Hold) so that a reload does not close it under the scrape.
func (a *app) holdExporter() (*collector.Exporter, func(), bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	release, ok := a.exporter.Hold()
	return a.exporter, release, ok
}

func (a *app) buildExporter(cfg *config.Config, clients map[string]*targetClient) *collector.Exporter {
	targets := make([]collector.Target, 0, len(cfg.Targets))
	for _, t := range cfg.Targets {
		names := t.EffectiveCollectors()
		if len(names) == 0 {
			continue // collectors: [] — acted on by the trigger, never scraped
		}
		targets = append(targets, collector.Target{Name: t.Name, Type: t.Type, Collectors: names, Client: clients[t.Name].client})
	}
	return collector.New(targets, collector.Options{
		MinInterval:       time.Duration(cfg.Scrape.MinInterval),
		PerObject:         cfg.Collectors.FailoverPlanObjects.PerObject,
		LastSessionStatus: cfg.Collectors.FailoverPlanObjects.LastSessionStatus,
		AllStates:         cfg.Collectors.Statesets == config.StatesetsAll,
		SessionsPerPlan:   cfg.Collectors.CloudFailoverSessions.SessionsPerPlan,
		Logger:            a.logger.With("component", "collector"),
	})
}

// buildClientsReusing keeps the client (and its login) of every target whose
// config did not change.
func (a *app) buildClientsReusing(cfg *config.Config, old map[string]*targetClient) (map[string]*targetClient, error) {
	out := make(map[string]*targetClient, len(cfg.Targets))
	for _, t := range cfg.Targets {
		if prev, ok := old[t.Name]; ok && reflect.DeepEqual(prev.target, t) && prev.concurrency == cfg.Scrape.Concurrency {
			out[t.Name] = prev
			continue
		}
		c, err := newTargetClient(t, cfg.Scrape.Concurrency, a.apiMetrics, a.logger)
		if err != nil {
			closeClients(out, old)
			return nil, err
		}
		out[t.Name] = c
	}
	return out, nil
}

// closeClients logs out of every client in clients that keep does not hold.
func closeClients(clients, keep map[string]*targetClient) {
	for name, c := range clients {
		if k, ok := keep[name]; ok && k == c {
			continue
		}
		c.close()
	}
}

// checkConfig validates file; on success it prints what it checked and
// SUCCESS, on failure only the problems, one per line.
func checkConfig(w io.Writer, file string, webAuth bool) int {
	cfg, err := config.Load(file, config.LoadOptions{WebhookBasicAuth: webAuth})
	if err != nil {
		printConfigErrors(w, err)
		return 1
	}
	fmt.Fprintf(w, "Checking %s\n", file)
	for _, t := range cfg.Targets {
		fmt.Fprintf(w, "  target %s (%s %s): collectors %s\n", t.Name, t.Type, t.URL, strings.Join(t.Collectors, ", "))
	}
	for _, r := range cfg.Trigger.Rules {
		fmt.Fprintf(w, "  rule %s: %s on %s\n", r.Name, r.Action.Type, r.Action.Target)
	}
	mode := "dry run"
	if !cfg.Trigger.DryRun {
		mode = "armed"
	}
	fmt.Fprintf(w, "SUCCESS: %d targets, %d rules, trigger %s\n", len(cfg.Targets), len(cfg.Trigger.Rules), mode)
	return 0
}

func checkPayload(w io.Writer, file, payloadFile string, webAuth bool) int {
	cfg, err := config.Load(file, config.LoadOptions{WebhookBasicAuth: webAuth})
	if err != nil {
		printConfigErrors(w, err)
		return 1
	}
	payload, err := os.ReadFile(payloadFile)
	if err != nil {
		fmt.Fprintln(w, err)
		return 1
	}
	if err := trigger.TestPayload(cfg.Trigger, payload, time.Now(), w); err != nil {
		fmt.Fprintln(w, err)
		return 1
	}
	return 0
}

func printConfigErrors(w io.Writer, err error) {
	var problems config.Errors
	if errors.As(err, &problems) {
		for _, p := range problems {
			fmt.Fprintln(w, p.String())
		}
		return
	}
	fmt.Fprintln(w, err)
}

// webConfigHasBasicAuth tells whether the web config protects every endpoint,
// the webhook included, with basic auth.
func webConfigHasBasicAuth(file string) (bool, error) {
	if file == "" {
		return false, nil
	}
	if err := web.Validate(file); err != nil {
		return false, fmt.Errorf("web config %s: %w", file, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return false, fmt.Errorf("web config: %w", err)
	}
	var wc struct {
		Users map[string]promconfig.Secret `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(data, &wc); err != nil {
		return false, fmt.Errorf("web config %s: %w", file, err)
	}
	return len(wc.Users) > 0, nil
}
