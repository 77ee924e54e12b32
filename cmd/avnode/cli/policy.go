package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/avnode/avnode/core/api"
)

// NewPolicyLsCmd is `avnode policy ls`.
func NewPolicyLsCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Short:   "List the running node's policy scripts and their hooks",
		Example: "  avnode policy ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var scripts []api.ScriptInfo
			if err := g.call(cmd.Context(), "GET", "/v1/policy", nil, &scripts); err != nil {
				return err
			}
			return printScripts(g, scripts)
		},
	}
}

// NewPolicyReloadCmd is `avnode policy reload`.
func NewPolicyReloadCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Reload the running node's policy scripts from their files",
		Long: `reload re-reads every script in policy.scripts. If any fails to load, none is
swapped: the node keeps the scripts it has and the command prints why.
Edited scripts are also reloaded by themselves (policy.watch_interval).`,
		Example: "  avnode policy reload",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var scripts []api.ScriptInfo
			if err := g.call(cmd.Context(), "POST", "/v1/policy/reload", nil, &scripts); err != nil {
				return err
			}
			return printScripts(g, scripts)
		},
	}
}

func printScripts(g *Globals, scripts []api.ScriptInfo) error {
	if g.JSON {
		return PrintJSON(scripts)
	}
	if len(scripts) == 0 {
		fmt.Println("no policy scripts (config policy.scripts)")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SCRIPT\tHOOKS\tSHA256")
	for _, s := range scripts {
		fmt.Fprintf(w, "%s\t%s\t%.12s\n", s.Path, strings.Join(s.Hooks, ","), s.SHA256)
	}
	return w.Flush()
}
