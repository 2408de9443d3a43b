package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// The decoder walks the yaml.Node tree alongside the Go types itself instead
// of letting yaml.v3 decode the whole document: that way every unknown key,
// duplicate key and bad value becomes its own Problem with the line and the
// key path, decoding goes on after the first problem, values of secret keys
// are never quoted back, and the key paths' lines are kept for validation.
//
// yaml.v3's Decoder with KnownFields(true) was tried in its place and cannot
// keep these messages: an error returned by a type's own UnmarshalYAML
// (model.Duration, TLSVersion, TLSConfig's validation) carries no line or
// key, stops the whole decode, drops the errors already collected and
// leaves the list element it was in zero-valued, so a bad `timeout:` would
// hide every other problem behind false "missing" ones.

var (
	secretType     = reflect.TypeFor[promconfig.Secret]()
	durationType   = reflect.TypeFor[model.Duration]()
	urlType        = reflect.TypeFor[promconfig.URL]()
	tlsVersionType = reflect.TypeFor[promconfig.TLSVersion]()
	unmarshalers   = []reflect.Type{
		reflect.TypeFor[yaml.Unmarshaler](),
		// The yaml.v2-style interface that prometheus/common implements;
		// yaml.v3 honours it.
		reflect.TypeFor[interface{ UnmarshalYAML(func(any) error) error }](),
	}
)

// parser holds the state of one Parse call.
type parser struct {
	file    string
	dir     string
	probs   Errors
	lines   map[string]int // key path -> line where it is set
	secrets []string       // values that must never appear in a message
	seen    map[*yaml.Node]bool
}

func newParser(file string) *parser {
	return &parser{file: file, lines: map[string]int{}, seen: map[*yaml.Node]bool{}}
}

// add records a problem at an explicit line.
func (p *parser) add(key string, line int, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	if key == "" {
		key = "yaml"
	}
	p.probs = append(p.probs, Problem{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// errorf records a problem at the line of key, or of its closest ancestor
// that is in the file (for keys that are missing).
func (p *parser) errorf(key string, format string, args ...any) {
	p.add(key, p.lineOf(key), format, args...)
}

func (p *parser) lineOf(key string) int {
	for k := key; k != ""; k = parentKey(k) {
		if l, ok := p.lines[k]; ok {
			return l
		}
	}
	return 1
}

// parentKey strips the last element of a key path: "a.b[2]" -> "a.b" -> "a".
func parentKey(k string) string {
	i := strings.LastIndexAny(k, ".[")
	if i < 0 {
		return ""
	}
	return k[:i]
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// decodeDocument parses data and decodes it into cfg. It reports false when
// the YAML itself is broken and there is nothing to validate.
func (p *parser) decodeDocument(data []byte, cfg *Config) bool {
	p.collectRawSecrets(data)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return true // empty file: all defaults
		}
		p.syntaxError(data, err)
		return false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.add("yaml", extra.Line, "only one YAML document is allowed")
		return false
	case !errors.Is(err, io.EOF):
		p.syntaxError(data, err)
		return false
	}
	n := &root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return true
		}
		n = n.Content[0]
	}
	n = resolve(n)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		p.add("yaml", n.Line, "expected a mapping of settings at the top level, got %s", nodeKind(n))
		return false
	}
	p.walk(n, reflect.ValueOf(cfg).Elem(), "")
	return true
}

var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a parser error into a Problem. yaml.v3's scanner and
// parser messages are fixed texts, but the message is still run through the
// redaction of secrets, and the key is only named when it is one of ours.
func (p *parser) syntaxError(data []byte, err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if strings.HasPrefix(msg, "unknown anchor") {
		msg = "unknown anchor referenced" // do not quote the name: it may be a misplaced value
	}
	if l := firstBadLine(data); l > 0 {
		line = l
	}
	p.add(keyOnLine(data, line), line, "invalid YAML: %s", msg)
}

// maxScanLines bounds the search for the line of a syntax error.
const maxScanLines = 2000

// firstBadLine finds the line a syntax error is on: yaml.v3 often reports
// where the enclosing block starts instead. It is the line after the longest
// prefix of whole lines that still parses. 0 if unknown.
func firstBadLine(data []byte) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxScanLines {
		return 0
	}
	for k := len(lines) - 1; k >= 0; k-- {
		if parses(bytes.Join(lines[:k], nil)) {
			return k + 1
		}
	}
	return 0
}

