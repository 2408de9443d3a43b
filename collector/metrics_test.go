package collector

import "testing"

func TestStateIndex(t *testing.T) {
	cases := []struct {
		f    *family
		in   string
		want string
	}{
		{planStatus.build("", true), "Ready", "Ready"},
		{planStatus.build("", true), "inundoprogress", "InUndoProgress"},
		{planStatus.build("", true), "Exploded", "Unknown"},
		{planStatus.build("", true), "", "Unknown"},
		{planLastStatus.build("", true), "", "None"},
		{objectsByLastStatus.build("", true), "", "None"},
		{objectLastStatus.build("", true), "Warning", "Warning"},
		{objectLastStatus.build("", true), "Restoring", "Unknown"},
		{sessionResult.build("", true), "", "None"},
		{sessionState.build("", true), "Pausing", "Unknown"},
		{replicaState.build("", true), "PermanentFailover", "PermanentFailover"},
		{replicaState.build("", true), "ActionRequired", "Unknown"},
	}
	for _, c := range cases {
		if got := c.f.states[c.f.index(c.in)]; got != c.want {
			t.Errorf("%s: %q maps to %q, want %q", c.f.desc, c.in, got, c.want)
		}
	}
}
