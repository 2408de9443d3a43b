// Package tests holds the end-to-end tests of veeam_failover_exporter: the
// built binary against the simulator, scraped by a real Prometheus that loads
// the example alert rules and sends to a real Alertmanager configured from
// alertmanager-example.yml, whose webhook drives the exporter's trigger. It
// also checks the shipped artifacts (dashboards, rules, Alertmanager example)
// against the exporter's actual output. Everything is in the _test.go files;
// run it with `go test ./tests/` (or `make test`).
package tests