func parses(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

var keyRE = regexp.MustCompile(`^[\s-]*([a-z_]+)\s*:`)

// keyOnLine returns the config key written on a line, if it is a known key,
// else "yaml"; the line's content is never returned otherwise.
func keyOnLine(data []byte, line int) string {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return "yaml"
	}
	m := keyRE.FindSubmatch(lines[line-1])
	if m == nil {
		return "yaml"
	}
	if k := string(m[1]); slices.Contains(knownKeyNames(), k) {
		return k
	}
	return "yaml"
}

// knownKeyNames is every yaml key of the schema.
func knownKeyNames() []string {
	var names []string
	var walk func(t reflect.Type, depth int)
	walk = func(t reflect.Type, depth int) {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || depth > 6 {
			return
		}
		for name, idx := range yamlFields(t) {
			names = append(names, name)
			walk(t.FieldByIndex(idx).Type, depth+1)
		}
	}
	walk(reflect.TypeFor[Config](), 0)
	return names
}

// rawSecretRE finds the values of keys that hold secrets inline, so they can
// be redacted even from a file that does not parse.
var rawSecretRE = regexp.MustCompile(`(?m)^[\s-]*(?:password|api_key|key)\s*:[ \t]*(.*?)[ \t]*$`)

func (p *parser) collectRawSecrets(data []byte) {
	for _, m := range rawSecretRE.FindAllSubmatch(data, -1) {
		v := string(m[1])
		p.addSecret(v)
		p.addSecret(strings.Trim(v, `"'`))
		p.addSecret(strings.TrimLeft(v, "*&!"))
		if i := strings.Index(v, " #"); i > 0 {
			p.addSecret(strings.Trim(strings.TrimSpace(v[:i]), `"'`))
		}
	}
}

// minSecretLen: shorter values are not redacted from messages (it would
// mangle them); they never get there in the first place.
const minSecretLen = 4

func (p *parser) addSecret(s string) {
	if len(s) >= minSecretLen && !slices.Contains(p.secrets, s) {
		p.secrets = append(p.secrets, s)
	}
}

// collectSecrets records every scalar below n as a secret.
func (p *parser) collectSecrets(n *yaml.Node) {
	if n == nil || p.seen[n] {
		return
	}
	p.seen[n] = true
	if n.Kind == yaml.ScalarNode {
		p.addSecret(n.Value)
	}
	if n.Alias != nil {
		p.collectSecrets(n.Alias)
	}
	for _, c := range n.Content {
		p.collectSecrets(c)
	}
}

