package node

import (
	"runtime/debug"
	"sync"
)

// Build is what the Go toolchain stamped into this binary about its source.
// go build does it in a git checkout (a source tarball, or -buildvcs=false,
// leaves it empty): which commit, when it was made, and whether the
// checkout had changes that no commit holds.
type Build struct {
	Commit   string // the full commit hash
	Time     string // the commit's time, RFC 3339
	Modified bool   // built with uncommitted changes
}

// BuildStamp reads this binary's Build.
var BuildStamp = sync.OnceValue(func() Build {
	var b Build
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
})

// FullVersion is Version with the commit it was built from, as semver build
// metadata: 0.1.0-dev+fc38152a1b2c, and .dirty when the checkout had changes.
func FullVersion() string {
	b := BuildStamp()
	if b.Commit == "" {
		return Version
	}
	v := Version + "+" + b.Commit[:min(12, len(b.Commit))]
	if b.Modified {
		v += ".dirty"
	}
	return v
}
