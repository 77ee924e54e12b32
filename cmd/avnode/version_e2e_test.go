package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/node"
)

// A build from a git checkout says which commit it is, and whether the
// checkout had changes: in `avnode version`, and (the same string) in the
// agent peers see, which TestFourNodesFormANetwork checks.
func TestVersionNamesTheCommitItWasBuiltFrom(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not built from a git checkout (git rev-parse: %v)", err)
	}
	commit := strings.TrimSpace(string(head))
	status, err := exec.Command("git", "status", "--porcelain").Output()
	if err != nil {
		t.Fatal(err)
	}
	dirty := len(status) > 0
	want := node.Version + "+" + commit[:12]
	if dirty {
		want += ".dirty"
	}
	var v api.VersionInfo
	cliJSON(t, t.TempDir(), &v, "version")
	if v.Commit != commit || v.Modified != dirty || v.Version != want || v.CommitTime == "" {
		t.Fatalf("version --json: %+v; want commit %s, modified %v, version %s", v, commit, dirty, want)
	}
	text := mustCLI(t, t.TempDir(), "version")
	if !strings.Contains(text, "avnode "+want+" ") || !strings.Contains(text, "built from commit "+commit) {
		t.Fatalf("version: %q", text)
	}
}
