package coordination

import (
	"context"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/internal/etcdtest"
)

// TestDecideUnchanged: a decision based on records read earlier is refused,
// with nothing written, when one of them changed (or appeared) since; read
// again, it wins.
func TestDecideUnchanged(t *testing.T) {
	c := etcdtest.Start(t)
	a := open(t, c, "a")
	b := open(t, c, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Put(ctx, "dedup/k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	read := func(key string) int64 {
		e, found, err := a.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			return 0
		}
		return e.ModRevision
	}
	dedup, cool := read("dedup/k"), read("cooldowns/c")
	// Another replica decides, calls, fails and gives everything back.
	if err := b.Put(ctx, "dedup/k", []byte("new")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		unchanged func() map[string]int64
		want      Refusal
	}{
		{"changed", func() map[string]int64 { return map[string]int64{"dedup/k": dedup, "cooldowns/c": cool} }, RefusedChanged},
		{"appeared", func() map[string]int64 { return map[string]int64{"dedup/k": read("dedup/k"), "cooldowns/c": 0} }, RefusedChanged},
		{"read again", func() map[string]int64 {
			return map[string]int64{"dedup/k": read("dedup/k"), "cooldowns/c": read("cooldowns/c")}
		}, ""},
	} {
		if tc.name == "appeared" {
			if err := b.Put(ctx, "cooldowns/c", []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		res, err := a.Decide(ctx, Decision{Key: "obj", Records: map[string][]byte{"actions/r": []byte(tc.name)}, Unchanged: tc.unchanged()})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Refused != tc.want || res.Won != (tc.want == "") {
			t.Fatalf("%s: %+v, want refusal %q", tc.name, res, tc.want)
		}
		e, found, err := a.Get(ctx, "actions/r")
		if err != nil {
			t.Fatal(err)
		}
		if written := found && string(e.Value) == tc.name; written != res.Won {
			t.Fatalf("%s: record written %t, won %t", tc.name, written, res.Won)
		}
	}
}
