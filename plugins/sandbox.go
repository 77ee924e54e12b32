package plugins

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Sandbox is how plugin processes are confined (plugins.sandbox).
type Sandbox struct {
	Enabled   bool
	MemoryMB  int // address space of each plugin; 0: no bound
	OpenFiles int
	Processes int // RLIMIT_NPROC, which Linux counts per user; 0: no bound
	// Launcher is the executable that confines itself and then runs the
	// plugin: a binary whose main calls MaybeRunSandboxed first. Empty: this
	// process's own executable.
	Launcher string
}

// sandboxEnv carries a sandboxSpec from the node to the launcher.
const sandboxEnv = "AVNODE_PLUGIN_SANDBOX"

// sandboxSpec is what the launcher applies before it execs the plugin.
type sandboxSpec struct {
	Exec        string   `json:"exec"`
	Args        []string `json:"args"`
	ReadWrite   []string `json:"read_write"` // the role's data and temporary folders
	ReadOnly    []string `json:"read_only,omitempty"`
	TempDir     string   `json:"temp_dir"`
	MemoryBytes uint64   `json:"memory_bytes,omitempty"`
	OpenFiles   uint64   `json:"open_files,omitempty"`
	Processes   uint64   `json:"processes,omitempty"`
}

// MaybeRunSandboxed turns this process into a confined plugin when the node
// started it as a launcher: it applies the sandbox, then execs the plugin
// and never returns. Otherwise it returns at once. Call it first in main.
func MaybeRunSandboxed() {
	raw, ok := os.LookupEnv(sandboxEnv)
	if !ok {
		return
	}
	os.Unsetenv(sandboxEnv) // not the plugin's business
	var spec sandboxSpec
	err := json.Unmarshal([]byte(raw), &spec)
	if err == nil {
		err = execConfined(spec) // returns only on failure
	}
	fmt.Fprintf(os.Stderr, "avnode plugin sandbox: %v\n", err)
	os.Exit(126)
}

// pluginCommand is the command that runs img with args, confined when the
// sandbox is on. done removes what the command needed once it has exited.
func (m *Manager) pluginCommand(img *image, role, dataDir string, args ...string) (cmd *exec.Cmd, done func(), err error) {
	sb := m.opts.Sandbox
	if !sb.Enabled || !sandboxAvailable {
		return img.command(args...), func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "avnode-"+role+"-")
	if err != nil {
		return nil, nil, fmt.Errorf("role %s: temporary folder: %w", role, err)
	}
	spec := sandboxSpec{Exec: img.exec, Args: append([]string{BinaryPrefix + role}, args...),
		ReadWrite: []string{tmp}, TempDir: tmp, MemoryBytes: uint64(sb.MemoryMB) << 20,
		OpenFiles: uint64(sb.OpenFiles), Processes: uint64(sb.Processes)}
	if dataDir != "" {
		spec.ReadWrite = append(spec.ReadWrite, dataDir)
	}
	if img.file == nil { // a file copy: the launcher must reach it
		spec.ReadOnly = append(spec.ReadOnly, filepath.Dir(img.exec))
	}
	raw, _ := json.Marshal(spec)
	launcher := sb.Launcher
	if launcher == "" {
		// This very binary, not the file at its path now: a binary swapped
		// in there would run before any confinement.
		launcher = "/proc/self/exe"
	}
	cmd = exec.Command(launcher)
	cmd.Args = []string{BinaryPrefix + role}
	cmd.Env = append(pluginEnv(role, os.Environ()), sandboxEnv+"="+string(raw))
	passImage(cmd, img)
	return cmd, func() { os.RemoveAll(tmp) }, nil
}

// pluginEnv is the part of the node's environment a confined plugin gets:
// the locale, time zone, PATH and HOME, the Go runtime's settings (GO*),
// go-plugin's (PLUGIN_*) and the role's own, ROLE_* in upper case
// (TESTROLE_DEBUG for role testrole). Nothing else: not SSH_AUTH_SOCK, nor
// tokens the operator's shell holds.
func pluginEnv(role string, environ []string) []string {
	own := strings.ToUpper(strings.ReplaceAll(role, "-", "_")) + "_"
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "LANG", name == "TZ", name == "TERM",
			strings.HasPrefix(name, "LC_"), strings.HasPrefix(name, "GO"),
			strings.HasPrefix(name, "PLUGIN_"), strings.HasPrefix(name, own):
			out = append(out, kv)
		}
	}
	return out
}

// roleDataDir makes the role's own folder, DataDir/<role> ("" without a DataDir).
func (m *Manager) roleDataDir(role string) (string, error) {
	if m.opts.DataDir == "" {
		return "", nil
	}
	dir := filepath.Join(m.opts.DataDir, role)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("role %s: data folder: %w", role, err)
	}
	return dir, nil
}

// sandboxStatus says how plugins are confined, and warns once where the
// operator asked for more than this system gives.
func (m *Manager) sandboxStatus() string {
	if !m.opts.Sandbox.Enabled {
		return "off"
	}
	level, full := sandboxLevel()
	if !full && m.log != nil {
		m.log.Warn("plugins are not fully confined here", "sandbox", level)
	}
	return level
}
