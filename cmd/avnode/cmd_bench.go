package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli"
	"github.com/avnode/avnode/core/bench"
)

func newBenchCmd(g *nodecli.Globals) *cobra.Command {
	var opts bench.Options
	var out string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a network of N nodes on this machine, each number beside its baseline",
		Long: `bench starts a network of --nodes whole avnode nodes in this process, on
127.0.0.1 over TCP, each with its repo on disk in a temporary folder; and,
before it, a network of as many bare libp2p hosts running kad-dht, the layer
avnode is built on. It measures both the same way and prints one row per
measure: avnode's number, the baseline's, and their ratio (avnode ÷ baseline;
below 1 avnode did better).

  resolve cold        a name from a node that never saw it, all layers
                      (zone, claim, records, host addresses) vs a bare
                      GetValue; through the node's control API, as
                      'avnode resolve' asks it
  ..., baseline      the same resolves vs bare gets that wait for as many
  waiting for a       values as avnode's poll waits for votes (11 of the
  majority            20 closest): what the ownership rule's evidence costs
                      alone
  resolve warm        the same again from the same node
  publish             'avnode record set' through the control API: a signed
                      zone put to the DHT vs a bare PutValue, with how many
                      of the 20 closest peers stored it
  ..., in-process     the same without the control API (naming's own calls)
  fetch               --fetch-mib MiB from one source vs one bare libp2p
                      stream copied into a synced file (and into memory);
                      from three sources vs from one
  churn               --kill of the nodes stopped at once, then every name
                      resolved; and --restarting of them restarting in a loop
                      for --restart-for while names are resolved: success %
  time to ready       a new node from start to its first resolve
  memory, goroutines  per node, the Go heap in use
  idle CPU            per node, over --idle-for with nothing asked of the
                      network: its own upkeep

Nothing leaves the machine. The connection manager keeps the network's
open files under 20,000. It takes a few minutes for 100 nodes; progress goes
to stderr. The README explains how to read the table.`,
		Example: `  avnode bench                            # 100 nodes, the table
  avnode bench --nodes 30 --json          # smaller, as JSON
  avnode bench --out /tmp/bench           # also bench.json, latency.svg and latency.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Nodes < 8 || opts.Nodes > 500 {
				return nodecli.Usagef("--nodes must be between 8 and 500, got %d", opts.Nodes)
			}
			if opts.KillShare <= 0 || opts.KillShare >= 0.9 || opts.Restarting <= 0 || opts.Restarting >= 0.5 {
				return nodecli.Usagef("--kill must be in (0, 0.9) and --restarting in (0, 0.5)")
			}
			if opts.IdleFor < time.Second {
				return nodecli.Usagef("--idle-for must be at least 1s, got %s", opts.IdleFor)
			}
			if opts.FetchMiB < 1 {
				return nodecli.Usagef("--fetch-mib must be at least 1")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts.Progress = cmd.ErrOrStderr()
			rep, err := bench.Run(ctx, opts)
			if err != nil {
				return err
			}
			if out != "" {
				if err := bench.WriteFiles(rep, out); err != nil {
					return err
				}
			}
			if g.JSON {
				return nodecli.PrintJSON(rep)
			}
			return bench.PrintTable(cmd.OutOrStdout(), rep)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Nodes, "nodes", 100, "nodes in the network (and in the baseline's)")
	f.IntVar(&opts.Names, "names", 0, "names published and resolved (default: one per node)")
	f.IntVar(&opts.FetchMiB, "fetch-mib", 64, "size of the file fetched, in MiB")
	f.Float64Var(&opts.KillShare, "kill", 0.3, "share of the nodes killed at once for the churn row")
	f.Float64Var(&opts.Restarting, "restarting", 0.1, "share of the nodes restarting in a loop")
	f.DurationVar(&opts.RestartFor, "restart-for", 20e9, "how long the restart loop runs")
	f.DurationVar(&opts.IdleFor, "idle-for", 10e9, "how long each network is left idle to measure its CPU")
	f.IntVar(&opts.ReadyTrials, "ready-trials", 3, "new nodes timed from start to first resolve")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the random picks of nodes and names")
	f.StringVar(&opts.Dir, "dir", "", "where the temporary repos go (default: the system's temp folder)")
	f.StringVar(&out, "out", "", "folder to write bench.json, latency.svg and latency.png into")
	return cmd
}
