package cli

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/avnode/avnode/core/api"
)

// KeyChainCommands are the `avnode key` commands that change or show a
// name's key chain through the running node: rotate and recovery.
func KeyChainCommands(g *Globals) []*cobra.Command {
	var to string
	rotate := &cobra.Command{
		Use:   "rotate NAME --to NEWKEY",
		Short: "Hand a name you own to another identity key, keeping the name",
		Long: `rotate moves NAME from its current key to the keystore key NEWKEY. Both keys
must be in this node's keystore. The node signs a rotation with the current key
and with NEWKEY (proving it holds it), then publishes a zone signed by NEWKEY
that carries the rotation. Holders and resolvers follow it, including those
that knew the old key, and from then on refuse zones signed by the old key.
A name rotates at most 8 times. Use it to retire an old key, or to move an
Ed25519 name to a post-quantum hybrid key (avnode key gen NEW --type hybrid).`,
		Example: "  avnode key gen einstein-2025 --type hybrid\n  avnode key rotate einstein.avtr --to einstein-2025",
		Args:    ExactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.keyChainCall(cmd, "POST", "/v1/key/rotate", url.Values{"name": {args[0]}, "to": {to}})
		},
	}
	rotate.Flags().StringVar(&to, "to", "", "the keystore key the name moves to (required)")
	rotate.MarkFlagRequired("to")

	var rescue, current string
	set := &cobra.Command{
		Use:   "set NAME --recovery-key KEY",
		Short: "Commit a name to a recovery key",
		Long: `set commits NAME to the keystore key KEY as its recovery key: the key that can
take the name back if its own key is lost or stolen (avnode name recover). Only
the key's hash is published. Where no recovery key is set, the name's own key
signs the commitment; once one is set, only the current recovery key can change
it (--current-recovery-key), so a thief of the name's key cannot. Keep the
recovery key away from the machine that holds the name's key: generate it here,
commit to it, then export the key file to offline storage.`,
		Example: "  avnode key gen einstein-rescue\n  avnode key recovery set einstein.avtr --recovery-key einstein-rescue",
		Args:    ExactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"name": {args[0]}, "recovery_key": {rescue}, "current_recovery_key": {current}}
			return g.keyChainCall(cmd, "POST", "/v1/key/recovery/set", q)
		},
	}
	set.Flags().StringVar(&rescue, "recovery-key", "", "the keystore key to commit to (required)")
	set.Flags().StringVar(&current, "current-recovery-key", "", "the recovery key in force, when changing it")
	set.MarkFlagRequired("recovery-key")
	show := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a name's key, its rotations and its recovery commitment",
		Example: "  avnode key recovery show einstein.avtr --json",
		Args:    ExactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.keyChainCall(cmd, "GET", "/v1/key/recovery/show", url.Values{"name": {args[0]}})
		},
	}
	recovery := &cobra.Command{Use: "recovery", Short: "Set or show a name's recovery key"}
	recovery.AddCommand(set, show)
	return []*cobra.Command{rotate, recovery}
}

func newRecoverCmd(g *Globals) *cobra.Command {
	var rescue, to string
	var after int
	recover := &cobra.Command{
		Use:   "recover NAME --recovery-key KEY --to NEWKEY",
		Short: "Take a name back with its recovery key",
		Long: `recover hands NAME to the keystore key NEWKEY with the recovery key the name
commits to (set at claim time with --recovery-key, or by avnode key recovery
set). The name's lost or stolen key is not needed. Holders prefer a recovery
over any rotation made from the same point, so a thief who rotated the name
with a stolen key loses it everywhere, however many rotations it made.
By default the recovery goes after the last rotation this node made itself (or
at the end of the chain it knows); --after N puts it right after step N (0:
right after the claim; see avnode key recovery show).`,
		Example: "  avnode name recover einstein.avtr --recovery-key einstein-rescue --to einstein-new",
		Args:    ExactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"name": {args[0]}, "recovery_key": {rescue}, "to": {to}}
			if cmd.Flags().Changed("after") {
				q.Set("after", strconv.Itoa(after))
			}
			return g.keyChainCall(cmd, "POST", "/v1/name/recover", q)
		},
	}
	recover.Flags().StringVar(&rescue, "recovery-key", "", "the keystore key the name commits to as its recovery key (required)")
	recover.Flags().StringVar(&to, "to", "", "the keystore key the name moves to (required)")
	recover.Flags().IntVar(&after, "after", 0, "keep the chain up to this step and recover after it")
	recover.MarkFlagRequired("recovery-key")
	recover.MarkFlagRequired("to")
	return recover
}

func (g *Globals) keyChainCall(cmd *cobra.Command, method, path string, q url.Values) error {
	var k api.KeyChain
	if err := g.call(cmd.Context(), method, path, q, &k); err != nil {
		return err
	}
	if g.JSON {
		return PrintJSON(k)
	}
	fmt.Printf("%s  key %s (%s)  claimed by %s\n", k.Name, k.Key, k.KeyType, k.Claimed)
	switch {
	case k.Recovery == "":
		fmt.Println("recovery: none (set one with `avnode key recovery set`)")
	case k.RecoveryKey != "":
		fmt.Printf("recovery: %s (keystore key %s)\n", k.Recovery, k.RecoveryKey)
	default:
		fmt.Printf("recovery: %s\n", k.Recovery)
	}
	if len(k.Steps) > 0 {
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "STEP\tKIND\tKEY\tTYPE")
		for _, s := range k.Steps {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", s.Index, s.Kind, s.Key, s.KeyType)
		}
		w.Flush()
	}
	if k.Seq > 0 {
		fmt.Printf("published at sequence %d\n", k.Seq)
	}
	return nil
}
