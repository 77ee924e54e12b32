package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli"
)

// Every command teaches: a short line, and an example for each runnable one.
// A flag's help has no backticks: pflag takes a backticked word for the
// name of the flag's value (--key avnode key ls).
func TestEveryCommandHasHelpAndExamples(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: backticks in its help: %q", c.CommandPath(), f.Name, f.Usage)
			}
		})
		if c.Short == "" && c.Name() != "help" {
			t.Errorf("%s has no short help", c.CommandPath())
		}
		if c.Runnable() && c.Example == "" && c.Name() != "help" && c.Name() != "completion" {
			t.Errorf("%s has no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(&nodecli.Globals{}))
}
