package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/veeam-failover/veeam_failover_exporter/internal/httpguard"
)

// listenAndServe is web.ListenAndServe with the server's limits: timeouts
// always, and on TCP listeners a cap on connections served at once, so that
// half-open connections cannot starve /-/healthy, /metrics and /webhook.
// Systemd and vsock listeners come from the toolkit as they are.
func listenAndServe(srv *http.Server, flags *web.FlagConfig, lim httpguard.Limits, logger *slog.Logger) error {
	lim.Apply(srv)
	if flags.WebSystemdSocket != nil && *flags.WebSystemdSocket {
		return web.ListenAndServe(srv, flags, logger)
	}
	for _, addr := range *flags.WebListenAddresses {
		if strings.HasPrefix(addr, "vsock://") {
			return web.ListenAndServe(srv, flags, logger)
		}
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for _, addr := range *flags.WebListenAddresses {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		lns = append(lns, lim.Listener(ln))
	}
	if len(lns) == 0 {
		return errors.New("no listen address (--web.listen-address)")
	}
	return web.ServeMultiple(lns, srv, flags, logger)
}
