package cli

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/avnode/avnode/core/api"
)

func newIDCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "id",
		Short: "Show the running node's peer ID, addresses, roles and reachability",
		Long: `id asks the running node who it is. addrs are full multiaddrs ending in
/p2p/<peer id>: give one to another node's --bootstrap to join it.
reachability is AutoNAT's verdict (or nat.reachability): unknown, public or
private. relay_addrs are the /p2p-circuit addresses a private node holds
through relay reservations; they are among addrs too.`,
		Example: `  avnode id
  avnode id --json | jq -r '.addrs[0]'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var info api.Info
			if err := g.call(cmd.Context(), "GET", "/v1/id", nil, &info); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(info)
			}
			var running []string
			for _, r := range info.Roles {
				running = append(running, fmt.Sprintf("%s (%s)", r, OrDash(info.RoleStates[r])))
			}
			roles := strings.Join(running, ", ")
			if roles == "" {
				roles = "(none)"
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "peer id\t%s\nagent\t%s\nroles\t%s\nreachability\t%s\ndht mode\t%s\nuptime\t%s\n",
				info.PeerID, info.Agent, roles, info.Reachability, info.DHTMode, info.Uptime)
			for _, name := range slices.Sorted(maps.Keys(info.Services)) {
				fmt.Fprintf(w, "%s\t%s\n", name, info.Services[name])
			}
			if info.Metrics != "" {
				fmt.Fprintf(w, "metrics\t%s\n", info.Metrics)
			}
			if info.Dashboard != "" {
				fmt.Fprintf(w, "dashboard\t%s (open it with `avnode dashboard`)\n", info.Dashboard)
			}
			w.Flush()
			fmt.Println("addresses")
			for _, a := range info.Addrs {
				fmt.Println("  " + a)
			}
			if len(info.RelayAddrs) > 0 {
				fmt.Printf("through %d relay address(es)\n", len(info.RelayAddrs))
			}
			return nil
		},
	}
}

func newDashboardCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "dashboard",
		Short: "Print the address that opens the node's local dashboard in a browser",
		Long: `dashboard asks the running node for its web page's address with a fresh
one-time code, and prints it: open it in a browser on this machine. The page
shows the node's status and reachability, its peers (latency, relayed or
direct), the names it owns and how republishing them goes, mirrors and
copies, roles with their state and restarts, content stored and pins, recent
policy refusals, and live charts.

The dashboard listens on dashboard.listen, a loopback address (default
127.0.0.1:5180; the next free port when another node holds it). It answers
only this machine's user running the node, only at that address (not at
localhost:PORT), and shows data only to a page opened with a code: a code
works once, within 5 minutes, and keeps its tab signed in. Run the command
again for another tab. Keep the code off other users' sight: a command line
(xdg-open URL) is readable by every user of the machine in /proc.`,
		Example: `  avnode dashboard                 # then open the address it prints
  avnode dashboard --json          # {"url": …, "expires": …}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var login api.DashboardLogin
			if err := g.call(cmd.Context(), "POST", "/v1/dashboard/login", nil, &login); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(login)
			}
			fmt.Println(login.URL)
			fmt.Fprintf(os.Stderr, "open it in a browser on this machine before %s; the code works once\n", login.Expires.Format("15:04:05"))
			return nil
		},
	}
}

func newPeersCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "peers",
		Short:   "List the peers the running node is connected to",
		Example: "  avnode peers\n  avnode peers --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var peers []api.PeerInfo
			if err := g.call(cmd.Context(), "GET", "/v1/peers", nil, &peers); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(peers)
			}
			if len(peers) == 0 {
				fmt.Println("no peers connected")
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "PEER\tDIRECTION\tLATENCY\tAGENT\tADDRESS")
			for _, p := range peers {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Direction, p.Latency, p.Agent, strings.Join(p.Addrs, " "))
			}
			return w.Flush()
		},
	}
}

func newRoutingCmd(g *Globals) *cobra.Command {
	var timeout string
	findpeer := &cobra.Command{
		Use:   "findpeer PEERID",
		Short: "Find a peer's addresses through the DHT",
		Long: `findpeer walks the Kademlia DHT for a peer ID and prints the addresses
found (layer 3 of name resolution). Exits 1 if the peer cannot be found.`,
		Example: "  avnode routing findpeer 12D3KooWAbc...",
		Args:    ExactArgs(1, "PEERID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.FindPeerResult
			q := url.Values{"peer": {args[0]}, "timeout": {timeout}}
			if err := g.call(cmd.Context(), "GET", "/v1/routing/findpeer", q, &res); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res)
			}
			for _, a := range res.Addrs {
				fmt.Println(a)
			}
			return nil
		},
	}
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Get a record's value from the DHT",
		Long: `get looks a key up in the DHT (this node's store first) and writes the best
valid value to stdout as raw bytes, or as base64 in --json. Exits 1 if not found.`,
		Example: "  avnode routing get /pk/12D3KooWAbc... > key.pub",
		Args:    ExactArgs(1, "KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.RoutingValue
			q := url.Values{"key": {args[0]}, "timeout": {timeout}}
			if err := g.call(cmd.Context(), "GET", "/v1/routing/get", q, &res); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res)
			}
			_, err := os.Stdout.Write(res.Value)
			return err
		},
	}
	put := &cobra.Command{
		Use:   "put KEY FILE",
		Short: "Store a record in the DHT (FILE, or - for stdin)",
		Long: `put validates a record and stores it on the peers closest to its key, and in
this node's own store. Invalid records are refused before anything is sent.`,
		Example: "  avnode routing put /pk/12D3KooWAbc... key.pub",
		Args:    ExactArgs(2, "KEY FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := readInput(args[1])
			if err != nil {
				return err
			}
			q := url.Values{"key": {args[0]}, "timeout": {timeout}}
			client := g.client()
			var res api.RoutingValue
			if err := client.Call(cmd.Context(), "POST", "/v1/routing/put", q, bytes.NewReader(value), &res); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res)
			}
			fmt.Printf("stored %s (%d bytes)\n", args[0], len(value))
			return nil
		},
	}
	for _, c := range []*cobra.Command{findpeer, get, put} {
		c.Flags().StringVar(&timeout, "timeout", "", "give up after this long (e.g. 10s; default 30s, 60s for put)")
	}
	parent := &cobra.Command{Use: "routing", Short: "Ask the DHT directly: find peers, get and put records"}
	parent.AddCommand(findpeer, get, put)
	return parent
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}
