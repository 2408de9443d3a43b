// Package collector turns reads of the Veeam APIs into Prometheus metrics.
//
// Each collector is one file that declares its name, the target types it runs
// on, the reader interface it needs from a target's client, its metric
// families and its fetch, and registers itself from an init function
// (register); config learns the names and types from that registration, for
// validation and per-type defaults.
//
// An Exporter holds the targets and their collectors. Each scrape (Scrape)
// runs them in parallel under the scrape's context: concurrent scrapes share
// one run per target and collector, and with Options.MinInterval recent runs
// are served from memory. Every sample is built anew from the API's answer;
// there are no long-lived gauges.
//
// A run keeps its samples compactly (per family: rows of label values and
// numbers, the strings shared with the decoded objects). Scrape.WriteText
// writes the Prometheus text format straight from them: a service provider's
// 50,000 plan objects are up to ~500,000 series with every per-VM series
// on, for which building a sample object each, then checking, hashing and
// sorting them in a registry took seconds.
// Scrape.MetricFamilies builds the same samples as metric families for every
// other format, and Collector serves them through a registry (tests).
//
// Every series carries target (the config name); ids are lower-case UUIDs
// without urn: prefixes. A stateset (an enum) exports its current value's
// series at 1, and a count per value its non-zero counts; with
// Options.AllStates (collectors.statesets: all) every documented value, 0 for
// all but the current, and every count. A value the exporter does not know
// maps to Unknown. A plan, object, session or replica
// listed twice (pages shifting under a changing estate) is exported once.
// Each collector's file lists its metrics. Always, per target:
//
//	veeam_up{target,type}                                   1 when every collector of the target succeeded
//	veeam_scrape_collector_success{target,collector}        0 on API errors and when the scrape deadline came first
//	veeam_scrape_collector_duration_seconds{target,collector}
package collector
