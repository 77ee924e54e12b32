// Command avnode is the avnode daemon and its command line: one binary that
// runs a node (`avnode run`) and drives a running one through its local
// control API (every other command).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/policy"
	"github.com/avnode/avnode/core/repo"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // the command ran and failed, e.g. a name was not found
	exitBadUsage = 2 // wrong flags or arguments
)

// globals are the flags every command takes.
type globals struct {
	repo string
	json bool
}

func main() {
	policy.MaybeRunWorker() // this binary is also the sandbox that runs Lua policies
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	g := &globals{}
	root := newRootCmd(g)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "avnode: %v\n", err)
	var usage *usageError
	var apiErr *api.Error
	invalid := errors.As(err, &apiErr) && apiErr.Invalid
	if invalid || errors.As(err, &usage) || cmd.Flags().Parsed() == false {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitBadUsage
	}
	return exitFailure
}

// usageError marks a wrong argument, reported with exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func newRootCmd(g *globals) *cobra.Command {
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
	root.PersistentFlags().StringVar(&g.repo, "repo", repo.DefaultDir(), "the node's repo directory (or set AVNODE_REPO)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON instead of text (read commands)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usagef("%v", err) })
	root.AddCommand(
		newInitCmd(g), newRunCmd(g), newConfigCmd(g),
		newIDCmd(g), newPeersCmd(g), newVersionCmd(g), newRoutingCmd(g),
		newKeyCmd(g), newNameCmd(g), newRecordCmd(g), newResolveCmd(g),
		newPublishCmd(g), newGetCmd(g), newRepoCmd(g),
		newRolesCmd(g), newPluginsCmd(g), newPolicyCmd(g), newMirrorCmd(g), newSatelliteCmd(g),
		newLocalnetCmd(g), newBenchCmd(g),
	)
	return root
}

// call performs one control API call against the daemon of g.repo.
func (g *globals) call(ctx context.Context, method, path string, query url.Values, out any) error {
	return api.NewClient(g.repo, repo.SocketFile).Call(ctx, method, path, query, nil, out)
}

// printJSON writes v as indented JSON to stdout.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
