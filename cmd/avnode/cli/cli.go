// Package cli is avnode's commands that drive a running node: each one is a
// call to the node's control API (core/api) and a printout of its answer.
//
// It imports no package of this module but core/api, so the commands link
// the wire types, not the node; layers_test.go in cmd/avnode keeps it so.
// What a command checks before it calls (a name's syntax, a get target) is
// the node's own code, handed in by the composition root as Local. A role's
// answer is printed as the role gives it, or read by field name: the CLI
// keeps no copy of a role's Go types.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/avnode/avnode/core/api"
)

// Globals are the flags every command takes, and what the composition root
// hands the commands.
type Globals struct {
	Repo   string // the node's repo directory (--repo)
	JSON   bool   // print JSON instead of text (--json)
	Socket string // the control API's socket file in the repo
	Local  Local
}

// Local is the node's own code that commands run before they call the
// node, so that a wrong argument is refused even with no node running.
type Local struct {
	// ParseName returns a name's canonical form and the registered name
	// it is, or is a label under.
	ParseName func(text string) (name, registered string, err error)
	// ParseTarget checks a get target: NAME[/PATH] or /cid/CID[/PATH].
	ParseTarget func(target string) error
	// FormatBytes writes a size in binary units.
	FormatBytes func(n int64) string
}

// Commands are the top-level commands that drive a running node.
func Commands(g *Globals) []*cobra.Command {
	return []*cobra.Command{
		newIDCmd(g), newPeersCmd(g), newRoutingCmd(g), newDashboardCmd(g),
		newNameCmd(g), newRecordCmd(g), newResolveCmd(g),
		newPublishCmd(g), newGetCmd(g), newRepoCmd(g),
		newRolesCmd(g), newPluginsCmd(g), newMirrorCmd(g), newSatelliteCmd(g), newEstateCmd(g),
	}
}

func (g *Globals) client() *api.Client { return api.NewClient(g.Repo, g.Socket) }

// call performs one control API call against the daemon of g.Repo.
func (g *Globals) call(ctx context.Context, method, path string, query url.Values, out any) error {
	return g.client().Call(ctx, method, path, query, nil, out)
}

// Call is call, for the commands the composition root defines.
func (g *Globals) Call(ctx context.Context, method, path string, query url.Values, out any) error {
	return g.call(ctx, method, path, query, out)
}

// UsageError marks a wrong argument, reported with exit code 2.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// Usagef makes a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, args...)}
}

// PrintJSON writes v as indented JSON to stdout.
func PrintJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// OrDash is s, or "-" for nothing.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fields is a JSON object read by field name: how the CLI prints a role's
// answer without a copy of the role's type.
type fields map[string]any

// decodeFields decodes raw into out (a fields or a []fields), keeping
// numbers as they were written.
func decodeFields(raw json.RawMessage, out any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(out)
}

// text is a string field, or "" when absent.
func (f fields) text(key string) string {
	s, _ := f[key].(string)
	return s
}

// number is a numeric field as written, or "0" when absent.
func (f fields) number(key string) string {
	if n, ok := f[key].(json.Number); ok {
		return n.String()
	}
	return "0"
}

// count is the length of a list field, 0 when absent.
func (f fields) count(key string) int {
	l, _ := f[key].([]any)
	return len(l)
}
