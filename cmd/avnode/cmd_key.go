package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli"
	"github.com/avnode/avnode/core/idkey"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/repo"
)

// The keys live in the repo's keystore: these commands work with or
// without a running node.

func newKeyCmd(g *nodecli.Globals) *cobra.Command {
	open := func() (*keystore.Store, error) {
		if !repo.IsInitialized(g.Repo) {
			return nil, fmt.Errorf("no repo at %s; create it with `avnode init --repo %s`", g.Repo, g.Repo)
		}
		return keystore.Open(g.Repo + "/" + repo.KeystoreDir)
	}
	type keyJSON struct {
		Name string `json:"name"`
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	var keyType string
	gen := &cobra.Command{
		Use:   "gen NAME [--type ed25519|hybrid]",
		Short: "Create an identity key in the keystore",
		Long: `gen creates an identity key named NAME in the repo's keystore (a file
readable by you only). An identity key owns names and signs their records.
Its private part is never printed. Works with or without a running node.

--type hybrid makes a post-quantum hybrid key: Ed25519 and ML-DSA-65 (FIPS 204)
together, whose records are valid only if both signatures verify. Its records
are larger (a claim about 7.4 KB, a zone about 15 KB, against 0.2 and 0.5 KB).
A name claimed with an Ed25519 key moves to a hybrid one by avnode key rotate.`,
		Example: "  avnode key gen einstein\n  avnode key gen einstein-pq --type hybrid\n  avnode name claim einstein.avtr --key einstein",
		Args:    nodecli.ExactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, err := open()
			if err != nil {
				return err
			}
			typ, err := idkey.ParseType(keyType)
			if err != nil {
				return err
			}
			k, err := ks.GenerateType(args[0], typ)
			if err != nil {
				return err
			}
			out := keyJSON{Name: k.Name, Type: k.Type, ID: names.KeyID(k.Public)}
			if g.JSON {
				return nodecli.PrintJSON(out)
			}
			fmt.Printf("%s %s\n", out.Name, out.ID)
			return nil
		},
	}
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List the identity keys in the keystore",
		Example: "  avnode key ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := open()
			if err != nil {
				return err
			}
			keys, err := ks.List()
			if err != nil {
				return err
			}
			out := []keyJSON{}
			for _, k := range keys {
				out = append(out, keyJSON{Name: k.Name, Type: k.Type, ID: names.KeyID(k.Public)})
			}
			if g.JSON {
				return nodecli.PrintJSON(out)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tTYPE\tID")
			for _, k := range out {
				fmt.Fprintf(w, "%s\t%s\t%s\n", k.Name, k.Type, k.ID)
			}
			return w.Flush()
		},
	}
	gen.Flags().StringVar(&keyType, "type", "ed25519", "ed25519, or hybrid (Ed25519 + ML-DSA-65, post-quantum)")
	parent := &cobra.Command{Use: "key", Short: "Manage identity keys (they own names and sign records)"}
	parent.AddCommand(gen, ls)
	parent.AddCommand(nodecli.KeyChainCommands(g)...)
	return parent
}
