package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `make install PREFIX=...` as an operator runs it: the node with its roles
// beside it, completions, man pages and systemd units that systemd itself
// accepts, all under PREFIX; `make uninstall` takes every file away again.
func TestMakeInstall(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on this machine")
	}
	prefix := t.TempDir()
	makeIn := func(target string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "-s", target, "PREFIX="+prefix)
		cmd.Dir = "../.."
		cmd.Env = withoutMake(cleanEnv())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	makeIn("install")

	bin := filepath.Join(prefix, "bin")
	for _, role := range []string{"beacon", "mirror", "relay", "receiver", "satellite"} {
		if _, err := os.Stat(filepath.Join(bin, "avnode-"+role)); err != nil {
			t.Errorf("role %s not installed beside the node: %v", role, err)
		}
	}
	if out, err := exec.Command(filepath.Join(bin, "avnode"), "version").Output(); err != nil || !strings.HasPrefix(string(out), "avnode ") {
		t.Errorf("installed avnode version: %q, %v", out, err)
	}

	man := filepath.Join(prefix, "share", "man")
	for _, page := range []string{"avnode.1", "avnode-run.1", "avnode-resolve.1", "avnode-record-set.1"} {
		b, err := os.ReadFile(filepath.Join(man, "man1", page))
		if err != nil || !bytes.Contains(b, []byte(".TH \"AVNODE\" \"1\"")) {
			t.Errorf("man page %s: %v\n%.200s", page, err, b)
		}
		// The reader's default repo, not the installer's.
		if bytes.Contains(b, []byte(os.Getenv("HOME")+"/.avnode")) && os.Getenv("HOME") != "" {
			t.Errorf("man page %s names the installer's home as the default repo", page)
		}
	}
	if out, err := exec.Command("man", "-l", filepath.Join(man, "man1", "avnode-get.1")).Output(); err == nil &&
		!strings.Contains(string(out), "Fetch content by name or CID") {
		t.Errorf("man avnode-get reads:\n%s", out)
	}

	completion := filepath.Join(prefix, "share", "bash-completion", "completions", "avnode")
	if out, err := exec.Command("bash", "-c", "source "+completion+" && complete -p avnode").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "avnode") {
		t.Errorf("bash completion does not register: %s %v", out, err)
	}
	for _, f := range []string{"zsh/site-functions/_avnode", "fish/vendor_completions.d/avnode.fish"} {
		if b, err := os.ReadFile(filepath.Join(prefix, "share", f)); err != nil || len(b) == 0 {
			t.Errorf("completion %s: %v", f, err)
		}
	}

	units := []string{filepath.Join(prefix, "lib", "systemd", "system", "avnode.service"),
		filepath.Join(prefix, "lib", "systemd", "user", "avnode.service")}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil || !bytes.Contains(b, []byte("ExecStart="+filepath.Join(bin, "avnode")+" run")) || bytes.Contains(b, []byte("@BINDIR@")) {
			t.Errorf("unit %s does not start the installed binary:\n%s", u, b)
		}
	}
	if _, err := os.Stat(filepath.Join(prefix, "lib", "sysusers.d", "avnode.conf")); err != nil {
		t.Errorf("sysusers.d entry: %v", err)
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		// verify exits 0 on a bad value and only warns: any output is a fault.
		cmd := exec.Command(analyze, append([]string{"verify"}, units...)...)
		cmd.Env = append(os.Environ(), "MANPATH="+man)
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("no systemd-analyze here: the units were not checked by systemd")
	}

	makeIn("uninstall")
	var left []string
	filepath.WalkDir(prefix, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, path)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("make uninstall left %v", left)
	}
}

// withoutMake drops a parent make's variables (make test runs this test),
// so that the make run here starts afresh.
func withoutMake(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") {
			out = append(out, kv)
		}
	}
	return out
}
