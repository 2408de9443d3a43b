package main

import (
	"fmt"
	"log/slog"

	"github.com/veeam-failover/veeam_failover_exporter/config"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/em"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vbr"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/vspc"
)

type (
	vspcClient = vspc.Client
	emClient   = em.Client
	vbrClient  = vbr.Client
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
