package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/avnode/avnode/core/api"
)

func newEstateCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "estate",
		Short: "Hosting positions that move between machines: create, list, export, import",
		Long: `An estate is a hosting position with a key of its own. A name's zone points at
it (publish --estate, or 'record set NAME HOST estate:<ID>'), and the estate's
record, signed by the estate key, names the machines that run it now. Moving
the estate to another machine (export here, import there) changes only the
estate record: the name's zone, and its sequence number, stay as they are.
The identity key decides which estate hosts a name; the estate key only
which machines run the estate, so a provider holding it cannot change the
name's records.`,
		Example: `  avnode estate create home
  avnode publish ./site --name alice.avtr --estate home
  avnode estate export home -o home.estate --passphrase-file pass.txt
  avnode --repo /other estate import home.estate --passphrase-file pass.txt`,
	}
	cmd.AddCommand(newEstateCreateCmd(g), newEstateLsCmd(g), newEstateExportCmd(g), newEstateImportCmd(g))
	return cmd
}

func newEstateCreateCmd(g *Globals) *cobra.Command {
	var provider, ttl string
	cmd := &cobra.Command{
		Use:   "create LABEL",
		Short: "Make an estate key and publish the estate's first record, naming this machine",
		Example: `  avnode estate create home
  avnode estate create shop-17 --provider acme.node --ttl 30s`,
		Args: ExactArgs(1, "LABEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var e api.Estate
			q := url.Values{"label": {args[0]}, "provider": {provider}, "ttl": {ttl}}
			if err := g.call(cmd.Context(), "POST", "/v1/estate/create", q, &e); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(e)
			}
			fmt.Printf("estate %s (%s), seq %d, hosted here\n", e.ID, e.Label, e.Seq)
			return nil
		},
	}
	cmd.Flags().StringVar(&provider, "provider", "", "the .node name of the provider whose machine this is")
	cmd.Flags().StringVar(&ttl, "ttl", "", "how long resolvers cache the estate record: how long a move takes to reach them (default 1m)")
	return cmd
}

func newEstateLsCmd(g *Globals) *cobra.Command {
	var replication bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the estates whose keys this node holds, with the names on each",
		Long: `ls lists each estate whose key this node holds: its label and ID, the
sequence of its record, whether it is hosted here or retired (a newer record
names other machines: it was imported elsewhere), its provider, and the
avatar names published onto it here. With --replication, each name shows
how many machines serve it now: its hosts and the mirrors attesting a copy
(a lookup per name).`,
		Example: `  avnode estate ls
  avnode estate ls --replication
  avnode estate ls --json`,
		Args: ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var estates []api.Estate
			q := url.Values{}
			if replication {
				q.Set("replication", "true")
			}
			if err := g.call(cmd.Context(), "GET", "/v1/estate/ls", q, &estates); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(estates)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "LABEL\tID\tSEQ\tSTATE\tPROVIDER\tNAMES")
			for _, e := range estates {
				state := "hosted"
				if e.Retired != "" {
					state = "retired"
				}
				names := make([]string, len(e.Names))
				for i, n := range e.Names {
					names[i] = n
					if count, ok := e.Replication[n]; ok {
						names[i] = fmt.Sprintf("%s (%d)", n, count)
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", e.Label, e.ID, e.Seq, state, OrDash(e.Provider), OrDash(strings.Join(names, ",")))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&replication, "replication", false, "count the machines serving each name")
	return cmd
}

// readSecret reads a passphrase or identity file, without its final newline.
func readSecret(flag, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", Usagef("%s: %v", flag, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func (g *Globals) callSealing(cmd *cobra.Command, path string, q url.Values, s api.EstateSealing, out any) error {
	body, _ := json.Marshal(s)
	return g.client().Call(cmd.Context(), "POST", path, q, bytes.NewReader(body), out)
}

func newEstateExportCmd(g *Globals) *cobra.Command {
	var out, passFile, to string
	cmd := &cobra.Command{
		Use:   "export ID|LABEL -o FILE",
		Short: "Seal an estate's key (with a passphrase, or to an age recipient) for another machine",
		Long: `export writes the estate key and the names on the estate, sealed with age
(filippo.io/age): with the passphrase in --passphrase-file, or to the age
recipient --to age1…. This machine keeps hosting the estate until the machine
that imports it publishes a newer record; it then retires its copy.`,
		Example: `  avnode estate export home -o home.estate --passphrase-file pass.txt
  avnode estate export home -o home.estate --to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p`,
		Args: ExactArgs(1, "ID or LABEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return Usagef("give the file to write with -o FILE")
			}
			pass, err := readSecret("--passphrase-file", passFile)
			if err != nil {
				return err
			}
			if (pass == "") == (to == "") {
				return Usagef("give exactly one of --passphrase-file FILE and --to age1…")
			}
			var res api.EstateExport
			if err := g.callSealing(cmd, "/v1/estate/export", url.Values{"id": {args[0]}},
				api.EstateSealing{Passphrase: pass, Recipient: to}, &res); err != nil {
				return err
			}
			if err := os.WriteFile(out, res.Sealed, 0o600); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res.Estate)
			}
			fmt.Fprintf(os.Stderr, "wrote %s: estate %s (%s), %d names; import it with `avnode estate import %s`\n",
				out, res.Estate.ID, res.Estate.Label, len(res.Estate.Names), out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "the file to write (mode 0600)")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "a file holding the passphrase to seal with")
	cmd.Flags().StringVar(&to, "to", "", "an age recipient (age1…) to seal to")
	return cmd
}

func newEstateImportCmd(g *Globals) *cobra.Command {
	var passFile, identityFile string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Take over an exported estate: publish a record naming this machine and fetch its names' content",
		Long: `import opens FILE (with --passphrase-file or the age --identity it was sealed
to), keeps the estate key, publishes a newer estate record naming this
machine, and fetches and pins the content of the names on the estate.
Resolvers follow within the record's TTL; no name's zone changes.`,
		Example: `  avnode estate import home.estate --passphrase-file pass.txt
  avnode estate import home.estate --identity key.txt`,
		Args: ExactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sealed, err := os.ReadFile(args[0])
			if err != nil {
				return Usagef("%v", err)
			}
			pass, err := readSecret("--passphrase-file", passFile)
			if err != nil {
				return err
			}
			identity, err := readSecret("--identity", identityFile)
			if err != nil {
				return err
			}
			var e api.Estate
			if err := g.callSealing(cmd, "/v1/estate/import", nil,
				api.EstateSealing{Passphrase: pass, Identity: identity, Sealed: sealed}, &e); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(e)
			}
			fmt.Printf("estate %s (%s), seq %d, hosted here; %d of %d names' content pinned\n", e.ID, e.Label, e.Seq, e.Pinned, len(e.Names))
			for _, p := range e.Problems {
				fmt.Fprintln(os.Stderr, "warning:", p)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "a file holding the passphrase it was sealed with")
	cmd.Flags().StringVar(&identityFile, "identity", "", "an age identity file (AGE-SECRET-KEY-1…) it was sealed to")
	return cmd
}
