// Package collector turns reads of the Veeam APIs into Prometheus metrics.
//
// An Exporter holds the targets and their collectors (failover_plans,
// failover_plan_objects, cloud_failover_sessions, replicas). Each scrape asks
// it for a prometheus.Collector bounded by the scrape's context: targets and
// their collectors run in parallel, concurrent scrapes share one fetch per
// target and collector, and with Options.MinInterval recent results are
// served from memory. Every sample is built anew from the API's answer; there
// are no long-lived gauges.
//
// A fetch keeps its samples compactly (per family: rows of label values and
// numbers, the strings shared with the decoded objects). ServeMetrics, which
// main serves as GET /metrics, writes the Prometheus text format straight
// from them: a service provider's 50,000 plan objects are ~480,000 series,
// for which building a sample object each, then checking, hashing and
// sorting them in a registry took seconds. Other formats (protobuf,
// OpenMetrics) and Collector go through the registry.
//
// Metrics, by collector. Every series carries target (the config name); ids
// are lower-case UUIDs without urn: prefixes. A stateset has one series per
// documented value of the enum, 1 for the current value and 0 for the others;
// a value the exporter does not know maps to Unknown. A plan, object, session
// or replica listed twice (pages shifting under a changing estate) is
// exported once.
//
// Always, per target:
//
//	veeam_up{target,type}                                   1 when every collector of the target succeeded
//	veeam_scrape_collector_success{target,collector}        0 on API errors and when the scrape deadline came first
//	veeam_scrape_collector_duration_seconds{target,collector}
//
// failover_plans (VSPC: GET /api/v3/infrastructure/backupServers/failoverplans;
// EM: GET /api/query?type=FailoverPlan):
//
//	veeam_failover_plan_info{target,plan_id,plan,backup_server_id,type,tenant_id}  1 (type and tenant_id empty on EM)
//	veeam_failover_plan_objects{target,plan_id}             VSPC objectsCount, EM FailoveredVm count
//	veeam_failover_plan_status{target,plan_id,status}       VSPC only: Ready, InProgress, InUndoProgress,
//	                                                        Completed, Success, Failed, UndoFailed, Unknown
//	veeam_failover_plan_last_session_end_timestamp_seconds{target,plan_id}   VSPC >= 3.6.1, once ended
//	veeam_failover_plan_last_session_status{target,plan_id,status}           VSPC >= 3.6.1: Success, Warning,
//	                                                        Failed, None, Unknown (when the plan has a last session)
//
// failover_plan_objects (VSPC: GET /api/v3/infrastructure/backupServers/failoverplans/objects):
//
//	veeam_failover_plan_objects_by_restore_status{target,plan_id,status}   always, zeros included, for each plan
//	                                                        with VMs: Running, Success, Warning, Failed, None, Unknown
//	                                                        (None: the VM has no restore session yet); a plan
//	                                                        without VMs has none (its veeam_failover_plan_objects is 0)
//	with Options.PerObject:
//	veeam_failover_plan_object_info{target,plan_id,object_id,object,host}  1
//	veeam_failover_plan_object_restore_status{target,plan_id,object_id,status}   stateset, values as above
//	veeam_failover_plan_object_restore_point_timestamp_seconds{target,plan_id,object_id}   when known (RPO)
//
// cloud_failover_sessions (EM: GET /api/query?type=CloudFailoverSession, the last 30 days):
//
//	veeam_cloud_failover_sessions{target,state,result}      counts, every state x result, zeros included;
//	                                                        state: Starting, Stopping, Working, Stopped, Unknown;
//	                                                        result: Success, Warning, Failed, None, Unknown
//	                                                        (None: no result yet, e.g. while running)
//	for the newest Options.SessionsPerPlan sessions of each plan (EM names a session after its plan):
//	veeam_cloud_failover_session_info{target,session_id,plan}   1
//	veeam_cloud_failover_session_state{target,session_id,state}     stateset
//	veeam_cloud_failover_session_result{target,session_id,result}   stateset
//	veeam_cloud_failover_session_progress_ratio{target,session_id}  0..1
//	veeam_cloud_failover_session_start_timestamp_seconds{target,session_id}
//	veeam_cloud_failover_session_end_timestamp_seconds{target,session_id}   once ended
//
// replicas (VBR: GET /api/v1/replicas and GET /api/v1/replicaPoints):
//
//	veeam_replica_info{target,replica_id,replica,type}      1
//	veeam_replica_state{target,replica_id,state}            Ready, Processing, SureBackup, Failover, FailedFailover,
//	                                                        PermanentFailover, Failback, ReadyToSwitch, Unknown
//	veeam_replica_latest_point_timestamp_seconds{target,replica_id}   newest restore point (RPO), when it has one
package collector
