package main

import (
	_ "embed"
	"runtime/debug"
	"strings"

	"github.com/prometheus/common/version"
)

// versionFile is the release this tree belongs to; the Makefile stamps the
// same file with -ldflags.
//
//go:embed VERSION
var versionFile string

// init fills the version fields the Makefile stamps with -ldflags when they
// are empty, so that `go install …@v0.1.0` and a plain `go build` report a
// real version and build date instead of empty strings. prometheus/common
// already takes the revision from the same build info.
func init() {
	info, _ := debug.ReadBuildInfo()
	fillVersion(info, versionFile)
}

// fillVersion sets the empty version fields: the version from the module
// (a tag, or Go's pseudo-version of the commit), else from the VERSION file
// marked as a development build; the build date from the commit time.
func fillVersion(info *debug.BuildInfo, file string) {
	if version.Version == "" {
		switch {
		case info != nil && info.Main.Version != "" && info.Main.Version != "(devel)":
			version.Version = strings.TrimPrefix(info.Main.Version, "v")
		case strings.TrimSpace(file) != "":
			version.Version = strings.TrimSpace(file) + "-dev"
		}
	}
	if version.BuildDate == "" && info != nil {
		for _, s := range info.Settings {
			if s.Key == "vcs.time" {
				version.BuildDate = s.Value
			}
		}
	}
}
