// Package jsonr reads JSON documents of a known shape in one pass, without
// reflection and without allocating for what it skips. The clients decode
// list pages with it: a scrape of a service provider reads tens of
// thousands of objects, and encoding/json (a validating pass, then a
// reflective one, a string for every field) is most of its CPU time.
//
// A Reader accepts exactly what encoding/json accepts (RFC 8259, one value
// and nothing but white space after it) and reports the first syntax or
// type error; strings with escapes or invalid UTF-8 are decoded by
// encoding/json itself, so their values are the same too.
package jsonr

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Reader reads one JSON document. Methods do nothing once an error is
// recorded; check Err (or End) when done.
type Reader struct {
	data    []byte
	pos     int
	depth   int
	err     error
	scratch []byte
}

// New returns a Reader of data, which must not change while it is read.
func New(data []byte) *Reader { return &Reader{data: data} }

// Err is the first error met.
func (r *Reader) Err() error { return r.err }

// Fail records err (the first one wins) and stops the reader.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.pos = len(r.data)
}

func (r *Reader) syntax(what string) {
	if r.err != nil {
		return
	}
	if r.pos >= len(r.data) {
		r.Fail(errors.New("unexpected end of JSON input"))
		return
	}
	r.Fail(fmt.Errorf("invalid character %q %s (offset %d)", r.data[r.pos], what, r.pos))
}

// TypeError records a value of the wrong kind for a field.
func (r *Reader) TypeError(field, want string) {
	r.Fail(fmt.Errorf("field %s: cannot use a JSON %s as %s", field, r.Kind(), want))
}

func (r *Reader) space() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// Kind names the next value: object, array, string, number, bool or null
// ("" at the end or after an error).
func (r *Reader) Kind() string {
	r.space()
	if r.err != nil || r.pos >= len(r.data) {
		return ""
	}
	switch c := r.data[r.pos]; {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	}
	return "invalid"
}

// Null consumes a null and reports whether there was one.
func (r *Reader) Null() bool {
	r.space()
	if r.err == nil && bytes.HasPrefix(r.data[r.pos:], []byte("null")) {
		r.pos += 4
		return true
	}
	return false
}

// enter steps into an object or array at pos, bounding the nesting as
// encoding/json does.
func (r *Reader) enter() bool {
	r.pos++
	r.depth++
	if r.depth > maxDepth {
		r.Fail(errors.New("exceeded max depth"))
		r.depth--
		return false
	}
	return true
}

// open enters the object or array starting at the reader: false for null,
// an error, or another kind of value (a type error named after field).
func (r *Reader) open(field string, c byte, want string) bool {
	if r.Null() || r.err != nil {
		return false
	}
	if r.pos >= len(r.data) || r.data[r.pos] != c {
		if k := r.Kind(); k == "invalid" || k == "" {
			r.syntax("looking for beginning of value")
		} else {
			r.TypeError(field, want)
		}
		return false
	}
	return r.enter()
}

// Object reads an object, calling member for each key with the reader at
// the member's value, which member must read or Skip. The key is only
// valid during the call. A null reads as no members and returns false; any
// other non-object records a type error named after field.
func (r *Reader) Object(field string, member func(key []byte)) bool {
	if !r.open(field, '{', "an object") {
		return false
	}
	defer func() { r.depth-- }()
	r.space()
	if r.pos < len(r.data) && r.data[r.pos] == '}' {
		r.pos++
		return true
	}
	for r.err == nil {
		r.space()
		if r.pos >= len(r.data) || r.data[r.pos] != '"' {
			r.syntax("looking for beginning of object key string")
			return false
		}
		key := r.str()
		r.space()
		if r.pos >= len(r.data) || r.data[r.pos] != ':' {
			r.syntax("after object key")
			return false
		}
		r.pos++
		if r.err != nil {
			return false
		}
		member(key)
		if r.err != nil {
			return false
		}
		r.space()
		if r.pos >= len(r.data) {
			r.syntax("")
			return false
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
		case '}':
			r.pos++
			return true
		default:
			r.syntax("after object key:value pair")
			return false
		}
	}
	return false
}

