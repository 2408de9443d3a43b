package veeam

import (
	"strings"
	"time"
)

// NormalizeID turns the ids the three APIs emit into the form the exporter
// uses everywhere: lower case, without EM's `urn:veeam:<Type>:` prefix.
// VSPC emits some UIDs upper-case; EM wraps them in URNs.
func NormalizeID(s string) string {
	const prefix = "urn:veeam:"
	s = strings.TrimSpace(s)
	for len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		s = s[len(prefix):] // <Type>:<id>, or a malformed rest
		if i := strings.IndexByte(s, ':'); i >= 0 {
			s = s[i+1:]
		}
	}
	return strings.ToLower(s)
}

// timeLayouts are the date-time forms seen in the three APIs: RFC 3339 with
// or without fractional seconds and offset (VBR's token example has no
// offset; EM writes UTC with Z).
var timeLayouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02",
}

// ParseTime parses an API date-time leniently. A value without an offset is
// taken as UTC. An empty or unparsable value yields the zero time and false:
// one odd timestamp must not fail a whole list.
func ParseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// FormatTime renders t the way the APIs accept it: RFC 3339 in UTC.
func FormatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}
