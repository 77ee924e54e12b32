package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli"
	"github.com/avnode/avnode/core/policy"
)

func newPolicyCmd(g *nodecli.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check, test and reload the node's Lua policies",
		Long: `Lua policy scripts (config policy.scripts) decide which records this node
stores and accepts, in which order it tries peers, which names it mirrors and
who may reserve a relay slot. They run sandboxed, in a process of their own,
each hook call within a time budget. scripts/README.md explains how to write one.`,
		Example: `  avnode policy check scripts/deny-names.lua
  avnode policy test scripts/deny-names.lua --fixtures scripts/fixtures/deny-names
  avnode policy ls
  avnode policy reload`,
	}
	cmd.AddCommand(newPolicyCheckCmd(g), newPolicyTestCmd(g), nodecli.NewPolicyLsCmd(g), nodecli.NewPolicyReloadCmd(g))
	return cmd
}

func newPolicyCheckCmd(g *nodecli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Compile a policy script and list its hooks, without a node",
		Long: `check loads FILE as the node would (sandboxed, in a throwaway process) and
prints the hooks it defines, with warnings for hook names the node does not
call. It exits 1 when the script does not load.`,
		Example: "  avnode policy check scripts/deny-names.lua",
		Args:    nodecli.ExactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, warnings, err := policy.CheckFile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.JSON {
				return nodecli.PrintJSON(map[string]any{"script": info, "warnings": warnings})
			}
			fmt.Printf("%s: ok, hooks: %s\n", args[0], strings.Join(info.Hooks, ", "))
			for _, w := range warnings {
				fmt.Printf("warning: %s\n", w)
			}
			return nil
		},
	}
}

func newPolicyTestCmd(g *nodecli.Globals) *cobra.Command {
	var fixtures string
	cmd := &cobra.Command{
		Use:   "test FILE --fixtures DIR",
		Short: "Run a policy script's hooks against fixture inputs and print the verdicts",
		Long: `test runs FILE's hooks on every DIR/*.json fixture, a file like
  {"hook": "store_record", "input": {"name": "spam.avtr", ...}, "expect": "deny"}
and prints each verdict. "expect" (allow, deny or none) is optional; test
exits 1 when a verdict differs from it. No node or network is needed.`,
		Example: "  avnode policy test scripts/deny-names.lua --fixtures scripts/fixtures/deny-names",
		Args:    nodecli.ExactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fixtures == "" {
				return nodecli.Usagef("--fixtures DIR is required")
			}
			results, err := policy.RunFixtures(cmd.Context(), args[0], fixtures)
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				if !r.Pass {
					failed++
				}
			}
			if g.JSON {
				if err := nodecli.PrintJSON(results); err != nil {
					return err
				}
			} else {
				printFixtureResults(results)
				fmt.Printf("%d passed, %d failed, of %d fixtures\n", len(results)-failed, failed, len(results))
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d fixtures did not get the expected verdict", failed, len(results))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&fixtures, "fixtures", "", "folder of fixture files (*.json)")
	return cmd
}

func printFixtureResults(results []policy.FixtureResult) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FIXTURE\tHOOK\tVERDICT\tEXPECTED\tRESULT\tREASON")
	for _, r := range results {
		result := "ok"
		if !r.Pass {
			result = "FAIL"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Fixture.File, r.Fixture.Hook, verdictWord(r.Verdict),
			expectation(r.Fixture), result, r.Verdict.Reason)
	}
	w.Flush()
}

// expectation says what a fixture expects, in verdictWord's words: an
// order fixture's order, or "any" for a fixture that expects only that
// the hook does not fail.
func expectation(f policy.Fixture) string {
	switch {
	case len(f.ExpectOrder) > 0:
		return "order " + strings.Join(f.ExpectOrder, ",")
	case f.Expect == "":
		return "any"
	}
	return f.Expect
}

// verdictWord says a verdict in one word, as fixtures expect it.
func verdictWord(v policy.Verdict) string {
	switch {
	case v.Fallback && v.Decided:
		return fmt.Sprintf("fallback-%t", v.Allow)
	case !v.Decided:
		return "none"
	case len(v.Order) > 0:
		return "order " + strings.Join(v.Order, ",")
	case v.Allow:
		return "allow"
	}
	return "deny"
}