// Array reads an array, calling elem with the reader at each element,
// which elem must read or Skip. A null reads as no elements and returns
// false; any other non-array records a type error named after field.
func (r *Reader) Array(field string, elem func()) bool {
	if !r.open(field, '[', "an array") {
		return false
	}
	defer func() { r.depth-- }()
	r.space()
	if r.pos < len(r.data) && r.data[r.pos] == ']' {
		r.pos++
		return true
	}
	for r.err == nil {
		elem()
		if r.err != nil {
			return false
		}
		r.space()
		if r.pos >= len(r.data) {
			r.syntax("")
			return false
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
		case ']':
			r.pos++
			return true
		default:
			r.syntax("after array element")
			return false
		}
	}
	return false
}

// Bytes reads a string and returns its decoded bytes, valid until the next
// call; ok is false for null. Anything else records a type error.
func (r *Reader) Bytes(field string) (b []byte, ok bool) {
	if r.Null() || r.err != nil {
		return nil, false
	}
	if r.pos >= len(r.data) || r.data[r.pos] != '"' {
		if k := r.Kind(); k == "invalid" || k == "" {
			r.syntax("looking for beginning of value")
		} else {
			r.TypeError(field, "a string")
		}
		return nil, false
	}
	b = r.str()
	return b, r.err == nil
}

// String reads a string (null reads as "").
func (r *Reader) String(field string) string {
	b, _ := r.Bytes(field)
	return string(b)
}

// str reads the string at pos (which is '"'). Plain strings are returned
// as a slice of the input; strings with escapes or bytes that are not valid
// UTF-8 are decoded by encoding/json into scratch.
func (r *Reader) str() []byte {
	start := r.pos + 1
	i := start
	ascii := true
	for {
		// Eight bytes at a time while none is special: a quote, a
		// backslash, a control character or a non-ASCII byte.
		for i+8 <= len(r.data) && !special(binary.LittleEndian.Uint64(r.data[i:])) {
			i += 8
		}
		if i >= len(r.data) {
			break
		}
		c := r.data[i]
		switch {
		case c == '"':
			r.pos = i + 1
			s := r.data[start:i]
			if !ascii && !utf8.Valid(s) {
				return r.slowStr(start-1, i+1)
			}
			return s
		case c == '\\':
			return r.escaped(start - 1)
		case c < 0x20:
			r.pos = i
			r.syntax("in string literal")
			return nil
		case c >= 0x80:
			ascii = false
		}
		i++
	}
	r.pos = len(r.data)
	r.syntax("")
	return nil
}

// special reports whether any byte of w is '"', '\\', below 0x20 or above
// 0x7f (the classic SWAR tests for a zero byte and for bytes less than n).
func special(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := w ^ (ones * '"')
	backslash := w ^ (ones * '\\')
	return ((quote-ones)&^quote|(backslash-ones)&^backslash|(w-ones*0x20)|w)&highs != 0
}

// escaped finds the end of a string with escapes starting at from and
// decodes it with encoding/json.
func (r *Reader) escaped(from int) []byte {
	i := from + 1
	for i < len(r.data) {
		c := r.data[i]
		switch {
		case c == '"':
			return r.slowStr(from, i+1)
		case c == '\\':
			if i+1 >= len(r.data) {
				r.pos = len(r.data)
				r.syntax("")
				return nil
			}
			switch r.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(r.data) {
					r.pos = len(r.data)
					r.syntax("")
					return nil
				}
				for _, h := range r.data[i+2 : i+6] {
					if !isHex(h) {
						r.pos = i + 2
						r.syntax("in \\u hexadecimal character escape")
						return nil
					}
				}
				i += 6
			default:
				r.pos = i + 1
				r.syntax("in string escape code")
				return nil
			}
		case c < 0x20:
			r.pos = i
			r.syntax("in string literal")
			return nil
		default:
			i++
		}
	}
	r.pos = len(r.data)
	r.syntax("")
	return nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// slowStr decodes the quoted string data[from:to] as encoding/json does.
func (r *Reader) slowStr(from, to int) []byte {
	var s string
	if err := json.Unmarshal(r.data[from:to], &s); err != nil {
		r.pos = from
		r.Fail(err)
		return nil
	}
	r.pos = to
	r.scratch = append(r.scratch[:0], s...)
	return r.scratch
}

