package cli

import "github.com/spf13/cobra"

// ExactArgs is cobra.ExactArgs with a message that names the arguments.
func ExactArgs(n int, names string) cobra.PositionalArgs { return RangeArgs(n, n, names) }

// RangeArgs is cobra.RangeArgs with a message that names the arguments.
func RangeArgs(lo, hi int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return Usagef("%s needs %s, got %d argument(s)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}
