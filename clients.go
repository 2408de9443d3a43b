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

func newTargetClient(t config.Target, concurrency int, m *apiMetrics, logger *slog.Logger) (*targetClient, error) {
	o := clientOptions(t, concurrency, m, logger)
	tc := &targetClient{target: t, concurrency: concurrency}
	var err error
	switch t.Type {
	case veeam.TypeVSPC:
		tc.vspc, err = vspc.New(o)
		if err == nil {
			tc.closeFn = tc.vspc.Close
		}
	case veeam.TypeEM:
		tc.em, err = em.New(o)
		if err == nil {
			tc.closeFn = tc.em.Close
		}
	case veeam.TypeVBR:
		tc.vbr, err = vbr.New(o)
		if err == nil {
			tc.closeFn = tc.vbr.Close
		}
	default:
		err = fmt.Errorf("unknown type %q", t.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", t.Name, err)
	}
	return tc, nil
}

// targetClient is the one client of a target, shared by collectors and trigger.
type targetClient struct {
	target      config.Target
	concurrency int
	vspc        *vspc.Client
	em          *em.Client
	vbr         *vbr.Client
	closeFn     func(context.Context) error
}

func (c *targetClient) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.closeFn(ctx)
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
