package config

// Config's own tests cannot import package collector (it imports config), so
// they register stand-ins with the names and target types the collector
// files register; collector's tests check the real registration against
// config.
const (
	CollectorFailoverPlans         = "failover_plans"
	CollectorFailoverPlanObjects   = "failover_plan_objects"
	CollectorCloudFailoverSessions = "cloud_failover_sessions"
	CollectorReplicas              = "replicas"
)

func init() {
	RegisterCollector(CollectorSpec{Name: CollectorFailoverPlans, TargetTypes: []string{TypeVSPC, TypeEM}})
	RegisterCollector(CollectorSpec{Name: CollectorFailoverPlanObjects, TargetTypes: []string{TypeVSPC}})
	RegisterCollector(CollectorSpec{Name: CollectorCloudFailoverSessions, TargetTypes: []string{TypeEM}})
	RegisterCollector(CollectorSpec{Name: CollectorReplicas, TargetTypes: []string{TypeVBR}})
}
