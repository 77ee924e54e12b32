package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// mirrorableName checks a name given to `mirror add|rm` (verb) and returns
// its canonical form. A mirror keeps a whole registered name: its owner
// signs one zone for it and every label under it.
func (g *Globals) mirrorableName(verb, arg string) (string, error) {
	name, registered, err := g.Local.ParseName(arg)
	if err != nil {
		return "", Usagef("%v", err)
	}
	if registered != name {
		return "", Usagef("%s is a label under %s; a mirror keeps a whole registered name: avnode mirror %s %s", name, registered, verb, registered)
	}
	return name, nil
}

// callRole runs a command of a running role through the node.
func (g *Globals) callRole(cmd *cobra.Command, role, name string, args []string, out any) error {
	q := url.Values{"role": {role}, "name": {name}, "arg": args}
	return g.call(cmd.Context(), "POST", "/v1/roles/call", q, out)
}

func newRolesCallCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "call ROLE COMMAND [ARG...]",
		Short: "Run a command of a running role and print its JSON answer",
		Long: `call hands COMMAND and its arguments to the role's plugin and prints what it
answers. Which commands a role takes is up to the role: see its README.`,
		Example: "  avnode roles call beacon status\n  avnode roles call mirror add einstein.avtr",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out json.RawMessage
			if err := g.callRole(cmd, args[0], args[1], args[2:], &out); err != nil {
				return err
			}
			return PrintJSON(out)
		},
	}
}

func newMirrorCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Keep copies of other people's names (the mirror role)",
		Long: `mirror drives the mirror role of the running node (enable it with
'--roles mirror' or 'avnode roles enable mirror'). A mirrored name's content is
fetched, verified, pinned and served, and the owner's signed records are
republished so that the name lives while its owner is offline.`,
		Example: "  avnode mirror add einstein.avtr\n  avnode mirror ls --json\n  avnode mirror rm einstein.avtr",
	}
	run := func(name string, args []string, c *cobra.Command) error {
		var raw json.RawMessage
		if err := g.callRole(c, "mirror", name, args, &raw); err != nil {
			return err
		}
		if g.JSON {
			return PrintJSON(raw)
		}
		var list []fields
		if err := decodeFields(raw, &list); err != nil {
			return fmt.Errorf("mirror %s: the role answered %s: %w", name, raw, err)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tSEQ\tBYTES\tLAST SYNC\tSOURCES\tROOT\tERROR")
		for _, s := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.text("name"), s.number("seq"), s.number("bytes"),
				OrDash(s.text("last_sync")), s.count("sources"), OrDash(s.text("root")), s.text("error"))
		}
		return w.Flush()
	}
	for _, verb := range []string{"add", "rm"} {
		cmd.AddCommand(&cobra.Command{
			Use:     verb + " NAME",
			Short:   map[string]string{"add": "Mirror a name", "rm": "Stop mirroring a name and unpin its content"}[verb],
			Example: "  avnode mirror " + verb + " einstein.avtr",
			Args:    ExactArgs(1, "NAME"),
			RunE: func(c *cobra.Command, args []string) error {
				name, err := g.mirrorableName(verb, args[0])
				if err != nil {
					return err
				}
				return run(verb, []string{name}, c)
			},
		})
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "ls",
		Short:   "List mirrored names: version, bytes, last sync, errors",
		Example: "  avnode mirror ls --json",
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return run("ls", nil, c) },
	})
	return cmd
}
