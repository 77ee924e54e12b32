package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/avnode/avnode/core/api"
)

func newPublishCmd(g *Globals) *cobra.Command {
	var name, estate string
	cmd := &cobra.Command{
		Use:   "publish DIR",
		Short: "Import a directory (or file) as signed, content-addressed blocks; with --name, point a name at it",
		Long: `publish imports DIR into 1 MiB content-addressed blocks in the node's block
store, pins it and announces it in the DHT, so 'avnode get /cid/<root>' works
from any node. With --name, it also sets the name's ROOT record to the root
CID and adds this node as a HOST, so any node can 'avnode get NAME'; with
--estate as well, the HOST names the estate instead (HOST estate:<ID>), so
the name moves with the estate ('avnode estate --help').
Publishing an unchanged directory again stores no new blocks. A symlink that
leads out of DIR is refused. On a terminal, progress shows on stderr.`,
		Example: `  avnode publish ./site --name coolblog.code
  avnode publish ./site --name coolblog.code --estate home
  avnode publish ./photos            # import, announce and print the root CID`,
		Args: ExactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if _, err := os.Stat(dir); err != nil {
				return err
			}
			var res api.PublishResult
			if err := g.callWithProgress(cmd.Context(), "/v1/publish", url.Values{"path": {dir}, "name": {name}, "estate": {estate}}, &res); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res)
			}
			fmt.Printf("%s\n%d files, %d dirs, %d blocks (%d new), %s\n", res.Root, res.Files, res.Dirs, res.Blocks, res.NewBlocks, g.Local.FormatBytes(res.Bytes))
			if res.Name != "" {
				fmt.Printf("%s now points at it (zone sequence %d)\n", res.Name, res.Seq)
			}
			if !res.Provided {
				fmt.Fprintln(os.Stderr, "warning: the content could not be announced in the DHT yet (no peers?); it is stored and pinned")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "a name this node owns to point at the content")
	cmd.Flags().StringVar(&estate, "estate", "", "host the name on this estate (an ID or label from 'avnode estate ls') instead of on this machine")
	return cmd
}

func newGetCmd(g *Globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "get NAME[/PATH] | /cid/CID[/PATH]",
		Short: "Fetch content by name or CID from every node that has it",
		Long: `get resolves the name, finds sources (the zone's HOSTs and the DHT's providers),
fetches the blocks from several of them at once, verifies every block against
its CID (a source that sends a bad block is dropped), and keeps what it
fetched so this node serves it too. An interrupted get resumes: blocks already
here are not fetched again.

A file goes to stdout, or to -o FILE. A directory is written to -o DIR
(default: a folder named after the target's last part); --json lists it instead of writing.`,
		Example: `  avnode get coolblog.code -o ./coolblog
  avnode get coolblog.code/index.html
  avnode get /cid/bafy.../photos/cat.jpg -o cat.jpg
  avnode get coolblog.code --json`,
		Args: ExactArgs(1, "NAME[/PATH] or /cid/CID[/PATH]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := args[0]
			if err := g.Local.ParseTarget(target); err != nil {
				return Usagef("%v", err)
			}
			q := url.Values{"target": {target}}
			if out != "" {
				abs, err := filepath.Abs(out)
				if err != nil {
					return err
				}
				q.Set("out", abs)
			}
			var res api.GetResult
			if err := g.callWithProgress(cmd.Context(), "/v1/get", q, &res); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res)
			}
			switch {
			case res.Output != "":
				fmt.Fprintf(os.Stderr, "wrote %s (%s, %s): %d blocks fetched, %d already here\n",
					res.Output, res.Kind, g.Local.FormatBytes(res.Size), res.Stats.Fetched, res.Stats.Present)
				return nil
			case res.Kind == "file":
				client := g.client()
				_, err := client.Stream(cmd.Context(), "GET", "/v1/cat", url.Values{"target": {target}}, os.Stdout)
				return err
			default:
				dest, _ := filepath.Abs(defaultOutput(target, res.Root))
				q.Set("out", dest)
				if err := g.callWithProgress(cmd.Context(), "/v1/get", q, &res); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "wrote %s (%d entries, %s)\n", dest, len(res.Entries), g.Local.FormatBytes(res.Size))
				return nil
			}
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to this file or directory")
	return cmd
}

