//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/repo"
)

// A program watching the plugin folder with inotify swaps other bytes into
// the pinned binary the moment the node opens it (written in place) or has
// read it (renamed over it), 200 times. The node hashes and runs the same
// bytes: each start runs the pinned plugin or is refused for its sha256, and
// the swapped-in program never runs.
func TestSwappedPluginBinaryNeverRuns(t *testing.T) {
	t.Parallel()
	// Built without the race detector: the node runs it 200 times, and
	// what is under test is the node's read, not the plugin.
	dir := t.TempDir()
	bin := filepath.Join(dir, "avnode-evil")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/testdata/avnode-evil").CombinedOutput(); err != nil {
		t.Fatalf("build the plugin: %v\n%s", err, out)
	}
	good, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(good)
	marker := filepath.Join(t.TempDir(), "swapped-in-ran")
	bad := []byte("#!/bin/sh\necho ran >> " + marker + "\nexit 1\n")
	cfg := filepath.Join(t.TempDir(), "node.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `{"plugins": {"checksums": {"evil": %q}, "sandbox": {"enabled": false}}}`, hex.EncodeToString(sum[:])), 0o600)
	// The sandbox is off: a swapped-in program that ran would leave its mark.
	d := startDaemon(t, filepath.Join(t.TempDir(), "n"), "--plugins.dirs", dir, "--config", cfg)

	// The control API as the CLI calls it, from this process: 200 CLI
	// processes would cost minutes under the race detector.
	client := api.NewClient(d.repo, repo.SocketFile)
	w := newSwapper(t, dir, filepath.Base(bin))
	const attempts = 200
	swapped, refused := 0, 0
	for i := range attempts {
		replaceFile(t, bin, good)
		inPlace := i%2 == 0
		w.arm(func() {
			if inPlace {
				os.WriteFile(bin, bad, 0o755) // truncates and writes the inode the node is reading
			} else {
				replaceFile(t, bin, bad) // a new inode under the name, after the node's read
			}
		}, inPlace)
		var desc api.PluginDescription
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := client.Call(ctx, "GET", "/v1/plugins/describe", url.Values{"name": {"evil"}}, nil, &desc)
		cancel()
		if w.disarm() {
			swapped++
		}
		switch {
		case err == nil && desc.Name == "evil":
		case err != nil && strings.Contains(err.Error(), "sha256"):
			refused++
		default:
			t.Fatalf("attempt %d: %+v, %v; want evil's description or a sha256 refusal", i, desc, err)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		ran, _ := os.ReadFile(marker)
		t.Fatalf("the swapped-in program ran %d times", bytes.Count(ran, []byte("ran")))
	}
	if swapped < attempts*9/10 {
		t.Fatalf("the swapper raced only %d of %d reads", swapped, attempts)
	}
	t.Logf("%d swaps raced the node's read; %d starts refused for their sha256, %d ran the pinned bytes", swapped, refused, attempts-refused)

	// The role itself, started and restarted on the pinned bytes.
	replaceFile(t, bin, good)
	mustCLI(t, d.repo, "roles", "enable", "evil")
	waitRoleNamed(t, d.repo, "evil", "running", 30*time.Second)
	// `avnode id` lists a role enabled at run time, with its state.
	var info api.Info
	cliJSON(t, d.repo, &info, "id")
	if !slices.Contains(info.Roles, "evil") || info.RoleStates["evil"] != "running" {
		t.Fatalf("id after roles enable: roles %v, states %v", info.Roles, info.RoleStates)
	}
	if text := mustCLI(t, d.repo, "id"); !strings.Contains(text, "evil (running)") {
		t.Fatalf("id after roles enable:\n%s", text)
	}
}

// replaceFile puts data under path through a rename: a fresh inode.
func replaceFile(t testing.TB, path string, data []byte) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Error(err)
	}
}

// swapper watches one file of a folder with inotify and, when armed, runs
// a swap at the first open of it (inPlace) or the first close after a read.
type swapper struct {
	fd      int
	name    string
	armed   chan swapJob
	swapped chan bool
}

type swapJob struct {
	swap    func()
	inPlace bool // at the open, not after the read
}

func newSwapper(t testing.TB, dir, name string) *swapper {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_OPEN|unix.IN_CLOSE_NOWRITE); err != nil {
		t.Fatal(err)
	}
	w := &swapper{fd: fd, name: name, armed: make(chan swapJob, 1), swapped: make(chan bool, 1)}
	go w.watch()
	t.Cleanup(func() { unix.Close(fd) })
	return w
}

func (w *swapper) arm(swap func(), inPlace bool) { w.armed <- swapJob{swap, inPlace} }

// disarm reports whether the armed swap ran.
func (w *swapper) disarm() bool {
	select {
	case <-w.armed:
		return false
	case <-w.swapped:
		return true
	}
}

func (w *swapper) watch() {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := unix.Read(w.fd, buf)
		if err != nil || n <= 0 {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if name != w.name || ev.Mask&(unix.IN_OPEN|unix.IN_CLOSE_NOWRITE) == 0 {
				continue
			}
			select {
			case job := <-w.armed:
				if job.inPlace != (ev.Mask&unix.IN_OPEN != 0) {
					w.armed <- job // not its moment
					continue
				}
				job.swap()
				w.swapped <- true
			default:
			}
		}
	}
}
