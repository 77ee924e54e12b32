// Command avnode is the avnode daemon and its command line: one binary that
// runs a node (`avnode run`) and drives a running one through its local
// control API (the commands of package cli).
//
// This package is the composition root: it starts the daemon, runs the
// commands that work without one (init, config, key, version, policy
// check|test, localnet, bench), and hands package cli the node's parsers.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli" // not "cli": the tests have a func of that name
	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/hosting"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/policy"
	"github.com/avnode/avnode/core/repo"
	"github.com/avnode/avnode/plugins"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // the command ran and failed, e.g. a name was not found
	exitBadUsage = 2 // wrong flags or arguments, or an argument the node calls invalid
)

func main() {
	policy.MaybeRunWorker()     // this binary is also the sandbox that runs Lua policies
	plugins.MaybeRunSandboxed() // and the launcher that confines a role plugin, then execs it
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	g := &nodecli.Globals{}
	root := newRootCmd(g)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if !cmd.Flags().Parsed() {
		code = exitBadUsage
	}
	if g.JSON {
		printJSONError(err, code)
		return code
	}
	fmt.Fprintf(os.Stderr, "avnode: %v\n", err)
	if code == exitBadUsage {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// jsonError is a failure under --json, on stderr: what a script reads
// instead of a line meant for people.
type jsonError struct {
	Error    string `json:"error"`
	Kind     string `json:"kind"`      // usage, not_found, invalid, refused, timeout, ...; failed when unknown
	ExitCode int    `json:"exit_code"` // as the process exits
}

func printJSONError(err error, code int) {
	kind := string(fault.KindOf(err))
	var usage *nodecli.UsageError
	switch {
	case errors.As(err, &usage) || code == exitBadUsage && kind == "":
		kind = "usage"
	case kind == "":
		kind = "failed"
	}
	enc := json.NewEncoder(os.Stderr)
	enc.SetIndent("", "  ")
	enc.Encode(jsonError{Error: err.Error(), Kind: kind, ExitCode: code})
}

// exitCode derives the exit code from what kind of failure err is: a wrong
// argument (the command's own check, or the node's fault.Invalid) exits 2,
// every other failure 1.
func exitCode(err error) int {
	var usage *nodecli.UsageError
	if errors.As(err, &usage) || fault.KindOf(err) == fault.Invalid {
		return exitBadUsage
	}
	return exitFailure
}

// local is the node's code the commands of package cli run before they
// call the node.
var local = nodecli.Local{
	ParseName: func(text string) (string, string, error) {
		n, err := names.Parse(text)
		if err != nil {
			return "", "", err
		}
		return n.String(), n.Registered().String(), nil
	},
	ParseTarget: func(target string) error {
		_, err := hosting.ParseTarget(target)
		return err
	},
	FormatBytes: content.FormatBytes,
}

func newRootCmd(g *nodecli.Globals) *cobra.Command {
	g.Socket, g.Local = repo.SocketFile, local
	root := &cobra.Command{
		Use:   "avnode",
		Short: "A node of the avtr network: names, records and content with no server",
		Long: `avnode runs a node of a peer-to-peer network with no server. Human names such
as einstein.avtr resolve through a Kademlia DHT to an owner's key, the key to
the machines hosting it, and each machine to its addresses.

One binary is both the daemon and its command line. Start a node with
'avnode run'; every other command talks to the running node of the same repo
through a local control API that only you can use.`,
		Example: `  avnode run                      # start a node in ~/.avnode (created if missing)
  avnode id                       # who am I, where do I listen
  avnode run --repo /tmp/n2 --listen /ip4/127.0.0.1/tcp/0 --bootstrap <addr of another node>
  avnode localnet --nodes 4       # a whole network on this machine`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.Repo, "repo", repo.DefaultDir(), "the node's repo directory (or set AVNODE_REPO)")
	root.PersistentFlags().BoolVar(&g.JSON, "json", false, "print JSON instead of text (read commands)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return nodecli.Usagef("%v", err) })
	root.AddCommand(
		newInitCmd(g), newRunCmd(g), newConfigCmd(g), newVersionCmd(g), newKeyCmd(g),
		newPolicyCmd(g), newLocalnetCmd(g), newBenchCmd(g), newManCmd(),
	)
	root.AddCommand(nodecli.Commands(g)...)
	return root
}
