package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// satelliteStatus is what the satellite role answers to pair, unpair and status.
type satelliteStatus struct {
	Paired        bool   `json:"paired"`
	Name          string `json:"name"`
	Beacon        string `json:"beacon"`
	Since         string `json:"since"`
	ThroughBeacon int    `json:"through_beacon"`
	Fallbacks     int    `json:"fallbacks"`
	Offloads      int    `json:"offloads"`
	LastError     string `json:"last_error"`
}

func newSatelliteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "satellite",
		Short: "Lean on your beacon from a light device (the satellite role)",
		Long: `satellite drives the satellite role of the running node (run it with
--roles satellite, --dht.mode client and --content.serve=false, as
configs/phone-satellite.yaml does). Once paired with the beacon of a name whose
owner delegated to this node, 'avnode resolve' and 'avnode get' go through the
beacon over a libp2p protocol, falling back to the DHT when it does not answer,
and 'offload' hands work to a role on the beacon.

The owner first delegates, on the beacon:
  avnode roles call beacon delegate NAME SATELLITE_PEER_ID`,
		Example: "  avnode satellite pair einstein.avtr\n  avnode satellite status --json\n" +
			"  avnode satellite offload chat '{\"prompt\": \"hello\"}'\n  avnode satellite unpair",
	}
	show := func(c *cobra.Command, name string, args []string) error {
		var st satelliteStatus
		if err := g.callRole(c, "satellite", name, args, &st); err != nil {
			return err
		}
		if g.json {
			return printJSON(st)
		}
		if !st.Paired {
			fmt.Println("not paired: resolve and get go by the DHT")
		} else {
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "name\t%s\nbeacon\t%s\nsince\t%s\n", st.Name, st.Beacon, st.Since)
			w.Flush()
		}
		fmt.Printf("through the beacon %d, fallbacks %d, offloads %d\n", st.ThroughBeacon, st.Fallbacks, st.Offloads)
		if st.LastError != "" {
			fmt.Println("last error: " + st.LastError)
		}
		return nil
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "pair NAME",
		Short: "Pair with the beacon of NAME, whose owner delegated to this node",
		Long: `pair resolves NAME, checks that its zone delegates to this node (a SAT
record), and asks the name's hosts in turn until its beacon accepts.`,
		Example: "  avnode satellite pair einstein.avtr",
		Args:    exactArgs(1, "NAME"),
		RunE:    func(c *cobra.Command, args []string) error { return show(c, "pair", args) },
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "unpair",
		Short:   "Forget the beacon: resolve and get go by the DHT",
		Example: "  avnode satellite unpair",
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return show(c, "unpair", nil) },
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "status",
		Short:   "Show the pairing and how many requests the beacon answered",
		Example: "  avnode satellite status --json",
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return show(c, "status", nil) },
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "offload SERVICE [JSON]",
		Short: "Hand work to the role SERVICE on the beacon and print its answer",
		Long: `offload sends JSON (default {}) to the beacon, which runs the command
'offload' of its role SERVICE and sends back the answer. Plugins on this node do
the same with CallRole("satellite", "offload", SERVICE, JSON).`,
		Example: "  avnode satellite offload chat '{\"prompt\": \"hello\"}'",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			var out json.RawMessage
			if err := g.callRole(c, "satellite", "offload", args, &out); err != nil {
				return err
			}
			return printJSON(out)
		},
	})
	return cmd
}
