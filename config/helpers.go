package config

import (
	"fmt"
	"maps"
	"slices"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// Target types, as written in a target's `type`. They equal veeam.TypeVSPC,
// TypeEM and TypeVBR; config does not import veeam.
const (
	TypeVSPC = "vspc"
	TypeEM   = "em"
	TypeVBR  = "vbr"
)

// SupportedCollectors lists, by name, the registered collectors a target type
// can run; they are also its default. It returns nil for an unknown type.
func SupportedCollectors(targetType string) []string {
	return CollectorsFor(targetType)
}

// ActionTargetType is the target type a registered action type needs
// ("vspc", "em" or "vbr"), or "" for an unknown action type.
func ActionTargetType(actionType string) string {
	s, _ := LookupAction(actionType)
	return s.TargetType
}

// ActionTypes lists the registered action types by name.
func ActionTypes() []string {
	var out []string
	for _, s := range Actions() {
		out = append(out, s.Name)
	}
	return out
}

// allCollectors lists every registered collector by name.
func allCollectors() []string {
	var out []string
	for _, s := range Collectors() {
		out = append(out, s.Name)
	}
	return out
}

// EffectiveCollectors is the collectors this target runs: the configured ones,
// or every collector its type supports when the key is absent. An explicit
// `collectors: []` runs none: the target is then only acted on by the
// trigger (a second credential that may act, next to a read-only one).
func (t *Target) EffectiveCollectors() []string {
	if t.Collectors != nil {
		return slices.Clone(t.Collectors)
	}
	return SupportedCollectors(t.Type)
}

// TargetByName returns the target with this name, or nil.
func (c *Config) TargetByName(name string) *Target {
	for i := range c.Targets {
		if c.Targets[i].Name == name {
			return &c.Targets[i]
		}
	}
	return nil
}

const redacted = "<secret>"

// String renders the configuration as YAML with every secret replaced by
// <secret>, whatever promconfig.MarshalSecretValue says, so that it can be
// logged or printed by --config.check. Secrets read from *_file keys are left
// out: the file names are shown instead.
func (c *Config) String() string {
	r := *c
	r.Targets = slices.Clone(c.Targets)
	for i := range r.Targets {
		t := &r.Targets[i]
		t.Password = redactSecret(t.Password, t.PasswordFile)
		t.APIKey = redactSecret(t.APIKey, t.APIKeyFile)
		t.TLSConfig.Key = redactSecret(t.TLSConfig.Key, "")
		if t.ProxyConfig.ProxyConnectHeader != nil {
			h := maps.Clone(t.ProxyConfig.ProxyConnectHeader)
			for k, vs := range h {
				red := make([]promconfig.Secret, len(vs))
				for j := range vs {
					red[j] = redactSecret(vs[j], "")
				}
				h[k] = red
			}
			t.ProxyConfig.ProxyConnectHeader = h
		}
	}
	b, err := yaml.Marshal(&r)
	if err != nil {
		return fmt.Sprintf("<cannot render config: %v>", err)
	}
	return string(b)
}

func redactSecret(s promconfig.Secret, file string) promconfig.Secret {
	if s == "" || file != "" {
		return ""
	}
	return redacted
}
