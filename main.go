// Command veeam_failover_exporter exports the failover state of a Veeam estate to
// Prometheus and turns Alertmanager webhooks into guarded failover calls.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	webflag "github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/veeam-failover/veeam_failover_exporter/demo"
	"github.com/veeam-failover/veeam_failover_exporter/internal/httpguard"
)

const exporterName = "veeam_failover_exporter"

func main() {
	if code, handled := runAsService(os.Args[1:], run); handled {
		os.Exit(code)
	}
	os.Exit(run(context.Background(), os.Args[1:]))
}

// run runs the exporter until ctx is done or a signal stops it.
func run(ctx context.Context, args []string) int {
	app := kingpin.New(exporterName, "Prometheus exporter and Alertmanager webhook receiver for Veeam failover.")
	var (
		configFile  = app.Flag("config.file", "Exporter configuration file.").Default(exporterName + ".yml").String()
		configCheck = app.Flag("config.check", "Validate the configuration file and exit (0 ok, 1 with errors).").Bool()
		demoMode    = app.Flag("demo", "Run against the embedded Veeam simulator with the trigger armed against it.").Bool()
		testPayload = app.Flag("trigger.test-payload", "Print, for each alert of this Alertmanager payload file, which rule matches and which guard would stop it; calls nothing.").String()
		toolkit     = webflag.AddFlags(app, ":9852")
		webOpts     = defaultWebOptions()
		logConfig   = &promslog.Config{Writer: os.Stderr} // the service's log file on Windows
	)
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default(webOpts.telemetryPath).StringVar(&webOpts.telemetryPath)
	app.Flag("web.max-requests", "Maximum number of parallel scrape requests (/metrics and /probe). Use 0 to disable.").Default(strconv.Itoa(webOpts.maxRequests)).IntVar(&webOpts.maxRequests)
	app.Flag("web.targets-on-metrics", "Scrape every target on the telemetry path; with --no-web.targets-on-metrics it serves only the exporter's own metrics and targets are scraped through /probe?target=NAME.").Default("true").BoolVar(&webOpts.targetsOnMetrics)
	app.Flag("web.enable-pprof", "Serve Go profiling under /debug/pprof/.").Default("false").BoolVar(&webOpts.enablePprof)
	promslogflag.AddFlags(app, logConfig)
	app.Version(version.Print(exporterName))
	app.HelpFlag.Short('h')
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	logger := promslog.New(logConfig)

	if *demoMode {
		env, err := demo.Start(demo.Options{Seed: 1})
		if err != nil {
			logger.Error("demo failed to start", "err", err)
			return 1
		}
		defer env.Close()
		*configFile = env.ConfigFile
		logger.Info("demo: simulator started", "vspc", env.Sim.VSPCURL(), "em", env.Sim.EMURL(), "vbr", env.Sim.VBRURL(), "config", env.ConfigFile)
	}

	webAuth, err := webConfigHasBasicAuth(*toolkit.WebConfigFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *configCheck {
		return checkConfig(os.Stdout, *configFile, webAuth)
	}
	if *testPayload != "" {
		return checkPayload(os.Stdout, *configFile, *testPayload, webAuth)
	}

	logger.Info("starting "+exporterName, "version", version.Info(), "build_context", version.BuildContext())
	a, err := newApp(*configFile, webAuth, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	defer a.close()
	a.web = webOpts

	srv := &http.Server{Handler: a.routes()}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go a.reloadOnSIGHUP(ctx)
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	if err := listenAndServe(srv, toolkit, httpguard.Defaults, logger); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("http server failed", "err", err)
		return 1
	}
	return 0
}
