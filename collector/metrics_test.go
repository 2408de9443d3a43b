package collector

import "testing"

func TestStateIndex(t *testing.T) {
	cases := []struct {
		f    *family
		in   string
		want string
	}{
		{planStatus.build(""), "Ready", "Ready"},
		{planStatus.build(""), "inundoprogress", "InUndoProgress"},
		{planStatus.build(""), "Exploded", "Unknown"},
		{planStatus.build(""), "", "Unknown"},
		{planLastStatus.build(""), "", "None"},
		{objectsByLastStatus.build(""), "", "None"},
		{objectLastStatus.build(""), "Warning", "Warning"},
		{objectLastStatus.build(""), "Restoring", "Unknown"},
		{sessionResult.build(""), "", "None"},
		{sessionState.build(""), "Pausing", "Unknown"},
		{replicaState.build(""), "PermanentFailover", "PermanentFailover"},
		{replicaState.build(""), "ActionRequired", "Unknown"},
	}
	for _, c := range cases {
		if got := c.f.states[c.f.index(c.in)]; got != c.want {
			t.Errorf("%s: %q maps to %q, want %q", c.f.desc, c.in, got, c.want)
		}
	}
}
