//go:build linux

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/avnode/avnode/core/api"
)

// A program watching the plugin folder with inotify swaps other bytes into
// the pinned binary the moment the node opens it (written in place) or has
// read it (renamed over it), 200 times. The node hashes and runs the same
// bytes: each start runs the pinned plugin or is refused for its sha256, and
// the swapped-in program never runs.
func TestSwappedPluginBinaryNeverRuns(t *testing.T) {
	dir := evilPluginDir(t)
	bin := filepath.Join(dir, "avnode-evil")
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
		r := cli(t, d.repo, nil, "--json", "plugins", "describe", "evil")
		if w.disarm() {
			swapped++
		}
		var desc api.PluginDescription
		switch {
		case r.code == 0 && jsonInto(r.stdout, &desc) == nil && desc.Name == "evil":
		case r.code != 0 && strings.Contains(r.stderr, "sha256"):
			refused++
		default:
			t.Fatalf("attempt %d: exit %d\n%s%s; want evil's description or a sha256 refusal", i, r.code, r.stdout, r.stderr)
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
}

func jsonInto(s string, v any) error { return json.Unmarshal([]byte(s), v) }

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
