package main

import (
	"fmt"
	"runtime/debug"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3". Without
// it the module version (go install …@v1.2.3) or the VCS revision stamped
// into the build is used.
var version = ""

// buildVersion is the version this binary reports.
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if v == "" || v == "(devel)" {
		if rev == "" {
			return "devel"
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + modified
	}
	return v
}

// versionLine is what --version prints.
func versionLine() string {
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	return fmt.Sprintf("syncd %s (%s)", buildVersion(), goVersion)
}
