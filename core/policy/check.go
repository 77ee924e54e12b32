package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// CheckFile compiles and loads one script in a throwaway worker, as Start
// would, and reports its hooks and warnings. It backs `avnode policy check`.
func CheckFile(ctx context.Context, path string) (ScriptInfo, []string, error) {
	info := ScriptInfo{Path: path}
	sources, sums, err := readScripts([]string{path})
	if err != nil {
		return info, nil, err
	}
	info.SHA256 = sums[0]
	cfg := workerConfig{memoryMB: DefaultMemoryMB, budget: DefaultBudget, grace: overrunGrace, log: slog.New(slog.DiscardHandler)}
	p, results, err := launch(ctx, cfg, sources)
	if len(results) == 1 {
		info.Hooks, info.Warnings = results[0].Hooks, results[0].Warnings
	}
	if err != nil {
		info.LastError = err.Error()
		return info, info.Warnings, err
	}
	p.close(drainWait)
	info.LoadedAt = time.Now()
	return info, info.Warnings, nil
}

// A Fixture is one recorded hook call and the verdict it should get, read
// from a JSON file: {"hook": "store_record", "input": {...}, "expect": "deny"}.
type Fixture struct {
	File        string          `json:"file,omitempty"` // set from the file's path
	Hook        string          `json:"hook"`
	Input       json.RawMessage `json:"input"`
	Expect      string          `json:"expect"`                 // "allow", "deny", "none" (no opinion) or "" (any verdict, as long as the hook does not fail)
	ExpectOrder []string        `json:"expect_order,omitempty"` // ordering hooks: the order the verdict must start with
}

// A FixtureResult is a fixture, the verdict it got and whether that passes.
type FixtureResult struct {
	Fixture Fixture `json:"fixture"`
	Verdict Verdict `json:"verdict"`
	Pass    bool    `json:"pass"`
}

const fixtureBudget = time.Second

// RunFixtures loads script alone and runs every DIR/*.json fixture through
// it, in file name order. A fixture passes only if the hook ran without
// error: a fallback never passes, even when it matches the expectation. The
// error is for fixtures that cannot run at all (unreadable, unknown hook,
// script fails to load). Hooks run with a 1 s budget. It backs
// `avnode policy test FILE --fixtures DIR`.
func RunFixtures(ctx context.Context, script string, dir string) ([]FixtureResult, error) {
	fixtures, err := readFixtures(dir)
	if err != nil {
		return nil, err
	}
	// Fixtures check what a script decides, not how fast: a generous budget
	// keeps a busy machine from failing them.
	p, err := Start(ctx, Options{Scripts: []string{script}, WatchInterval: -1, Budget: fixtureBudget})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	results := make([]FixtureResult, len(fixtures))
	for i, f := range fixtures {
		v := p.Decide(ctx, f.Hook, f.Input)
		results[i] = FixtureResult{Fixture: f, Verdict: v, Pass: f.passes(v)}
	}
	return results, nil
}

func readFixtures(dir string) ([]Fixture, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("policy: no fixtures (*.json) in %s", dir)
	}
	sort.Strings(files)
	fixtures := make([]Fixture, len(files))
	for i, file := range files {
		if fixtures[i], err = readFixture(file); err != nil {
			return nil, err
		}
	}
	return fixtures, nil
}

func readFixture(file string) (Fixture, error) {
	var f Fixture
	b, err := os.ReadFile(file)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("policy: fixture %s: %w", file, err)
	}
	f.File = file
	if _, ok := hookSpecs[f.Hook]; !ok {
		return f, fmt.Errorf("policy: fixture %s: unknown hook %q; hooks are %s", file, f.Hook, hookNames())
	}
	switch f.Expect {
	case "allow", "deny", "none", "":
	default:
		return f, fmt.Errorf("policy: fixture %s: expect %q; use \"allow\", \"deny\", \"none\" or leave it out", file, f.Expect)
	}
	if len(f.Input) == 0 {
		f.Input = json.RawMessage(`{}`)
	}
	return f, nil
}

func (f Fixture) passes(v Verdict) bool {
	if v.Fallback {
		return false
	}
	if len(f.ExpectOrder) > 0 && (len(v.Order) < len(f.ExpectOrder) || !slices.Equal(v.Order[:len(f.ExpectOrder)], f.ExpectOrder)) {
		return false
	}
	switch f.Expect {
	case "allow":
		return v.Decided && v.Allow
	case "deny":
		return v.Decided && !v.Allow
	case "none":
		return !v.Decided
	}
	return true
}
