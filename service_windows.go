//go:build windows

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
)

// serviceStopTimeout bounds a stop: the service manager kills services that
// stay in StopPending, so say how long we take and give up after that.
const serviceStopTimeout = 30 * time.Second

// Event IDs must be 1..1000 for the EventCreate.exe message file the event
// source is registered with (README "Windows service").
const (
	eventStarted = 1
	eventStopped = 2
	eventFailed  = 3
)

// runAsService runs the exporter under the Windows service manager when the
// manager started this process, and reports handled=false otherwise (a
// console start). As a service the working directory is the service's data
// directory, %ProgramData%\veeam_failover_exporter, so the default
// --config.file and the config's relative paths resolve there, and the log
// goes to veeam_failover_exporter.log in it: a service has no console.
// Starts, stops and failures also go to the Application event log when the
// event source is registered.
func runAsService(args []string, run func(ctx context.Context, args []string) int) (code int, handled bool) {
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		return 0, false
	}
	events, err := eventlog.Open(exporterName)
	if err != nil {
		events = nil // no registered source: the log file alone
	}
	h := &serviceHandler{args: args, run: run, events: events}
	dir := serviceDataDir()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		h.report(eventFailed, fmt.Sprintf("cannot create %s: %v", dir, err))
		return 1, true
	}
	if err := os.Chdir(dir); err != nil {
		h.report(eventFailed, fmt.Sprintf("cannot change to %s: %v", dir, err))
		return 1, true
	}
	logFile := filepath.Join(dir, exporterName+".log")
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		h.report(eventFailed, fmt.Sprintf("cannot open log file %s: %v", logFile, err))
		return 1, true
	}
	defer f.Close()
	// run builds its logger and kingpin's error output on these.
	os.Stdout, os.Stderr = f, f
	h.logFile = logFile

	if err := svc.Run(exporterName, h); err != nil {
		h.report(eventFailed, fmt.Sprintf("service manager: %v", err))
		return 1, true
	}
	if events != nil {
		_ = events.Close()
	}
	return h.code, true
}

// serviceDataDir is %ProgramData%\veeam_failover_exporter.
func serviceDataDir() string {
	base := os.Getenv("ProgramData")
	if base == "" {
		base = `C:\ProgramData`
	}
	return filepath.Join(base, exporterName)
}

// serviceHandler runs the exporter until it exits or the manager stops it.
type serviceHandler struct {
	args    []string
	run     func(ctx context.Context, args []string) int
	events  *eventlog.Log
	logFile string
	code    int
}

// Execute implements svc.Handler. A stop or shutdown cancels run's context,
// which shuts the HTTP server down and lets run close the trigger's files.
func (h *serviceHandler) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- h.run(ctx, h.args) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	h.report(eventStarted, "started; log: "+h.logFile)

	for {
		select {
		case code := <-done:
			return h.exited(code)
		case r := <-requests:
			switch r.Cmd {
			case svc.Interrogate:
				status <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending, WaitHint: uint32(serviceStopTimeout / time.Millisecond)}
				cancel()
				select {
				case code := <-done:
					return h.exited(code)
				case <-time.After(serviceStopTimeout):
					h.code = 1
					h.report(eventFailed, fmt.Sprintf("did not stop within %s; see %s", serviceStopTimeout, h.logFile))
					return true, 1
				}
			}
		}
	}
}

// exited records run's exit code and reports it as the service's.
func (h *serviceHandler) exited(code int) (bool, uint32) {
	h.code = code
	if code != 0 {
		h.report(eventFailed, fmt.Sprintf("exited with code %d; see %s", code, h.logFile))
		return true, uint32(code)
	}
	h.report(eventStopped, "stopped")
	return false, 0
}

// report writes one line to the event log, if the source is registered.
func (h *serviceHandler) report(id uint32, msg string) {
	if h.events == nil {
		return
	}
	if id == eventFailed {
		_ = h.events.Error(id, msg)
		return
	}
	_ = h.events.Info(id, msg)
}
