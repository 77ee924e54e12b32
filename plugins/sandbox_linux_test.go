package plugins

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// The test binary is the launcher, as the avnode binary is in the node.
func TestMain(m *testing.M) {
	MaybeRunSandboxed()
	os.Exit(m.Run())
}

// A program started as a role plugin is (/bin/sh here, a dynamically linked
// one) runs from its sealed image, with the configured rlimits, reads and
// writes its data folder, and reads nothing else of the repo.
func TestSandboxConfinesThePluginProcess(t *testing.T) {
	if abi, err := llsyscall.LandlockGetABIVersion(); err != nil || abi < 1 {
		t.Skip("this kernel has no Landlock; TestHostilePluginGetsOnlyWhatIsGranted checks what roles then says")
	}
	repo := t.TempDir()
	os.WriteFile(filepath.Join(repo, "node.key"), []byte("secret"), 0o600)
	m, err := NewManager(Options{Dirs: []string{t.TempDir()}, DataDir: filepath.Join(repo, "roles"),
		Sandbox: Sandbox{Enabled: true, OpenFiles: 77, MemoryMB: 3000}})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := os.Open("/bin/sh")
	if err != nil {
		t.Skip(err)
	}
	defer sh.Close()
	img, err := copyImage("sh", sh)
	if err != nil {
		t.Fatal(err)
	}
	defer img.close()
	data, err := m.roleDataDir("sh")
	if err != nil {
		t.Fatal(err)
	}
	script := `ulimit -n; ulimit -v; echo mine > "$1/own" && cat "$1/own"; cat "$2" || echo refused; echo "$TMPDIR"`
	cmd, done, err := m.pluginCommand(img, "sh", data, "-c", script, "sh", data, filepath.Join(repo, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := runOutput(ctx, cmd)
	done()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 5 || lines[0] != "77" || lines[1] != "3072000" || lines[2] != "mine" || lines[3] != "refused" {
		t.Fatalf("the confined shell printed %q; want 77 files, 3072000 KiB, its own file, the node key refused", lines)
	}
	if !strings.HasPrefix(lines[4], os.TempDir()) || lines[4] == os.TempDir() {
		t.Errorf("TMPDIR %q; want a folder of its own", lines[4])
	}
	if _, err := os.Stat(lines[4]); err == nil {
		t.Errorf("the temporary folder %s outlived the plugin", lines[4])
	}
}
