package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newSatelliteCmd(g *Globals) *cobra.Command {
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
		var raw json.RawMessage
		if err := g.callRole(c, "satellite", name, args, &raw); err != nil {
			return err
		}
		if g.JSON {
			return PrintJSON(raw)
		}
		var st fields
		if err := decodeFields(raw, &st); err != nil {
			return fmt.Errorf("satellite %s: the role answered %s: %w", name, raw, err)
		}
		if st["paired"] != true {
			fmt.Println("not paired: resolve and get go by the DHT")
		} else {
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "name\t%s\nbeacon\t%s\nsince\t%s\n", st.text("name"), st.text("beacon"), st.text("since"))
			w.Flush()
		}
		fmt.Printf("through the beacon %s, fallbacks %s, offloads %s\n", st.number("through_beacon"), st.number("fallbacks"), st.number("offloads"))
		if e := st.text("last_error"); e != "" {
			fmt.Println("last error: " + e)
		}
		return nil
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "pair NAME",
		Short: "Pair with the beacon of NAME, whose owner delegated to this node",
		Long: `pair resolves NAME, checks that its zone delegates to this node (a SAT
record), and asks the name's hosts in turn until its beacon accepts.`,
		Example: "  avnode satellite pair einstein.avtr",
		Args:    ExactArgs(1, "NAME"),
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
			return PrintJSON(out)
		},
	})
	return cmd
}
