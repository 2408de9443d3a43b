package main

import (
	"log/slog"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/internal/targets"
)

func newTargetClient(t config.Target, concurrency int, m *apiMetrics, logger *slog.Logger) (*targetClient, error) {
	c, err := targets.New(t, concurrency, m.wrap(t.Name), logger)
	if err != nil {
		return nil, err
	}
	return &targetClient{target: t, concurrency: concurrency, client: c}, nil
}

// targetClient is the one client of a target, shared by collectors and
// trigger, with the config it was built from.
type targetClient struct {
	target      config.Target
	concurrency int
	client      targets.Client // *vspc.Client, *em.Client or *vbr.Client
}

func (c *targetClient) close() { targets.Close(c.client) }
