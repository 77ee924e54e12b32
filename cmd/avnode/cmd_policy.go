package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/avnode/avnode/core/policy"
)

func newPolicyCmd(g *globals) *cobra.Command {
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
	cmd.AddCommand(newPolicyCheckCmd(g), newPolicyTestCmd(g), newPolicyLsCmd(g), newPolicyReloadCmd(g))
	return cmd
}

func newPolicyCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Compile a policy script and list its hooks, without a node",
		Long: `check loads FILE as the node would (sandboxed, in a throwaway process) and
prints the hooks it defines, with warnings for hook names the node does not
call. It exits 1 when the script does not load.`,
		Example: "  avnode policy check scripts/deny-names.lua",
		Args:    exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, warnings, err := policy.CheckFile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(map[string]any{"script": info, "warnings": warnings})
			}
			fmt.Printf("%s: ok, hooks: %s\n", args[0], strings.Join(info.Hooks, ", "))
			for _, w := range warnings {
				fmt.Printf("warning: %s\n", w)
			}
			return nil
		},
	}
}

func newPolicyTestCmd(g *globals) *cobra.Command {
	var fixtures string
	cmd := &cobra.Command{
		Use:   "test FILE --fixtures DIR",
		Short: "Run a policy script's hooks against fixture inputs and print the verdicts",
		Long: `test runs FILE's hooks on every DIR/*.json fixture, a file like
  {"hook": "store_record", "input": {"name": "spam.avtr", ...}, "expect": "deny"}
and prints each verdict. "expect" (allow, deny or none) is optional; test
exits 1 when a verdict differs from it. No node or network is needed.`,
		Example: "  avnode policy test scripts/deny-names.lua --fixtures scripts/fixtures/deny-names",
		Args:    exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fixtures == "" {
				return usagef("--fixtures DIR is required")
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
			if g.json {
				if err := printJSON(results); err != nil {
					return err
				}
			} else {
				printFixtureResults(results)
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
			orDash(r.Fixture.Expect), result, r.Verdict.Reason)
	}
	w.Flush()
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newPolicyLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Short:   "List the running node's policy scripts and their hooks",
		Example: "  avnode policy ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var scripts []policy.ScriptInfo
			if err := g.call(cmd.Context(), "GET", "/v1/policy", nil, &scripts); err != nil {
				return err
			}
			return printScripts(g, scripts)
		},
	}
}

func newPolicyReloadCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Reload the running node's policy scripts from their files",
		Long: `reload re-reads every script in policy.scripts. If any fails to load, none is
swapped: the node keeps the scripts it has and the command prints why.
Edited scripts are also reloaded by themselves (policy.watch_interval).`,
		Example: "  avnode policy reload",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var scripts []policy.ScriptInfo
			if err := g.call(cmd.Context(), "POST", "/v1/policy/reload", nil, &scripts); err != nil {
				return err
			}
			return printScripts(g, scripts)
		},
	}
}

func printScripts(g *globals, scripts []policy.ScriptInfo) error {
	if g.json {
		return printJSON(scripts)
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
