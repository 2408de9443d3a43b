package main

import (
	"runtime/debug"
	"testing"

	"github.com/prometheus/common/version"
)

func TestFillVersion(t *testing.T) {
	saved := [2]string{version.Version, version.BuildDate}
	t.Cleanup(func() { version.Version, version.BuildDate = saved[0], saved[1] })

	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}}
	tests := []struct {
		name              string
		stamped, date     string // what -ldflags set
		info              *debug.BuildInfo
		wantVer, wantDate string
	}{
		{"make build keeps its stamp", "0.1.0", "20260101-00:00:00",
			&debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}, Settings: vcs}, "0.1.0", "20260101-00:00:00"},
		{"go install module@v0.1.0", "", "",
			&debug.BuildInfo{Main: debug.Module{Version: "v0.1.0"}}, "0.1.0", ""},
		{"go build in a git checkout", "", "",
			&debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260102030405-abcdef012345"}, Settings: vcs},
			"0.0.0-20260102030405-abcdef012345", "2026-01-02T03:04:05Z"},
		{"go build without git", "", "",
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "0.1.0-dev", ""},
		{"no build info", "", "", nil, "0.1.0-dev", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version.Version, version.BuildDate = tt.stamped, tt.date
			fillVersion(tt.info, "0.1.0\n")
			if version.Version != tt.wantVer || version.BuildDate != tt.wantDate {
				t.Errorf("version %q, build date %q; want %q, %q", version.Version, version.BuildDate, tt.wantVer, tt.wantDate)
			}
		})
	}
}
