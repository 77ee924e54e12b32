package cli

import (
	"fmt"
	"net/url"
	"os"
	"slices"
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
			fmt.Fprintln(w, "ROLE\tSTATE\tPID\tRESTARTS\tVERSION\tSANDBOX\tLAST ERROR")
			for _, r := range roles {
				pid := "-"
				if r.PID > 0 {
					pid = fmt.Sprint(r.PID)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Name, r.State, pid, r.Restarts, r.Version, r.Sandbox, r.LastError)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			for _, r := range roles {
				printMissingGrants(r.Name, r.MissingGrants)
			}
			return nil
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
				if res.SavedIn != "" {
					fmt.Printf("saved in %s (roles), so it lasts across restarts\n", res.SavedIn)
				}
				printMissingGrants(res.Role, res.MissingGrants)
				return nil
			},
		}
	}
	cmd.AddCommand(toggle("enable", "/v1/roles/enable"), toggle("disable", "/v1/roles/disable"), newRolesCallCmd(g))
	return cmd
}

// printMissingGrants says which asked-for permissions a role runs without,
// and how to grant them.
func printMissingGrants(role string, missing []string) {
	if len(missing) == 0 {
		return
	}
	fmt.Printf("role %s runs without %s (asked for, not granted: those calls are refused);\n  if you trust it with them: avnode plugins grant %s %s\n",
		role, strings.Join(missing, ", "), role, quoteArgs(missing))
}

func quoteArgs(list []string) string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = "'" + s + "'"
	}
	return strings.Join(out, " ")
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
		Use:   "describe ROLE",
		Short: "Show what a plugin says about itself, and the permissions it asks for against those granted",
		Long: `describe runs the plugin's own describe (after its checksum check) and shows its
version, protocol, capabilities and config schema, then the host-API permissions
it asks for, those the role is granted (plugins.grants plus 'avnode plugins
grant'), and those it asks for and was not granted.`,
		Example: "  avnode plugins describe pinner\n  avnode plugins describe pinner --json",
		Args:    ExactArgs(1, "ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d api.PluginDescription
			if err := g.call(cmd.Context(), "GET", "/v1/plugins/describe", url.Values{"name": {args[0]}}, &d); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(d)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "role\t%s\nversion\t%s\nprotocol\t%d\nsummary\t%s\npath\t%s\ncapabilities\t%s\n",
				d.Name, d.Version, d.ProtocolVersion, d.Summary, d.Path, strings.Join(d.Capabilities, " "))
			fmt.Fprintln(w, "\nPERMISSION\tASKED\tGRANTED")
			for _, row := range permissionRows(d) {
				fmt.Fprintln(w, row)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			printMissingGrants(d.Name, d.MissingGrants)
			return nil
		},
	}
	grant := grantCmd(g, "grant", "Give a role host-API permissions (kept in the repo, applied at once)",
		`grant adds permissions to a role's grants, on top of plugins.grants in the config.
The change applies to the running role at once and is kept in the repo's
grants.json. Each permission is a name and, for most, a scope where '*' matches
anything: names.resolve, zone.write:alice.avtr, pubsub:avtr/name/*. The sdk's
README lists them all ("Permissions").`,
		"  avnode plugins grant pinner content.fetch content.pin\n  avnode plugins grant blog 'zone.write:*.blog'")
	revoke := grantCmd(g, "revoke", "Take host-API permissions from a role (kept in the repo, applied at once)",
		`revoke takes grants from a role, whether they came from the config or from
'avnode plugins grant'. Name a grant as 'avnode plugins describe ROLE' lists it:
revoking zone.write:bob.avtr does not narrow a grant of zone.write:*.`,
		"  avnode plugins revoke mirror content.unpin")
	parent := &cobra.Command{Use: "plugins", Short: "Inspect installed role plugins and grant them permissions"}
	parent.AddCommand(ls, describe, grant, revoke)
	return parent
}

// permissionRows lines up what a plugin asks for with what its role holds.
func permissionRows(d api.PluginDescription) []string {
	var rows []string
	for _, p := range d.Permissions {
		granted := "yes"
		if slices.Contains(d.MissingGrants, p) {
			granted = "NO"
		}
		rows = append(rows, p+"\tyes\t"+granted)
	}
	for _, p := range d.Granted {
		if !slices.Contains(d.Permissions, p) {
			rows = append(rows, p+"\t-\tyes")
		}
	}
	return rows
}

func grantCmd(g *Globals, verb, short, long, example string) *cobra.Command {
	return &cobra.Command{
		Use:     verb + " ROLE PERMISSION...",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    RangeArgs(2, 1<<20, "ROLE PERMISSION..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.Grants
			q := url.Values{"name": {args[0]}, "perm": args[1:]}
			if err := g.call(cmd.Context(), "POST", "/v1/plugins/"+verb, q, &res); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res)
			}
			fmt.Printf("role %s now holds: %s\n", res.Role, strings.Join(res.Granted, " "))
			return nil
		},
	}
}
