package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli"
	"github.com/avnode/avnode/core/daemon"
)

func newVersionCmd(g *nodecli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print avnode's version (works without a running node)",
		Example: "  avnode version --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := daemon.Version()
			if g.JSON {
				return nodecli.PrintJSON(v)
			}
			fmt.Printf("avnode %s (%s %s/%s)\n", v.Version, v.Go, v.OS, v.Arch)
			return nil
		},
	}
}

func peerIDOf(key crypto.PrivKey) (string, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// printYAML prints a value through its JSON form, so the keys are the config's.
func printYAML(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		return err
	}
	enc := yaml.NewEncoder(os.Stdout)
	enc.SetIndent(2)
	return enc.Encode(generic)
}
