package collector

import "testing"

func TestStateIndex(t *testing.T) {
	m := newMetrics(0)
	cases := []struct {
		f    *family
		in   string
		want string
	}{
		{m.planStatus, "Ready", "Ready"},
		{m.planStatus, "inundoprogress", "InUndoProgress"},
		{m.planStatus, "Exploded", "Unknown"},
		{m.planStatus, "", "Unknown"},
		{m.planLastStatus, "", "None"},
		{m.objectStatus, "", "None"},
		{m.objectStatus, "Warning", "Warning"},
		{m.sessionResult, "", "None"},
		{m.sessionState, "Pausing", "Unknown"},
		{m.replicaState, "PermanentFailover", "PermanentFailover"},
		{m.replicaState, "ActionRequired", "Unknown"},
	}
	for _, c := range cases {
		if got := c.f.states[c.f.index(c.in)]; got != c.want {
			t.Errorf("%s: %q maps to %q, want %q", c.f.desc, c.in, got, c.want)
		}
	}
}
