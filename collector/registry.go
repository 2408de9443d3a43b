package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/veeam-failover/veeam_failover_exporter/config"
)

// definition is one collector as its file declares it: its name, the target
// types it runs on, the metric families it emits and how it reads them.
type definition struct {
	name        string
	targetTypes []string
	families    []*familySpec
	// bind returns the fetch for a target's client, or false when the
	// client does not implement the reader the collector needs.
	bind func(client any) (fetchFunc, bool)
}

// fetchFunc reads one collector of one target into blocks.
type fetchFunc func(ctx context.Context, c *collector) ([]*block, error)

var definitions struct {
	sync.RWMutex
	byName map[string]*definition
}

// register declares a collector, from an init function of the file that
// defines it, as node_exporter's registerCollector does. R is the reader
// interface the collector needs from a target's client; fetch is called with
// the client asserted to R. Config learns the name and target types, so
// that validation and per-type defaults follow.
func register[R any](name string, targetTypes []string, families []*familySpec, fetch func(ctx context.Context, c *collector, r R) ([]*block, error)) {
	d := &definition{name: name, targetTypes: targetTypes, families: families}
	d.bind = func(client any) (fetchFunc, bool) {
		r, ok := client.(R)
		if !ok {
			return nil, false
		}
		return func(ctx context.Context, c *collector) ([]*block, error) { return fetch(ctx, c, r) }, true
	}
	definitions.Lock()
	defer definitions.Unlock()
	if definitions.byName == nil {
		definitions.byName = map[string]*definition{}
	}
	if _, dup := definitions.byName[name]; dup {
		panic(fmt.Sprintf("collector %q registered twice", name))
	}
	definitions.byName[name] = d
	config.RegisterCollector(config.CollectorSpec{Name: name, TargetTypes: targetTypes})
}

func lookup(name string) *definition {
	definitions.RLock()
	defer definitions.RUnlock()
	return definitions.byName[name]
}

// allFamilies is every family of every registered collector and the status
// families, by name.
func allFamilies() []*familySpec {
	definitions.RLock()
	defer definitions.RUnlock()
	out := slices.Clone(statusFamilies)
	for _, d := range definitions.byName {
		out = append(out, d.families...)
	}
	slices.SortFunc(out, func(a, b *familySpec) int { return strings.Compare(a.name, b.name) })
	return slices.CompactFunc(out, func(a, b *familySpec) bool { return a == b })
}
