package main

import (
	"os/exec"
	"strings"
	"testing"
)

// repoPath is the import path every package of this repo starts with.
const repoPath = "github.com/avnode/avnode"

// layerRule says which packages of this repo the packages matching pattern
// (a `go list` pattern, run in the module folder dir) may depend on,
// directly or through others.
type layerRule struct {
	name    string
	dir     string // relative to cmd/avnode
	pattern string
	allowed func(from, dep string) bool
}

func under(dep, pkg string) bool { return dep == pkg || strings.HasPrefix(dep, pkg+"/") }

// The imports point one way: the CLI's commands link the control API's
// wire, not the node; roles and the SDK's examples see only the SDK; the
// error taxonomy is a leaf every layer may use.
var layerRules = []layerRule{
	{"the CLI's commands link core/api only", "../..", "./cmd/avnode/cli/...", func(from, dep string) bool {
		return under(dep, repoPath+"/cmd/avnode/cli") || dep == repoPath+"/core/api" || dep == repoPath+"/core/fault"
	}},
	{"core/fault is a leaf", "../..", "./core/fault", func(from, dep string) bool { return false }},
	{"roles see only the SDK", "../..", "./roles/...", func(from, dep string) bool {
		return under(dep, repoPath+"/sdk") || under(dep, roleOf(from))
	}},
	{"the chat example sees only the SDK", "../../sdk/examples/chat", "./...", onlySDK},
	{"the pinner example sees only the SDK", "../../sdk/examples/pinner", "./...", onlySDK},
	{"the core never depends on plugins/, roles/ or cmd/", "../..", "./core/...", func(from, dep string) bool {
		return under(dep, repoPath+"/core") || under(dep, repoPath+"/sdk")
	}},
	{"plugins/ reaches the core only through plugins.Node", "../..", "./plugins/...", func(from, dep string) bool {
		// core/api holds the types plugins.Node speaks; core/fault,
		// core/backoff and core/names (how a name is spelled, for the
		// scope of a permission, with core/idkey, the key types it
		// reads) are leaves with no state of the node.
		return under(dep, repoPath+"/plugins") || under(dep, repoPath+"/sdk") ||
			dep == repoPath+"/core/api" || dep == repoPath+"/core/fault" || dep == repoPath+"/core/backoff" ||
			under(dep, repoPath+"/core/names") || dep == repoPath+"/core/idkey"
	}},
}

// importRules are about direct imports: roles and examples code against the
// SDK's Go types, never its wire (sdk/pluginpb, which the SDK itself uses),
// and one composition root joins the core and the plugin host.
var importRules = []layerRule{
	{"roles import the SDK's Go types, not its wire", "../..", "./roles/...", notTheWire},
	{"the chat example imports the SDK's Go types, not its wire", "../../sdk/examples/chat", "./...", notTheWire},
	{"the pinner example imports the SDK's Go types, not its wire", "../../sdk/examples/pinner", "./...", notTheWire},
	{"only cmd/avnode starts the plugin host", "../..", "./...", func(from, dep string) bool {
		return dep != repoPath+"/plugins" || from == repoPath+"/cmd/avnode" || under(from, repoPath+"/plugins")
	}},
}

func notTheWire(from, dep string) bool { return !under(dep, repoPath+"/sdk/pluginpb") }

// roleOf is the role folder a package of roles/ belongs to.
func roleOf(pkg string) string {
	parts := strings.Split(strings.TrimPrefix(pkg, repoPath+"/"), "/")
	if len(parts) < 2 {
		return pkg
	}
	return repoPath + "/" + parts[0] + "/" + parts[1]
}

func onlySDK(from, dep string) bool { return under(dep, repoPath+"/sdk") }

func TestLayers(t *testing.T) {
	check(t, layerRules, "Deps")
	check(t, importRules, "Imports")
}

func check(t *testing.T, rules []layerRule, field string) {
	t.Helper()
	for _, rule := range rules {
		deps := repoDeps(t, rule.dir, rule.pattern, field)
		if len(deps) == 0 {
			t.Errorf("%s: %s matches no package", rule.name, rule.pattern)
		}
		for from, list := range deps {
			for _, dep := range list {
				if !rule.allowed(from, dep) {
					t.Errorf("%s: %s depends on %s", rule.name, from, dep)
				}
			}
		}
	}
}

// repoDeps lists, for each package matching pattern, the packages of this
// repo in its field of `go list` (Deps: every package it links; Imports:
// the ones it names).
func repoDeps(t *testing.T, dir, pattern, field string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .`+field+`}} {{.}}{{end}}`, pattern)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s in %s: %v", pattern, dir, err)
	}
	deps := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		deps[fields[0]] = []string{}
		for _, dep := range fields[1:] {
			if under(dep, repoPath) {
				deps[fields[0]] = append(deps[fields[0]], dep)
			}
		}
	}
	return deps
}
