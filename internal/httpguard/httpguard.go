// Package httpguard holds the HTTP server limits of the exporter: without
// them a few hundred half-open connections (never sending a full request
// header) use up the process's descriptors and make /-/healthy, /metrics
// and /webhook time out (issue 17, item 12).
package httpguard

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits are the server's timeouts and connection cap.
type Limits struct {
	// ReadHeaderTimeout closes a connection whose request header is not
	// complete in time (the half-open connection of a slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request; a webhook body is at most
	// 1 MiB.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the answer. It also bounds a webhook's
	// decision (target_state reads Veeam, 15s by default) and a scrape, so
	// it must exceed both.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections left idle.
	IdleTimeout time.Duration
	// MaxConnections caps the connections served at once; more wait in the
	// kernel's accept queue instead of using descriptors.
	MaxConnections int
}

// Defaults leave room for the exporter's own descriptors (state file,
// audit log, connections to Veeam) under a 1024 limit.
var Defaults = Limits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      5 * time.Minute,
	IdleTimeout:       2 * time.Minute,
	MaxConnections:    256,
}

// Apply sets the timeouts on srv.
func (l Limits) Apply(srv *http.Server) {
	srv.ReadHeaderTimeout = l.ReadHeaderTimeout
	srv.ReadTimeout = l.ReadTimeout
	srv.WriteTimeout = l.WriteTimeout
	srv.IdleTimeout = l.IdleTimeout
}

// Listener caps the connections accepted from ln at once.
func (l Limits) Listener(ln net.Listener) net.Listener {
	if l.MaxConnections <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, l.MaxConnections)
}
