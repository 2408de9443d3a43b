package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

// veeamClient is what every Veeam client is to main: something to log out
// of. The collectors and the trigger assert the readers and actors they
// need.
type veeamClient interface {
	Close(ctx context.Context) error
}

// clientFor builds the client of each target type.
var clientFor = map[string]func(veeam.ClientOptions) (veeamClient, error){
	veeam.TypeVSPC: func(o veeam.ClientOptions) (veeamClient, error) { return vspc.New(o) },
	veeam.TypeEM:   func(o veeam.ClientOptions) (veeamClient, error) { return em.New(o) },
	veeam.TypeVBR:  func(o veeam.ClientOptions) (veeamClient, error) { return vbr.New(o) },
}

func newTargetClient(t config.Target, concurrency int, m *apiMetrics, logger *slog.Logger) (*targetClient, error) {
	build, ok := clientFor[t.Type]
	if !ok {
		return nil, fmt.Errorf("target %q: unknown type %q", t.Name, t.Type)
	}
	c, err := build(clientOptions(t, concurrency, m, logger))
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", t.Name, err)
	}
	return &targetClient{target: t, concurrency: concurrency, client: c}, nil
}

// targetClient is the one client of a target, shared by collectors and
// trigger, with the config it was built from.
type targetClient struct {
	target      config.Target
	concurrency int
	client      veeamClient // *vspc.Client, *em.Client or *vbr.Client
}

func (c *targetClient) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.client.Close(ctx)
}

func clientOptions(t config.Target, concurrency int, m *apiMetrics, logger *slog.Logger) veeam.ClientOptions {
	// config made every file path absolute already.
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
		WrapTransport:    m.wrap(t.Name),
		Logger:           logger, // the clients name their target in every line
	}
}
