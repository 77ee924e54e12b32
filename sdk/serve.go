package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/avnode/avnode/sdk/pluginpb"
)

const (
	// stopTimeout bounds Role.Stop when the process is told to end.
	stopTimeout = 5 * time.Second
	// orphanStopTimeout bounds Role.Stop when the node is gone: with the
	// parent watch's 1 s poll, the plugin is gone within 5 s of the node.
	orphanStopTimeout = 3 * time.Second
	// parentPoll is how often the parent watch looks.
	parentPoll = time.Second
)

// Serve runs a role plugin; a plugin's main calls it and nothing else. It
// never returns.
//
//   - `<binary> describe` prints the role's Description as JSON, with
//     "protocol_version", on stdout and exits 0. Nothing else ever writes
//     to stdout: before the handshake it would break it.
//   - Run by hand (no handshake cookie in the environment), it says what it
//     is on stderr and exits 1.
//   - Started by the node, it serves the Role service through go-plugin
//     until the node stops it. The standard log package writes to stderr.
//   - SIGTERM or SIGINT stops the role (Role.Stop, 5 s at most) and exits 0.
//   - If the node dies, even by kill -9, the role is stopped and the process
//     exits within 5 s (Linux: the kernel's parent-death signal; everywhere:
//     a watch on the parent process ID).
func Serve(r Role) {
	// The process's real stderr: go-plugin swaps os.Stderr for a pipe the
	// node reads only when it asks to, while this one the node always logs.
	stderr := os.Stderr
	log.SetOutput(stderr)
	prog := filepath.Base(os.Args[0])

	desc, err := checkedDescription(r, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: the plugin is broken: %v; tell its author\n", prog, err)
		os.Exit(2)
	}
	if len(os.Args) > 1 && os.Args[1] == "describe" {
		if err := writeDescription(os.Stdout, desc); err != nil {
			fmt.Fprintf(stderr, "%s describe: %v\n", prog, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		fmt.Fprintf(stderr, "%s: this is an avnode role plugin (role %q, version %s, protocol %d); the node starts it; try `%s describe`\n",
			prog, desc.Name, desc.Version, Handshake.ProtocolVersion, prog)
		os.Exit(1)
	}

	ppid := os.Getppid()
	if err := setParentDeathSignal(); err != nil {
		fmt.Fprintf(stderr, "avnode sdk: %v; relying on the parent watch alone\n", err)
	}
	// Writing to the node's pipes after it died must fail the write, not
	// kill the process before the role has stopped. Notify rather than
	// Ignore: an ignored signal would stay ignored in the role's children.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	srv := newRoleServer(r, stderr, logLevelFromEnv())
	var exitOnce sync.Once
	exit := func(why string, budget time.Duration) {
		exitOnce.Do(func() {
			stopAndExit(srv, stderr, why, budget)
		})
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	go func() {
		sig := <-sigs
		if os.Getppid() != ppid {
			exit("the node is gone ("+sig.String()+")", orphanStopTimeout)
		}
		exit(sig.String(), stopTimeout)
	}()
	go watchParent(context.Background(), parentPoll, os.Getppid, ppid, func() {
		exit("the node is gone (parent process changed)", orphanStopTimeout)
	})

	var served atomic.Bool
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins: plugin.PluginSet{PluginKey: &RolePlugin{NewRoleServer: func(b *plugin.GRPCBroker) pluginpb.RoleServer {
			served.Store(true)
			return srv.setBroker(b)
		}}},
		GRPCServer: plugin.DefaultGRPCServer,
		// go-plugin's own chatter: only what matters, as JSON lines the
		// node's go-plugin client parses.
		Logger: hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: stderr, JSONFormat: true}),
	})
	// plugin.Serve returns when the node closed the connection (go-plugin's
	// Kill) or when it could not start serving.
	if !served.Load() {
		exitOnce.Do(func() { os.Exit(1) })
	}
	exit("the node closed the connection", stopTimeout)
}

// stopAndExit stops the role within budget, then ends the process, whether
// or not Role.Stop returned in time.
func stopAndExit(srv *roleServer, stderr io.Writer, why string, budget time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	done := make(chan Diagnostics, 1)
	go func() { done <- srv.stop(ctx) }()
	select {
	case diags := <-done:
		if err := diags.Err(); err != nil {
			fmt.Fprintf(stderr, "avnode sdk: stopping the role (%s): %v\n", why, err)
		}
	case <-time.After(budget + 100*time.Millisecond):
		fmt.Fprintf(stderr, "avnode sdk: the role did not stop within %s (%s); exiting anyway\n", budget, why)
	}
	os.Exit(0)
}

var roleName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

// checkedDescription calls Describe with stdout pointing at stderr (a stray
// print before the handshake would break it) and checks what the node relies on.
func checkedDescription(r Role, stderr *os.File) (d Description, err error) {
	stdout := os.Stdout
	os.Stdout = stderr
	defer func() {
		os.Stdout = stdout
		if p := recover(); p != nil {
			err = fmt.Errorf("Describe panicked: %v", p)
		}
	}()
	d = r.Describe()
	if !roleName.MatchString(d.Name) {
		return d, fmt.Errorf("Describe().Name %q is not a role name (lower-case letters, digits and '-', starting with a letter)", d.Name)
	}
	if d.ConfigSchema != "" && !json.Valid([]byte(d.ConfigSchema)) {
		return d, fmt.Errorf("Describe().ConfigSchema of role %s is not valid JSON", d.Name)
	}
	return d, nil
}

// describeOutput is what `<binary> describe` prints; the node's `avnode
// plugins describe` reads the same fields.
type describeOutput struct {
	Description
	ProtocolVersion uint `json:"protocol_version"`
}

func writeDescription(w io.Writer, d Description) error {
	if d.Capabilities == nil {
		d.Capabilities = []string{}
	}
	if d.Permissions == nil {
		d.Permissions = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(describeOutput{Description: d, ProtocolVersion: Handshake.ProtocolVersion})
}
