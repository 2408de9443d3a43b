package config_test

// The action kinds are declared in package trigger and register themselves
// with config from their init functions; linking trigger into the test
// binary makes them known to config's own tests, as they are to the
// exporter.
import _ "github.com/veeam-failover/veeam_failover_exporter/trigger"
