package jsonr

import (
	"encoding/json"
	"strings"
	"testing"
)

var docs = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `12.5e-3`, `"a\u00e9\n"`, `{"a":[1,{"b":null}],"c":"d"}`,
	` [ 1 , 2 ] `, `{"a":1,}`, `[1,]`, `01`, `-`, `1.`, `1e`, `"\x"`, `"\u12"`, "\"a\x01\"", `{"a" 1}`, `{1:2}`,
	`[1 2]`, `nul`, `truex`, `{"a":1}}`, `"\ud800"`, "\"\xff\"", `[` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10002),
	`{"a":` + strings.Repeat(`[`, 9998) + strings.Repeat(`]`, 9998) + `}`,
	`9223372036854775807`, `-9223372036854775808`, `9223372036854775808`, `1e2`, `"5"`, `[1]`, ``, `  `,
}

// check compares the reader with encoding/json on one document: Skip and
// End accept exactly the valid documents, and Int and String read what
// json.Unmarshal reads.
func check(t *testing.T, doc []byte) {
	t.Helper()
	r := New(doc)
	r.Skip()
	if err := r.End(); (err == nil) != json.Valid(doc) {
		t.Fatalf("%q: reader error %v, json.Valid %v", doc, err, json.Valid(doc))
	}
	var n int
	r = New(doc)
	got := r.Int("n")
	err := r.End()
	if jerr := json.Unmarshal(doc, &n); (err == nil) != (jerr == nil) || (err == nil && got != n) {
		t.Fatalf("%q: Int %d, %v; json %d, %v", doc, got, err, n, jerr)
	}
	var s string
	r = New(doc)
	gs := r.String("s")
	err = r.End()
	if jerr := json.Unmarshal(doc, &s); (err == nil) != (jerr == nil) || (err == nil && gs != s) {
		t.Fatalf("%q: String %q, %v; json %q, %v", doc, gs, err, s, jerr)
	}
}

func TestMatchesEncodingJSON(t *testing.T) {
	for _, d := range docs {
		check(t, []byte(d))
	}
}

func FuzzMatchesEncodingJSON(f *testing.F) {
	for _, d := range docs {
		f.Add([]byte(d))
	}
	f.Fuzz(check)
}

func TestObjectArray(t *testing.T) {
	r := New([]byte(`{"a":[1,2,3],"b":{"c":"d"},"e":null}`))
	var sum int
	var c string
	r.Object("doc", func(k []byte) {
		switch string(k) {
		case "a":
			r.Array("a", func() { sum += r.Int("a[]") })
		case "b":
			r.Object("b", func([]byte) { c = r.String("c") })
		default:
			r.Skip()
		}
	})
	if err := r.End(); err != nil || sum != 6 || c != "d" {
		t.Fatalf("sum %d, c %q, err %v", sum, c, err)
	}
	r = New([]byte(`{"a":"x"}`))
	r.Object("doc", func([]byte) { r.Int("a") })
	if r.End() == nil {
		t.Fatal("a string read as an integer")
	}
}
