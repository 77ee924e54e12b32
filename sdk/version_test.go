package sdk

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// In the repository, the node's go.mod, the examples' and go.work's
// replace require this release of the SDK, and the CHANGELOG has an entry
// for it: a release bumps them together. (A module zip has none of these
// files; the test then has nothing to compare.)
func TestVersionIsWhatTheRepositoryRequires(t *testing.T) {
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(Version) {
		t.Fatalf("Version %q is not MAJOR.MINOR.PATCH", Version)
	}
	want := "github.com/avnode/avnode/sdk v" + Version
	for _, file := range []string{"../go.mod", "../go.work", "examples/pinner/go.mod", "examples/chat/go.mod"} {
		data, err := os.ReadFile(file)
		if os.IsNotExist(err) {
			t.Skipf("%s: not in the repository", file)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), want) {
			t.Errorf("%s does not name %q: bump it with sdk.Version", file, want)
		}
	}
	changelog, err := os.ReadFile("CHANGELOG.md")
	if err != nil || !strings.Contains(string(changelog), "## "+Version) {
		t.Errorf("CHANGELOG.md has no entry \"## %s\" (%v)", Version, err)
	}
}
