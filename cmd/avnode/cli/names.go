package cli

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/avnode/avnode/core/api"
)

func newNameCmd(g *Globals) *cobra.Command {
	var key, rescue string
	claim := &cobra.Command{
		Use:   "claim NAME",
		Short: "Claim a name for an identity key, for good",
		Long: `claim binds NAME (label.topic, e.g. einstein.avtr; an://einstein:avtr also works)
to an identity key. It computes the network's proof of work, asks the 20 DHT
peers closest to the name to hold the claim (each holds only the first claim
it is asked to, and refuses any other key), and once a majority of them does,
stores the claim and an empty zone. Once held, a name cannot be taken by
another key: every node that knows its owner refuses records by any other,
and says so: "NAME is held by key k51…; refused a record by key k51…".
With --recovery-key, the claim commits to a second key that can take the name
back if its key is lost or stolen (avnode name recover); keep that key offline.`,
		Example: "  avnode key gen einstein\n  avnode key gen einstein-rescue\n  avnode name claim einstein.avtr --key einstein --recovery-key einstein-rescue",
		Args:    ExactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.ClaimResult
			q := url.Values{"name": {args[0]}, "key": {key}, "recovery_key": {rescue}}
			if err := g.callWithProgress(cmd.Context(), "/v1/name/claim", q, &res); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res)
			}
			if res.Resumed {
				fmt.Printf("%s was claimed for key %s already; this node now owns it and has published its zone\n", res.Name, res.Key)
				return nil
			}
			fmt.Printf("claimed %s for key %s\nheld by %d of the %d closest peers (proof of work took %s)\n",
				res.Name, res.Key, res.Holders, res.Asked, res.MintTime)
			return nil
		},
	}
	claim.Flags().StringVar(&key, "key", "default", "the identity key (see 'avnode key ls')")
	claim.Flags().StringVar(&rescue, "recovery-key", "", "a keystore key that can recover the name (only its hash is published)")
	parent := &cobra.Command{Use: "name", Short: "Claim and recover names (layer 1: name to identity key)"}
	parent.AddCommand(claim, newRecoverCmd(g))
	return parent
}

func newRecordCmd(g *Globals) *cobra.Command {
	var label, ttl string
	change := func(path string) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			q := url.Values{"name": {args[0]}, "type": {args[1]}, "label": {label}, "ttl": {ttl}}
			if len(args) > 2 {
				q.Set("value", args[2])
			}
			var info api.ZoneInfo
			if err := g.call(cmd.Context(), "POST", path, q, &info); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(info)
			}
			fmt.Printf("%s now at sequence %d, published\n", info.Name, info.Seq)
			return nil
		}
	}
	set := &cobra.Command{
		Use:   "set NAME TYPE VALUE",
		Short: "Set a record in a name's zone and republish it",
		Long: `set adds or replaces a record in the zone of a name you own, bumps the
zone's sequence, signs it and publishes it. Types: ROOT (content CID), HOST
(peer ID of a machine hosting the name; several allowed), A (a label's peer ID
or multiaddr), CNAME (alias to another name), TXT (text; several allowed),
SAT (peer ID of a satellite the owner authorizes; several allowed).
A sub-label is a record in the parent's zone: --label api, or name it
directly as api.coolblog.code.`,
		Example: `  avnode record set coolblog.code A /ip4/192.0.2.1/tcp/4001 --label api
  avnode record set coolblog.code HOST 12D3KooW...
  avnode record set www.coolblog.code CNAME coolblog.code`,
		Args: ExactArgs(3, "NAME TYPE VALUE"),
		RunE: change("/v1/record/set"),
	}
	rm := &cobra.Command{
		Use:   "rm NAME TYPE [VALUE]",
		Short: "Remove records of a type from a name's zone and republish it",
		Long: `rm removes the records of a type (and --label) from the zone of a name you
own; with VALUE, only that one (one HOST among several, one TXT).`,
		Example: "  avnode record rm coolblog.code A --label api\n  avnode record rm coolblog.code HOST 12D3KooW...",
		Args:    RangeArgs(2, 3, "NAME TYPE [VALUE]"),
		RunE:    change("/v1/record/rm"),
	}
	for _, c := range []*cobra.Command{set, rm} {
		c.Flags().StringVar(&label, "label", "", "the sub-label the record is for (e.g. api)")
		c.Flags().StringVar(&ttl, "ttl", "", "how long resolvers may cache the zone from now on (e.g. 5m)")
	}
	ls := &cobra.Command{
		Use:     "ls NAME",
		Short:   "List a name's records",
		Example: "  avnode record ls coolblog.code --json",
		Args:    ExactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var info api.ZoneInfo
			if err := g.call(cmd.Context(), "GET", "/v1/record/ls", url.Values{"name": {args[0]}}, &info); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(info)
			}
			fmt.Printf("%s  key %s  seq %d  expires %s  ttl %s\n", info.Name, info.Key, info.Seq, info.Expires.Format("2006-01-02 15:04:05Z"), info.TTL)
			printRecords(info.Records)
			return nil
		},
	}
	parent := &cobra.Command{Use: "record", Short: "Edit a name's zone (layer 2: key to hosts and records)"}
	parent.AddCommand(set, rm, ls)
	return parent
}

