package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli"
	"github.com/avnode/avnode/core/node"
)

// newManCmd writes a man page for every command, from the same text as
// --help, for `make install`. Hidden: it is a build step, not an
// operator's command.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "man DIR",
		Short:   "Write the man pages of every command into DIR (make install runs it)",
		Hidden:  true,
		Example: "  avnode man /usr/local/share/man/man1",
		Args:    nodecli.ExactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			header := &doc.GenManHeader{Title: "AVNODE", Section: "1", Source: "avnode " + node.FullVersion(), Manual: "avnode manual"}
			// The commit's date, not today's: the same source makes the same pages.
			if t, err := time.Parse(time.RFC3339, node.BuildStamp().Time); err == nil {
				header.Date = &t
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			// The default repo of whoever reads the page, not of whoever
			// installed it.
			if f := root.PersistentFlags().Lookup("repo"); f != nil {
				f.DefValue = "~/.avnode"
			}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("man pages into %s: %w", args[0], err)
			}
			return nil
		},
	}
}