// redact replaces every known secret in the problems' keys and messages.
func (p *parser) redact() {
	secrets := slices.Clone(p.secrets)
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for i := range p.probs {
		for _, s := range secrets {
			p.probs[i].Msg = strings.ReplaceAll(p.probs[i].Msg, s, redacted)
			p.probs[i].Key = strings.ReplaceAll(p.probs[i].Key, s, redacted)
		}
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func hasCustomUnmarshal(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	for _, u := range unmarshalers {
		if pt.Implements(u) {
			return true
		}
	}
	return false
}

// containsSecret says whether values of type t are, or hold, secrets.
func containsSecret(t reflect.Type) bool {
	for {
		if t == secretType {
			return true
		}
		switch t.Kind() {
		case reflect.Slice, reflect.Array, reflect.Pointer, reflect.Map:
			t = t.Elem()
		default:
			return false
		}
	}
}

// walk decodes n into v. Null values leave v (and its default) alone.
func (p *parser) walk(n *yaml.Node, v reflect.Value, key string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	t := v.Type()
	secret := containsSecret(t)
	if secret {
		p.collectSecrets(n)
	}
	custom := hasCustomUnmarshal(t)
	switch {
	case t.Kind() == reflect.Struct && t != urlType:
		if n.Kind != yaml.MappingNode {
			p.add(key, n.Line, "expected a mapping, got %s", nodeKind(n))
			return
		}
		before := len(p.probs)
		p.walkStruct(n, v, key)
		// Types such as TLSConfig validate themselves in UnmarshalYAML;
		// their keys have been checked and decoded above, one by one.
		if custom && len(p.probs) == before {
			if err := n.Decode(v.Addr().Interface()); err != nil {
				p.add(key, n.Line, "%s", cleanYAMLError(err))
			}
		}
	case custom:
		if n.Kind != yaml.ScalarNode {
			p.add(key, n.Line, "expected %s, got %s", describe(t), nodeKind(n))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			p.add(key, n.Line, "%s", customError(t, n, err))
		}
	case t.Kind() == reflect.Slice:
		p.walkSlice(n, v, key)
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			p.add(key, n.Line, "expected a mapping, got %s", nodeKind(n))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			if secret {
				p.add(key, n.Line, "expected a mapping of names to lists of strings")
			} else {
				p.add(key, n.Line, "%s", cleanYAMLError(err))
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			p.add(key, n.Line, "expected %s, got %s", describe(t), nodeKind(n))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			if secret {
				p.add(key, n.Line, "expected %s", describe(t))
			} else {
				p.add(key, n.Line, "expected %s, got %q", describe(t), n.Value)
			}
		}
	}
}

func (p *parser) walkStruct(n *yaml.Node, v reflect.Value, key string) {
	fields := yamlFields(v.Type())
	// Merge keys (<<: *anchor) first, so that explicit keys override them.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMerge(n.Content[i]) {
			p.walkMerge(n.Content[i+1], v, key)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if isMerge(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.add(key, k.Line, "keys must be plain names, got %s", nodeKind(k))
			continue
		}
		name := k.Value
		kp := joinKey(key, name)
		if first, dup := seen[name]; dup {
			p.add(kp, k.Line, "duplicate key (first set on line %d)", first)
			continue
		}
		seen[name] = k.Line
		idx, ok := fields[name]
		if !ok {
			p.add(kp, k.Line, "unknown key%s", suggest(name, fields))
			continue
		}
		p.lines[kp] = k.Line
		p.walk(val, v.FieldByIndex(idx), kp)
	}
}

func (p *parser) walkMerge(n *yaml.Node, v reflect.Value, key string) {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		p.walkStruct(n, v, key)
	case yaml.SequenceNode:
		for _, m := range n.Content {
			if m = resolve(m); m.Kind == yaml.MappingNode {
				p.walkStruct(m, v, key)
			} else {
				p.add(key, m.Line, "a merge (<<) needs mappings, got %s", nodeKind(m))
			}
		}
	default:
		p.add(key, n.Line, "a merge (<<) needs a mapping, got %s", nodeKind(n))
	}
}

func (p *parser) walkSlice(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.SequenceNode {
		p.add(key, n.Line, "expected a list, got %s", nodeKind(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		ik := fmt.Sprintf("%s[%d]", key, i)
		item = resolve(item)
		p.lines[ik] = item.Line
		e := reflect.New(v.Type().Elem())
		if d, ok := e.Interface().(defaulter); ok {
			d.setDefaults()
		}
		p.walk(item, e.Elem(), ik)
		s = reflect.Append(s, e.Elem())
	}
	v.Set(s)
}

// yamlFields maps each yaml key of struct type t, inline fields included, to
// the field's index path.
func yamlFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var add func(t reflect.Type, prefix []int)
	add = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(slices.Clone(prefix), i)
			if slices.Contains(strings.Split(opts, ","), "inline") && f.Type.Kind() == reflect.Struct {
				add(f.Type, idx)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			out[name] = idx
		}
	}
	add(t, nil)
	return out
}

// describe names what a value of type t looks like, for messages.
func describe(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration such as 30s, 5m or 24h"
	case secretType:
		return "a string"
	case urlType:
		return "a URL"
	case tlsVersionType:
		return "a TLS version (TLS10, TLS11, TLS12 or TLS13)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "a " + t.Kind().String()
}

// customError explains why a scalar did not decode into a type with its own
// UnmarshalYAML, without quoting values that may be secret.
func customError(t reflect.Type, n *yaml.Node, err error) string {
	switch t {
	case durationType, tlsVersionType:
		return fmt.Sprintf("invalid value %q: expected %s", n.Value, describe(t))
	case secretType:
		return "expected a string"
	case urlType:
		return "invalid URL" // url.Parse quotes the URL, which may hold a password
	}
	return cleanYAMLError(err)
}

var yamlLinePrefixRE = regexp.MustCompile(`(?m)^\s*line \d+: `)

// cleanYAMLError strips yaml.v3's prefixes and joins multi-line messages.
func cleanYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = yamlLinePrefixRE.ReplaceAllString(msg, "")
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
}

// suggest offers the closest known key for a misspelt one.
func suggest(name string, fields map[string][]int) string {
	best, bestDist := "", 3
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		if d := editDistance(name, f); d < bestDist {
			best, bestDist = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
