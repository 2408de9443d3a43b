// Package targets builds the Veeam client of a configured target. The
// exporter and veeam_failover_tool share it, so both talk to a target the
// same way (TLS, proxy, credentials, timeouts).
package targets

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// Client is what every Veeam client is to its owner: something to log out
// of. Users assert the readers and actors they need (*vspc.Client,
// *em.Client, *vbr.Client).
type Client interface {
	Close(ctx context.Context) error
}

// builders build the client of each target type.
var builders = map[string]func(veeam.ClientOptions) (Client, error){
	veeam.TypeVSPC: func(o veeam.ClientOptions) (Client, error) { return vspc.New(o) },
	veeam.TypeEM:   func(o veeam.ClientOptions) (Client, error) { return em.New(o) },
	veeam.TypeVBR:  func(o veeam.ClientOptions) (Client, error) { return vbr.New(o) },
}

// New builds the client of a loaded target (config made its file paths
// absolute and read its secrets). wrap, when not nil, wraps its transport
// (the exporter counts requests there).
func New(t config.Target, concurrency int, wrap func(http.RoundTripper) http.RoundTripper, logger *slog.Logger) (Client, error) {
	build, ok := builders[t.Type]
	if !ok {
		return nil, fmt.Errorf("target %q: unknown type %q", t.Name, t.Type)
	}
	c, err := build(Options(t, concurrency, wrap, logger))
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", t.Name, err)
	}
	return c, nil
}

// Options are the client options of a target.
func Options(t config.Target, concurrency int, wrap func(http.RoundTripper) http.RoundTripper, logger *slog.Logger) veeam.ClientOptions {
	hc := promconfig.HTTPClientConfig{TLSConfig: t.TLSConfig, ProxyConfig: t.ProxyConfig}
	return veeam.ClientOptions{
		Name:             t.Name,
		URL:              t.URL,
		Username:         t.Username,
		Password:         t.Password,
		APIKey:           t.APIKey,
		APIVersion:       t.APIVersion,
		HTTPClientConfig: hc,
		Timeout:          time.Duration(t.Timeout),
		PageConcurrency:  concurrency,
		WrapTransport:    wrap,
		Logger:           logger, // the clients name their target in every line
	}
}

// Close logs out of a client, bounded by a few seconds.
func Close(c Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