// callWithProgress makes a streamed call and, on a terminal, draws its
// progress on one line of stderr; under --json each progress event is a
// line of JSON on stderr ({"progress": {...}}), the result on stdout.
func (g *Globals) callWithProgress(ctx context.Context, path string, q url.Values, out any) error {
	client := g.client()
	draw := func(json.RawMessage) {}
	switch {
	case g.JSON:
		draw = func(raw json.RawMessage) { fmt.Fprintf(os.Stderr, "{\"progress\":%s}\n", raw) }
	case isTerminal(os.Stderr):
		started := time.Now()
		draw = func(raw json.RawMessage) {
			var p api.Progress
			if json.Unmarshal(raw, &p) == nil {
				fmt.Fprintf(os.Stderr, "\r%s   ", g.progressLine(p, time.Since(started)))
			}
		}
		defer fmt.Fprint(os.Stderr, "\r\033[K")
	}
	return client.CallStream(ctx, "POST", path, q, draw, out)
}

// progressLine says one progress event in words.
func (g *Globals) progressLine(p api.Progress, took time.Duration) string {
	switch {
	case p.Phase == "work":
		return workLine(p.Tried, p.Expected, took)
	case p.Of > 0:
		return fmt.Sprintf("%s: %d/%d blocks, %s", p.Phase, p.Blocks, p.Of, g.Local.FormatBytes(p.Bytes))
	}
	return fmt.Sprintf("%s: %s", p.Phase, g.Local.FormatBytes(p.Bytes))
}

// workLine tells how a claim's proof of work goes: hashes tried of those
// expected on average, and a time left from the rate so far. Past the
// average the search goes on as likely to end at each hash as at the
// first: the line says so rather than promise a time.
func workLine(tried, expected uint64, took time.Duration) string {
	if tried == 0 || expected == 0 || took <= 0 {
		return "proof of work: starting"
	}
	line := fmt.Sprintf("proof of work: %s of about %s hashes", millions(tried), millions(expected))
	if tried >= expected {
		return line + ", past the average: a claim sometimes takes several times it"
	}
	rate := float64(tried) / took.Seconds()
	left := time.Duration(float64(expected-tried) / rate * float64(time.Second))
	return fmt.Sprintf("%s (%d %%), about %s left", line, tried*100/expected, left.Round(100*time.Millisecond))
}

func millions(n uint64) string { return fmt.Sprintf("%.1fM", float64(n)/1e6) }

func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// defaultOutput is ./<last element of the target>, like `ipfs get`.
func defaultOutput(target, root string) string {
	t := strings.TrimRight(target, "/")
	base := path.Base(t)
	if rest, alt := cutPrefixFold(t, "an://"); alt && !strings.Contains(rest, "/") {
		base = strings.ReplaceAll(rest, ":", ".") // an://coolblog:code is coolblog.code
	}
	if base == "" || base == "." || base == "/" || strings.HasPrefix(t, "/cid/") && !strings.Contains(strings.TrimPrefix(t, "/cid/"), "/") {
		base = root
	}
	return base
}

func newRepoCmd(g *Globals) *cobra.Command {
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Remove blocks that no pin reaches, and say what was freed",
		Long: `gc removes every block that is not reachable from a pin: cached content
fetched with 'avnode get'. What this node published or mirrors is pinned
and never removed.`,
		Example: "  avnode repo gc\n  avnode repo gc --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res api.GCResult
			if err := g.call(cmd.Context(), "POST", "/v1/repo/gc", nil, &res); err != nil {
				return err
			}
			if g.JSON {
				return PrintJSON(res)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "removed\t%d blocks\nfreed\t%s\nkept\t%d blocks\n", res.Removed, g.Local.FormatBytes(res.Freed), res.Kept)
			return w.Flush()
		},
	}
	parent := &cobra.Command{Use: "repo", Short: "Maintain the node's repo"}
	parent.AddCommand(gc)
	return parent
}

// cutPrefixFold is strings.CutPrefix with the prefix's case ignored.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}
