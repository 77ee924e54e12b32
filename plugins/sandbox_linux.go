package plugins

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

const sandboxAvailable = true

// What a confined plugin may read besides its own folders: the system's
// libraries and the few files a program's runtime and resolver open.
var (
	systemDirs  = []string{"/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ssl", "/etc/ca-certificates", "/sys/kernel/mm/transparent_hugepage"}
	systemFiles = []string{"/etc/ld.so.cache", "/etc/localtime", "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/dev/urandom", "/dev/random"}
	deviceFiles = []string{"/dev/null", "/dev/zero", "/dev/full"}
)

// sandboxLevel says what the sandbox does on this kernel, for `avnode roles`
// and the log; ok is false where Landlock is missing.
func sandboxLevel() (level string, ok bool) {
	abi, err := llsyscall.LandlockGetABIVersion()
	if err != nil || abi < 1 {
		return "rlimits only (no Landlock in this kernel: files are not confined)", false
	}
	return fmt.Sprintf("landlock v%d", abi), true
}

// execConfined applies spec to this process and execs the plugin. Limits,
// no_new_privs and dropped capabilities are set on this thread, which then
// execs, so the plugin inherits them; Landlock applies to every thread.
func execConfined(spec sandboxSpec) error {
	runtime.LockOSThread()
	for _, l := range []struct {
		resource int
		value    uint64
	}{{unix.RLIMIT_AS, spec.MemoryBytes}, {unix.RLIMIT_NOFILE, spec.OpenFiles}, {unix.RLIMIT_NPROC, spec.Processes}} {
		if l.value == 0 {
			continue
		}
		if err := unix.Setrlimit(l.resource, &unix.Rlimit{Cur: l.value, Max: l.value}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", l.resource, err)
		}
	}
	if err := detach(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if err := dropCapabilities(); err != nil {
		return err
	}
	if _, ok := sandboxLevel(); ok {
		cfg := landlock.V7.BestEffort()
		cfg.HandledAccessNet = 0 // roles may listen (the gateway); the node's API needs its token
		err := cfg.Restrict(
			landlock.RODirs(systemDirs...).IgnoreIfMissing(),
			landlock.ROFiles(systemFiles...).IgnoreIfMissing(),
			landlock.RWFiles(deviceFiles...).IgnoreIfMissing(),
			landlock.RWDirs(spec.ReadWrite...),
			landlock.RODirs(spec.ReadOnly...),
		)
		if err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
	}
	os.Setenv("TMPDIR", spec.TempDir)
	return fmt.Errorf("exec %s: %w", spec.Args[0], syscall.Exec(spec.Exec, spec.Args, os.Environ()))
}

// detach leaves the node's terminal and descriptors behind: stdin becomes
// /dev/null (go-plugin hands a plugin the node's), a new session has no
// controlling terminal to read or type into, and every descriptor past the
// image (3) closes at exec.
func detach() error {
	null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/null: %w", err)
	}
	if err := unix.Dup2(null, 0); err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	unix.Close(null)
	if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) { // EPERM: already a leader
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.CloseRange(4, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("close inherited descriptors: %w", err)
	}
	return nil
}

// dropCapabilities empties the bounding, inheritable and ambient sets, so a
// plugin of a node run as root gets no capability at exec: it cannot load
// kernel modules, mount, or override file permissions. A node without
// CAP_SETPCAP cannot empty the bounding set, and the drop is skipped: the
// capabilities an operator gave it as ambient ones (systemd's
// AmbientCapabilities=, CAP_NET_BIND_SERVICE for the gateway on port 80)
// reach its plugins, as README.md says.
func dropCapabilities() error {
	for c := 0; ; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) { // past the last capability
			break
		}
		if errors.Is(err, unix.EPERM) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