func printRecords(rs []api.RecordInfo) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TYPE\tLABEL\tVALUE")
	for _, r := range rs {
		label := r.Label
		if label == "" {
			label = "@"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Type, label, r.Value)
	}
	w.Flush()
}

func newResolveCmd(g *Globals) *cobra.Command {
	var copies bool
	cmd := &cobra.Command{
		Use:   "resolve NAME",
		Short: "Resolve a name: its owner's key, records, hosts and their addresses",
		Long: `resolve walks all three layers: the name's signed zone (which carries the
owner's certified claim), the records for the name or its sub-label (following
CNAMEs), and each host's current addresses through the DHT. Exits 1 with "not
found" for an unknown name.

--copies also lists the mirrors that attested to holding this version: one
more DHT search (up to 2 s; its answer is reused for 10 s).

--json prints: name, key, seq, expires, records (type, label, value),
hosts (peer_id, addrs), root, via (the CNAME chain, if any), copies (with
--copies) and copies_wanted (the owner's target: a TXT record copies=N in
the zone).`,
		Example: "  avnode resolve einstein.avtr\n  avnode resolve an://api.coolblog:code --json\n  avnode resolve einstein.avtr --copies",
		Args:    ExactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.Resolution
			q := url.Values{"name": {args[0]}}
			if copies {
				q.Set("copies", "1")
			}
			if err := g.call(cmd.Context(), "GET", "/v1/resolve", q, &res); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res)
			}
			fmt.Printf("%s  key %s (%s)  seq %d  expires %s\n", res.Name, res.Key, res.KeyType, res.Seq, res.Expires.Format("2006-01-02 15:04:05Z"))
			if res.Rotations > 0 {
				fmt.Printf("key rotated %d times since the claim (avnode key recovery show %s)\n", res.Rotations, res.Name)
			}
			if len(res.Via) > 0 {
				fmt.Printf("via %s\n", strings.Join(res.Via, " -> "))
			}
			printRecords(res.Records)
			for _, h := range res.Hosts {
				fmt.Printf("host %s %s\n", h.PeerID, strings.Join(h.Addrs, " "))
			}
			switch {
			case copies:
				fmt.Printf("copies %d of %d wanted: %s\n", len(res.Copies), res.CopiesWanted, strings.Join(res.Copies, " "))
			case res.CopiesWanted > 0:
				fmt.Printf("copies wanted %d (--copies lists the mirrors that hold this version)\n", res.CopiesWanted)
			}
			if res.Disputed != "" {
				fmt.Fprintf(os.Stderr, "warning: the name's closest holders disagree on its owner (%s); this node now trusts the key most of them hold\n", res.Disputed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&copies, "copies", false, "also list the mirrors that attested to holding this version (one more DHT search)")
	return cmd
}
