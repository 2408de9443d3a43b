package config

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// The collectors and action kinds are declared by the packages that run them
// (collector, trigger), each in its own file, and registered here from an
// init function, as node_exporter's collectors register themselves. Config
// validation, defaults and every listing read these registries, so that
// adding a collector or an action kind touches one file.

// CollectorSpec is what config knows of one collector.
type CollectorSpec struct {
	// Name as written under a target's `collectors:`.
	Name string
	// TargetTypes the collector runs on; on each it is a default collector.
	TargetTypes []string
}

// ActionSpec is what config knows of one action kind.
type ActionSpec struct {
	// Name as written in a rule's `action.type`.
	Name string
	// TargetType is the type of target the kind acts on.
	TargetType string
	// Keys are the action keys the kind reads besides type and target; any
	// other key that is set is reported as "not used by <name>".
	Keys []string
	// Check validates the kind's own keys. It reports each problem with the
	// key relative to the action ("plan", "replicas[1]").
	Check func(a *Action, problem func(key, format string, args ...any))
}

var registry struct {
	sync.RWMutex
	collectors map[string]CollectorSpec
	actions    map[string]ActionSpec
}

// RegisterCollector declares a collector; it panics on a duplicate name, as
// that is a programming error found by the first test that runs.
func RegisterCollector(s CollectorSpec) {
	registry.Lock()
	defer registry.Unlock()
	if registry.collectors == nil {
		registry.collectors = map[string]CollectorSpec{}
	}
	if _, dup := registry.collectors[s.Name]; dup || s.Name == "" {
		panic(fmt.Sprintf("config: collector %q registered twice or without a name", s.Name))
	}
	registry.collectors[s.Name] = s
}

// RegisterAction declares an action kind; it panics on a duplicate name.
func RegisterAction(s ActionSpec) {
	registry.Lock()
	defer registry.Unlock()
	if registry.actions == nil {
		registry.actions = map[string]ActionSpec{}
	}
	if _, dup := registry.actions[s.Name]; dup || s.Name == "" {
		panic(fmt.Sprintf("config: action kind %q registered twice or without a name", s.Name))
	}
	registry.actions[s.Name] = s
}

// Collectors lists the registered collectors by name.
func Collectors() []CollectorSpec {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]CollectorSpec, 0, len(registry.collectors))
	for _, s := range registry.collectors {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b CollectorSpec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Actions lists the registered action kinds by name.
func Actions() []ActionSpec {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]ActionSpec, 0, len(registry.actions))
	for _, s := range registry.actions {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ActionSpec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// LookupAction returns the registered action kind with this name.
func LookupAction(name string) (ActionSpec, bool) {
	registry.RLock()
	defer registry.RUnlock()
	s, ok := registry.actions[name]
	return s, ok
}

// CollectorsFor lists, by name, the collectors that run on a target type: the
// type's default collectors.
func CollectorsFor(targetType string) []string {
	var out []string
	for _, s := range Collectors() {
		if slices.Contains(s.TargetTypes, targetType) {
			out = append(out, s.Name)
		}
	}
	return out
}
