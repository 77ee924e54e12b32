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

func newRolesCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "roles",
		Short: "Show the node's roles: state, pid, restarts, version, last error",
		Long: `roles lists the roles this node runs as plugin processes (config 'roles', or
'avnode roles enable'), and installed plugins that are not enabled. States:
starting, running, backoff (crashed, restarting soon), failed (will not be
restarted: see last_error), stopped, disabled, not installed.`,
		Example: "  avnode roles\n  avnode roles --json\n  avnode roles enable pinner",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var roles []api.RoleStatus
			if err := g.call(cmd.Context(), "GET", "/v1/roles", nil, &roles); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(roles)
			}
			if len(roles) == 0 {
				fmt.Println("no roles enabled and no plugins installed")
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "ROLE\tSTATE\tPID\tRESTARTS\tVERSION\tLAST ERROR")
			for _, r := range roles {
				pid := "-"
				if r.PID > 0 {
					pid = fmt.Sprint(r.PID)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, r.State, pid, r.Restarts, r.Version, r.LastError)
			}
			return w.Flush()
		},
	}
	toggle := func(verb, path string) *cobra.Command {
		return &cobra.Command{
			Use:     verb + " ROLE",
			Short:   strings.ToUpper(verb[:1]) + verb[1:] + " a role on the running node",
			Example: fmt.Sprintf("  avnode roles %s pinner", verb),
			Args:    ExactArgs(1, "ROLE"),
			RunE: func(cmd *cobra.Command, args []string) error {
				var res api.RoleState
				if err := g.call(cmd.Context(), "POST", path, url.Values{"name": {args[0]}}, &res); err != nil {
					return err
				}
				if g.JSON {
					return PrintJSON(res)
				}
				fmt.Printf("role %s: %s\n", res.Role, res.State)
				return nil
			},
		}
	}
	cmd.AddCommand(toggle("enable", "/v1/roles/enable"), toggle("disable", "/v1/roles/disable"), newRolesCallCmd(g))
	return cmd
}

func newPluginsCmd(g *Globals) *cobra.Command {
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List the role plugins installed in the plugin folders",
		Example: "  avnode plugins ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list []api.PluginInfo
			if err := g.call(cmd.Context(), "GET", "/v1/plugins", nil, &list); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(list)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "ROLE\tPATH")
			for _, p := range list {
				fmt.Fprintf(w, "%s\t%s\n", p.Role, p.Path)
			}
			return w.Flush()
		},
	}
	describe := &cobra.Command{
		Use:     "describe ROLE",
		Short:   "Show what a plugin says about itself: version, protocol, capabilities, config schema",
		Example: "  avnode plugins describe pinner",
		Args:    ExactArgs(1, "ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d api.PluginDescription
			if err := g.call(cmd.Context(), "GET", "/v1/plugins/describe", url.Values{"name": {args[0]}}, &d); err != nil {
				return err
			}
			return PrintJSON(d)
		},
	}
	parent := &cobra.Command{Use: "plugins", Short: "Inspect installed role plugins"}
	parent.AddCommand(ls, describe)
	return parent
}
