package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped scripts live in the repository's scripts/ folder, with their
// fixtures in scripts/fixtures/<script>/.
const scriptsDir = "../../scripts"

func TestShippedScripts(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(scriptsDir, "*.lua"))
	if err != nil || len(paths) < 4 {
		t.Fatalf("shipped scripts: %v %v", paths, err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".lua")
		t.Run(name, func(t *testing.T) {
			info, warnings, err := CheckFile(context.Background(), path)
			if err != nil || len(warnings) > 0 || len(info.Hooks) == 0 {
				t.Fatalf("CheckFile: %+v, warnings %q, %v", info, warnings, err)
			}
			results, err := RunFixtures(context.Background(), path, filepath.Join(scriptsDir, "fixtures", name))
			if err != nil {
				t.Fatal(err)
			}
			if len(results) < 3 {
				t.Errorf("only %d fixtures; every shipped script needs a few", len(results))
			}
			for _, r := range results {
				if !r.Pass {
					t.Errorf("%s: expected %q %v, got %+v", r.Fixture.File, r.Fixture.Expect, r.Fixture.ExpectOrder, r.Verdict)
				}
			}
		})
	}
}

// TestShippedScriptSettings edits the settings at the top of two shipped
// scripts, as an operator would, and checks they take effect.
func TestShippedScriptSettings(t *testing.T) {
	prefer := patchScript(t, "prefer-peers.lua", `-- "12D3KooW...",`, `"12D3KooWSlow", "12D3KooWNotACandidate", "12D3KooWMedium",`)
	relay := patchScript(t, "relay-allowlist.lua", `-- "12D3KooW...",`, `"12D3KooWFriend",`)
	p := start(t, Options{Scripts: []string{prefer, relay}})
	ctx := context.Background()

	in := map[string]any{"cid": "bafy", "candidates": []any{
		map[string]any{"peer": "12D3KooWFast", "latency_ms": 5, "success_rate": 1},
		map[string]any{"peer": "12D3KooWMedium", "latency_ms": 50, "success_rate": 1},
		map[string]any{"peer": "12D3KooWSlow", "latency_ms": 500, "success_rate": 1},
	}}
	v := p.Decide(ctx, HookOrderProviders, in)
	if got := strings.Join(v.Order, " "); got != "12D3KooWSlow 12D3KooWMedium 12D3KooWFast" || v.Fallback {
		t.Fatalf("preferred peers: order %q (%+v)", got, v)
	}

	v = p.Decide(ctx, HookRelayReserve, map[string]any{"peer": "12D3KooWFriend", "ip": "203.0.113.1", "reservations": 0})
	if !v.Allow || !strings.Contains(v.Reason, "peer allow list") {
		t.Fatalf("a listed peer from a public address: %+v", v)
	}
}

// patchScript copies a shipped script with one setting changed.
func patchScript(t *testing.T, name, old, replacement string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(scriptsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), old) {
		t.Fatalf("%s no longer contains %q", name, old)
	}
	return writeScript(t, name, strings.Replace(string(src), old, replacement, 1))
}