// Int reads an integer number (null reads as 0). A fraction, exponent or
// value out of range records a type error, as encoding/json does for int
// fields.
func (r *Reader) Int(field string) int {
	if r.Null() || r.err != nil {
		return 0
	}
	start := r.pos
	if k := r.Kind(); k != "number" {
		if k == "invalid" || k == "" {
			r.syntax("looking for beginning of value")
		} else {
			r.TypeError(field, "an integer")
		}
		return 0
	}
	r.number()
	if r.err != nil {
		return 0
	}
	lit := r.data[start:r.pos]
	digits, neg := lit, lit[0] == '-'
	if neg {
		digits = lit[1:]
	}
	var n uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			r.Fail(fmt.Errorf("field %s: cannot use the JSON number %.30s as an integer", field, lit))
			return 0
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			n = math.MaxUint64
			break
		}
		n = n*10 + d
	}
	if (!neg && n > math.MaxInt64) || (neg && n > math.MaxInt64+1) {
		r.Fail(fmt.Errorf("field %s: the JSON number %.30s overflows an integer", field, lit))
		return 0
	}
	if neg {
		return int(-n)
	}
	return int(n)
}

// number reads a number literal per the JSON grammar.
func (r *Reader) number() {
	d := r.data
	i := r.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		r.pos = i
		r.syntax("in numeric literal")
		return
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			r.pos = i
			r.syntax("after decimal point in numeric literal")
			return
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			r.pos = i
			r.syntax("in exponent of numeric literal")
			return
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	r.pos = i
}

// Skip reads any value, checking its syntax.
func (r *Reader) Skip() {
	r.space()
	if r.err != nil {
		return
	}
	if r.pos >= len(r.data) {
		r.syntax("")
		return
	}
	switch c := r.data[r.pos]; {
	case c == '{':
		r.Object("", func([]byte) { r.Skip() })
	case c == '[':
		r.Array("", r.Skip)
	case c == '"':
		r.str()
	case c == '-' || (c >= '0' && c <= '9'):
		r.number()
	case c == 't':
		r.literal("true")
	case c == 'f':
		r.literal("false")
	case c == 'n':
		r.literal("null")
	default:
		r.syntax("looking for beginning of value")
	}
}

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

func (r *Reader) literal(lit string) {
	for i := 0; i < len(lit); i++ {
		if r.pos >= len(r.data) || r.data[r.pos] != lit[i] {
			r.syntax("in literal " + lit)
			return
		}
		r.pos++
	}
}

// End checks that only white space follows the document and returns the
// first error.
func (r *Reader) End() error {
	r.space()
	if r.err == nil && r.pos < len(r.data) {
		r.syntax("after top-level value")
	}
	return r.err
}

// Key reports whether a member's key names the field name, matched as
// encoding/json matches: exactly, or else case-insensitively.
func Key(k []byte, name string) bool {
	return string(k) == name || (len(k) == len(name) && bytes.EqualFold(k, []byte(name)))
}

// Interner shares the strings a page repeats (ids of parents, host names,
// states). Keys are the raw JSON values; one Interner per page, as it is
// not safe for concurrent use.
type Interner struct {
	strs    map[string]string
	norm    func([]byte) string
	scratch []byte
}

// NewInterner returns an Interner whose ID method normalises with norm.
func NewInterner(norm func([]byte) string) *Interner {
	return &Interner{strs: map[string]string{}, norm: norm}
}

// Str returns string(b), shared with earlier equal values.
func (in *Interner) Str(b []byte) string {
	if s, ok := in.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	in.strs[s] = s
	return s
}

// ID returns norm(b), shared with earlier equal raw values. Its entries
// are kept apart from Str's by a NUL prefix, which no raw value repeats.
func (in *Interner) ID(b []byte) string {
	in.scratch = append(append(in.scratch[:0], 0), b...)
	if s, ok := in.strs[string(in.scratch)]; ok {
		return s
	}
	s := in.norm(b)
	in.strs[string(in.scratch)] = s
	return s
}
