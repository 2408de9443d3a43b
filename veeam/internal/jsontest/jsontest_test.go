package jsontest

import "testing"

func TestDuplicateKeys(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`: false,
		`{"a":1,"A":2}`:           true,
		`{"x":{"a":[1],"a":2}}`:   true,
		`[{"a":1},{"b":1,"b":2}]`: true,
		`{"a":{"b":1},"c":2}`:     false,
		`not json`:                false,
	} {
		if got := DuplicateKeys([]byte(doc)); got != want {
			t.Errorf("%s: %v, want %v", doc, got, want)
		}
	}
}
