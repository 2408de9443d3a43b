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

// NormalizeIDBytes is NormalizeID of string(b), allocating only the result.
func NormalizeIDBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	upper := false
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c <= ' ' || c >= 0x80 || c == ':':
			// Space to trim, non-ASCII to fold, maybe a urn: prefix.
			return NormalizeID(string(b))
		}
	}
	if !upper {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// ParseTimeBytes is ParseTime of string(b). The common form,
// 2006-01-02T15:04:05[.fraction](Z|±hh:mm), is parsed without allocating
// and returned in UTC; others go through ParseTime.
func ParseTimeBytes(b []byte) (time.Time, bool) {
	if t, ok := parseRFC3339(b); ok {
		return t, true
	}
	return ParseTime(string(b))
}

func parseRFC3339(b []byte) (time.Time, bool) {
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || month < 1 || month > 12 || day < 1 ||
		day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		digits := rest[1:i]
		if len(digits) == 0 || len(digits) > 9 {
			return time.Time{}, false
		}
		n, _ := num(digits)
		for range 9 - len(digits) {
			n *= 10
		}
		nsec, rest = n, rest[i:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		h, okh := num(rest[1:3])
		m, okm := num(rest[4:6])
		if !okh || !okm || h > 23 || m > 59 {
			return time.Time{}, false
		}
		offset = (h*60 + m) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 30 + int((m+m/8)%2)
}
